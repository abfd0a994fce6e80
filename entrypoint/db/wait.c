#include "wait.h"

#include <errno.h>
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
#include "progress.h"

/* DESIGN.md "Waiting, precisely": the pause follows what an attempt costs
 * the server. A refused connection costs it nothing, and the moment the
 * socket opens is the moment to catch. A 57P03 attempt makes the postmaster
 * fork a backend (with TLS, a handshake too); a start-up's 57P03 phase
 * is a few tens of ms after a clean or crash start, so the first pauses are
 * short and later ones (a long recovery, a standby) settle at 25..50 ms. */
#define LISTEN_POLL_MS 10
#define STARTING_FIRST_MS 10
#define STARTING_SETTLED_MIN_MS 25
#define STARTING_SETTLED_MAX_MS 50
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

static int starts_with(const char *text, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(text, prefix, n) == 0;
}

static int contains(const char *text, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; n <= len && i <= len - n; i++)
        if (memcmp(text + i, needle, n) == 0)
            return 1;
    return 0;
}

struct reason_rule {
    const char *prefix; /* what the reason starts with */
    enum failure_class cls;
};

/* The reason libpq gives for one host, matched from its start. TLS: only a
 * certificate that does not verify (ours by the server: its alerts about
 * our certificate; its by us: OpenSSL's X509 verify result, "certificate
 * verify failed[: detail]"), a host name mismatch, TLS refused where it is
 * required, and client certificate or key files that cannot be used are
 * trust failures. Every other TLS error (an alert from a server still
 * starting, an EOF, garbage instead of 'S') is retried with backoff. */
static const struct reason_rule reason_rules[] = {
    {"Connection refused", FAILURE_RETRY_FAST},
    {"No such file or directory", FAILURE_RETRY_FAST}, /* Unix socket not there yet */
    {"SSL error: certificate verify failed", FAILURE_REFUSED},
    {"SSL error: sslv3 alert bad certificate", FAILURE_REFUSED},
    {"SSL error: sslv3 alert unsupported certificate", FAILURE_REFUSED},
    {"SSL error: sslv3 alert certificate revoked", FAILURE_REFUSED},
    {"SSL error: sslv3 alert certificate expired", FAILURE_REFUSED},
    {"SSL error: sslv3 alert certificate unknown", FAILURE_REFUSED},
    {"SSL error: tlsv1 alert unknown ca", FAILURE_REFUSED},
    {"SSL error: tlsv1 alert access denied", FAILURE_REFUSED},
    {"SSL error: tlsv13 alert certificate required", FAILURE_REFUSED},
    {"server certificate for \"", FAILURE_REFUSED}, /* ... does not match host name ... */
    {"could not get server's host name from server certificate", FAILURE_REFUSED},
    {"SSL certificate's name", FAILURE_REFUSED}, /* embedded null, entry missing */
    {"server does not support SSL, but SSL was required", FAILURE_REFUSED},
    {"server doesn't support GSSAPI encryption, but it was required", FAILURE_REFUSED},
    {"root certificate file \"", FAILURE_REFUSED}, /* ... does not exist */
    {"could not read root certificate file", FAILURE_REFUSED},
    {"certificate present, but not private key file", FAILURE_REFUSED},
    {"certificate does not match private key file", FAILURE_REFUSED},
    {"could not open certificate file", FAILURE_REFUSED},
    {"could not read certificate file", FAILURE_REFUSED},
    {"could not load private key file", FAILURE_REFUSED},
    {"private key file \"", FAILURE_REFUSED}, /* ... has group or world access */
    {"could not load SSL engine", FAILURE_REFUSED},
    {"could not read private SSL key", FAILURE_REFUSED},
    {NULL, FAILURE_RETRY_BACKOFF},
};

/* libpq's checks of the options, before any connection: they open the
 * message, with no "connection to server" record before them. */
static const char *const option_errors[] = {
    "invalid connection option", "invalid URI", "invalid percent-encoded token",
    "invalid port number", "invalid integer value", "invalid SSL protocol version range",
    "missing \"=\" after", "could not match ", "could not parse network address",
    "definition of service \"", "service file \"", "unterminated quoted string", NULL};

/* "invalid <option> value: ..." (sslmode, gssencmode, target_session_attrs...) */
static int is_invalid_option_value(const char *line, size_t len)
{
    if (!starts_with(line, len, "invalid "))
        return 0;
    size_t i = 8;
    while (i < len && (line[i] == '_' || (line[i] >= 'a' && line[i] <= 'z')))
        i++;
    return i > 8 && starts_with(line + i, len - i, " value");
}

static int is_option_error(const char *line, size_t len)
{
    for (const char *const *o = option_errors; *o; o++)
        if (starts_with(line, len, *o))
            return 1;
    return is_invalid_option_value(line, len);
}

/* Server messages that say the login itself was refused, for a message
 * without a SQLSTATE (default verbosity). */
static int is_auth_failure(const char *reason, size_t len)
{
    static const char *const auth[] = {"password authentication failed", "no password supplied",
                                       "no pg_hba.conf entry", "authentication failed", NULL};
    for (const char *const *a = auth; *a; a++)
        if (contains(reason, len, *a))
            return 1;
    return 0;
}

/* One host's reason; an unknown one may cost the server something: backoff. */
static enum failure_class classify_reason(const char *reason, size_t len)
{
    if (is_auth_failure(reason, len))
        return FAILURE_REFUSED;
    const struct reason_rule *r = reason_rules;
    while (r->prefix && !starts_with(reason, len, r->prefix))
        r++;
    return r->cls;
}

/* The more severe of two classes: a refusal anywhere ends the wait; a host
 * that costs the server something sets the pace. */
static enum failure_class worse(enum failure_class a, enum failure_class b)
{
    static const int rank[] = {[FAILURE_RETRY_FAST] = 0, [FAILURE_RETRY_BACKOFF] = 1,
                               [FAILURE_CONFIG] = 2, [FAILURE_REFUSED] = 3};
    return rank[a] >= rank[b] ? a : b;
}

/* Server errors whose SQLSTATE decides the class on its own. */
static int classify_sqlstate(const char *sqlstate, enum failure_class *cls)
{
    if (strcmp(sqlstate, "57P03") == 0)
        *cls = FAILURE_RETRY_FAST;
    else if (strcmp(sqlstate, "53300") == 0 || strcmp(sqlstate, "53000") == 0)
        *cls = FAILURE_RETRY_BACKOFF;
    else if (strncmp(sqlstate, "28", 2) == 0 || strcmp(sqlstate, "3D000") == 0 ||
             strcmp(sqlstate, "42501") == 0)
        *cls = FAILURE_REFUSED;
    /* the startup packet's own settings (options=-c ...) are wrong */
    else if (strcmp(sqlstate, "22023") == 0 || strcmp(sqlstate, "42704") == 0 ||
             strcmp(sqlstate, "0A000") == 0)
        *cls = FAILURE_CONFIG;
    else
        return 0;
    return 1;
}

/* The reason part of a host record: what follows "failed: ". */
static const char *record_reason(const char *line, size_t len, size_t *rlen)
{
    for (size_t i = 0; i + 8 <= len; i++)
        if (memcmp(line + i, "failed: ", 8) == 0) {
            *rlen = len - i - 8;
            return line + i + 8;
        }
    *rlen = len;
    return line;
}

/* libpq's message holds one record per host tried, "connection to server
 * at/on ... failed: REASON", then detail lines; errors from before any
 * connection (options, DNS) stand on lines of their own. */
enum failure_class wait_classify(const char *message, char sqlstate[6])
{
    static const char host_record[] = "connection to server ";
    enum failure_class cls = FAILURE_RETRY_FAST;
    int opinions = 0;

    find_sqlstate(message, sqlstate);
    if (classify_sqlstate(sqlstate, &cls))
        return cls;
    for (const char *line = message; *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        if (line == message && is_option_error(line, len))
            return FAILURE_CONFIG;
        if (starts_with(line, len, host_record)) {
            size_t rlen;
            const char *reason = record_reason(line, len, &rlen);
            cls = worse(cls, classify_reason(reason, rlen));
            opinions++;
        } else if (is_auth_failure(line, len)) {
            cls = FAILURE_REFUSED;
            opinions++;
        }
        if (!eol)
            break;
        line = eol + 1;
    }
    /* no host record: DNS, our own deadline, anything else */
    return opinions ? cls : FAILURE_RETRY_BACKOFF;
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

enum wait_pace wait_pace_for(enum failure_class cls, const char *sqlstate)
{
    if (cls != FAILURE_RETRY_FAST)
        return PACE_BACKOFF;
    return strcmp(sqlstate, "57P03") == 0 ? PACE_STARTING_UP : PACE_NOTHING_LISTENS;
}

/* ms ± 20 %, uniform over the whole integer range */
static long jittered(long ms, unsigned int *seed)
{
    long lo = ms * 8 / 10, hi = ms * 12 / 10;
    return lo + (long)(next_random(seed) % (unsigned long)(hi - lo + 1));
}

static long starting_up_ms(int consecutive, unsigned int *seed)
{
    long ms = STARTING_FIRST_MS;
    for (int i = 1; i < consecutive; i++) {
        ms = ms * 3 / 2;
        if (ms >= STARTING_SETTLED_MIN_MS)
            return STARTING_SETTLED_MIN_MS +
                   (long)(next_random(seed) %
                          (STARTING_SETTLED_MAX_MS - STARTING_SETTLED_MIN_MS + 1));
    }
    return jittered(ms, seed);
}

long wait_backoff_ms(enum wait_pace pace, int consecutive, unsigned int *seed)
{
    if (pace == PACE_NOTHING_LISTENS)
        return jittered(LISTEN_POLL_MS, seed);
    if (pace == PACE_STARTING_UP)
        return starting_up_ms(consecutive, seed);
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

/* A connect_timeout value as libpq means it: whole seconds, 0 or less for
 * none, at most a day (as config.c checks the URL's). -1 when it is not. */
static long parse_connect_timeout(const char *text)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v > 86400)
        return -1;
    return v < 0 ? 0 : v;
}

long wait_attempt_limit_ms(const char *conninfo, long connect_timeout_ms, char *why,
                           size_t whylen)
{
    const char *env = getenv("PGCONNECT_TIMEOUT");
    PQconninfoOption *opts = conninfo ? PQconninfoParse(conninfo, NULL) : NULL;
    long limit = connect_timeout_ms, seconds = 0;
    int from_url = 0;
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, "connect_timeout") == 0 && o->val && o->val[0]) {
            seconds = parse_connect_timeout(o->val); /* config.c has checked it */
            from_url = 1;
        }
    PQconninfoFree(opts);
    /* libpq takes PGCONNECT_TIMEOUT only when the string sets none, and
     * checks it only on its blocking path, never on bandage's. */
    if (!from_url && env && env[0] && (seconds = parse_connect_timeout(env)) < 0) {
        snprintf(why, whylen, "PGCONNECT_TIMEOUT='%.32s%s' must be a whole number of seconds "
                 "(0 to 86400); set it to one, such as 10, or unset it and use "
                 "--connect-timeout", env, strlen(env) > 32 ? "..." : "");
        return -1;
    }
    if (seconds > 0 && seconds < 2)
        seconds = 2; /* libpq's minimum */
    if (seconds > 0 && seconds * 1000 < limit)
        limit = seconds * 1000;
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

/* Linux's limits on TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT: beyond them
 * setsockopt fails, and with it every login. */
#define KEEPIDLE_MAX_S 32767
#define KEEPINTVL_MAX_S 32767
#define KEEPCNT_MAX 127

static long clamp(long v, long lo, long hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Why this bounds a dead server and never a slow one: keepalive probes go
 * out only while the connection is idle, and the server's kernel answers
 * them however long the server process works (a 10-minute CREATE INDEX);
 * tcp_user_timeout counts only how long data bandage sent stays
 * unacknowledged, and the server's kernel acknowledges a statement when it
 * arrives, whatever it then costs. (It would also end a connection whose
 * peer stopped reading for that long, a zero window: bandage sends one
 * statement at a time, which the server reads whole before running it.)
 * Only a peer whose kernel is gone or unreachable stays silent. With
 * tcp_user_timeout set, Linux ends an idle connection at the first probe
 * that finds it silent for that long, whatever keepalives_count says: the
 * count makes the same bound on kernels without it. */
int wait_liveness(long dead_ms, struct liveness *out)
{
    long dead_s = dead_ms / 1000;
    memset(out, 0, sizeof *out);
    if (dead_ms <= 0)
        return 0;
    out->idle_s = clamp(dead_s / 2, 1, KEEPIDLE_MAX_S);
    long rest = dead_s - out->idle_s;
    out->interval_s = clamp(rest / 3, 1, KEEPINTVL_MAX_S);
    out->count = clamp(rest / out->interval_s, 1, KEEPCNT_MAX);
    out->user_timeout_ms = dead_ms;
    return 1;
}

/* What bandage adds to every login's options: worked out once per wait.
 * An empty value is no value to libpq: with --dead-connection-timeout 0
 * the keepalive settings are left to libpq and the kernel. */
struct login_defaults {
    const char *sslrootcert;
    char keepalives[2], idle[24], interval[24], count[24], user_timeout[24];
};

static void prepare_login_defaults(const struct config *cfg, struct login_defaults *d)
{
    struct liveness l;
    memset(d, 0, sizeof *d);
    d->sslrootcert = default_sslrootcert(cfg->conninfo);
    if (!wait_liveness(cfg->dead_connection_timeout_ms, &l))
        return;
    snprintf(d->keepalives, sizeof d->keepalives, "1");
    snprintf(d->idle, sizeof d->idle, "%ld", l.idle_s);
    snprintf(d->interval, sizeof d->interval, "%ld", l.interval_s);
    snprintf(d->count, sizeof d->count, "%ld", l.count);
    snprintf(d->user_timeout, sizeof d->user_timeout, "%ld", l.user_timeout_ms);
}

/* One attempt's outcome beyond the connection itself. */
struct attempt {
    char msg[1024];  /* libpq's message, or bandage's own reason */
    int stop_signal; /* a stop signal ended the attempt */
    int poll_errno;  /* waiting itself failed: bandage's problem, not the server's */
};

/* Server notices ("drop cascades to ...") are debug output, not stderr noise. */
static void log_notice(void *arg, const PGresult *res)
{
    (void)arg;
    char tidy[1024];
    tidy_message(PQresultErrorMessage(res), tidy, sizeof tidy);
    log_debug("server: %s", tidy);
}

/* During the login, until wait_for_database sets log_notice (a later
 * connection of wait_connect_once keeps it): a WARNING the
 * server sends then is about the login itself (PostgreSQL 18: "authenticated
 * with an MD5-encrypted password", deprecated) and is the operator's to see,
 * as one bandage line; libpq's default would print it raw on stderr. */
static void login_notice(void *arg, const PGresult *res)
{
    (void)arg;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    char tidy[1024];
    tidy_message(PQresultErrorMessage(res), tidy, sizeof tidy);
    if (severity && strcmp(severity, "WARNING") == 0)
        log_warn("server, at login: %s", tidy);
    else
        log_debug("server, at login: %s", tidy);
}

/* One login attempt, bounded by timeout_ms. Returns the connection, or NULL
 * with a->msg (and stop_signal or poll_errno) set. */
static PGconn *attempt_login(const struct config *cfg, const struct login_defaults *d, int sfd,
                             long timeout_ms, struct attempt *a)
{
    /* The entries before "dbname" are bandage's defaults, which the expanded
     * URL overrides: a keepalives_idle or tcp_user_timeout in DATABASE_URL
     * stays the user's. The entries after it override the URL: bandage's
     * sessions are recognisable (and exempt from termination) by their
     * application_name. libpq skips NULL and empty values. */
    const char *keys[] = {"keepalives", "keepalives_idle", "keepalives_interval",
                          "keepalives_count", "tcp_user_timeout", "sslrootcert",
                          "dbname", "application_name", NULL};
    const char *vals[] = {d->keepalives, d->idle, d->interval, d->count, d->user_timeout,
                          d->sslrootcert, cfg->conninfo, "bandage", NULL};
    PGconn *conn = PQconnectStartParams(keys, vals, 1);
    long deadline = monotonic_ms() + timeout_ms;

    if (!conn) {
        snprintf(a->msg, sizeof a->msg, "out of memory");
        return NULL;
    }
    PQsetErrorVerbosity(conn, PQERRORS_VERBOSE);
    PQsetNoticeReceiver(conn, login_notice, NULL);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (PQstatus(conn) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
           st != PGRES_POLLING_FAILED) {
        long left = deadline - monotonic_ms();
        short events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
        int ready = left > 0 ? db_wait(PQsocket(conn), events, sfd, left, &a->stop_signal)
                             : DB_WAIT_TIMEOUT;
        if (ready == DB_WAIT_READY) {
            st = PQconnectPoll(conn);
            continue;
        }
        if (ready == DB_WAIT_STOPPED)
            snprintf(a->msg, sizeof a->msg, "stopped by signal %d", a->stop_signal);
        else if (ready == DB_WAIT_ERROR)
            snprintf(a->msg, sizeof a->msg, "waiting for the server: poll: %s",
                     strerror(a->poll_errno = errno));
        else
            snprintf(a->msg, sizeof a->msg, "timeout expired after %ld ms", timeout_ms);
        PQfinish(conn);
        return NULL;
    }
    if (PQstatus(conn) == CONNECTION_OK)
        return conn;
    snprintf(a->msg, sizeof a->msg, "%s", PQerrorMessage(conn));
    PQfinish(conn);
    return NULL;
}

/* The keepalive settings in effect, the URL's or bandage's: --log-level debug. */
static void log_liveness(PGconn *conn)
{
    static const char *const keys[] = {"keepalives", "keepalives_idle", "keepalives_interval",
                                       "keepalives_count", "tcp_user_timeout", NULL};
    PQconninfoOption *opts = PQconninfo(conn);
    char line[256];
    size_t used = 0;
    line[0] = '\0';
    for (int k = 0; keys[k] && used < sizeof line; k++) {
        const char *v = NULL;
        for (PQconninfoOption *o = opts; o && o->keyword; o++)
            if (strcmp(o->keyword, keys[k]) == 0)
                v = o->val;
        int n = snprintf(line + used, sizeof line - used, "%s%s=%s", k ? " " : "", keys[k],
                         v && v[0] ? v : "(default)");
        used += n > 0 ? (size_t)n : 0;
    }
    PQconninfoFree(opts);
    log_debug("connection liveness: %s", line);
}

/* A killed bandage (SIGKILL of PID 1: a container kill, an OOM kill) closes
 * its socket, but a backend in a long statement only notices when it next
 * writes to the client: it would finish the statement, for minutes, holding
 * the reset's locks and the advisory lock, with nobody listening, and the
 * app locked out. PostgreSQL 14+ can check the socket while a query runs;
 * every second is cheap. Set on bandage's own session only, never inherited
 * from a database or role setting. Returns 0, or 128+N for a stop signal;
 * any other failure is a warning (the wait itself succeeded). */
static int check_client_while_running(PGconn *conn, int sfd)
{
    struct db_error err;
    if (PQserverVersion(conn) < DB_CHECK_CLIENT_SINCE) {
        log_debug("PostgreSQL %d has no client_connection_check_interval: a killed bandage's "
                  "statement runs to its end", PQserverVersion(conn));
        return 0;
    }
    if (db_run(conn, sfd, PQserverVersion(conn) >= DB_TRANSACTION_TIMEOUT_SINCE
                              ? DB_CHECK_CLIENT_SQL "; " DB_NO_TRANSACTION_TIMEOUT_SQL
                              : DB_CHECK_CLIENT_SQL, &err) == 0)
        return 0;
    if (err.stop_signal)
        return 128 + err.stop_signal;
    log_warn("cannot set client_connection_check_interval (%s%s%s): if bandage is killed, its "
             "running statement still runs to its end", err.sqlstate, err.sqlstate[0] ? ": " : "",
             err.message);
    return 0;
}

/* A server older than bandage supports: one line naming both versions, exit
 * 64 (a configuration bandage cannot work with, as a transaction pooler is;
 * waiting or starting again cannot change it). 0 when supported. */
static int refuse_old_server(PGconn *conn, struct deploy_report *report)
{
    if (PQserverVersion(conn) >= DB_OLDEST_SUPPORTED)
        return 0;
    const char *version = PQparameterStatus(conn, "server_version");
    log_error("PostgreSQL %s is not supported: bandage needs PostgreSQL "
              DB_OLDEST_SUPPORTED_NAME " or newer (nothing was checked or changed)",
              version ? version : "(unknown version)");
    report_add_error(report, "wait", "version", "PostgreSQL %s is older than "
                     DB_OLDEST_SUPPORTED_NAME, version ? version : "(unknown version)");
    return EXIT_USAGE;
}

static const char *class_name(enum failure_class cls)
{
    static const char *const names[] = {"retry", "retry with backoff", "refused", "bad options"};
    return names[cls];
}

/* The state of one wait across its attempts. */
struct waiter {
    const struct config *cfg;
    struct deploy_report *report;
    long start, deadline, attempt_ms;
    struct login_defaults login;
    char redacted[256];
    char last_reason[512];
    enum wait_pace pace; /* of the last failure */
    int consecutive;     /* failures of that pace in a row */
    unsigned int seed;
    struct progress progress; /* begun once the first reason is logged */
};

static int stopped(struct waiter *w, int sig)
{
    w->report->wait_ms = monotonic_ms() - w->start;
    report_add_error(w->report, "wait", "signal", "stopped by signal %d", sig);
    return 128 + sig;
}

/* "database (host=db port=5432) not ready after 12 attempts, up to 60000 ms:
 * the database system is starting up": the last reason's first part (libpq
 * joins its hints with "; "), logged in full once already. */
static void describe_wait(const struct progress *p, long now, char *out, size_t len)
{
    const struct waiter *w = p->ctx;
    int reason = (int)strcspn(w->last_reason, ";");
    (void)now;
    snprintf(out, len, "database (%s) not ready after %ld attempt%s, up to %ld ms: %.*s",
             w->redacted, p->done, p->done == 1 ? "" : "s", w->cfg->wait_timeout_ms, reason,
             w->last_reason);
}

/* What a failed attempt means: an exit code, or -1 to try again. */
static int judge_failure(struct waiter *w, const struct attempt *a)
{
    char reason[512], sqlstate[6];
    if (a->stop_signal)
        return stopped(w, a->stop_signal);
    if (a->poll_errno) {
        log_error("cannot wait for the database: %s", a->msg);
        report_add_error(w->report, "wait", "poll", "%s", a->msg);
        return EXIT_INTERNAL;
    }
    enum failure_class cls = wait_classify(a->msg, sqlstate);
    tidy_message(a->msg, reason, sizeof reason);
    if (cls == FAILURE_REFUSED || cls == FAILURE_CONFIG) {
        log_error(cls == FAILURE_REFUSED ? "the database refused the login (%s): %s"
                                         : "invalid connection options (%s): %s",
                  w->redacted, reason);
        report_add_error(w->report, "wait", sqlstate[0] ? sqlstate : class_name(cls), "%s",
                         reason);
        return cls == FAILURE_REFUSED ? EXIT_REFUSED : EXIT_USAGE;
    }
    enum wait_pace pace = wait_pace_for(cls, sqlstate);
    w->consecutive = pace == w->pace ? w->consecutive + 1 : 1;
    w->pace = pace;
    if (strcmp(reason, w->last_reason) != 0) {
        log_info("database not ready (%s): %s", class_name(cls), reason);
        snprintf(w->last_reason, sizeof w->last_reason, "%s", reason);
    }
    if (!w->progress.describe)
        progress_begin(&w->progress, "wait", -1, w->start, describe_wait, w);
    progress_step(&w->progress, w->report->wait_attempts);
    if (w->cfg->wait_timeout_ms == 0 || w->deadline - monotonic_ms() <= 0) {
        if (w->cfg->wait_timeout_ms == 0)
            log_error("the database did not accept a login at the one attempt --wait-timeout 0 "
                      "allows: %s", reason);
        else
            log_error("the database did not accept a login within %ld ms (%d attempts): %s",
                      w->cfg->wait_timeout_ms, w->report->wait_attempts, reason);
        report_add_error(w->report, "wait", sqlstate[0] ? sqlstate : "timeout",
                         "not ready after %d attempts: %s", w->report->wait_attempts, reason);
        return EXIT_UNAVAILABLE;
    }
    return -1;
}

/* The pause before the next attempt, cut short by the deadline; an exit
 * code when a signal or a failed poll ends it, else -1. */
static int pause_before_retry(struct waiter *w, int sfd)
{
    long pause = wait_backoff_ms(w->pace, w->consecutive, &w->seed);
    long left = w->deadline - monotonic_ms();
    int sig = 0;
    int r = db_wait(-1, 0, sfd, pause < left ? pause : left, &sig);
    if (r == DB_WAIT_STOPPED)
        return stopped(w, sig);
    if (r == DB_WAIT_ERROR) {
        log_error("cannot wait for the database: poll: %s", strerror(errno));
        report_add_error(w->report, "wait", "poll", "poll: %s", strerror(errno));
        return EXIT_INTERNAL;
    }
    return -1;
}

/* Worked out once, not per attempt. 0, or EXIT_USAGE for a bad
 * PGCONNECT_TIMEOUT (nothing tried). */
static int prepare(struct waiter *w)
{
    char why[256];
    w->start = monotonic_ms();
    w->deadline = w->start + w->cfg->wait_timeout_ms;
    w->seed = (unsigned int)(getpid() ^ w->start);
    w->pace = PACE_NOTHING_LISTENS;
    redact_conninfo(w->cfg->conninfo, w->redacted, sizeof w->redacted);
    w->attempt_ms = wait_attempt_limit_ms(w->cfg->conninfo, w->cfg->connect_timeout_ms, why,
                                          sizeof why);
    if (w->attempt_ms < 0) {
        log_error("%s", why);
        report_add_error(w->report, "wait", "config", "%s", why);
        return EXIT_USAGE;
    }
    prepare_login_defaults(w->cfg, &w->login);
    if (w->cfg->wait_timeout_ms == 0)
        log_info("waiting for the database (%s): one attempt (--wait-timeout 0)", w->redacted);
    else
        log_info("waiting for the database (%s), up to %ld ms", w->redacted,
                 w->cfg->wait_timeout_ms);
    return 0;
}

PGconn *wait_connect_once(const struct config *cfg, int sfd, char *why, size_t whylen)
{
    struct login_defaults d;
    struct attempt a = {.stop_signal = 0};
    long limit = wait_attempt_limit_ms(cfg->conninfo, cfg->connect_timeout_ms, why, whylen);
    prepare_login_defaults(cfg, &d);
    PGconn *conn = attempt_login(cfg, &d, sfd, limit > 0 ? limit : cfg->connect_timeout_ms, &a);
    if (!conn)
        snprintf(why, whylen, "%s", a.stop_signal ? "stopped by a signal" : a.msg);
    return conn;
}

static int wait_until_connected(struct waiter *w, int sfd, PGconn **conn_out);

int wait_for_database(const struct config *cfg, int sfd, PGconn **conn_out,
                      struct deploy_report *report)
{
    struct waiter w = {.cfg = cfg, .report = report};
    int code = wait_until_connected(&w, sfd, conn_out);
    progress_end(&w.progress);
    return code;
}

static int wait_until_connected(struct waiter *w, int sfd, PGconn **conn_out)
{
    const struct config *cfg = w->cfg;
    struct deploy_report *report = w->report;
    int code = prepare(w);

    *conn_out = NULL;
    while (code == 0) {
        struct attempt a = {.stop_signal = 0};
        long limit = w->attempt_ms, left = w->deadline - monotonic_ms();
        if (cfg->wait_timeout_ms > 0 && left < limit)
            limit = left > 1 ? left : 1;

        report->wait_attempts++;
        PGconn *conn = attempt_login(cfg, &w->login, sfd, limit, &a);
        report->wait_ms = monotonic_ms() - w->start;
        if (conn) {
            progress_end(&w->progress);
            log_info("database ready after %d attempt%s in %ld ms", report->wait_attempts,
                     report->wait_attempts == 1 ? "" : "s", report->wait_ms);
            if ((code = refuse_old_server(conn, report)) != 0) {
                PQfinish(conn);
                return code;
            }
            PQsetNoticeReceiver(conn, log_notice, NULL);
            log_liveness(conn);
            if ((code = check_client_while_running(conn, sfd)) != 0) {
                PQfinish(conn);
                return stopped(w, code - 128);
            }
            *conn_out = conn;
            return EXIT_OK;
        }
        if ((code = judge_failure(w, &a)) < 0)
            code = pause_before_retry(w, sfd);
        code = code < 0 ? 0 : code;
    }
    return code;
}
