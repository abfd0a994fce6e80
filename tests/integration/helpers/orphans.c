/* orphans: make orphaned grandchildren for bandage's reaping tests.
 *
 *   orphans live N PPID    clone N children that each wait until this process
 *                          has exited and they have been re-parented (the
 *                          kernel sends PR_SET_PDEATHSIG's signal after it has
 *                          changed the parent; EOF on a pipe would come too
 *                          early, descriptors close before re-parenting), then
 *                          write one byte to stdout, 'y' if their new parent is
 *                          PPID (bandage, as seen from inside its namespace) or
 *                          'n', and exit. Stdout reaches EOF once all are gone.
 *   orphans idle N PPID [setsid|group] [TERMFILE] [exit|stay]
 *                          like live, but after writing its byte each child
 *                          closes stdout and waits for a signal: N leftover
 *                          processes. SIGTERM makes one append a line with its
 *                          pid to TERMFILE (if given: the file says which got
 *                          SIGTERM, how often), then exit ("exit", the default)
 *                          or carry on ("stay": only SIGKILL ends it). With
 *                          "setsid", they are in a session (and process group)
 *                          of their own, out of reach of a kill(-app's group).
 *   orphans zombie N       clone N children that exit at once; wait until all
 *                          N are zombies (waitid WNOWAIT), then exit: the N
 *                          zombies go to the subreaper / PID 1 in one step, and
 *                          one coalesced SIGCHLD must get them all reaped.
 *
 * The children share this process's memory (CLONE_VM, no CLONE_THREAD): each
 * is a real process with its own pid, parent and exit status, but creating one
 * costs no page-table copy, so 2,000 take a fraction of a second even where
 * fork() costs milliseconds. The harness compiles this file with cc. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define STACK_SIZE (64 * 1024)

static pid_t creator, expected_parent;
static int stay, survive_term, term_fd = -1;

static void on_term(int sig)
{
    (void)sig;
    char line[16], *p = line + sizeof line;
    unsigned pid = (unsigned)getpid();
    *--p = '\n';
    do
        *--p = (char)('0' + pid % 10);
    while ((pid /= 10) > 0);
    if (term_fd >= 0 && write(term_fd, p, (size_t)(line + sizeof line - p)) < 0)
        _exit(1);
    if (!survive_term)
        _exit(0);
}
static sigset_t orphaned_signal;

static int live_child(void *arg)
{
    (void)arg;
    char c;
    int sig;
    /* SIGUSR1 is blocked (inherited from the creator): it waits for sigwait. */
    if (prctl(PR_SET_PDEATHSIG, SIGUSR1) != 0)
        _exit(1);
    if (getppid() == creator) /* else the creator is gone already */
        sigwait(&orphaned_signal, &sig);
    c = getppid() == expected_parent ? 'y' : 'n';
    if (write(STDOUT_FILENO, &c, 1) != 1)
        _exit(1);
    if (stay) {
        /* SIGUSR1 stays blocked: when the creator was gone before the check
         * above, its death signal is still pending, and unblocking it here
         * would kill this leftover silently before bandage's SIGTERM. */
        sigset_t keep_usr1_blocked;
        sigemptyset(&keep_usr1_blocked);
        sigaddset(&keep_usr1_blocked, SIGUSR1);
        close(STDOUT_FILENO);
        for (;;)
            sigsuspend(&keep_usr1_blocked);
    }
    _exit(0);
}

static int quick_child(void *arg)
{
    (void)arg;
    _exit(0);
}

int main(int argc, char **argv)
{
    stay = argc > 1 && strcmp(argv[1], "idle") == 0;
    int live = stay || (argc > 1 && strcmp(argv[1], "live") == 0);
    if (argc < 3 || (live && argc < 4)) {
        fprintf(stderr, "usage: orphans live|idle N PPID [setsid] | orphans zombie N\n");
        return 2;
    }
    if (argc > 4 && strcmp(argv[4], "setsid") == 0 && setsid() < 0) {
        perror("orphans: setsid");
        return 2;
    }
    survive_term = argc > 6 && strcmp(argv[6], "stay") == 0;
    if (stay && argc > 5) {
        term_fd = open(argv[5], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_term;
        if (term_fd < 0 || sigaction(SIGTERM, &sa, NULL) != 0) {
            perror("orphans: TERMFILE");
            return 2;
        }
    }
    long n = strtol(argv[2], NULL, 10);
    if (live)
        expected_parent = (pid_t)strtol(argv[3], NULL, 10);
    if (n <= 0)
        return 2;
    creator = getpid();
    sigemptyset(&orphaned_signal);
    sigaddset(&orphaned_signal, SIGUSR1);
    sigprocmask(SIG_BLOCK, &orphaned_signal, NULL);
    char *stacks = mmap(NULL, (size_t)n * STACK_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    pid_t *pids = calloc((size_t)n, sizeof *pids);
    if (stacks == MAP_FAILED || !pids)
        return 2;
    for (long i = 0; i < n; i++) {
        char *top = stacks + (size_t)(i + 1) * STACK_SIZE;
        pids[i] = clone(live ? live_child : quick_child, top, CLONE_VM | SIGCHLD, NULL);
        if (pids[i] < 0) {
            perror("orphans: clone");
            return 3;
        }
    }
    if (!live) {
        for (long i = 0; i < n; i++) {
            siginfo_t si;
            if (waitid(P_PID, (id_t)pids[i], &si, WEXITED | WNOWAIT) != 0) {
                perror("orphans: waitid");
                return 3;
            }
        }
    }
    /* Exit without reaping: the children become orphans (or orphaned zombies). */
    _exit(0);
}
