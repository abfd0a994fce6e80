/* Database URLs: libpq's own forms, and Prisma's DATABASE_URL.
 *
 * Prisma 6's meanings come from its query engine, prisma-engines
 * quaint/src/connector/postgres/url.rs (PostgresNativeUrl::parse_query_params)
 * and quaint/src/connector/postgres/native/mod.rs (how the TLS connector is
 * built from them), and Prisma's "PostgreSQL connection URL arguments" docs.
 * Prisma 7's are node-postgres's (the app connects through @prisma/adapter-pg):
 * pg-connection-string's parse() (ssl, sslmode=no-verify, uselibpqcompat) and
 * pg's own sslnegotiation. libpq's are the keywords libpq itself lists
 * (PQconninfoParse, as PQconndefaults does).
 *
 * Only a postgresql:// or postgres:// URI can be Prisma's: a key=value
 * conninfo is libpq's alone and is only parsed and re-emitted. */
#include "dburl.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

enum prisma_kind {
    PRISMA_SCHEMA,      /* search_path for Prisma; the default of --schemas */
    PRISMA_PGBOUNCER,   /* "true"/"false" (Rust bool parse): a transaction pooler */
    PRISMA_COUNT,       /* pool and cache sizes, timeouts: unsigned integers in Prisma */
    PRISMA_SSLACCEPT,   /* strict | accept_invalid_certs */
    PRISMA_SSLCERT,     /* the server's CA file (added as a root certificate) */
    PRISMA_SSLIDENTITY, /* a PKCS#12 client identity (Identity::from_pkcs12) */
    URL_SSLMODE,        /* libpq's values, and node-postgres's no-verify */
    NODEPG_SSL,         /* node-postgres: true|1 (TLS, verified), 0 (none) */
    NODEPG_LIBPQCOMPAT, /* node-postgres: "true" gives sslmode libpq's meanings */
    NODEPG_NEGOTIATION  /* sslnegotiation: postgres | direct (libpq 17, node-postgres) */
};

/* Parameters Prisma or node-postgres reads and libpq does not know (or knows
 * with another meaning: sslcert, sslmode's values, ssl). Taken out before
 * libpq parses the URL; the TLS ones are decided together (map_tls). Those
 * all read with one meaning (host, connect_timeout, application_name,
 * options, channel_binding, sslpassword, sslkey, sslrootcert) are libpq's and
 * stay. */
static const struct {
    const char *name;
    enum prisma_kind kind;
} prisma_params[] = {
    {"schema", PRISMA_SCHEMA},
    {"pgbouncer", PRISMA_PGBOUNCER},
    {"connection_limit", PRISMA_COUNT},
    {"pool_timeout", PRISMA_COUNT},
    {"socket_timeout", PRISMA_COUNT},
    {"statement_cache_size", PRISMA_COUNT},
    {"max_connection_lifetime", PRISMA_COUNT},
    {"max_idle_connection_lifetime", PRISMA_COUNT},
    {"sslaccept", PRISMA_SSLACCEPT},
    {"sslcert", PRISMA_SSLCERT},
    {"sslidentity", PRISMA_SSLIDENTITY},
    {"sslmode", URL_SSLMODE},
    {"ssl", NODEPG_SSL},
    {"uselibpqcompat", NODEPG_LIBPQCOMPAT},
    {"sslnegotiation", NODEPG_NEGOTIATION},
};

#define N_PRISMA (sizeof prisma_params / sizeof prisma_params[0])

/* What the query string said that is not passed to libpq as written. */
struct prisma_state {
    char *schema;
    int pgbouncer;
    int sslaccept_strict;
    char *sslcert;     /* Prisma 6's CA file, or (with sslkey) the client certificate */
    int has_sslkey;    /* libpq's and node-postgres's client key */
    int has_sslrootcert;
    char sslmode[16];  /* as given, "" when none */
    char ssl[16];      /* node-postgres's ssl as given (true, 1, 0, no-verify), "" when none */
    int sslaccept;     /* Prisma 6's sslaccept given: the URL is Prisma 6's */
    int libpq_compat;  /* uselibpqcompat=true */
    char negotiation[16]; /* sslnegotiation as given, "" when none */
};

static const char *uri_body(const char *s)
{
    static const char *const prefixes[] = {"postgresql://", "postgres://", NULL};
    for (int i = 0; prefixes[i]; i++)
        if (strncmp(s, prefixes[i], strlen(prefixes[i])) == 0)
            return s + strlen(prefixes[i]);
    return NULL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* application/x-www-form-urlencoded, as Prisma reads its query (url's
 * query_pairs): '+' is a space, %XX a byte, a stray '%' itself. NULL on
 * %00 (libpq refuses it too) or out of memory. */
static char *form_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            *o++ = ' ';
        } else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            char c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            if (c == '\0') {
                free(out);
                return NULL;
            }
            *o++ = c;
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* Percent-encodes every byte but the unreserved ones, for libpq's URI parser. */
static void put_encoded(FILE *out, const char *s)
{
    static const char unreserved[] = "-._~";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            (*p && strchr(unreserved, *p)))
            fputc(*p, out);
        else
            fprintf(out, "%%%02X", *p);
    }
}

/* A parameter name fit to appear in a message: a plain word. Anything else
 * may be a piece of a mistyped password. */
static const char *shown_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 40 || strspn(name, "abcdefghijklmnopqrstuvwxyz"
                                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != n)
        return NULL;
    return name;
}

static int is_libpq_keyword(const char *name)
{
    /* Every keyword libpq knows, without PQconndefaults' environment and
     * service-file lookups (which fail, NULL, on a bad PGSERVICE). */
    PQconninfoOption *defs = PQconninfoParse("", NULL);
    int found = 0;
    for (PQconninfoOption *o = defs; o && o->keyword && !found; o++)
        found = strcmp(o->keyword, name) == 0;
    PQconninfoFree(defs);
    return found;
}

static int is_unsigned(const char *v)
{
    return v[0] && strspn(v, "0123456789") == strlen(v) && strlen(v) <= 19;
}

static int one_of(const char *value, const char *const *words)
{
    for (int i = 0; words[i]; i++)
        if (strcmp(value, words[i]) == 0)
            return 1;
    return 0;
}

/* value into dest when it is one of words; else refusal (naming the
 * parameter and its values) in why. */
static int take_one_of(const char *value, const char *const *words, char *dest, size_t destlen,
                       const char *refusal, char *why, size_t len)
{
    if (!one_of(value, words)) {
        snprintf(why, len, "%s", refusal);
        return -1;
    }
    snprintf(dest, destlen, "%s", value);
    return 0;
}

/* The TLS parameters node-postgres reads (Prisma 7's driver), and sslmode
 * with its extra value: checked, recorded for map_tls. */
static int take_driver_param(enum prisma_kind kind, const char *value, struct prisma_state *st,
                             char *why, size_t len)
{
    static const char *const modes[] = {"disable", "allow",       "prefer",    "require",
                                        "verify-ca", "verify-full", "no-verify", NULL};
    static const char *const ssl_values[] = {"true", "1", "0", "no-verify", NULL};
    static const char *const negotiations[] = {"postgres", "direct", NULL};
    switch (kind) {
    case URL_SSLMODE:
        return take_one_of(value, modes, st->sslmode, sizeof st->sslmode,
                           "sslmode must be disable, allow, prefer, require, verify-ca, "
                           "verify-full or no-verify (node-postgres: TLS, not verified)",
                           why, len);
    case NODEPG_SSL:
        return take_one_of(value, ssl_values, st->ssl, sizeof st->ssl,
                           "ssl must be true, 1, 0 or no-verify (node-postgres's values); for "
                           "libpq's meanings write sslmode instead", why, len);
    case NODEPG_LIBPQCOMPAT:
        st->libpq_compat = strcmp(value, "true") == 0; /* as node-postgres: only "true" */
        return 0;
    case NODEPG_NEGOTIATION:
        return take_one_of(value, negotiations, st->negotiation, sizeof st->negotiation,
                           "sslnegotiation must be postgres or direct", why, len);
    default:
        return -1;
    }
}

/* One of Prisma's own parameters: checked as Prisma would, then recorded. */
static int take_prisma_param(enum prisma_kind kind, const char *name, char *value,
                             struct prisma_state *st, char *why, size_t len)
{
    switch (kind) {
    case PRISMA_SCHEMA:
        free(st->schema);
        st->schema = value[0] ? strdup(value) : NULL;
        if (value[0] && !st->schema) {
            snprintf(why, len, "out of memory");
            return -1;
        }
        return 0;
    case PRISMA_PGBOUNCER:
        if (strcmp(value, "true") == 0 || strcmp(value, "false") == 0) {
            st->pgbouncer = strcmp(value, "true") == 0;
            return 0;
        }
        snprintf(why, len, "pgbouncer must be true or false (Prisma's flag for a transaction "
                           "pooler)");
        return -1;
    case PRISMA_COUNT:
        if (is_unsigned(value))
            return 0;
        snprintf(why, len, "%s must be a whole number, as Prisma requires", name);
        return -1;
    case PRISMA_SSLACCEPT:
        /* Prisma: strict = danger_accept_invalid_certs(false), the chain and the
         * host name are verified; accept_invalid_certs (its default) = neither. */
        if (strcmp(value, "strict") == 0 || strcmp(value, "accept_invalid_certs") == 0) {
            st->sslaccept_strict = strcmp(value, "strict") == 0;
            st->sslaccept = 1;
            return 0;
        }
        snprintf(why, len, "sslaccept must be strict or accept_invalid_certs");
        return -1;
    case PRISMA_SSLCERT:
        free(st->sslcert);
        st->sslcert = strdup(value);
        return st->sslcert ? 0 : -1;
    case PRISMA_SSLIDENTITY:
        snprintf(why, len, "sslidentity (a PKCS#12 client identity) cannot be read by libpq; "
                           "convert it to PEM (openssl pkcs12 -clcerts -nokeys / -nocerts "
                           "-nodes) and give bandage PGSSLCERT and PGSSLKEY instead");
        return -1;
    default:
        return take_driver_param(kind, value, st, why, len);
    }
    return -1;
}

/* One key=value of the query: Prisma's taken out, libpq's re-encoded, an
 * unknown one refused by name. */
static int take_query_param(const char *seg, size_t n, FILE *kept, int *n_kept,
                            struct prisma_state *st, char *why, size_t len)
{
    const char *eq = memchr(seg, '=', n);
    char *name = form_decode(seg, eq ? (size_t)(eq - seg) : n);
    char *value = eq ? form_decode(eq + 1, n - (size_t)(eq - seg) - 1) : NULL;
    int rc = -1;

    if (!name || (eq && !value)) {
        snprintf(why, len, "a query parameter holds %%00 or memory ran out; remove it");
        goto out;
    }
    const char *shown = shown_name(name);
    if (!eq) {
        snprintf(why, len, "the query parameter %s%s%s has no '=value'", shown ? "'" : "",
                 shown ? shown : "(not shown)", shown ? "'" : "");
        goto out;
    }
    for (size_t i = 0; i < N_PRISMA; i++) {
        if (strcmp(name, prisma_params[i].name) == 0) {
            rc = take_prisma_param(prisma_params[i].kind, name, value, st, why, len);
            goto out;
        }
    }
    if (!is_libpq_keyword(name)) {
        snprintf(why, len, "unknown parameter %s%s%s: neither Prisma nor libpq reads it; check "
                           "its spelling or remove it", shown ? "'" : "",
                 shown ? shown : "(its name is not shown)", shown ? "'" : "");
        goto out;
    }
    st->has_sslkey |= strcmp(name, "sslkey") == 0;
    st->has_sslrootcert |= strcmp(name, "sslrootcert") == 0;
    fputc((*n_kept)++ ? '&' : '?', kept);
    put_encoded(kept, name);
    fputc('=', kept);
    put_encoded(kept, value);
    rc = 0;
out:
    free(name);
    free(value);
    return rc;
}

/* Where the authority (user info and hosts) ends: at the first '/', '?' or
 * '#', as Prisma (WHATWG URL) reads it. libpq looks for the user info's '@'
 * up to the first '/' only, into the query of a URL without a path. */
static const char *authority_end(const char *body)
{
    return body + strcspn(body, "/?#");
}

/* Writes the user info of the authority body..end, when it has one, with its
 * '@'. Prisma ends the user info at the authority's LAST '@', libpq at its
 * first: with an unescaped '@' in a password, libpq would take the
 * password's tail for the host. So every '@' of the user info but the last
 * is written as %40, which libpq decodes. Returns where the hosts begin. */
static const char *put_userinfo(const char *body, const char *end, FILE *out)
{
    const char *last_at = NULL;
    for (const char *p = body; p < end; p++)
        if (*p == '@')
            last_at = p;
    if (!last_at)
        return body;
    for (const char *p = body; p < last_at; p++) {
        if (*p == '@')
            fputs("%40", out);
        else
            fputc(*p, out);
    }
    fputc('@', out);
    return last_at + 1;
}

/* Checks the hosts p..end, "host[:port]" or "[ipv6][:port]" comma separated,
 * within the authority: libpq would look for a ']' as far as the string goes.
 * A port that is not digits is most often a piece of a password whose '/',
 * '?' or '#' ended the authority early; Prisma refuses it too. Refused before
 * a log line could show it as the port, and never quoted. */
static int check_hosts(const char *p, const char *end, char *why, size_t len)
{
    while (p < end) {
        if (*p == '[') {
            p = memchr(p, ']', (size_t)(end - p));
            if (!p) {
                snprintf(why, len, "an IPv6 host's '[' has no ']' before the path or query; "
                                   "write it as [::1]:5432");
                return -1;
            }
            p++;
        } else {
            while (p < end && *p != ':' && *p != ',')
                p++;
        }
        if (p < end && *p == ':')
            for (p++; p < end && *p >= '0' && *p <= '9'; p++)
                ;
        if (p < end && *p != ',') {
            snprintf(why, len, "a port after the host is not a number; if it is part of a "
                               "password, write '/', '?' and '#' in it as %%2F, %%3F and %%23");
            return -1;
        }
        p += p < end; /* past the ',' */
    }
    return 0;
}

/* Writes the URI's start (prefix, user info, hosts, path) to out. Returns
 * where the path ends (at the query's '?', the fragment's '#', or the end),
 * NULL with why set when the hosts cannot be what was meant. */
static const char *put_uri_start(const char *url, const char *body, FILE *out, char *why,
                                 size_t len)
{
    const char *end = authority_end(body);

    fwrite(url, 1, (size_t)(body - url), out);
    const char *hosts = put_userinfo(body, end, out);
    if (check_hosts(hosts, end, why, len) != 0)
        return NULL;
    const char *path_end = end + strcspn(end, "?#");
    fwrite(hosts, 1, (size_t)(path_end - hosts), out);
    return path_end;
}

/* The URI with Prisma's parameters taken out: what libpq is given. */
static char *strip_prisma(const char *url, const char *body, struct prisma_state *st,
                          char *why, size_t len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    int n_kept = 0, rc = 0;

    if (!out) {
        snprintf(why, len, "out of memory");
        return NULL;
    }
    const char *q = put_uri_start(url, body, out, why, len);
    if (!q)
        rc = -1;
    else if (*q == '?')
        q++;
    /* The fragment (from '#') is read by neither Prisma nor the server: left out. */
    while (rc == 0 && *q && *q != '#') {
        size_t n = strcspn(q, "&#");
        if (n > 0)
            rc = take_query_param(q, n, out, &n_kept, st, why, len);
        q += n + (q[n] == '&');
    }
    if (fclose(out) != 0 || rc != 0) {
        if (rc == 0)
            snprintf(why, len, "out of memory");
        free(buf);
        return NULL;
    }
    return buf;
}

static PQconninfoOption *find_option(PQconninfoOption *opts, const char *keyword)
{
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, keyword) == 0)
            return o;
    return NULL;
}

static const char *option_value(PQconninfoOption *opts, const char *keyword)
{
    PQconninfoOption *o = find_option(opts, keyword);
    return o && o->val && o->val[0] ? o->val : NULL;
}

/* libpq checks connect_timeout only on its blocking path; bandage connects
 * asynchronously and wants the error now. (A bad sslmode libpq refuses at
 * the first attempt, exit 64, with its own message.) */
static int check_values(PQconninfoOption *opts, char *why, size_t len)
{
    const char *timeout = option_value(opts, "connect_timeout");
    if (timeout) {
        char *end;
        errno = 0;
        long v = strtol(timeout, &end, 10);
        if (errno != 0 || *end != '\0' || v > 86400) {
            snprintf(why, len, "connect_timeout must be a whole number of seconds, at most 86400");
            return -1;
        }
    }
    /* No host name has an '@': one here is a piece of a user name or password. */
    const char *host = option_value(opts, "host");
    if (host && host[0] != '/' && strchr(host, '@')) {
        snprintf(why, len, "the host part holds an '@'; write '@' in the user name or password "
                           "as %%40");
        return -1;
    }
    return 0;
}

/* The TLS settings the URL asks for, in libpq's words. */
struct tls_choice {
    const char *mode;        /* sslmode, NULL: as given (or libpq's default) */
    const char *rootcert;    /* sslrootcert, NULL: as given */
    const char *clientcert;  /* sslcert, NULL: none */
    const char *negotiation; /* sslnegotiation, where this libpq has it */
};

static const char *const weak_modes[] = {"allow", "prefer", NULL};

/* sslcert is Prisma 6's CA file, and libpq's and node-postgres's client
 * certificate. With sslkey (which Prisma 6 never reads) it is the client
 * certificate; alone, Prisma 6's CA: libpq's sslrootcert (libpq then checks
 * the chain whatever sslmode says, where Prisma without strict would not). */
static int map_sslcert(const struct prisma_state *st, struct tls_choice *c, char *why, size_t len)
{
    if (!st->sslcert)
        return 0;
    if (st->has_sslkey && !st->sslaccept_strict) {
        c->clientcert = st->sslcert;
        return 0;
    }
    if (st->has_sslkey || st->has_sslrootcert) {
        snprintf(why, len, "sslcert is the server's CA in Prisma 6's URL but the client "
                           "certificate in libpq's and node-postgres's: with %s, write the CA as "
                           "sslrootcert, and give a client certificate as PGSSLCERT/PGSSLKEY",
                 st->has_sslkey ? "sslaccept" : "sslrootcert");
        return -1;
    }
    /* Prisma resolves a relative path from the folder of schema.prisma, libpq
     * from the working directory: only an absolute one means the same file. */
    if (st->sslcert[0] != '/') {
        snprintf(why, len, "sslcert (Prisma: the server's CA file) must be an absolute path for "
                           "bandage: Prisma reads a relative one from schema.prisma's folder");
        return -1;
    }
    c->rootcert = st->sslcert;
    return 0;
}

/* Where the app's driver is stricter than libpq's meaning, which bandage
 * keeps: said once in the log (note), never silently weakened or tightened. */
static void note_stricter_app(const struct prisma_state *st, char *note, size_t len)
{
    static const char *const weaker_in_libpq[] = {"allow", "prefer", "require", "verify-ca",
                                                  NULL};
    const char *given = st->sslmode;
    if (st->sslaccept) /* Prisma 6's URL: quaint's meanings are libpq's (above) */
        return;
    if (!st->libpq_compat && (one_of(given, weaker_in_libpq) ||
                              (!given[0] && one_of(st->ssl, (const char *const[]){"true", "1",
                                                                                 NULL}))))
        snprintf(note, len, "%s=%s: node-postgres (Prisma 7's driver) verifies the server's "
                            "certificate and host name for it, libpq does not, and bandage "
                            "keeps libpq's meaning; write sslmode=verify-full to verify in "
                            "both, or sslmode=no-verify in neither",
                 given[0] ? "sslmode" : "ssl", given[0] ? given : st->ssl);
    else if (st->libpq_compat && strcmp(given, "no-verify") == 0)
        snprintf(note, len, "sslmode=no-verify with uselibpqcompat=true: node-postgres then "
                            "verifies the certificate and host name, bandage does not (libpq's "
                            "require); drop uselibpqcompat=true to verify in neither");
}

/* Direct TLS (sslnegotiation=direct) never falls back to plaintext: with
 * sslmode=disable it is refused (node-postgres refuses it too); with none,
 * allow or prefer it means require (libpq 17 refuses those, node-postgres
 * enables TLS). A libpq without it negotiates the standard way, which every
 * PostgreSQL server answers, and says so. */
static int map_negotiation(const struct prisma_state *st, struct tls_choice *c, char *note,
                           size_t notelen, char *why, size_t len)
{
    if (strcmp(st->negotiation, "direct") != 0)
        return 0;
    if (c->mode && strcmp(c->mode, "disable") == 0) {
        snprintf(why, len, "sslnegotiation=direct is TLS from the first byte: it cannot go "
                           "with sslmode=disable; remove one of them");
        return -1;
    }
    if (!c->mode || one_of(c->mode, weak_modes))
        c->mode = "require";
    if (is_libpq_keyword("sslnegotiation"))
        c->negotiation = "direct";
    else if (!note[0])
        snprintf(note, notelen, "sslnegotiation=direct: this libpq (%d) has no direct TLS, so "
                                "bandage asks for TLS the standard way (PostgreSQL answers "
                                "both; a proxy that takes only direct TLS does not)",
                 PQlibVersion() / 10000);
    return 0;
}

/* sslmode from the URL's TLS words, libpq's meaning kept where they agree:
 *  - node-postgres's sslmode=no-verify (TLS, not verified) is libpq's require;
 *    its ssl=true|1 without sslmode is libpq's own ssl=true, require.
 *  - Prisma 6's sslaccept=strict verifies chain and host name: verify-full
 *    (no plaintext fallback even with Prisma's default sslmode=prefer). */
static int map_tls(const struct prisma_state *st, struct tls_choice *c, char *note,
                   size_t notelen, char *why, size_t len)
{
    memset(c, 0, sizeof *c);
    if (st->sslmode[0])
        c->mode = strcmp(st->sslmode, "no-verify") == 0 ? "require" : st->sslmode;
    else if (st->ssl[0] && strcmp(st->ssl, "0") != 0)
        c->mode = "require"; /* libpq's own ssl=true; no-verify: TLS, not verified */
    if (st->sslaccept_strict && !(c->mode && strcmp(c->mode, "disable") == 0))
        c->mode = "verify-full";
    note_stricter_app(st, note, notelen);
    if (map_negotiation(st, c, note, notelen, why, len) != 0)
        return -1;
    return map_sslcert(st, c, why, len);
}

static void put_quoted(FILE *out, const char *keyword, const char *value)
{
    fprintf(out, "%s%s='", ftell(out) ? " " : "", keyword);
    for (const char *p = value; *p; p++) {
        if (*p == '\'' || *p == '\\')
            fputc('\\', out);
        fputc(*p, out);
    }
    fputc('\'', out);
}

/* The parsed options as key=value conninfo, with the mapped TLS settings.
 * PQconninfoParse lists every keyword libpq knows (val NULL when not given). */
static char *emit_conninfo(PQconninfoOption *opts, const struct tls_choice *c)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    if (!out)
        return NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        const char *v = o->val;
        if (c->mode && strcmp(o->keyword, "sslmode") == 0)
            v = c->mode;
        if (c->rootcert && strcmp(o->keyword, "sslrootcert") == 0)
            v = c->rootcert;
        if (c->clientcert && strcmp(o->keyword, "sslcert") == 0)
            v = c->clientcert;
        if (c->negotiation && strcmp(o->keyword, "sslnegotiation") == 0)
            v = c->negotiation;
        if (v)
            put_quoted(out, o->keyword, v);
    }
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---- why libpq refused a string --------------------------------------------- */

#define URL_FORM "postgresql://user:password@host:port/dbname"

/* What stopped libpq's key=value parser (conninfo_parse in libpq's
 * fe-connect.c): the same walk over the string, so that the word libpq
 * quotes can be judged before it is shown. */
enum kv_fault { KV_NONE, KV_NO_EQUALS, KV_UNKNOWN_KEYWORD, KV_UNTERMINATED };

struct kv_stop {
    enum kv_fault fault;
    const char *word;    /* the keyword, or the word without '=', libpq stopped at */
    size_t len;
    int after_password;  /* it follows an unquoted password or sslpassword value */
};

static const char *skip_spaces(const char *p)
{
    while (*p && isspace((unsigned char)*p))
        p++;
    return p;
}

/* Past the value at p, read as libpq reads it: up to a space (a backslash
 * takes the next byte as it is), or within single quotes. NULL when a
 * quote is never closed. */
static const char *skip_value(const char *p)
{
    if (*p != '\'') {
        for (; *p && !isspace((unsigned char)*p); p++)
            if (*p == '\\' && p[1])
                p++;
        return p;
    }
    for (p++; *p != '\''; p++) {
        if (!*p)
            return NULL;
        if (*p == '\\' && p[1])
            p++;
    }
    return p + 1;
}

/* libpq itself judges the keyword, so the walk stops where its parse did. */
static int libpq_takes_keyword(const char *word, size_t len)
{
    char probe[64];
    if (len + 4 > sizeof probe)
        return 0;
    snprintf(probe, sizeof probe, "%.*s=''", (int)len, word);
    PQconninfoOption *opts = PQconninfoParse(probe, NULL);
    PQconninfoFree(opts);
    return opts != NULL;
}

static int is_password_keyword(const char *word, size_t len)
{
    return (len == 8 && strncmp(word, "password", 8) == 0) ||
           (len == 11 && strncmp(word, "sslpassword", 11) == 0);
}

/* Where and why libpq's parse of the key=value string s stopped. */
static struct kv_stop kv_walk(const char *s)
{
    struct kv_stop st = {KV_NONE, NULL, 0, 0};
    int after_password = 0;
    for (const char *p = skip_spaces(s); *p; p = skip_spaces(p)) {
        st = (struct kv_stop){KV_NONE, p, 0, after_password};
        while (*p && *p != '=' && !isspace((unsigned char)*p))
            p++;
        st.len = (size_t)(p - st.word);
        p = skip_spaces(p);
        if (*p != '=') {
            st.fault = KV_NO_EQUALS;
            break;
        }
        p = skip_spaces(p + 1);
        int quoted = *p == '\'';
        /* libpq reads the value before it looks the keyword up */
        if (!(p = skip_value(p))) {
            st.fault = KV_UNTERMINATED;
            break;
        }
        if (!libpq_takes_keyword(st.word, st.len)) {
            st.fault = KV_UNKNOWN_KEYWORD;
            break;
        }
        after_password = !quoted && is_password_keyword(st.word, st.len);
    }
    return st;
}

static int is_prisma_param(const char *name)
{
    for (size_t i = 0; i < N_PRISMA; i++)
        if (strcmp(name, prisma_params[i].name) == 0)
            return 1;
    return 0;
}

/* libpq's message, first line, without its line break. */
static void first_line(const char *perr, char *out, size_t outlen)
{
    snprintf(out, outlen, "%.*s", perr ? (int)strcspn(perr, "\r\n") : 0, perr ? perr : "");
}

#define KV_ADVICE "write key=value pairs like 'host=db dbname=app', a value with spaces in " \
                  "single quotes"

/* The word libpq stopped at, which its message (reason) quotes: shown only
 * when it is a plain word that cannot be a piece of a password, i.e. does
 * not follow an unquoted one (`password=correct horse` stops at "horse"). */
static void explain_kv_word(const struct kv_stop *st, const char *reason, char *why, size_t len)
{
    char word[48];
    snprintf(word, sizeof word, "%.*s", (int)st->len, st->word);
    int plain = st->len < sizeof word && shown_name(word);
    if (st->after_password)
        snprintf(why, len, "libpq refused the word after the password (not shown: it may be "
                           "part of it); if the password holds a space, put it in single quotes: "
                           "password='...'");
    else if (!plain)
        snprintf(why, len, "libpq refused it at %s (not shown: not a plain word, it may be part "
                           "of a password); " KV_ADVICE,
                 st->fault == KV_NO_EQUALS ? "a word without \"=\""
                                           : "an invalid connection option");
    else if (!strstr(reason, word)) /* not the message the walk expects: not shown */
        snprintf(why, len, "libpq cannot read it at '%s'; " KV_ADVICE, word);
    else if (st->fault == KV_NO_EQUALS)
        snprintf(why, len, "libpq refused it: %s; " KV_ADVICE, reason);
    else if (is_prisma_param(word))
        snprintf(why, len, "libpq refused it: %s; %s is Prisma's, read from the query of a "
                           "postgresql:// URL only: write the URL form, or leave it out",
                 reason, word);
    else
        snprintf(why, len, "libpq refused it: %s; check the keyword's spelling", reason);
}

/* A key=value string libpq refused (perr its message). */
static void explain_key_value(const char *url, const char *perr, char *why, size_t len)
{
    char reason[256], word[48];
    struct kv_stop st = kv_walk(url);
    first_line(perr, reason, sizeof reason);
    if (st.fault == KV_NO_EQUALS || st.fault == KV_UNKNOWN_KEYWORD) {
        explain_kv_word(&st, reason, why, len);
    } else if (st.fault == KV_UNTERMINATED) {
        /* libpq's message quotes nothing here; the keyword is named if plain */
        snprintf(word, sizeof word, "%.*s", (int)st.len, st.word);
        snprintf(why, len, "libpq refused it: %s (the value of %s); close the quote, and write a "
                           "quote inside a value as \\'", reason,
                 st.len < sizeof word && shown_name(word) ? word : "a keyword");
    } else {
        snprintf(why, len, "libpq cannot read it as key=value pairs; " KV_ADVICE);
    }
}

/* ASCII letters, digits, and " -%()": not a quote, a colon or a byte of
 * a translation's quotation marks (UTF-8). */
static int is_reason_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr(" -%()", c));
}

/* libpq's URI messages end in a quote of the whole URI or of a decoded part
 * of it (a password): only the reason before it is shown. */
static void explain_uri(const char *perr, char *why, size_t len)
{
    char reason[128];
    size_t n = 0;
    while (perr && n + 1 < sizeof reason && is_reason_char(perr[n]))
        n++;
    while (n > 0 && perr[n - 1] == ' ')
        n--;
    snprintf(reason, sizeof reason, "%.*s", (int)n, perr ? perr : "");
    snprintf(why, len, "libpq refused it%s%s; write it as " URL_FORM ", special characters in "
                       "the user name, password and database name percent-encoded (%%25 for %%)",
             n ? ": " : "", reason);
}

/* Starts like a URL (the first word has ":/" before any '='), but not one
 * of the two schemes libpq reads. */
static int looks_like_url(const char *url)
{
    size_t first = strcspn(url, "= \t\r\n");
    const char *mark = strstr(url, ":/");
    return mark && (size_t)(mark - url) < first;
}

/* One line on why libpq refused url, with the fix for the form in use (the
 * other form only when it is the one that would help), never quoting what
 * may be a piece of a password. */
static void explain_refusal(const char *url, int is_uri, const char *perr, char *why,
                            size_t len)
{
    if (is_uri)
        explain_uri(perr, why, len);
    else if (looks_like_url(url))
        snprintf(why, len, "it looks like a URL, but only postgresql:// or postgres:// URLs are "
                           "read; write it as " URL_FORM " (special characters percent-encoded)");
    else if (!strchr(url, '='))
        snprintf(why, len, "it is neither a postgresql:// URL nor key=value pairs; write " URL_FORM
                           " (special characters percent-encoded) or key=value pairs like "
                           "'host=db dbname=app'");
    else
        explain_key_value(url, perr, why, len);
}

static int has_secret(PQconninfoOption *opts)
{
    return option_value(opts, "password") || option_value(opts, "sslpassword");
}

int dburl_parse(const char *url, struct dburl *out, char *why, size_t len)
{
    struct prisma_state st = {0};
    const char *body = uri_body(url);
    char *libpq_form = NULL, *perr = NULL;
    PQconninfoOption *opts = NULL;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (strncmp(url, "prisma://", 9) == 0 || strncmp(url, "prisma+postgres://", 18) == 0) {
        snprintf(why, len, "a Prisma Accelerate URL is not a database's; give bandage the "
                           "database's own URL (DIRECT_URL)");
        return -1;
    }
    if (body && !(libpq_form = strip_prisma(url, body, &st, why, len)))
        goto out;
    opts = PQconninfoParse(libpq_form ? libpq_form : url, &perr);
    if (!opts)
        explain_refusal(url, body != NULL, perr, why, len);
    PQfreemem(perr);
    if (!opts)
        goto out;
    struct tls_choice tls = {0};
    if (check_values(opts, why, len) != 0 ||
        (body && map_tls(&st, &tls, out->note, sizeof out->note, why, len) != 0))
        goto out;
    if (!(out->conninfo = emit_conninfo(opts, &tls))) {
        snprintf(why, len, "out of memory");
        goto out;
    }
    out->schema = st.schema;
    st.schema = NULL;
    out->pgbouncer = st.pgbouncer;
    out->has_secret = has_secret(opts);
    rc = 0;
out:
    PQconninfoFree(opts);
    free(libpq_form);
    free(st.schema);
    free(st.sslcert);
    return rc;
}

void dburl_free(struct dburl *u)
{
    free(u->conninfo);
    free(u->schema);
    memset(u, 0, sizeof *u);
}

static void append_part(char *out, size_t outlen, size_t *used, const char *key,
                        const char *value)
{
    if (!value || !value[0] || *used >= outlen)
        return;
    int n = snprintf(out + *used, outlen - *used, "%s%s=%s", *used ? " " : "", key, value);
    if (n > 0)
        *used += (size_t)n;
}

void redact_conninfo(const char *conninfo, char *out, size_t outlen)
{
    /* An allowlist: password, sslpassword and whatever libpq adds later never show. */
    static const char *const shown[] = {"host", "hostaddr", "port", "dbname", "user",
                                        "sslmode", NULL};
    struct dburl url = {0};
    char why[8];
    PQconninfoOption *opts = NULL;
    size_t used = 0;

    out[0] = '\0';
    if (!conninfo)
        opts = PQconndefaults();
    else if (dburl_parse(conninfo, &url, why, sizeof why) == 0)
        opts = PQconninfoParse(url.conninfo, NULL);
    dburl_free(&url);
    if (!opts) {
        snprintf(out, outlen, "(unparsable connection string)");
        return;
    }
    for (int k = 0; shown[k]; k++)
        append_part(out, outlen, &used, shown[k], option_value(opts, shown[k]));
    PQconninfoFree(opts);
    if (used == 0)
        snprintf(out, outlen, "(libpq defaults)");
}
