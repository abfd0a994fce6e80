#include "checks.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* ---- gathering ------------------------------------------------------------- */

static void no_memory(struct db_error *err)
{
    memset(err, 0, sizeof *err);
    snprintf(err->message, sizeof err->message, "out of memory");
}

/* The bytes between the previous statement and this one: the comments that
 * may acknowledge its findings. */
static void comments_before(const struct checks_source *s, size_t i, const char **at,
                            size_t *len)
{
    size_t from = i == 0 ? 0 : s->stmts[i - 1].offset + s->stmts[i - 1].length;
    *at = s->sql + from;
    *len = s->stmts[i].offset - from;
}

/* Appends the findings lint added past `first` to out, with where they are. */
static int keep(struct checks *out, const struct lint_findings *found, size_t first,
                const struct checks_source *s, int line)
{
    size_t n = found->count - first;
    struct check_finding *grown = n ? realloc(out->items, (out->count + n) * sizeof *grown)
                                    : out->items;
    if (n && !grown)
        return -1;
    out->items = grown;
    for (size_t k = first; k < found->count; k++) {
        struct check_finding *x = &out->items[out->count++];
        memset(x, 0, sizeof *x);
        x->f = found->items[k];
        x->migration = s->name;
        x->line = line;
        x->rows = x->bytes = -1;
    }
    return 0;
}

static int check_source(struct lint_state *st, const struct checks_source *s,
                        struct lint_findings *found, struct checks *out)
{
    for (size_t i = 0; i < s->n_stmts; i++) {
        const char *comments;
        size_t clen, first = found->count;
        char *text = strndup(s->sql + s->stmts[i].offset, s->stmts[i].length);
        comments_before(s, i, &comments, &clen);
        int rc = text ? lint_statement(st, text, comments, clen, found) : -1;
        free(text);
        if (rc != 0 || keep(out, found, first, s, s->stmts[i].line) != 0)
            return -1;
    }
    return 0;
}

/* ---- sizing, from the live catalog ------------------------------------------ */

static const char size_sql[] =
    "SELECT c.reltuples::bigint, pg_catalog.pg_total_relation_size(c.oid),"
    " pg_catalog.pg_size_pretty(pg_catalog.pg_total_relation_size(c.oid))"
    " FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)";

static void append_quoted(char *out, size_t len, size_t *n, const char *name)
{
    out[(*n)++] = '"';
    for (; *name && *n + 4 < len; name++) {
        if (*name == '"')
            out[(*n)++] = '"';
        out[(*n)++] = *name;
    }
    out[(*n)++] = '"';
    out[*n] = '\0';
}

/* "schema"."table" (quotes doubled), schema from the statement, else the
 * URL's, else none (the search_path decides, as for the migration). len is
 * at least 4 * LINT_NAME + 8: every name fits. */
static void qualified(const struct check_finding *x, const char *schema, char *out, size_t len)
{
    const char *s = x->f.schema[0] ? x->f.schema : schema;
    size_t n = 0;
    if (s) {
        append_quoted(out, len, &n, s);
        out[n++] = '.';
    }
    append_quoted(out, len, &n, x->f.table);
}

/* The same table sized already for an earlier finding: copies its size. */
static int copy_known(struct checks *out, size_t i)
{
    struct check_finding *x = &out->items[i];
    for (size_t k = 0; k < i; k++) {
        const struct check_finding *y = &out->items[k];
        if (strcmp(y->f.table, x->f.table) == 0 && strcmp(y->f.schema, x->f.schema) == 0) {
            x->rows = y->rows;
            x->bytes = y->bytes;
            memcpy(x->size, y->size, sizeof x->size);
            return 1;
        }
    }
    return 0;
}

static int size_one(PGconn *conn, int sfd, const char *schema, struct check_finding *x,
                    struct db_error *err)
{
    char name[4 * LINT_NAME + 8];
    const char *params[] = {name};
    qualified(x, schema, name, sizeof name);
    PGresult *res = db_exec(conn, sfd, size_sql, 1, params, err);
    if (!res)
        return -1;
    if (PQntuples(res) == 1) {
        x->rows = atoll(PQgetvalue(res, 0, 0));
        x->bytes = atoll(PQgetvalue(res, 0, 1));
        snprintf(x->size, sizeof x->size, "%s", PQgetvalue(res, 0, 2));
    }
    PQclear(res);
    return 0;
}

static int size_all(PGconn *conn, int sfd, const char *schema, struct checks *out,
                    struct db_error *err)
{
    for (size_t i = 0; i < out->count; i++) {
        if (!out->items[i].f.table[0] || copy_known(out, i))
            continue;
        if (size_one(conn, sfd, schema, &out->items[i], err) != 0)
            return -1;
    }
    return 0;
}

int checks_run(PGconn *conn, int sfd, const char *schema, const struct checks_source *src,
               size_t n, struct checks *out, struct db_error *err)
{
    struct lint_state st = {0};
    struct lint_findings found = {0};
    int rc = 0;
    memset(out, 0, sizeof *out);
    if (!lint_available()) {
        for (size_t i = 0; i < n; i++)
            out->unchecked += src[i].n_stmts;
        return 0;
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = check_source(&st, &src[i], &found, out);
    lint_state_free(&st);
    lint_findings_free(&found);
    lint_done();
    if (rc != 0) {
        no_memory(err);
        return -1;
    }
    return size_all(conn, sfd, schema, out, err);
}

void checks_free(struct checks *c)
{
    free(c->items);
    memset(c, 0, sizeof *c);
}

/* ---- telling --------------------------------------------------------------- */

static int blocks(const struct check_finding *x)
{
    return x->f.cls != LINT_NOT_CHECKED && !x->f.acknowledged;
}

void checks_describe(const struct check_finding *x, char *buf, size_t len)
{
    if (x->f.cls == LINT_NOT_CHECKED)
        snprintf(buf, len, "not checked (%s)", x->f.detail);
    else if (x->f.table[0])
        snprintf(buf, len, "%s on \"%s\"%s%s%s", x->f.rule, x->f.table, x->f.detail[0] ? " (" : "",
                 x->f.detail, x->f.detail[0] ? ")" : "");
    else
        snprintf(buf, len, "%s %s", x->f.rule, x->f.detail);
}

/* "~1200 rows, 96 kB", or why there is no size. */
static void describe_size(const struct check_finding *x, char *buf, size_t len)
{
    if (!x->f.table[0])
        buf[0] = '\0';
    else if (x->bytes < 0)
        snprintf(buf, len, "table not in the catalog");
    else if (x->rows < 0)
        snprintf(buf, len, "rows not estimated yet (never analyzed), %s", x->size);
    else
        snprintf(buf, len, "~%lld rows, %s", x->rows, x->size);
}

static void log_one(const struct check_finding *x)
{
    char what[320], size[96];
    checks_describe(x, what, sizeof what);
    describe_size(x, size, sizeof size);
    if (x->f.cls == LINT_NOT_CHECKED)
        log_warn("migration %s, line %d: %s: %s", x->migration, x->line, what,
                 lint_rule_consequence(x->f.rule));
    else if (x->f.acknowledged)
        log_info("migration %s, line %d: %s %s%s%s, acknowledged (-- bandage:allow %s)",
                 x->migration, x->line, lint_class_name(x->f.cls), what, size[0] ? ": " : "",
                 size, x->f.rule);
    else
        log_warn("migration %s, line %d: %s %s%s%s: %s (acknowledge it with a comment "
                 "-- bandage:allow %s on the line before)", x->migration, x->line,
                 lint_class_name(x->f.cls), what, size[0] ? ": " : "", size,
                 lint_rule_consequence(x->f.rule), x->f.rule);
}

static void report_one(const struct check_finding *x, struct deploy_report *report)
{
    struct report_finding r = {.line = x->line, .rows = x->rows, .bytes = x->bytes,
                               .acknowledged = x->f.acknowledged};
    snprintf(r.migration, sizeof r.migration, "%s", x->migration);
    snprintf(r.rule, sizeof r.rule, "%s", x->f.rule);
    snprintf(r.cls, sizeof r.cls, "%s", lint_class_name(x->f.cls));
    snprintf(r.table, sizeof r.table, "%s", x->f.table);
    report_add_finding(report, &r);
}

void checks_tell(const struct checks *c, struct deploy_report *report)
{
    report->checks_ran = 1;
    if (c->unchecked) {
        log_warn("statement checks: this binary was built without PostgreSQL's parser "
                 "(libpg_query): the %zu pending statement(s) were not checked", c->unchecked);
        report->checks_not_checked = (int)c->unchecked;
    }
    for (size_t i = 0; i < c->count; i++)
        log_one(&c->items[i]);
    for (int pass = 0; pass < 2; pass++) /* what would stop a refuse first */
        for (size_t i = 0; i < c->count; i++)
            if (blocks(&c->items[i]) == (pass == 0))
                report_one(&c->items[i], report);
}

void checks_print(const struct checks *c, const char *name, FILE *out)
{
    for (size_t i = 0; i < c->count; i++) {
        const struct check_finding *x = &c->items[i];
        char what[320], size[96];
        if (strcmp(x->migration, name) != 0)
            continue;
        checks_describe(x, what, sizeof what);
        describe_size(x, size, sizeof size);
        if (x->f.cls == LINT_NOT_CHECKED)
            fprintf(out, "           line %d: %s\n", x->line, what);
        else
            fprintf(out, "           line %d: %s %s%s%s%s\n", x->line, lint_class_name(x->f.cls),
                    what, size[0] ? ": " : "", size, x->f.acknowledged ? ", acknowledged" : "");
    }
}

const struct check_finding *checks_refusal(const struct checks *c)
{
    for (size_t i = 0; i < c->count; i++)
        if (blocks(&c->items[i]))
            return &c->items[i];
    return NULL;
}
