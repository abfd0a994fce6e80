/* PID 1: spawn the app, forward signals, reap every child, grace-kill, and
 * turn the app's wait status into bandage's exit code. */
#ifndef BANDAGE_SUPERVISE_H
#define BANDAGE_SUPERVISE_H

#include <signal.h>
#include <sys/types.h>

struct supervise_options {
    int forward_to;  /* enum forward_mode */
    long grace_ms;   /* SIGTERM/SIGINT forwarded → SIGKILL this much later */
    int cleanup;     /* when the child exits, stop what is left (PID 1 duties) */
    pid_t spare;     /* cleanup does not wait for this helper (0: none): it ends by itself */
    const char *name; /* what the child is, in log lines ("the database worker"); NULL: "app" */
    void (*settled)(void); /* called once when the child has run settle_ms (NULL: never) */
    long settle_ms;
    /* A helper of bandage's own with work worth finishing (0: none), and
     * what it is, for the log. When the child exits by itself, cleanup
     * leaves it out of the SIGTERM to what is left and waits for it until a
     * little before grace_ms ends, then SIGTERMs it (time to stop cleanly
     * before the SIGKILL at grace_ms). A stop of bandage's own (SIGTERM or
     * SIGINT) gives it nothing more: it is stopped as any leftover is, and
     * at once if the stop comes while it finishes. */
    pid_t finisher;
    const char *finisher_name;
};

/* Block every signal so that none is lost before a signalfd reads it; call
 * once, first thing. When not PID 1, also become a child subreaper so that
 * orphans are re-parented to bandage and reaped by it. */
int supervise_init(void);

/* Opens a signalfd for every blockable signal (O_CLOEXEC, blocking). */
int supervise_signalfd(void);

/* fork + exec argv (PATH lookup) in a new process group with a clean signal
 * mask and default dispositions; the group gets the terminal when stdin is
 * one. Returns the pid, or -1 if fork failed. exec failure: the child exits
 * 127 (not found) or 126 (not executable) after saying why. */
pid_t supervise_spawn(char *const argv[]);

/* Like supervise_spawn; the child also writes its pid (its group's id) to
 * announce_fd before the exec, so that a keeper (keeper.h) knows the group
 * before the command can start anything. If that write fails, the child
 * exits 70 (EXIT_INTERNAL) without running argv. */
pid_t supervise_spawn_announced(char *const argv[], int announce_fd);

/* Is stdin a terminal whose foreground process group is the caller's? */
int supervise_holds_terminal(void);

/* Makes the caller's process group the foreground group of the terminal on
 * stdin again (after a child's group had it); 0, or -1 with errno. */
int supervise_take_terminal(void);

/* Supervise the already spawned child until it exits; returns its exit code
 * (its status, or 128+N if it died of signal N). With cleanup set, what is
 * left of its process group, and when PID 1 every process in the namespace
 * (else every descendant), gets SIGTERM, then SIGKILL after grace_ms (the
 * finisher: see struct supervise_options).
 * stop_signal (may be NULL) receives the SIGTERM/SIGINT forwarded, or 0. */
int supervise_child(pid_t child, const struct supervise_options *opt, int *stop_signal);

/* Like supervise_child; *status receives the child's raw wait status. */
int supervise_child_status(pid_t child, const struct supervise_options *opt, int *stop_signal,
                           int *status);

/* At the end: reaps every child left (bandage's own helpers) for up to
 * timeout_ms, then SIGKILLs what remains (the namespace when PID 1, else
 * group and descendants). Signals that arrive are not forwarded. */
void supervise_wait_all(pid_t group, long timeout_ms);

/* Exit code for a wait status: WEXITSTATUS, or 128+N for signal N. */
int exit_code_from_status(int wstatus);

/* In a forked child: restore every disposition to default and unblock all. */
void supervise_reset_signals(void);

#endif
