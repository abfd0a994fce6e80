/* The statement checks of a migration run (--migration-checks): every
 * pending statement read with PostgreSQL's parser (lint.c) before anything
 * runs, each finding sized from the live catalog (the table's estimated
 * rows, pg_class.reltuples, and pg_total_relation_size), then logged,
 * reported, printed by --plan, or refused. See DESIGN.md "Migrations that
 * never stall the app" and README "Statement checks". */
#ifndef BANDAGE_CHECKS_H
#define BANDAGE_CHECKS_H

#include <stddef.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "lint.h"
#include "query.h"
#include "report/report.h"
#include "sqlsplit.h"

/* One pending migration's statements, in order, as the caller will run them. */
struct checks_source {
    const char *name;                   /* the migration */
    const char *sql;                    /* its file; statements point into it */
    const struct sql_statement *stmts;
    size_t n_stmts;
};

struct check_finding {
    struct lint_finding f;
    const char *migration;  /* the source's name */
    int line;               /* the statement's first line in its file */
    long long rows;         /* reltuples; -1: never analyzed, or no such table */
    long long bytes;        /* pg_total_relation_size; -1: no such table (or none named) */
    char size[24];          /* pg_size_pretty of bytes */
};

struct checks {
    struct check_finding *items;
    size_t count;
    size_t unchecked; /* statements not read at all: the binary has no parser */
};

/* Checks the statements of each source in order (a table created by one is
 * new for the ones after it, also across migrations) and sizes each
 * finding's table on conn; a name without a schema is looked up in
 * `schema` when it is not NULL (the URL's schema parameter), else on the
 * search_path. 0, or -1 with err set (a failed query; out of memory). */
int checks_run(PGconn *conn, int sfd, const char *schema, const struct checks_source *src,
               size_t n, struct checks *out, struct db_error *err);
void checks_free(struct checks *c);

/* Logs each finding (a warning; an acknowledged one as info) and adds it to
 * the report, unacknowledged ones first. */
void checks_tell(const struct checks *c, struct deploy_report *report);

/* --plan: the findings of migration `name`, one indented line each. */
void checks_print(const struct checks *c, const char *name, FILE *out);

/* The first finding that --migration-checks refuse stops at: breaking or
 * long-lock, not acknowledged. NULL when none. */
const struct check_finding *checks_refusal(const struct checks *c);

/* `drop-column on "User" (column name)`, for messages. */
void checks_describe(const struct check_finding *f, char *buf, size_t len);

#endif
