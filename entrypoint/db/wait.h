/* Waiting for PostgreSQL: real logins, classified failures, jittered
 * backoff, a deadline. See DESIGN.md "Waiting, precisely". */
#ifndef BANDAGE_WAIT_H
#define BANDAGE_WAIT_H

#include <stddef.h>

#include <libpq-fe.h>

#include "config.h"
#include "report/report.h"

enum failure_class {
    FAILURE_RETRY_FAST,    /* refused, no socket, 57P03: poll soon (wait_pace_for) */
    FAILURE_RETRY_BACKOFF, /* timeouts, too many connections, DNS: back off */
    FAILURE_REFUSED,       /* authentication, TLS trust, unknown database: exit 77 */
    FAILURE_CONFIG         /* invalid connection options: exit 64 */
};

/* Classifies a failed login from libpq's (verbose) error message: the
 * SQLSTATE of a server error (copied to sqlstate, else ""), then the reason
 * of each host's record ("connection to server ... failed: REASON") by its
 * exact libpq/OpenSSL form, then libpq's option errors. */
enum failure_class wait_classify(const char *message, char sqlstate[6]);

/* One attempt's limit in ms: connect_timeout_ms (--connect-timeout), or the
 * connection string's connect_timeout, else PGCONNECT_TIMEOUT, when that is
 * shorter (libpq's rules: whole seconds, 0 or less means none, below 2 means
 * 2). -1 with why set when PGCONNECT_TIMEOUT is not such a number. */
long wait_attempt_limit_ms(const char *conninfo, long connect_timeout_ms, char *why,
                           size_t whylen);

/* What --dead-connection-timeout sets on bandage's connections: libpq's
 * keepalives_idle, keepalives_interval and keepalives_count (whole seconds,
 * within Linux's limits) and tcp_user_timeout (ms). */
struct liveness {
    long idle_s, interval_s, count, user_timeout_ms;
};

/* The values that end a connection to a silent server within about dead_ms
 * (the first half idle, then probes); 0 when dead_ms is 0 (nothing is set:
 * the kernel's defaults), else 1. */
int wait_liveness(long dead_ms, struct liveness *out);

/* How soon to ask again, by what an attempt costs the server. */
enum wait_pace {
    PACE_NOTHING_LISTENS, /* refused, socket missing: costs the server nothing */
    PACE_STARTING_UP,     /* 57P03: each attempt forks a backend */
    PACE_BACKOFF          /* timeouts, 53300, DNS: each attempt costs someone */
};

/* The pace of a retryable failure: its class and the SQLSTATE that
 * wait_classify() found ("" for none). */
enum wait_pace wait_pace_for(enum failure_class cls, const char *sqlstate);

/* The pause before the next attempt, in ms; consecutive counts the failures
 * of this pace in a row (1 for the first). seed: a PRNG state.
 * - nothing listens: 10 ms ± 20 % (8..12), whatever the count;
 * - starting up: 10 ms ± 20 %, then 1.5× per 57P03 in a row (15, 22 ms,
 *   ± 20 %), then uniform over 25..50 ms from the fourth on;
 * - backoff: full jitter, uniform over 0..min(50 ms × 2^(consecutive-1), 1 s). */
long wait_backoff_ms(enum wait_pace pace, int consecutive, unsigned int *seed);

/* Connects, retrying until the login succeeds or --wait-timeout passes
 * (exactly one attempt when it is 0); on success the session has
 * client_connection_check_interval set (PostgreSQL 14+). Returns the exit code (0: *conn_out is
 * an open connection) and fills the report's wait fields and errors. */
int wait_for_database(const struct config *cfg, int sfd, PGconn **conn_out,
                      struct deploy_report *report);

/* One more connection like wait_for_database's (same URL, TLS and liveness
 * settings), one attempt bounded as each of its attempts is: the
 * connection, or NULL with why set. */
PGconn *wait_connect_once(const struct config *cfg, int sfd, char *why, size_t whylen);

#endif
