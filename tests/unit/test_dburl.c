/* dburl: Prisma's DATABASE_URL made libpq's, and what a connection string
 * may show in a log line (redact_conninfo). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "assert_text.h"

#include "dburl.h"

/* Words of a redacted conninfo, space separated, must include this one exactly. */
static int has_word(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = text; (p = strstr(p, word)) != NULL; p += n)
        if ((p == text || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return 1;
    return 0;
}

#define assert_word(text, word)                                                       \
    do {                                                                              \
        if (!has_word((text), (word)))                                                \
            fail_msg("expected \"%s\" to have the word \"%s\"", (text), (word));      \
    } while (0)

static int setup(void **state)
{
    (void)state;
    static const char *const pg_vars[] = {"PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE",
                                          "PGUSER", "PGPASSWORD", "PGSSLMODE", "PGSERVICE",
                                          "PGSERVICEFILE", "PGPASSFILE", NULL};
    for (int i = 0; pg_vars[i]; i++)
        unsetenv(pg_vars[i]);
    return 0;
}

/* The value libpq itself reads for keyword from conninfo (caller frees). */
static char *libpq_value(const char *conninfo, const char *keyword)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    char *v = NULL;
    assert_non_null(opts);
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, keyword) == 0 && o->val)
            v = strdup(o->val);
    PQconninfoFree(opts);
    return v;
}

#define assert_libpq(conninfo, keyword, want)                                         \
    do {                                                                              \
        char *v_ = libpq_value((conninfo), (keyword));                                \
        if (!(want) ? v_ != NULL : !v_ || strcmp(v_, (want) ? (want) : "") != 0)      \
            fail_msg("%s: libpq reads %s=%s, want %s", (conninfo), (keyword),         \
                     v_ ? v_ : "(none)", (want) ? (want) : "(none)");                 \
        free(v_);                                                                     \
    } while (0)

static void parse_ok(const char *url, struct dburl *u)
{
    char why[320] = "";
    if (dburl_parse(url, u, why, sizeof why) != 0)
        fail_msg("%s refused: %s", url, why);
}

static void parse_fails(const char *url, char *why, size_t len)
{
    struct dburl u;
    if (dburl_parse(url, &u, why, len) == 0) {
        dburl_free(&u);
        fail_msg("%s accepted", url);
    }
    assert_null(u.conninfo);
}

/* ---- Prisma's parameters -------------------------------------------------- */

static void test_prisma_init_url(void **state)
{
    (void)state;
    struct dburl u;
    parse_ok("postgresql://USER:PASSWORD@HOST:5432/DB?schema=public", &u);
    assert_string_equal(u.schema, "public");
    assert_int_equal(u.pgbouncer, 0);
    assert_int_equal(u.has_secret, 1);
    assert_libpq(u.conninfo, "host", "HOST");
    assert_libpq(u.conninfo, "port", "5432");
    assert_libpq(u.conninfo, "dbname", "DB");
    assert_libpq(u.conninfo, "user", "USER");
    assert_libpq(u.conninfo, "password", "PASSWORD");
    assert_not_contains(u.conninfo, "schema");
    dburl_free(&u);
    assert_null(u.conninfo);
}

static void test_prisma_params_stripped_libpq_kept(void **state)
{
    (void)state;
    struct dburl u;
    parse_ok("postgres://u@h/db?connection_limit=3&pgbouncer=true&application_name=my+app"
             "&options=-c%20search_path%3Dx&pool_timeout=0&sslmode=require&schema=my%20s"
             "&keepalives=1",
             &u);
    assert_int_equal(u.pgbouncer, 1);
    assert_int_equal(u.has_secret, 0);
    assert_string_equal(u.schema, "my s");
    /* Prisma decodes '+' as a space (form encoding): libpq gets the same value */
    assert_libpq(u.conninfo, "application_name", "my app");
    assert_libpq(u.conninfo, "options", "-c search_path=x");
    assert_libpq(u.conninfo, "sslmode", "require");
    assert_libpq(u.conninfo, "keepalives", "1");
    assert_not_contains(u.conninfo, "connection_limit");
    assert_not_contains(u.conninfo, "pool_timeout");
    dburl_free(&u);

    /* the last of a repeated parameter wins, as in both parsers */
    parse_ok("postgresql://h/db?schema=a&schema=b&pgbouncer=true&pgbouncer=false", &u);
    assert_string_equal(u.schema, "b");
    assert_int_equal(u.pgbouncer, 0);
    dburl_free(&u);

    /* an empty schema is no schema */
    parse_ok("postgresql://h/db?schema=", &u);
    assert_null(u.schema);
    dburl_free(&u);
}

static void test_unknown_and_bad_parameters(void **state)
{
    (void)state;
    char why[320];
    parse_fails("postgresql://u:s3cret@h/db?schmea=public", why, sizeof why);
    assert_contains(why, "unknown parameter 'schmea'");
    assert_not_contains(why, "s3cret");
    /* a name that is not a plain word may be a piece of a password: not shown */
    parse_fails("postgresql://u@h/db?x%20s3cret=1", why, sizeof why);
    assert_contains(why, "unknown parameter");
    assert_not_contains(why, "s3cret");
    parse_fails("postgresql://u@h/db?s3cret", why, sizeof why);
    assert_contains(why, "has no '=value'");
    parse_fails("postgresql://u@h/db?application_name=a%00b", why, sizeof why);
    assert_contains(why, "%00");
    parse_fails("postgresql://u@h/db?connect_timeout=5s", why, sizeof why);
    assert_contains(why, "connect_timeout");
    parse_fails("postgresql://u@h/db?pgbouncer=1", why, sizeof why);
    assert_contains(why, "pgbouncer must be true or false");
    parse_fails("postgresql://u@h/db?statement_cache_size=-1", why, sizeof why);
    assert_contains(why, "statement_cache_size");
    parse_fails("prisma://accelerate.prisma-data.net/?api_key=s3cret", why, sizeof why);
    assert_contains(why, "Accelerate");
    assert_not_contains(why, "s3cret");
    parse_fails("postgresql://u@[::1/db", why, sizeof why);
    assert_contains(why, "IPv6");
    /* libpq's keywords are known even when PGSERVICE names no service */
    setenv("PGSERVICE", "no_such_service", 1);
    struct dburl svc;
    parse_ok("postgresql://h/db?sslmode=require&keepalives=1", &svc);
    unsetenv("PGSERVICE");
    dburl_free(&svc);
    /* empty segments are skipped, as Prisma's form parser does */
    struct dburl u;
    parse_ok("postgresql://h/db?&schema=a&&", &u);
    assert_string_equal(u.schema, "a");
    dburl_free(&u);
}

/* Prisma's TLS words in libpq's (quaint url.rs and native/mod.rs). */
static void test_tls_mapping(void **state)
{
    (void)state;
    struct dburl u;
    char why[320];
    static const struct {
        const char *query, *sslmode, *sslrootcert;
    } cases[] = {
        {"sslaccept=strict", "verify-full", NULL},
        {"sslaccept=strict&sslmode=require", "verify-full", NULL},
        {"sslmode=prefer&sslaccept=strict", "verify-full", NULL},
        {"sslaccept=strict&sslmode=disable", "disable", NULL},
        {"sslaccept=accept_invalid_certs&sslmode=require", "require", NULL},
        {"sslmode=require", "require", NULL},
        {"sslmode=verify-ca", "verify-ca", NULL},
        {"sslcert=/ca.pem&sslaccept=strict", "verify-full", "/ca.pem"},
        {"sslcert=%2Fca%20dir%2Fca.pem&sslmode=require", "require", "/ca dir/ca.pem"},
        {"sslrootcert=/root.pem&sslmode=verify-full", "verify-full", "/root.pem"},
        {"", NULL, NULL},
    };
    char url[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(url, sizeof url, "postgresql://u@h/db?%s", cases[i].query);
        parse_ok(url, &u);
        assert_libpq(u.conninfo, "sslmode", cases[i].sslmode);
        assert_libpq(u.conninfo, "sslrootcert", cases[i].sslrootcert);
        assert_libpq(u.conninfo, "sslcert", NULL);
        dburl_free(&u);
    }
    parse_fails("postgresql://u@h/db?sslidentity=/id.p12", why, sizeof why);
    assert_contains(why, "sslidentity");
    assert_contains(why, "PGSSLKEY");
    parse_fails("postgresql://u@h/db?sslcert=ca.pem", why, sizeof why);
    assert_contains(why, "absolute path");
    parse_fails("postgresql://u@h/db?sslcert=/c.crt&sslkey=/c.key&sslaccept=strict", why,
                sizeof why);
    assert_contains(why, "sslrootcert");
    parse_fails("postgresql://u@h/db?sslcert=/ca.pem&sslrootcert=/root.pem", why, sizeof why);
    assert_contains(why, "sslrootcert");
    parse_fails("postgresql://u@h/db?sslaccept=yes", why, sizeof why);
    assert_contains(why, "strict or accept_invalid_certs");

    /* sslpassword is libpq's too (the client key's passphrase): kept, and a secret */
    parse_ok("postgresql://u@h/db?sslkey=/k.pem&sslpassword=kpw", &u);
    assert_libpq(u.conninfo, "sslpassword", "kpw");
    assert_int_equal(u.has_secret, 1);
    dburl_free(&u);
}

/* node-postgres's words (Prisma 7's driver, pg-connection-string's parse and
 * pg's ConnectionParameters), in libpq's: never less strict than libpq's own
 * meaning, and a note where the app is stricter. */
static void test_node_postgres_tls(void **state)
{
    (void)state;
    struct dburl u;
    static const struct {
        const char *query, *sslmode, *note; /* note: a word of it, NULL: none */
    } cases[] = {
        {"sslmode=no-verify", "require", NULL},
        {"ssl=no-verify", "require", NULL},
        {"ssl=true", "require", "ssl=true"},
        {"ssl=1", "require", "ssl=1"},
        {"ssl=0", NULL, NULL},
        {"ssl=1&sslmode=disable", "disable", NULL},
        {"ssl=0&sslmode=no-verify", "require", NULL},
        {"sslmode=prefer", "prefer", "sslmode=prefer"},
        {"sslmode=require", "require", "verify-full"},
        {"sslmode=verify-ca", "verify-ca", "sslmode=verify-ca"},
        {"sslmode=verify-full", "verify-full", NULL},
        {"uselibpqcompat=true&sslmode=require", "require", NULL},
        {"uselibpqcompat=false&sslmode=require", "require", "sslmode=require"},
        {"uselibpqcompat=true&sslmode=no-verify", "require", "uselibpqcompat"},
        {"sslaccept=accept_invalid_certs&sslmode=require", "require", NULL},
        {"sslnegotiation=postgres", NULL, NULL},
        {"sslnegotiation=direct", "require", "direct"},
        {"sslnegotiation=direct&sslmode=prefer", "require", NULL},
        {"sslnegotiation=direct&sslmode=verify-full", "verify-full", "direct"},
    };
    char url[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(url, sizeof url, "postgresql://u@h/db?%s", cases[i].query);
        parse_ok(url, &u);
        assert_libpq(u.conninfo, "sslmode", cases[i].sslmode);
        assert_libpq(u.conninfo, "ssl", NULL);
        assert_libpq(u.conninfo, "uselibpqcompat", NULL);
        if (cases[i].note)
            assert_contains(u.note, cases[i].note);
        else if (strstr(cases[i].query, "direct") == NULL)
            assert_string_equal(u.note, "");
        dburl_free(&u);
    }
}

/* A client certificate with its key is libpq's and node-postgres's sslcert,
 * a relative path included; alone, sslcert stays Prisma 6's CA. */
static void test_client_certificate_with_its_key(void **state)
{
    (void)state;
    struct dburl u;
    parse_ok("postgresql://u@h/db?sslcert=certs/c.crt&sslkey=certs/c.key&sslmode=verify-full",
             &u);
    assert_libpq(u.conninfo, "sslcert", "certs/c.crt");
    assert_libpq(u.conninfo, "sslkey", "certs/c.key");
    assert_libpq(u.conninfo, "sslrootcert", NULL);
    dburl_free(&u);
}

/* Each refusal names the parameter and what it takes. */
static void test_node_postgres_refusals(void **state)
{
    (void)state;
    char why[320];
    static const struct {
        const char *query, *named;
    } cases[] = {
        {"ssl=yes", "ssl must be true, 1, 0 or no-verify"},
        {"ssl=false", "ssl must be"},
        {"sslmode=no_verify", "sslmode must be"},
        {"sslnegotiation=tls", "sslnegotiation must be postgres or direct"},
        {"sslnegotiation=direct&sslmode=disable", "sslmode=disable"},
    };
    char url[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(url, sizeof url, "postgresql://u:s3cret@h/db?%s", cases[i].query);
        parse_fails(url, why, sizeof why);
        assert_contains(why, cases[i].named);
        assert_null(strstr(why, "s3cret"));
    }
}

/* ---- the user info -------------------------------------------------------- */

static void test_unescaped_at(void **state)
{
    (void)state;
    struct dburl u;
    static const struct {
        const char *url, *user, *password, *host;
    } cases[] = {
        {"postgresql://u:p@ss@db/app", "u", "p@ss", "db"},
        {"postgresql://u:@@@db/app", "u", "@@", "db"},
        {"postgresql://a@b:c@d@db:5432/app?schema=x", "a@b", "c@d", "db"},
        {"postgresql://u:p%40ss@db/app", "u", "p@ss", "db"},
        {"postgresql://u:p%3Fx%23y%2Fz@db/app", "u", "p?x#y/z", "db"},
        {"postgresql://u:pw@db?application_name=a@b", "u", "pw", "db"},
        {"postgresql://u:p@ss@[::1]:5433/app", "u", "p@ss", "::1"},
        {"postgresql://u:p@ss@h1:5432,h2:5433/app", "u", "p@ss", "h1,h2"},
        {"postgresql://u:p'\\s@db/app", "u", "p'\\s", "db"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parse_ok(cases[i].url, &u);
        assert_libpq(u.conninfo, "user", cases[i].user);
        assert_libpq(u.conninfo, "password", cases[i].password);
        assert_libpq(u.conninfo, "host", cases[i].host);
        dburl_free(&u);
    }
}

/* The authority (user info and hosts) ends at the first '/', '?' or '#', as
 * Prisma (WHATWG URL) reads it: an '@' after it is not the user info's, a
 * fragment is nobody's. */
static void test_authority_ends_at_path_query_or_fragment(void **state)
{
    (void)state;
    struct dburl u;
    static const struct {
        const char *url, *user, *password, *host, *port, *dbname;
    } cases[] = {
        {"postgresql://localhost:5432?user=app&password=hunter2@secret", "app", "hunter2@secret",
         "localhost", "5432", NULL},
        {"postgresql://localhost?password=a@b&user=c@d", "c@d", "a@b", "localhost", NULL, NULL},
        {"postgresql://u:p@h?application_name=x@y", "u", "p", "h", NULL, NULL},
        {"postgresql://u:p@h#x@y", "u", "p", "h", NULL, NULL},
        {"postgresql://h#u:p@y/db", NULL, NULL, "h", NULL, NULL},
        {"postgresql://u:p@h:5433/db#frag", "u", "p", "h", "5433", "db"},
        {"postgresql://h/db?user=u#x@y", "u", NULL, "h", NULL, "db"},
        {"postgresql://u@[::1]:5433?password=p@q", "u", "p@q", "::1", "5433", NULL},
        {"postgresql://u@[::1]#]", "u", NULL, "::1", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parse_ok(cases[i].url, &u);
        assert_libpq(u.conninfo, "user", cases[i].user);
        assert_libpq(u.conninfo, "password", cases[i].password);
        assert_libpq(u.conninfo, "host", cases[i].host);
        assert_libpq(u.conninfo, "port", cases[i].port);
        assert_libpq(u.conninfo, "dbname", cases[i].dbname);
        dburl_free(&u);
    }
    /* what ends at a '?' or '#' is a query or fragment, read as before */
    parse_ok("postgresql://h:5432?sslmode=require", &u);
    assert_libpq(u.conninfo, "host", "h");
    assert_libpq(u.conninfo, "port", "5432");
    assert_libpq(u.conninfo, "sslmode", "require");
    dburl_free(&u);
    parse_ok("postgresql://u:p@h/db?application_name=a#b&schema=c", &u);
    assert_libpq(u.conninfo, "application_name", "a");
    assert_null(u.schema);
    dburl_free(&u);
    char why[320];
    parse_fails("postgresql://u:p@h?x", why, sizeof why);
    assert_contains(why, "the query parameter 'x' has no '=value'");
}

/* An unescaped '/', '?' or '#' in a password ends the authority there, so
 * what was before it reads as host:port (Prisma refuses such a port too):
 * refused, and neither the message nor a log line quotes a piece of it. */
static void test_unescaped_delimiter_in_password(void **state)
{
    (void)state;
    char why[320], out[256];
    static const char *const urls[] = {
        "postgresql://u:Xy7/Qz9@db/app", "postgresql://u:Xy7?Qz9@db/app",
        "postgresql://u:Xy7#Qz9@db/app", "postgresql://u:Xy7?a=Qz9@db",
        "postgresql://u:Xy7?password=Qz9@db", "postgresql://h1,u:Xy7?Qz9@db",
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        parse_fails(urls[i], why, sizeof why);
        assert_contains(why, "%3F");
        assert_not_contains(why, "Xy7");
        assert_not_contains(why, "Qz9");
        redact_conninfo(urls[i], out, sizeof out);
        assert_string_equal(out, "(unparsable connection string)");
    }
    /* a '[' whose ']' is past the authority: the brackets of a query, path or fragment */
    static const char *const brackets[] = {
        "postgresql://[::1/db]", "postgresql://[::1?application_name=]",
        "postgresql://[::1#]", "postgresql://h,[::1/]",
    };
    for (size_t i = 0; i < sizeof brackets / sizeof brackets[0]; i++) {
        parse_fails(brackets[i], why, sizeof why);
        assert_contains(why, "IPv6");
    }
}

/* key=value conninfo is libpq's: parsed and re-emitted, nothing Prisma's. */
static void test_key_value_conninfo(void **state)
{
    (void)state;
    struct dburl u;
    char why[320];
    parse_ok("host=db dbname=app password='it\\'s \\\\ x' sslcert=/c.crt", &u);
    assert_libpq(u.conninfo, "sslcert", "/c.crt");
    assert_libpq(u.conninfo, "sslrootcert", NULL);
    assert_libpq(u.conninfo, "password", "it's \\ x");
    assert_int_equal(u.has_secret, 1);
    assert_null(u.schema);
    dburl_free(&u);
    /* Prisma's parameter in libpq's form: the URL form is what would help */
    parse_fails("host=db schema=public", why, sizeof why);
    assert_contains(why, "invalid connection option \"schema\"");
    assert_contains(why, "postgresql://");
    parse_ok("", &u);
    assert_string_equal(u.conninfo, "");
    dburl_free(&u);
}

/* A key=value string libpq refuses: libpq's own reason, the keyword it
 * quotes, and advice for key=value, not for the URL form already not in use. */
static void test_key_value_refusal_names_libpq_reason(void **state)
{
    (void)state;
    char why[320];
    parse_fails("host=127.0.0.1 sslmdoe=require", why, sizeof why);
    assert_contains(why, "invalid connection option \"sslmdoe\"");
    assert_contains(why, "spelling");
    assert_not_contains(why, "cannot parse");
    assert_not_contains(why, "postgresql://");
    assert_null(strchr(why, '\n'));

    parse_fails("host=db dbname", why, sizeof why);
    assert_contains(why, "missing \"=\" after \"dbname\"");
    assert_not_contains(why, "postgresql://");

    /* after a quoted password, the next word is the user's own */
    parse_fails("host=db password='s3 cr3t' sslmdoe=require", why, sizeof why);
    assert_contains(why, "\"sslmdoe\"");
    assert_not_contains(why, "s3");
    assert_not_contains(why, "cr3t");

    /* the quote left open: which value, never the value */
    parse_fails("host=db password='s3cret", why, sizeof why);
    assert_contains(why, "unterminated quoted string");
    assert_contains(why, "password");
    assert_not_contains(why, "s3cret");
}

/* The word libpq quotes may be a piece of a password with an unquoted space:
 * then it is not shown, and the fix (quotes) is. */
static void test_key_value_refusal_never_quotes_a_password_piece(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"host=db password=correct horse battery", "horse"},
        {"host=db password=s3cret x3cret=1", "x3cret"},
        {"host=db user=u password= s3cret w0rd", "w0rd"},
        {"host=db sslpassword=k3y pa55 sslmode=require", "pa55"},
        {"password=a\\ b h0rse", "h0rse"}, /* an escaped space: "a b", then h0rse */
    };
    char why[320];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        parse_fails(bad[i][0], why, sizeof why);
        assert_not_contains(why, bad[i][1]);
        assert_contains(why, "password='");
    }
    /* not a plain word: not shown either, wherever it is */
    parse_fails("host=db pass:w0rd=x", why, sizeof why);
    assert_not_contains(why, "w0rd");
    assert_contains(why, "not shown");
}

/* Neither form, or a URL of another scheme: there the URL form is the
 * advice; nothing of the string is quoted. */
static void test_refusal_of_what_is_no_connection_string(void **state)
{
    (void)state;
    static const char *const neither[] = {"s3cret", "localhost:5432/s3cret"};
    static const char *const other_url[] = {
        "mysql://u:s3cret@h/db", "postgresq://u:s3cret@h/db?sslmode=require",
        "jdbc:postgresql://h/db?password=s3cret", "postgresql:/u:s3cret@h/db?sslmode=require",
    };
    char why[320];
    for (size_t i = 0; i < sizeof neither / sizeof neither[0]; i++) {
        parse_fails(neither[i], why, sizeof why);
        assert_contains(why, "neither");
        assert_contains(why, "postgresql://user:password@host:port/dbname");
        assert_contains(why, "key=value");
        assert_not_contains(why, "s3cret");
    }
    for (size_t i = 0; i < sizeof other_url / sizeof other_url[0]; i++) {
        parse_fails(other_url[i], why, sizeof why);
        assert_contains(why, "postgresql:// or postgres://");
        assert_contains(why, "postgresql://user:password@host:port/dbname");
        assert_not_contains(why, "key=value");
        assert_not_contains(why, "s3cret");
        assert_not_contains(why, "\"");
    }
}

/* A URI libpq refuses: its reason without the quote (libpq quotes the whole
 * URI or a decoded part of it), and advice for the URL form. */
static void test_uri_refusal_names_libpq_reason_without_the_quote(void **state)
{
    (void)state;
    char why[320];
    parse_fails("postgresql://u:s3%zzcret@h/db", why, sizeof why);
    assert_contains(why, "invalid percent-encoded token");
    assert_not_contains(why, "s3");
    assert_not_contains(why, "key=value");
    parse_fails("postgresql://u:s3cret@[]/db", why, sizeof why);
    assert_contains(why, "IPv6 host address may not be empty");
    assert_not_contains(why, "s3cret");
    assert_not_contains(why, "key=value");
}

/* ---- redact_conninfo ------------------------------------------------------ */

static void test_redact_prisma_url(void **state)
{
    (void)state;
    char out[256];
    redact_conninfo("postgresql://alice:p@ss@w0rd@db.example.com:5433/app?schema=public"
                    "&connection_limit=5&sslaccept=strict",
                    out, sizeof out);
    assert_string_equal(out, "host=db.example.com port=5433 dbname=app user=alice "
                             "sslmode=verify-full");
    assert_not_contains(out, "p@ss");
    assert_not_contains(out, "w0rd");

    redact_conninfo("postgresql://u@h/db?sslkey=/k&sslpassword=s3cretkey", out, sizeof out);
    assert_not_contains(out, "s3cretkey");
    redact_conninfo("host=h password=s3cret sslpassword=s3cretkey", out, sizeof out);
    assert_string_equal(out, "host=h");

    /* an unknown parameter: unparsable, nothing shown */
    redact_conninfo("postgresql://u:s3cret@h/db?bogus=1", out, sizeof out);
    assert_string_equal(out, "(unparsable connection string)");
    redact_conninfo("", out, sizeof out);
    assert_string_equal(out, "(libpq defaults)");
}

/* No path, and an '@' in the query: the log shows localhost, no piece of the
 * password (it showed "host=secret user=localhost"). */
static void test_redact_query_at_without_path(void **state)
{
    (void)state;
    char out[256];
    redact_conninfo("postgresql://localhost:5432?user=app&password=hunter2@secret", out,
                    sizeof out);
    assert_string_equal(out, "host=localhost port=5432 user=app");
    assert_not_contains(out, "hunter2");
    assert_not_contains(out, "secret");
    redact_conninfo("postgres://app:pw@localhost#hunter2@secret", out, sizeof out);
    assert_string_equal(out, "host=localhost user=app");
}

/* ---- redact_conninfo ------------------------------------------------------ */

static void test_conninfo_uri(void **state)
{
    (void)state;
    char out[256];
    redact_conninfo("postgresql://alice:s3cret@db.example.com:5433/appdb?sslmode=require", out,
                    sizeof out);
    assert_word(out, "host=db.example.com");
    assert_word(out, "port=5433");
    assert_word(out, "dbname=appdb");
    assert_word(out, "user=alice");
    assert_word(out, "sslmode=require");
    assert_not_contains(out, "s3cret");
    assert_not_contains(out, "password");

    /* without sslmode, none is invented */
    redact_conninfo("postgres://bob:pw123456@localhost/db", out, sizeof out);
    assert_word(out, "host=localhost");
    assert_word(out, "dbname=db");
    assert_word(out, "user=bob");
    assert_not_contains(out, "sslmode");
    assert_not_contains(out, "pw123456");
}

static void test_conninfo_uri_password_variants(void **state)
{
    (void)state;
    char out[256];
    /* percent-encoded password: neither the encoded nor the decoded form */
    redact_conninfo("postgresql://u:p%40ss%20word@h/db", out, sizeof out);
    assert_word(out, "host=h");
    assert_not_contains(out, "p@ss");
    assert_not_contains(out, "p%40ss");
    assert_not_contains(out, "word");

    /* password as a query parameter */
    redact_conninfo("postgresql://h:5432/db?user=u&password=qs3cret&sslmode=verify-full", out,
                    sizeof out);
    assert_word(out, "user=u");
    assert_word(out, "sslmode=verify-full");
    assert_not_contains(out, "qs3cret");

    /* several hosts */
    redact_conninfo("postgresql://u:mh3cret@h1:5432,h2:5433/db", out, sizeof out);
    assert_word(out, "host=h1,h2");
    assert_word(out, "port=5432,5433");
    assert_not_contains(out, "mh3cret");

    /* a Unix socket directory */
    redact_conninfo("postgresql:///db?host=/var/run/postgresql", out, sizeof out);
    assert_word(out, "host=/var/run/postgresql");
    assert_word(out, "dbname=db");
}

static void test_conninfo_keyword_value(void **state)
{
    (void)state;
    char out[256];
    redact_conninfo("host=db port=5432 dbname=app user=app password=hunter2 sslmode=disable", out,
                    sizeof out);
    assert_word(out, "host=db");
    assert_word(out, "port=5432");
    assert_word(out, "dbname=app");
    assert_word(out, "user=app");
    assert_word(out, "sslmode=disable");
    assert_not_contains(out, "hunter2");
    assert_not_contains(out, "password");

    redact_conninfo("password='my secret pw' host=db hostaddr=10.0.0.5 dbname=app", out,
                    sizeof out);
    assert_word(out, "host=db");
    assert_word(out, "hostaddr=10.0.0.5");
    assert_not_contains(out, "secret");

    /* other keywords are not shown either (options may carry anything) */
    redact_conninfo("host=db options='-c secret_opt=1' application_name=appname", out, sizeof out);
    assert_word(out, "host=db");
    assert_not_contains(out, "secret_opt");
    assert_not_contains(out, "appname");
}

static void test_conninfo_unparsable(void **state)
{
    (void)state;
    char out[256];
    static const char *const bad[] = {
        "postgresql://u:s3cret@h/db?bogus=1",
        "host=h password=s3cret junk",
        "host=h password='s3cret",
        "host=h nosuchkeyword=s3cret",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(out, 'Z', sizeof out);
        redact_conninfo(bad[i], out, sizeof out);
        assert_string_equal(out, "(unparsable connection string)");
    }
}

static void test_conninfo_empty_and_defaults(void **state)
{
    (void)state;
    char out[256];
    redact_conninfo("", out, sizeof out);
    assert_string_equal(out, "(libpq defaults)");

    /* NULL: libpq's PG* variables, still without the password */
    assert_int_equal(setenv("PGHOST", "envhost", 1), 0);
    assert_int_equal(setenv("PGPORT", "6543", 1), 0);
    assert_int_equal(setenv("PGPASSWORD", "envs3cret", 1), 0);
    redact_conninfo(NULL, out, sizeof out);
    unsetenv("PGHOST");
    unsetenv("PGPORT");
    unsetenv("PGPASSWORD");
    assert_word(out, "host=envhost");
    assert_word(out, "port=6543");
    assert_not_contains(out, "envs3cret");
}

static void test_conninfo_small_buffer(void **state)
{
    (void)state;
    /* heap buffers of exact size: ASan reports any write past them */
    static const char *const urls[] = {
        "postgresql://alice:s3cret@db.example.com:5433/appdb?sslmode=require",
        "postgresql://alice:s3cret@db.example.com:5433/appdb?schema=x"};
    for (size_t u = 0; u < 2; u++) {
        for (size_t len = 1; len <= 80; len++) {
            char *out = malloc(len);
            assert_non_null(out);
            redact_conninfo(urls[u], out, len);
            assert_true(strlen(out) < len);
            assert_not_contains(out, "s3cret");
            free(out);
        }
    }
    char *out = malloc(8);
    assert_non_null(out);
    redact_conninfo("host=h password='s3cret", out, 8);
    assert_string_equal(out, "(unpars");
    free(out);
}

/* ---- redact_url ------------------------------------------------------------ */

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, NULL)
    const struct CMUnitTest tests[] = {
        T(test_prisma_init_url),
        T(test_prisma_params_stripped_libpq_kept),
        T(test_unknown_and_bad_parameters),
        T(test_tls_mapping),
        T(test_node_postgres_tls),
        T(test_client_certificate_with_its_key),
        T(test_node_postgres_refusals),
        T(test_unescaped_at),
        T(test_authority_ends_at_path_query_or_fragment),
        T(test_unescaped_delimiter_in_password),
        T(test_key_value_conninfo),
        T(test_key_value_refusal_names_libpq_reason),
        T(test_key_value_refusal_never_quotes_a_password_piece),
        T(test_refusal_of_what_is_no_connection_string),
        T(test_uri_refusal_names_libpq_reason_without_the_quote),
        T(test_redact_prisma_url),
        T(test_redact_query_at_without_path),
        T(test_conninfo_uri),
        T(test_conninfo_uri_password_variants),
        T(test_conninfo_keyword_value),
        T(test_conninfo_unparsable),
        T(test_conninfo_empty_and_defaults),
        T(test_conninfo_small_buffer),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
