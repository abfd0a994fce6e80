/* The test app of tests/integration/test_static.py: a fully static program
 * (musl-gcc -static; `make check-static` builds it as build/static_app) that
 * runs in an empty root where there is no shell, no libc and no Python.
 *
 *   static_app [--dir DIR] [--name NAME] [--exit N] [--wait SECONDS] [--term-exit N] [ARG...]
 *
 * Other arguments (ARG, e.g. "dist/index.js" when it stands in for `node` in
 * a deploy file's start command) are accepted and counted ("args=N").
 *
 * At start it prints "LAST_DB_RESET=<value>" (or "LAST_DB_RESET unset") on
 * stdout, writes its environment to DIR/NAME.env (one VAR=value a line) and,
 * once its handlers are installed, DIR/NAME.ready: "pid=P ppid=PP pgrp=G
 * sid=S blocked=HEX ignored=HEX args=N" (the signal mask and the ignored
 * dispositions it inherited, bit N-1 for signal N, signals 1-64).
 * Every SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 it receives is
 * appended to DIR/NAME.signals (the signal number, one a line).
 *
 * Then: with --exit N it exits N at once; with --wait S it waits for signals,
 * at most S seconds (then exits 124). SIGTERM makes it exit --term-exit
 * (default 0), after recording it. DIR defaults to /tmp, NAME to "app".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int signals_fd = -1;
static volatile sig_atomic_t term_exit_code = 0;

static void on_signal(int sig)
{
    char line[8];
    int n = 0;
    if (sig >= 10)
        line[n++] = (char)('0' + sig / 10);
    line[n++] = (char)('0' + sig % 10);
    line[n++] = '\n';
    if (signals_fd >= 0 && write(signals_fd, line, (size_t)n) < 0) {
        /* nothing to do: the test sees the signal missing */
    }
    if (sig == SIGTERM)
        _exit(term_exit_code);
}

static void die(const char *what)
{
    fprintf(stderr, "static_app: %s: %s\n", what, strerror(errno));
    exit(70);
}

static char *path_of(const char *dir, const char *name, const char *suffix)
{
    static char buf[3][512];
    static int next;
    char *p = buf[next++ % 3];
    snprintf(p, sizeof buf[0], "%s/%s%s", dir, name, suffix);
    return p;
}

/* Written under a temporary name, then renamed: a reader never sees half. */
static void write_file(const char *path, const char *text, size_t len)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die(tmp);
    while (len > 0) {
        ssize_t n = write(fd, text, len);
        if (n < 0)
            die(tmp);
        text += n;
        len -= (size_t)n;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0)
        die(path);
}

static unsigned long long mask_bits(const sigset_t *set)
{
    unsigned long long bits = 0;
    for (int s = 1; s <= 64; s++)
        if (sigismember(set, s) == 1)
            bits |= 1ULL << (s - 1);
    return bits;
}

static unsigned long long ignored_bits(void)
{
    unsigned long long bits = 0;
    for (int s = 1; s <= 64; s++) {
        struct sigaction sa;
        if (sigaction(s, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
            bits |= 1ULL << (s - 1);
    }
    return bits;
}

int main(int argc, char **argv)
{
    const char *dir = "/tmp", *name = "app";
    int exit_code = -1;
    long wait_s = -1;
    int positional = 0;

    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--dir") == 0 && v)
            dir = v, i++;
        else if (strcmp(argv[i], "--name") == 0 && v)
            name = v, i++;
        else if (strcmp(argv[i], "--exit") == 0 && v)
            exit_code = atoi(v), i++;
        else if (strcmp(argv[i], "--wait") == 0 && v)
            wait_s = atol(v), i++;
        else if (strcmp(argv[i], "--term-exit") == 0 && v)
            term_exit_code = atoi(v), i++;
        else if (strncmp(argv[i], "--", 2) == 0) {
            fprintf(stderr, "static_app: bad option '%s' (see the header of static_app.c)\n",
                    argv[i]);
            return 64;
        } else
            positional++;
    }

    /* What it inherited, before installing its own handlers. */
    sigset_t blocked;
    sigprocmask(SIG_SETMASK, NULL, &blocked);
    unsigned long long blocked_bits = mask_bits(&blocked), ignored = ignored_bits();

    const char *reset = getenv("LAST_DB_RESET");
    if (reset)
        printf("LAST_DB_RESET=%s\n", reset);
    else
        printf("LAST_DB_RESET unset\n");
    fflush(stdout);

    size_t cap = 4096, used = 0;
    char *env = malloc(cap);
    for (char **e = environ; env && e && *e; e++) {
        size_t len = strlen(*e);
        if (used + len + 2 > cap) {
            cap = (used + len + 2) * 2;
            env = realloc(env, cap);
            if (!env)
                break;
        }
        memcpy(env + used, *e, len);
        used += len;
        env[used++] = '\n';
    }
    if (!env)
        die("malloc");
    write_file(path_of(dir, name, ".env"), env, used);
    free(env);

    signals_fd = open(path_of(dir, name, ".signals"), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                      0644);
    if (signals_fd < 0)
        die(path_of(dir, name, ".signals"));
    static const int handled[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigfillset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof handled / sizeof handled[0]; i++)
        if (sigaction(handled[i], &sa, NULL) != 0)
            die("sigaction");
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    char ready[256];
    int n = snprintf(ready, sizeof ready,
                     "pid=%d ppid=%d pgrp=%d sid=%d blocked=%llx ignored=%llx args=%d\n",
                     (int)getpid(), (int)getppid(), (int)getpgrp(), (int)getsid(0), blocked_bits,
                     ignored, positional);
    write_file(path_of(dir, name, ".ready"), ready, (size_t)n);

    if (exit_code >= 0)
        return exit_code;
    if (wait_s < 0)
        return 0;
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += wait_s;
    for (;;) {
        struct timespec now, left;
        clock_gettime(CLOCK_MONOTONIC, &now);
        left.tv_sec = end.tv_sec - now.tv_sec;
        left.tv_nsec = end.tv_nsec - now.tv_nsec;
        if (left.tv_nsec < 0)
            left.tv_sec--, left.tv_nsec += 1000000000L;
        if (left.tv_sec < 0)
            return 124;
        nanosleep(&left, NULL); /* a signal interrupts it: loop */
    }
}
