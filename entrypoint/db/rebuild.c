#include "rebuild.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "exclusive.h"
#include "exitcodes.h"
#include "kept.h"
#include "log.h"
#include "preflight.h"
#include "progress.h"
#include "reset.h"
#include "schemafile.h"
#include "snapshot.h"

/* Sizes at which PostgreSQL's cost per DDL statement stays flat, measured
 * with the default lock table (max_locks_per_transaction 64 x 100
 * connections): past them the cost per statement grows with the size of
 * the transaction, so a raised lock table must not make batches (or the
 * one-transaction path) bigger. At 1,500 Prisma tables with
 * max_locks_per_transaction = 2048 (data on tmpfs, bench/README.md), the
 * drop and create in one transaction took 1.11x the server's floor, these
 * batches 1.02x. */
#define FLAT_OBJECTS 1600        /* relations + statements for one transaction */
#define FLAT_STATEMENTS 400      /* schema-file statements per batch */
#define FLAT_DROP_OBJECTS 200    /* objects named by one DROP */

static long lesser(long a, long b)
{
    return a < b ? a : b;
}

/* One row of bandage.resets_in_progress. */
struct move {
    char original[128];
    char aside[64];
    char state[16];
};

static const char progress_table_sql[] =
    "CREATE SCHEMA IF NOT EXISTS bandage;"
    "CREATE TABLE IF NOT EXISTS bandage.resets_in_progress ("
    " aside text PRIMARY KEY, original text NOT NULL, state text NOT NULL,"
    " deployment_id text, started_at timestamptz NOT NULL DEFAULT now(),"
    " position int, live_oid oid, aside_oid oid)";

/* The rows, latest move first (undo runs in the reverse order of the moves),
 * each with what the catalog says of its two schemas now. to_jsonb reads the
 * OID columns also from a table an older bandage made without them: such rows
 * cannot be proven and are refused like any other mismatch. */
static const char rows_sql[] =
    "SELECT r.original, r.aside, r.state,"
    "  (j->>'live_oid')::oid IS NOT NULL AND (j->>'live_oid')::oid ="
    "    (SELECT oid FROM pg_namespace WHERE nspname = r.original),"
    "  (j->>'aside_oid')::oid IS NOT NULL AND (j->>'aside_oid')::oid ="
    "    (SELECT oid FROM pg_namespace WHERE nspname = r.aside),"
    "  EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = r.original),"
    "  EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = r.aside),"
    "  (SELECT nspname FROM pg_namespace WHERE oid = (j->>'aside_oid')::oid)"
    " FROM bandage.resets_in_progress r, to_jsonb(r) j"
    " ORDER BY r.started_at DESC, (j->>'position')::int DESC NULLS LAST, r.aside DESC";

static int is_built(const char *state)
{
    return strcmp(state, "built") == 0 || strcmp(state, "dropping") == 0;
}

/* Why row i of rows_sql no longer matches the catalog, or NULL if it does. */
static const char *mismatch(PGresult *res, int i, char *why, size_t len)
{
    int live_ok = strcmp(PQgetvalue(res, i, 3), "t") == 0;
    int aside_ok = strcmp(PQgetvalue(res, i, 4), "t") == 0;
    const char *original = PQgetvalue(res, i, 0), *aside = PQgetvalue(res, i, 1);
    /* Once built, the live schema is the app's (a later reset may have moved
     * it aside in turn): only the old schema, which is what goes, must match. */
    if (is_built(PQgetvalue(res, i, 2)))
        live_ok = 1;
    if (live_ok && aside_ok)
        return NULL;
    if (!PQgetisnull(res, i, 7) && strcmp(PQgetvalue(res, i, 7), original) == 0)
        snprintf(why, len, "the schema it moved aside is named %s again (restored by hand?)",
                 original);
    else if (strcmp(PQgetvalue(res, i, 6), "t") != 0)
        snprintf(why, len, "schema %s, which held the old data, no longer exists", aside);
    else if (strcmp(PQgetvalue(res, i, 5), "t") != 0)
        snprintf(why, len, "schema %s no longer exists", original);
    else if (!aside_ok)
        snprintf(why, len, "schema %s is not the one bandage moved aside", aside);
    else
        snprintf(why, len, "schema %s is not the one bandage created", original);
    return why;
}

/* Every row still matches the catalog: 0, else 65 with what was found. */
static int verify_rows(struct session *s, PGresult *res)
{
    char why[256];
    for (int i = 0; i < PQntuples(res); i++) {
        if (!mismatch(res, i, why, sizeof why))
            continue;
        log_error("bandage.resets_in_progress records schema %s moved aside to %s (state %s), "
                  "but the catalog no longer matches: %s. Nothing was changed. If the database "
                  "is as it should be, remove the row (DELETE FROM bandage.resets_in_progress "
                  "WHERE aside = '%s') and deploy again",
                  PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), why,
                  PQgetvalue(res, i, 1));
        report_add_error(s->report, "reset", "recovery", "%s: %s", PQgetvalue(res, i, 1), why);
        return EXIT_SCHEMA;
    }
    return 0;
}

static PGresult *read_rows(struct session *s, int *rc)
{
    return session_query(s, rows_sql, 0, NULL, "reading bandage.resets_in_progress", rc);
}

/* BEGIN, then proof that the rows still describe the catalog ("lock, then
 * check": the advisory lock keeps other bandages out, the check catches a
 * person who changed the schemas meanwhile). */
static int step_begin(struct session *s)
{
    int rc = session_begin(s);
    PGresult *res = rc ? NULL : read_rows(s, &rc);
    if (res)
        rc = verify_rows(s, res);
    PQclear(res);
    return rc ? session_end(s, rc) : 0;
}

static int set_state(struct session *s, const char *aside, const char *state)
{
    const char *params[] = {state, aside};
    int rc;
    /* Without a row named: this reset's rows, the only ones not yet built
     * (recovery settled any other before it began); rows built earlier wait
     * for their drop and keep their state. */
    PGresult *res = session_query(s, aside ? "UPDATE bandage.resets_in_progress SET state = $1"
                                             " WHERE aside = $2"
                                           : "UPDATE bandage.resets_in_progress SET state = $1"
                                             " WHERE state IN ('moved', 'building')",
                                  aside ? 2 : 1, params, "recording progress", &rc);
    PQclear(res);
    return rc;
}

static int forget_row(struct session *s, const char *aside)
{
    const char *params[] = {aside};
    int rc;
    PGresult *res = session_query(s, "DELETE FROM bandage.resets_in_progress WHERE aside = $1",
                                  1, params, "recording progress", &rc);
    PQclear(res);
    return rc;
}

/* ---- sizing ------------------------------------------------------------------- */

int rebuild_lock_budget(struct session *s, long *budget)
{
    int rc;
    PGresult *res = session_query(
        s, "SELECT current_setting('max_locks_per_transaction')::bigint *"
           " (current_setting('max_connections')::bigint"
           "  + current_setting('max_prepared_transactions')::bigint)",
        0, NULL, "sizing the reset", &rc);
    if (!res)
        return rc;
    *budget = atol(PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

int rebuild_needed(struct session *s, const struct config *cfg, size_t n_stmts, long budget,
                   int *batched)
{
    const char *params[] = {cfg->schemas};
    int rc;
    PGresult *res = session_query(
        s, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
           " WHERE n.nspname = ANY (string_to_array($1, ','))",
        1, params, "sizing the reset", &rc);
    if (!res)
        return rc;
    long objects = atol(PQgetvalue(res, 0, 0)) + (long)n_stmts;
    PQclear(res);
    /* A quarter of the shared table: other sessions' locks and the several
     * locks one object can take (table, indexes, types) share the rest; and
     * never past the size where one transaction's cost stays flat. */
    *batched = objects > lesser(budget / 4, FLAT_OBJECTS);
    log_debug("reset size: %ld relations + statements, lock table %ld: %s", objects, budget,
              *batched ? "in batches" : "one transaction");
    return 0;
}

int rebuild_check_file(struct session *s, const struct config *cfg,
                       const struct schema_file *file)
{
    char outside[64], where[200];
    for (size_t i = 0; i < file->n_stmts; i++) {
        if (!schema_file_outside(file, i, cfg->schemas, outside, sizeof outside))
            continue;
        schema_file_where(file, i, 0, where, sizeof where);
        log_error("%s: acts on schema %s, outside --schemas: a large reset commits in batches "
                  "and could not undo it; add %s to --schemas or move the statement out of the "
                  "file. Nothing was changed", where, outside, outside);
        report_add_error(s->report, "schema-file", "outside", "line %d: schema %s is outside "
                         "--schemas", file->stmts[i].line, outside);
        return EXIT_SCHEMA;
    }
    return 0;
}

int rebuild_check_extensions(struct session *s, const struct config *cfg)
{
    char *names = strdup(cfg->schemas), *save = NULL;
    int rc = names ? 0 : EXIT_INTERNAL;
    for (char *n = rc ? NULL : strtok_r(names, ",", &save); n && rc == 0;
         n = strtok_r(NULL, ",", &save))
        rc = kept_refuse_fixed_extensions(s, n, "large reset", "reset",
                                          "it moves the schema aside and they cannot follow");
    free(names);
    return rc;
}

/* ---- emptying a schema, a batch at a time ---------------------------------------- */

/* Statements that drop what lives in a schema (not extension members), each
 * naming at most $2 objects of one kind: one DROP of many objects walks the
 * dependencies once. Sequences owned by or internal to a table (serial and
 * identity columns) go with their table: dropping one alone fails (2BP01).
 * Partitions go with their parent. IF EXISTS covers what a CASCADE took. */
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
    "     AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d"
    "              WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid"
    "                AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))"
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
    " SELECT format('DROP %s IF EXISTS %s CASCADE', kind, string_agg(name, ', ' ORDER BY o)),"
    "        count(*)"
    "  FROM numbered GROUP BY ord, kind, chunk ORDER BY ord, kind, chunk";

/* One batch: its own transaction, checked first; state recorded with it.
 * Returns 0, 1 if the lock table ran out (rolled back), or an exit code. */
static int drop_one_batch(struct session *s, const char *sql, const char *aside,
                          const char *state)
{
    struct db_error err;
    int rc = step_begin(s);
    if (rc != 0)
        return rc;
    if (db_run(s->conn, s->sfd, sql, &err) != 0) {
        session_end(s, 1);
        if (strcmp(err.sqlstate, SQLSTATE_OUT_OF_SHARED_MEMORY) == 0 && !err.stop_signal)
            return 1;
        return session_failed(s, "dropping objects", &err, EXIT_SCHEMA);
    }
    if (state)
        rc = set_state(s, aside, state);
    return session_end(s, rc);
}

/* "emptying schema bandage_aside_0: 400 of 10000 objects dropped". */
static void describe_drop(const struct progress *p, long now, char *out, size_t len)
{
    (void)now;
    snprintf(out, len, "emptying schema %s: %ld of %ld objects dropped", (const char *)p->ctx,
             p->done, p->total);
}

/* One listing's DROP statements, each a batch; the objects they name are
 * added to the progress's total. */
static int drop_listed(struct session *s, PGresult *res, const char *aside, const char *state,
                       struct progress *p)
{
    int rc = 0, n = PQntuples(res);
    for (int i = 0; i < n; i++)
        p->total += atol(PQgetvalue(res, i, 1));
    for (int i = 0; i < n && rc == 0; i++) {
        progress_step(p, p->done);
        if ((rc = drop_one_batch(s, PQgetvalue(res, i, 0), aside, state)) == 0)
            p->done += atol(PQgetvalue(res, i, 1));
    }
    return rc;
}

/* Empties `schema` a batch of objects at a time; the schema itself stays.
 * `state` (may be NULL) is recorded for row `aside` with the first batch. */
static int drop_contents(struct session *s, const char *schema, const char *aside,
                         const char *state, long budget)
{
    long first = lesser(budget / 32, FLAT_DROP_OBJECTS), batch = first > 0 ? first : 1;
    long statements = 0, start = monotonic_ms();
    struct progress p;
    progress_begin(&p, "schema-drop", 0, start, describe_drop, (void *)schema);
    int rc = 0;
    for (;;) {
        char limit[24];
        snprintf(limit, sizeof limit, "%ld", batch);
        const char *params[] = {schema, limit};
        /* What a batch rolled back is listed again: only what was dropped counts. */
        p.total = p.done;
        PGresult *res = session_query(s, drop_batch_sql, 2, params, "listing objects to drop",
                                      &rc);
        if (!res)
            break;
        int n = PQntuples(res);
        rc = drop_listed(s, res, aside, state, &p);
        statements += n;
        PQclear(res);
        if (rc == 1 && batch > 1) {
            batch /= 2; /* the lock table is shared: others may hold part of it */
            continue;
        }
        if (rc == 0 && batch < first)
            batch *= 2; /* and what they held may be free again */
        if (rc != 0 || n == 0)
            break;
    }
    progress_end(&p);
    if (rc == 0)
        log_info("emptied schema %s in %ld statements in %ld ms", schema, statements,
                 monotonic_ms() - start);
    return rc == 1 ? EXIT_SCHEMA : rc;
}

/* ---- the transitions ------------------------------------------------------------- */

/* moved, for one schema, in the caller's transaction. */
static int move_aside(struct session *s, const struct config *cfg, const char *name,
                      int position)
{
    char aside[64], pos[16];
    int rc = session_run_names(s, "CREATE SCHEMA IF NOT EXISTS %s", name, NULL,
                               "creating the schema");
    if (rc == 0)
        rc = snapshot_free_name(s, "bandage_aside_", "SELECT aside FROM bandage.resets_in_progress",
                                aside, sizeof aside);
    if (rc == 0)
        rc = snapshot_move_aside(s, name, aside);
    snprintf(pos, sizeof pos, "%d", position);
    const char *params[] = {aside, name, cfg->deployment_id, pos};
    PGresult *res = rc ? NULL : session_query(
        s, "INSERT INTO bandage.resets_in_progress (aside, original, state, deployment_id,"
           " position, live_oid, aside_oid) VALUES ($1::text, $2::text, 'moved', $3, $4::int,"
           " (SELECT oid FROM pg_namespace WHERE nspname = $2::text),"
           " (SELECT oid FROM pg_namespace WHERE nspname = $1::text))",
        4, params, "recording progress", &rc);
    PQclear(res);
    if (rc == 0)
        log_info("moved schema %s aside to %s", name, aside);
    return rc;
}

static int move_all_aside(struct session *s, const struct config *cfg)
{
    char *names = strdup(cfg->schemas), *save = NULL;
    int rc = names ? session_begin(s) : EXIT_INTERNAL, position = 0;
    if (rc == 0)
        rc = session_run(s, progress_table_sql, "creating bandage.resets_in_progress",
                         EXIT_SCHEMA);
    if (rc == 0)
        rc = exclusive_terminate_others(s, RESET_LOCK_KEY, 0);
    /* Again, in the transaction that moves the schemas: the hook or the app
     * may have made a dependent since the first check. */
    if (rc == 0)
        rc = preflight_dependents(s, cfg, 1);
    for (char *n = rc ? NULL : strtok_r(names, ",", &save); n && rc == 0;
         n = strtok_r(NULL, ",", &save))
        rc = move_aside(s, cfg, n, position++);
    free(names);
    return names ? session_end(s, rc) : rc;
}

/* What the build's progress line says beyond its figures. */
struct build_progress {
    const struct schema_file *file;
    long batches; /* committed */
};

/* "4000 of 10000 statements, 10 batches committed[, line 812 running for
 * 3.1 s]": a statement is named once it has run for an interval. */
static void describe_build(const struct progress *p, long now, char *out, size_t len)
{
    const struct build_progress *b = p->ctx;
    long ran = progress_long_step_ms(p, now);
    int n = snprintf(out, len, "%ld of %ld statements, %ld batch%s committed", p->done,
                     p->total, b->batches, b->batches == 1 ? "" : "es");
    if (ran >= 0 && p->done < p->total && n > 0 && (size_t)n < len)
        snprintf(out + n, len - (size_t)n, ", line %d running for %ld.%ld s",
                 b->file->stmts[p->done].line, ran / 1000, ran % 1000 / 100);
}

/* building: the file, as many statements per transaction as fit; other
 * sessions terminated again before each batch. */
static int build_in_batches(struct session *s, const struct schema_file *file, long budget,
                            struct progress *p)
{
    long first = lesser(budget / 16, FLAT_STATEMENTS);
    size_t batch = (size_t)(first > 0 ? first : 1), i = 0;
    struct build_progress *b = p->ctx;
    while (i < file->n_stmts) {
        size_t end = i + batch < file->n_stmts ? i + batch : file->n_stmts, j = i;
        char sqlstate[6] = "";
        int rc = step_begin(s);
        if (rc == 0)
            rc = exclusive_terminate_others(s, RESET_LOCK_KEY, 1);
        /* A statement that fails for want of locks is retried in a smaller
         * batch, so it is not reported yet. */
        for (; rc == 0 && j < end; j++) {
            progress_step(p, (long)j);
            int failed = schema_file_run(s, file, j, sqlstate);
            if (failed && strcmp(sqlstate, SQLSTATE_OUT_OF_SHARED_MEMORY) == 0 && batch > 1)
                rc = 1;
            else
                rc = failed;
        }
        if (rc == 0)
            rc = set_state(s, NULL, "building");
        if ((rc = session_end(s, rc)) == 1) {
            batch /= 2;
            log_debug("lock table full: batches of %zu statements now", batch);
            continue;
        }
        if (rc != 0)
            return rc;
        b->batches++;
        for (; i < end; i++)
            schema_file_count_applied(s->report, file, i);
    }
    return 0;
}

/* With --keep-previous, this reset's old schemas are kept, not dropped:
 * their rows go from the progress table to bandage.kept_schemas. */
static int keep_moved(struct session *s, const struct config *cfg)
{
    int rc;
    PGresult *res = session_query(s, "SELECT aside, original FROM bandage.resets_in_progress"
                                     " WHERE state IN ('moved', 'building') ORDER BY position",
                                  0, NULL, "reading bandage.resets_in_progress", &rc);
    for (int i = 0; res && i < PQntuples(res) && rc == 0; i++) {
        int may = 0;
        const char *aside = PQgetvalue(res, i, 0), *original = PQgetvalue(res, i, 1);
        /* Not kept: it stays a built row, dropped as before. */
        if ((rc = kept_may_keep(s, aside, original, &may)) != 0 || !may)
            continue;
        rc = kept_adopt(s, cfg, aside, original);
        if (rc == 0)
            rc = forget_row(s, aside);
    }
    PQclear(res);
    return rc;
}

/* built: with the deploy's row, in one transaction; the old schemas kept
 * (--keep-previous) or left to drop, and the kept ones past the limit
 * queued for their drop. */
static int mark_built(struct session *s, const struct config *cfg,
                      const struct deploy_start *start)
{
    int rc = step_begin(s);
    if (rc == 0 && cfg->keep_previous > 0)
        rc = keep_moved(s, cfg);
    if (rc == 0)
        rc = set_state(s, NULL, "built");
    if (rc == 0)
        rc = deploys_record_reset(s, cfg, start);
    if (rc == 0)
        rc = rebuild_queue_kept_drops(s, cfg);
    return session_end(s, rc);
}

int rebuild_queue_kept_drops(struct session *s, const struct config *cfg)
{
    int rc;
    PGresult *res = kept_excess(s, cfg->keep_previous, &rc);
    if (res && PQntuples(res) > 0)
        rc = session_run(s, progress_table_sql, "creating bandage.resets_in_progress",
                         EXIT_SCHEMA);
    for (int i = 0; res && i < PQntuples(res) && rc == 0; i++) {
        const char *params[] = {PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                                PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2),
                                PQgetvalue(res, i, 3)};
        PGresult *ins = session_query(
            s, "INSERT INTO bandage.resets_in_progress (aside, original, state, deployment_id,"
               " aside_oid) VALUES ($1, $2, 'built', $3, $4::oid)",
            4, params, "queueing the kept schema's drop", &rc);
        PQclear(ins);
        if (rc == 0)
            rc = kept_forget(s, params[0]);
        if (rc == 0)
            log_info("the kept schema %s (was %s) is past --keep-previous %ld: it is dropped",
                     params[0], params[1], cfg->keep_previous);
    }
    PQclear(res);
    return rc;
}

/* dropping, then done: the old schema goes, unless something outside it
 * has come to depend on it since it was moved aside (its CASCADE would take
 * that too): then it stays, and each start says why. */
static int finish_drop(struct session *s, const struct move *m, long budget)
{
    int dependents = 0;
    int rc = preflight_count_dependents(s, m->aside, &dependents);
    if (rc == 0 && dependents > 0 && !s->report->may_drop_dependents) {
        log_warn("the old schema %s (was %s) is kept: %d object(s) outside it depend on it; "
                 "remove the dependency (or drop the schema by hand, with what depends on "
                 "it, or deploy with --drop-dependents) and the next start drops it",
                 m->aside, m->original, dependents);
        return EXIT_REFUSED;
    }
    if (rc == 0 && dependents > 0)
        log_info("dropping the %d object(s) outside the old schema %s that depend on it "
                 "(--drop-dependents)", dependents, m->aside);
    if (rc == 0)
        rc = drop_contents(s, m->aside, m->aside, "dropping", budget);
    if (rc == 0 && (rc = step_begin(s)) == 0) {
        rc = session_run_names(s, "DROP SCHEMA %s CASCADE", m->aside, NULL,
                               "dropping the old schema");
        if (rc == 0)
            rc = forget_row(s, m->aside);
        rc = session_end(s, rc);
    }
    if (rc == 0)
        log_info("dropped the old schema %s (was %s)", m->aside, m->original);
    return rc;
}

/* Undo of a move not yet built: the half-built schema goes, the old one
 * comes back under its name, with its extensions. */
static int undo_move(struct session *s, const struct move *m, long budget)
{
    log_warn("restoring schema %s from %s", m->original, m->aside);
    int rc = drop_contents(s, m->original, m->aside, NULL, budget);
    if (rc == 0 && (rc = step_begin(s)) == 0) {
        rc = snapshot_move_extensions(s, m->original, m->aside);
        if (rc == 0)
            rc = session_run_names(s, "DROP SCHEMA %s CASCADE", m->original, NULL,
                                   "dropping the half-built schema");
        if (rc == 0)
            rc = session_run_names(s, "ALTER SCHEMA %s RENAME TO %s", m->aside, m->original,
                                   "renaming the schema back");
        if (rc == 0)
            rc = forget_row(s, m->aside);
        rc = session_end(s, rc);
    }
    return rc;
}

/* Drops bandage.resets_in_progress once empty, and the bandage schema if it
 * holds nothing else, so that an undone reset leaves no trace. Locked first:
 * another start may be adding a row (the drop of old schemas runs beside
 * the app, without the reset lock). */
static int drop_progress_table_if_empty(struct session *s)
{
    int empty = 0, alone = 0;
    int rc = session_begin(s), unlocked = 0;
    /* A start reads the table under the reset lock: beside the app, where
     * this process holds only the drop lock, the table stays while a start
     * runs (the next settle drops it). */
    if (rc == 0)
        rc = session_bool(s, "SELECT pg_try_advisory_xact_lock(" RESET_LOCK_KEY ")", NULL,
                          "taking the reset lock", &unlocked);
    if (rc == 0 && !unlocked)
        return session_end(s, rc);
    if (rc == 0)
        rc = session_run(s, "LOCK TABLE bandage.resets_in_progress IN ACCESS EXCLUSIVE MODE",
                         "locking bandage.resets_in_progress", EXIT_SCHEMA);
    if (rc == 0)
        rc = session_bool(s, "SELECT NOT EXISTS (SELECT 1 FROM bandage.resets_in_progress)",
                          NULL, "reading bandage.resets_in_progress", &empty);
    if (rc == 0 && empty)
        rc = session_run(s, "DROP TABLE bandage.resets_in_progress",
                         "dropping the progress table", EXIT_SCHEMA);
    if (rc == 0 && empty)
        rc = session_bool(s, "SELECT NOT EXISTS (SELECT 1 FROM pg_class"
                             " WHERE relnamespace = 'bandage'::regnamespace)",
                          NULL, "reading schema bandage", &alone);
    if (rc == 0 && empty && alone)
        rc = session_run(s, "DROP SCHEMA bandage", "dropping schema bandage", EXIT_SCHEMA);
    return session_end(s, rc);
}

/* Drops the old schema of a built row under the drop lock, unless another
 * process holds it (dropping it beside its app). A failure is a warning: the
 * new schema is complete. */
static int drop_built(struct session *s, const struct move *m, long budget)
{
    int got = 0;
    int rc = session_bool(s, "SELECT pg_try_advisory_lock(" RESET_DROP_LOCK_KEY ")", NULL,
                          "taking the drop lock", &got);
    if (rc != 0)
        return rc;
    if (!got) {
        log_info("the old schema %s (was %s) is being dropped by another start", m->aside,
                 m->original);
        return 0;
    }
    rc = finish_drop(s, m, budget);
    if (rc != 0)
        log_warn("the old schema %s (was %s) is left for the next start to drop; the new "
                 "schema is complete", m->aside, m->original);
    session_run(s, "SELECT pg_advisory_unlock(" RESET_DROP_LOCK_KEY ")", "releasing the drop lock",
                EXIT_INTERNAL);
    return rc;
}

enum settle_mode {
    SETTLE_ALL,        /* under the reset lock: undo what is not built, drop what is */
    SETTLE_DEFER_DROPS, /* the same, but leave the drops to a process beside the app */
    SETTLE_DROPS_ONLY  /* beside the app: only the drops (another start may be building) */
};

/* Settles the rows, latest first. Rows are checked against the catalog
 * before anything is done. */
static int settle(struct session *s, long budget, enum settle_mode mode)
{
    int rc;
    PGresult *res = read_rows(s, &rc);
    if (!res)
        return rc;
    if ((rc = verify_rows(s, res)) != 0) {
        PQclear(res);
        return rc;
    }
    int n = PQntuples(res);
    struct move *moves = calloc((size_t)(n ? n : 1), sizeof *moves);
    for (int i = 0; moves && i < n; i++) {
        snprintf(moves[i].original, sizeof moves[i].original, "%s", PQgetvalue(res, i, 0));
        snprintf(moves[i].aside, sizeof moves[i].aside, "%s", PQgetvalue(res, i, 1));
        snprintf(moves[i].state, sizeof moves[i].state, "%s", PQgetvalue(res, i, 2));
    }
    PQclear(res);
    if (!moves)
        return EXIT_INTERNAL;
    for (int i = 0, stopped = 0; i < n && rc == 0; i++) {
        if (!is_built(moves[i].state)) {
            if (mode != SETTLE_DROPS_ONLY)
                rc = undo_move(s, &moves[i], budget);
        } else if (mode == SETTLE_DEFER_DROPS) {
            s->report->old_schemas_pending = 1;
        } else if ((stopped = drop_built(s, &moves[i], budget)) > 128) {
            rc = stopped; /* a stop signal: the next rows wait for the next start */
        }
    }
    free(moves);
    return rc || s->report->old_schemas_pending ? rc : drop_progress_table_if_empty(s);
}

int rebuild_run(struct session *s, const struct config *cfg, const struct schema_file *file,
                const struct deploy_start *start, long budget, int defer_drops)
{
    int rc;
    log_info("large reset: moving the schema(s) aside, then building in batches");
    if ((rc = move_all_aside(s, cfg)) != 0)
        return rc;
    long build_start = monotonic_ms();
    char build[128];
    schema_to_build(cfg, build, sizeof build);
    /* The file's own settings last across its batches; bandage's come back
     * after it (on a failure too: settling is bandage's). */
    rc = session_set_search_path(s, build);
    struct build_progress bp = {.file = file};
    struct progress p;
    progress_begin(&p, "reset-build", (long)file->n_stmts, build_start, describe_build, &bp);
    if (rc == 0)
        rc = build_in_batches(s, file, budget, &p);
    progress_end(&p);
    int pinned = session_pin(s, cfg->lock_wait_ms);
    if (rc == 0)
        rc = pinned;
    if (rc == 0 && (rc = mark_built(s, cfg, start)) == 0) {
        log_info("applied %ld statements in batches in %ld ms", s->report->statements,
                 monotonic_ms() - build_start);
        /* only drops: a failure there is a warning */
        settle(s, budget, defer_drops ? SETTLE_DEFER_DROPS : SETTLE_ALL);
        return 0;
    }
    /* Also after a stop signal (the query was cancelled, the connection
     * stays): a second signal cancels the undo, and the next start resumes it. */
    if (settle(s, budget, SETTLE_ALL) != 0)
        log_error("could not restore the old schema(s) yet; the next start will");
    else if (rc == EXIT_SCHEMA)
        log_error("the reset was undone: the old schema(s) are back and database '%s' is "
                  "unchanged", s->report->database);
    return rc;
}

static int settle_if_any(struct session *s, long budget, int defer_drops, int warn)
{
    int exists = 0;
    int rc = session_bool(s, "SELECT to_regclass('bandage.resets_in_progress') IS NOT NULL", NULL,
                          "looking for an interrupted reset", &exists);
    if (rc || !exists)
        return rc == EXIT_SCHEMA ? EXIT_INTERNAL : rc;
    if (warn)
        log_warn("found an interrupted reset or old schemas not yet dropped "
                 "(bandage.resets_in_progress); settling them first");
    return settle(s, budget, defer_drops ? SETTLE_DEFER_DROPS : SETTLE_ALL);
}

int rebuild_recover(struct session *s, long budget, int defer_drops)
{
    return settle_if_any(s, budget, defer_drops, 1);
}

int rebuild_drop_queued(struct session *s, long budget, int defer_drops)
{
    return settle_if_any(s, budget, defer_drops, 0);
}

int rebuild_drop_old(struct session *s, long budget)
{
    /* The reset lock (and Prisma's) go: other starts may reset meanwhile;
     * the old schemas are this process's under the drop lock. */
    int rc = session_run(s, "SELECT pg_advisory_unlock_all()", "releasing the reset lock",
                         EXIT_INTERNAL);
    if (rc == 0)
        rc = session_lock(s, RESET_DROP_LOCK_KEY, "waiting for the drop lock");
    s->report->old_schemas_pending = 0; /* this process is the one they waited for */
    if (rc == 0)
        rc = settle(s, budget, SETTLE_DROPS_ONLY);
    return rc;
}
