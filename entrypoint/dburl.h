/* Database URLs as users write them: libpq's URI or key=value conninfo, and
 * Prisma's DATABASE_URL (its own query parameters taken out or mapped onto
 * libpq's). A leaf helper: libpq only, no logging. */
#ifndef BANDAGE_DBURL_H
#define BANDAGE_DBURL_H

#include <stddef.h>

struct dburl {
    char *conninfo;  /* key=value conninfo for libpq, in owned storage */
    char *schema;    /* Prisma's `schema` parameter, NULL when none (or empty) */
    int pgbouncer;   /* Prisma's pgbouncer=true: a transaction pooler */
    int has_secret;  /* a password or sslpassword is in it */
    char note[320];  /* "" or one line for the log: where the app's driver reads the URL
                      * more strictly than libpq, whose meaning bandage keeps */
};

/* Parses url as libpq does (PQconninfoParse), after taking Prisma's
 * parameters out of a postgresql:// URI. 0 on success (free with
 * dburl_free); -1 with one line in why naming the parameter and the fix,
 * never quoting a value that may be secret. When libpq refuses the string,
 * why gives libpq's reason, the word libpq quotes only when it cannot be a
 * piece of a password, and advice for the form in use. */
int dburl_parse(const char *url, struct dburl *out, char *why, size_t len);

void dburl_free(struct dburl *u);

/* "host=db port=5432 dbname=app user=app": what a conninfo, URI or Prisma
 * URL names, from its parsed form, never a password or sslpassword. NULL
 * conninfo describes libpq's PG* defaults. */
void redact_conninfo(const char *conninfo, char *out, size_t outlen);

#endif
