#include "prisma8_apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "canonjson.h"
#include "checks.h"
#include "clock.h"
#include "exitcodes.h"
#include "identity.h"
#include "lockretry.h"
#include "log.h"
#include "pooler.h"
#include "prisma8_table.h"
#include "progress.h"
#include "session.h"
#include "sqlsplit.h"

/* What stopped the run's transaction, reported once it is rolled back. */
enum p8_failure { FAIL_NONE, FAIL_PRECHECK, FAIL_POSTCHECK, FAIL_STATEMENT, FAIL_RECORD };

struct p8_ctx {
    struct session s;
    PGconn *conn;
    int sfd;
    const struct config *cfg;
    struct prisma8_dir *dir;
    struct deploy_report *report;
    const char *schema;          /* the newest contract's first namespace */
    char key[300];               /* Prisma's lock key */
    int server_pid;
    int has_marker_table, has_ledger_table;
    PGresult *rows;              /* prisma8_read's; NULL when the tables do not exist */
    const char *marker;          /* its core_hash (in rows), NULL when none */
    size_t *path;                /* pending: packages, in order */
    size_t n_path;
    char *applied;               /* per package: in the ledger, or behind the marker */
    size_t n_applied;
    char *current;               /* the migration that brought the database to the marker
                                    (a copy: rows are read again under the lock) */
    char refused[300];           /* why the start stops before applying anything */
    struct checks checks;
    char **check_names;          /* "<migration>, operation <id>", per checked operation */
    size_t n_check_names;
    struct progress progress;    /* of the run: done and total count migrations */
    struct progress lock_wait;   /* waiting for Prisma's lock (begun when it is taken) */
    const struct p8_package *running;
    const struct p8_operation *running_op;
    long lock_deadline;
    long *ms;                    /* per path entry, in the last attempt */
    int *skipped;                /* per path entry: operations whose postchecks held */
    char **ledger_ops;           /* per path entry: what ran, for the ledger */
    enum p8_failure failed;      /* the last attempt's failure... */
    const struct p8_package *failed_pkg;
    const struct p8_operation *failed_op;
    const struct p8_step *failed_step;
    int failed_index;            /* 1-based step of its list */
    struct db_error err;
};

#define ID_LEN 12 /* hashes are shown by their first 12 characters */

/* As migrate.c's: reported, and kept for --plan's last line. Returns rc. */
#define refuse(c, rc, code, ...) \
    report_refusal((c)->report, (c)->refused, sizeof (c)->refused, rc, "migrate", code, __VA_ARGS__)

static void set_current(struct p8_ctx *c, const char *name)
{
    char *copy = name ? strdup(name) : NULL;
    free(c->current);
    c->current = copy;
}

static const char *pkg_name(const struct p8_ctx *c, size_t path_index)
{
    return c->dir->items[c->path[path_index]].name;
}

/* ---- the database's state ------------------------------------------------------ */

static int read_marker(struct p8_ctx *c, const char *what)
{
    int rc;
    struct db_error err;
    PQclear(c->rows);
    c->marker = NULL;
    c->rows = prisma8_read(c->conn, c->sfd, c->has_ledger_table, &err);
    if (!c->rows && strcmp(err.sqlstate, "42703") == 0) {
        log_error("prisma_contract.marker has no column \"space\": an earlier Prisma 8 "
                  "pre-release made it (Prisma's MIGRATION.LEGACY_MARKER_SHAPE); drop it and "
                  "sign the database again (npx prisma db sign); nothing was applied");
        return refuse(c, EXIT_SCHEMA, "marker", "prisma_contract.marker has no space column");
    }
    if (!c->rows)
        return (rc = session_failed(&c->s, what, &err, EXIT_INTERNAL)) == EXIT_SCHEMA
                   ? EXIT_INTERNAL : rc;
    if (!PQgetisnull(c->rows, 0, P8_COL_MARKER))
        c->marker = PQgetvalue(c->rows, 0, P8_COL_MARKER);
    return 0;
}

/* Outside a transaction: which database and server process, whether
 * prisma_contract exists, then the marker and the ledger. */
static int read_state(struct p8_ctx *c)
{
    int rc;
    PGresult *res = session_query(
        &c->s, "SELECT pg_catalog.current_database(), pg_catalog.pg_backend_pid(),"
               " pg_catalog.to_regclass('prisma_contract.marker') IS NOT NULL,"
               " pg_catalog.to_regclass('prisma_contract.ledger') IS NOT NULL",
        0, NULL, "reading prisma_contract", &rc);
    if (!res)
        return rc == EXIT_SCHEMA ? EXIT_INTERNAL : rc;
    snprintf(c->report->database, sizeof c->report->database, "%s", PQgetvalue(res, 0, 0));
    c->server_pid = atoi(PQgetvalue(res, 0, 1));
    c->has_marker_table = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
    c->has_ledger_table = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
    PQclear(res);
    /* Each transaction that changes something checks it runs here. */
    c->s.backend_pid = c->server_pid;
    return c->has_marker_table ? read_marker(c, "reading prisma_contract.marker") : 0;
}

static int in_ledger(const struct p8_ctx *c, const char *hash)
{
    for (int r = 0; c->rows && r < PQntuples(c->rows); r++)
        if (!PQgetisnull(c->rows, r, P8_COL_HASH) &&
            strcmp(PQgetvalue(c->rows, r, P8_COL_HASH), hash) == 0)
            return 1;
    return 0;
}

/* What the database went through: the ledger's migrations, and the path
 * from no contract to the marker (a signed database has no ledger rows). */
static int mark_applied(struct p8_ctx *c)
{
    const struct prisma8_dir *d = c->dir;
    size_t *behind = calloc(d->count + 1, sizeof *behind), n = 0;
    if (!behind)
        return EXIT_INTERNAL;
    if (c->marker && prisma8_path(d, P8_EMPTY, c->marker, behind, &n) < 0)
        n = 0;
    memset(c->applied, 0, d->count);
    set_current(c, n ? d->items[behind[n - 1]].name : NULL);
    for (size_t i = 0; i < n; i++)
        c->applied[behind[i]] = 1;
    for (size_t i = 0; i < d->count; i++)
        c->applied[i] |= in_ledger(c, d->items[i].hash);
    /* the ledger's newest row, when it is where the marker is */
    for (int r = c->rows ? PQntuples(c->rows) - 1 : -1; c->marker && r >= 0; r--)
        if (!PQgetisnull(c->rows, r, P8_COL_TO)) {
            if (strcmp(PQgetvalue(c->rows, r, P8_COL_TO), c->marker) == 0)
                set_current(c, PQgetvalue(c->rows, r, P8_COL_NAME));
            break;
        }
    c->n_applied = 0;
    for (size_t i = 0; i < d->count; i++)
        c->n_applied += c->applied[i];
    free(behind);
    return 0;
}

/* The pending path, from the marker to the newest contract; refused (65)
 * when the marker is on none. */
static int find_path(struct p8_ctx *c)
{
    const struct prisma8_dir *d = c->dir;
    const char *from = c->marker ? c->marker : P8_EMPTY;
    int found;
    c->n_path = 0;
    if (mark_applied(c) != 0)
        return EXIT_INTERNAL;
    if (!d->head || strcmp(from, d->head) == 0)
        return 0;
    if (!c->marker && !prisma8_is_node(d, P8_EMPTY)) {
        log_error("the database has no Prisma 8 marker (prisma_contract.marker) and no migration "
                  "in %s/app starts from an empty database: sign it first (npx prisma db sign), "
                  "then deploy again; nothing was applied", d->path);
        return refuse(c, EXIT_SCHEMA, "marker", "no marker, and no baseline migration in %s",
                      d->path);
    }
    if (!prisma8_is_node(d, from)) {
        log_error("prisma_contract.marker is at contract %.*s…, which no migration in %s/app "
                  "reaches or leaves: the database was migrated from another history (another "
                  "branch, or migrations deleted since); nothing was applied; deploy the "
                  "migrations that match it, or baseline again (npx prisma db sign, then plan a "
                  "baseline)", ID_LEN, from, d->path);
        return refuse(c, EXIT_SCHEMA, "marker", "marker %.*s… is on no path of %s", ID_LEN, from,
                      d->path);
    }
    if ((found = prisma8_path(d, from, d->head, c->path, &c->n_path)) < 0)
        return EXIT_INTERNAL;
    if (found)
        return 0;
    log_error("no migration in %s/app leads from contract %.*s… (prisma_contract.marker) to "
              "the newest contract %.*s…: plan one (npx prisma migration plan --from %.*s); "
              "nothing was applied", d->path, ID_LEN, from, ID_LEN, d->head, ID_LEN, from);
    return refuse(c, EXIT_SCHEMA, "path", "no path from marker %.*s… to %.*s…", ID_LEN, from,
                  ID_LEN, d->head);
}

static void count_for_report(struct p8_ctx *c)
{
    c->report->migrations_ran = 1;
    c->report->migrations_skipped = (int)c->n_applied;
    c->report->migrations_pending = (int)c->n_path;
}

static void note_newest(struct p8_ctx *c)
{
    const char *name = c->current;
    if (name)
        snprintf(c->report->last_migration, sizeof c->report->last_migration, "%s", name);
}

/* ---- the statement checks --------------------------------------------------------- */

/* An operation's statements as one text, for the checks (lint.c). */
static char *operation_text(const struct p8_operation *op)
{
    struct jbuf b;
    jbuf_init(&b);
    for (int k = 0; k < op->n_exec; k++) {
        jbuf_puts(&b, op->exec[k].sql);
        jbuf_puts(&b, ";\n");
    }
    return b.failed ? (jbuf_free(&b), NULL) : b.data;
}

static int add_source(struct p8_ctx *c, struct checks_source *src, size_t *n,
                      const struct p8_package *p, const struct p8_operation *op)
{
    char err[256], *text = op->n_exec ? operation_text(op) : NULL;
    struct sql_statement *stmts = NULL;
    size_t n_stmts = 0;
    size_t len = strlen(p->name) + strlen(op->id) + 16;
    char *name = text ? malloc(len) : NULL;
    if (!text || !name || sql_split(text, strlen(text), &stmts, &n_stmts, err, sizeof err) != 0) {
        free(text); /* none, or not split: not checked (as for a statement the parser cannot read) */
        free(name);
        return 0;
    }
    snprintf(name, len, "%s, operation %s", p->name, op->id);
    c->check_names[c->n_check_names++] = name;
    src[(*n)++] = (struct checks_source){name, text, stmts, n_stmts};
    return 0;
}

static size_t pending_operations(const struct p8_ctx *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_path; i++)
        n += c->dir->items[c->path[i]].n_ops;
    return n;
}

static void free_sources(struct checks_source *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)src[i].sql);
        free((struct sql_statement *)src[i].stmts);
    }
    free(src);
}

static int refuse_finding(struct p8_ctx *c, const struct check_finding *x)
{
    char what[320];
    checks_describe(x, what, sizeof what);
    log_error("migration %s, line %d: %s %s: with --migration-checks refuse no migration was "
              "applied; make the change in steps the running deployment survives "
              "(expand/contract), or acknowledge it: start the operation's SQL with "
              "-- bandage:allow %s (a raw SQL operation in its migration.ts)", x->migration,
              x->line, lint_class_name(x->f.cls), what, x->f.rule);
    return refuse(c, EXIT_SCHEMA, "check", "migration %s line %d: %s %s (--migration-checks "
                  "refuse)", x->migration, x->line, lint_class_name(x->f.cls), what);
}

/* The pending operations' statements, read with PostgreSQL's parser
 * before anything runs (--migration-checks): one source per operation. */
static int check_statements(struct p8_ctx *c)
{
    size_t total = pending_operations(c), n = 0;
    struct db_error err;
    if (c->cfg->migration_checks == CHECKS_OFF || c->n_path == 0)
        return 0;
    struct checks_source *src = calloc(total + 1, sizeof *src);
    c->check_names = calloc(total + 1, sizeof *c->check_names);
    if (!src || !c->check_names) {
        free(src);
        return EXIT_INTERNAL;
    }
    for (size_t i = 0; i < c->n_path; i++) {
        const struct p8_package *p = &c->dir->items[c->path[i]];
        for (size_t k = 0; k < p->n_ops; k++)
            add_source(c, src, &n, p, &p->ops[k]);
    }
    int rc = checks_run(c->conn, c->sfd, NULL, src, n, &c->checks, &err);
    free_sources(src, n);
    if (rc != 0)
        return session_failed(&c->s, "checking the pending statements", &err, EXIT_INTERNAL);
    checks_tell(&c->checks, c->report);
    const struct check_finding *x =
        c->cfg->migration_checks == CHECKS_REFUSE ? checks_refusal(&c->checks) : NULL;
    return x ? refuse_finding(c, x) : 0;
}

/* "5 operations: 4 additive, 1 destructive: dropColumn.User.name" */
static void describe_classes(const struct p8_package *p, char *out, size_t len)
{
    static const char *const classes[] = {"additive", "widening", "destructive", "data"};
    int n = snprintf(out, len, "%zu operation%s", p->n_ops, p->n_ops == 1 ? "" : "s");
    const char *sep = ": ";
    for (int k = 0; k < 4 && n > 0 && (size_t)n < len; k++) {
        size_t count = 0;
        for (size_t i = 0; i < p->n_ops; i++)
            count += strcmp(p->ops[i].cls, classes[k]) == 0;
        if (count)
            n += snprintf(out + n, len - (size_t)n, "%s%zu %s", sep, count, classes[k]);
        if (count)
            sep = ", ";
        for (size_t i = 0, named = 0; k == 2 && i < p->n_ops && n > 0 && (size_t)n < len; i++)
            if (strcmp(p->ops[i].cls, classes[k]) == 0)
                n += snprintf(out + n, len - (size_t)n, "%s%s", named++ ? ", " : ": ",
                              p->ops[i].id);
    }
}

/* Prisma's destructive operations, named in the log before anything runs. */
static void tell_destructive(const struct p8_ctx *c)
{
    for (size_t i = 0; i < c->n_path; i++) {
        const struct p8_package *p = &c->dir->items[c->path[i]];
        for (size_t k = 0; k < p->n_ops; k++)
            if (strcmp(p->ops[k].cls, "destructive") == 0)
                log_warn("migration %s, operation %s: destructive (Prisma's operation class): "
                         "%s", p->name, p->ops[k].id, p->ops[k].label);
    }
}

/* ---- --plan ----------------------------------------------------------------------- */

static int on_path(const struct p8_ctx *c, size_t index)
{
    for (size_t i = 0; i < c->n_path; i++)
        if (c->path[i] == index)
            return 1;
    return 0;
}

static void print_findings(const struct p8_ctx *c, const struct p8_package *p)
{
    for (size_t k = 0; k < p->n_ops; k++) {
        char name[600];
        int any = 0;
        snprintf(name, sizeof name, "%s, operation %s", p->name, p->ops[k].id);
        for (size_t i = 0; i < c->checks.count && !any; i++)
            any = strcmp(c->checks.items[i].migration, name) == 0;
        if (any)
            printf("           operation %s:\n", p->ops[k].id);
        checks_print(&c->checks, name, stdout);
    }
}

static void print_package(const struct p8_ctx *c, size_t i)
{
    const struct p8_package *p = &c->dir->items[i];
    char classes[400];
    if (c->applied[i]) {
        printf("  applied  %s\n", p->name);
    } else if (on_path(c, i) && c->refused[0]) {
        printf("  pending  %s (not applied: the start is refused, see the last line)\n", p->name);
    } else if (on_path(c, i)) {
        describe_classes(p, classes, sizeof classes);
        printf("  pending  %s (%s)\n", p->name, classes);
        print_findings(c, p);
    } else {
        printf("  other    %s (not on the path from the marker to the newest contract)\n",
               p->name);
    }
}

static void print_plan(struct p8_ctx *c, int rc)
{
    struct db_identity id = {.system_id = ""};
    char marker[120];
    identity_read(&c->s, &id); /* best effort: the identifier only shows which database */
    if (c->marker)
        snprintf(marker, sizeof marker, "marker at %.*s…", ID_LEN, c->marker);
    else
        snprintf(marker, sizeof marker, "%s", c->has_marker_table ? "no marker yet"
                                                               : "prisma_contract does not exist yet");
    printf("bandage --plan: %zu Prisma 8 migration(s) in %s, database \"%s\", system identifier "
           "%s, %s, the newest contract %.*s…\n", c->dir->count, c->dir->path,
           c->report->database, id.system_id[0] ? id.system_id : "(not readable by this role)",
           marker, ID_LEN, c->dir->head ? c->dir->head : "-");
    for (size_t i = 0; i < c->dir->count; i++)
        print_package(c, i);
    if (rc)
        printf("refused (exit %d): %s; a real start applies no migration; nothing was changed "
               "(--plan)\n", rc, c->refused);
    else
        printf("%zu pending: nothing was changed (--plan)\n", c->n_path);
    fflush(stdout);
}

/* A --plan goes as far as the start would without changing anything. */
static int plan(struct p8_ctx *c, int refused)
{
    if (!refused)
        refused = check_statements(c);
    if (refused && !c->refused[0]) /* not a refusal: a failure, logged */
        return refused;
    print_plan(c, refused);
    return refused;
}

/* The plan of a reset that would run came first: the reset records the
 * path to the newest contract as applied. */
static int plan_after_reset(struct p8_ctx *c)
{
    size_t n = 0;
    int found = c->dir->head ? prisma8_path(c->dir, P8_EMPTY, c->dir->head, c->path, &n) : 0;
    printf("bandage --plan: then migrations: the reset records the %zu Prisma 8 migration(s) on "
           "the path to the newest contract in prisma_contract as applied; none pending\n", n);
    fflush(stdout);
    c->report->migrations_ran = 1;
    c->report->migrations_skipped = (int)n;
    if (found > 0 && n > 0)
        set_current(c, c->dir->items[c->path[n - 1]].name);
    note_newest(c);
    return 0;
}

/* ---- running an operation ---------------------------------------------------------- */

/* Prisma's stepResultIsTrue over what node-postgres gives: the first column
 * of the first row; int2, int4, float4/8 and oid are numbers there. */
static int holds(const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) == 0 || PQnfields(res) == 0 ||
        PQgetisnull(res, 0, 0))
        return 0;
    const char *v = PQgetvalue(res, 0, 0);
    Oid type = PQftype(res, 0);
    if (type == 21 || type == 23 || type == 26 || type == 700 || type == 701)
        return strtod(v, NULL) != 0;
    if (strcasecmp(v, "t") == 0 || strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0)
        return 1;
    if (strcasecmp(v, "f") == 0 || strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0)
        return 0;
    return v[0] != '\0';
}

static int run_step(struct p8_ctx *c, const struct p8_step *s, int *truth)
{
    PGresult *res = db_exec(c->conn, c->sfd, s->sql, s->n_params, s->params, &c->err);
    if (!res)
        return -1;
    if (truth)
        *truth = holds(res);
    PQclear(res);
    return 0;
}

static int step_failed(struct p8_ctx *c, enum p8_failure kind, const struct p8_step *s, int i)
{
    c->failed = kind;
    c->failed_step = s;
    c->failed_index = i + 1;
    return -1;
}

/* Every postcheck true already: Prisma skips the operation (and records
 * it as skipped). None: never skipped. */
static int already_done(struct p8_ctx *c, const struct p8_operation *op, int *done)
{
    *done = op->n_post > 0;
    for (int i = 0; i < op->n_post && *done; i++)
        if (run_step(c, &op->post[i], done) != 0)
            return step_failed(c, FAIL_POSTCHECK, &op->post[i], i);
    return 0;
}

static int checks_true(struct p8_ctx *c, const struct p8_step *steps, int n,
                       enum p8_failure kind)
{
    for (int i = 0; i < n; i++) {
        int truth = 0;
        if (run_step(c, &steps[i], &truth) != 0 || !truth) /* failed, or said false */
            return step_failed(c, kind, &steps[i], i);
    }
    return 0;
}

/* One operation as Prisma's runner applies it; *skipped when its
 * postchecks held before it ran. 0, or -1 with the failure kept. */
static int run_operation(struct p8_ctx *c, const struct p8_package *p,
                         const struct p8_operation *op, int *skipped)
{
    c->running = p;
    c->running_op = op;
    c->failed_pkg = p;
    c->failed_op = op;
    memset(&c->err, 0, sizeof c->err);
    progress_step(&c->progress, c->progress.done);
    if (already_done(c, op, skipped) != 0 || *skipped)
        return *skipped ? 0 : -1;
    if (checks_true(c, op->pre, op->n_pre, FAIL_PRECHECK) != 0)
        return -1;
    for (int i = 0; i < op->n_exec; i++)
        if (run_step(c, &op->exec[i], NULL) != 0)
            return step_failed(c, FAIL_STATEMENT, &op->exec[i], i);
    return checks_true(c, op->post, op->n_post, FAIL_POSTCHECK);
}

/* Every operation of path entry i; its ledger record kept. */
static int run_package(struct p8_ctx *c, size_t i)
{
    const struct p8_package *p = &c->dir->items[c->path[i]];
    struct jbuf ops;
    long started = monotonic_ms();
    int rc = 0;
    jbuf_init(&ops);
    jbuf_puts(&ops, "[");
    c->skipped[i] = 0;
    c->progress.done = (long)i;
    for (size_t k = 0; k < p->n_ops && rc == 0; k++) {
        int skipped = 0;
        rc = run_operation(c, p, &p->ops[k], &skipped);
        c->skipped[i] += skipped;
        jbuf_puts(&ops, k ? "," : "");
        jbuf_puts(&ops, skipped ? p->ops[k].skip_json : p->ops[k].json);
    }
    jbuf_puts(&ops, "]");
    c->ms[i] = monotonic_ms() - started;
    free(c->ledger_ops[i]);
    c->ledger_ops[i] = NULL;
    if (ops.failed && rc == 0)
        rc = step_failed(c, FAIL_RECORD, NULL, -1);
    if (rc == 0)
        c->ledger_ops[i] = ops.data;
    else
        jbuf_free(&ops);
    return rc;
}

/* ---- the bookkeeping ---------------------------------------------------------------- */

static int by_utf16(const void *a, const void *b)
{
    return canon_utf16_compare(*(const char *const *)a, *(const char *const *)b);
}

/* The path's providedInvariants, sorted, each once, as a text[] literal
 * (Prisma's plan.providedInvariants). */
static char *invariants_literal(const struct prisma8_dir *d, const size_t *path, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += d->items[path[i]].n_invariants;
    const char **all = calloc(count + 1, sizeof *all);
    struct jbuf b;
    if (!all)
        return NULL;
    count = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < d->items[path[i]].n_invariants; k++)
            all[count++] = d->items[path[i]].invariants[k];
    qsort(all, count, sizeof *all, by_utf16);
    jbuf_init(&b);
    jbuf_puts(&b, "{");
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && strcmp(all[i - 1], all[i]) == 0)
            continue;
        jbuf_puts(&b, b.len > 1 ? ",\"" : "\"");
        for (const char *ch = all[i]; *ch; ch++) {
            if (*ch == '"' || *ch == '\\')
                jbuf_append(&b, "\\", 1);
            jbuf_append(&b, ch, 1);
        }
        jbuf_puts(&b, "\"");
    }
    jbuf_puts(&b, "}");
    free(all);
    return b.failed ? (jbuf_free(&b), NULL) : b.data;
}

static const char *profile_of_head(const struct prisma8_dir *d)
{
    return d->head_contract && d->head_contract->profile_hash ? d->head_contract->profile_hash
                                                                : d->head;
}

/* The marker, then the contract and ledger rows of each migration run. */
static int record(struct p8_ctx *c, const char *from)
{
    char *invariants = invariants_literal(c->dir, c->path, c->n_path);
    int moved = 0;
    if (!invariants)
        return step_failed(c, FAIL_RECORD, NULL, -1);
    int rc = prisma8_marker_write(c->conn, c->sfd, from, c->dir->head, profile_of_head(c->dir),
                                  invariants, &moved, &c->err);
    free(invariants);
    if (rc == 0 && !moved) {
        snprintf(c->err.message, sizeof c->err.message, "prisma_contract.marker was changed by "
                 "another process during the run (Prisma's MIGRATION.MARKER_CAS_FAILURE)");
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < c->n_path; i++) {
        const struct p8_package *p = &c->dir->items[c->path[i]];
        const struct p8_contract *to = prisma8_contract(c->dir, p->to);
        rc = prisma8_ledger_write(c->conn, c->sfd, p->name, p->hash, p->from, p->to,
                                  to ? to->json : NULL, c->ledger_ops[i], &c->err);
    }
    return rc == 0 ? 0 : step_failed(c, FAIL_RECORD, NULL, -1);
}

/* ---- Prisma's lock ------------------------------------------------------------------ */

static int lock_wait_ran_out(struct p8_ctx *c, long waited)
{
    const char *params[] = {c->key};
    char lock[400];
    const char *setting = c->cfg->wait_timeout_ms > 0
                              ? "--wait-timeout, BANDAGE_WAIT_TIMEOUT"
                              : "--connect-timeout, BANDAGE_CONNECT_TIMEOUT";
    snprintf(lock, sizeof lock, "Prisma 8's migrations lock (pg_advisory_xact_lock(hashtext('%s')))",
             c->key);
    log_error("%s was not free within %ld ms (%s); nothing was applied; its holder follows: let "
              "it finish, or end it, then start again", lock, waited, setting);
    report_add_error(c->report, "migrate", "lock", "the migrations lock was not free within %ld "
                     "ms", waited);
    session_log_holders(&c->s, lock, P8_LOCK_HOLDERS_SQL, 1, params);
    return EXIT_UNAVAILABLE;
}

/* "waiting for Prisma 8's migrations lock (...), attempt 40" */
static void describe_lock_wait(const struct progress *p, long now, char *out, size_t len)
{
    const struct p8_ctx *c = p->ctx;
    (void)now;
    snprintf(out, len, "waiting for Prisma 8's migrations lock (pg_advisory_xact_lock(hashtext("
             "'%s'))), attempt %ld: another bandage or prisma db migrate holds it", c->key,
             p->done);
}

/* BEGIN, and Prisma's transaction lock: tried, not waited for in a
 * statement (a waiting statement would hold the session in a transaction);
 * between tries no transaction is open. Bounded by --wait-timeout. 0 with
 * the transaction open, or the exit code with none. */
static int begin_locked(struct p8_ctx *c)
{
    long wait = c->cfg->wait_timeout_ms > 0 ? c->cfg->wait_timeout_ms : c->cfg->connect_timeout_ms;
    long pause = 10;
    struct db_error ignored;
    for (int tries = 0;; tries++) {
        int got = 0, rc = session_begin(&c->s);
        if (rc != 0)
            return rc;
        if (prisma8_try_lock(c->conn, c->sfd, c->key, &got, &c->err) != 0) {
            db_run(c->conn, c->sfd, "ROLLBACK", &ignored);
            return session_failed(&c->s, "taking Prisma 8's migrations lock", &c->err,
                                  EXIT_INTERNAL);
        }
        if (got)
            return 0;
        db_run(c->conn, c->sfd, "ROLLBACK", &ignored);
        if (!c->lock_deadline) {
            c->lock_deadline = monotonic_ms() + wait;
            log_info("waiting for Prisma 8's migrations lock (pg_advisory_xact_lock(hashtext("
                     "'%s'))): another bandage or prisma db migrate is migrating this database",
                     c->key);
            progress_begin(&c->lock_wait, "lock-wait", -1, 0, describe_lock_wait, c);
        }
        progress_step(&c->lock_wait, tries + 1);
        long left = c->lock_deadline - monotonic_ms();
        if (left <= 0)
            return lock_wait_ran_out(c, wait);
        if ((rc = session_pause(&c->s, pause < left ? pause : left,
                                "waiting for the migrations lock")) != 0)
            return rc;
        pause = pause * 2 > 250 ? 250 : pause * 2;
    }
}

/* ---- the run ------------------------------------------------------------------------- */

/* Under the lock: the marker again. Another migrator may have applied
 * some or all of the path meanwhile; the run goes on from where it is. */
static int reread(struct p8_ctx *c, const char **from)
{
    char before[128];
    int rc;
    snprintf(before, sizeof before, "%s", c->marker ? c->marker : "");
    c->has_ledger_table = 1; /* created above, if it was not */
    if ((rc = read_marker(c, "reading prisma_contract.marker under the lock")) != 0)
        return rc;
    *from = c->marker;
    if (strcmp(before, c->marker ? c->marker : "") == 0)
        return 0;
    log_info("prisma_contract.marker moved from %.*s… to %.*s… before bandage got the lock "
             "(another bandage or prisma db migrate applied migrations): going on from there",
             ID_LEN, before[0] ? before : P8_EMPTY, ID_LEN, c->marker ? c->marker : P8_EMPTY);
    return find_path(c);
}

/* The run's transaction, begun and locked. 0 when it may commit, -1 with
 * the failure kept (rolled back by the caller), or an exit code. */
static int run_locked(struct p8_ctx *c)
{
    const char *from = NULL;
    int rc;
    if (prisma8_tables_create(c->conn, c->sfd, &c->err) != 0)
        return step_failed(c, FAIL_RECORD, NULL, -1);
    if ((rc = reread(c, &from)) != 0)
        return rc;
    for (size_t i = 0; i < c->n_path; i++)
        if (run_package(c, i) != 0)
            return -1;
    return c->n_path ? record(c, from) : 0;
}

static int lock_missed(const struct p8_ctx *c)
{
    return c->failed != FAIL_NONE && strcmp(c->err.sqlstate, SQLSTATE_LOCK_NOT_AVAILABLE) == 0 &&
           !c->err.stop_signal;
}

/* One attempt at the whole run (lockretry.c). */
static int attempt_run(void *ctx, char *where, size_t len)
{
    struct p8_ctx *c = ctx;
    struct db_error ignored;
    c->failed = FAIL_NONE;
    c->failed_pkg = NULL;
    c->failed_op = NULL;
    int rc = begin_locked(c);
    progress_end(&c->lock_wait);
    if (rc != 0)
        return rc;
    rc = run_locked(c);
    if (rc == 0 && db_run(c->conn, c->sfd, "COMMIT", &c->err) == 0)
        return 0;
    if (rc == 0) /* COMMIT failed: a deferred constraint, say */
        return session_failed(&c->s, "COMMIT of the migrations", &c->err, EXIT_SCHEMA);
    /* After a cancel or a lost connection ROLLBACK may fail: the session's
     * end rolls back. It comes first: a failure's report may query. */
    db_run(c->conn, c->sfd, "ROLLBACK", &ignored);
    if (rc == -1 && lock_missed(c)) {
        if (!c->failed_op)
            snprintf(where, len, "prisma_contract");
        else if (c->n_path == 1) /* the migration is named already */
            snprintf(where, len, "operation %s", c->failed_op->id);
        else
            snprintf(where, len, "migration %s, operation %s", c->failed_pkg->name,
                     c->failed_op->id);
        return LOCK_MISSED;
    }
    return rc;
}

static const char *phase_name(enum p8_failure f)
{
    return f == FAIL_PRECHECK ? "precheck" : f == FAIL_POSTCHECK ? "postcheck" : "statement";
}

/* The run failed and was rolled back: say where, and what Prisma calls it. */
static int run_failed(struct p8_ctx *c)
{
    const struct p8_step *s = c->failed_step;
    const char *pkg = c->failed_pkg ? c->failed_pkg->name : "(none)";
    const char *op = c->failed_op ? c->failed_op->id : "";
    if (c->failed == FAIL_RECORD || c->err.stop_signal || c->err.connection_lost)
        return session_failed(&c->s, c->failed == FAIL_RECORD ? "recording the migrations in "
                                                                "prisma_contract"
                                                              : "applying the migrations",
                              &c->err, EXIT_SCHEMA);
    if (!c->err.sqlstate[0] && c->failed != FAIL_STATEMENT) {
        const char *code = c->failed == FAIL_PRECHECK ? "PRECHECK_FAILED" : "POSTCHECK_FAILED";
        log_error("migration %s, operation %s (%s): %s %d is false: %s (Prisma's MIGRATION.%s); "
                  "rolled back: no migration of this run was applied", pkg, op,
                  c->failed_op->label, phase_name(c->failed), c->failed_index, s->description,
                  code);
        report_add_error(c->report, "migration", phase_name(c->failed), "%s operation %s: %s",
                         pkg, op, s->description);
        return EXIT_SCHEMA;
    }
    log_error("migration %s, operation %s (%s) failed at its %s %d (%s): %s%s%s; rolled back: "
              "no migration of this run was applied", pkg, op, c->failed_op->label,
              phase_name(c->failed), c->failed_index, s->description, c->err.sqlstate,
              c->err.sqlstate[0] ? ": " : "", c->err.message);
    report_add_error(c->report, "migration", c->err.sqlstate[0] ? c->err.sqlstate : "connection",
                     "%s operation %s: %s", pkg, op, c->err.message);
    return EXIT_SCHEMA;
}

static int lock_not_free(struct p8_ctx *c, const struct lock_retry *r)
{
    const char *params[] = {c->schema};
    char lock[200];
    log_error("%s: a lock it needs at %s was not free within %ld ms in %d attempts of at most "
              "%d ms (--lock-wait, BANDAGE_LOCK_WAIT; %s: %s); rolled back: no migration was "
              "applied; the sessions holding locks on tables of schema \"%s\" follow: let them "
              "finish or end them, then start again (or raise --lock-wait)", r->name, r->where,
              c->cfg->lock_wait_ms, r->attempts, LOCK_ATTEMPT_CAP_MS, c->err.sqlstate,
              c->err.message, c->schema);
    report_add_error(c->report, "migration", c->err.sqlstate, "%s: a lock was not free within "
                     "%ld ms (--lock-wait)", r->where, c->cfg->lock_wait_ms);
    snprintf(lock, sizeof lock, "a lock on a table of schema \"%.100s\"", c->schema);
    if (PQstatus(c->conn) == CONNECTION_OK)
        session_log_holders(&c->s, lock, SCHEMA_LOCK_HOLDERS_SQL, 1, params);
    return EXIT_UNAVAILABLE;
}

/* "migration 2 of 5, 20261204T1821_v2, operation table.Post[, running for 4.1 s]" */
static void describe_run(const struct progress *p, long now, char *out, size_t len)
{
    const struct p8_ctx *c = p->ctx;
    long ran = progress_long_step_ms(p, now);
    int n = snprintf(out, len, "migration %ld of %ld, %s, operation %s", p->done + 1, p->total,
                     c->running ? c->running->name : "", c->running_op ? c->running_op->id : "");
    if (ran >= 0 && n > 0 && (size_t)n < len)
        snprintf(out + n, len - (size_t)n, ", running for %ld.%ld s", ran / 1000,
                 ran % 1000 / 100);
}

static void tell_applied(struct p8_ctx *c, long ms)
{
    for (size_t i = 0; i < c->n_path; i++) {
        const struct p8_package *p = &c->dir->items[c->path[i]];
        report_add_migration(c->report, p->name, 0, c->ms[i]);
        char skipped[80] = "";
        if (c->skipped[i])
            snprintf(skipped, sizeof skipped, "; %d skipped: its postchecks held already",
                     c->skipped[i]);
        log_info("applied migration %s in %ld ms (%zu operation%s%s)", p->name, c->ms[i],
                 p->n_ops, p->n_ops == 1 ? "" : "s", skipped);
    }
    if (c->n_path)
        log_info("applied %zu Prisma 8 migration(s) in one transaction in %ld ms; "
                 "prisma_contract.marker is at %.*s…, the newest contract", c->n_path, ms,
                 ID_LEN, c->dir->head);
    c->report->migrations_pending = 0;
    if (c->n_path)
        set_current(c, pkg_name(c, c->n_path - 1));
}

static int apply(struct p8_ctx *c)
{
    char name[600];
    struct lock_retry r = {.s = &c->s, .lock_wait_ms = c->cfg->lock_wait_ms, .name = name,
                           .attempt = attempt_run, .ctx = c};
    long started = monotonic_ms();
    if (c->n_path == 1)
        snprintf(name, sizeof name, "migration %s", pkg_name(c, 0));
    else
        snprintf(name, sizeof name, "migrations %s to %s (one transaction)", pkg_name(c, 0),
                 pkg_name(c, c->n_path - 1));
    progress_begin(&c->progress, "migrations", (long)c->n_path, 0, describe_run, c);
    int rc = lock_retry_run(&r);
    progress_end(&c->progress);
    if (rc == LOCK_MISSED)
        return lock_not_free(c, &r);
    if (rc == -1 && c->failed != FAIL_RECORD && c->failed_pkg)
        report_add_migration(c->report, c->failed_pkg->name, 1, 0);
    if (rc == -1)
        return run_failed(c);
    if (rc == 0)
        tell_applied(c, monotonic_ms() - started);
    return rc;
}

/* ---- the phase ------------------------------------------------------------------------- */

static int reset_planned(const struct p8_ctx *c)
{
    return c->cfg->plan && c->cfg->reset != RESET_NEVER &&
           c->report->outcome != OUTCOME_SKIPPED;
}

static int run(struct p8_ctx *c)
{
    int rc, refused;
    if (reset_planned(c))
        return plan_after_reset(c);
    if ((rc = read_state(c)) != 0)
        return rc;
    refused = find_path(c);
    if (refused && !c->refused[0])
        return refused; /* a failure, not a refusal */
    count_for_report(c);
    if (c->cfg->plan) {
        note_newest(c);
        return plan(c, refused);
    }
    if (refused)
        return refused;
    if (c->n_path == 0) {
        log_info("migrations: prisma_contract.marker is at %.*s…, the newest contract of the %zu "
                 "Prisma 8 migration(s) in %s: nothing pending", ID_LEN,
                 c->dir->head ? c->dir->head : "-", c->dir->count, c->dir->path);
        note_newest(c);
        return 0;
    }
    if ((rc = check_statements(c)) != 0)
        return rc;
    tell_destructive(c);
    /* Held for the run from here: not through a transaction pooler, however
     * quiet (pooler.c; a reset before has checked already). */
    if (c->cfg->reset == RESET_NEVER && (rc = pooler_check(&c->s, c->cfg)) != 0)
        return rc;
    rc = apply(c);
    note_newest(c);
    return rc;
}

int prisma8_migrate(PGconn *conn, int sfd, const struct config *cfg, struct prisma8_dir *dir,
                    struct deploy_report *report)
{
    struct p8_ctx c = {.s = {.conn = conn, .sfd = sfd, .report = report,
                             .backend_pid = PQbackendPID(conn), .phase = "migrate"},
                       .conn = conn, .sfd = sfd, .cfg = cfg, .dir = dir, .report = report,
                       .schema = dir->head_contract ? dir->head_contract->schema : "public"};
    long started = monotonic_ms();
    int rc = EXIT_INTERNAL;
    size_t n = dir->count + 1;
    prisma8_lock_key(c.schema, c.key, sizeof c.key);
    c.path = calloc(n, sizeof *c.path);
    c.applied = calloc(n, 1);
    c.ms = calloc(n, sizeof *c.ms);
    c.skipped = calloc(n, sizeof *c.skipped);
    c.ledger_ops = calloc(n, sizeof *c.ledger_ops);
    if (c.path && c.applied && c.ms && c.skipped && c.ledger_ops)
        rc = run(&c);
    report->migrate_ms = monotonic_ms() - started;
    for (size_t i = 0; c.ledger_ops && i < n; i++)
        free(c.ledger_ops[i]);
    for (size_t i = 0; i < c.n_check_names; i++)
        free(c.check_names[i]);
    free(c.check_names);
    checks_free(&c.checks);
    free(c.ledger_ops);
    free(c.skipped);
    free(c.ms);
    free(c.applied);
    free(c.path);
    free(c.current);
    PQclear(c.rows);
    return rc;
}

/* ---- for the reset ---------------------------------------------------------------------- */

static int whole_path(const struct prisma8_dir *dir, size_t *path, size_t *n, char *err,
                      size_t errlen)
{
    int found = dir->head ? prisma8_path(dir, P8_EMPTY, dir->head, path, n) : 0;
    if (found < 0)
        snprintf(err, errlen, "out of memory");
    else if (!found && dir->head)
        snprintf(err, errlen, "no migration path from an empty database to the newest contract "
                 "%.*s…: a reset builds from a baseline (a migration from null); plan one",
                 ID_LEN, dir->head);
    return found > 0 || !dir->head ? 0 : -1;
}

int prisma8_statements(const struct prisma8_dir *dir, struct p8_statement **out, size_t *n,
                       char *err, size_t errlen)
{
    size_t *path = calloc(dir->count + 1, sizeof *path), len = 0, total = 0;
    *out = NULL;
    *n = 0;
    if (!path || whole_path(dir, path, &len, err, errlen) != 0) {
        if (!path)
            snprintf(err, errlen, "out of memory");
        free(path);
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        for (size_t k = 0; k < dir->items[path[i]].n_ops; k++)
            total += (size_t)dir->items[path[i]].ops[k].n_exec;
    *out = calloc(total + 1, sizeof **out);
    for (size_t i = 0; *out && i < len; i++) {
        const struct p8_package *p = &dir->items[path[i]];
        for (size_t k = 0; k < p->n_ops; k++)
            for (int s = 0; s < p->ops[k].n_exec; s++)
                (*out)[(*n)++] = (struct p8_statement){p, &p->ops[k], &p->ops[k].exec[s]};
    }
    free(path);
    if (!*out)
        snprintf(err, errlen, "out of memory");
    return *out ? 0 : -1;
}

static char *all_operations(const struct p8_package *p)
{
    struct jbuf b;
    jbuf_init(&b);
    jbuf_puts(&b, "[");
    for (size_t k = 0; k < p->n_ops; k++) {
        jbuf_puts(&b, k ? "," : "");
        jbuf_puts(&b, p->ops[k].json);
    }
    jbuf_puts(&b, "]");
    return b.failed ? (jbuf_free(&b), NULL) : b.data;
}

int prisma8_record_all_applied(PGconn *conn, int sfd, struct prisma8_dir *dir,
                               struct db_error *err)
{
    char why[300];
    size_t *path = calloc(dir->count + 1, sizeof *path), n = 0;
    char *invariants = NULL;
    int rc = -1, moved = 0;
    memset(err, 0, sizeof *err);
    if (!path || whole_path(dir, path, &n, why, sizeof why) != 0) {
        snprintf(err->message, sizeof err->message, "%s", path ? why : "out of memory");
        free(path);
        return -1;
    }
    invariants = invariants_literal(dir, path, n);
    if (invariants && prisma8_tables_create(conn, sfd, err) == 0 &&
        (n == 0 || prisma8_marker_write(conn, sfd, NULL, dir->head, profile_of_head(dir),
                                        invariants, &moved, err) == 0))
        rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct p8_package *p = &dir->items[path[i]];
        const struct p8_contract *to = prisma8_contract(dir, p->to);
        char *ops = all_operations(p);
        rc = ops ? prisma8_ledger_write(conn, sfd, p->name, p->hash, p->from, p->to,
                                        to ? to->json : NULL, ops, err)
                 : -1;
        free(ops);
    }
    if (!invariants)
        snprintf(err->message, sizeof err->message, "out of memory");
    free(invariants);
    free(path);
    return rc;
}
