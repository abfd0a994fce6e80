/* bandage's one connection while it changes the database: every failure is
 * logged and reported once and mapped to an exit code one way, transactions
 * begin and end one way, and each transaction first checks that the server
 * session is still the one that holds bandage's advisory lock. */
#ifndef BANDAGE_SESSION_H
#define BANDAGE_SESSION_H

#include <libpq-fe.h>

#include "query.h"
#include "report/report.h"

#define SQLSTATE_LOCK_NOT_AVAILABLE "55P03"
#define SQLSTATE_OUT_OF_SHARED_MEMORY "53200"

struct session {
    PGconn *conn;
    int sfd;                       /* stop signals cancel the running query */
    struct deploy_report *report;
    int backend_pid;               /* the server process holding the lock; 0 before */
    const char *phase;             /* the report's name for errors: "reset" when NULL */
    int lost_silently;             /* the connection was lost to a server gone silent */
};

/* Logs and reports a failed step; returns the exit code for it: 128+N when a
 * stop signal cancelled it, 69 when the connection was lost or a lock wait ran
 * out, else `code`. */
int session_failed(struct session *s, const char *what, const struct db_error *err, int code);

/* Runs sql (several statements allowed); 0, or session_failed(..., code). */
int session_run(struct session *s, const char *sql, const char *what, int code);

/* Runs a parameterised query; the result, or NULL with *rc set. */
PGresult *session_query(struct session *s, const char *sql, int nparams,
                        const char *const *params, const char *what, int *rc);

/* A one-value boolean query: 0 with *value set, or the exit code. */
int session_bool(struct session *s, const char *sql, const char *param, const char *what,
                 int *value);

/* Takes the session advisory lock `key` (waiting at most the session's
 * lock_timeout) and remembers which server process holds it. */
int session_lock(struct session *s, const char *key, const char *what);

/* Outside a transaction: is this still the server process that took the
 * lock? 0, or 64 with the fix (DIRECT_URL) logged. */
int session_check_pinned(struct session *s);

/* BEGIN, and proof that this transaction runs in the server process that
 * holds the lock: through a transaction pooler (pgbouncer in transaction
 * mode, Supabase's or Neon's pooled URLs) each transaction may land on
 * another server connection, and a session lock means nothing there. */
int session_begin(struct session *s);

/* COMMIT when rc is 0, else ROLLBACK; returns rc, or COMMIT's failure. */
int session_end(struct session *s, int rc);

/* The name quoted as an identifier (PQfreemem it), NULL on failure. */
char *session_quote(struct session *s, const char *name);

/* Runs fmt with each %s replaced by one quoted name (one or two names). */
int session_run_names(struct session *s, const char *fmt, const char *a, const char *b,
                      const char *what);

/* SET lock_timeout. */
int session_set_lock_timeout(struct session *s, long ms);

/* Between two attempts at a lock: sleeps ms, or less when a stop signal
 * comes. 0, or 128+N with "<what>: stopped by signal N" logged and reported. */
int session_pause(struct session *s, long ms, const char *what);

/* bandage's own settings, once the session is known to be its own (after
 * session_check_pinned; through a transaction pooler a SET would stay with
 * the pooled connection the app gets next) and after each schema file:
 * every setting reset, then search_path = pg_catalog, pg_temp, so that a
 * database's or role's search_path that puts a writable schema first cannot
 * lend bandage's calls (current_database(), ...) a function of its own. */
int session_pin(struct session *s, long lock_timeout_ms);

/* The search_path a schema file runs under: its schema, as Prisma's own
 * connection sets it (pg_catalog still comes first, implicitly). */
int session_set_search_path(struct session *s, const char *schema);

/* The pids holding the session advisory lock of key $1 in this database (a
 * bigint is shown in pg_locks as classid = high 32 bits, objid = low 32
 * bits, objsubid 1). */
#define SESSION_ADVISORY_HOLDERS_SQL                                                             \
    "SELECT l.pid FROM pg_catalog.pg_locks l WHERE l.locktype = 'advisory' AND l.granted"       \
    " AND l.objsubid = 1 AND l.classid = ($1::bigint >> 32)::oid"                              \
    " AND l.objid = ($1::bigint & 4294967295)::oid AND l.database = (SELECT oid"               \
    " FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())"

/* After a lock wait ran out: one error line per session that holds `lock`
 * (named in the line), those `pids_sql` yields (a query of pids, with its
 * parameters): pid, application_name, client address, state and since
 * when, and how long its transaction has been open, so that the operator
 * can find it. Best effort: nothing is returned. */
void session_log_holders(struct session *s, const char *lock, const char *pids_sql,
                         int nparams, const char *const *params);

#endif
