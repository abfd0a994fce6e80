/* Short lock attempts, retried (DESIGN.md, "Migrations that never stall the
 * app"; GitLab's with_lock_retries, pgroll's short lock_timeout): a DDL
 * statement waiting for its table's lock queues every query of the app on
 * that table behind it, so each attempt of an all-or-nothing transaction
 * waits at most LOCK_ATTEMPT_CAP_MS for a lock. A miss rolls the
 * transaction back (nothing applied), pauses with jitter so that the
 * blocking transaction can end, and tries again until --lock-wait is spent.
 * Unlike GitLab's helper, no last attempt without a timeout: the app comes
 * first. Used by the migrations of either format (migrate.c, prisma8_apply.c). */
#ifndef BANDAGE_LOCKRETRY_H
#define BANDAGE_LOCKRETRY_H

#include <stddef.h>

#include "session.h"

/* 100 ms, 50 ms more each time, at most 200 ms; 50-150 ms between two.
 * The app's query queued behind a missed attempt waits the attempt plus
 * the server's own time to cancel it and grant the next lock (about 2 ms
 * quiet, bench/stall_rows.py): the cap leaves room under the 250 ms goal. */
#define LOCK_ATTEMPT_FIRST_MS 100
#define LOCK_ATTEMPT_STEP_MS 50
#define LOCK_ATTEMPT_CAP_MS 200
#define LOCK_PAUSE_MIN_MS 50
#define LOCK_PAUSE_SPREAD_MS 100

/* An attempt's answer when a lock was not free within its lock_timeout
 * (55P03): rolled back, nothing applied, try again. */
#define LOCK_MISSED (-2)

/* The sessions that may hold what a migration's statement waited for. Once
 * the statement is cancelled its lock request is gone (pg_blocking_pids() of
 * bandage's session is empty) and the server does not say which relation it
 * wanted; so every other session of this database whose open transaction
 * holds a lock on a relation of the migration's schema is named: a superset
 * of the blockers (a reader in an open transaction blocks ALTER TABLE), small
 * in practice, and it names the one to end. $1: the schema. */
#define SCHEMA_LOCK_HOLDERS_SQL                                                                  \
    "SELECT l.pid FROM pg_catalog.pg_locks l"                                                   \
    " JOIN pg_catalog.pg_class k ON k.oid = l.relation"                                         \
    " JOIN pg_catalog.pg_namespace n ON n.oid = k.relnamespace"                                 \
    " JOIN pg_catalog.pg_stat_activity s ON s.pid = l.pid"                                      \
    " WHERE l.locktype = 'relation' AND l.granted AND n.nspname = $1"                           \
    " AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d"                             \
    "                   WHERE d.datname = pg_catalog.current_database())"                       \
    " AND l.pid <> pg_catalog.pg_backend_pid() AND s.xact_start IS NOT NULL"

/* One all-or-nothing attempt, run with the attempt's lock_timeout: 0 when
 * it committed, LOCK_MISSED when a lock was not free in time and it rolled
 * back (`where` then says at which statement: "line 3"), else an exit code. */
typedef int (*lock_attempt_fn)(void *ctx, char *where, size_t wherelen);

struct lock_retry {
    struct session *s;
    long lock_wait_ms;     /* --lock-wait: all the attempts together */
    const char *name;      /* what is retried, for the log: "migration 2024_add_index" */
    lock_attempt_fn attempt;
    void *ctx;
    int attempts;          /* out: how many were made */
    char where[200];       /* out: where the last miss was */
};

/* Runs the attempts; the session's lock_timeout is --lock-wait again after
 * a success. 0, the attempt's exit code, or LOCK_MISSED once --lock-wait is
 * spent (the caller says so, with what it knows of the statement, and
 * names the sessions in the way with SCHEMA_LOCK_HOLDERS_SQL). */
int lock_retry_run(struct lock_retry *r);

#endif
