#include "lockretry.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "progress.h"

static long attempt_ms(int attempt, long left)
{
    long ms = LOCK_ATTEMPT_FIRST_MS + (long)(attempt - 1) * LOCK_ATTEMPT_STEP_MS;
    if (ms > LOCK_ATTEMPT_CAP_MS)
        ms = LOCK_ATTEMPT_CAP_MS;
    return ms < left ? ms : (left > 1 ? left : 1);
}

/* 50-150 ms, uniform, different in each replica (several may retry at once). */
static long pause_ms(unsigned int *seed)
{
    return LOCK_PAUSE_MIN_MS + (long)(rand_r(seed) % (LOCK_PAUSE_SPREAD_MS + 1));
}

/* "migration 20240102_add_index, attempt 12 at its locks (at line 3, a lock
 * it needs was held by another session)". */
static void describe_retry(const struct progress *p, long now, char *out, size_t len)
{
    const struct lock_retry *r = p->ctx;
    (void)now;
    snprintf(out, len, "%s, attempt %ld at its locks (at %s, a lock it needs was held by "
             "another session)", r->name, p->done, r->where);
}

static int retry_until_locked(struct lock_retry *r, struct progress *retries)
{
    long deadline = retries->start_ms + r->lock_wait_ms;
    unsigned int seed = (unsigned int)retries->start_ms ^ (unsigned int)getpid();
    for (int attempt = 1;; attempt++) {
        if (attempt > 1)
            progress_step(retries, attempt);
        r->attempts = attempt;
        int rc = session_set_lock_timeout(r->s, attempt_ms(attempt, deadline - monotonic_ms()));
        if (rc == 0)
            rc = r->attempt(r->ctx, r->where, sizeof r->where);
        if (rc != LOCK_MISSED || monotonic_ms() >= deadline)
            return rc;
        if (attempt == 1) { /* the retries' progress starts with the first miss */
            progress_begin(retries, "lock-retry", -1, retries->start_ms, describe_retry, r);
            retries->done = 1;
            log_info("%s: a lock it needs at %s is held by another session; rolled back, "
                     "trying again in attempts of at most %d ms for up to %ld ms (--lock-wait), "
                     "so that the app's queries never queue behind it longer", r->name, r->where,
                     LOCK_ATTEMPT_CAP_MS, r->lock_wait_ms);
        }
        if ((rc = session_pause(r->s, pause_ms(&seed), "waiting to retry a migration")))
            return rc;
    }
}

int lock_retry_run(struct lock_retry *r)
{
    long started = monotonic_ms();
    struct progress retries = {.start_ms = started, .ctx = r}; /* begun at the first miss */
    int rc = retry_until_locked(r, &retries);
    progress_end(&retries);
    if (rc == 0 && retries.done > 1)
        log_info("%s got its locks at attempt %ld, %ld ms after the first", r->name,
                 retries.done, monotonic_ms() - started);
    if (rc == 0)
        rc = session_set_lock_timeout(r->s, r->lock_wait_ms);
    return rc;
}
