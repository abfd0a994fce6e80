#include "reset.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "query.h"
#include "exitcodes.h"
#include "log.h"
#include "pid1/spawn.h"
#include "reset_internal.h"
#include "sqlsplit.h"


/* An SQL failure: logged, reported, mapped to an exit code. */
int reset_sql_failed(struct reset_ctx *c, const char *phase, const char *what,
                      const struct db_error *err, int code)
{
    if (err->stop_signal) {
        log_warn("%s: stopped by signal %d; rolled back", what, err->stop_signal);
        report_add_error(c->report, phase, "signal", "stopped by signal %d during %s",
                         err->stop_signal, what);
        return 128 + err->stop_signal;
    }
    if (err->connection_lost)
        code = EXIT_UNAVAILABLE;
    log_error("%s failed: %s%s%s", what, err->sqlstate, err->sqlstate[0] ? ": " : "",
              err->message);
    report_add_error(c->report, phase, err->sqlstate[0] ? err->sqlstate : "connection",
                     "%s: %s", what, err->message);
    return code;
}

/* The statement's first word, upper-cased, into word. */
static void first_word(const char *text, size_t len, char *word, size_t wordlen)
{
    size_t n = 0;
    while (n < len && n + 1 < wordlen && isalpha((unsigned char)text[n])) {
        word[n] = (char)toupper((unsigned char)text[n]);
        n++;
    }
    word[n] = '\0';
}

/* bandage runs the file in its own transaction(s). A BEGIN or COMMIT in it
 * (Prisma migrations wrap enum changes so) would end ours early and break
 * all-or-nothing: those are dropped; a ROLLBACK or prepared transaction
 * cannot mean anything sensible here and is refused. */
static int drop_transaction_control(struct reset_ctx *c)
{
    static const char *const dropped[] = {"BEGIN", "START", "COMMIT", "END", NULL};
    static const char *const refused[] = {"ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "PREPARE",
                                          NULL};
    size_t kept = 0;
    for (size_t i = 0; i < c->n_stmts; i++) {
        char word[16];
        int drop = 0;
        first_word(c->sql + c->stmts[i].offset, c->stmts[i].length, word, sizeof word);
        for (int k = 0; refused[k]; k++) {
            if (strcmp(word, refused[k]) == 0) {
                log_error("--schema-file %s, line %d: %s is not allowed: bandage applies the file "
                          "all-or-nothing in its own transaction", c->cfg->schema_file,
                          c->stmts[i].line, word);
                report_add_error(c->report, "schema-file", "transaction",
                                 "line %d: %s is not allowed", c->stmts[i].line, word);
                return EXIT_SCHEMA;
            }
        }
        for (int k = 0; dropped[k]; k++)
            drop |= strcmp(word, dropped[k]) == 0;
        if (drop)
            log_warn("--schema-file %s, line %d: ignoring %s: bandage applies the file in its own "
                     "transaction", c->cfg->schema_file, c->stmts[i].line, word);
        else
            c->stmts[kept++] = c->stmts[i];
    }
    c->n_stmts = kept;
    return 0;
}

static int load_schema_file(struct reset_ctx *c)
{
    const char *path = c->cfg->schema_file;
    char err[256];
    FILE *f;

    if (!path)
        return 0;
    if (!(f = fopen(path, "rb"))) {
        log_error("--schema-file: cannot read '%s': %s", path, strerror(errno));
        report_add_error(c->report, "config", "schema-file", "cannot read %s: %s", path,
                         strerror(errno));
        return EXIT_USAGE;
    }
    size_t cap = 1 << 16;
    c->sql = malloc(cap);
    for (size_t n; c->sql && (n = fread(c->sql + c->sql_len, 1, cap - c->sql_len - 1, f)) > 0;) {
        c->sql_len += n;
        if (c->sql_len + 1 == cap) {
            char *grown = realloc(c->sql, cap *= 2);
            if (!grown) {
                free(c->sql);
                c->sql = NULL;
            }
            c->sql = grown;
        }
    }
    fclose(f);
    if (!c->sql)
        return EXIT_INTERNAL;
    c->sql[c->sql_len] = '\0';
    if (sql_split(c->sql, c->sql_len, &c->stmts, &c->n_stmts, err, sizeof err) != 0) {
        log_error("--schema-file %s: %s", path, err);
        report_add_error(c->report, "schema-file", "syntax", "%s", err);
        return EXIT_SCHEMA;
    }
    return drop_transaction_control(c);
}

/* Waiting for the advisory lock, or for a table lock, is bounded too. */
static int set_lock_timeout(struct reset_ctx *c)
{
    struct db_error err;
    char sql[64];
    long ms = c->cfg->wait_timeout_ms > 0 ? c->cfg->wait_timeout_ms : c->cfg->connect_timeout_ms;
    snprintf(sql, sizeof sql, "SET lock_timeout = %ld", ms);
    if (db_run(c->conn, c->sfd, sql, &err) != 0)
        return reset_sql_failed(c, "reset", "setting lock_timeout", &err, EXIT_INTERNAL);
    return 0;
}

/* Step 1-3: session settings, the interlock, the advisory lock. */
static int prepare_session(struct reset_ctx *c)
{
    struct db_error err;
    int rc = set_lock_timeout(c);
    if (rc != 0)
        return rc;
    PGresult *res = db_exec(c->conn, c->sfd, "SELECT current_database()", 0, NULL, &err);
    if (!res)
        return reset_sql_failed(c, "reset", "reading the database name", &err, EXIT_INTERNAL);
    snprintf(c->report->database, sizeof c->report->database, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    /* Checked before queueing on the lock: a misconfigured replica should
     * fail at once, not after waiting for another's reset. */
    if (!c->cfg->confirm_database || strcmp(c->cfg->confirm_database, c->report->database) != 0) {
        log_error("refusing to reset database '%s': --confirm-database (BANDAGE_CONFIRM_DATABASE) "
                  "must be set to exactly that name", c->report->database);
        report_add_error(c->report, "reset", "interlock",
                         "--confirm-database does not match the connected database '%s'",
                         c->report->database);
        return EXIT_REFUSED;
    }
    log_debug("taking the reset lock (pg_advisory_lock(%s))", RESET_LOCK_KEY);
    if (db_run(c->conn, c->sfd, "SELECT pg_advisory_lock(" RESET_LOCK_KEY ")", &err) != 0)
        return reset_sql_failed(c, "reset", "waiting for the reset lock", &err,
                          strcmp(err.sqlstate, "55P03") == 0 ? EXIT_UNAVAILABLE : EXIT_INTERNAL);
    return 0;
}

/* 1 if the query's single value is true, 0 if false, -1 on error. */
int reset_query_bool(struct reset_ctx *c, const char *sql, const char *param,
                      struct db_error *err)
{
    const char *params[] = {param};
    PGresult *res = db_exec(c->conn, c->sfd, sql, param ? 1 : 0, params, err);
    if (!res)
        return -1;
    int value = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return value;
}

/* Step 4: with --reset once, has this deployment id been reset already? */
static int already_reset(struct reset_ctx *c, int *done)
{
    struct db_error err;
    int exists;

    *done = 0;
    if (c->cfg->reset != RESET_ONCE)
        return 0;
    exists = reset_query_bool(c, "SELECT to_regclass('bandage.deploys') IS NOT NULL", NULL, &err);
    if (exists > 0)
        *done = reset_query_bool(c, "SELECT EXISTS (SELECT 1 FROM bandage.deploys "
                              "WHERE deployment_id = $1)", c->cfg->deployment_id, &err);
    if (exists < 0 || *done < 0)
        return reset_sql_failed(c, "reset", "reading bandage.deploys", &err, EXIT_INTERNAL);
    return 0;
}

/* The statements that give a schema back its owner, ACL, comment, default
 * privileges and extensions once it has been dropped, generated by the server
 * itself (format() quotes every identifier and literal). */
static const char restore_statements_sql[] =
    "WITH s AS (SELECT oid, nspname, nspowner, nspacl FROM pg_namespace WHERE nspname = $1),"
    " grantee AS (SELECT 0::oid AS oid, 'PUBLIC' AS name UNION ALL"
    "             SELECT oid, quote_ident(rolname) FROM pg_roles)"
    " SELECT stmt FROM ("
    "  SELECT 1 AS step, 0::bigint AS n, format('CREATE SCHEMA %I AUTHORIZATION %I',"
    "         nspname, pg_get_userbyid(nspowner)) AS stmt FROM s"
    "  UNION ALL SELECT 2, 0, format('REVOKE ALL ON SCHEMA %I FROM %I', nspname,"
    "         pg_get_userbyid(nspowner)) FROM s WHERE nspacl IS NOT NULL"
    "  UNION ALL SELECT 3, a.n, format(CASE WHEN a.grantor = s.nspowner"
    "         THEN 'GRANT %s ON SCHEMA %I TO %s%s'"
    /* granted by a holder of the grant option: grant as that role again */
    "         ELSE 'SET ROLE %5$I; GRANT %1$s ON SCHEMA %2$I TO %3$s%4$s; RESET ROLE' END,"
    "         a.privilege_type, s.nspname, g.name,"
    "         CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END,"
    "         pg_get_userbyid(a.grantor))"
    "    FROM s, aclexplode(s.nspacl) WITH ORDINALITY a(grantor, grantee, privilege_type,"
    "         is_grantable, n) JOIN grantee g ON g.oid = a.grantee"
    "  UNION ALL SELECT 4, 0, format('COMMENT ON SCHEMA %I IS %L', s.nspname, d.description)"
    "    FROM s JOIN pg_description d ON d.objoid = s.oid"
    "         AND d.classoid = 'pg_namespace'::regclass"
    "  UNION ALL SELECT 5, e.oid::bigint, CASE WHEN $2 = 'move'"
    "         THEN format('ALTER EXTENSION %I SET SCHEMA %I', e.extname, s.nspname)"
    "         ELSE format('CREATE EXTENSION IF NOT EXISTS %I WITH SCHEMA %I VERSION %L CASCADE',"
    "         e.extname, s.nspname, e.extversion) END"
    "    FROM s JOIN pg_extension e ON e.extnamespace = s.oid"
    "  UNION ALL SELECT 6, da.oid::bigint * 1000 + a.n, format('ALTER DEFAULT PRIVILEGES FOR ROLE %I"
    "         IN SCHEMA %I GRANT %s ON %s TO %s%s', pg_get_userbyid(da.defaclrole), s.nspname,"
    "         a.privilege_type, CASE da.defaclobjtype WHEN 'r' THEN 'TABLES'"
    "         WHEN 'S' THEN 'SEQUENCES' WHEN 'f' THEN 'FUNCTIONS' WHEN 'T' THEN 'TYPES' END,"
    "         g.name, CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)"
    "    FROM s JOIN pg_default_acl da ON da.defaclnamespace = s.oid,"
    "         aclexplode(da.defaclacl) WITH ORDINALITY a(grantor, grantee, privilege_type,"
    "         is_grantable, n) JOIN grantee g ON g.oid = a.grantee"
    " ) x ORDER BY step, n";

PGresult *reset_restore_statements(struct reset_ctx *c, const char *name, const char *mode,
                                   int *rc)
{
    struct db_error err;
    const char *params[] = {name, mode};
    PGresult *res = db_exec(c->conn, c->sfd, restore_statements_sql, 2, params, &err);
    *rc = res ? 0 : reset_sql_failed(c, "reset", "reading the schema's owner and privileges",
                                     &err, EXIT_SCHEMA);
    return res;
}

/* Drops one schema and recreates it as it was (empty). */
static int recreate_schema(struct reset_ctx *c, const char *name)
{
    struct db_error err;
    int rc;
    PGresult *res = reset_restore_statements(c, name, "recreate", &rc);
    if (!res)
        return rc;
    char *quoted = PQescapeIdentifier(c->conn, name, strlen(name));
    char *sql = quoted ? malloc(strlen(quoted) + 64) : NULL;
    if (!sql) {
        rc = EXIT_INTERNAL;
        goto out;
    }
    if (PQntuples(res) > 0) {
        sprintf(sql, "DROP SCHEMA %s CASCADE", quoted);
        if (db_run(c->conn, c->sfd, sql, &err) != 0) {
            rc = reset_sql_failed(c, "reset", "dropping the schema", &err, EXIT_SCHEMA);
            goto out;
        }
        for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
            log_debug("restoring: %s", PQgetvalue(res, i, 0));
            if (db_run(c->conn, c->sfd, PQgetvalue(res, i, 0), &err) != 0)
                rc = reset_sql_failed(c, "reset", "restoring the schema", &err, EXIT_SCHEMA);
        }
    } else {
        sprintf(sql, "CREATE SCHEMA %s", quoted); /* asked for, never existed */
        if (db_run(c->conn, c->sfd, sql, &err) != 0)
            rc = reset_sql_failed(c, "reset", "creating the schema", &err, EXIT_SCHEMA);
    }
out:
    free(sql);
    PQfreemem(quoted);
    PQclear(res);
    return rc;
}

/* Every other session of this database goes, except other bandages (they
 * wait on the advisory lock) and those we have no right to signal. */
static const char terminate_sql[] =
    "SELECT count(*) FILTER (WHERE t) FROM (SELECT pg_terminate_backend(a.pid, 5000) AS t"
    "  FROM pg_stat_activity a WHERE a.datname = current_database()"
    "   AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'"
    "   AND coalesce(a.application_name, '') <> 'bandage'"
    "   AND ((SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
    "        OR (pg_has_role(a.usesysid, 'MEMBER') OR pg_has_role('pg_signal_backend', 'MEMBER'))"
    "           AND NOT (SELECT rolsuper FROM pg_roles WHERE oid = a.usesysid))) x";

int reset_terminate_other_sessions(struct reset_ctx *c)
{
    struct db_error err;
    PGresult *res = db_exec(c->conn, c->sfd, terminate_sql, 0, NULL, &err);
    if (!res)
        return reset_sql_failed(c, "reset", "terminating other sessions", &err, EXIT_SCHEMA);
    log_info("terminated %s other session(s)", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

/* The line of the schema file where statement i failed at position pos
 * (PostgreSQL counts characters, 1-based; the file is UTF-8). */
static int failing_line(const struct reset_ctx *c, size_t i, int pos)
{
    const struct sql_statement *st = &c->stmts[i];
    size_t at = st->offset, end = st->offset + st->length;
    for (int chars = 1; chars < pos && at < end; chars++) {
        at++;
        while (at < end && ((unsigned char)c->sql[at] & 0xC0) == 0x80)
            at++; /* continuation bytes belong to the same character */
    }
    return sql_line_of(c->sql, at);
}

int reset_run_statement(struct reset_ctx *c, size_t i, struct db_error *err)
{
    const struct sql_statement *st = &c->stmts[i];
    char saved = c->sql[st->offset + st->length];
    c->sql[st->offset + st->length] = '\0';
    int rc = db_run(c->conn, c->sfd, c->sql + st->offset, err);
    c->sql[st->offset + st->length] = saved;
    return rc;
}

int reset_statement_failed(struct reset_ctx *c, size_t i, const struct db_error *err)
{
    if (err->stop_signal)
        return reset_sql_failed(c, "schema-file", "applying the schema file", err, EXIT_SCHEMA);
    int line = failing_line(c, i, err->position);
    log_error("--schema-file %s, line %d: %s%s%s", c->cfg->schema_file, line, err->sqlstate,
              err->sqlstate[0] ? ": " : "", err->message);
    report_add_error(c->report, "schema-file", err->sqlstate[0] ? err->sqlstate : "connection",
                     "line %d: %s", line, err->message);
    return err->connection_lost ? EXIT_UNAVAILABLE : EXIT_SCHEMA;
}

void reset_count_applied(struct reset_ctx *c, size_t i)
{
    c->report->statements++;
    c->report->bytes += (long)c->stmts[i].length + 1;
}

static int apply_schema_file(struct reset_ctx *c)
{
    struct db_error err;
    for (size_t i = 0; i < c->n_stmts; i++) {
        if (reset_run_statement(c, i, &err) != 0)
            return reset_statement_failed(c, i, &err);
        reset_count_applied(c, i);
    }
    return 0;
}

int reset_record_deploy(struct reset_ctx *c)
{
    static const char create_sql[] =
        "CREATE SCHEMA IF NOT EXISTS bandage;"
        "CREATE TABLE IF NOT EXISTS bandage.deploys ("
        " id bigserial PRIMARY KEY, deployment_id text, mode text NOT NULL,"
        " started_at timestamptz NOT NULL, finished_at timestamptz NOT NULL DEFAULT now(),"
        " duration_ms bigint NOT NULL, schemas text[] NOT NULL, bandage_version text NOT NULL)";
    struct db_error err;
    char duration[32];
    snprintf(duration, sizeof duration, "%ld", monotonic_ms() - c->started_ms);
    const char *params[] = {c->cfg->deployment_id, config_reset_mode_name(c->cfg->reset),
                            c->started_at, duration, c->cfg->schemas, bandage_version};
    if (db_run(c->conn, c->sfd, create_sql, &err) != 0)
        return reset_sql_failed(c, "reset", "creating bandage.deploys", &err, EXIT_SCHEMA);
    PGresult *res = db_exec(c->conn, c->sfd,
                            "INSERT INTO bandage.deploys (deployment_id, mode, started_at,"
                            " duration_ms, schemas, bandage_version)"
                            " VALUES ($1, $2, $3, $4, string_to_array($5, ','), $6)",
                            6, params, &err);
    if (!res)
        return reset_sql_failed(c, "reset", "recording the deploy", &err, EXIT_SCHEMA);
    PQclear(res);
    return 0;
}

/* Step 6: one transaction; any error rolls everything back. */
static int reset_in_one_transaction(struct reset_ctx *c)
{
    struct db_error err;
    int rc;

    if (db_run(c->conn, c->sfd, "BEGIN", &err) != 0)
        return reset_sql_failed(c, "reset", "BEGIN", &err, EXIT_SCHEMA);
    if ((rc = reset_terminate_other_sessions(c)) != 0)
        goto rollback;
    char *names = strdup(c->cfg->schemas);
    if (!names) {
        rc = EXIT_INTERNAL;
        goto rollback;
    }
    char *save = NULL;
    for (char *n = strtok_r(names, ",", &save); n && rc == 0; n = strtok_r(NULL, ",", &save))
        rc = recreate_schema(c, n);
    free(names);
    if (rc == 0)
        rc = apply_schema_file(c);
    /* With a --schema-command the deploy is recorded only once it succeeded,
     * so that a failed command is retried by the next start. */
    if (rc == 0 && !c->cfg->schema_command)
        rc = reset_record_deploy(c);
    if (rc == 0 && db_run(c->conn, c->sfd, "COMMIT", &err) != 0)
        return reset_sql_failed(c, "reset", "COMMIT", &err, EXIT_SCHEMA);
    if (rc == 0)
        return 0;
rollback:
    /* After a cancel or lost connection ROLLBACK may fail; closing the
     * connection rolls back all the same. */
    db_run(c->conn, c->sfd, "ROLLBACK", &err);
    return rc;
}

static int run_hook(struct reset_ctx *c, const char *name, const char *command)
{
    int stop_signal = 0;
    if (!command)
        return 0;
    if (c->cfg->database_url && setenv("DATABASE_URL", c->cfg->database_url, 1) != 0)
        return EXIT_INTERNAL;
    log_info("running %s", name);
    long start = monotonic_ms();
    int code = spawn_command(command, c->cfg->grace_ms, &stop_signal);
    if (stop_signal) {
        report_add_error(c->report, "hook", "signal", "%s stopped by signal %d", name, stop_signal);
        return 128 + stop_signal;
    }
    if (code != 0) {
        log_error("%s failed with exit code %d after %ld ms", name, code, monotonic_ms() - start);
        report_add_error(c->report, "hook", "exit", "%s exited with %d", name, code);
        return EXIT_HOOK;
    }
    log_info("%s succeeded in %ld ms", name, monotonic_ms() - start);
    return 0;
}

static int run_reset(struct reset_ctx *c)
{
    int rc, done;
    struct db_error err;

    if ((rc = load_schema_file(c)) != 0 || (rc = prepare_session(c)) != 0 ||
        (rc = reset_recover_interrupted(c)) != 0 || (rc = already_reset(c, &done)) != 0)
        return rc;
    if (done) {
        log_info("deployment %s was already reset; skipping", c->cfg->deployment_id);
        c->report->outcome = OUTCOME_SKIPPED;
        snprintf(c->report->skip_reason, sizeof c->report->skip_reason,
                 "deployment id already reset");
        return 0;
    }
    if ((rc = run_hook(c, "--before-reset", c->cfg->before_reset)) != 0)
        return rc;
    report_timestamp(c->started_at, sizeof c->started_at);
    c->started_ms = monotonic_ms();
    log_info("resetting schema(s) %s of database '%s'", c->cfg->schemas, c->report->database);
    int batched = 0;
    if ((rc = reset_needs_batches(c, &batched)) != 0 ||
        (rc = batched ? reset_in_batches(c) : reset_in_one_transaction(c)) != 0)
        return rc;
    c->report->reset_ms = monotonic_ms() - c->started_ms;
    c->report->reset_ran = 1;
    snprintf(c->report->reset_at, sizeof c->report->reset_at, "%s", c->started_at);
    log_info("reset committed in %ld ms (%ld statements applied)", c->report->reset_ms,
             c->report->statements);
    if ((rc = run_hook(c, "--schema-command", c->cfg->schema_command)) != 0)
        return rc;
    if (c->cfg->schema_command) {
        if (db_run(c->conn, c->sfd, "BEGIN", &err) != 0 || (rc = reset_record_deploy(c)) != 0 ||
            db_run(c->conn, c->sfd, "COMMIT", &err) != 0)
            return rc ? rc : reset_sql_failed(c, "reset", "recording the deploy", &err, EXIT_INTERNAL);
    }
    return 0;
}

/* --reset never still must not start the app on a half-built schema that a
 * crashed large reset left: finish or undo it (no interlock needed: it only
 * puts back what was asked for before). Costs one catalog lookup otherwise. */
static int recover_only(struct reset_ctx *c)
{
    struct db_error err;
    int rc = reset_query_bool(c, "SELECT to_regclass('bandage.resets_in_progress') IS NOT NULL",
                              NULL, &err);
    if (rc <= 0)
        return rc < 0 ? reset_sql_failed(c, "reset", "looking for an interrupted reset", &err,
                                         EXIT_INTERNAL)
                      : 0;
    if ((rc = set_lock_timeout(c)) != 0)
        return rc;
    if (db_run(c->conn, c->sfd, "SELECT pg_advisory_lock(" RESET_LOCK_KEY ")", &err) != 0)
        return reset_sql_failed(c, "reset", "waiting for the reset lock", &err, EXIT_UNAVAILABLE);
    return reset_recover_interrupted(c);
}

int reset_database(PGconn *conn, int sfd, const struct config *cfg,
                   struct deploy_report *report)
{
    struct reset_ctx c = {.conn = conn, .sfd = sfd, .cfg = cfg, .report = report};
    if (cfg->reset == RESET_NEVER)
        return recover_only(&c);
    int rc = run_reset(&c);
    if (rc != 0 && !report->reset_ran)
        report->statements = report->bytes = 0; /* rolled back: nothing was applied */
    free(c.stmts);
    free(c.sql);
    return rc;
}
