/* The reset, in order (DESIGN.md, "The reset, precisely"): the file read and
 * checked, the interlock, the advisory lock, an interrupted reset settled,
 * the once-per-deploy marker, every check that can refuse, the
 * --before-reset hook, then one transaction (small schemas) or the batched
 * state machine of rebuild.c, then --schema-command. */
#include "reset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "deploys.h"
#include "exclusive.h"
#include "exitcodes.h"
#include "identity.h"
#include "kept.h"
#include "log.h"
#include "migrations_dir.h"
#include "pid1/spawn.h"
#include "pooler.h"
#include "preflight.h"
#include "progress.h"
#include "rebuild.h"
#include "schemafile.h"
#include "session.h"
#include "snapshot.h"

struct reset_run {
    struct session s;
    const struct config *cfg;
    const struct migration_dir *migrations; /* --migrations, loaded; NULL if none */
    struct schema_file file;
    struct deploy_start start;
    long budget;                   /* the server's shared lock table, in locks */
    char hold[64];                 /* where extensions wait during the drop; "" if unused */
    struct db_identity id;         /* the connected database, read by the interlock */
};

/* The advisory lock (waiting at most the wait timeout: replicas queue here),
 * then table locks bounded by --lock-wait. A transaction pooler is refused
 * before the lock (pooler.c); should one pass unnoticed, the statements
 * after the lock may run in other server processes: two reads of the server
 * process catch that before anything else is done. */
static int take_reset_lock(struct reset_run *r)
{
    const struct config *cfg = r->cfg;
    long wait = cfg->wait_timeout_ms > 0 ? cfg->wait_timeout_ms : cfg->connect_timeout_ms;
    int rc = pooler_check(&r->s, cfg);
    if (rc == 0)
        rc = session_set_lock_timeout(&r->s, wait);
    if (rc == 0)
        rc = session_lock(&r->s, RESET_LOCK_KEY, "waiting for the reset lock");
    for (int i = 0; i < 2 && rc == 0; i++)
        rc = session_check_pinned(&r->s);
    return rc ? rc : session_pin(&r->s, cfg->lock_wait_ms);
}

/* The refusal names the value given, the database found (name and system
 * identifier) and the value that would confirm it. */
static int interlock_refused(struct reset_run *r, const struct confirmation *given,
                             const char *why)
{
    struct deploy_report *report = r->s.report;
    const char *name = r->id.name, *id = r->id.system_id[0] ? r->id.system_id : NULL;
    const char *value = r->cfg->confirm_database;
    const char *verb = r->cfg->restore_previous ? "restore" : "reset";
    char found[160], fix[200];
    snprintf(found, sizeof found, "database '%s' (system identifier %s)", name,
             id ? id : "not readable by this role");
    if (given->system_id && strcmp(given->name, name) == 0)
        snprintf(fix, sizeof fix, "'%s:%s'", name, id ? id : "IDENTIFIER");
    else if (id)
        snprintf(fix, sizeof fix, "'%s' (or '%s:%s')", name, name, id);
    else
        snprintf(fix, sizeof fix, "'%s'", name);
    if (!value)
        log_error("refusing to %s %s: --confirm-database (BANDAGE_CONFIRM_DATABASE) is not "
                  "set; set it to %s if this is the database to %s", verb, found, fix, verb);
    else if (strcmp(given->name, name) != 0)
        log_error("refusing to %s %s: --confirm-database (BANDAGE_CONFIRM_DATABASE) is '%s', "
                  "but the connected database is '%s'; set it to %s if this is the database to "
                  "%s", verb, found, value, name, fix, verb);
    else
        log_error("refusing to %s %s: --confirm-database (BANDAGE_CONFIRM_DATABASE) is '%s': "
                  "%s; set it to %s if this is the database to %s", verb, found, value, why, fix,
                  verb);
    report_add_error(report, verb, "interlock",
                     "--confirm-database %s%s%s does not match the connected database '%s'",
                     value ? "'" : "(not set)", value ? value : "", value ? "'" : "", name);
    return EXIT_REFUSED;
}

/* The interlock: checked before queueing on the lock, so a misconfigured
 * replica fails at once, not after waiting for another's reset. The name,
 * and with NAME:IDENTIFIER the cluster's system identifier too: a name that
 * every database of a platform shares confirms little, and says so. */
static int check_interlock(struct reset_run *r)
{
    struct deploy_report *report = r->s.report;
    struct confirmation given;
    char why[300];
    int rc = identity_read(&r->s, &r->id);
    if (rc != 0)
        return rc;
    snprintf(report->database, sizeof report->database, "%s", r->id.name);
    identity_parse_confirmation(r->cfg->confirm_database, &given);
    if (r->cfg->confirm_database && identity_confirms(&given, &r->id, why, sizeof why)) {
        if (!given.system_id && identity_name_is_shared(r->id.name))
            log_warn("--confirm-database names '%s' alone, a name many databases share (every "
                     "Railway database is 'railway'): a URL pasted from another environment "
                     "would pass it. Add this database's system identifier: "
                     "--confirm-database %s:%s", r->id.name, r->id.name,
                     r->id.system_id[0] ? r->id.system_id : "(not readable by this role)");
        return 0;
    }
    return interlock_refused(r, &given, why);
}

/* What the schemas are built from: the file, or every migration. A reset
 * with nothing to build would leave the schemas empty: a decision, not an
 * accident. */
static int load_what_to_build(struct reset_run *r)
{
    const struct config *cfg = r->cfg;
    const char *table_schema = cfg->url_schema ? cfg->url_schema : "public";
    char build[128];
    schema_to_build(cfg, build, sizeof build);
    if (cfg->url_schema && strcmp(build, cfg->url_schema) != 0)
        log_warn("the reset builds in %s (--schemas' first entry): --schemas (%s) leaves out "
                 "the DATABASE_URL's schema %s, where the app looks for its tables", build,
                 cfg->schemas, cfg->url_schema);
    if (cfg->schema_file && r->migrations && r->migrations->prisma8) {
        log_error("--schema-file and --migrations both say what a reset builds; give one");
        report_add_error(r->s.report, "config", "schema-file", "both --schema-file and "
                         "--migrations");
        return EXIT_USAGE;
    }
    /* Prisma 8's statements name their schemas, and prisma_contract is
     * Prisma's own schema, kept by the reset unless --schemas lists it. */
    if (r->migrations && r->migrations->prisma8)
        return schema_file_from_prisma8(&r->file, r->migrations->prisma8,
                                        PQserverVersion(r->s.conn), r->s.report);
    if (r->migrations && strcmp(build, table_schema) != 0) {
        log_error("--reset with --migrations builds in %s (--schemas' first entry) but Prisma "
                  "keeps _prisma_migrations in %s: set the schema in DATABASE_URL "
                  "(?schema=%s), or list %s first in --schemas", build, table_schema, build,
                  table_schema);
        report_add_error(r->s.report, "config", "schemas", "builds in %s, _prisma_migrations "
                         "in %s", build, table_schema);
        return EXIT_USAGE;
    }
    if (cfg->schema_file && r->migrations) {
        log_error("--schema-file and --migrations both say what a reset builds; give one");
        report_add_error(r->s.report, "config", "schema-file", "both --schema-file and "
                         "--migrations");
        return EXIT_USAGE;
    }
    if (r->migrations && !schema_list_contains(cfg->schemas, table_schema)) {
        log_error("--reset with --migrations rebuilds _prisma_migrations in schema %s, which "
                  "--schemas (%s) does not reset; add it to --schemas", table_schema,
                  cfg->schemas);
        report_add_error(r->s.report, "config", "schemas", "%s is not in --schemas",
                         table_schema);
        return EXIT_USAGE;
    }
    if (r->migrations)
        return schema_file_from_migrations(&r->file, r->migrations,
                                           PQserverVersion(r->s.conn), r->s.report);
    if (cfg->schema_file || cfg->schema_command || cfg->allow_empty_schema)
        return schema_file_load(&r->file, cfg->schema_file, cfg->allow_empty_schema,
                                r->s.report);
    log_error("--reset %s has nothing to build the schemas from: set --schema-file, "
              "--schema-command or --migrations, or --allow-empty-schema "
              "(BANDAGE_ALLOW_EMPTY_SCHEMA=true) to leave them empty",
              config_reset_mode_name(cfg->reset));
    report_add_error(r->s.report, "config", "schema-file", "nothing to build the schemas from");
    return EXIT_USAGE;
}

/* The schema's relocatable extensions wait in a schema of bandage's while
 * it is dropped, and come back as they were (same objects, so an index on
 * audit.log using public's gin_trgm_ops stays; their configuration tables'
 * rows too). The holding schema is made once, and goes before COMMIT. */
static int hold_extensions(struct reset_run *r, const char *name)
{
    int has = 0;
    int rc = session_bool(&r->s, "SELECT EXISTS (SELECT 1 FROM pg_extension e"
                                 " JOIN pg_namespace n ON n.oid = e.extnamespace"
                                 " WHERE n.nspname = $1 AND e.extrelocatable)",
                          name, "listing extensions", &has);
    if (rc != 0 || !has)
        return rc;
    if (!r->hold[0]) {
        rc = snapshot_free_name(&r->s, "bandage_hold_", NULL, r->hold, sizeof r->hold);
        if (rc == 0)
            rc = session_run_names(&r->s, "CREATE SCHEMA %s", r->hold, NULL,
                                   "creating a schema for the extensions");
    }
    return rc ? rc : snapshot_move_extensions(&r->s, name, r->hold);
}

/* Dropped without CASCADE: it must be empty again, proof that every
 * extension went back. */
static int release_extensions(struct reset_run *r)
{
    if (!r->hold[0])
        return 0;
    return session_run_names(&r->s, "DROP SCHEMA %s", r->hold, NULL,
                             "dropping the extensions' holding schema");
}

/* Drops one schema and recreates it as it was, empty (one transaction path). */
static int recreate_schema(struct reset_run *r, const char *name)
{
    int rc;
    PGresult *snapshot = snapshot_read(&r->s, name, SNAPSHOT_RECREATE_EXTENSIONS, &rc);
    if (!snapshot)
        return rc;
    if (PQntuples(snapshot) > 0) {
        rc = hold_extensions(r, name);
        if (rc == 0)
            rc = session_run_names(&r->s, "DROP SCHEMA %s CASCADE", name, NULL,
                                   "dropping the schema");
        if (rc == 0)
            rc = snapshot_restore(&r->s, snapshot);
    } else {
        rc = session_run_names(&r->s, "CREATE SCHEMA %s", name, NULL, "creating the schema");
    }
    PQclear(snapshot);
    return rc;
}

/* With --keep-previous the schema is kept aside, unless something outside
 * it depends on it (allowed by --drop-dependents, else refused earlier):
 * kept, a view elsewhere would go on reading the old copy's data; dropped,
 * it goes with it, as the user allowed. Or unless it holds an extension
 * that cannot move (PostGIS, xml2): this path creates those anew. */
static int keep_or_recreate(struct reset_run *r, const char *name)
{
    int may = 0;
    int rc = r->cfg->keep_previous > 0 ? kept_may_keep(&r->s, name, name, &may) : 0;
    if (rc != 0)
        return rc;
    return may ? kept_move_aside(&r->s, r->cfg, name) : recreate_schema(r, name);
}

/* "1200 of 1500 statements, in one transaction[, line 812 running for
 * 3.1 s]": a statement is named once it has run for an interval. */
static void describe_apply(const struct progress *p, long now, char *out, size_t len)
{
    const struct schema_file *f = p->ctx;
    long ran = progress_long_step_ms(p, now);
    int n = snprintf(out, len, "%ld of %ld statements, in one transaction", p->done, p->total);
    if (ran >= 0 && p->done < p->total && n > 0 && (size_t)n < len)
        snprintf(out + n, len - (size_t)n, ", line %d running for %ld.%ld s",
                 f->stmts[p->done].line, ran / 1000, ran % 1000 / 100);
}

/* Under the schema's search_path (unqualified names land in the URL's
 * schema, as with Prisma); bandage's own settings come back after. */
static int apply_schema_file(struct reset_run *r)
{
    char build[128];
    struct progress p;
    schema_to_build(r->cfg, build, sizeof build);
    int rc = session_set_search_path(&r->s, build);
    progress_begin(&p, "reset-build", (long)r->file.n_stmts, 0, describe_apply, &r->file);
    for (size_t i = 0; i < r->file.n_stmts && rc == 0; i++) {
        progress_step(&p, (long)i);
        rc = schema_file_run(&r->s, &r->file, i, NULL);
        if (rc == 0)
            schema_file_count_applied(r->s.report, &r->file, i);
    }
    progress_end(&p);
    return rc ? rc : session_pin(&r->s, r->cfg->lock_wait_ms);
}

/* With an app to start, old schemas (a large reset's, kept ones past
 * --keep-previous) are dropped beside it (reset_drop_old_schemas), not
 * before it. */
static int defer_drops(const struct reset_run *r)
{
    return r->cfg->command && !r->cfg->plan;
}

/* The small-schema path: one transaction; any error rolls everything back. */
static int reset_in_one_transaction(struct reset_run *r)
{
    int rc = session_begin(&r->s);
    if (rc != 0)
        return rc;
    rc = exclusive_terminate_others(&r->s, RESET_LOCK_KEY, 0);
    if (rc == 0)
        rc = exclusive_lock_tables(&r->s, r->cfg->schemas, RESET_LOCK_KEY, r->cfg->lock_wait_ms);
    /* Again, now that nothing can change: the hook or the app may have made
     * a dependent since the first check. */
    if (rc == 0)
        rc = preflight_dependents(&r->s, r->cfg, 1);
    char *names = rc ? NULL : strdup(r->cfg->schemas), *save = NULL;
    if (rc == 0 && !names)
        rc = EXIT_INTERNAL;
    for (char *n = names ? strtok_r(names, ",", &save) : NULL; n && rc == 0;
         n = strtok_r(NULL, ",", &save))
        rc = keep_or_recreate(r, n);
    free(names);
    if (rc == 0)
        rc = release_extensions(r);
    if (rc == 0)
        rc = apply_schema_file(r);
    if (rc == 0)
        rc = deploys_record_reset(&r->s, r->cfg, &r->start);
    if (rc == 0)
        rc = rebuild_queue_kept_drops(&r->s, r->cfg);
    rc = session_end(&r->s, rc);
    if (rc == EXIT_SCHEMA)
        log_error("the reset was rolled back: database '%s' is unchanged", r->s.report->database);
    /* kept schemas past --keep-previous: dropped now, or beside the app */
    if (rc == 0 && rebuild_drop_queued(&r->s, r->budget, defer_drops(r)) != 0)
        log_warn("the kept schemas past --keep-previous are left for the next start to drop");
    return rc;
}

static int run_hook(struct reset_run *r, const char *name, const char *command)
{
    int stop_signal = 0;
    if (!command)
        return 0;
    if (r->cfg->database_url && setenv("DATABASE_URL", r->cfg->database_url, 1) != 0)
        return EXIT_INTERNAL;
    log_info("running %s", name);
    long start = monotonic_ms();
    int code = spawn_command(command, r->cfg->grace_ms, &stop_signal);
    if (stop_signal) {
        report_add_error(r->s.report, "hook", "signal", "%s stopped by signal %d", name,
                         stop_signal);
        return 128 + stop_signal;
    }
    if (code != 0) {
        log_error("%s failed with exit code %d after %ld ms", name, code, monotonic_ms() - start);
        report_add_error(r->s.report, "hook", "exit", "%s exited with %d", name, code);
        return EXIT_HOOK;
    }
    log_info("%s succeeded in %ld ms", name, monotonic_ms() - start);
    return 0;
}

/* Every check that can refuse, before anything irreversible. */
static int check_before_reset(struct reset_run *r, int *batched)
{
    int rc;
    if ((rc = preflight_schemas_exist(&r->s, r->cfg)) != 0 ||
        (rc = preflight_schemas_owned(&r->s, r->cfg)) != 0 ||
        (rc = preflight_dependents(&r->s, r->cfg, 0)) != 0 ||
        (rc = rebuild_needed(&r->s, r->cfg, r->file.n_stmts, r->budget, batched)) != 0)
        return rc;
    if (!*batched)
        return 0;
    if ((rc = rebuild_check_extensions(&r->s, r->cfg)) != 0)
        return rc;
    return rebuild_check_file(&r->s, r->cfg, &r->file);
}

/* An interrupted large reset is settled first; --plan only says so. */
static int settle_interrupted(struct reset_run *r)
{
    int exists = 0;
    if (!r->cfg->plan)
        return rebuild_recover(&r->s, r->budget, defer_drops(r));
    int rc = session_bool(&r->s, "SELECT to_regclass('bandage.resets_in_progress') IS NOT NULL",
                          NULL, "looking for an interrupted reset", &exists);
    if (rc == 0 && exists)
        printf("bandage --plan: an interrupted reset (bandage.resets_in_progress) would be "
               "settled first\n");
    return rc;
}

/* --plan: what --keep-previous keeps, and what is kept already. */
static int print_plan_kept(struct reset_run *r)
{
    int count = 0;
    long long kept = 0, live = 0;
    char kept_size[32], live_size[32];
    int rc = kept_totals(&r->s, &count, &kept);
    if (rc || (rc = kept_schemas_bytes(&r->s, r->cfg->schemas, &live)))
        return rc;
    kept_human_bytes(kept, kept_size, sizeof kept_size);
    kept_human_bytes(live, live_size, sizeof live_size);
    if (r->cfg->keep_previous > 0)
        printf("  keep the replaced schema(s) aside (--keep-previous %ld): %s on disk "
               "until dropped; --restore-previous swaps them back\n", r->cfg->keep_previous,
               live_size);
    else
        printf("  drop the replaced schema(s) (--keep-previous 0): no undo\n");
    printf("  kept now: %d schema(s), %s (--history lists them); those past "
           "--keep-previous %ld are dropped\n", count, kept_size, r->cfg->keep_previous);
    return 0;
}

/* --plan: what the reset would drop and build; nothing is changed. */
static int print_plan(struct reset_run *r, int batched)
{
    const char *params[] = {r->cfg->schemas};
    int rc;
    /* Rows are the planner's estimate (reltuples), never a count: counting a
     * big table is not cheap. A table never analysed (nor vacuumed) has none:
     * reltuples -1 since PostgreSQL 14; before, 0 with relpages 0, which an
     * empty table analysed also has. Those are named (the first 5), not
     * counted as 0. A partitioned table's rows are its partitions'. */
    PGresult *res = session_query(
        &r->s, "SELECT w, count(c.oid) FILTER (WHERE c.relkind IN ('r', 'p')),"
               "  coalesce(sum(greatest(c.reltuples, 0)) FILTER (WHERE c.known), 0)::bigint,"
               "  count(*) FILTER (WHERE c.known), count(*) FILTER (WHERE NOT c.known),"
               "  array_to_string((array_agg(c.relname::text ORDER BY c.relname)"
               "                   FILTER (WHERE NOT c.known))[1:5], ', ')"
               " FROM unnest(string_to_array($1, ',')) w"
               " LEFT JOIN pg_namespace n ON n.nspname = w"
               " LEFT JOIN LATERAL (SELECT k.oid, k.relkind, k.relname, k.reltuples,"
               "   CASE WHEN k.relkind = 'r' THEN NOT (k.reltuples < 0 OR (k.reltuples = 0"
               "        AND k.relpages = 0"
               "        AND current_setting('server_version_num')::int < 140000)) END AS known"
               "   FROM pg_class k WHERE k.relnamespace = n.oid) c"
               "   ON c.relkind IN ('r', 'p') GROUP BY w ORDER BY min(w)",
        1, params, "reading the schemas' sizes", &rc);
    if (!res)
        return rc;
    printf("bandage --plan: reset of database \"%s\", system identifier %s (%s, %s)\n",
           r->id.name, r->id.system_id[0] ? r->id.system_id : "(not readable by this role)",
           config_reset_mode_name(r->cfg->reset),
           batched ? "large: moved aside, then built in batches" : "in one transaction");
    for (int i = 0; i < PQntuples(res); i++) {
        long known = atol(PQgetvalue(res, i, 3)), unknown = atol(PQgetvalue(res, i, 4));
        printf("  drop and recreate schema %s: %s table(s)", PQgetvalue(res, i, 0),
               PQgetvalue(res, i, 1));
        if (known > 0 || unknown == 0)
            printf(", about %s row(s)", PQgetvalue(res, i, 2));
        if (unknown > 0)
            printf("%s rows unknown (never analysed) in %ld: %s%s", known > 0 ? ", and" : ",",
                   unknown, PQgetvalue(res, i, 5), unknown > 5 ? ", ..." : "");
        printf("\n");
    }
    PQclear(res);
    if (r->cfg->before_reset)
        printf("  first run --before-reset: %s\n", r->cfg->before_reset);
    printf("  apply %zu statement(s) from %s %s\n", r->file.n_stmts,
           r->migrations ? "the migrations in" : "--schema-file",
           r->migrations ? r->migrations->path : r->file.path ? r->file.path : "(none)");
    if (r->cfg->schema_command)
        printf("  then run --schema-command: %s\n", r->cfg->schema_command);
    rc = print_plan_kept(r);
    if (rc == 0)
        printf("nothing was changed (--plan)\n");
    return rc;
}

/* What is kept after this start, for the report. */
static void report_kept(struct reset_run *r)
{
    if (kept_totals(&r->s, &r->s.report->kept_schemas, &r->s.report->kept_bytes) != 0)
        r->s.report->kept_schemas = 0;
}

static int skip_reset(struct reset_run *r)
{
    log_info("deployment %s was already reset; skipping", r->cfg->deployment_id);
    r->s.report->outcome = OUTCOME_SKIPPED;
    snprintf(r->s.report->skip_reason, sizeof r->s.report->skip_reason,
             "deployment id already reset");
    return 0;
}

static int record_after_schema_command(struct reset_run *r)
{
    int rc = session_begin(&r->s);
    if (rc == 0)
        rc = deploys_record(&r->s, r->cfg, &r->start);
    return session_end(&r->s, rc);
}

static int run_reset(struct reset_run *r)
{
    struct deploy_report *report = r->s.report;
    int rc, done = 0, batched = 0;
    if ((rc = load_what_to_build(r)) != 0 || (rc = check_interlock(r)) != 0 ||
        (rc = take_reset_lock(r)) != 0 || (rc = preflight_writable(&r->s)) != 0 ||
        (rc = rebuild_lock_budget(&r->s, &r->budget)) != 0 || (rc = settle_interrupted(r)) != 0 ||
        (rc = deploys_already_reset(&r->s, r->cfg, &done)) != 0)
        return rc;
    if (done)
        return skip_reset(r);
    if ((rc = check_before_reset(r, &batched)) != 0)
        return rc;
    if (r->cfg->plan)
        return print_plan(r, batched);
    if ((rc = run_hook(r, "--before-reset", r->cfg->before_reset)) != 0)
        return rc;
    report_timestamp(r->start.at, sizeof r->start.at);
    r->start.ms = monotonic_ms();
    r->start.migrations = r->migrations;
    log_info("resetting schema(s) %s of database '%s'", r->cfg->schemas, report->database);
    rc = batched ? rebuild_run(&r->s, r->cfg, &r->file, &r->start, r->budget, defer_drops(r))
                 : reset_in_one_transaction(r);
    if (rc != 0)
        return rc;
    report->reset_ms = monotonic_ms() - r->start.ms;
    report->reset_ran = 1;
    snprintf(report->reset_at, sizeof report->reset_at, "%s", r->start.at);
    log_info("reset committed in %ld ms (%ld statements applied)", report->reset_ms,
             report->statements);
    report_kept(r);
    if ((rc = run_hook(r, "--schema-command", r->cfg->schema_command)) != 0)
        return rc;
    return r->cfg->schema_command ? record_after_schema_command(r) : 0;
}

/* The swap, in one short transaction, recorded in bandage.deploys. */
static int restore_in_one_transaction(struct reset_run *r)
{
    int restored = 0;
    int rc = session_begin(&r->s);
    if (rc != 0)
        return rc;
    rc = kept_restore(&r->s, r->cfg, RESET_LOCK_KEY, &restored);
    if (rc == 0)
        rc = deploys_record_as(&r->s, r->cfg, &r->start, "restore");
    rc = session_end(&r->s, rc);
    if (rc == 0)
        r->s.report->restored = restored;
    else if (rc == EXIT_SCHEMA)
        log_error("the restore was rolled back: database '%s' is unchanged",
                  r->s.report->database);
    return rc;
}

/* --plan of a restore: the newest kept schemas, and what is live now. */
static int print_restore_plan(struct reset_run *r)
{
    printf("bandage --plan: restore of database \"%s\", system identifier %s: swap the "
           "newest kept schema(s) back, keeping the current one(s) in turn\n", r->id.name,
           r->id.system_id[0] ? r->id.system_id : "(not readable by this role)");
    int rc = kept_print_history(&r->s, r->cfg->url_schema ? r->cfg->url_schema : "public", 0);
    if (rc == 0)
        printf("nothing was changed (--plan)\n");
    return rc;
}

/* --restore-previous: the reset's checks, then the swap instead of a reset. */
static int run_restore(struct reset_run *r)
{
    struct deploy_report *report = r->s.report;
    int rc, done = 0;
    if ((rc = check_interlock(r)) != 0 || (rc = take_reset_lock(r)) != 0 ||
        (rc = preflight_writable(&r->s)) != 0 ||
        (rc = rebuild_lock_budget(&r->s, &r->budget)) != 0 || (rc = settle_interrupted(r)) != 0 ||
        (rc = deploys_already_restored(&r->s, r->cfg, &done)) != 0)
        return rc;
    if (done) {
        log_info("deployment %s already restored the kept schemas; skipping",
                 r->cfg->deployment_id);
        snprintf(report->skip_reason, sizeof report->skip_reason,
                 "deployment id already restored");
        return 0;
    }
    if (r->cfg->plan)
        return print_restore_plan(r);
    report_timestamp(r->start.at, sizeof r->start.at);
    r->start.ms = monotonic_ms();
    log_info("restoring the newest kept schema(s) of database '%s'", report->database);
    if ((rc = restore_in_one_transaction(r)) != 0)
        return rc;
    report->reset_ms = monotonic_ms() - r->start.ms;
    log_info("restore committed in %ld ms", report->reset_ms);
    report_kept(r);
    return 0;
}

/* --reset never must not start the app on a half-built schema that a crashed
 * large reset left: finish or undo it (no interlock: it only puts back what
 * was asked for before). One catalog lookup otherwise. */
static int recover_only(struct reset_run *r)
{
    int exists = 0;
    int rc = session_bool(&r->s, "SELECT to_regclass('bandage.resets_in_progress') IS NOT NULL",
                          NULL, "looking for an interrupted reset", &exists);
    if (rc || !exists)
        return rc == EXIT_SCHEMA ? EXIT_INTERNAL : rc;
    if ((rc = take_reset_lock(r)) == 0 && (rc = preflight_writable(&r->s)) == 0 &&
        (rc = rebuild_lock_budget(&r->s, &r->budget)) == 0)
        rc = settle_interrupted(r);
    return rc;
}

int reset_database(PGconn *conn, int sfd, const struct config *cfg,
                   const struct migration_dir *migrations, struct deploy_report *report)
{
    struct reset_run r = {.s = {.conn = conn, .sfd = sfd, .report = report}, .cfg = cfg,
                          .migrations = cfg->migrations ? migrations : NULL};
    report->may_drop_dependents = cfg->drop_dependents;
    int rc = cfg->restore_previous       ? run_restore(&r)
             : cfg->reset == RESET_NEVER ? recover_only(&r)
                                         : run_reset(&r);
    if (rc == EXIT_UNAVAILABLE && r.s.backend_pid == 0 && !r.s.lost_silently &&
        PQstatus(conn) != CONNECTION_OK)
        rc = RESET_RECONNECT;
    if (rc != 0 && !report->reset_ran)
        report->statements = report->bytes = 0; /* rolled back: nothing was applied */
    schema_file_free(&r.file);
    return rc;
}

int reset_drop_old_schemas(PGconn *conn, int sfd, struct deploy_report *report)
{
    struct session s = {.conn = conn, .sfd = sfd, .report = report};
    long budget = 0;
    long start = monotonic_ms();
    int rc = rebuild_lock_budget(&s, &budget);
    if (rc == 0)
        rc = rebuild_drop_old(&s, budget);
    if (rc == 0)
        log_info("dropped the old schema(s) beside the app in %ld ms", monotonic_ms() - start);
    db_release_locks(conn, sfd, report->relayed);
    return rc;
}
