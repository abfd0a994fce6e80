#include "query.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"

#define CANCEL_DRAIN_MS 5000 /* how long a cancelled query may take to stop */

int db_is_stop_signal(int sig)
{
    return sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT;
}

int db_wait(int sock, short events, int sfd, long timeout_ms, int *stop_signal)
{
    struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN}, {.fd = sock, .events = events}};
    int nfds = sock >= 0 ? 2 : 1;
    for (;;) {
        int n = poll(fds, (nfds_t)nfds, timeout_ms < 0 ? -1 : (int)timeout_ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        if (fds[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == sizeof si && db_is_stop_signal((int)si.ssi_signo)) {
                *stop_signal = (int)si.ssi_signo;
                return -1;
            }
            /* Other signals (SIGWINCH, SIGCHLD...) mean nothing to the database
             * phase; keep waiting (a slightly longer wait is harmless). */
            if (nfds == 1 || !fds[1].revents)
                continue;
        }
        return 1;
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

static void set_error_from_conn(struct db_error *err, PGconn *conn)
{
    snprintf(err->message, sizeof err->message, "%s", PQerrorMessage(conn));
    size_t n = strlen(err->message);
    while (n > 0 && err->message[n - 1] == '\n')
        err->message[--n] = '\0';
    err->connection_lost = PQstatus(conn) != CONNECTION_OK;
}

static void cancel_query(PGconn *conn)
{
    char msg[256];
    PGcancel *cancel = PQgetCancel(conn);
    if (cancel && !PQcancel(cancel, msg, sizeof msg))
        log_warn("could not cancel the running query: %s", msg);
    PQfreeCancel(cancel);
}

/* Reads every result of the query in flight; keeps the last good one. */
static PGresult *collect_results(PGconn *conn, int sfd, struct db_error *err)
{
    PGresult *last = NULL;
    int failed = 0;
    long limit = -1;

    for (;;) {
        while (!PQisBusy(conn)) {
            PGresult *res = PQgetResult(conn);
            if (!res)
                goto done;
            ExecStatusType st = PQresultStatus(res);
            if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR ||
                st == PGRES_BAD_RESPONSE) {
                if (!failed)
                    set_error_from_result(err, res);
                failed = 1;
                PQclear(res);
            } else {
                PQclear(last);
                last = res;
            }
        }
        int sig = 0;
        int ready = db_wait(PQsocket(conn), POLLIN, sfd, limit, &sig);
        if (ready < 0 && !err->stop_signal) {
            err->stop_signal = sig;
            cancel_query(conn);
            limit = CANCEL_DRAIN_MS;
        } else if (ready == 0) {
            set_error_from_conn(err, conn);
            failed = 1;
            goto done;
        }
        if (!PQconsumeInput(conn)) {
            set_error_from_conn(err, conn);
            failed = 1;
            goto done;
        }
    }
done:
    if (failed || err->stop_signal) {
        PQclear(last);
        return NULL;
    }
    return last;
}

PGresult *db_exec(PGconn *conn, int sfd, const char *sql, int nparams,
                  const char *const *params, struct db_error *err)
{
    memset(err, 0, sizeof *err);
    int sent = nparams > 0 ? PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0)
                           : PQsendQuery(conn, sql);
    if (!sent) {
        set_error_from_conn(err, conn);
        return NULL;
    }
    PGresult *res = collect_results(conn, sfd, err);
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
