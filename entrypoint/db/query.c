#include "query.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "progress.h"

#define CANCEL_DRAIN_MS 5000 /* how long a cancelled query may take to stop */

int db_is_stop_signal(int sig)
{
    return sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT;
}

int db_wait(int sock, short events, int sfd, long timeout_ms, int *stop_signal)
{
    struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN}, {.fd = sock, .events = events}};
    int nfds = sock >= 0 ? 2 : 1;
    long deadline = timeout_ms < 0 ? -1 : monotonic_ms() + timeout_ms;
    for (;;) {
        long now = monotonic_ms(), tick = progress_due_in(now);
        long left = deadline < 0 ? -1 : deadline - now > 0 ? deadline - now : 0;
        /* A long wait wakes up when the current phase's progress line is due. */
        int ticking = tick >= 0 && (left < 0 || tick < left);
        long ms = ticking ? tick : left;
        int n = poll(fds, (nfds_t)nfds, ms > INT_MAX ? INT_MAX : (int)ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return DB_WAIT_ERROR; /* errno says why */
        if (n == 0 && ticking)
            progress_tick_current(monotonic_ms());
        if (n == 0 && (ticking || (deadline >= 0 && deadline - monotonic_ms() > 0)))
            continue;
        if (n == 0)
            return DB_WAIT_TIMEOUT;
        if (fds[0].revents & (POLLERR | POLLNVAL)) {
            errno = EBADF; /* no signalfd to watch: a stop signal would go unseen */
            return DB_WAIT_ERROR;
        }
        if (fds[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == sizeof si && db_is_stop_signal((int)si.ssi_signo)) {
                *stop_signal = (int)si.ssi_signo;
                return DB_WAIT_STOPPED;
            }
            /* Other signals (SIGWINCH, SIGCHLD...) mean nothing to the database
             * phase; keep waiting, until the same deadline. */
            if (nfds == 1 || !fds[1].revents)
                continue;
        }
        return DB_WAIT_READY;
    }
}

static void set_error_from_result(struct db_error *err, const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    const char *position = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);

    snprintf(err->sqlstate, sizeof err->sqlstate, "%s", state ? state : "");
    snprintf(err->message, sizeof err->message, "%s%s%s",
             primary ? primary : PQresultErrorMessage(res), detail ? " (" : "",
             detail ? detail : "");
    if (detail && strlen(err->message) + 1 < sizeof err->message)
        strcat(err->message, ")");
    err->position = position ? atoi(position) : 0;
}

/* libpq's message on one line: a line indented with a tab continues the
 * one before it (joined with a space), any other is joined with "; ". */
static void one_line(const char *message, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (const char *p = message; *p && used + 1 < outlen;) {
        size_t len = strcspn(p, "\n");
        int continued = *p == '\t' || *p == ' ';
        size_t skip = strspn(p, "\t ");
        skip = skip < len ? skip : len;
        if (len > skip) {
            int n = snprintf(out + used, outlen - used, "%s%.*s",
                             used == 0 ? "" : continued ? " " : "; ", (int)(len - skip), p + skip);
            used += n > 0 ? (size_t)n : 0;
        }
        p += len + (p[len] == '\n');
    }
}

/* The kernel's reasons for giving up on a peer that went silent (no FIN, no
 * RST): keepalive probes or sent data left unanswered past
 * --dead-connection-timeout (tcp_user_timeout), or its own later limits; a
 * router's or ARP's complaint met meanwhile replaces "timed out". */
static int is_silence(const char *message)
{
    static const int silent[] = {ETIMEDOUT, EHOSTUNREACH, ENETUNREACH, EHOSTDOWN};
    for (size_t i = 0; i < sizeof silent / sizeof silent[0]; i++)
        if (strstr(message, strerror(silent[i])))
            return 1;
    return 0;
}

static void set_error_from_conn(struct db_error *err, PGconn *conn)
{
    char text[sizeof err->message];
    one_line(PQerrorMessage(conn), text, sizeof text);
    err->connection_lost = PQstatus(conn) != CONNECTION_OK;
    err->silent = err->connection_lost && is_silence(text);
    if (!err->connection_lost)
        snprintf(err->message, sizeof err->message, "%s", text);
    else if (err->silent)
        snprintf(err->message, sizeof err->message, "the connection to the database was lost, "
                 "the server stopped answering (--dead-connection-timeout): %s", text);
    else
        snprintf(err->message, sizeof err->message, "the connection to the database was lost: %s",
                 text);
}

static void cancel_query(PGconn *conn)
{
    char msg[256];
    PGcancel *cancel = PQgetCancel(conn);
    if (cancel && !PQcancel(cancel, msg, sizeof msg))
        log_warn("could not cancel the running query: %s", msg);
    PQfreeCancel(cancel);
}

/* What the server is told when a statement asks for COPY data from us. */
#define COPY_IN_REFUSAL                                                                      \
    "bandage does not feed COPY FROM STDIN: put the rows in INSERT statements, or COPY "    \
    "FROM a file the server can read"

/* The state of one query in flight, across its results. */
struct collector {
    PGconn *conn;
    struct db_error *err;
    PGresult *last;  /* the last good result, kept for the caller */
    int failed;      /* err holds the first failure */
    int broken;      /* the protocol state is unknown: stop reading */
};

static void fail_with(struct collector *c, const char *fmt, const char *arg)
{
    if (!c->failed)
        snprintf(c->err->message, sizeof c->err->message, fmt, arg);
    c->failed = 1;
}

static void fail_from_conn(struct collector *c)
{
    if (!c->failed)
        set_error_from_conn(c->err, c->conn);
    c->failed = 1;
}

/* COPY ... FROM STDIN: end it at once with an error, so that the server
 * fails the statement (57014, "COPY from stdin failed: ...") and the results
 * that follow say so. Once ended, libpq is out of the COPY state, so the
 * same COPY cannot come back. */
static void end_copy_in(struct collector *c)
{
    if (PQputCopyEnd(c->conn, COPY_IN_REFUSAL) != 1) {
        fail_from_conn(c);
        c->broken = 1;
    }
}

/* COPY ... TO STDOUT: bandage has nowhere to put the rows. Reads and drops
 * what has arrived; the statement fails once the COPY ends. Returns 1 when
 * the COPY is over (its final result follows), 0 when more input is needed. */
static int drain_copy_out(struct collector *c)
{
    fail_with(c, "%s", "COPY TO STDOUT in the schema file: bandage has nowhere to send the "
                       "rows; remove the statement or COPY TO a file on the server");
    for (;;) {
        char *row = NULL;
        int n = PQgetCopyData(c->conn, &row, 1);
        if (row)
            PQfreemem(row);
        if (n > 0)
            continue;
        if (n == 0)
            return 0;
        if (n == -2) { /* a broken connection, not the end of the COPY */
            set_error_from_conn(c->err, c->conn);
            c->broken = 1;
        }
        return 1;
    }
}

/* One result of the query: kept, recorded as the failure, or acted on.
 * Returns 0 to read on, 1 when more input is needed first. */
static int take_result(struct collector *c, PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    switch (st) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
        PQclear(c->last);
        c->last = res;
        return 0;
    case PGRES_SINGLE_TUPLE: /* bandage never asks for single-row mode */
        PQclear(res);
        return 0;
    case PGRES_FATAL_ERROR:
    case PGRES_NONFATAL_ERROR:
    case PGRES_BAD_RESPONSE:
        if (!c->failed)
            set_error_from_result(c->err, res);
        c->failed = 1;
        PQclear(res);
        return 0;
    case PGRES_COPY_IN:
        PQclear(res);
        end_copy_in(c);
        return 0;
    case PGRES_COPY_OUT:
        PQclear(res);
        return drain_copy_out(c) ? 0 : 1;
    case PGRES_COPY_BOTH: /* replication streaming: nothing bandage can take part in */
        PQclear(res);
        fail_with(c, "%s", "the statement started a COPY BOTH (replication) stream, which "
                           "bandage cannot take part in");
        end_copy_in(c); /* libpq then drains the server's side as COPY OUT */
        return 0;
    default: /* PGRES_PIPELINE_*: bandage never enters pipeline mode */
        fail_with(c, "unexpected result status %s from libpq", PQresStatus(st));
        PQclear(res);
        c->broken = 1;
        return 0;
    }
}

/* Reads every result of the query in flight; keeps the last good one. A
 * stop signal cancels the query, whose results are then still read (for at
 * most CANCEL_DRAIN_MS) so that the connection can run a ROLLBACK. */
static PGresult *collect_results(PGconn *conn, int sfd, long limit, struct db_error *err)
{
    struct collector c = {.conn = conn, .err = err};
    int cancelled = 0;

    while (!c.broken) {
        int need_input = 0;
        while (!need_input && !c.broken && !PQisBusy(conn)) {
            PGresult *res = PQgetResult(conn);
            if (!res)
                goto done;
            need_input = take_result(&c, res);
        }
        if (c.broken)
            break;
        int sig = 0;
        int ready = db_wait(PQsocket(conn), POLLIN, sfd, limit, &sig);
        if (ready == DB_WAIT_STOPPED && !err->stop_signal) {
            err->stop_signal = sig;
            cancel_query(conn);
            limit = CANCEL_DRAIN_MS;
            cancelled = 1;
        } else if (ready == DB_WAIT_TIMEOUT || ready == DB_WAIT_ERROR) {
            if (ready == DB_WAIT_ERROR)
                fail_with(&c, "waiting for the server: poll: %s", strerror(errno));
            else if (!cancelled)
                fail_with(&c, "%s", "no answer within the time allowed");
            else
                fail_from_conn(&c);
            err->timed_out = ready == DB_WAIT_TIMEOUT && !cancelled;
            c.broken = 1;
            break;
        }
        if (!PQconsumeInput(conn)) {
            fail_from_conn(&c);
            break;
        }
    }
    /* The query is abandoned mid-protocol: the connection cannot run
     * anything else (not even ROLLBACK), so it counts as lost. */
    err->connection_lost = 1;
done:
    if (c.failed || err->stop_signal) {
        PQclear(c.last);
        return NULL;
    }
    return c.last;
}

PGresult *db_exec(PGconn *conn, int sfd, const char *sql, int nparams,
                  const char *const *params, struct db_error *err)
{
    return db_exec_within(conn, sfd, sql, nparams, params, -1, err);
}

PGresult *db_exec_within(PGconn *conn, int sfd, const char *sql, int nparams,
                         const char *const *params, long timeout_ms, struct db_error *err)
{
    memset(err, 0, sizeof *err);
    int sent = nparams > 0 ? PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0)
                           : PQsendQuery(conn, sql);
    if (!sent) {
        set_error_from_conn(err, conn);
        return NULL;
    }
    PGresult *res = collect_results(conn, sfd, timeout_ms, err);
    if (!res && !err->message[0] && err->stop_signal)
        snprintf(err->message, sizeof err->message, "cancelled by signal %d", err->stop_signal);
    if (!res && !err->message[0])
        snprintf(err->message, sizeof err->message, "the query returned no result");
    return res;
}

int db_run(PGconn *conn, int sfd, const char *sql, struct db_error *err)
{
    PGresult *res = db_exec(conn, sfd, sql, 0, NULL, err);
    PQclear(res);
    return res ? 0 : -1;
}

void db_release_locks(PGconn *conn, int sfd, int relayed)
{
    struct db_error err;
    if (relayed && conn && PQstatus(conn) == CONNECTION_OK &&
        PQtransactionStatus(conn) == PQTRANS_IDLE &&
        db_run(conn, sfd, "SELECT pg_catalog.pg_advisory_unlock_all()", &err) != 0)
        log_debug("releasing the advisory locks: %s", err.message);
}
