/* Progress lines for long work: a phase that runs past the interval (2 s)
 * logs how far it has got, at most one line per interval across all phases,
 * and none for work that ends sooner. Each line is worked out from what the
 * caller already knows: reporting never costs a round trip to the server. */
#ifndef BANDAGE_PROGRESS_H
#define BANDAGE_PROGRESS_H

#include <stddef.h>

#define PROGRESS_INTERVAL_MS 2000

struct progress;

/* The text of a line after "phase: ", e.g. "400 of 10000 statements"; `now`
 * on the monotonic clock, for "line 12, running for 4.0 s". */
typedef void (*progress_describe_fn)(const struct progress *p, long now, char *out,
                                     size_t len);

struct progress {
    const char *phase;   /* a stable name: "reset-build", "migrations", "wait"... */
    long done, total;    /* total < 0: not known (no estimate then) */
    long start_ms;       /* the phase's start */
    long step_ms;        /* the current step's start (a statement, an attempt) */
    long last_ms;        /* the last line of this phase, or its start */
    progress_describe_fn describe;
    void *ctx;           /* the describer's */
    struct progress *outer; /* the phase that was current before this one */
};

/* The interval: PROGRESS_INTERVAL_MS, or BANDAGE_PROGRESS_INTERVAL_MS (read
 * once; a test and tuning knob, at least 10 ms). */
long progress_interval_ms(void);

/* Starts `p` at `start_ms` (the monotonic clock; 0: now) and makes it the
 * current phase, the one ticked while the database is waited for. */
void progress_begin(struct progress *p, const char *phase, long total, long start_ms,
                    progress_describe_fn describe, void *ctx);

/* Ends `p`; the phase current before it is current again. */
void progress_end(struct progress *p);

/* A new step (a statement, a batch, an attempt): done is `done` now. Logs a
 * line when one is due. One read of the monotonic clock. */
void progress_step(struct progress *p, long done);

/* How long the current step has run at `now`, once that is at least an
 * interval (a statement that long is named in the line), else -1. */
long progress_long_step_ms(const struct progress *p, long now);

/* Logs a line for `p` if one is due at `now`; 1 when it did. */
int progress_tick(struct progress *p, long now);

/* Milliseconds from `now` until the current phase's next line is due, or -1
 * without a current phase: db_wait wakes up then and calls
 * progress_tick_current(). */
long progress_due_in(long now);
void progress_tick_current(long now);

/* The estimate of what is left from the pace so far, or -1 (nothing done
 * yet, or no total). */
long progress_eta_ms(long done, long total, long elapsed_ms);

#endif
