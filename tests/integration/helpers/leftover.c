/* leftover: processes that outlive their parent and ignore SIGTERM, started
 * with `podman exec` in tests/integration/test_podman.py (compiled with
 * musl-gcc -static: the image has no libc).
 *
 *   leftover N TERMFILE
 *
 * Forks N children and exits once all of them are set up (each writes a byte
 * on a pipe): the children are then orphans, re-parented to PID 1 of the PID
 * namespace. Each child closes stdin/stdout/stderr first (podman exec's pipes
 * go away when this parent exits: a later write would be a SIGPIPE), then
 * appends its pid to TERMFILE on every SIGTERM and carries on: only SIGKILL
 * ends it. Exit 2 on bad usage, 3 if a fork or the set-up fails. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int term_fd = -1;

static void on_term(int sig)
{
    (void)sig;
    char line[16], *p = line + sizeof line;
    unsigned pid = (unsigned)getpid();
    *--p = '\n';
    do
        *--p = (char)('0' + pid % 10);
    while ((pid /= 10) > 0);
    if (write(term_fd, p, (size_t)(line + sizeof line - p)) < 0)
        _exit(1);
}

static void child(int ready_fd)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    if (sigaction(SIGTERM, &sa, NULL) != 0)
        _exit(3);
    close(STDIN_FILENO);
    close(STDOUT_FILENO);
    close(STDERR_FILENO);
    if (write(ready_fd, "r", 1) != 1)
        _exit(3);
    close(ready_fd);
    for (;;)
        pause();
}

int main(int argc, char **argv)
{
    if (argc != 3 || atol(argv[1]) <= 0) {
        fprintf(stderr, "usage: leftover N TERMFILE\n");
        return 2;
    }
    long n = atol(argv[1]);
    term_fd = open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int ready[2];
    if (term_fd < 0 || pipe(ready) != 0) {
        perror("leftover");
        return 3;
    }
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("leftover: fork");
            return 3;
        }
        if (pid == 0) {
            close(ready[0]);
            child(ready[1]);
        }
    }
    close(ready[1]);
    char c;
    for (long got = 0; got < n; got++)
        if (read(ready[0], &c, 1) != 1) {
            fprintf(stderr, "leftover: a child failed to set up\n");
            return 3;
        }
    return 0; /* the children are orphans now */
}
