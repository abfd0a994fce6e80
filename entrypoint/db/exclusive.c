#include "exclusive.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "exitcodes.h"
#include "log.h"
#include "progress.h"

/* A peer bandage waits for the advisory lock $1 (a bigint key is shown in
 * pg_locks as classid = high 32 bits, objid = low 32 bits, objsubid = 1). */
static const char terminate_sql[] =
    "SELECT count(*) FILTER (WHERE t) FROM (SELECT pg_terminate_backend(a.pid, 5000) AS t"
    "  FROM pg_stat_activity a WHERE a.datname = current_database()"
    "   AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'"
    "   AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid"
    "        AND l.locktype = 'advisory' AND NOT l.granted AND l.objsubid = 1"
    "        AND l.classid = ($1::bigint >> 32)::oid"
    "        AND l.objid = ($1::bigint & 4294967295)::oid)"
    "   AND ((SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
    "        OR (pg_has_role(a.usesysid, 'MEMBER') OR pg_has_role('pg_signal_backend', 'MEMBER'))"
    "           AND NOT (SELECT rolsuper FROM pg_roles WHERE oid = a.usesysid))) x";

int exclusive_terminate_others(struct session *s, const char *lock_key, int quiet)
{
    const char *params[] = {lock_key};
    int rc;
    PGresult *res = session_query(s, terminate_sql, 1, params, "terminating other sessions", &rc);
    if (!res)
        return rc;
    if (quiet)
        log_debug("terminated %s other session(s)", PQgetvalue(res, 0, 0));
    else
        log_info("terminated %s other session(s)", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

static const char lock_statement_sql[] =
    "SELECT format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE NOWAIT',"
    "              string_agg(c.oid::regclass::text, ', ' ORDER BY c.oid))"
    "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = ANY (string_to_array($1, ',')) AND c.relkind IN ('r', 'p', 'v')"
    " HAVING count(*) > 0";

/* Who holds a lock on one of the tables, for the message. */
static void log_lock_holder(struct session *s, const char *schemas)
{
    const char *params[] = {schemas};
    int rc;
    PGresult *res = session_query(
        s, "SELECT l.relation::regclass::text, l.pid, coalesce(a.usename, '?'),"
           "       coalesce(a.application_name, '')"
           "  FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
           "  JOIN pg_namespace n ON n.oid = c.relnamespace"
           "  LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
           " WHERE l.granted AND l.pid <> pg_backend_pid()"
           "   AND n.nspname = ANY (string_to_array($1, ',')) LIMIT 1",
        1, params, "finding who holds the lock", &rc);
    if (res && PQntuples(res) > 0)
        log_error("table %s is locked by server process %s (user %s, application '%s'), which "
                  "bandage may not terminate; stop it, or connect as a role that may "
                  "(pg_signal_backend), then deploy again", PQgetvalue(res, 0, 0),
                  PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
    PQclear(res);
}

/* 20-50 ms between two attempts at the table locks. */
static long pause_ms(void)
{
    return 20 + (monotonic_ms() ^ (long)getpid()) % 31;
}

/* "attempt 12 at the tables of public, up to 10000 ms: another session
 * holds a lock on one of them". */
static void describe_attempts(const struct progress *p, long now, char *out, size_t len)
{
    (void)now;
    snprintf(out, len, "attempt %ld at the tables of %s: another session holds a lock on one of "
             "them", p->done, (const char *)p->ctx);
}

static int lock_attempts(struct session *s, const char *schemas, const char *lock_key,
                         const char *lock_sql, long deadline, struct progress *p);

int exclusive_lock_tables(struct session *s, const char *schemas, const char *lock_key,
                          long wait_ms)
{
    const char *params[] = {schemas};
    int rc;
    PGresult *res = session_query(s, lock_statement_sql, 1, params, "listing tables to lock", &rc);
    if (!res || PQntuples(res) == 0) {
        PQclear(res);
        return rc;
    }
    struct progress p;
    progress_begin(&p, "table-locks", -1, 0, describe_attempts, (void *)schemas);
    rc = lock_attempts(s, schemas, lock_key, PQgetvalue(res, 0, 0), p.start_ms + wait_ms, &p);
    progress_end(&p);
    if (rc == 0)
        log_debug("locked the tables in %ld attempt(s)", p.done);
    PQclear(res);
    return rc;
}

/* NOWAIT attempts, until they succeed or the deadline passes. */
static int lock_attempts(struct session *s, const char *schemas, const char *lock_key,
                         const char *lock_sql, long deadline, struct progress *p)
{
    long attempts = 0;
    int rc = session_run(s, "SAVEPOINT bandage_locks", "SAVEPOINT", EXIT_INTERNAL);
    while (rc == 0) {
        struct db_error err;
        progress_step(p, ++attempts);
        if (db_run(s->conn, s->sfd, lock_sql, &err) == 0)
            break;
        if (strcmp(err.sqlstate, SQLSTATE_LOCK_NOT_AVAILABLE) != 0 || err.stop_signal) {
            rc = session_failed(s, "locking the tables", &err, EXIT_SCHEMA);
            break;
        }
        if ((rc = session_run(s, "ROLLBACK TO SAVEPOINT bandage_locks", "ROLLBACK TO SAVEPOINT",
                              EXIT_INTERNAL)) != 0)
            break;
        if (monotonic_ms() >= deadline) {
            log_lock_holder(s, schemas);
            rc = session_failed(s, "locking the tables", &err, EXIT_UNAVAILABLE);
            break;
        }
        if ((rc = session_pause(s, pause_ms(), "taking the table locks")) == 0)
            rc = exclusive_terminate_others(s, lock_key, 1);
    }
    return rc;
}
