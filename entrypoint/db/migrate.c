#include "migrate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checks.h"
#include "clock.h"
#include "exitcodes.h"
#include "identity.h"
#include "lockretry.h"
#include "log.h"
#include "pooler.h"
#include "prisma8_apply.h"
#include "prisma8_dir.h"
#include "prisma_table.h"
#include "progress.h"
#include "session.h"
#include "sqlclass.h"
#include "sqlsplit.h"

enum migration_state { STATE_PENDING, STATE_APPLIED, STATE_CHANGED };

/* A pending migration, split and classified before anything runs. */
struct pending {
    struct sql_statement *stmts;
    size_t n_stmts;
    int autocommit_line; /* >0: a statement that cannot run in a transaction block */
    char autocommit_what[48];
};

struct migrate_ctx {
    struct session s;        /* failures and settings, as the reset's */
    PGconn *conn;
    int sfd;
    const struct config *cfg;
    const struct migration_dir *dir;
    struct deploy_report *report;
    const char *schema;
    char *table;             /* "schema"."_prisma_migrations" */
    PGresult *rows;          /* its rows (see READ_COLUMNS); NULL when it does not exist */
    enum migration_state *state;
    struct pending *pending; /* per migration, for STATE_PENDING ones */
    size_t n_pending;
    int n_changed;
    char refused[300];       /* why the start stops before applying anything; "" if not */
    char settings[400];      /* "SET lock_timeout ...; [SET search_path ...;] " */
    int server_pid;          /* the server process of the first round trip; 0 before */
    int lock_taken;          /* Prisma's lock may be held: given back on the way out */
    char *scratch;           /* one statement, NUL-terminated */
    size_t scratch_cap;
    struct checks checks;    /* the pending statements' findings (--migration-checks) */
    struct progress progress; /* of the run: done and total count migrations */
    const struct migration *running; /* for the progress line: the migration... */
    int running_line;        /* ...and the line its running statement starts at */
};

/* The columns of read_rows()'s result. */
enum { COL_LOCKED, COL_DATABASE, COL_NAME, COL_CHECKSUM, COL_FINISHED, COL_ROLLED_BACK,
       COL_STARTED, COL_LOGS, COL_PID, COL_RELEASED };

/* The line, in its file, of character `position` (1-based, as the server
 * counts: characters, not bytes) of a statement that starts at `line`. */
static int line_of_position(const char *text, size_t len, int line, int position)
{
    int chars = 0;
    for (size_t i = 0; i < len && chars < position - 1; i++) {
        if (((unsigned char)text[i] & 0xC0) != 0x80)
            chars++;
        line += text[i] == '\n';
    }
    return line;
}

/* The start stops before applying anything: the error (logged by the
 * caller) is reported, and kept for --plan's last line. Returns rc. */
#define refuse(c, rc, code, ...) \
    report_refusal((c)->report, (c)->refused, sizeof (c)->refused, rc, "migrate", code, __VA_ARGS__)

/* ---- the lock and the table, in one round trip ---------------------------- */

/* Table locks are waited for at most --lock-wait; with the URL's schema
 * parameter, unqualified names go there, as on Prisma's connection. */
static int make_settings(struct migrate_ctx *c)
{
    int n = snprintf(c->settings, sizeof c->settings, "SET lock_timeout = %ld; ",
                     c->cfg->lock_wait_ms);
    if (!c->cfg->url_schema)
        return 0;
    char *quoted = PQescapeIdentifier(c->conn, c->schema, strlen(c->schema));
    int fits = quoted && snprintf(c->settings + n, sizeof c->settings - (size_t)n,
                                  "SET search_path TO %s; ", quoted) < (int)sizeof c->settings - n;
    PQfreemem(quoted);
    return fits ? 0 : -1;
}

/* Prisma's lock, taken only when _prisma_migrations exists (to_regclass):
 * when it does not, the read fails after this statement and could not give
 * the lock back. */
static const char try_lock_sql[] =
    "%sSELECT pg_catalog.pg_try_advisory_lock(" PRISMA_LOCK_KEY ")"
    " WHERE pg_catalog.to_regclass(%s) IS NOT NULL; ";

/* The rows, read with a snapshot taken after the lock (READ COMMITTED: one
 * per statement); with `release` true, the same statement gives the lock
 * back (its snapshot is taken already; the OFFSET 0s keep the subqueries
 * from being flattened, so that the unlock runs once). */
static const char read_rows_sql[] =
    "SELECT l.locked, pg_catalog.current_database(), m.migration_name, m.checksum,"
    " m.finished_at IS NOT NULL, m.rolled_back_at IS NOT NULL, m.started_at::text, m.logs,"
    " l.pid, l.released"
    " FROM (SELECT x.locked, pg_catalog.pg_backend_pid() AS pid,"
    "       CASE WHEN x.locked AND %s THEN pg_catalog.pg_advisory_unlock(" PRISMA_LOCK_KEY ")"
    "       END AS released"
    "       FROM (SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE locktype = 'advisory'"
    "             AND pid = pg_catalog.pg_backend_pid() AND classid = 0"
    "             AND objid = " PRISMA_LOCK_KEY " AND objsubid = 1 AND granted) AS locked"
    "             OFFSET 0) x OFFSET 0) l"
    " LEFT JOIN (SELECT * FROM %s) m ON true ORDER BY m.started_at, m.migration_name";

/* bandage's own calls are qualified: a database's search_path may put a
 * writable schema before pg_catalog. */
static char *read_sql(struct migrate_ctx *c, int take_lock)
{
    char *literal = PQescapeLiteral(c->conn, c->table, strlen(c->table));
    size_t cap = sizeof try_lock_sql + sizeof c->settings + sizeof read_rows_sql +
                 2 * strlen(c->table) + (literal ? strlen(literal) : 0);
    char *sql = literal ? malloc(cap) : NULL;
    int n = sql && take_lock ? snprintf(sql, cap, try_lock_sql, c->settings, literal) : 0;
    if (sql)
        snprintf(sql + n, cap - (size_t)n, read_rows_sql, take_lock ? "true" : "false",
                 c->table);
    PQfreemem(literal);
    return sql;
}

/* Reads _prisma_migrations; with take_lock, under Prisma's lock when it is
 * free, given back in the same round trip. 1: read (*locked: the lock was
 * free, or is held), 0: the table (or its schema) does not exist, else an
 * exit code. */
static int read_rows(struct migrate_ctx *c, int take_lock, int *locked)
{
    struct db_error err;
    char *sql = read_sql(c, take_lock);
    if (!sql)
        return EXIT_INTERNAL;
    PQclear(c->rows);
    c->rows = db_exec(c->conn, c->sfd, sql, 0, NULL, &err);
    free(sql);
    /* Failed after the lock was taken, maybe (a table dropped meanwhile). */
    c->lock_taken |= take_lock && !c->rows;
    if (!c->rows && (strcmp(err.sqlstate, "42P01") == 0 || strcmp(err.sqlstate, "3F000") == 0))
        return 0;
    if (!c->rows)
        return session_failed(&c->s, "reading _prisma_migrations", &err, EXIT_INTERNAL);
    *locked = strcmp(PQgetvalue(c->rows, 0, COL_LOCKED), "t") == 0;
    if (!c->server_pid)
        c->server_pid = atoi(PQgetvalue(c->rows, 0, COL_PID));
    snprintf(c->report->database, sizeof c->report->database, "%s",
             PQgetvalue(c->rows, 0, COL_DATABASE));
    return 1;
}

/* When the first read failed (no table yet): which server process, and
 * which database, this is. */
static int identify(struct migrate_ctx *c)
{
    int rc;
    PGresult *res = session_query(&c->s, "SELECT pg_catalog.pg_backend_pid(),"
                                         " pg_catalog.current_database()",
                                  0, NULL, "reading the server process", &rc);
    if (!res)
        return rc == EXIT_SCHEMA ? EXIT_INTERNAL : rc;
    c->server_pid = atoi(PQgetvalue(res, 0, 0));
    snprintf(c->report->database, sizeof c->report->database, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    return 0;
}

/* Through a transaction pooler each round trip may reach another server
 * connection: a session lock taken in one protects nothing in the others,
 * and stays with its server connection after bandage exits. */
static int through_a_pooler(struct migrate_ctx *c, int pid)
{
    log_error("the database connection goes through a transaction pooler (server process %d "
              "answered, then %d): Prisma's migrations lock cannot be held there; set "
              "DIRECT_URL (or --direct-url) to the database's direct, unpooled URL; nothing "
              "was applied", c->server_pid, pid);
    return refuse(c, EXIT_USAGE, "pooler", "connection through a transaction pooler; set "
                  "DIRECT_URL");
}


static int lock_wait_ran_out(struct migrate_ctx *c, long waited)
{
    const char *params[] = {PRISMA_LOCK_KEY};
    /* --wait-timeout 0 (one attempt) leaves one connection attempt's limit. */
    const char *setting = c->cfg->wait_timeout_ms > 0
                              ? "--wait-timeout, BANDAGE_WAIT_TIMEOUT"
                              : "--connect-timeout, BANDAGE_CONNECT_TIMEOUT";
    log_error("the migrations lock (pg_advisory_lock(%s)) was not free within %ld ms (%s); "
              "nothing was applied; its holder follows: let it finish, or end it, then start "
              "again", PRISMA_LOCK_KEY, waited, setting);
    report_add_error(c->report, "migrate", "lock", "the migrations lock was not free "
                     "within %ld ms", waited);
    session_log_holders(&c->s, "the migrations lock (pg_advisory_lock(" PRISMA_LOCK_KEY "))",
                        SESSION_ADVISORY_HOLDERS_SQL, 1, params);
    return EXIT_UNAVAILABLE;
}

/* Polls pg_try_advisory_lock rather than waiting in pg_advisory_lock: a
 * session waiting inside a statement holds a snapshot, and CREATE INDEX
 * CONCURRENTLY run by the lock holder waits for every such snapshot to go:
 * the two would deadlock. Bounded by --wait-timeout. */
static int poll_lock(struct migrate_ctx *c, struct progress *p);

/* "waiting for the migrations lock (pg_advisory_lock(72707369)), attempt 40". */
static void describe_lock_wait(const struct progress *p, long now, char *out, size_t len)
{
    (void)now;
    snprintf(out, len, "waiting for the migrations lock (pg_advisory_lock(%s)), attempt %ld: "
             "another bandage or prisma migrate holds it", PRISMA_LOCK_KEY, p->done);
}

static int hold_lock(struct migrate_ctx *c)
{
    struct progress p = {.describe = NULL}; /* begun once the lock was found taken */
    int rc = poll_lock(c, &p);
    progress_end(&p);
    return rc;
}

static int poll_lock(struct migrate_ctx *c, struct progress *p)
{
    char sql[sizeof c->settings + 256];
    long wait = c->cfg->wait_timeout_ms > 0 ? c->cfg->wait_timeout_ms : c->cfg->connect_timeout_ms;
    long deadline = monotonic_ms() + wait, pause = 10;
    /* Taken only in the server process of the first round trip: one that
     * answers from another is a pooler's, found before the lock is taken. */
    snprintf(sql, sizeof sql, "%sSELECT CASE WHEN pg_catalog.pg_backend_pid() = %d THEN "
             "pg_catalog.pg_try_advisory_lock(%s) END, pg_catalog.pg_backend_pid()",
             c->settings, c->server_pid, PRISMA_LOCK_KEY);
    for (int tries = 0;; tries++) {
        struct db_error err;
        PGresult *res = db_exec(c->conn, c->sfd, sql, 0, NULL, &err);
        if (!res)
            return session_failed(&c->s, "taking the migrations lock", &err, EXIT_INTERNAL);
        int other = PQgetisnull(res, 0, 0), pid = atoi(PQgetvalue(res, 0, 1));
        int got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
        if (other)
            return through_a_pooler(c, pid);
        c->lock_taken |= got;
        if (got)
            return 0;
        if (tries == 0) {
            log_info("waiting for the migrations lock (pg_advisory_lock(%s)): another bandage "
                     "or prisma migrate is migrating this database", PRISMA_LOCK_KEY);
            progress_begin(p, "lock-wait", -1, 0, describe_lock_wait, NULL);
        }
        progress_step(p, tries + 1);
        long left = deadline - monotonic_ms();
        if (left <= 0)
            return lock_wait_ran_out(c, wait);
        int sig = 0, waited = db_wait(-1, 0, c->sfd, pause < left ? pause : left, &sig);
        if (waited == DB_WAIT_STOPPED) {
            report_add_error(c->report, "migrate", "signal",
                             "stopped by signal %d waiting for the migrations lock", sig);
            return 128 + sig;
        }
        if (waited == DB_WAIT_ERROR) { /* bandage's fault, not the database's */
            log_error("waiting for the migrations lock: poll: %s", strerror(errno));
            report_add_error(c->report, "migrate", "internal", "poll failed waiting for the "
                             "migrations lock");
            return EXIT_INTERNAL;
        }
        pause = pause * 2 > 250 ? 250 : pause * 2;
    }
}

static int applied_row(const struct migrate_ctx *c, const char *name);

/* Is a migration of the directory to be applied (by a start, not a plan)? */
static int anything_to_apply(const struct migrate_ctx *c)
{
    for (size_t i = 0; i < c->dir->count && !c->cfg->plan; i++)
        if (applied_row(c, c->dir->items[i].name) < 0)
            return 1;
    return 0;
}

/* --plan, with something pending: the start would take the lock for the
 * run now, where the first round trip ran, and refuse a transaction pooler
 * that answers from another server process (hold_lock). */
static int plan_same_server(struct migrate_ctx *c)
{
    int rc = c->cfg->reset == RESET_NEVER ? pooler_check(&c->s, c->cfg) : 0;
    if (rc == EXIT_USAGE) /* the plan's last line says why, as for every refusal */
        snprintf(c->refused, sizeof c->refused, "connection through a transaction pooler; "
                 "set DIRECT_URL");
    if (rc != 0)
        return rc;
    PGresult *res = session_query(&c->s, "SELECT pg_catalog.pg_backend_pid()", 0, NULL,
                                  "reading the server process", &rc);
    if (!res)
        return rc == EXIT_SCHEMA ? EXIT_INTERNAL : rc;
    int pid = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return pid == c->server_pid ? 0 : through_a_pooler(c, pid);
}

/* Step 1: the rows, read under the lock in one round trip that gives it
 * back: a start with nothing to apply, and a --plan, end holding nothing,
 * also through a pooler that keeps the server connection after bandage
 * exits. The lock is held for the run when something is to be applied, or
 * waited for when another migrator holds it; then the rows are read again. */
static int lock_and_read(struct migrate_ctx *c)
{
    int locked = 0;
    int rc = read_rows(c, 1, &locked);
    if (rc > 1)
        return rc;
    if (rc == 0 && (rc = identify(c)) != 0)
        return rc;
    /* Each transaction that changes something checks it runs here. */
    c->s.backend_pid = c->server_pid;
    if ((!c->rows || locked) && !anything_to_apply(c))
        return 0;
    /* Held for the run from here: not through a transaction pooler, however
     * quiet (pooler.c; a reset before has checked already). */
    if (c->cfg->reset == RESET_NEVER && (rc = pooler_check(&c->s, c->cfg)) != 0)
        return rc;
    /* (A failed read rolled back the SETs: hold_lock sends them again.) */
    if ((rc = hold_lock(c)) != 0)
        return rc;
    rc = read_rows(c, 0, &locked);
    return rc > 1 ? rc : 0;
}

/* Prisma's lock is given back on every way out once taken: a session's end
 * releases it, but a pooler keeps the server connection (and its locks)
 * after bandage exits. Only in the server process that took it (0: any of
 * bandage's), never another client's; best effort. */
static const char release_sql[] =
    "SELECT pg_catalog.pg_backend_pid(), (SELECT pg_catalog.pg_advisory_unlock("
    PRISMA_LOCK_KEY ") FROM pg_catalog.pg_locks l WHERE l.locktype = 'advisory'"
    " AND l.classid = 0 AND l.objid = " PRISMA_LOCK_KEY " AND l.objsubid = 1 AND l.granted"
    " AND l.pid = pg_catalog.pg_backend_pid() AND $1::int IN (0, l.pid))";

/* Through a pooler a round trip may reach another server connection than
 * the one holding the lock: a few more tries. */
#define RELEASE_TRIES 8

static void release_lock(struct migrate_ctx *c)
{
    char pid[16];
    const char *params[] = {pid};
    snprintf(pid, sizeof pid, "%d", c->server_pid);
    for (int i = 0; c->lock_taken && i < RELEASE_TRIES && PQstatus(c->conn) == CONNECTION_OK;
         i++) {
        struct db_error err;
        PGresult *res = db_exec(c->conn, c->sfd, release_sql, 1, params, &err);
        if (!res)
            return; /* a session that cannot run a query ends, and its locks with it */
        int here = !c->server_pid || atoi(PQgetvalue(res, 0, 0)) == c->server_pid;
        int released = !PQgetisnull(res, 0, 1);
        PQclear(res);
        if (here && !released) /* held no more (one release per time it was taken) */
            c->lock_taken = 0;
    }
}

/* ---- comparing the directory with the table ------------------------------ */

static int row_is_finished(const struct migrate_ctx *c, int r)
{
    return strcmp(PQgetvalue(c->rows, r, COL_FINISHED), "t") == 0;
}

static int row_is_rolled_back(const struct migrate_ctx *c, int r)
{
    return strcmp(PQgetvalue(c->rows, r, COL_ROLLED_BACK), "t") == 0;
}

static int row_count(const struct migrate_ctx *c)
{
    return c->rows && !PQgetisnull(c->rows, 0, COL_NAME) ? PQntuples(c->rows) : 0;
}

/* The finished, not rolled back row of migration `name`, or -1 (Prisma:
 * a rolled-back row does not count as applied). */
static int applied_row(const struct migrate_ctx *c, const char *name)
{
    for (int r = 0; r < row_count(c); r++)
        if (row_is_finished(c, r) && !row_is_rolled_back(c, r) &&
            strcmp(PQgetvalue(c->rows, r, COL_NAME), name) == 0)
            return r;
    return -1;
}

static const struct migration *find_migration(const struct migrate_ctx *c, const char *name)
{
    for (size_t i = 0; i < c->dir->count; i++)
        if (strcmp(c->dir->items[i].name, name) == 0)
            return &c->dir->items[i];
    return NULL;
}

static int row_is_failed(const struct migrate_ctx *c, int r)
{
    return !row_is_finished(c, r) && !row_is_rolled_back(c, r);
}

/* Prisma's P3009: a migration that started and neither finished nor was
 * rolled back blocks every later one until someone resolves it. A --plan
 * says it in the same words as the start, and exits as it would. */
static int check_failed_rows(struct migrate_ctx *c)
{
    for (int r = 0; r < row_count(c); r++) {
        if (!row_is_failed(c, r))
            continue;
        const char *name = PQgetvalue(c->rows, r, COL_NAME);
        const char *logs = PQgetisnull(c->rows, r, COL_LOGS) ? "" : PQgetvalue(c->rows, r, COL_LOGS);
        log_error("migration %s started at %s and did not finish (Prisma's P3009%s%.200s): fix "
                  "the database, then mark it: npx prisma migrate resolve --rolled-back %s (or "
                  "--applied %s if you completed it by hand); no migration was applied", name,
                  PQgetvalue(c->rows, r, COL_STARTED), logs[0] ? "; logs: " : "", logs, name,
                  name);
        return refuse(c, EXIT_SCHEMA, "P3009", "migration %s failed before; resolve it: npx "
                      "prisma migrate resolve --rolled-back %s", name, name);
    }
    return 0;
}

/* Sorts each migration of the directory into applied, changed or pending. */
static int classify(struct migrate_ctx *c)
{
    for (size_t i = 0; i < c->dir->count; i++) {
        const struct migration *m = &c->dir->items[i];
        int r = applied_row(c, m->name);
        c->state[i] = r < 0 ? STATE_PENDING : STATE_APPLIED;
        c->n_pending += r < 0;
        if (r < 0 || !m->sql)
            continue;
        int same = migration_checksum_matches(m->sql, m->sql_len,
                                              PQgetvalue(c->rows, r, COL_CHECKSUM));
        if (same < 0)
            return EXIT_INTERNAL;
        if (!same) {
            c->state[i] = STATE_CHANGED;
            c->n_changed++;
        }
    }
    return 0;
}

/* What the comparison found that the operator should know; with
 * --migrations-strict a changed applied migration stops the start. */
static int report_differences(struct migrate_ctx *c)
{
    for (size_t i = 0; i < c->dir->count; i++) {
        const struct migration *m = &c->dir->items[i];
        int r = applied_row(c, m->name);
        const char *recorded = r < 0 ? "" : PQgetvalue(c->rows, r, COL_CHECKSUM);
        if (c->state[i] == STATE_APPLIED && !m->sql)
            log_warn("migration %s is applied but %s/%s/migration.sql is missing: its checksum "
                     "cannot be checked", m->name, c->dir->path, m->name);
        else if (c->state[i] == STATE_CHANGED && c->cfg->migrations_strict)
            log_error("migration %s was applied from another file (recorded checksum %.12s…, "
                      "%s/%s/migration.sql has %.12s…): with --migrations-strict nothing is "
                      "applied; restore the file, or put the change in a new migration",
                      m->name, recorded, c->dir->path, m->name, m->checksum);
        else if (c->state[i] == STATE_CHANGED)
            log_warn("migration %s was applied from another file (recorded checksum %.12s…, "
                     "the file has %.12s…): edits to an applied migration never run; put the "
                     "change in a new migration", m->name, recorded, m->checksum);
    }
    for (int r = 0; r < row_count(c); r++) {
        const char *name = PQgetvalue(c->rows, r, COL_NAME);
        if (row_is_finished(c, r) && !row_is_rolled_back(c, r) && !find_migration(c, name))
            log_warn("migration %s is recorded in %s but is not in %s", name, c->table,
                     c->dir->path);
    }
    if (c->n_changed && c->cfg->migrations_strict)
        return refuse(c, EXIT_SCHEMA, "checksum", "%d applied migration(s) changed "
                      "(--migrations-strict)", c->n_changed);
    return 0;
}

/* ---- preparing the pending migrations (before anything runs) ---------------- */

static void describe_statement(const char *text, size_t len, char *out, size_t outlen)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < outlen; i++) {
        char ch = text[i] == '\n' || text[i] == '\r' || text[i] == '\t' ? ' ' : text[i];
        if (!(ch == ' ' && n > 0 && out[n - 1] == ' '))
            out[n++] = ch;
    }
    out[n] = '\0';
}

/* Splits one pending migration; drops the BEGIN/COMMIT a file may hold when
 * it runs in bandage's transaction; finds what must run outside one. */
static int prepare_one(struct migrate_ctx *c, const struct migration *m, struct pending *p)
{
    char err[256];
    int version = PQserverVersion(c->conn);
    if (!m->sql) {
        log_error("--migrations: %s/%s has no migration.sql: add it, or remove the directory",
                  c->dir->path, m->name);
        report_add_error(c->report, "config", "migrations", "%s has no migration.sql", m->name);
        return EXIT_USAGE;
    }
    char bom[1024];
    if (migration_script_check(c->dir, m, bom, sizeof bom) != 0) {
        log_error("%s", bom);
        report_add_error(c->report, "config", "migrations", "%s", bom);
        return EXIT_USAGE;
    }
    if (sql_split(m->sql, m->sql_len, &p->stmts, &p->n_stmts, err, sizeof err) != 0) {
        log_error("migration %s (%s/%s/migration.sql): %s; no migration was applied", m->name,
                  c->dir->path, m->name, err);
        report_add_error(c->report, "migration", "syntax", "%s: %s", m->name, err);
        return EXIT_SCHEMA;
    }
    for (size_t i = 0; i < p->n_stmts && !p->autocommit_line; i++)
        if (sql_needs_autocommit(m->sql + p->stmts[i].offset, p->stmts[i].length, version)) {
            p->autocommit_line = p->stmts[i].line;
            describe_statement(m->sql + p->stmts[i].offset, p->stmts[i].length,
                               p->autocommit_what, sizeof p->autocommit_what);
        }
    size_t kept = 0;
    for (size_t i = 0; i < p->n_stmts; i++) {
        char word[16];
        enum sql_tx_control tx = sql_tx_control(m->sql + p->stmts[i].offset, p->stmts[i].length,
                                                word, sizeof word);
        if (tx == SQL_TX_REFUSED) {
            log_error("migration %s, line %d: %s is not allowed: bandage runs each migration "
                      "all-or-nothing; no migration was applied", m->name, p->stmts[i].line, word);
            report_add_error(c->report, "migration", "transaction", "%s line %d: %s is not "
                             "allowed", m->name, p->stmts[i].line, word);
            return EXIT_SCHEMA;
        }
        /* Outside a transaction the file's own BEGIN/COMMIT keep their meaning. */
        if (tx == SQL_TX_DROPPABLE && !p->autocommit_line)
            log_info("migration %s, line %d: %s left out: the migration runs in bandage's own "
                      "transaction", m->name, p->stmts[i].line, word);
        else
            p->stmts[kept++] = p->stmts[i];
    }
    p->n_stmts = kept;
    return 0;
}

static int prepare_pending(struct migrate_ctx *c)
{
    for (size_t i = 0; i < c->dir->count; i++) {
        int rc = c->state[i] == STATE_PENDING
                     ? prepare_one(c, &c->dir->items[i], &c->pending[i]) : 0;
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The statement checks (--migration-checks), after the pending migrations
 * are prepared and before anything runs: logged and reported; `refuse`
 * stops the start here (65), naming migration, line and rule. */
static int check_statements(struct migrate_ctx *c)
{
    if (c->cfg->migration_checks == CHECKS_OFF || c->n_pending == 0)
        return 0;
    struct checks_source *src = calloc(c->n_pending, sizeof *src);
    struct db_error err;
    size_t n = 0;
    if (!src)
        return EXIT_INTERNAL;
    for (size_t i = 0; i < c->dir->count; i++)
        if (c->state[i] == STATE_PENDING)
            src[n++] = (struct checks_source){c->dir->items[i].name, c->dir->items[i].sql,
                                              c->pending[i].stmts, c->pending[i].n_stmts};
    int rc = checks_run(c->conn, c->sfd, c->cfg->url_schema, src, n, &c->checks, &err);
    free(src);
    if (rc != 0)
        return session_failed(&c->s, "checking the pending statements", &err, EXIT_INTERNAL);
    checks_tell(&c->checks, c->report);
    const struct check_finding *x =
        c->cfg->migration_checks == CHECKS_REFUSE ? checks_refusal(&c->checks) : NULL;
    if (!x)
        return 0;
    char what[320];
    checks_describe(x, what, sizeof what);
    log_error("migration %s, line %d: %s %s: with --migration-checks refuse no migration was "
              "applied; make the change in steps the running deployment survives "
              "(expand/contract), or acknowledge it: -- bandage:allow %s on the line before the "
              "statement", x->migration, x->line, lint_class_name(x->f.cls), what, x->f.rule);
    return refuse(c, EXIT_SCHEMA, "check", "migration %s line %d: %s %s (--migration-checks "
                  "refuse)", x->migration, x->line, lint_class_name(x->f.cls), what);
}

/* Prisma's P3005: a database with tables and no _prisma_migrations was not
 * built by migrations; applying the first one over it would fail or worse. */
static int check_empty_schema(struct migrate_ctx *c)
{
    struct db_error err;
    const char *params[] = {c->schema};
    PGresult *res = db_exec(c->conn, c->sfd,
                            "SELECT count(*) FROM pg_catalog.pg_class k JOIN pg_catalog.pg_namespace"
                            " n ON n.oid = k.relnamespace WHERE n.nspname = $1 AND"
                            " k.relkind IN ('r', 'p') AND k.relname <> 'spatial_ref_sys'",
                            1, params, &err);
    if (!res)
        return session_failed(&c->s, "looking for tables in the schema", &err, EXIT_INTERNAL);
    long tables = atol(PQgetvalue(res, 0, 0));
    PQclear(res);
    if (tables == 0)
        return 0;
    log_error("schema \"%s\" has %ld table(s) but no _prisma_migrations (Prisma's P3005): it was "
              "not built by these migrations; rebuild it with --reset once --migrations %s, or "
              "baseline it (npx prisma migrate resolve --applied NAME for each migration already "
              "in it); nothing was applied", c->schema, tables, c->dir->path);
    return refuse(c, EXIT_SCHEMA, "P3005", "schema %s is not empty and has no "
                  "_prisma_migrations", c->schema);
}

/* ---- applying ------------------------------------------------------------- */

static const char *statement_text(struct migrate_ctx *c, const struct migration *m,
                                  const struct sql_statement *s)
{
    if (s->length + 1 > c->scratch_cap) {
        char *grown = realloc(c->scratch, s->length + 1);
        if (!grown)
            return NULL;
        c->scratch = grown;
        c->scratch_cap = s->length + 1;
    }
    memcpy(c->scratch, m->sql + s->offset, s->length);
    c->scratch[s->length] = '\0';
    return c->scratch;
}

/* "migration 2 of 5, 20240102_add_index[, line 12 running for 4.1 s]": a
 * statement is named once it has run for an interval. */
static void describe_run(const struct progress *p, long now, char *out, size_t len)
{
    const struct migrate_ctx *c = p->ctx;
    long ran = progress_long_step_ms(p, now);
    int n = snprintf(out, len, "migration %ld of %ld, %s", p->done + 1, p->total,
                     c->running ? c->running->name : "");
    if (ran >= 0 && n > 0 && (size_t)n < len)
        snprintf(out + n, len - (size_t)n, ", line %d running for %ld.%ld s", c->running_line,
                 ran / 1000, ran % 1000 / 100);
}

static int run_statement(struct migrate_ctx *c, const struct migration *m,
                         const struct sql_statement *s, struct db_error *err)
{
    c->running = m;
    c->running_line = s->line;
    progress_step(&c->progress, c->progress.done);
    const char *text = statement_text(c, m, s);
    if (!text) {
        memset(err, 0, sizeof *err);
        snprintf(err->message, sizeof err->message, "out of memory");
        return -1;
    }
    return db_run(c->conn, c->sfd, text, err);
}

/* A lock the statement needed was not free in time (55P03): the migration
 * is fine and a later start may succeed, so 69, as for every lock wait that
 * runs out, not 65 ("fix the migration"). Called once no transaction is
 * open: the holders are read after the ROLLBACK. */
static int lock_not_free(struct migrate_ctx *c, const struct migration *m, int line,
                         const struct db_error *err, const char *undo, int in_transaction,
                         int attempts)
{
    /* Outside a transaction the wait was allowed --wait-timeout when longer
     * (apply_outside_transaction). */
    int patient = !in_transaction && c->cfg->wait_timeout_ms > c->cfg->lock_wait_ms;
    long waited = patient ? c->cfg->wait_timeout_ms : c->cfg->lock_wait_ms;
    const char *flag = patient ? "--wait-timeout" : "--lock-wait";
    int later = c->report->migrations_pending - 1;
    char lock[200], tries[48] = "";
    if (attempts > 1)
        snprintf(tries, sizeof tries, " in %d attempts of at most %d ms", attempts,
                 LOCK_ATTEMPT_CAP_MS);
    log_error("migration %s %s: a lock it needs at line %d of %s/%s/migration.sql was not free "
              "within %ld ms%s (%s, %s; %s: %s)%s%s; %d later migration%s not tried; the sessions "
              "holding locks on tables of schema \"%s\" follow: let them finish or end them, "
              "then start again (or raise %s)", m->name,
              in_transaction ? "was not applied (rolled back)" : "stopped part-way", line,
              c->dir->path, m->name, waited, tries, flag,
              patient ? "BANDAGE_WAIT_TIMEOUT" : "BANDAGE_LOCK_WAIT", err->sqlstate, err->message,
              in_transaction ? "" : "; ", in_transaction ? "" : undo, later,
              later == 1 ? "" : "s", c->schema, flag);
    report_add_error(c->report, "migration", err->sqlstate, "%s line %d: a lock was not free "
                     "within %ld ms (%s)", m->name, line, waited, flag);
    const char *params[] = {c->schema};
    snprintf(lock, sizeof lock, "a lock on a table of schema \"%.100s\"", c->schema);
    if (PQstatus(c->conn) == CONNECTION_OK)
        session_log_holders(&c->s, lock, SCHEMA_LOCK_HOLDERS_SQL, 1, params);
    return EXIT_UNAVAILABLE;
}

/* Called once no transaction is open (after the ROLLBACK). */
static int statement_failed(struct migrate_ctx *c, const struct migration *m,
                            const struct sql_statement *s, const struct db_error *err,
                            const char *undo, int in_transaction)
{
    int line = line_of_position(m->sql + s->offset, s->length, s->line, err->position);
    if (strcmp(err->sqlstate, SQLSTATE_LOCK_NOT_AVAILABLE) == 0 && !err->stop_signal)
        return lock_not_free(c, m, line, err, undo, in_transaction, 1);
    if (err->stop_signal) {
        log_warn("migration %s stopped by signal %d at line %d; %s", m->name, err->stop_signal,
                 line, undo);
        report_add_error(c->report, "migration", "signal", "%s line %d: stopped by signal %d",
                         m->name, line, err->stop_signal);
        return 128 + err->stop_signal;
    }
    int later = c->report->migrations_pending - 1;
    log_error("migration %s failed at line %d of %s/%s/migration.sql: %s%s%s; %s; %d later "
              "migration%s not tried", m->name, line, c->dir->path, m->name, err->sqlstate,
              err->sqlstate[0] ? ": " : "", err->message,
              in_transaction ? "rolled back: the database is as it was before this migration"
                             : undo, later, later == 1 ? "" : "s");
    report_add_error(c->report, "migration", err->sqlstate[0] ? err->sqlstate : "connection",
                     "%s line %d: %s", m->name, line, err->message);
    return err->connection_lost ? EXIT_UNAVAILABLE : EXIT_SCHEMA;
}

/* What the last missed attempt saw, for the error once --lock-wait is spent. */
struct lock_miss {
    struct db_error err;
    const struct sql_statement *stmt;
};

/* The migration and its row in one transaction. A lock not free in time
 * (55P03) is LOCK_MISSED, with *miss filled, for the caller to retry. */
static int apply_in_transaction(struct migrate_ctx *c, const struct migration *m,
                                const struct pending *p, struct lock_miss *miss)
{
    struct db_error err, ignored;
    size_t i = 0;
    int rc = session_begin(&c->s); /* in the server process holding the lock, or 64 */
    if (rc != 0)
        return rc;
    while (i < p->n_stmts && run_statement(c, m, &p->stmts[i], &err) == 0)
        i++;
    /* After a cancel or a lost connection ROLLBACK may fail: the session's
     * end rolls back. It comes first: a failure's report may query. */
    if (i < p->n_stmts) {
        db_run(c->conn, c->sfd, "ROLLBACK", &ignored);
        if (strcmp(err.sqlstate, SQLSTATE_LOCK_NOT_AVAILABLE) == 0 && !err.stop_signal) {
            miss->err = err;
            miss->stmt = &p->stmts[i];
            return LOCK_MISSED;
        }
        return statement_failed(c, m, &p->stmts[i], &err, "rolled back", 1);
    }
    if (prisma_record(c->conn, c->sfd, c->table, m->name, m->checksum, 1, NULL, &err) != 0) {
        int rc = session_failed(&c->s, "recording the migration in _prisma_migrations", &err,
                                EXIT_SCHEMA);
        db_run(c->conn, c->sfd, "ROLLBACK", &ignored);
        return rc;
    }
    if (db_run(c->conn, c->sfd, "COMMIT", &err) != 0) {
        char what[REPORT_MIGRATION_NAME + 32];
        snprintf(what, sizeof what, "COMMIT of migration %.127s", m->name);
        return session_failed(&c->s, what, &err, EXIT_SCHEMA); /* a deferred constraint, say */
    }
    return 0;
}

/* One attempt of a migration in its transaction (lockretry.c). */
struct migration_attempt {
    struct migrate_ctx *c;
    const struct migration *m;
    const struct pending *p;
    struct lock_miss miss;
    int line;                /* of the last miss */
};

static int attempt_migration(void *ctx, char *where, size_t len)
{
    struct migration_attempt *a = ctx;
    int rc = apply_in_transaction(a->c, a->m, a->p, &a->miss);
    if (rc == LOCK_MISSED) {
        a->line = line_of_position(a->m->sql + a->miss.stmt->offset, a->miss.stmt->length,
                                   a->miss.stmt->line, a->miss.err.position);
        snprintf(where, len, "line %d", a->line);
    }
    return rc;
}

static int apply_with_lock_retries(struct migrate_ctx *c, const struct migration *m,
                                   const struct pending *p)
{
    char name[REPORT_MIGRATION_NAME + 16];
    struct migration_attempt a = {.c = c, .m = m, .p = p};
    struct lock_retry r = {.s = &c->s, .lock_wait_ms = c->cfg->lock_wait_ms, .name = name,
                           .attempt = attempt_migration, .ctx = &a};
    snprintf(name, sizeof name, "migration %s", m->name);
    int rc = lock_retry_run(&r);
    return rc == LOCK_MISSED ? lock_not_free(c, m, a.line, &a.miss.err, "rolled back", 1,
                                             r.attempts)
                             : rc;
}

/* Statement by statement, as Prisma's own deploy records it: a started row
 * first, so that a failure (or a crash) part-way leaves a row that blocks
 * the next deploy (P3009) until someone looks. Even a failure of the first
 * statement keeps it: an interrupted CREATE INDEX CONCURRENTLY leaves an
 * INVALID index behind. */
static int apply_outside_transaction(struct migrate_ctx *c, const struct migration *m,
                                     const struct pending *p)
{
    struct db_error err, ignored;
    char id[37], logs[600], undo[512];
    size_t i = 0;
    int rc = session_check_pinned(&c->s);
    if (rc != 0)
        return rc;
    log_info("migration %s runs statement by statement, outside a transaction (line %d: %s "
             "cannot run in a transaction block): a failure part-way leaves it half applied",
             m->name, p->autocommit_line, p->autocommit_what);
    if (prisma_record(c->conn, c->sfd, c->table, m->name, m->checksum, 0, id, &err) != 0)
        return session_failed(&c->s, "recording the migration in _prisma_migrations", &err,
                              EXIT_SCHEMA);
    /* CREATE INDEX CONCURRENTLY waits for every older transaction of the
     * app to end, blocking nobody meanwhile: allow it --wait-timeout rather
     * than --lock-wait (made for locks that queue the app behind them). */
    long patient = c->cfg->wait_timeout_ms > c->cfg->lock_wait_ms ? c->cfg->wait_timeout_ms
                                                                   : c->cfg->lock_wait_ms;
    rc = session_set_lock_timeout(&c->s, patient);
    if (rc != 0)
        return rc;
    for (; i < p->n_stmts; i++)
        if (run_statement(c, m, &p->stmts[i], &err) != 0)
            break;
    if (i == p->n_stmts && (rc = session_set_lock_timeout(&c->s, c->cfg->lock_wait_ms)) != 0)
        return rc;
    if (i == p->n_stmts) {
        if (prisma_record_finished(c->conn, c->sfd, c->table, id, &err) != 0)
            return session_failed(&c->s, "recording the migration as finished", &err, EXIT_SCHEMA);
        return 0;
    }
    db_run(c->conn, c->sfd, "ROLLBACK", &ignored); /* inside the file's own BEGIN, if any */
    snprintf(logs, sizeof logs, "bandage: line %d: %s%s%s", p->stmts[i].line, err.sqlstate,
             err.sqlstate[0] ? ": " : "", err.message);
    prisma_record_logs(c->conn, c->sfd, c->table, id, logs, &ignored);
    snprintf(undo, sizeof undo, "%zu statement(s) before it stay applied (a failed CREATE "
             "INDEX CONCURRENTLY leaves an INVALID index) and its row blocks later deploys: "
             "undo or finish it by hand, then npx prisma migrate resolve --rolled-back %s (or "
             "--applied %s)", i, m->name, m->name);
    return statement_failed(c, m, &p->stmts[i], &err, undo, 0);
}

static int apply_pending(struct migrate_ctx *c)
{
    struct db_error err;
    int rc = 0;
    if (!c->rows) { /* the first migrations of this database */
        if ((rc = session_check_pinned(&c->s)) != 0 || (rc = check_empty_schema(c)) != 0)
            return rc;
        if (prisma_table_create(c->conn, c->sfd, c->schema, c->table, &err) != 0)
            return session_failed(&c->s, "creating _prisma_migrations", &err, EXIT_SCHEMA);
    }
    long total = 0;
    for (size_t i = 0; i < c->dir->count; i++)
        total += c->state[i] == STATE_PENDING;
    progress_begin(&c->progress, "migrations", total, 0, describe_run, c);
    for (size_t i = 0; i < c->dir->count && rc == 0; i++) {
        if (c->state[i] != STATE_PENDING)
            continue;
        const struct migration *m = &c->dir->items[i];
        const struct pending *p = &c->pending[i];
        long started = monotonic_ms();
        rc = p->autocommit_line ? apply_outside_transaction(c, m, p)
                                : apply_with_lock_retries(c, m, p);
        long ms = monotonic_ms() - started;
        report_add_migration(c->report, m->name, rc != 0, ms);
        c->report->migrations_pending--;
        if (rc != 0)
            break;
        c->state[i] = STATE_APPLIED;
        c->progress.done++;
        log_info("applied migration %s in %ld ms (%zu statement%s)", m->name, ms, p->n_stmts,
                 p->n_stmts == 1 ? "" : "s");
    }
    progress_end(&c->progress);
    return rc;
}

/* ---- --plan ----------------------------------------------------------------- */

static void print_pending(const struct migrate_ctx *c, const struct migration *m,
                          const struct pending *p)
{
    if (c->refused[0]) /* the start stops before it */
        printf("  pending  %s (not applied: the start is refused, see the last line)\n",
               m->name);
    else if (p->autocommit_line)
        printf("  pending  %s (%zu statement%s, outside a transaction: line %d: %s)\n",
               m->name, p->n_stmts, p->n_stmts == 1 ? "" : "s", p->autocommit_line,
               p->autocommit_what);
    else
        printf("  pending  %s (%zu statement%s)\n", m->name, p->n_stmts,
               p->n_stmts == 1 ? "" : "s");
    checks_print(&c->checks, m->name, stdout);
}

/* rc: what the start would exit with (0, or a refusal's code). */
static void print_plan(struct migrate_ctx *c, int rc)
{
    struct db_identity id = {.system_id = ""};
    identity_read(&c->s, &id); /* best effort: the identifier only shows which database */
    printf("bandage --plan: %zu migration(s) in %s, database \"%s\", system identifier %s, "
           "table %s%s\n", c->dir->count, c->dir->path, c->report->database,
           id.system_id[0] ? id.system_id : "(not readable by this role)", c->table,
           c->rows ? "" : " (does not exist yet)");
    for (size_t i = 0; i < c->dir->count; i++) {
        const struct migration *m = &c->dir->items[i];
        if (c->state[i] == STATE_CHANGED)
            printf("  changed  %s (applied; its file's checksum differs%s)\n", m->name,
                   c->cfg->migrations_strict ? ": --migrations-strict stops here" : "");
        else if (c->state[i] == STATE_PENDING)
            print_pending(c, m, &c->pending[i]);
        else
            printf("  applied  %s\n", m->name);
    }
    for (int r = 0; r < row_count(c); r++) {
        const char *name = PQgetvalue(c->rows, r, COL_NAME);
        if (row_is_failed(c, r))
            printf("  failed   %s (started %s, never finished: a real start stops here until "
                   "npx prisma migrate resolve --rolled-back %s)\n", name,
                   PQgetvalue(c->rows, r, COL_STARTED), name);
        else if (row_is_finished(c, r) && !row_is_rolled_back(c, r) && !find_migration(c, name))
            printf("  missing  %s (recorded in the database, not in the directory)\n", name);
    }
    if (rc)
        printf("refused (exit %d): %s; a real start applies no migration; nothing was changed "
               "(--plan)\n", rc, c->refused);
    else
        printf("%zu pending, %d changed: nothing was changed (--plan)\n", c->n_pending,
               c->n_changed);
    fflush(stdout);
}

/* The plan of a reset that would run came first (a skipped one marks the
 * report): the reset rebuilds the schemas from these migrations and records
 * every one as applied, so the start finds nothing pending, whatever the
 * table holds now (a failed row, or no table over a schema of tables). */
static int reset_planned(const struct migrate_ctx *c)
{
    return c->cfg->plan && c->cfg->reset != RESET_NEVER &&
           c->report->outcome != OUTCOME_SKIPPED;
}

static void plan_after_reset(struct migrate_ctx *c)
{
    printf("bandage --plan: then migrations: the reset records the %zu migration(s) in %s as "
           "applied; none pending\n", c->dir->count, c->dir->path);
    fflush(stdout);
    for (size_t i = 0; i < c->dir->count; i++)
        c->state[i] = STATE_APPLIED;
    c->report->migrations_ran = 1;
    c->report->migrations_skipped = (int)c->dir->count;
}

/* ---- the phase --------------------------------------------------------------- */

/* A Prisma 8 directory (DIR/app/<dir>/migration.json): read and verified
 * whole before connecting. 0, 64 or 65, err set. */
static int load_prisma8(const char *path, struct migration_dir *dir, char *err, size_t len)
{
    char lock[4096];
    snprintf(lock, sizeof lock, "%s/migration_lock.toml", path);
    if (access(lock, F_OK) == 0) {
        snprintf(err, len, "--migrations: %s holds both Prisma 6/7's migration_lock.toml and "
                 "Prisma 8's packages (app/): point --migrations at one format's directory "
                 "(Prisma 8's is migrations/ at the project's root)", path);
        return EXIT_USAGE;
    }
    memset(dir, 0, sizeof *dir);
    dir->path = strdup(path);
    dir->prisma8 = calloc(1, sizeof *dir->prisma8);
    if (!dir->path || !dir->prisma8) {
        snprintf(err, len, "--migrations: out of memory");
        return EXIT_INTERNAL;
    }
    int rc = prisma8_dir_read(path, dir->prisma8, err, len);
    if (rc != 0) {
        free(dir->prisma8);
        dir->prisma8 = NULL;
    }
    return rc;
}

int migrate_load(const struct config *cfg, struct migration_dir *dir,
                 struct deploy_report *report)
{
    char err[1400];
    int rc = EXIT_USAGE;
    if (prisma8_dir_detect(cfg->migrations))
        rc = load_prisma8(cfg->migrations, dir, err, sizeof err);
    else if (migration_dir_read(cfg->migrations, dir, err, sizeof err) == 0)
        rc = 0;
    if (rc == 0)
        return 0;
    log_error("%s", err);
    report_add_error(report, "config", "migrations", "%s", err);
    migration_dir_free(dir);
    return rc;
}

static void note_newest(struct migrate_ctx *c)
{
    for (size_t i = c->dir->count; i-- > 0;)
        if (c->state[i] != STATE_PENDING) {
            snprintf(c->report->last_migration, sizeof c->report->last_migration, "%s",
                     c->dir->items[i].name);
            return;
        }
}

/* A --plan goes as far as the start would without changing anything, and
 * exits as it would: 0, or the refusal's code (after showing what it found). */
static int plan(struct migrate_ctx *c, int refused)
{
    int rc = refused ? 0 : prepare_pending(c);
    if (rc == 0 && !refused)
        refused = check_statements(c);
    if (rc == 0 && !refused && !c->rows && c->n_pending > 0) /* as apply_pending() first */
        refused = check_empty_schema(c);
    if (rc != 0 || (refused && !c->refused[0])) /* not a refusal: a failure, logged */
        return rc ? rc : refused;
    print_plan(c, refused);
    return refused;
}

static void count_for_report(struct migrate_ctx *c)
{
    c->report->migrations_ran = 1;
    c->report->migrations_skipped = (int)(c->dir->count - c->n_pending);
    c->report->migrations_pending = (int)c->n_pending;
}

static int run(struct migrate_ctx *c)
{
    int rc, refused;
    if (reset_planned(c)) {
        plan_after_reset(c);
        note_newest(c);
        return 0;
    }
    if ((rc = lock_and_read(c)) != 0 || (rc = classify(c)) != 0)
        return rc;
    /* In the start's order: the lock for the run, then the table's rows. */
    refused = c->cfg->plan && c->n_pending > 0 ? plan_same_server(c) : 0;
    if (refused == 0 && (refused = check_failed_rows(c)) == 0)
        refused = report_differences(c);
    if (c->cfg->plan) {
        count_for_report(c);
        rc = plan(c, refused);
        note_newest(c);
        return rc;
    }
    if (refused || (rc = prepare_pending(c)) != 0)
        return refused ? refused : rc;
    count_for_report(c); /* a refusal of the checks reports what was pending */
    if ((rc = check_statements(c)) != 0)
        return rc;
    if (c->n_pending == 0)
        log_info("migrations: all %zu applied, nothing pending", c->dir->count);
    else
        rc = apply_pending(c);
    note_newest(c);
    return rc;
}

int migrate_database(PGconn *conn, int sfd, const struct config *cfg,
                     const struct migration_dir *dir, struct deploy_report *report)
{
    if (dir->prisma8) /* the format of the directory decides */
        return prisma8_migrate(conn, sfd, cfg, dir->prisma8, report);
    /* backend_pid set: a lost connection is an error here, never the
     * quiet reconnect of a reset that has not taken its lock yet. */
    struct migrate_ctx c = {.s = {.conn = conn, .sfd = sfd, .report = report,
                                  .backend_pid = PQbackendPID(conn), .phase = "migrate"},
                            .conn = conn, .sfd = sfd, .cfg = cfg, .dir = dir, .report = report,
                            .schema = cfg->url_schema ? cfg->url_schema : "public"};
    long started = monotonic_ms();
    int rc = EXIT_INTERNAL;
    c.table = prisma_table_name(conn, c.schema);
    c.state = calloc(dir->count + 1, sizeof *c.state);
    c.pending = calloc(dir->count + 1, sizeof *c.pending);
    if (c.table && c.state && c.pending && make_settings(&c) == 0)
        rc = run(&c);
    release_lock(&c);
    report->migrate_ms = monotonic_ms() - started;
    for (size_t i = 0; c.pending && i < dir->count; i++)
        free(c.pending[i].stmts);
    free(c.pending);
    checks_free(&c.checks);
    free(c.state);
    free(c.table);
    free(c.scratch);
    PQclear(c.rows);
    return rc;
}

/* ---- for the reset ------------------------------------------------------------- */

/* Appends statement s of m to the list, without CONCURRENTLY where that
 * keyword is what keeps it out of a transaction. */
static void append_statement(struct migration_statements *out, size_t *used,
                             const struct migration *m, const struct sql_statement *s,
                             int server_version)
{
    const char *text = m->sql + s->offset;
    char *dst = out->arena + *used;
    size_t at, kw;
    if (sql_concurrently_keyword(text, s->length, &at, &kw)) {
        memcpy(dst, text, at);
        memcpy(dst + at, text + at + kw, s->length - at - kw);
        dst[s->length - kw] = '\0';
        *used += s->length - kw + 1;
    } else {
        memcpy(dst, text, s->length);
        dst[s->length] = '\0';
        *used += s->length + 1;
    }
    struct migration_statement *item = &out->items[out->count++];
    item->migration = m;
    item->line = s->line;
    item->text = dst;
    item->outside_transaction = sql_needs_autocommit(dst, strlen(dst), server_version);
}

static int list_one(const struct migration *m, struct sql_statement **stmts, size_t *n,
                    char *err, size_t errlen)
{
    char why[256];
    if (!m->sql) {
        snprintf(err, errlen, "migration %s has no migration.sql", m->name);
        return -1;
    }
    if (sql_split(m->sql, m->sql_len, stmts, n, why, sizeof why) != 0) {
        snprintf(err, errlen, "migration %s: %s", m->name, why);
        return -1;
    }
    return 0;
}

int migration_statements_list(const struct migration_dir *dir, int server_version,
                              struct migration_statements *out, char *err, size_t errlen)
{
    size_t bytes = 1, cap = 0, used = 0;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < dir->count; i++)
        bytes += dir->items[i].sql_len + 1;
    if (!(out->arena = malloc(bytes))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < dir->count; i++) {
        const struct migration *m = &dir->items[i];
        struct sql_statement *stmts = NULL;
        size_t n = 0;
        if (list_one(m, &stmts, &n, err, errlen) != 0)
            goto failed;
        struct migration_statement *grown = realloc(out->items, (cap += n) * sizeof *grown + 1);
        if (!grown) {
            free(stmts);
            snprintf(err, errlen, "out of memory");
            goto failed;
        }
        out->items = grown;
        for (size_t k = 0; k < n; k++) {
            char word[16];
            enum sql_tx_control tx = sql_tx_control(m->sql + stmts[k].offset, stmts[k].length,
                                                    word, sizeof word);
            if (tx == SQL_TX_REFUSED) {
                snprintf(err, errlen, "migration %s, line %d: %s is not allowed", m->name,
                         stmts[k].line, word);
                free(stmts);
                goto failed;
            }
            if (tx == SQL_TX_NONE)
                append_statement(out, &used, m, &stmts[k], server_version);
        }
        free(stmts);
    }
    return 0;
failed:
    migration_statements_free(out);
    return -1;
}

void migration_statements_free(struct migration_statements *list)
{
    free(list->items);
    free(list->arena);
    memset(list, 0, sizeof *list);
}

/* "a/b/c" of one field of every migration (names never hold a '/'). */
static char *joined(const struct migration_dir *dir, int field, const char *ids)
{
    size_t cap = 1;
    for (size_t i = 0; i < dir->count; i++)
        cap += strlen(dir->items[i].name) + MIGRATION_CHECKSUM_LEN + 40;
    char *out = malloc(cap), *p = out;
    for (size_t i = 0; out && i < dir->count; i++) {
        const char *v = field == 0 ? ids + i * 37
                        : field == 1 ? dir->items[i].checksum : dir->items[i].name;
        p += sprintf(p, "%s%s", i ? "/" : "", v);
    }
    if (out)
        *p = '\0';
    return out;
}

int migrations_record_all_applied(PGconn *conn, int sfd, const char *schema,
                                  const struct migration_dir *dir, struct db_error *err)
{
    static const char insert[] =
        "INSERT INTO %s (id, checksum, migration_name, started_at, finished_at,"
        " applied_steps_count)"
        " SELECT u.id, u.checksum, u.name, now() + u.n * interval '1 microsecond',"
        " now() + u.n * interval '1 microsecond', 1"
        " FROM unnest(string_to_array($1, '/'), string_to_array($2, '/'),"
        " string_to_array($3, '/')) WITH ORDINALITY AS u(id, checksum, name, n)";
    char *table = prisma_table_name(conn, schema);
    char *ids = calloc(dir->count + 1, 37);
    char *fields[3] = {NULL, NULL, NULL};
    char *sql = table ? malloc(sizeof insert + strlen(table)) : NULL;
    int rc = -1;
    memset(err, 0, sizeof *err);
    for (size_t i = 0; ids && i < dir->count; i++)
        if (prisma_uuid_v4(ids + i * 37) != 0)
            goto out;
    for (int f = 0; ids && f < 3; f++)
        fields[f] = joined(dir, f, ids);
    if (!sql || !fields[0] || !fields[1] || !fields[2])
        goto out;
    if (prisma_table_create(conn, sfd, schema, table, err) != 0)
        goto done;
    if (dir->count == 0) {
        rc = 0;
        goto done;
    }
    sprintf(sql, insert, table);
    const char *params[] = {fields[0], fields[1], fields[2]};
    PGresult *res = db_exec(conn, sfd, sql, 3, params, err);
    rc = res ? 0 : -1;
    PQclear(res);
    goto done;
out:
    snprintf(err->message, sizeof err->message, "out of memory, or RAND_bytes failed");
done:
    for (int f = 0; f < 3; f++)
        free(fields[f]);
    free(sql);
    free(ids);
    free(table);
    return rc;
}
