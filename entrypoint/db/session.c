#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exitcodes.h"
#include "log.h"
#include "progress.h"

int session_failed(struct session *s, const char *what, const struct db_error *err, int code)
{
    if (err->connection_lost && !err->silent && s->backend_pid == 0 &&
        PQstatus(s->conn) != CONNECTION_OK) {
        /* Before the lock, ended by the server (another start's reset ends
         * the sessions it finds): the caller reconnects (RESET_RECONNECT),
         * quietly. A server gone silent is not reconnected to: each attempt
         * would wait the whole --wait-timeout over a dead link. */
        log_debug("%s: the connection was ended (%s)", what, err->message);
        return EXIT_UNAVAILABLE;
    }
    const char *phase = s->phase ? s->phase : "reset";
    if (err->connection_lost)
        s->lost_silently = err->silent;
    if (err->stop_signal) {
        log_warn("%s: stopped by signal %d; rolled back", what, err->stop_signal);
        report_add_error(s->report, phase, "signal", "stopped by signal %d during %s",
                         err->stop_signal, what);
        return 128 + err->stop_signal;
    }
    if (err->connection_lost || strcmp(err->sqlstate, SQLSTATE_LOCK_NOT_AVAILABLE) == 0)
        code = EXIT_UNAVAILABLE;
    log_error("%s failed: %s%s%s", what, err->sqlstate, err->sqlstate[0] ? ": " : "",
              err->message);
    report_add_error(s->report, phase, err->sqlstate[0] ? err->sqlstate : "connection",
                     "%s: %s", what, err->message);
    return code;
}

int session_run(struct session *s, const char *sql, const char *what, int code)
{
    struct db_error err;
    if (db_run(s->conn, s->sfd, sql, &err) == 0)
        return 0;
    return session_failed(s, what, &err, code);
}

PGresult *session_query(struct session *s, const char *sql, int nparams,
                        const char *const *params, const char *what, int *rc)
{
    struct db_error err;
    PGresult *res = db_exec(s->conn, s->sfd, sql, nparams, params, &err);
    *rc = res ? 0 : session_failed(s, what, &err, EXIT_SCHEMA);
    return res;
}

int session_bool(struct session *s, const char *sql, const char *param, const char *what,
                 int *value)
{
    const char *params[] = {param};
    int rc;
    PGresult *res = session_query(s, sql, param ? 1 : 0, params, what, &rc);
    if (!res)
        return rc;
    *value = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return 0;
}

/* "waiting for the reset lock: another start holds it". */
static void describe_lock_wait(const struct progress *p, long now, char *out, size_t len)
{
    (void)now;
    snprintf(out, len, "%s: another start holds it", (const char *)p->ctx);
}

int session_lock(struct session *s, const char *key, const char *what)
{
    const char *params[] = {key};
    int rc;
    struct progress p;
    log_debug("taking the lock pg_advisory_lock(%s)", key);
    progress_begin(&p, "lock-wait", -1, 0, describe_lock_wait, (void *)what);
    PGresult *res = session_query(s, "SELECT pg_catalog.pg_backend_pid()"
                                     " FROM pg_catalog.pg_advisory_lock($1::bigint)",
                                  1, params, what, &rc);
    progress_end(&p);
    if (!res && rc == EXIT_UNAVAILABLE && PQstatus(s->conn) == CONNECTION_OK) {
        char lock[64];
        snprintf(lock, sizeof lock, "pg_advisory_lock(%s)", key);
        session_log_holders(s, lock, SESSION_ADVISORY_HOLDERS_SQL, 1, params);
    }
    if (!res)
        return rc == EXIT_SCHEMA ? EXIT_INTERNAL : rc;
    s->backend_pid = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

/* The server process running a query that starts with `pg_backend_pid()`. */
static int backend_of(struct session *s, const char *sql, const char *what, int *pid)
{
    int rc;
    PGresult *res = session_query(s, sql, 0, NULL, what, &rc);
    if (res)
        *pid = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

static int pooled(struct session *s, int pid)
{
    /* No pg_advisory_unlock_all here: this statement may reach a pooled
     * server connection another client is using, and release its locks;
     * the worker's last statement gives bandage's back (db_release_locks). */
    s->report->relayed = 1;
    log_error("the database connection goes through a transaction pooler (server process %d "
              "held the lock, %d runs this transaction): locks do not hold there; set DIRECT_URL "
              "(or --direct-url) to the database's direct, unpooled URL", s->backend_pid, pid);
    report_add_error(s->report, s->phase ? s->phase : "reset", "pooler",
                     "connection through a transaction pooler; set DIRECT_URL");
    return EXIT_USAGE;
}

int session_check_pinned(struct session *s)
{
    int pid = 0;
    int rc = backend_of(s, "SELECT pg_catalog.pg_backend_pid()", "checking the connection", &pid);
    if (rc != 0 || s->backend_pid == 0 || pid == s->backend_pid)
        return rc;
    return pooled(s, pid);
}

int session_begin(struct session *s)
{
    int pid = 0;
    int rc = backend_of(s, "BEGIN; SELECT pg_catalog.pg_backend_pid()", "BEGIN", &pid);
    if (rc != 0 || s->backend_pid == 0 || pid == s->backend_pid)
        return rc;
    session_run(s, "ROLLBACK", "ROLLBACK", EXIT_INTERNAL);
    return pooled(s, pid);
}

int session_end(struct session *s, int rc)
{
    if (rc == 0)
        return session_run(s, "COMMIT", "COMMIT", EXIT_SCHEMA);
    /* After a cancel or a lost connection ROLLBACK may fail; closing the
     * connection rolls back all the same. */
    struct db_error err;
    db_run(s->conn, s->sfd, "ROLLBACK", &err);
    return rc;
}

char *session_quote(struct session *s, const char *name)
{
    return PQescapeIdentifier(s->conn, name, strlen(name));
}

int session_run_names(struct session *s, const char *fmt, const char *a, const char *b,
                      const char *what)
{
    char *qa = session_quote(s, a), *qb = b ? session_quote(s, b) : NULL;
    size_t len = strlen(fmt) + (qa ? strlen(qa) : 0) + (qb ? strlen(qb) : 0) + 1;
    char *sql = qa && (qb || !b) ? malloc(len) : NULL;
    int rc = EXIT_INTERNAL;
    if (sql) {
        snprintf(sql, len, fmt, qa, qb);
        rc = session_run(s, sql, what, EXIT_SCHEMA);
    }
    free(sql);
    PQfreemem(qa);
    PQfreemem(qb);
    return rc;
}

int session_set_lock_timeout(struct session *s, long ms)
{
    char sql[64];
    snprintf(sql, sizeof sql, "SET lock_timeout = %ld", ms);
    return session_run(s, sql, "setting lock_timeout", EXIT_INTERNAL);
}

int session_pause(struct session *s, long ms, const char *what)
{
    int sig = 0;
    if (db_wait(-1, 0, s->sfd, ms, &sig) != DB_WAIT_STOPPED)
        return 0;
    log_warn("%s: stopped by signal %d; rolled back", what, sig);
    report_add_error(s->report, s->phase ? s->phase : "reset", "signal",
                     "stopped by signal %d during %s", sig, what);
    return 128 + sig;
}

int session_pin(struct session *s, long lock_timeout_ms)
{
    /* RESET ALL first: what a schema file SET (pg_dump's lock_timeout = 0,
     * its search_path) stays with the file; then bandage's own settings,
     * the client check and no transaction_timeout among them (RESET ALL
     * brings back the database's). pg_temp last: a temporary table cannot
     * stand in for a catalog. */
    char sql[240];
    int version = PQserverVersion(s->conn);
    snprintf(sql, sizeof sql, "RESET ALL; SET search_path = pg_catalog, pg_temp; "
             "SET lock_timeout = %ld%s%s", lock_timeout_ms,
             version >= DB_CHECK_CLIENT_SINCE ? "; " DB_CHECK_CLIENT_SQL : "",
             version >= DB_TRANSACTION_TIMEOUT_SINCE ? "; " DB_NO_TRANSACTION_TIMEOUT_SQL : "");
    return session_run(s, sql, "setting bandage's search_path", EXIT_INTERNAL);
}

int session_set_search_path(struct session *s, const char *schema)
{
    return session_run_names(s, "SET search_path TO %s", schema, NULL,
                             "setting the search_path of the schema file");
}

/* pid, application, client, state and for how long, of each session whose
 * pid `pids_sql` yields. */
static const char holders_head[] =
    "SELECT a.pid, coalesce(nullif(a.application_name, ''), '-'),"
    " coalesce(pg_catalog.host(a.client_addr), 'local'), coalesce(a.state, '?'),"
    " coalesce(pg_catalog.round(extract(epoch FROM pg_catalog.now() - a.state_change)"
    "          ::numeric, 1)::text, '?'),"
    " coalesce(pg_catalog.round(extract(epoch FROM pg_catalog.now() - a.xact_start)"
    "          ::numeric, 1)::text, '-')"
    " FROM pg_catalog.pg_stat_activity a WHERE a.pid IN (";

void session_log_holders(struct session *s, const char *lock, const char *pids_sql,
                         int nparams, const char *const *params)
{
    struct db_error err;
    size_t len = sizeof holders_head + strlen(pids_sql) + 32;
    char *sql = malloc(len);
    if (!sql)
        return;
    snprintf(sql, len, "%s%s) ORDER BY a.pid", holders_head, pids_sql);
    PGresult *res = db_exec(s->conn, s->sfd, sql, nparams, params, &err);
    free(sql);
    for (int i = 0; res && i < PQntuples(res); i++)
        log_error("%s is held by server process %s (application '%s', client %s, %s for %s s, "
                  "transaction open %s s)", lock, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                  PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), PQgetvalue(res, i, 4),
                  PQgetvalue(res, i, 5));
    if (res && PQntuples(res) == 0)
        log_error("%s: its holder has gone since", lock);
    PQclear(res);
}
