#include "keeper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define GROUP_CHECK_MS 20 /* how often the keeper looks whether the group is gone */

/* The keeper holds nothing of its parent's open: not the database
 * connection (the server would keep the session until the keeper exits),
 * not the report pipe (PID 1 reads it to its end). stdio stays, for its
 * log line. Without /proc nothing is closed: those then close only when
 * the keeper exits, after the grace at most. */
static void close_all_but(int keep)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int fd = atoi(e->d_name); /* "." and "..": 0, left alone */
        if (fd > STDERR_FILENO && fd != keep && fd != dirfd(d))
            close(fd);
    }
    if (d)
        closedir(d);
}

/* Reads until the end of the pipe: only the death of every writer (the
 * caller, and the child until its exec) ends it. */
static void wait_for_end(int fd)
{
    char byte;
    ssize_t n;
    do
        n = read(fd, &byte, 1);
    while (n > 0 || (n < 0 && errno == EINTR));
}

/* SIGTERM to the group, then SIGKILL once grace_ms pass with a member left.
 * A zombie counts as a member: its new parent may be slow to reap it, and
 * then the SIGKILL at the grace is merely unneeded. */
static void stop_group(pid_t group, long grace_ms)
{
    struct timespec pause = {0, GROUP_CHECK_MS * 1000000L};
    long deadline = monotonic_ms() + grace_ms;
    if (kill(-group, SIGTERM) != 0)
        return; /* nobody is left */
    while (monotonic_ms() < deadline) {
        nanosleep(&pause, NULL);
        if (kill(-group, 0) != 0)
            return;
    }
    log_warn("the hook's process group %d still running %ld ms after SIGTERM; sending SIGKILL",
             (int)group, grace_ms);
    kill(-group, SIGKILL);
}

/* The keeper's life: the group's id comes first, then the end of the
 * lifeline. An end before the id: the caller died before it started the
 * hook, and there is nothing to stop. */
static void keep(int lifeline, long grace_ms)
{
    pid_t group = 0;
    close_all_but(lifeline);
    ssize_t n;
    do
        n = read(lifeline, &group, sizeof group);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof group && group > 0) {
        wait_for_end(lifeline);
        log_warn("the process that ran the hook ended before it; stopping the hook's process "
                 "group %d", (int)group);
        stop_group(group, grace_ms);
    }
    _exit(0);
}

int keeper_start(struct keeper *k, long grace_ms)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[1]);
        keep(fds[0], grace_ms);
    }
    int err = errno;
    close(fds[0]);
    if (pid < 0) {
        close(fds[1]);
        errno = err;
        return -1;
    }
    k->pid = pid;
    k->lifeline = fds[1];
    return 0;
}

void keeper_dismiss(struct keeper *k)
{
    siginfo_t info;
    memset(&info, 0, sizeof info);
    /* The supervise loop reaps any child that ends: only a keeper not yet
     * reaped (alive, or a zombie) still owns its pid and may be signalled. */
    if (waitid(P_PID, (id_t)k->pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0) {
        kill(k->pid, SIGKILL);
        waitpid(k->pid, NULL, 0);
    }
    /* Closed only now: had the keeper seen the end first, it would have
     * stopped what the hook left in its group, which a hook that ended is
     * allowed to leave (PID 1 stops it with the rest when the app exits). */
    close(k->lifeline);
}
