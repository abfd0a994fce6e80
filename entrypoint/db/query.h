/* Talking to PostgreSQL without ever blocking past a signal: every wait on
 * the server's socket also watches the signalfd, and a stop signal cancels
 * the running query (PQcancel) instead of waiting for it. */
#ifndef BANDAGE_DB_H
#define BANDAGE_DB_H

#include <libpq-fe.h>

/* bandage's sessions check every second, while a statement runs, that bandage
 * is still there (PostgreSQL 14+): a killed bandage's statement does not run
 * on for minutes holding its locks. */
#define DB_CHECK_CLIENT_SQL "SET client_connection_check_interval = '1s'"
#define DB_CHECK_CLIENT_SINCE 140000

/* A transaction_timeout (17+) set on the database or role for the app would
 * end bandage's session in the middle of a reset or a migration (FATAL
 * 25P04), at every start. bandage's own waits are bounded by lock_timeout
 * and --lock-wait; its session does without. */
#define DB_NO_TRANSACTION_TIMEOUT_SQL "SET transaction_timeout = 0"
#define DB_TRANSACTION_TIMEOUT_SINCE 170000

/* The oldest PostgreSQL bandage works with (and is tested on): 13 lacks the
 * two-argument pg_terminate_backend a reset ends sessions with, and
 * client_connection_check_interval. Older servers are refused at the first
 * connection, before any check, hook or lock. */
#define DB_OLDEST_SUPPORTED 140000
#define DB_OLDEST_SUPPORTED_NAME "14"

struct db_error {
    char sqlstate[6];   /* "" when the error did not come from the server */
    char message[400];  /* primary message, with detail/hint when present */
    int position;       /* 1-based character in the statement, 0 if none */
    int stop_signal;    /* the stop signal that cancelled the query, or 0 */
    int connection_lost;
    int silent;         /* lost because the server stopped answering (not ended by it) */
    int timed_out;      /* db_exec_within: no answer in time (the connection is spent) */
};

/* SIGTERM, SIGINT, SIGHUP, SIGQUIT: end the database phase. */
int db_is_stop_signal(int sig);

enum db_wait_result {
    DB_WAIT_ERROR = -2,   /* poll() failed, or sfd is not pollable; errno says why */
    DB_WAIT_STOPPED = -1, /* a stop signal arrived: *stop_signal set */
    DB_WAIT_TIMEOUT = 0,
    DB_WAIT_READY = 1
};

/* Waits until sock is ready for events, or timeout_ms passes (-1: no limit;
 * sock -1: only the timeout), or a stop signal arrives on sfd. Other signals
 * on sfd are consumed and do not extend the wait. Returns a db_wait_result. */
int db_wait(int sock, short events, int sfd, long timeout_ms, int *stop_signal);

/* Runs sql (several statements allowed when nparams is 0) and returns the
 * last result on success, to be PQclear()ed; NULL on failure with err set.
 * Every result status libpq has is handled: COPY FROM STDIN is ended with an
 * error (the server fails the statement, 57014), COPY TO STDOUT is drained
 * and fails the statement, COPY BOTH and pipeline results fail it.
 * err->connection_lost is set when the connection cannot run another query
 * (lost, or abandoned mid-query). */
PGresult *db_exec(PGconn *conn, int sfd, const char *sql, int nparams,
                  const char *const *params, struct db_error *err);

/* db_exec, waiting at most timeout_ms (-1: no limit) for the answer; past
 * it, NULL with err->timed_out set, and the connection is no longer usable. */
PGresult *db_exec_within(PGconn *conn, int sfd, const char *sql, int nparams,
                         const char *const *params, long timeout_ms, struct db_error *err);

/* Runs sql and discards the result; 0 on success, -1 with err set. */
int db_run(PGconn *conn, int sfd, const char *sql, struct db_error *err);

/* Releases every session advisory lock of this session (best effort),
 * before the connection is closed, when a pooler relays it (`relayed`, see
 * pooler.c): a pooled server session outlives the connection, and would
 * keep them. A server session of bandage's own ends with the connection,
 * and its locks with it: no round trip is spent then. */
void db_release_locks(PGconn *conn, int sfd, int relayed);

#endif
