#include "wait.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "cabundle.h"
#include "dburl.h"
#include "query.h"
#include "exitcodes.h"
#include "log.h"

#define FAST_POLL_MS 100
#define BACKOFF_BASE_MS 50
#define BACKOFF_CAP_MS 1000

/* With PQERRORS_VERBOSE, a server error reads "FATAL:  28P01:  message". */
static void find_sqlstate(const char *message, char sqlstate[6])
{
    sqlstate[0] = '\0';
    for (const char *p = strstr(message, ":  "); p; p = strstr(p + 1, ":  ")) {
        const char *s = p + 3;
        if (strlen(s) >= 6 && s[5] == ':' &&
            strspn(s, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") >= 5) {
            memcpy(sqlstate, s, 5);
            sqlstate[5] = '\0';
            return;
        }
    }
}

static int contains_any(const char *text, const char *const *needles)
{
    for (; *needles; needles++)
        if (strstr(text, *needles))
            return 1;
    return 0;
}

enum failure_class wait_classify(const char *message, char sqlstate[6])
{
    static const char *const refused_tls[] = {
        "certificate verify failed", "root certificate file", "server certificate for",
        "does not match host name", "SSL was required", "server does not support SSL",
        "certificate present, but not private key", "SSL error", NULL};
    /* libpq's own checks of the options, before any traffic: "invalid
     * sslmode value", "invalid port number", "could not match 3 port numbers
     * to 2 hosts"... Server errors carry a SQLSTATE and are sorted above. */
    static const char *const bad_options[] = {
        "invalid ", "missing \"=\"", "could not match ", "could not parse network address",
        NULL};
    static const char *const auth[] = {"password authentication failed",
                                       "no password supplied", "no pg_hba.conf entry",
                                       "authentication failed", NULL};

    find_sqlstate(message, sqlstate);
    if (strcmp(sqlstate, "57P03") == 0)
        return FAILURE_RETRY_FAST;
    if (strcmp(sqlstate, "53300") == 0 || strcmp(sqlstate, "53000") == 0)
        return FAILURE_RETRY_BACKOFF;
    if (strncmp(sqlstate, "28", 2) == 0 || strcmp(sqlstate, "3D000") == 0 ||
        strcmp(sqlstate, "42501") == 0)
        return FAILURE_REFUSED;
    if (contains_any(message, auth) || contains_any(message, refused_tls))
        return FAILURE_REFUSED;
    if (contains_any(message, bad_options))
        return FAILURE_CONFIG;
    if (strstr(message, "Connection refused") || strstr(message, "No such file or directory"))
        return FAILURE_RETRY_FAST; /* nothing listens yet: cheap to ask again */
    return FAILURE_RETRY_BACKOFF;  /* timeouts, DNS, unreachable, anything else */
}

static unsigned int next_random(unsigned int *seed)
{
    /* xorshift32: jitter needs spread, not cryptographic quality */
    unsigned int x = *seed ? *seed : 2463534242u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *seed = x;
}

long wait_backoff_ms(enum failure_class cls, int consecutive, unsigned int *seed)
{
    if (cls == FAILURE_RETRY_FAST) {
        /* 100 ms ± 20 %: 80..120 */
        return FAST_POLL_MS * 8 / 10 + (long)(next_random(seed) % (FAST_POLL_MS * 4 / 10 + 1));
    }
    long ceiling = BACKOFF_BASE_MS;
    for (int i = 1; i < consecutive && ceiling < BACKOFF_CAP_MS; i++)
        ceiling *= 2;
    if (ceiling > BACKOFF_CAP_MS)
        ceiling = BACKOFF_CAP_MS;
    return (long)(next_random(seed) % (unsigned long)(ceiling + 1)); /* full jitter */
}

/* The readable part of a verbose libpq message: no LOCATION lines, one line. */
static void tidy_message(const char *message, char *out, size_t outlen)
{
    size_t used = 0;
    const char *p = message;
    while (*p && used + 1 < outlen) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > 0 && strncmp(p, "LOCATION:", 9) != 0) {
            while (len > 0 && (*p == '\t' || *p == ' ')) {
                p++;
                len--;
            }
            int n = snprintf(out + used, outlen - used, "%s%.*s", used ? "; " : "", (int)len, p);
            if (n < 0)
                break;
            used += (size_t)n;
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    if (used >= outlen)
        used = outlen - 1;
    out[used] = '\0';
}

/* One attempt's limit: --connect-timeout, or the connection string's own
 * connect_timeout when that is shorter (libpq semantics: seconds, 0 or less
 * means none, values below 2 mean 2). */
static long attempt_limit_ms(const struct config *cfg)
{
    const char *text = getenv("PGCONNECT_TIMEOUT");
    PQconninfoOption *opts = cfg->conninfo ? PQconninfoParse(cfg->conninfo, NULL) : NULL;
    long limit = cfg->connect_timeout_ms, seconds = 0;
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, "connect_timeout") == 0 && o->val && o->val[0])
            text = o->val;
    if (text)
        seconds = atol(text); /* validated when the settings were read */
    PQconninfoFree(opts);
    if (seconds > 0 && (seconds < 2 ? 2000 : seconds * 1000) < limit)
        limit = seconds < 2 ? 2000 : seconds * 1000;
    return limit;
}

/* libpq trusts ~/.postgresql/root.crt for verify-ca/verify-full unless told
 * otherwise; in a scratch image there is no such file (often no HOME), so
 * point it at the system CA bundle, unless the user chose a root or a mode
 * that does not verify. (libpq 16's sslrootcert=system does the same.) */
static const char *default_sslrootcert(const char *conninfo)
{
    const char *mode = getenv("PGSSLMODE"), *root = getenv("PGSSLROOTCERT");
    PQconninfoOption *opts = conninfo ? PQconninfoParse(conninfo, NULL) : NULL;
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (o->val && o->val[0] && strcmp(o->keyword, "sslmode") == 0)
            mode = o->val;
        if (o->val && o->val[0] && strcmp(o->keyword, "sslrootcert") == 0)
            root = o->val;
    }
    int verifies = mode && (strcmp(mode, "verify-ca") == 0 || strcmp(mode, "verify-full") == 0);
    int has_root = root && root[0]; /* root may point into opts: read it before the free */
    mode = verifies && strcmp(mode, "verify-ca") == 0 ? "verify-ca" : "verify-full";
    PQconninfoFree(opts);
    if (!verifies || has_root)
        return NULL;
    const char *home = getenv("HOME");
    char path[512];
    snprintf(path, sizeof path, "%s/.postgresql/root.crt", home ? home : "");
    if (home && access(path, R_OK) == 0)
        return NULL;
    const char *bundle = ca_bundle_path();
    if (!bundle)
        log_warn("sslmode=%s but no CA bundle was found (SSL_CERT_FILE, "
                 "/etc/ssl/certs/ca-certificates.crt and the other usual paths) nor "
                 "~/.postgresql/root.crt: set sslrootcert in the URL or SSL_CERT_FILE", mode);
    return bundle;
}

/* One login attempt, bounded by timeout_ms. Returns the connection, or NULL
 * with the libpq message in msg; *stop_signal set when a signal ended it. */
static PGconn *attempt_login(const struct config *cfg, const char *sslrootcert, int sfd,
                             long timeout_ms, char *msg, size_t msglen, int *stop_signal)
{
    /* Later entries override the expanded URL: bandage's sessions are
     * recognisable (and exempt from termination) by their application_name. */
    const char *keys[] = {"sslrootcert", "dbname", "application_name", NULL};
    const char *vals[] = {sslrootcert, cfg->conninfo, "bandage",
                          NULL};
    PGconn *conn = PQconnectStartParams(keys, vals, 1);
    long deadline = monotonic_ms() + timeout_ms;

    if (!conn) {
        snprintf(msg, msglen, "out of memory");
        return NULL;
    }
    PQsetErrorVerbosity(conn, PQERRORS_VERBOSE);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (PQstatus(conn) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
           st != PGRES_POLLING_FAILED) {
        long left = deadline - monotonic_ms();
        int ready = left > 0 ? db_wait(PQsocket(conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                                       sfd, left, stop_signal)
                             : 0;
        if (ready < 0) {
            snprintf(msg, msglen, "stopped by signal %d", *stop_signal);
            PQfinish(conn);
            return NULL;
        }
        if (ready == 0) {
            snprintf(msg, msglen, "timeout expired after %ld ms", timeout_ms);
            PQfinish(conn);
            return NULL;
        }
        st = PQconnectPoll(conn);
    }
    if (PQstatus(conn) == CONNECTION_OK)
        return conn;
    snprintf(msg, msglen, "%s", PQerrorMessage(conn));
    PQfinish(conn);
    return NULL;
}

/* Server notices ("drop cascades to ...") are debug output, not stderr noise. */
static void log_notice(void *arg, const char *message)
{
    (void)arg;
    char tidy[1024];
    tidy_message(message, tidy, sizeof tidy);
    log_debug("server: %s", tidy);
}

static const char *class_name(enum failure_class cls)
{
    static const char *const names[] = {"retry", "retry with backoff", "refused", "bad options"};
    return names[cls];
}

int wait_for_database(const struct config *cfg, int sfd, PGconn **conn_out,
                      struct deploy_report *report)
{
    long start = monotonic_ms();
    long deadline = start + cfg->wait_timeout_ms;
    unsigned int seed = (unsigned int)(getpid() ^ start);
    char last_reason[512] = "";
    enum failure_class last_class = FAILURE_RETRY_FAST;
    int consecutive = 0;
    char redacted[256];

    redact_conninfo(cfg->conninfo, redacted, sizeof redacted);
    /* Worked out once, not per attempt: */
    const char *sslrootcert = default_sslrootcert(cfg->conninfo);
    long attempt_ms = attempt_limit_ms(cfg);
    log_info("waiting for the database (%s), up to %ld ms", redacted, cfg->wait_timeout_ms);
    *conn_out = NULL;
    for (;;) {
        char raw[1024], reason[512], sqlstate[6];
        int stop_signal = 0;
        long left = deadline - monotonic_ms();
        long limit = attempt_ms;
        if (cfg->wait_timeout_ms > 0 && left < limit)
            limit = left > 1 ? left : 1;

        report->wait_attempts++;
        PGconn *conn = attempt_login(cfg, sslrootcert, sfd, limit, raw, sizeof raw, &stop_signal);
        report->wait_ms = monotonic_ms() - start;
        if (conn) {
            log_info("database ready after %d attempt%s in %ld ms", report->wait_attempts,
                     report->wait_attempts == 1 ? "" : "s", report->wait_ms);
            PQsetNoticeProcessor(conn, log_notice, NULL);
            *conn_out = conn;
            return EXIT_OK;
        }
        if (stop_signal) {
            report_add_error(report, "wait", "signal", "stopped by signal %d", stop_signal);
            return 128 + stop_signal;
        }
        enum failure_class cls = wait_classify(raw, sqlstate);
        tidy_message(raw, reason, sizeof reason);
        if (cls == FAILURE_REFUSED || cls == FAILURE_CONFIG) {
            log_error(cls == FAILURE_REFUSED ? "the database refused the login (%s): %s"
                                             : "invalid connection options (%s): %s",
                      redacted, reason);
            report_add_error(report, "wait", sqlstate[0] ? sqlstate : class_name(cls), "%s", reason);
            return cls == FAILURE_REFUSED ? EXIT_REFUSED : EXIT_USAGE;
        }
        consecutive = cls == last_class ? consecutive + 1 : 1;
        last_class = cls;
        if (strcmp(reason, last_reason) != 0) {
            log_info("database not ready (%s): %s", class_name(cls), reason);
            snprintf(last_reason, sizeof last_reason, "%s", reason);
        }
        long pause = wait_backoff_ms(cls, consecutive, &seed);
        left = deadline - monotonic_ms();
        if (cfg->wait_timeout_ms == 0 || left <= 0) {
            log_error("the database did not accept a login within %ld ms (%d attempts): %s",
                      cfg->wait_timeout_ms, report->wait_attempts, reason);
            report_add_error(report, "wait", sqlstate[0] ? sqlstate : "timeout",
                             "not ready after %d attempts: %s", report->wait_attempts, reason);
            return EXIT_UNAVAILABLE;
        }
        if (db_wait(-1, 0, sfd, pause < left ? pause : left, &stop_signal) < 0) {
            report->wait_ms = monotonic_ms() - start;
            report_add_error(report, "wait", "signal", "stopped by signal %d", stop_signal);
            return 128 + stop_signal;
        }
    }
}
