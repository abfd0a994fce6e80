#include "kept.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exclusive.h"
#include "exitcodes.h"
#include "json.h"
#include "log.h"
#include "preflight.h"
#include "snapshot.h"

static const char table_sql[] =
    "CREATE SCHEMA IF NOT EXISTS bandage;"
    "CREATE TABLE IF NOT EXISTS bandage.kept_schemas ("
    " kept text PRIMARY KEY, original text NOT NULL, deployment_id text,"
    " kept_at timestamptz NOT NULL DEFAULT now(), kept_oid oid NOT NULL, live_oid oid,"
    " bytes bigint NOT NULL)";

/* On-disk size of what a schema holds: tables with their indexes and TOAST,
 * materialized views, sequences. $1: the schema's name. */
/* The disk of the schemas named by $1 (comma-separated; one name when a
 * schema is kept): tables with their indexes and TOAST, materialized views,
 * sequences. */
#define SCHEMA_BYTES_SQL                                                                  \
    "(SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c"      \
    "  JOIN pg_namespace n ON n.oid = c.relnamespace"                                      \
    "  WHERE n.nspname = ANY (string_to_array($1::text, ','))"                             \
    "    AND c.relkind IN ('r', 'm', 'S'))"

static int table_exists(struct session *s, int *exists)
{
    int rc = session_bool(s, "SELECT to_regclass('bandage.kept_schemas') IS NOT NULL", NULL,
                          "looking for kept schemas", exists);
    return rc == EXIT_SCHEMA ? EXIT_INTERNAL : rc;
}

int kept_fixed_extensions(struct session *s, const char *schema, char *names, size_t len)
{
    int rc;
    const char *params[] = {schema};
    PGresult *res = session_query(
        s, "SELECT coalesce(string_agg(e.extname, ', ' ORDER BY e.extname), '')"
           " FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
           " WHERE n.nspname = $1 AND NOT e.extrelocatable",
        1, params, "listing extensions", &rc);
    if (res)
        snprintf(names, len, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

int kept_may_keep(struct session *s, const char *schema, const char *original, int *may)
{
    int dependents = 0;
    char fixed[256];
    *may = 0;
    int rc = preflight_count_dependents(s, schema, &dependents);
    if (rc == 0)
        rc = kept_fixed_extensions(s, schema, fixed, sizeof fixed);
    if (rc != 0)
        return rc;
    if (fixed[0])
        log_warn("schema %s is dropped, not kept: its extension(s) %s cannot change schema "
                 "(relocatable = false), so it cannot move aside; they are created anew",
                 original, fixed);
    else if (dependents > 0)
        log_warn("schema %s is dropped, not kept: %d object(s) outside it depend on it and, "
                 "kept, would go on reading the old copy (--drop-dependents drops them with it)",
                 original, dependents);
    else
        *may = 1;
    return 0;
}

void kept_human_bytes(long long bytes, char *out, size_t len)
{
    if (bytes < 10 * 1024)
        snprintf(out, len, "%lld bytes", bytes);
    else if (bytes < 10LL * 1024 * 1024)
        snprintf(out, len, "%.0f kB", bytes / 1024.0);
    else
        snprintf(out, len, "%.1f MB", bytes / (1024.0 * 1024.0));
}

int kept_schemas_bytes(struct session *s, const char *schemas, long long *bytes)
{
    const char *params[] = {schemas};
    int rc;
    PGresult *res = session_query(s, "SELECT " SCHEMA_BYTES_SQL, 1, params,
                                  "reading the schemas' sizes", &rc);
    if (res)
        *bytes = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

/* A free bandage_kept_N: neither a schema nor a row. */
static int free_name(struct session *s, char *out, size_t len)
{
    return snapshot_free_name(s, "bandage_kept_", "SELECT kept FROM bandage.kept_schemas", out,
                              len);
}

/* The row for schema `kept` (named so now) kept from `original` (the live
 * schema of that name now): both OIDs, read here from the catalog. */
static int record(struct session *s, const struct config *cfg, const char *kept,
                  const char *original)
{
    const char *params[] = {kept, original, cfg->deployment_id};
    int rc;
    PGresult *res = session_query(
        s, "INSERT INTO bandage.kept_schemas (kept, original, deployment_id, kept_oid, live_oid,"
           " bytes) VALUES ($1::text, $2::text, $3,"
           " (SELECT oid FROM pg_namespace WHERE nspname = $1::text),"
           " (SELECT oid FROM pg_namespace WHERE nspname = $2::text), " SCHEMA_BYTES_SQL ")"
           " RETURNING bytes",
        3, params, "recording the kept schema", &rc);
    if (res) {
        char size[32];
        kept_human_bytes(atoll(PQgetvalue(res, 0, 0)), size, sizeof size);
        log_info("kept the previous schema %s as %s (%s)", original, kept, size);
    }
    PQclear(res);
    return rc;
}

int kept_move_aside(struct session *s, const struct config *cfg, const char *name)
{
    int exists = 0;
    char kept[64];
    int rc = session_bool(s, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                          name, "reading the schema", &exists);
    if (rc == 0 && !exists)
        return session_run_names(s, "CREATE SCHEMA %s", name, NULL, "creating the schema");
    if (rc == 0)
        rc = session_run(s, table_sql, "creating bandage.kept_schemas", EXIT_SCHEMA);
    if (rc == 0)
        rc = free_name(s, kept, sizeof kept);
    if (rc == 0)
        rc = snapshot_move_aside(s, name, kept);
    return rc ? rc : record(s, cfg, kept, name);
}

int kept_adopt(struct session *s, const struct config *cfg, const char *aside,
               const char *original)
{
    char kept[64];
    int rc = session_run(s, table_sql, "creating bandage.kept_schemas", EXIT_SCHEMA);
    if (rc == 0)
        rc = free_name(s, kept, sizeof kept);
    if (rc == 0)
        rc = session_run_names(s, "ALTER SCHEMA %s RENAME TO %s", aside, kept,
                               "keeping the old schema");
    return rc ? rc : record(s, cfg, kept, original);
}

int kept_forget(struct session *s, const char *kept)
{
    const char *params[] = {kept};
    int rc;
    PGresult *res = session_query(s, "DELETE FROM bandage.kept_schemas WHERE kept = $1", 1,
                                  params, "recording the kept schemas", &rc);
    PQclear(res);
    return rc;
}

/* Each row with whether the catalog still proves it: a schema of its name
 * with its OID. $1: only rows past the newest $1 of each original (NULL:
 * only the newest group, kept by one reset or restore). */
static const char rows_sql[] =
    "SELECT k.kept, k.original, k.deployment_id, k.kept_oid,"
    "  coalesce((SELECT oid FROM pg_namespace WHERE nspname = k.kept) = k.kept_oid, false),"
    "  (SELECT nspname FROM pg_namespace WHERE oid = k.kept_oid),"
    "  EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = k.original)"
    " FROM (SELECT *, row_number() OVER (PARTITION BY original ORDER BY kept_at DESC, kept DESC)"
    "         AS rank, kept_at = max(kept_at) OVER () AS newest"
    "       FROM bandage.kept_schemas) k"
    " WHERE CASE WHEN $1::int IS NULL THEN k.newest ELSE k.rank > $1::int END"
    " ORDER BY k.kept_at, k.original, k.kept";

/* Why row i of rows_sql is not proven, or NULL when it is. */
static const char *unproven(PGresult *res, int i, char *why, size_t len)
{
    if (strcmp(PQgetvalue(res, i, 4), "t") == 0)
        return NULL;
    const char *kept = PQgetvalue(res, i, 0);
    if (!PQgetisnull(res, i, 5))
        snprintf(why, len, "the schema bandage kept is named %s now", PQgetvalue(res, i, 5));
    else
        snprintf(why, len, "schema %s %s", kept, "is not the one bandage kept (it was dropped"
                 " or made anew)");
    return why;
}

static PGresult *read_rows(struct session *s, const char *past, int *rc)
{
    const char *params[] = {past};
    return session_query(s, rows_sql, 1, params, "reading bandage.kept_schemas", rc);
}

/* Rows past `keep` that the catalog no longer proves are forgotten: what
 * they name is not bandage's to drop. */
static int forget_unproven(struct session *s, const char *past)
{
    char why[200];
    int rc;
    PGresult *res = read_rows(s, past, &rc);
    for (int i = 0; res && i < PQntuples(res) && rc == 0; i++) {
        if (!unproven(res, i, why, sizeof why))
            continue;
        log_warn("the kept schema %s (was %s) is past --keep-previous but not dropped: %s; "
                 "its row in bandage.kept_schemas is removed", PQgetvalue(res, i, 0),
                 PQgetvalue(res, i, 1), why);
        rc = kept_forget(s, PQgetvalue(res, i, 0));
    }
    PQclear(res);
    return rc;
}

PGresult *kept_excess(struct session *s, long keep, int *rc)
{
    int exists = 0;
    char past[24];
    snprintf(past, sizeof past, "%ld", keep);
    *rc = table_exists(s, &exists);
    if (*rc == 0 && !exists)
        return session_query(s, "SELECT NULL::text, NULL::text, NULL::text, NULL::oid"
                                " WHERE false", 0, NULL, "reading bandage.kept_schemas", rc);
    if (*rc == 0)
        *rc = forget_unproven(s, past);
    return *rc ? NULL : read_rows(s, past, rc);
}

/* ---- restore ------------------------------------------------------------------- */

/* The newest group, every row proven, else 65 naming what was found. */
static PGresult *newest_proven(struct session *s, int *rc)
{
    int exists = 0;
    char why[200];
    *rc = table_exists(s, &exists);
    PGresult *res = *rc || !exists ? NULL : read_rows(s, NULL, rc);
    if (*rc == 0 && (!res || PQntuples(res) == 0)) {
        log_error("--restore-previous: no schema is kept to restore (bandage.kept_schemas is "
                  "%s); a reset keeps the schemas it replaces with --keep-previous 1 or more. "
                  "Nothing was changed", exists ? "empty" : "missing");
        report_add_error(s->report, "restore", "nothing-kept", "no kept schema");
        *rc = EXIT_SCHEMA;
    }
    for (int i = 0; *rc == 0 && i < PQntuples(res); i++) {
        if (!unproven(res, i, why, sizeof why))
            continue;
        log_error("bandage.kept_schemas records schema %s kept from %s, but the catalog no "
                  "longer matches: %s. Nothing was changed. If the database is as it should "
                  "be, remove the row (DELETE FROM bandage.kept_schemas WHERE kept = '%s') and "
                  "deploy again", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), why,
                  PQgetvalue(res, i, 0));
        report_add_error(s->report, "restore", "catalog", "%s: %s", PQgetvalue(res, i, 0), why);
        *rc = EXIT_SCHEMA;
    }
    if (*rc != 0) {
        PQclear(res);
        return NULL;
    }
    return res;
}

/* One schema back under its name; the live one (if any) kept in its turn,
 * its relocatable extensions left with the live name. */
static int swap_back(struct session *s, const struct config *cfg, const char *kept,
                     const char *original, int live_exists)
{
    char now_kept[64];
    int rc = live_exists ? free_name(s, now_kept, sizeof now_kept) : 0;
    if (rc == 0 && live_exists)
        rc = session_run_names(s, "ALTER SCHEMA %s RENAME TO %s", original, now_kept,
                               "keeping the current schema");
    if (rc == 0)
        rc = session_run_names(s, "ALTER SCHEMA %s RENAME TO %s", kept, original,
                               "restoring the kept schema");
    if (rc == 0 && live_exists)
        rc = snapshot_move_extensions(s, now_kept, original);
    if (rc == 0)
        rc = kept_forget(s, kept);
    if (rc == 0 && live_exists)
        rc = record(s, cfg, now_kept, original);
    if (rc == 0)
        log_info("restored schema %s from %s", original, kept);
    return rc;
}

int kept_refuse_fixed_extensions(struct session *s, const char *schema, const char *step,
                                 const char *phase, const char *why)
{
    char names[256];
    int rc = kept_fixed_extensions(s, schema, names, sizeof names);
    if (rc != 0 || !names[0])
        return rc;
    log_error("%s: schema %s holds extension(s) %s, which cannot change schema (relocatable = "
              "false): %s. Nothing was changed. Move them to a schema outside --schemas (DROP "
              "EXTENSION, then CREATE EXTENSION ... SCHEMA ext) and deploy again",
              step, schema, names, why);
    report_add_error(s->report, phase, "extension", "%s: %s", schema, names);
    return EXIT_SCHEMA;
}

/* A live schema holding an extension that cannot move cannot be swapped
 * out: the extension would stay with it, aside, and the restored schema
 * would lack it. */
static int refuse_fixed_extensions(struct session *s, PGresult *res)
{
    int rc = 0;
    for (int i = 0; i < PQntuples(res) && rc == 0; i++)
        rc = kept_refuse_fixed_extensions(s, PQgetvalue(res, i, 1), "--restore-previous",
                                          "restore", "swapped aside, they would stay with it");
    return rc;
}

/* The originals of the rows, comma-separated (as --schemas is). */
static char *originals(PGresult *res)
{
    size_t len = 1;
    for (int i = 0; i < PQntuples(res); i++)
        len += strlen(PQgetvalue(res, i, 1)) + 1;
    char *list = calloc(1, len);
    for (int i = 0; list && i < PQntuples(res); i++) {
        if (i > 0)
            strcat(list, ",");
        strcat(list, PQgetvalue(res, i, 1));
    }
    return list;
}

int kept_restore(struct session *s, const struct config *cfg, const char *lock_key,
                 int *restored)
{
    int rc;
    *restored = 0;
    PGresult *res = newest_proven(s, &rc);
    if (!res)
        return rc;
    char *schemas = originals(res);
    rc = schemas ? refuse_fixed_extensions(s, res) : EXIT_INTERNAL;
    if (rc == 0)
        rc = exclusive_terminate_others(s, lock_key, 0);
    if (rc == 0)
        rc = exclusive_lock_tables(s, schemas, lock_key, cfg->lock_wait_ms);
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        rc = swap_back(s, cfg, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                       strcmp(PQgetvalue(res, i, 6), "t") == 0);
        *restored += rc == 0;
    }
    free(schemas);
    PQclear(res);
    return rc;
}

int kept_totals(struct session *s, int *count, long long *bytes)
{
    int exists = 0;
    *count = 0;
    *bytes = 0;
    int rc = table_exists(s, &exists);
    PGresult *res = rc || !exists ? NULL : session_query(
        s, "SELECT count(*), coalesce(sum(bytes), 0) FROM bandage.kept_schemas", 0, NULL,
        "reading bandage.kept_schemas", &rc);
    if (res) {
        *count = atoi(PQgetvalue(res, 0, 0));
        *bytes = atoll(PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return rc;
}

/* ---- history -------------------------------------------------------------------- */

/* The deploys and migrations, newest first: at, kind, name, outcome,
 * duration_ms, schemas. Each source only if its table exists. */
static PGresult *read_history(struct session *s, const char *migrations_schema, int *rc)
{
    int deploys = 0, prisma = 0;
    char table[300];
    char *quoted = session_quote(s, migrations_schema);
    if (!quoted)
        return *rc = EXIT_INTERNAL, NULL;
    snprintf(table, sizeof table, "%s._prisma_migrations", quoted);
    PQfreemem(quoted);
    *rc = session_bool(s, "SELECT to_regclass('bandage.deploys') IS NOT NULL", NULL,
                       "reading bandage.deploys", &deploys);
    if (*rc == 0)
        *rc = session_bool(s, "SELECT to_regclass($1) IS NOT NULL", table,
                           "reading _prisma_migrations", &prisma);
    if (*rc != 0)
        return NULL;
    char sql[2048];
    size_t n = (size_t)snprintf(
        sql, sizeof sql,
        "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), kind, name,"
        " outcome, duration_ms, schemas FROM ("
        " SELECT NULL::timestamptz AS at, NULL::text AS kind, NULL::text AS name,"
        "  NULL::text AS outcome, NULL::bigint AS duration_ms, NULL::text AS schemas WHERE false");
    if (deploys && n < sizeof sql)
        n += (size_t)snprintf(sql + n, sizeof sql - n,
                              " UNION ALL SELECT finished_at, CASE mode WHEN 'restore' THEN"
                              " 'restore' ELSE 'reset' END, coalesce(deployment_id, ''), 'ok',"
                              " duration_ms, array_to_string(schemas, ',') FROM bandage.deploys");
    if (prisma && n < sizeof sql)
        n += (size_t)snprintf(sql + n, sizeof sql - n,
                              " UNION ALL SELECT coalesce(finished_at, started_at), 'migration',"
                              " migration_name, CASE WHEN rolled_back_at IS NOT NULL THEN"
                              " 'rolled back' WHEN finished_at IS NULL THEN 'failed' ELSE"
                              " 'applied' END, (extract(epoch FROM finished_at - started_at)"
                              " * 1000)::bigint, NULL FROM %s", table);
    if (n < sizeof sql)
        snprintf(sql + n, sizeof sql - n, ") h ORDER BY at DESC NULLS LAST LIMIT 30");
    return session_query(s, sql, 0, NULL, "reading the history", rc);
}

static PGresult *read_kept(struct session *s, int *rc)
{
    int exists = 0;
    *rc = table_exists(s, &exists);
    if (*rc != 0)
        return NULL;
    return session_query(
        s, exists ? "SELECT kept, original, to_char(kept_at AT TIME ZONE 'UTC',"
                    " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), coalesce(deployment_id, ''), bytes"
                    " FROM bandage.kept_schemas ORDER BY kept_at DESC, original"
                  : "SELECT NULL, NULL, NULL, NULL, NULL WHERE false",
        0, NULL, "reading bandage.kept_schemas", rc);
}

/* Row i of res as one JSON line {"history": kind, names[0]: column 0, ...};
 * a name starting with '#' is a number (its column's text as is). NULL
 * columns are null. */
static void print_json_row(const char *kind, PGresult *res, int i, const char *const *names)
{
    struct jbuf b;
    jbuf_init(&b);
    jbuf_puts(&b, "{\"history\":");
    jbuf_string(&b, kind);
    for (int c = 0; names[c]; c++) {
        int number = names[c][0] == '#';
        jbuf_puts(&b, ",");
        jbuf_string(&b, names[c] + number);
        jbuf_puts(&b, ":");
        if (PQgetisnull(res, i, c))
            jbuf_puts(&b, "null");
        else if (number)
            jbuf_puts(&b, PQgetvalue(res, i, c));
        else
            jbuf_string(&b, PQgetvalue(res, i, c));
    }
    jbuf_puts(&b, "}");
    if (!b.failed)
        printf("%s\n", b.data);
    jbuf_free(&b);
}

static void print_history_json(PGresult *h, PGresult *k)
{
    static const char *const deploy[] = {"at", "kind", "name", "outcome", "#duration_ms",
                                         "schemas", NULL};
    static const char *const kept[] = {"schema", "original", "kept_at", "deployment_id",
                                       "#bytes", NULL};
    for (int i = 0; i < PQntuples(h); i++)
        print_json_row("deploy", h, i, deploy);
    for (int i = 0; i < PQntuples(k); i++)
        print_json_row("kept", k, i, kept);
}

static void print_history_text(PGresult *h, PGresult *k)
{
    printf("recent deploys, newest first (bandage.deploys, _prisma_migrations):\n");
    if (PQntuples(h) == 0)
        printf("  (none recorded)\n");
    for (int i = 0; i < PQntuples(h); i++) {
        const char *kind = PQgetvalue(h, i, 1);
        printf("  %s  %-9s %s%s  %s", PQgetvalue(h, i, 0), kind,
               strcmp(kind, "migration") == 0 ? "" : "deployment ",
               PQgetvalue(h, i, 2)[0] ? PQgetvalue(h, i, 2) : "(no id)", PQgetvalue(h, i, 3));
        if (!PQgetisnull(h, i, 5))
            printf(", schemas %s", PQgetvalue(h, i, 5));
        if (!PQgetisnull(h, i, 4))
            printf(", %s ms", PQgetvalue(h, i, 4));
        printf("\n");
    }
    printf("kept schemas (--restore-previous swaps the newest back):\n");
    if (PQntuples(k) == 0)
        printf("  (none)\n");
    for (int i = 0; i < PQntuples(k); i++) {
        char size[32];
        kept_human_bytes(atoll(PQgetvalue(k, i, 4)), size, sizeof size);
        printf("  %s  was %s, kept %s%s%s, %s\n", PQgetvalue(k, i, 0), PQgetvalue(k, i, 1),
               PQgetvalue(k, i, 2), PQgetvalue(k, i, 3)[0] ? " by deployment " : "",
               PQgetvalue(k, i, 3), size);
    }
}

int kept_print_history(struct session *s, const char *migrations_schema, int json)
{
    int rc;
    PGresult *h = read_history(s, migrations_schema, &rc);
    PGresult *k = h ? read_kept(s, &rc) : NULL;
    if (h && k) {
        if (json)
            print_history_json(h, k);
        else
            print_history_text(h, k);
        fflush(stdout);
    }
    PQclear(h);
    PQclear(k);
    return rc;
}

int kept_history(PGconn *conn, int sfd, const struct config *cfg, struct deploy_report *report)
{
    struct session s = {.conn = conn, .sfd = sfd, .report = report};
    int rc = session_pin(&s, cfg->lock_wait_ms);
    return rc ? rc : kept_print_history(&s, cfg->url_schema ? cfg->url_schema : "public",
                                        cfg->log_format == LOG_FORMAT_JSON);
}
