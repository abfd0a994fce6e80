/* The large-schema path: "move aside, then build" (DESIGN.md, The reset,
 * precisely). One transaction cannot drop or create more objects than the
 * server's shared lock table holds (about 2,000 Prisma tables by default), so:
 *
 *   1. one short transaction renames each live schema aside
 *      (bandage_aside_N), creates it anew with the same owner, ACL, comment and
 *      default privileges, moves its extensions over, and records the move in
 *      bandage.resets_in_progress;
 *   2. the schema file is applied in batches, each its own transaction, sized
 *      to fit the lock table (halved and retried on "out of shared memory");
 *   3. success: the deploy is recorded and the aside schemas are dropped in
 *      batches. Failure: the half-built schemas are dropped in batches, the
 *      extensions moved back and the aside schemas renamed back, so the old
 *      schema, its data and its OIDs are exactly as they were.
 *
 * A start that finds rows in bandage.resets_in_progress (a crash mid-way)
 * finishes or undoes that reset first, under the advisory lock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "exitcodes.h"
#include "log.h"
#include "reset_internal.h"

#define OUT_OF_SHARED_MEMORY "53200"

/* Statements that drop what lives in a schema (not extension members),
 * tables first, each statement naming at most $2 objects of one kind: one
 * DROP of many objects walks the dependencies once, many DROPs walk them many
 * times. IF EXISTS covers what an earlier CASCADE already took. */
static const char drop_batch_sql[] =
    "WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = $1),"
    " ext AS (SELECT objid, classid FROM pg_depend WHERE deptype = 'e'),"
    " objects AS ("
    "  SELECT 1 AS ord, c.oid AS o, CASE c.relkind WHEN 'v' THEN 'VIEW'"
    "         WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'"
    "         WHEN 'S' THEN 'SEQUENCE' WHEN 'c' THEN 'TYPE' ELSE 'TABLE' END AS kind,"
    "         format('%I.%I', $1, c.relname) AS name"
    "    FROM pg_class c, ns WHERE c.relnamespace = ns.oid"
    "     AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S', 'c') AND NOT c.relispartition"
    "     AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_class'::regclass"
    "                     AND ext.objid = c.oid)"
    "  UNION ALL SELECT 2, t.oid, 'TYPE', format('%I.%I', $1, t.typname)"
    "    FROM pg_type t, ns WHERE t.typnamespace = ns.oid AND t.typtype IN ('e', 'd', 'r', 'm')"
    "     AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_type'::regclass"
    "                     AND ext.objid = t.oid)"
    "  UNION ALL SELECT 3, p.oid, CASE p.prokind WHEN 'p' THEN 'PROCEDURE'"
    "         WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END,"
    "         format('%I.%I(%s)', $1, p.proname, pg_get_function_identity_arguments(p.oid))"
    "    FROM pg_proc p, ns WHERE p.pronamespace = ns.oid"
    "     AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_proc'::regclass"
    "                     AND ext.objid = p.oid)),"
    " numbered AS (SELECT *, (row_number() OVER (PARTITION BY ord, kind ORDER BY o) - 1) / $2"
    "              AS chunk FROM objects)"
    " SELECT format('DROP %s IF EXISTS %s CASCADE', kind, string_agg(name, ', ' ORDER BY o))"
    "  FROM numbered GROUP BY ord, kind, chunk ORDER BY ord, kind, chunk";

static int run_or_fail(struct reset_ctx *c, const char *sql, const char *what)
{
    struct db_error err;
    if (db_run(c->conn, c->sfd, sql, &err) == 0)
        return 0;
    return reset_sql_failed(c, "reset", what, &err, EXIT_SCHEMA);
}

static void rollback(struct reset_ctx *c)
{
    struct db_error err;
    db_run(c->conn, c->sfd, "ROLLBACK", &err);
}

/* COMMIT when rc is 0, else ROLLBACK; returns rc, or COMMIT's failure. */
static int end_transaction(struct reset_ctx *c, int rc)
{
    if (rc == 0)
        return run_or_fail(c, "COMMIT", "COMMIT");
    rollback(c);
    return rc;
}

/* Runs rows [from, to) of res (each one SQL statement) in one transaction.
 * Returns 0, 1 if the lock table ran out (rolled back), or an exit code. */
static int run_statements_in_transaction(struct reset_ctx *c, PGresult *res, int from, int to,
                                         const char *what)
{
    struct db_error err;
    if (db_run(c->conn, c->sfd, "BEGIN", &err) != 0)
        return reset_sql_failed(c, "reset", what, &err, EXIT_SCHEMA);
    for (int i = from; i < to; i++) {
        if (db_run(c->conn, c->sfd, PQgetvalue(res, i, 0), &err) != 0) {
            rollback(c);
            if (strcmp(err.sqlstate, OUT_OF_SHARED_MEMORY) == 0)
                return 1;
            return reset_sql_failed(c, "reset", what, &err, EXIT_SCHEMA);
        }
    }
    if (db_run(c->conn, c->sfd, "COMMIT", &err) != 0)
        return reset_sql_failed(c, "reset", what, &err, EXIT_SCHEMA);
    return 0;
}

/* Empties a schema a batch of objects at a time; the schema itself stays. */
static int drop_contents_in_batches(struct reset_ctx *c, const char *schema)
{
    long batch = c->lock_budget / 32 > 0 ? c->lock_budget / 32 : 1;
    long statements = 0, start = monotonic_ms();
    for (;;) {
        struct db_error err;
        char limit[24];
        snprintf(limit, sizeof limit, "%ld", batch);
        const char *params[] = {schema, limit};
        PGresult *res = db_exec(c->conn, c->sfd, drop_batch_sql, 2, params, &err);
        if (!res)
            return reset_sql_failed(c, "reset", "listing objects to drop", &err, EXIT_SCHEMA);
        int n = PQntuples(res), rc = 0;
        for (int i = 0; i < n && rc == 0; i++)
            rc = run_statements_in_transaction(c, res, i, i + 1, "dropping objects");
        PQclear(res);
        statements += n;
        if (rc == 1 && batch > 1) {
            batch /= 2; /* the lock table is shared: others may hold part of it */
            continue;
        }
        if (rc != 0)
            return rc == 1 ? EXIT_SCHEMA : rc;
        if (n == 0) {
            log_info("emptied schema %s in %ld statements in %ld ms", schema, statements,
                     monotonic_ms() - start);
            return 0;
        }
    }
}

static char *quote_ident(struct reset_ctx *c, const char *name)
{
    return PQescapeIdentifier(c->conn, name, strlen(name));
}

/* "ALTER SCHEMA a RENAME TO b" and the like, with both names quoted. */
static int run_two_names(struct reset_ctx *c, const char *fmt, const char *a, const char *b,
                         const char *what)
{
    char *qa = quote_ident(c, a), *qb = quote_ident(c, b);
    char *sql = qa && qb ? malloc(strlen(fmt) + strlen(qa) + strlen(qb) + 1) : NULL;
    int rc = EXIT_INTERNAL;
    if (sql) {
        sprintf(sql, fmt, qa, qb);
        rc = run_or_fail(c, sql, what);
    }
    free(sql);
    PQfreemem(qa);
    PQfreemem(qb);
    return rc;
}

static int run_one_name(struct reset_ctx *c, const char *fmt, const char *name, const char *what)
{
    char *q = quote_ident(c, name);
    char *sql = q ? malloc(strlen(fmt) + strlen(q) + 1) : NULL;
    int rc = EXIT_INTERNAL;
    if (sql) {
        sprintf(sql, fmt, q);
        rc = run_or_fail(c, sql, what);
    }
    free(sql);
    PQfreemem(q);
    return rc;
}

/* Moves every extension that lives in schema `from` to schema `to`. */
static int move_extensions(struct reset_ctx *c, const char *from, const char *to)
{
    struct db_error err;
    const char *params[] = {from, to};
    PGresult *res = db_exec(c->conn, c->sfd,
                            "SELECT format('ALTER EXTENSION %I SET SCHEMA %I', e.extname, $2::text)"
                            " FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
                            " WHERE n.nspname = $1 ORDER BY e.oid",
                            2, params, &err);
    if (!res)
        return reset_sql_failed(c, "reset", "listing extensions", &err, EXIT_SCHEMA);
    int rc = 0;
    for (int i = 0; i < PQntuples(res) && rc == 0; i++)
        rc = run_or_fail(c, PQgetvalue(res, i, 0), "moving an extension");
    PQclear(res);
    return rc;
}

static const char progress_table_sql[] =
    "CREATE SCHEMA IF NOT EXISTS bandage;"
    "CREATE TABLE IF NOT EXISTS bandage.resets_in_progress ("
    " aside text PRIMARY KEY, original text NOT NULL, state text NOT NULL,"
    " deployment_id text, started_at timestamptz NOT NULL DEFAULT now())";

/* Step 1, inside the caller's transaction: schema `name` goes aside. */
static int move_schema_aside(struct reset_ctx *c, const char *name, const char *aside)
{
    struct db_error err;
    const char *params[] = {aside, name, c->cfg->deployment_id};
    /* A schema asked for that never existed: an empty one goes aside. */
    int rc = run_one_name(c, "CREATE SCHEMA IF NOT EXISTS %s", name, "creating the schema");
    PGresult *restore = rc ? NULL : reset_restore_statements(c, name, "move", &rc);
    if (!restore)
        return rc;
    rc = run_two_names(c, "ALTER SCHEMA %s RENAME TO %s", name, aside, "moving the schema aside");
    for (int i = 0; i < PQntuples(restore) && rc == 0; i++)
        rc = run_or_fail(c, PQgetvalue(restore, i, 0), "recreating the schema");
    PQclear(restore);
    if (rc == 0) {
        PGresult *res = db_exec(c->conn, c->sfd,
                                "INSERT INTO bandage.resets_in_progress (aside, original, state,"
                                " deployment_id) VALUES ($1, $2, 'building', $3)",
                                3, params, &err);
        rc = res ? 0 : reset_sql_failed(c, "reset", "recording progress", &err, EXIT_SCHEMA);
        PQclear(res);
    }
    return rc;
}

static int move_all_aside(struct reset_ctx *c)
{
    char *names = strdup(c->cfg->schemas);
    char *save = NULL;
    int rc = names ? 0 : EXIT_INTERNAL, i = 0;
    if (rc == 0)
        rc = run_or_fail(c, "BEGIN", "BEGIN");
    if (rc == 0)
        rc = run_or_fail(c, progress_table_sql, "creating bandage.resets_in_progress");
    if (rc == 0)
        rc = reset_terminate_other_sessions(c);
    for (char *n = names ? strtok_r(names, ",", &save) : NULL; n && rc == 0;
         n = strtok_r(NULL, ",", &save)) {
        char aside[32];
        snprintf(aside, sizeof aside, "bandage_aside_%d", i++);
        rc = move_schema_aside(c, n, aside);
    }
    free(names);
    return end_transaction(c, rc);
}

/* Step 2: the schema file, as many statements per transaction as fit. */
static int apply_in_batches(struct reset_ctx *c)
{
    size_t batch = (size_t)(c->lock_budget / 16 > 0 ? c->lock_budget / 16 : 1);
    size_t i = 0;
    struct db_error err;
    while (i < c->n_stmts) {
        size_t end = i + batch < c->n_stmts ? i + batch : c->n_stmts, j;
        if (db_run(c->conn, c->sfd, "BEGIN", &err) != 0)
            return reset_sql_failed(c, "reset", "BEGIN", &err, EXIT_SCHEMA);
        for (j = i; j < end; j++)
            if (reset_run_statement(c, j, &err) != 0)
                break;
        if (j == end && db_run(c->conn, c->sfd, "COMMIT", &err) == 0) {
            for (; i < end; i++)
                reset_count_applied(c, i);
            continue;
        }
        rollback(c);
        if (strcmp(err.sqlstate, OUT_OF_SHARED_MEMORY) == 0 && batch > 1 && !err.stop_signal) {
            batch /= 2;
            log_debug("lock table full: batches of %zu statements now", batch);
            continue;
        }
        return j < end ? reset_statement_failed(c, j, &err)
                       : reset_sql_failed(c, "reset", "COMMIT", &err, EXIT_SCHEMA);
    }
    return 0;
}

/* Drops bandage.resets_in_progress once empty, and the bandage schema if it
 * holds nothing else, so that an undone reset leaves no trace. */
static int drop_progress_table_if_empty(struct reset_ctx *c)
{
    struct db_error err;
    int empty = reset_query_bool(c, "SELECT NOT EXISTS (SELECT 1 FROM bandage.resets_in_progress)",
                                 NULL, &err);
    if (empty < 0)
        return reset_sql_failed(c, "reset", "reading bandage.resets_in_progress", &err, EXIT_SCHEMA);
    if (!empty)
        return 0;
    int rc = run_or_fail(c, "DROP TABLE bandage.resets_in_progress", "dropping progress table");
    int alone = rc ? -1 : reset_query_bool(c, "SELECT NOT EXISTS (SELECT 1 FROM pg_class"
                                               " WHERE relnamespace = 'bandage'::regnamespace)",
                                           NULL, &err);
    if (alone > 0)
        rc = run_or_fail(c, "DROP SCHEMA bandage", "dropping schema bandage");
    return rc;
}

/* Deletes aside's row from bandage.resets_in_progress (in the open transaction). */
static int forget_progress(struct reset_ctx *c, const char *aside)
{
    const char *params[] = {aside};
    struct db_error err;
    PGresult *res = db_exec(c->conn, c->sfd,
                            "DELETE FROM bandage.resets_in_progress WHERE aside = $1",
                            1, params, &err);
    int rc = res ? 0 : reset_sql_failed(c, "reset", "recording progress", &err, EXIT_SCHEMA);
    PQclear(res);
    return rc;
}

/* Undo: the half-built schema goes, the old one comes back as it was. */
static int restore_one(struct reset_ctx *c, const char *aside, const char *original)
{
    int rc;
    log_warn("restoring schema %s from %s", original, aside);
    if ((rc = drop_contents_in_batches(c, original)) != 0 ||
        (rc = run_or_fail(c, "BEGIN", "BEGIN")) != 0)
        return rc;
    if ((rc = move_extensions(c, original, aside)) == 0 &&
        (rc = run_one_name(c, "DROP SCHEMA IF EXISTS %s CASCADE", original,
                           "dropping the half-built schema")) == 0 &&
        (rc = run_two_names(c, "ALTER SCHEMA %s RENAME TO %s", aside, original,
                            "renaming the schema back")) == 0)
        rc = forget_progress(c, aside);
    return end_transaction(c, rc);
}

/* Done: the old schema goes, a batch at a time. */
static int drop_aside(struct reset_ctx *c, const char *aside)
{
    int rc;
    if ((rc = drop_contents_in_batches(c, aside)) != 0 ||
        (rc = run_or_fail(c, "BEGIN", "BEGIN")) != 0)
        return rc;
    rc = run_one_name(c, "DROP SCHEMA IF EXISTS %s CASCADE", aside, "dropping the old schema");
    if (rc == 0)
        rc = forget_progress(c, aside);
    return end_transaction(c, rc);
}

/* Finishes (state 'built') or undoes (state 'building') every recorded move. */
static int settle_progress(struct reset_ctx *c)
{
    struct db_error err;
    PGresult *res = db_exec(c->conn, c->sfd,
                            "SELECT aside, original, state FROM bandage.resets_in_progress"
                            " ORDER BY aside DESC", /* undo in the reverse order of the moves */
                            0, NULL, &err);
    if (!res)
        return reset_sql_failed(c, "reset", "reading bandage.resets_in_progress", &err, EXIT_SCHEMA);
    int rc = 0;
    for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
        if (strcmp(PQgetvalue(res, i, 2), "built") == 0)
            rc = drop_aside(c, PQgetvalue(res, i, 0));
        else
            rc = restore_one(c, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
    }
    PQclear(res);
    return rc ? rc : drop_progress_table_if_empty(c);
}

int reset_recover_interrupted(struct reset_ctx *c)
{
    struct db_error err;
    int exists = reset_query_bool(c, "SELECT to_regclass('bandage.resets_in_progress') IS NOT NULL",
                                  NULL, &err);
    if (exists < 0)
        return reset_sql_failed(c, "reset", "looking for an interrupted reset", &err, EXIT_INTERNAL);
    if (!exists)
        return 0;
    log_warn("found an interrupted reset (bandage.resets_in_progress); settling it first");
    return settle_progress(c);
}

int reset_needs_batches(struct reset_ctx *c, int *batched)
{
    struct db_error err;
    const char *params[] = {c->cfg->schemas};
    PGresult *res = db_exec(
        c->conn, c->sfd,
        "SELECT current_setting('max_locks_per_transaction')::bigint *"
        " (current_setting('max_connections')::bigint"
        "  + current_setting('max_prepared_transactions')::bigint),"
        " (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        "   WHERE n.nspname = ANY (string_to_array($1, ',')))",
        1, params, &err);
    if (!res)
        return reset_sql_failed(c, "reset", "sizing the reset", &err, EXIT_INTERNAL);
    c->lock_budget = atol(PQgetvalue(res, 0, 0));
    long objects = atol(PQgetvalue(res, 0, 1)) + (long)c->n_stmts;
    PQclear(res);
    /* A quarter of the shared table: other sessions' locks and the several
     * locks one object can take (table, indexes, types) share the rest. */
    *batched = objects > c->lock_budget / 4;
    log_debug("reset size: %ld relations + statements, lock table %ld: %s", objects,
              c->lock_budget, *batched ? "in batches" : "one transaction");
    return 0;
}

int reset_in_batches(struct reset_ctx *c)
{
    struct db_error err;
    int rc;
    log_info("large reset: moving the schema(s) aside, then building in batches");
    if ((rc = move_all_aside(c)) != 0)
        return rc;
    long start = monotonic_ms();
    rc = apply_in_batches(c);
    if (rc != 0) {
        int undo = settle_progress(c);
        if (undo != 0)
            log_error("could not restore the old schema(s) yet; the next start will (%d)", undo);
        return rc;
    }
    if ((rc = run_or_fail(c, "BEGIN", "BEGIN")) != 0 ||
        (rc = run_or_fail(c, "UPDATE bandage.resets_in_progress SET state = 'built'",
                          "recording progress")) != 0 ||
        (!c->cfg->schema_command && (rc = reset_record_deploy(c)) != 0)) {
        rollback(c);
        settle_progress(c);
        return rc;
    }
    if (db_run(c->conn, c->sfd, "COMMIT", &err) != 0)
        return reset_sql_failed(c, "reset", "COMMIT", &err, EXIT_SCHEMA);
    log_info("applied %ld statements in batches in %ld ms", c->report->statements,
             monotonic_ms() - start);
    return settle_progress(c);
}
