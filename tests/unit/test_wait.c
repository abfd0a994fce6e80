/* wait_classify(), wait_pace_for() and wait_backoff_ms(): DESIGN.md, "Waiting, precisely".
 *
 * The messages below are what libpq 15.18 (Debian 12) really returned, via
 * the same PQconnectStartParams + PQsetErrorVerbosity(PQERRORS_VERBOSE) +
 * PQconnectPoll sequence as attempt_login(), against a PostgreSQL 15.18
 * server set up to fail each way (wrong password, no pg_hba entry, unknown
 * role and database, max_connections reached, smart shutdown pending, a
 * standby waiting on restore_command and one with hot_standby = off, ssl =
 * off, a certificate from another CA, nothing listening, a listener that
 * never answers). Note the verbose format: "FATAL:  28P01: message", two
 * blanks after the severity, one after the SQLSTATE, then a LOCATION line.
 * No server is needed to run these tests.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "db/query.h"
#include "db/wait.h"

/* ---- helpers ------------------------------------------------------------ */

static const char *class_str(enum failure_class c)
{
    switch (c) {
    case FAILURE_RETRY_FAST:
        return "FAILURE_RETRY_FAST";
    case FAILURE_RETRY_BACKOFF:
        return "FAILURE_RETRY_BACKOFF";
    case FAILURE_REFUSED:
        return "FAILURE_REFUSED";
    case FAILURE_CONFIG:
        return "FAILURE_CONFIG";
    }
    return "(unknown class)";
}

struct message_case {
    const char *what;
    const char *message;
    enum failure_class want;
    const char *sqlstate; /* "" when the message carries none */
};

static void check_cases(const struct message_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char sqlstate[6];
        memset(sqlstate, 'X', sizeof sqlstate); /* poison: must be written */
        enum failure_class got = wait_classify(cases[i].message, sqlstate);
        if (memchr(sqlstate, '\0', sizeof sqlstate) == NULL)
            fail_msg("%s: sqlstate left unterminated", cases[i].what);
        if (got != cases[i].want)
            fail_msg("%s: classified %s, want %s\nmessage: %s", cases[i].what, class_str(got),
                     class_str(cases[i].want), cases[i].message);
        if (strcmp(sqlstate, cases[i].sqlstate) != 0)
            fail_msg("%s: sqlstate \"%s\", want \"%s\"\nmessage: %s", cases[i].what, sqlstate,
                     cases[i].sqlstate, cases[i].message);
    }
}

#define CHECK_CASES(arr) check_cases((arr), sizeof(arr) / sizeof((arr)[0]))

/* ---- wait_classify: server errors --------------------------------------- */

static void test_57P03_retry_fast(void **state)
{
    (void)state;
    static const struct message_case cases[] = {
        {"starting up (standby waiting on restore_command)",
         "connection to server at \"127.0.0.1\", port 54331 failed: FATAL:  57P03: the database "
         "system is starting up\nLOCATION:  ProcessStartupPacket, postmaster.c:2415\n",
         FAILURE_RETRY_FAST, "57P03"},
        {"shutting down (smart shutdown, session still open)",
         "connection to server at \"127.0.0.1\", port 54329 failed: FATAL:  57P03: the database "
         "system is shutting down\nLOCATION:  ProcessStartupPacket, postmaster.c:2432\n",
         FAILURE_RETRY_FAST, "57P03"},
        {"not accepting connections (hot_standby = off)",
         "connection to server at \"127.0.0.1\", port 54332 failed: FATAL:  57P03: the database "
         "system is not accepting connections\nDETAIL:  Hot standby mode is disabled.\n"
         "LOCATION:  ProcessStartupPacket, postmaster.c:2426\n",
         FAILURE_RETRY_FAST, "57P03"},
    };
    CHECK_CASES(cases);
}

static void test_53300_retry_backoff(void **state)
{
    (void)state;
    static const struct message_case cases[] = {
        {"too many clients (superuser_reserved_connections = 0)",
         "connection to server at \"127.0.0.1\", port 54329 failed: FATAL:  53300: sorry, too "
         "many clients already\nLOCATION:  InitProcess, proc.c:357\n",
         FAILURE_RETRY_BACKOFF, "53300"},
        {"only reserved slots left",
         "connection to server at \"127.0.0.1\", port 54329 failed: FATAL:  53300: remaining "
         "connection slots are reserved for non-replication superuser connections\n"
         "LOCATION:  InitPostgres, postinit.c:886\n",
         FAILURE_RETRY_BACKOFF, "53300"},
    };
    CHECK_CASES(cases);
}

static void test_auth_and_database_refused(void **state)
{
    (void)state;
    static const struct message_case cases[] = {
        {"28P01 wrong password",
         "connection to server at \"127.0.0.1\", port 54329 failed: FATAL:  28P01: password "
         "authentication failed for user \"app\"\nLOCATION:  auth_failed, auth.c:334\n",
         FAILURE_REFUSED, "28P01"},
        {"28P01 wrong password, sslmode=prefer (tried with and without TLS)",
         "connection to server at \"127.0.0.1\", port 54329 failed: FATAL:  28P01: password "
         "authentication failed for user \"app\"\nLOCATION:  auth_failed, auth.c:334\n"
         "connection to server at \"127.0.0.1\", port 54329 failed: FATAL:  28P01: password "
         "authentication failed for user \"app\"\nLOCATION:  auth_failed, auth.c:334\n",
         FAILURE_REFUSED, "28P01"},
        {"28000 no pg_hba.conf entry",
         "connection to server at \"127.0.0.1\", port 54329 failed: FATAL:  28000: no pg_hba.conf "
         "entry for host \"127.0.0.1\", user \"nohba\", database \"postgres\", no encryption\n"
         "LOCATION:  ClientAuthentication, auth.c:544\n",
         FAILURE_REFUSED, "28000"},
        {"28000 no pg_hba.conf entry, with and without TLS",
         "connection to server at \"127.0.0.1\", port 54329 failed: FATAL:  28000: no pg_hba.conf "
         "entry for host \"127.0.0.1\", user \"nohba\", database \"postgres\", SSL encryption\n"
         "LOCATION:  ClientAuthentication, auth.c:544\n"
         "connection to server at \"127.0.0.1\", port 54329 failed: FATAL:  28000: no pg_hba.conf "
         "entry for host \"127.0.0.1\", user \"nohba\", database \"postgres\", no encryption\n"
         "LOCATION:  ClientAuthentication, auth.c:544\n",
         FAILURE_REFUSED, "28000"},
        {"28000 role does not exist (trust)",
         "connection to server at \"127.0.0.1\", port 54329 failed: FATAL:  28000: role "
         "\"ghost\" does not exist\nLOCATION:  InitializeSessionUserId, miscinit.c:768\n",
         FAILURE_REFUSED, "28000"},
        {"3D000 database does not exist",
         "connection to server at \"127.0.0.1\", port 54329 failed: FATAL:  3D000: database "
         "\"nope\" does not exist\nLOCATION:  InitPostgres, postinit.c:948\n",
         FAILURE_REFUSED, "3D000"},
        /* multi-host: the first host is down, the second refuses the login */
        {"refused, then 28P01 on the next host",
         "connection to server at \"127.0.0.1\", port 54300 failed: Connection refused\n"
         "\tIs the server running on that host and accepting TCP/IP connections?\n"
         "connection to server at \"127.0.0.1\", port 54329 failed: FATAL:  28P01: password "
         "authentication failed for user \"app\"\nLOCATION:  auth_failed, auth.c:334\n",
         FAILURE_REFUSED, "28P01"},
        /* default verbosity (no SQLSTATE): still recognised by its text */
        {"28P01 at default verbosity",
         "connection to server at \"127.0.0.1\", port 54329 failed: FATAL:  password "
         "authentication failed for user \"app\"\n",
         FAILURE_REFUSED, ""},
    };
    CHECK_CASES(cases);
}

/* ---- wait_classify: no server answer ------------------------------------ */

static void test_connection_refused_retry_fast(void **state)
{
    (void)state;
    static const struct message_case cases[] = {
        {"IPv4 refused",
         "connection to server at \"127.0.0.1\", port 54300 failed: Connection refused\n"
         "\tIs the server running on that host and accepting TCP/IP connections?\n",
         FAILURE_RETRY_FAST, ""},
        {"IPv6 refused",
         "connection to server at \"::1\", port 54300 failed: Connection refused\n"
         "\tIs the server running on that host and accepting TCP/IP connections?\n",
         FAILURE_RETRY_FAST, ""},
        {"multi-host IPv4 then IPv6, both refused",
         "connection to server at \"127.0.0.1\", port 54300 failed: Connection refused\n"
         "\tIs the server running on that host and accepting TCP/IP connections?\n"
         "connection to server at \"::1\", port 54300 failed: Connection refused\n"
         "\tIs the server running on that host and accepting TCP/IP connections?\n",
         FAILURE_RETRY_FAST, ""},
        {"multi-host IPv6 then IPv4, both refused",
         "connection to server at \"::1\", port 54300 failed: Connection refused\n"
         "\tIs the server running on that host and accepting TCP/IP connections?\n"
         "connection to server at \"127.0.0.1\", port 54300 failed: Connection refused\n"
         "\tIs the server running on that host and accepting TCP/IP connections?\n",
         FAILURE_RETRY_FAST, ""},
        {"Unix socket not there yet",
         "connection to server on socket \"/tmp/pgprobe/.s.PGSQL.54300\" failed: No such file or "
         "directory\n\tIs the server running locally and accepting connections on that socket?\n",
         FAILURE_RETRY_FAST, ""},
    };
    CHECK_CASES(cases);
}

static void test_dns_and_timeouts_retry_backoff(void **state)
{
    (void)state;
    static const struct message_case cases[] = {
        {"host name not known",
         "could not translate host name \"nonexistent.invalid\" to address: Name or service not "
         "known\n",
         FAILURE_RETRY_BACKOFF, ""},
        {"DNS temporarily failing",
         "could not translate host name \"db\" to address: Temporary failure in name resolution\n",
         FAILURE_RETRY_BACKOFF, ""},
        {"libpq connect_timeout (blocking PQconnectdb, listener never answers)",
         "connection to server at \"127.0.0.1\", port 54311 failed: timeout expired\n",
         FAILURE_RETRY_BACKOFF, ""},
        {"attempt_login's own deadline", "timeout expired after 5000 ms",
         FAILURE_RETRY_BACKOFF, ""},
        {"peer accepts then closes",
         "connection to server at \"127.0.0.1\", port 54312 failed: server closed the connection "
         "unexpectedly\n\tThis probably means the server terminated abnormally\n\tbefore or while "
         "processing the request.\n",
         FAILURE_RETRY_BACKOFF, ""},
        {"peer accepts SSLRequest then closes (sslmode=require)",
         "connection to server at \"127.0.0.1\", port 54312 failed: SSL SYSCALL error: EOF "
         "detected\n",
         FAILURE_RETRY_BACKOFF, ""},
    };
    CHECK_CASES(cases);
}

/* ---- wait_classify: TLS trust and bad options --------------------------- */

static void test_tls_refused(void **state)
{
    (void)state;
    static const struct message_case cases[] = {
        {"certificate from another CA (verify-ca)",
         "connection to server at \"127.0.0.1\", port 54329 failed: SSL error: certificate verify "
         "failed\n",
         FAILURE_REFUSED, ""},
        {"ssl = off on the server, sslmode=require",
         "connection to server at \"127.0.0.1\", port 54329 failed: server does not support SSL, "
         "but SSL was required\n",
         FAILURE_REFUSED, ""},
        {"no root certificate file (verify-ca, default path)",
         "connection to server at \"127.0.0.1\", port 54329 failed: root certificate file "
         "\"/root/.postgresql/root.crt\" does not exist\nEither provide the file or change "
         "sslmode to disable server certificate verification.\n",
         FAILURE_REFUSED, ""},
        {"sslrootcert pointing nowhere (verify-full)",
         "connection to server at \"127.0.0.1\", port 54329 failed: root certificate file "
         "\"/nonexistent.crt\" does not exist\nEither provide the file or change sslmode to "
         "disable server certificate verification.\n",
         FAILURE_REFUSED, ""},
        {"host name mismatch (verify-full)",
         "connection to server at \"127.0.0.1\", port 54329 failed: server certificate for "
         "\"localhost\" does not match host name \"127.0.0.1\"\n",
         FAILURE_REFUSED, ""},
        {"client certificate without its key",
         "connection to server at \"127.0.0.1\", port 54329 failed: certificate present, but not "
         "private key file \"/nonexistent.key\"\n",
         FAILURE_REFUSED, ""},
    };
    CHECK_CASES(cases);
}

static void test_bad_options_config(void **state)
{
    (void)state;
    static const struct message_case cases[] = {
        {"sslmode=bogus (URI)", "invalid sslmode value: \"bogus\"\n", FAILURE_CONFIG, ""},
        {"unknown keyword", "invalid connection option \"foo\"\n", FAILURE_CONFIG, ""},
        {"unknown URI parameter", "invalid URI query parameter: \"foo\"\n", FAILURE_CONFIG, ""},
        {"port out of range", "invalid port number: \"99999\"\n", FAILURE_CONFIG, ""},
        {"target_session_attrs=bogus", "invalid target_session_attrs value: \"bogus\"\n",
         FAILURE_CONFIG, ""},
        {"keyword without '='", "missing \"=\" after \"user\" in connection info string\n",
         FAILURE_CONFIG, ""},
    };
    CHECK_CASES(cases);
}

/* Other libpq 15 option errors, all raised by connectOptions2() before any
 * network traffic, so retrying can never help: FAILURE_CONFIG (exit 64) like
 * "invalid sslmode value". config.c's check_conninfo() (PQconninfoParse)
 * does not catch them: it parses, it does not validate values. */
static void test_more_bad_options_config(void **state)
{
    (void)state;
    static const struct message_case cases[] = {
        {"channel_binding=bogus", "invalid channel_binding value: \"bogus\"\n", FAILURE_CONFIG, ""},
        {"gssencmode=bogus", "invalid gssencmode value: \"bogus\"\n", FAILURE_CONFIG, ""},
        {"ssl_min_protocol_version=bogus", "invalid ssl_min_protocol_version value: \"bogus\"\n",
         FAILURE_CONFIG, ""},
        {"min > max protocol version", "invalid SSL protocol version range\n", FAILURE_CONFIG, ""},
        {"3 ports for 2 hosts", "could not match 3 port numbers to 2 hosts\n", FAILURE_CONFIG, ""},
        {"1 host for 2 hostaddrs", "could not match 1 host names to 2 hostaddr values\n",
         FAILURE_CONFIG, ""},
        {"hostaddr not an address",
         "could not parse network address \"not-an-ip\": Name or service not known\n",
         FAILURE_CONFIG, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char sqlstate[6];
        enum failure_class got = wait_classify(cases[i].message, sqlstate);
        assert_string_equal(sqlstate, "");
        if (got != cases[i].want)
            fail_msg("%s classified %s, want %s", cases[i].what, class_str(got),
                     class_str(cases[i].want));
    }
}

/* The out-parameter is always a terminated string: the SQLSTATE of a server
 * error, else empty, whatever it held before. */
static void test_sqlstate_out_param(void **state)
{
    (void)state;
    char sqlstate[6];
    memcpy(sqlstate, "28P01", 6);
    wait_classify("connection to server at \"::1\", port 5432 failed: Connection refused\n",
                  sqlstate);
    assert_string_equal(sqlstate, "");

    memset(sqlstate, 'X', sizeof sqlstate);
    assert_int_equal(wait_classify("", sqlstate), FAILURE_RETRY_BACKOFF);
    assert_string_equal(sqlstate, "");

    /* a message cut off right after the SQLSTATE's colon */
    memset(sqlstate, 'X', sizeof sqlstate);
    assert_int_equal(wait_classify("failed: FATAL:  3D000:", sqlstate), FAILURE_REFUSED);
    assert_string_equal(sqlstate, "3D000");

    /* ...and before it: no SQLSTATE, nothing read past the end */
    memset(sqlstate, 'X', sizeof sqlstate);
    wait_classify("failed: FATAL:  3D00", sqlstate);
    assert_string_equal(sqlstate, "");
}

/* ---- wait_classify: TLS errors that are not trust failures --------------- */

/* What libpq 15.18 reported through a proxy that answers the SSLRequest and
 * then fails the handshake (tests/integration/helpers/tlsproxy.py), and other
 * transient TLS failures: a server (or the TLS terminator in front of it)
 * that is starting up. Retried with backoff, never exit 77 or 64. */
static void test_tls_transient_retry_backoff(void **state)
{
    (void)state;
    static const struct message_case cases[] = {
        {"internal_error alert while starting",
         "connection to server at \"127.0.0.1\", port 54329 failed: SSL error: tlsv1 alert "
         "internal error\n",
         FAILURE_RETRY_BACKOFF, ""},
        {"handshake_failure alert",
         "connection to server at \"127.0.0.1\", port 54329 failed: SSL error: sslv3 alert "
         "handshake failure\n",
         FAILURE_RETRY_BACKOFF, ""},
        {"unexpected EOF inside the handshake (OpenSSL 3)",
         "connection to server at \"127.0.0.1\", port 54329 failed: SSL error: unexpected eof "
         "while reading\n",
         FAILURE_RETRY_BACKOFF, ""},
        {"EOF right after 'S'",
         "connection to server at \"127.0.0.1\", port 54329 failed: SSL SYSCALL error: EOF "
         "detected\n",
         FAILURE_RETRY_BACKOFF, ""},
        {"reset during the handshake",
         "connection to server at \"127.0.0.1\", port 54329 failed: SSL SYSCALL error: "
         "Connection reset by peer\n",
         FAILURE_RETRY_BACKOFF, ""},
        /* used to be "bad options" (exit 64): it contains "invalid " */
        {"a proxy answering the SSLRequest with garbage",
         "connection to server at \"127.0.0.1\", port 54329 failed: received invalid response "
         "to SSL negotiation: H\n",
         FAILURE_RETRY_BACKOFF, ""},
        {"::1 refused, then an alert on 127.0.0.1: the costlier one decides",
         "connection to server at \"localhost\" (::1), port 54329 failed: Connection refused\n"
         "\tIs the server running on that host and accepting TCP/IP connections?\n"
         "connection to server at \"localhost\" (127.0.0.1), port 54329 failed: SSL error: "
         "tlsv1 alert internal error\n",
         FAILURE_RETRY_BACKOFF, ""},
        {"sslmode=prefer: the alert, then the plaintext retry refused",
         "connection to server at \"127.0.0.1\", port 54329 failed: SSL error: tlsv1 alert "
         "internal error\nconnection to server at \"127.0.0.1\", port 54329 failed: Connection "
         "refused\n\tIs the server running on that host and accepting TCP/IP connections?\n",
         FAILURE_RETRY_BACKOFF, ""},
    };
    CHECK_CASES(cases);
}

/* Certificate verification on either side, and the host name check, in the
 * forms libpq 15 and later print them. */
static void test_tls_trust_failures_refused(void **state)
{
    (void)state;
    static const struct message_case cases[] = {
        {"verify failed, with OpenSSL's reason appended (newer libpq)",
         "connection to server at \"127.0.0.1\", port 54329 failed: SSL error: certificate verify "
         "failed: self-signed certificate in certificate chain\n",
         FAILURE_REFUSED, ""},
        {"verify failed on the second host",
         "connection to server at \"localhost\" (::1), port 54329 failed: Connection refused\n"
         "\tIs the server running on that host and accepting TCP/IP connections?\n"
         "connection to server at \"localhost\" (127.0.0.1), port 54329 failed: SSL error: "
         "certificate verify failed\n",
         FAILURE_REFUSED, ""},
        {"host name mismatch, several names in the certificate",
         "connection to server at \"10.0.0.5\", port 5432 failed: server certificate for "
         "\"db.internal\" (and 2 other names) does not match host name \"10.0.0.5\"\n",
         FAILURE_REFUSED, ""},
        {"no host name in the certificate",
         "connection to server at \"db\" (10.0.0.5), port 5432 failed: could not get server's "
         "host name from server certificate\n",
         FAILURE_REFUSED, ""},
        {"the server rejects our certificate",
         "connection to server at \"127.0.0.1\", port 54329 failed: SSL error: sslv3 alert bad "
         "certificate\n",
         FAILURE_REFUSED, ""},
        {"the server does not know our certificate's CA",
         "connection to server at \"127.0.0.1\", port 54329 failed: SSL error: tlsv1 alert "
         "unknown ca\n",
         FAILURE_REFUSED, ""},
        {"the server requires a client certificate",
         "connection to server at \"127.0.0.1\", port 54329 failed: SSL error: tlsv13 alert "
         "certificate required\n",
         FAILURE_REFUSED, ""},
        {"client key readable by others",
         "connection to server at \"127.0.0.1\", port 54329 failed: private key file "
         "\"/app/client.key\" has group or world access; file must have permissions u=rw (0600) "
         "or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned "
         "by root\n",
         FAILURE_REFUSED, ""},
        {"client certificate file unreadable",
         "connection to server at \"127.0.0.1\", port 54329 failed: could not open certificate "
         "file \"/app/client.crt\": Permission denied\n",
         FAILURE_REFUSED, ""},
    };
    CHECK_CASES(cases);
}

/* Server errors that no retry can fix and that are the connection string's
 * fault (options=-c ..., an unsupported protocol): exit 64. */
static void test_server_option_errors_config(void **state)
{
    (void)state;
    static const struct message_case cases[] = {
        {"options=-c work_mem=lots",
         "connection to server at \"127.0.0.1\", port 54329 failed: FATAL:  22023: invalid value "
         "for parameter \"work_mem\": \"lots\"\nLOCATION:  parse_and_validate_value, guc.c:7385\n",
         FAILURE_CONFIG, "22023"},
        {"options=-c no_such_setting=1",
         "connection to server at \"127.0.0.1\", port 54329 failed: FATAL:  42704: unrecognized "
         "configuration parameter \"no_such_setting\"\nLOCATION:  set_config_option, "
         "guc.c:7602\n",
         FAILURE_CONFIG, "42704"},
        {"service file entry missing", "definition of service \"app\" not found\n",
         FAILURE_CONFIG, ""},
        {"an integer option that is not one",
         "invalid integer value \"soon\" for connection option \"keepalives\"\n", FAILURE_CONFIG,
         ""},
    };
    CHECK_CASES(cases);
}

/* ---- wait_attempt_limit_ms: --connect-timeout, connect_timeout, PGCONNECT_TIMEOUT -- */

static long limit_with_env(const char *env, const char *conninfo, long connect_ms, char *why,
                           size_t len)
{
    if (env)
        setenv("PGCONNECT_TIMEOUT", env, 1);
    else
        unsetenv("PGCONNECT_TIMEOUT");
    why[0] = '\0';
    long ms = wait_attempt_limit_ms(conninfo, connect_ms, why, len);
    unsetenv("PGCONNECT_TIMEOUT");
    return ms;
}

static void test_attempt_limit(void **state)
{
    (void)state;
    static const struct {
        const char *env, *conninfo;
        long connect_ms, want;
    } cases[] = {
        {NULL, NULL, 10000, 10000},
        {NULL, "host=db connect_timeout=3", 10000, 3000},
        {NULL, "host=db connect_timeout=3", 1000, 1000}, /* only ever shorter */
        {NULL, "postgresql://db/app?connect_timeout=1", 10000, 2000}, /* libpq: at least 2 s */
        {NULL, "host=db connect_timeout=0", 10000, 10000},            /* 0: none */
        {NULL, "host=db connect_timeout=-5", 10000, 10000},
        {"5", NULL, 10000, 5000},
        {"5", "host=db", 10000, 5000},
        {"1", NULL, 10000, 2000},
        {"0", NULL, 10000, 10000},
        {"-1", NULL, 10000, 10000},
        {"", NULL, 10000, 10000},                             /* empty: unset */
        {"86400", NULL, 10000, 10000},
        {"soon", "host=db connect_timeout=4", 10000, 4000},  /* the URL's wins, as in libpq */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[256];
        long got = limit_with_env(cases[i].env, cases[i].conninfo, cases[i].connect_ms, why,
                                  sizeof why);
        if (got != cases[i].want)
            fail_msg("PGCONNECT_TIMEOUT=%s, conninfo %s, --connect-timeout %ld ms: %ld ms, want "
                     "%ld (%s)", cases[i].env ? cases[i].env : "(unset)",
                     cases[i].conninfo ? cases[i].conninfo : "(none)", cases[i].connect_ms, got,
                     cases[i].want, why);
    }
}

/* PGCONNECT_TIMEOUT is read by libpq, never checked by it on bandage's
 * (asynchronous) path: junk, fractions and values whose milliseconds
 * overflow are refused, naming the variable. */
static void test_attempt_limit_bad_pgconnect_timeout(void **state)
{
    (void)state;
    static const char *const bad[] = {"soon", "10s", "1.5", "86401", "99999999999999999999",
                                      "9223372036854775807", "2 ", NULL};
    for (int i = 0; bad[i]; i++) {
        char why[256];
        long got = limit_with_env(bad[i], "host=db", 10000, why, sizeof why);
        if (got != -1)
            fail_msg("PGCONNECT_TIMEOUT=%s accepted: %ld ms", bad[i], got);
        if (!strstr(why, "PGCONNECT_TIMEOUT") || !strstr(why, "whole number of seconds"))
            fail_msg("PGCONNECT_TIMEOUT=%s: message does not name the variable and the fix: %s",
                     bad[i], why);
    }
}

/* ---- --dead-connection-timeout ---------------------------------------------- */

static void test_liveness_derived(void **state)
{
    (void)state;
    static const struct {
        long dead_ms;
        struct liveness want;
    } cases[] = {
        {30000, {15, 5, 3, 30000}}, /* the default: half idle, then 3 probes 5 s apart */
        {3000, {1, 1, 2, 3000}},
        {2500, {1, 1, 1, 2500}},    /* whole seconds of probes, the ms of tcp_user_timeout */
        {1000, {1, 1, 1, 1000}},    /* Linux's minimum of each: 1 */
        {60000, {30, 10, 3, 60000}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct liveness got;
        assert_int_equal(wait_liveness(cases[i].dead_ms, &got), 1);
        if (memcmp(&got, &cases[i].want, sizeof got) != 0)
            fail_msg("%ld ms: idle %ld s, interval %ld s, count %ld, tcp_user_timeout %ld ms",
                     cases[i].dead_ms, got.idle_s, got.interval_s, got.count,
                     got.user_timeout_ms);
    }
    struct liveness none;
    assert_int_equal(wait_liveness(0, &none), 0); /* nothing set: the kernel's defaults */
}

/* Every value: the probes fit in the bound (two seconds at least: one idle,
 * one probe), and stay within Linux's limits, past which every login fails. */
static void test_liveness_within_bound_and_limits(void **state)
{
    (void)state;
    for (long ms = 1000; ms <= 86400L * 1000; ms += ms < 200000 ? 500 : 997000) {
        struct liveness l;
        assert_int_equal(wait_liveness(ms, &l), 1);
        long probes_end = l.idle_s + l.interval_s * l.count;
        long bound_s = ms / 1000 > 2 ? ms / 1000 : 2;
        if (l.idle_s < 1 || l.interval_s < 1 || l.count < 1 || l.idle_s > 32767 ||
            l.interval_s > 32767 || l.count > 127 || probes_end > bound_s ||
            l.user_timeout_ms != ms)
            fail_msg("%ld ms: idle %ld s, interval %ld s, count %ld, tcp_user_timeout %ld ms",
                     ms, l.idle_s, l.interval_s, l.count, l.user_timeout_ms);
    }
}

/* ---- db_wait -------------------------------------------------------------- */

static int blocked_signalfd(int sig)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    assert_int_equal(sigprocmask(SIG_BLOCK, &set, NULL), 0);
    int fd = signalfd(-1, &set, SFD_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static void test_db_wait_timeout_and_stop(void **state)
{
    (void)state;
    int sfd = blocked_signalfd(SIGTERM);
    int stop = 0;
    assert_int_equal(db_wait(-1, 0, sfd, 20, &stop), DB_WAIT_TIMEOUT);
    raise(SIGTERM);
    assert_int_equal(db_wait(-1, 0, sfd, 5000, &stop), DB_WAIT_STOPPED);
    assert_int_equal(stop, SIGTERM);
    close(sfd);
}

/* A failed poll() is not a timeout: with RLIMIT_NOFILE at 1, polling two
 * descriptors fails with EINVAL at once. */
static void test_db_wait_poll_error_is_not_a_timeout(void **state)
{
    (void)state;
    int sfd = blocked_signalfd(SIGTERM), stop = 0;
    struct rlimit saved, one;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    one = saved;
    one.rlim_cur = 1;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &one), 0);
    errno = 0;
    int got = db_wait(STDIN_FILENO, POLLIN, sfd, 5000, &stop);
    int err = errno;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
    close(sfd);
    if (got != DB_WAIT_ERROR)
        fail_msg("db_wait returned %d when poll() failed, want DB_WAIT_ERROR (%d)", got,
                 DB_WAIT_ERROR);
    assert_int_equal(err, EINVAL);
    assert_int_equal(stop, 0);
}

/* A signalfd that is not open cannot report a stop signal: an error, not
 * "the socket is ready". */
static void test_db_wait_bad_signalfd_is_an_error(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int closed = dup(fds[0]);
    close(closed);
    int stop = 0;
    assert_int_equal(db_wait(fds[1], POLLOUT, closed, 1000, &stop), DB_WAIT_ERROR);
    close(fds[0]);
    close(fds[1]);
}

/* ---- wait_backoff_ms ---------------------------------------------------- */

enum { DRAWS = 10000 };

static const char *pace_str(enum wait_pace p)
{
    switch (p) {
    case PACE_NOTHING_LISTENS:
        return "PACE_NOTHING_LISTENS";
    case PACE_STARTING_UP:
        return "PACE_STARTING_UP";
    case PACE_BACKOFF:
        return "PACE_BACKOFF";
    }
    return "(unknown pace)";
}

/* The pace of real libpq messages, through wait_classify() as the wait
 * loop does it. */
static void test_pace_of_real_messages(void **state)
{
    (void)state;
    static const struct {
        const char *what, *message;
        enum wait_pace want;
    } cases[] = {
        {"IPv4 refused",
         "connection to server at \"127.0.0.1\", port 54300 failed: Connection refused\n"
         "\tIs the server running on that host and accepting TCP/IP connections?\n",
         PACE_NOTHING_LISTENS},
        {"Unix socket not there yet",
         "connection to server on socket \"/tmp/pgprobe/.s.PGSQL.54300\" failed: No such file or "
         "directory\n\tIs the server running locally and accepting connections on that socket?\n",
         PACE_NOTHING_LISTENS},
        {"57P03 starting up",
         "connection to server at \"127.0.0.1\", port 54331 failed: FATAL:  57P03: the database "
         "system is starting up\nLOCATION:  ProcessStartupPacket, postmaster.c:2415\n",
         PACE_STARTING_UP},
        {"57P03 not accepting connections (hot_standby = off)",
         "connection to server at \"127.0.0.1\", port 54332 failed: FATAL:  57P03: the database "
         "system is not accepting connections\nDETAIL:  Hot standby mode is disabled.\n"
         "LOCATION:  ProcessStartupPacket, postmaster.c:2426\n",
         PACE_STARTING_UP},
        {"53300 too many clients",
         "connection to server at \"127.0.0.1\", port 54329 failed: FATAL:  53300: sorry, too "
         "many clients already\nLOCATION:  InitProcess, proc.c:357\n",
         PACE_BACKOFF},
        {"timeout", "connection to server at \"127.0.0.1\", port 54311 failed: timeout expired\n",
         PACE_BACKOFF},
        {"DNS",
         "could not translate host name \"db\" to address: Temporary failure in name resolution\n",
         PACE_BACKOFF},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char sqlstate[6];
        enum failure_class cls = wait_classify(cases[i].message, sqlstate);
        enum wait_pace got = wait_pace_for(cls, sqlstate);
        if (got != cases[i].want)
            fail_msg("%s: pace %s, want %s", cases[i].what, pace_str(got),
                     pace_str(cases[i].want));
    }
}

/* Draws DRAWS pauses at one pace and count; checks [lo, hi] and that the
 * jitter covers the range (each end within `slack` ms, `min_distinct`
 * values). Returns the mean. */
static double check_pauses(enum wait_pace pace, int consecutive, unsigned int seed, long lo,
                           long hi, long slack, int min_distinct)
{
    long min = LONG_MAX, max = LONG_MIN;
    int distinct = 0, seen[64] = {0};
    double sum = 0;
    for (int i = 0; i < DRAWS; i++) {
        long ms = wait_backoff_ms(pace, consecutive, &seed);
        if (ms < lo || ms > hi)
            fail_msg("%s consecutive %d, draw %d: %ld ms, outside [%ld, %ld]", pace_str(pace),
                     consecutive, i, ms, lo, hi);
        min = ms < min ? ms : min;
        max = ms > max ? ms : max;
        if (!seen[ms]++)
            distinct++;
        sum += (double)ms;
    }
    if (min > lo + slack || max < hi - slack || distinct < min_distinct)
        fail_msg("%s consecutive %d: jitter spans only [%ld, %ld] (%d values) of [%ld, %ld]",
                 pace_str(pace), consecutive, min, max, distinct, lo, hi);
    return sum / DRAWS;
}

/* Nothing listens: 10 ms ± 20 % whatever the count, and uniform: every
 * value of 8..12 about a fifth of the time. */
static void test_nothing_listens_every_10ms(void **state)
{
    (void)state;
    static const int consecutive[] = {INT_MIN, 0, 1, 2, 7, 100, INT_MAX};
    for (size_t k = 0; k < sizeof consecutive / sizeof consecutive[0]; k++) {
        double mean = check_pauses(PACE_NOTHING_LISTENS, consecutive[k], 12345u + (unsigned)k,
                                   8, 12, 0, 5);
        if (mean < 9.8 || mean > 10.2)
            fail_msg("nothing listens: mean %.2f ms, want ~10", mean);
    }
    unsigned int seed = 5;
    int count[13] = {0};
    for (int i = 0; i < DRAWS; i++)
        count[wait_backoff_ms(PACE_NOTHING_LISTENS, 1, &seed)]++;
    for (int ms = 8; ms <= 12; ms++)
        if (count[ms] < DRAWS * 15 / 100 || count[ms] > DRAWS * 25 / 100)
            fail_msg("nothing listens: %d ms drawn %d times of %d", ms, count[ms], DRAWS);
}

/* 57P03: 10, 15, 22 ms ± 20 %, then uniform 25..50 ms however long it lasts. */
static void test_starting_up_gentler(void **state)
{
    (void)state;
    check_pauses(PACE_STARTING_UP, 1, 1u, 8, 12, 0, 5);
    check_pauses(PACE_STARTING_UP, 2, 2u, 12, 18, 0, 7);
    check_pauses(PACE_STARTING_UP, 3, 3u, 17, 26, 0, 10);
    static const int settled[] = {4, 5, 10, 1000, INT_MAX};
    for (size_t k = 0; k < sizeof settled / sizeof settled[0]; k++) {
        double mean = check_pauses(PACE_STARTING_UP, settled[k], 40u + (unsigned)k, 25, 50, 1,
                                   24);
        if (mean < 36.5 || mean > 38.5)
            fail_msg("starting up, consecutive %d: mean %.1f ms, want ~37.5", settled[k], mean);
    }
    /* nonsense counts stay within the first step's bounds */
    check_pauses(PACE_STARTING_UP, 0, 7u, 8, 12, 0, 5);
    check_pauses(PACE_STARTING_UP, INT_MIN, 8u, 8, 12, 0, 5);
}

/* The server's cost, bounded: over any run of 57P03 answers the pauses
 * alone allow at most 44 attempts in the first second and 40 per second
 * after it (each attempt also takes its own time, so fewer happen). */
static void test_starting_up_attempts_per_second_bounded(void **state)
{
    (void)state;
    for (unsigned int s = 1; s <= 200; s++) {
        unsigned int seed = s * 2654435761u;
        long elapsed = 0;
        int attempts = 1, in_first_second = 0, consecutive = 1;
        while (elapsed < 10000) {
            elapsed += wait_backoff_ms(PACE_STARTING_UP, consecutive++, &seed);
            attempts++;
            if (elapsed < 1000)
                in_first_second = attempts;
        }
        if (in_first_second > 44)
            fail_msg("seed %u: %d attempts in the first second of 57P03", s, in_first_second);
        if (attempts > 44 + 9 * 40)
            fail_msg("seed %u: %d attempts in 10 s of 57P03", s, attempts);
        if (attempts < 10000 / 50)
            fail_msg("seed %u: only %d attempts in 10 s: slower than every 50 ms", s, attempts);
    }
}

static void test_backoff_ceilings(void **state)
{
    (void)state;
    static const struct {
        int consecutive;
        long ceiling;
    } steps[] = {
        {1, 50},    {2, 100},   {3, 200},   {4, 400},   {5, 800},
        {6, 1000},  {7, 1000},  {10, 1000}, {31, 1000}, {32, 1000},
        {33, 1000}, {63, 1000}, {64, 1000}, {65, 1000}, {100, 1000},
    };
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        unsigned int seed = 777u + (unsigned int)k;
        long ceiling = steps[k].ceiling, hi = 0;
        for (int i = 0; i < DRAWS; i++) {
            long ms = wait_backoff_ms(PACE_BACKOFF, steps[k].consecutive, &seed);
            if (ms < 0 || ms > ceiling)
                fail_msg("BACKOFF consecutive %d: %ld ms, outside [0, %ld]",
                         steps[k].consecutive, ms, ceiling);
            hi = ms > hi ? ms : hi;
        }
        /* the ceiling is the one for this step, not a lower one */
        if (hi < ceiling * 9 / 10)
            fail_msg("BACKOFF consecutive %d: max %ld ms over %d draws, ceiling %ld never "
                     "approached", steps[k].consecutive, hi, DRAWS, ceiling);
    }
    /* every count from 6 to 100 is capped at 1 s */
    unsigned int seed = 99;
    for (int c = 6; c <= 100; c++)
        for (int i = 0; i < 200; i++) {
            long ms = wait_backoff_ms(PACE_BACKOFF, c, &seed);
            if (ms < 0 || ms > 1000)
                fail_msg("BACKOFF consecutive %d: %ld ms, outside [0, 1000]", c, ms);
        }
}

/* Huge failure counts (a long outage) must not overflow the doubling. */
static void test_backoff_no_overflow(void **state)
{
    (void)state;
    static const int huge[] = {1000, 65536, 1 << 20, INT_MAX / 2, INT_MAX - 1, INT_MAX};
    for (size_t k = 0; k < sizeof huge / sizeof huge[0]; k++) {
        unsigned int seed = 4242u + (unsigned int)k;
        long hi = 0;
        for (int i = 0; i < 2000; i++) {
            long ms = wait_backoff_ms(PACE_BACKOFF, huge[k], &seed);
            if (ms < 0 || ms > 1000)
                fail_msg("BACKOFF consecutive %d: %ld ms, outside [0, 1000]", huge[k], ms);
            hi = ms > hi ? ms : hi;
        }
        assert_true(hi >= 900);
    }
    /* 0 and negative counts are nonsense, but must stay within bounds */
    unsigned int seed = 1;
    for (int i = 0; i < 1000; i++) {
        long a = wait_backoff_ms(PACE_BACKOFF, 0, &seed);
        long b = wait_backoff_ms(PACE_BACKOFF, INT_MIN, &seed);
        assert_true(a >= 0 && a <= 1000);
        assert_true(b >= 0 && b <= 1000);
    }
}

/* Full jitter: uniform over [0, ceiling], so both the low and the high end
 * show up, and the mean sits near the middle. */
static void test_backoff_full_jitter(void **state)
{
    (void)state;
    for (int c = 1; c <= 8; c++) {
        long ceiling = c >= 6 ? 1000 : 50L << (c - 1);
        unsigned int seed = 31337u * (unsigned int)c;
        int low = 0, high = 0, zeroish = 0;
        double sum = 0;
        for (int i = 0; i < DRAWS; i++) {
            long ms = wait_backoff_ms(PACE_BACKOFF, c, &seed);
            low += ms * 4 < ceiling;      /* < 25 % */
            high += ms * 4 > ceiling * 3; /* > 75 % */
            zeroish += ms * 10 < ceiling; /* < 10 % */
            sum += (double)ms;
        }
        if (!low || !high || !zeroish)
            fail_msg("BACKOFF consecutive %d not full jitter: %d below 25 %%, %d above 75 %%, "
                     "%d below 10 %% of %ld", c, low, high, zeroish, ceiling);
        /* each quarter holds ~25 %: accept 15-35 % */
        if (low < DRAWS * 15 / 100 || low > DRAWS * 35 / 100 || high < DRAWS * 15 / 100 ||
            high > DRAWS * 35 / 100)
            fail_msg("BACKOFF consecutive %d: %d/%d below 25 %%, %d above 75 %%", c, low, DRAWS,
                     high);
        double mean = sum / DRAWS;
        if (mean < ceiling * 0.4 || mean > ceiling * 0.6)
            fail_msg("BACKOFF consecutive %d: mean %.1f ms, ceiling %ld", c, mean, ceiling);
    }
}

static void test_deterministic_for_a_seed(void **state)
{
    (void)state;
    static const unsigned int seeds[] = {0, 1, 2, 42, 0x80000000u, UINT_MAX};
    for (size_t k = 0; k < sizeof seeds / sizeof seeds[0]; k++) {
        unsigned int a = seeds[k], b = seeds[k];
        for (int i = 0; i < 1000; i++) {
            enum wait_pace pace = (enum wait_pace)(i % 3);
            int c = 1 + i % 9;
            long x = wait_backoff_ms(pace, c, &a), y = wait_backoff_ms(pace, c, &b);
            if (x != y)
                fail_msg("seed %u, draw %d: %ld then %ld", seeds[k], i, x, y);
            assert_int_equal(a, b);
        }
    }

    /* the state advances, and different seeds give different sequences */
    unsigned int s1 = 1, s2 = 2;
    int differ = 0;
    for (int i = 0; i < 100; i++)
        differ += wait_backoff_ms(PACE_BACKOFF, 10, &s1) !=
                  wait_backoff_ms(PACE_BACKOFF, 10, &s2);
    assert_true(differ > 50);
    assert_int_not_equal(s1, 1);
}

/* A zero seed (an xorshift fixed point) must not freeze the jitter. */
static void test_seed_zero(void **state)
{
    (void)state;
    unsigned int seed = 0;
    long lo = LONG_MAX, hi = LONG_MIN;
    for (int i = 0; i < DRAWS; i++) {
        long ms = wait_backoff_ms(PACE_NOTHING_LISTENS, 1, &seed);
        assert_true(ms >= 8 && ms <= 12);
        lo = ms < lo ? ms : lo;
        hi = ms > hi ? ms : hi;
        assert_int_not_equal(seed, 0);
    }
    assert_true(hi - lo == 4);

    seed = 0;
    lo = LONG_MAX;
    hi = LONG_MIN;
    for (int i = 0; i < DRAWS; i++) {
        long ms = wait_backoff_ms(PACE_BACKOFF, 20, &seed);
        assert_true(ms >= 0 && ms <= 1000);
        lo = ms < lo ? ms : lo;
        hi = ms > hi ? ms : hi;
    }
    assert_true(lo < 100 && hi > 900);

    /* and seed 0 is deterministic too */
    unsigned int a = 0, b = 0;
    for (int i = 0; i < 100; i++)
        assert_int_equal(wait_backoff_ms(PACE_BACKOFF, 3, &a),
                         wait_backoff_ms(PACE_BACKOFF, 3, &b));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_57P03_retry_fast),
        cmocka_unit_test(test_53300_retry_backoff),
        cmocka_unit_test(test_auth_and_database_refused),
        cmocka_unit_test(test_connection_refused_retry_fast),
        cmocka_unit_test(test_dns_and_timeouts_retry_backoff),
        cmocka_unit_test(test_tls_refused),
        cmocka_unit_test(test_bad_options_config),
        cmocka_unit_test(test_more_bad_options_config),
        cmocka_unit_test(test_sqlstate_out_param),
        cmocka_unit_test(test_tls_transient_retry_backoff),
        cmocka_unit_test(test_tls_trust_failures_refused),
        cmocka_unit_test(test_server_option_errors_config),
        cmocka_unit_test(test_attempt_limit),
        cmocka_unit_test(test_attempt_limit_bad_pgconnect_timeout),
        cmocka_unit_test(test_liveness_derived),
        cmocka_unit_test(test_liveness_within_bound_and_limits),
        cmocka_unit_test(test_db_wait_timeout_and_stop),
        cmocka_unit_test(test_db_wait_poll_error_is_not_a_timeout),
        cmocka_unit_test(test_db_wait_bad_signalfd_is_an_error),
        cmocka_unit_test(test_pace_of_real_messages),
        cmocka_unit_test(test_nothing_listens_every_10ms),
        cmocka_unit_test(test_starting_up_gentler),
        cmocka_unit_test(test_starting_up_attempts_per_second_bounded),
        cmocka_unit_test(test_backoff_ceilings),
        cmocka_unit_test(test_backoff_no_overflow),
        cmocka_unit_test(test_backoff_full_jitter),
        cmocka_unit_test(test_deterministic_for_a_seed),
        cmocka_unit_test(test_seed_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
