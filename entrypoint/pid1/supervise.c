#include "supervise.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "exitcodes.h"
#include "log.h"

struct proc_entry {
    pid_t pid, ppid, pgid;
};

int supervise_init(void)
{
    sigset_t all;
    sigfillset(&all);
    if (sigprocmask(SIG_SETMASK, &all, NULL) != 0)
        return -1;
    if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
        return -1;
    return 0;
}

int supervise_signalfd(void)
{
    sigset_t all;
    sigfillset(&all);
    return signalfd(-1, &all, SFD_CLOEXEC);
}

int exit_code_from_status(int wstatus)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus))
        return 128 + WTERMSIG(wstatus);
    return EXIT_INTERNAL;
}

/* The C library refuses to touch the signals it reserves for itself (glibc
 * 32-33, musl 32-34), but they can arrive ignored from bandage's parent
 * (GNU make ignores 32 and 33) and exec keeps what is ignored: ask the
 * kernel directly. struct kernel_sigaction: the generic layout (x86_64,
 * aarch64, riscv64...). */
struct kernel_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    unsigned long mask;
};

static void default_disposition(int sig)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    if (sigaction(sig, &dfl, NULL) == 0)
        return;
#ifdef SYS_rt_sigaction
    struct kernel_sigaction kdfl = {SIG_DFL, 0, NULL, 0};
    syscall(SYS_rt_sigaction, sig, &kdfl, NULL, sizeof kdfl.mask);
#endif
}

void supervise_reset_signals(void)
{
    sigset_t none;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            default_disposition(sig);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* In the child, once it leads its group and before it runs anything: its
 * pid (the group's id) goes to announce_fd. A command whose group could not
 * be announced is not run: its keeper could not stop it. */
static void announce_group(int announce_fd)
{
    pid_t self = getpid();
    if (write(announce_fd, &self, sizeof self) == (ssize_t)sizeof self)
        return;
    log_error("cannot announce the command's process group to its keeper: %s",
              strerror(errno));
    _exit(EXIT_INTERNAL);
}

/* Runs in the child between fork and exec. */
static void become_app(char *const argv[], int announce_fd)
{
    setpgid(0, 0);
    if (announce_fd >= 0)
        announce_group(announce_fd);
    /* An app in a background group would stop on SIGTTIN when reading the
     * terminal (tini #19): hand the terminal over if we have it. Signals are
     * still blocked here, so SIGTTOU cannot stop us. */
    if (isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgid(getppid()))
        tcsetpgrp(STDIN_FILENO, getpid());
    supervise_reset_signals();
    execvp(argv[0], argv);
    int err = errno;
    log_error("cannot run '%s': %s", argv[0], strerror(err));
    _exit(err == ENOENT || err == ENOTDIR ? EXIT_NOT_FOUND : EXIT_NOT_EXECUTABLE);
}

int supervise_holds_terminal(void)
{
    return isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp();
}

int supervise_take_terminal(void)
{
    /* Outside the foreground group, tcsetpgrp raises SIGTTOU, which stops
     * the caller unless it is blocked or ignored: block it around the call,
     * as shells do when they take the terminal back from a job. */
    sigset_t ttou, saved;
    sigemptyset(&ttou);
    sigaddset(&ttou, SIGTTOU);
    sigprocmask(SIG_BLOCK, &ttou, &saved);
    int rc = tcsetpgrp(STDIN_FILENO, getpgrp());
    sigprocmask(SIG_SETMASK, &saved, NULL);
    return rc;
}

pid_t supervise_spawn(char *const argv[])
{
    return supervise_spawn_announced(argv, -1);
}

pid_t supervise_spawn_announced(char *const argv[], int announce_fd)
{
    pid_t pid = fork();
    if (pid == 0)
        become_app(argv, announce_fd);
    if (pid > 0)
        setpgid(pid, pid); /* also in the parent: no race with the first forward */
    return pid;
}

/* Reap every child that has exited; returns 1 if `child` was among them.
 * *finisher (finisher may be NULL) becomes 0 once reaped: its pid may then
 * be another process's. */
static int reap_all(pid_t child, int *child_status, pid_t *finisher)
{
    int found = 0, status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == child) {
            *child_status = status;
            found = 1;
        }
        if (finisher && pid == *finisher)
            *finisher = 0;
    }
    return found;
}

static int has_children(void)
{
    siginfo_t info;
    memset(&info, 0, sizeof info);
    /* WNOWAIT: look without reaping. ECHILD means none is left at all. */
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == -1)
        return errno != ECHILD;
    return 1;
}

static size_t read_process_table(struct proc_entry **out);

/* Any child left other than spare (a helper that ends by itself)? */
static int has_children_besides(pid_t spare)
{
    if (spare <= 0 || !has_children())
        return has_children();
    struct proc_entry *t;
    size_t n = read_process_table(&t);
    pid_t self = getpid();
    int found = 0;
    for (size_t i = 0; i < n && !found; i++)
        found = t[i].ppid == self && t[i].pid != spare;
    free(t);
    return found;
}

static int by_pid(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return (x > y) - (x < y);
}

/* Every process's parent and group, from /proc; sorted by pid. */
static size_t read_process_table(struct proc_entry **out)
{
    size_t n = 0, cap = 256;
    struct proc_entry *t = malloc(cap * sizeof *t);
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (t && d && (e = readdir(d))) {
        char path[64], buf[512];
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "re");
        if (!f)
            continue; /* gone meanwhile */
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        /* The command name may hold spaces and parentheses: parse after the last ')'. */
        char *p = strrchr(buf, ')');
        int ppid, pgid;
        if (!p || sscanf(p + 1, " %*c %d %d", &ppid, &pgid) != 2)
            continue;
        if (n == cap) {
            struct proc_entry *grown = realloc(t, (cap *= 2) * sizeof *t);
            if (!grown)
                break;
            t = grown;
        }
        t[n++] = (struct proc_entry){pid, ppid, pgid};
    }
    if (d)
        closedir(d);
    if (t)
        qsort(t, n, sizeof *t, by_pid);
    *out = t;
    return t ? n : 0;
}

/* Outside PID 1, kill(-1) would reach the whole host: signal only the
 * processes whose ancestry leads to us, except members of skip_group (the
 * caller signals the group itself, once) and `except` (0: none). Returns
 * how many were signalled. */
static size_t signal_descendants(int sig, pid_t skip_group, pid_t except)
{
    struct proc_entry *t;
    size_t n = read_process_table(&t), signalled = 0;
    char *mine = calloc(n ? n : 1, 1);
    int changed = 1;
    pid_t self = getpid();
    while (mine && changed) { /* mark children of marked processes until nothing changes */
        changed = 0;
        for (size_t i = 0; i < n; i++) {
            if (mine[i])
                continue;
            struct proc_entry key = {t[i].ppid, 0, 0};
            struct proc_entry *parent = bsearch(&key, t, n, sizeof *t, by_pid);
            if (t[i].ppid == self || (parent && mine[parent - t])) {
                mine[i] = 1;
                changed = 1;
            }
        }
    }
    for (size_t i = 0; mine && i < n; i++) {
        if (mine[i] && t[i].pgid != skip_group && t[i].pid != except &&
            kill(t[i].pid, sig) == 0)
            signalled++;
    }
    free(mine);
    free(t);
    return signalled;
}

/* PID 1, leaving one process out, which kill(-1) cannot do: every other
 * process /proc lists (also those that entered the namespace from outside,
 * as kill(-1) reaches them). One forked meanwhile escapes this signal; the
 * SIGKILL at the grace, a kill(-1), takes it. Without /proc: kill(-1), the
 * one left out included. */
static void signal_namespace_but(int sig, pid_t except)
{
    struct proc_entry *t;
    size_t n = read_process_table(&t);
    if (n == 0)
        kill(-1, sig);
    for (size_t i = 0; i < n; i++)
        if (t[i].pid != 1 && t[i].pid != except)
            kill(t[i].pid, sig);
    free(t);
}

/* Everyone but bandage and `except` (0: none): the namespace when PID 1,
 * else the app's group (if group > 0) and every descendant; each process
 * exactly once. */
static void signal_everyone_left(pid_t group, int sig, pid_t except)
{
    if (getpid() == 1) {
        if (except > 0)
            signal_namespace_but(sig, except);
        else
            kill(-1, sig);
        return;
    }
    if (group <= 0) { /* no app group: kill(-0) would be bandage's own group */
        signal_descendants(sig, -1, except);
        return;
    }
    kill(-group, sig);
    signal_descendants(sig, group, except);
}

static void forward_signal(pid_t child, int forward_to, int sig)
{
    if (forward_to == FORWARD_GROUP && sig == SIGTERM) {
        /* Shutdown reaches daemons that left the group too (setsid). */
        signal_everyone_left(child, sig, 0);
        return;
    }
    if (forward_to == FORWARD_GROUP && kill(-child, sig) == 0)
        return;
    kill(child, sig); /* child mode, or the app left its group */
}

#define FINAL_REAP_MS 5000 /* after SIGKILL only an unkillable (D state) process stays */

/* The end of the grace a finisher does not get: time to stop cleanly once
 * SIGTERMed (a database query is cancelled and rolled back in a round trip
 * or two) rather than be SIGKILLed mid-work, its server session left to
 * notice the lost client by itself. */
#define FINISH_MARGIN_MS 1000

/* A finisher while the rest is stopped: SIGTERMed at stop_at. */
struct finishing {
    pid_t pid; /* 0: none, reaped, or already SIGTERMed */
    long stop_at;
    const char *name;
};

static void stop_finisher(struct finishing *f, const char *why)
{
    log_warn("%s (pid %d) %s; sending it SIGTERM", f->name, (int)f->pid, why);
    kill(f->pid, SIGTERM);
    f->pid = 0;
}

/* Reaps until no child but spare is left, or limit_ms passes; 0 when none
 * is. f (may be NULL): a finisher to SIGTERM at its time, or at once when a
 * stop signal comes to bandage meanwhile (the platform's stop outranks it). */
static int reap_until_none(int sfd, long limit_ms, pid_t spare, struct finishing *f)
{
    long deadline = monotonic_ms() + limit_ms;
    int status;
    while (has_children_besides(spare)) {
        long now = monotonic_ms(), left = deadline - now;
        if (left <= 0)
            return -1;
        if (f && f->pid > 0 && now >= f->stop_at) {
            stop_finisher(f, "is still running as the grace ends");
            continue;
        }
        if (f && f->pid > 0 && f->stop_at - now < left)
            left = f->stop_at - now;
        struct pollfd p = {.fd = sfd, .events = POLLIN};
        if (poll(&p, 1, (int)left) > 0) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) != sizeof si)
                continue;
            if (f && f->pid > 0 && (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT))
                stop_finisher(f, "is stopped with the rest: bandage got a stop signal");
        }
        reap_all(0, &status, f ? &f->pid : NULL);
    }
    return 0;
}

/* The finisher waited for after the child exited, if any: only when the
 * child exited by itself (stopped: bandage forwarded a SIGTERM/SIGINT; then
 * it is stopped with the rest, as is any helper) and a grace is left. */
static struct finishing finishing(const struct supervise_options *opt, pid_t finisher,
                                  int stopped)
{
    long margin = opt->grace_ms / 5 < FINISH_MARGIN_MS ? opt->grace_ms / 5 : FINISH_MARGIN_MS;
    long window = opt->grace_ms - margin;
    struct finishing f = {.pid = !stopped && window > 0 ? finisher : 0,
                          .stop_at = monotonic_ms() + window,
                          .name = opt->finisher_name ? opt->finisher_name : "a helper"};
    if (f.pid > 0)
        log_info("%s (pid %d) may finish: it gets up to %ld ms", f.name, (int)f.pid, window);
    return f;
}

/* After the child exited: stop everyone left, SIGKILL after grace, reap.
 * kill_at >= 0: everyone already had SIGTERM (forwarded in group mode) and
 * gets SIGKILL at that time, not a second SIGTERM and a new grace (stopped
 * is then set too). The finisher (0: none) is left out of the SIGTERM after
 * an exit of the app's own: a one-shot job, or a crash, does not cut its
 * work short. */
static void stop_the_rest(int sfd, pid_t group, const struct supervise_options *opt,
                          long kill_at, int stopped, pid_t finisher)
{
    /* Every process in a namespace descends from its PID 1, and orphans come
     * to a subreaper: no child left means nobody is left to stop. */
    if (!has_children_besides(opt->spare))
        return;
    long grace_ms = opt->grace_ms, wait_ms = grace_ms;
    struct finishing f = finishing(opt, finisher, stopped);
    if (kill_at >= 0)
        wait_ms = kill_at > monotonic_ms() ? kill_at - monotonic_ms() : 0;
    else
        signal_everyone_left(group, SIGTERM, f.pid);
    if (reap_until_none(sfd, wait_ms, opt->spare, &f) == 0)
        return;
    log_warn("processes still running %ld ms after the app exited; sending SIGKILL", grace_ms);
    signal_everyone_left(group, SIGKILL, 0);
    if (reap_until_none(sfd, FINAL_REAP_MS, opt->spare, NULL) != 0)
        log_warn("a process survived SIGKILL for %d ms (uninterruptible sleep?); exiting anyway",
                 FINAL_REAP_MS);
}

void supervise_wait_all(pid_t group, long timeout_ms)
{
    int sfd = supervise_signalfd();
    if (sfd < 0 || reap_until_none(sfd, timeout_ms, 0, NULL) != 0) {
        signal_everyone_left(group, SIGKILL, 0);
        if (sfd >= 0)
            reap_until_none(sfd, FINAL_REAP_MS, 0, NULL);
    }
    if (sfd >= 0)
        close(sfd);
}

int supervise_child(pid_t child, const struct supervise_options *opt, int *stop_signal)
{
    int status;
    return supervise_child_status(child, opt, stop_signal, &status);
}

/* The sooner of two deadlines (monotonic ms, -1: none). */
static long earliest(long a, long b)
{
    return a < 0 ? b : b < 0 || a < b ? a : b;
}

/* poll's timeout until `deadline` (-1: none, wait for an event). */
static int poll_timeout(long deadline)
{
    if (deadline < 0)
        return -1;
    long left = deadline - monotonic_ms();
    return left > 0 ? (int)left : 0;
}

int supervise_child_status(pid_t child, const struct supervise_options *opt, int *stop_signal,
                           int *status_out)
{
    int sfd = supervise_signalfd();
    long kill_at = -1, term_broadcast_kill_at = -1;
    int status = 0, stopped = 0;
    pid_t finisher = opt->finisher;

    if (stop_signal)
        *stop_signal = 0;
    if (sfd < 0) {
        log_error("signalfd: %s", strerror(errno));
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
        *status_out = status;
        return EXIT_INTERNAL;
    }
    long settle_at = opt->settled ? monotonic_ms() + opt->settle_ms : -1;
    for (;;) {
        if (reap_all(child, &status, &finisher))
            break;
        struct pollfd p = {.fd = sfd, .events = POLLIN};
        /* no periodic wake-ups while the app runs: at most these two */
        int ready = poll(&p, 1, poll_timeout(earliest(kill_at, settle_at)));
        if (ready == 0) { /* a deadline (or a little before: then poll again) */
            long now = monotonic_ms();
            if (settle_at >= 0 && now >= settle_at) {
                opt->settled();
                settle_at = -1;
            }
            if (kill_at >= 0 && now >= kill_at) {
                log_warn("%s still running %ld ms after the stop signal; sending SIGKILL",
                         opt->name ? opt->name : "app", opt->grace_ms);
                kill(-child, SIGKILL);
                kill(child, SIGKILL);
                kill_at = -1;
            }
            continue;
        }
        struct signalfd_siginfo si;
        if (ready < 0 || read(sfd, &si, sizeof si) != sizeof si)
            continue;
        int sig = (int)si.ssi_signo;
        if (sig == SIGCHLD)
            continue; /* reaped at the top of the loop */
        log_debug("forwarding signal %d (%s)", sig, strsignal(sig));
        forward_signal(child, opt->forward_to, sig);
        stopped |= sig == SIGTERM || sig == SIGINT;
        if ((sig == SIGTERM || sig == SIGINT) && kill_at < 0) {
            kill_at = monotonic_ms() + opt->grace_ms;
            if (stop_signal)
                *stop_signal = sig;
        }
        if (sig == SIGTERM && opt->forward_to == FORWARD_GROUP && term_broadcast_kill_at < 0)
            term_broadcast_kill_at = kill_at;
    }
    if (opt->cleanup)
        stop_the_rest(sfd, child, opt, term_broadcast_kill_at, stopped, finisher);
    close(sfd);
    *status_out = status;
    return exit_code_from_status(status);
}
