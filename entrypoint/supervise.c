#include "supervise.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

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
    return 70;
}

void supervise_reset_signals(void)
{
    sigset_t none;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL); /* fails harmlessly for glibc-reserved signals */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Runs in the child between fork and exec. */
static void become_app(char *const argv[])
{
    setpgid(0, 0);
    /* An app in a background group would stop on SIGTTIN when reading the
     * terminal (tini #19): hand the terminal over if we have it. Signals are
     * still blocked here, so SIGTTOU cannot stop us. */
    if (isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgid(getppid()))
        tcsetpgrp(STDIN_FILENO, getpid());
    supervise_reset_signals();
    execvp(argv[0], argv);
    int err = errno;
    log_error("cannot run '%s': %s", argv[0], strerror(err));
    _exit(err == ENOENT || err == ENOTDIR ? 127 : 126);
}

pid_t supervise_spawn(char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0)
        become_app(argv);
    if (pid > 0)
        setpgid(pid, pid); /* also in the parent: no race with the first forward */
    return pid;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Reap every child that has exited; returns 1 if `child` was among them. */
static int reap_all(pid_t child, int *child_status)
{
    int found = 0, status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == child) {
            *child_status = status;
            found = 1;
        }
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

static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: parse after the last ')'. */
    char *p = strrchr(buf, ')');
    int ppid;
    if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
        return -1;
    return ppid;
}

/* Outside PID 1, kill(-1) would reach the whole host: signal only the
 * processes whose ancestry leads to us. Repeats until a pass finds no new one. */
static void signal_descendants(int sig)
{
    pid_t known[4096];
    size_t count = 0, before;
    known[count++] = getpid();
    do {
        before = count;
        DIR *d = opendir("/proc");
        if (!d)
            return;
        struct dirent *e;
        while ((e = readdir(d)) && count < sizeof known / sizeof known[0]) {
            pid_t pid = (pid_t)atoi(e->d_name);
            if (pid <= 0)
                continue;
            pid_t ppid = parent_of(pid);
            int is_known = 0, parent_known = 0;
            for (size_t i = 0; i < count; i++) {
                is_known |= known[i] == pid;
                parent_known |= known[i] == ppid;
            }
            if (parent_known && !is_known) {
                known[count++] = pid;
                kill(pid, sig);
            }
        }
        closedir(d);
    } while (count != before);
}

static void signal_everyone_left(pid_t group, int sig)
{
    kill(-group, sig);
    if (getpid() == 1)
        kill(-1, sig);
    else
        signal_descendants(sig);
}

static void forward_signal(pid_t child, int forward_to, int sig)
{
    if (forward_to == FORWARD_GROUP && kill(-child, sig) == 0)
        return;
    kill(child, sig); /* child mode, or the app left its group */
}

/* After the child exited: stop everyone left, SIGKILL after grace, reap. */
static void stop_the_rest(int sfd, pid_t group, long grace_ms)
{
    /* Every process in a namespace descends from its PID 1, and orphans come
     * to a subreaper: no child left means nobody is left to stop. */
    if (!has_children())
        return;
    signal_everyone_left(group, SIGTERM);
    long deadline = now_ms() + grace_ms;
    int status;
    while (has_children()) {
        long left = deadline - now_ms();
        if (left <= 0) {
            log_warn("processes still running %ld ms after the app exited; sending SIGKILL",
                     grace_ms);
            signal_everyone_left(group, SIGKILL);
            while (waitpid(-1, &status, 0) > 0)
                ;
            return;
        }
        struct pollfd p = {.fd = sfd, .events = POLLIN};
        if (poll(&p, 1, (int)left) > 0) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) != sizeof si)
                continue;
        }
        reap_all(0, &status);
    }
}

void supervise_wait_helper(pid_t pid, long timeout_ms)
{
    int sfd = supervise_signalfd(), status;
    long deadline = now_ms() + timeout_ms;
    pid_t got;
    while ((got = waitpid(pid, &status, WNOHANG)) == 0) {
        long left = deadline - now_ms();
        struct pollfd p = {.fd = sfd, .events = POLLIN};
        if (sfd < 0 || left <= 0 || poll(&p, 1, (int)left) <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        struct signalfd_siginfo si;
        if (read(sfd, &si, sizeof si) == sizeof si && si.ssi_signo == SIGCHLD)
            reap_all(pid, &status); /* others that exited; pid itself is caught above */
    }
    if (sfd >= 0)
        close(sfd);
}

int supervise_child(pid_t child, const struct supervise_options *opt, int *stop_signal)
{
    int status;
    return supervise_child_status(child, opt, stop_signal, &status);
}

int supervise_child_status(pid_t child, const struct supervise_options *opt, int *stop_signal,
                           int *status_out)
{
    int sfd = supervise_signalfd();
    long kill_at = -1;
    int status = 0;

    if (stop_signal)
        *stop_signal = 0;
    if (sfd < 0) {
        log_error("signalfd: %s", strerror(errno));
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
        *status_out = status;
        return 70;
    }
    for (;;) {
        if (reap_all(child, &status))
            break;
        int timeout = -1; /* no periodic wake-ups while the app runs */
        if (kill_at >= 0)
            timeout = kill_at > now_ms() ? (int)(kill_at - now_ms()) : 0;
        struct pollfd p = {.fd = sfd, .events = POLLIN};
        int ready = poll(&p, 1, timeout);
        if (ready == 0) {
            log_warn("app still running %ld ms after the stop signal; sending SIGKILL",
                     opt->grace_ms);
            kill(-child, SIGKILL);
            kill(child, SIGKILL);
            kill_at = -1;
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
        if ((sig == SIGTERM || sig == SIGINT) && kill_at < 0) {
            kill_at = now_ms() + opt->grace_ms;
            if (stop_signal)
                *stop_signal = sig;
        }
    }
    if (opt->cleanup)
        stop_the_rest(sfd, child, opt->grace_ms);
    close(sfd);
    *status_out = status;
    return exit_code_from_status(status);
}
