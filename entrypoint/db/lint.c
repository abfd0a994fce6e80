#include "lint.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlclass.h"
#include "sqltree.h"

/* ---- the rules --------------------------------------------------------------- */

struct rule {
    const char *name;
    enum lint_class cls;
    const char *consequence;
};

static const struct rule rules[] = {
    {"drop-table", LINT_BREAKING, "the running deployment's queries on it fail"},
    {"drop-view", LINT_BREAKING, "the running deployment's queries on it fail"},
    {"drop-column", LINT_BREAKING, "the running deployment still selects and writes it"},
    {"rename-table", LINT_BREAKING, "the running deployment still uses the old name"},
    {"rename-column", LINT_BREAKING, "the running deployment still uses the old name"},
    {"change-column-type", LINT_BREAKING, "the running deployment reads and writes the old type"},
    {"set-not-null", LINT_BREAKING, "the running deployment's inserts without it fail (and the "
     "check scans the table under an ACCESS EXCLUSIVE lock)"},
    {"add-not-null-column", LINT_BREAKING, "the running deployment's inserts do not set it and "
     "fail (and it fails on a table with rows)"},
    {"drop-type", LINT_BREAKING, "an enum value or type the running deployment uses goes (Prisma "
     "removes an enum value by replacing the type)"},
    {"rename-enum-value", LINT_BREAKING, "the running deployment writes the old value"},
    {"drop-function", LINT_BREAKING, "the running deployment may call it"},
    {"index-not-concurrent", LINT_LONG_LOCK, "writes to the table wait until the index is built; "
     "use CREATE INDEX CONCURRENTLY in a migration of its own"},
    {"add-foreign-key", LINT_LONG_LOCK, "both tables are locked while every row is checked; add "
     "it NOT VALID, then VALIDATE CONSTRAINT in a later migration"},
    {"add-check", LINT_LONG_LOCK, "the table is locked while every row is checked; add it NOT "
     "VALID, then VALIDATE CONSTRAINT in a later migration"},
    {"add-unique-constraint", LINT_LONG_LOCK, "the index is built under an ACCESS EXCLUSIVE lock; "
     "build it CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX"},
    {"column-type-rewrite", LINT_LONG_LOCK, "the table is rewritten under an ACCESS EXCLUSIVE "
     "lock: reads and writes wait"},
    {"vacuum-full", LINT_LONG_LOCK, "the table is rewritten under an ACCESS EXCLUSIVE lock"},
    {"cluster", LINT_LONG_LOCK, "the table is rewritten under an ACCESS EXCLUSIVE lock"},
    /* why it was not checked is the finding's detail (sqltree_parse's reason) */
    {"not-checked", LINT_NOT_CHECKED, "left to the server"},
};

static const struct rule *find_rule(const char *name)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (strcmp(rules[i].name, name) == 0)
            return &rules[i];
    return NULL;
}

const char *lint_rule_consequence(const char *rule)
{
    const struct rule *r = find_rule(rule);
    return r ? r->consequence : "";
}

const char *lint_class_name(enum lint_class cls)
{
    return cls == LINT_BREAKING ? "breaking" : cls == LINT_LONG_LOCK ? "long-lock"
                                                                     : "not-checked";
}

/* ---- the acknowledgement comment ------------------------------------------------ */

#define ALLOW_MARK "bandage:allow"

/* Does the list after one "bandage:allow" (to the end of its line) name rule? */
static int allow_list_names(const char *p, const char *end, const char *rule)
{
    size_t rlen = strlen(rule);
    if (p < end && *p != ' ' && *p != '\t')
        return 0; /* "bandage:allowed", not the mark */
    while (p < end && *p != '\n' && *p != '\r') {
        size_t n = 0;
        while (p + n < end && !strchr(" \t,\r\n", p[n]))
            n++;
        if ((n == rlen && strncmp(p, rule, n) == 0) || (n == 3 && strncmp(p, "all", 3) == 0))
            return 1;
        p += n ? n : 1;
    }
    return 0;
}

int lint_acknowledges(const char *comments, size_t len, const char *rule)
{
    const char *end = comments + len;
    size_t mlen = strlen(ALLOW_MARK);
    for (const char *p = comments; p && p + mlen <= end; p++) {
        p = memchr(p, 'b', (size_t)(end - p));
        if (!p || p + mlen > end)
            return 0;
        if (strncmp(p, ALLOW_MARK, mlen) == 0 && allow_list_names(p + mlen, end, rule))
            return 1;
    }
    return 0;
}

/* ---- findings ------------------------------------------------------------------ */

struct check {
    struct lint_state *st;
    const char *comments;
    size_t comments_len;
    struct lint_findings *out;
    int failed; /* out of memory */
};

__attribute__((format(printf, 5, 6)))
static void add(struct check *c, const char *rule, const char *schema, const char *table,
                const char *fmt, ...)
{
    const struct rule *r = find_rule(rule);
    struct lint_findings *f = c->out;
    if (f->count == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 8;
        struct lint_finding *grown = realloc(f->items, cap * sizeof *grown);
        if (!grown) {
            c->failed = 1;
            return;
        }
        f->items = grown;
        f->cap = cap;
    }
    struct lint_finding *x = &f->items[f->count++];
    memset(x, 0, sizeof *x);
    x->rule = r->name;
    x->cls = r->cls;
    snprintf(x->schema, sizeof x->schema, "%s", schema ? schema : "");
    snprintf(x->table, sizeof x->table, "%s", table ? table : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->detail, sizeof x->detail, fmt, ap);
    va_end(ap);
    x->acknowledged = r->cls != LINT_NOT_CHECKED &&
                      lint_acknowledges(c->comments, c->comments_len, rule);
}

/* ---- tables created in this run --------------------------------------------- */

static int same_table(const char (*t)[LINT_NAME], const char *schema, const char *table)
{
    /* An unqualified name and a qualified one may be the same table: the
     * check errs towards "new" only when the names agree where both are given. */
    return strcmp(t[1], table) == 0 && (!t[0][0] || !schema[0] || strcmp(t[0], schema) == 0);
}

static int is_new(const struct lint_state *st, const char *schema, const char *table)
{
    for (size_t i = 0; i < st->n_created; i++)
        if (same_table(st->created[i], schema, table))
            return 1;
    return 0;
}

static void note_created(struct check *c, const json_t *rangevar)
{
    struct lint_state *st = c->st;
    if (st->n_created == st->cap_created) {
        size_t cap = st->cap_created ? 2 * st->cap_created : 8;
        char (*grown)[2][LINT_NAME] = realloc(st->created, cap * sizeof *grown);
        if (!grown) {
            c->failed = 1;
            return;
        }
        st->created = grown;
        st->cap_created = cap;
    }
    snprintf(st->created[st->n_created][0], LINT_NAME, "%s",
             sqlnode_str(rangevar, "schemaname"));
    snprintf(st->created[st->n_created][1], LINT_NAME, "%s", sqlnode_str(rangevar, "relname"));
    st->n_created++;
}

/* ---- ALTER TABLE ----------------------------------------------------------------- */

static int has_constraint(const json_t *columndef, const char *contype)
{
    size_t i;
    const json_t *k;
    json_array_foreach(sqlnode_get(columndef, "constraints"), i, k)
        if (strcmp(sqlnode_str(sqlnode_get(k, "Constraint"), "contype"), contype) == 0)
            return 1;
    return 0;
}

/* The i-th of a qualified name's Strings, or "". */
static const char *name_at(const json_t *names, size_t i)
{
    return sqlnode_str(sqlnode_get(json_array_get(names, i), "String"), "sval");
}

/* The last of a qualified name's Strings ("int8" of pg_catalog.int8). */
static const char *last_name(const json_t *names)
{
    return sqlnode_str(sqlnode_get(sqlnode_last(names), "String"), "sval");
}

/* The last name of a TypeName. */
static const char *type_name(const json_t *typename_)
{
    return last_name(sqlnode_get(typename_, "names"));
}

static void add_column(struct check *c, const char *s, const char *t, const json_t *def)
{
    const json_t *col = sqlnode_get(def, "ColumnDef");
    int not_null = has_constraint(col, "CONSTR_NOTNULL") || has_constraint(col, "CONSTR_PRIMARY");
    if (not_null && !has_constraint(col, "CONSTR_DEFAULT") &&
        !has_constraint(col, "CONSTR_IDENTITY") && !has_constraint(col, "CONSTR_GENERATED") &&
        strcmp(type_name(sqlnode_get(col, "typeName")), "serial") != 0 &&
        strcmp(type_name(sqlnode_get(col, "typeName")), "bigserial") != 0)
        add(c, "add-not-null-column", s, t, "column %s", sqlnode_str(col, "colname"));
}

/* A type PostgreSQL changes a text column to without rewriting it. */
static int no_rewrite_type(const char *type)
{
    return strcmp(type, "text") == 0 || strcmp(type, "varchar") == 0;
}

static void alter_type(struct check *c, const char *s, const char *t, const json_t *cmd)
{
    const char *column = sqlnode_str(cmd, "name");
    const char *type = type_name(sqlnode_path(cmd, "def", "ColumnDef", "typeName", NULL));
    add(c, "change-column-type", s, t, "column %s to %s", column, type);
    if (!no_rewrite_type(type))
        add(c, "column-type-rewrite", s, t, "column %s to %s", column, type);
}

static void add_constraint(struct check *c, const char *s, const char *t, const json_t *def)
{
    const json_t *k = sqlnode_get(def, "Constraint");
    const char *type = sqlnode_str(k, "contype");
    const char *name = sqlnode_str(k, "conname");
    int validated = !sqlnode_true(k, "skip_validation");
    if (strcmp(type, "CONSTR_FOREIGN") == 0 && validated)
        add(c, "add-foreign-key", s, t, "%s references %s", name,
            sqlnode_str(sqlnode_get(k, "pktable"), "relname"));
    else if (strcmp(type, "CONSTR_CHECK") == 0 && validated)
        add(c, "add-check", s, t, "%s", name);
    else if ((strcmp(type, "CONSTR_UNIQUE") == 0 || strcmp(type, "CONSTR_PRIMARY") == 0) &&
             !sqlnode_str(k, "indexname")[0])
        add(c, "add-unique-constraint", s, t, "%s", name);
}

static void alter_command(struct check *c, const char *s, const char *t, const json_t *cmd)
{
    const char *sub = sqlnode_str(cmd, "subtype");
    const char *column = sqlnode_str(cmd, "name");
    if (strcmp(sub, "AT_DropColumn") == 0)
        add(c, "drop-column", s, t, "column %s", column);
    else if (strcmp(sub, "AT_AlterColumnType") == 0)
        alter_type(c, s, t, cmd);
    else if (strcmp(sub, "AT_SetNotNull") == 0)
        add(c, "set-not-null", s, t, "column %s", column);
    else if (strcmp(sub, "AT_AddColumn") == 0)
        add_column(c, s, t, sqlnode_get(cmd, "def"));
    else if (strcmp(sub, "AT_AddConstraint") == 0)
        add_constraint(c, s, t, sqlnode_get(cmd, "def"));
}

static void alter_table(struct check *c, const json_t *stmt)
{
    const json_t *rel = sqlnode_get(stmt, "relation");
    const char *s = sqlnode_str(rel, "schemaname"), *t = sqlnode_str(rel, "relname");
    size_t i;
    const json_t *k;
    if (strcmp(sqlnode_str(stmt, "objtype"), "OBJECT_TABLE") != 0 || is_new(c->st, s, t))
        return;
    json_array_foreach(sqlnode_get(stmt, "cmds"), i, k)
        alter_command(c, s, t, sqlnode_get(k, "AlterTableCmd"));
}

/* ---- other statements ------------------------------------------------------------ */

static void rename_object(struct check *c, const json_t *stmt)
{
    const json_t *rel = sqlnode_get(stmt, "relation");
    const char *s = sqlnode_str(rel, "schemaname"), *t = sqlnode_str(rel, "relname");
    const char *type = sqlnode_str(stmt, "renameType");
    if (rel && is_new(c->st, s, t))
        return;
    if (strcmp(type, "OBJECT_TABLE") == 0)
        add(c, "rename-table", s, t, "to %s", sqlnode_str(stmt, "newname"));
    else if (strcmp(type, "OBJECT_COLUMN") == 0)
        add(c, "rename-column", s, t, "column %s to %s", sqlnode_str(stmt, "subname"),
            sqlnode_str(stmt, "newname"));
}

/* The schema and name of a dropped object: a List of Strings (tables,
 * views), a TypeName (types) or an ObjectWithArgs (functions). */
static void dropped_name(const json_t *obj, const char **schema, const char **name)
{
    const json_t *list = sqlnode_path(obj, "List", "items", NULL);
    if (!list)
        list = sqlnode_path(obj, "TypeName", "names", NULL);
    if (!list)
        list = sqlnode_path(obj, "ObjectWithArgs", "objname", NULL);
    size_t n = json_array_size(list); /* [catalog,] [schema,] name */
    *schema = n > 1 ? name_at(list, n - 2) : "";
    *name = last_name(list);
}

static void drop(struct check *c, const json_t *stmt)
{
    const char *type = sqlnode_str(stmt, "removeType");
    const char *rule = strcmp(type, "OBJECT_TABLE") == 0 ? "drop-table"
                     : strcmp(type, "OBJECT_VIEW") == 0 ||
                       strcmp(type, "OBJECT_MATVIEW") == 0 ? "drop-view"
                     : strcmp(type, "OBJECT_TYPE") == 0 ||
                       strcmp(type, "OBJECT_DOMAIN") == 0 ? "drop-type"
                     : strcmp(type, "OBJECT_FUNCTION") == 0 ||
                       strcmp(type, "OBJECT_PROCEDURE") == 0 ? "drop-function" : NULL;
    size_t i;
    const json_t *o;
    if (!rule)
        return;
    json_array_foreach(sqlnode_get(stmt, "objects"), i, o) {
        const char *s, *name;
        dropped_name(o, &s, &name);
        int table = strcmp(rule, "drop-table") == 0 || strcmp(rule, "drop-view") == 0;
        if (table && is_new(c->st, s, name))
            continue;
        if (table)
            add(c, rule, s, name, "%s", "");
        else
            add(c, rule, s, NULL, "%s%s%s", s, s[0] ? "." : "", name);
    }
}

static void create_index(struct check *c, const json_t *stmt)
{
    const json_t *rel = sqlnode_get(stmt, "relation");
    const char *s = sqlnode_str(rel, "schemaname"), *t = sqlnode_str(rel, "relname");
    if (!sqlnode_true(stmt, "concurrent") && !is_new(c->st, s, t))
        add(c, "index-not-concurrent", s, t, "%s%s", sqlnode_true(stmt, "unique") ? "unique " : "",
            sqlnode_str(stmt, "idxname")[0] ? sqlnode_str(stmt, "idxname") : "(unnamed)");
}

static int vacuum_is_full(const json_t *stmt)
{
    size_t i;
    const json_t *o;
    json_array_foreach(sqlnode_get(stmt, "options"), i, o)
        if (strcmp(sqlnode_str(sqlnode_get(o, "DefElem"), "defname"), "full") == 0)
            return 1;
    return 0;
}

static void vacuum(struct check *c, const json_t *stmt)
{
    const json_t *rels = sqlnode_get(stmt, "rels"), *r;
    size_t i;
    if (!sqlnode_true(stmt, "is_vacuumcmd") || !vacuum_is_full(stmt))
        return;
    if (json_array_size(rels) == 0)
        add(c, "vacuum-full", NULL, NULL, "every table of the database");
    json_array_foreach(rels, i, r) {
        const json_t *rel = sqlnode_path(r, "VacuumRelation", "relation", NULL);
        add(c, "vacuum-full", sqlnode_str(rel, "schemaname"), sqlnode_str(rel, "relname"), "%s",
            "");
    }
}

static void cluster(struct check *c, const json_t *stmt)
{
    const json_t *rel = sqlnode_get(stmt, "relation");
    if (rel)
        add(c, "cluster", sqlnode_str(rel, "schemaname"), sqlnode_str(rel, "relname"), "%s",
            sqlnode_str(stmt, "indexname"));
    else
        add(c, "cluster", NULL, NULL, "every clustered table of the database");
}

static void rename_enum_value(struct check *c, const json_t *stmt)
{
    if (!sqlnode_str(stmt, "oldVal")[0])
        return; /* ADD VALUE: additive */
    add(c, "rename-enum-value", NULL, NULL, "%s: '%s' to '%s'",
        last_name(sqlnode_get(stmt, "typeName")), sqlnode_str(stmt, "oldVal"),
        sqlnode_str(stmt, "newVal"));
}

static void check_statement(struct check *c, const json_t *node)
{
    const char *kind = sqlnode_kind(node);
    const json_t *stmt = sqlnode_inner(node);
    if (strcmp(kind, "CreateStmt") == 0)
        note_created(c, sqlnode_get(stmt, "relation"));
    else if (strcmp(kind, "CreateTableAsStmt") == 0)
        note_created(c, sqlnode_path(stmt, "into", "rel", NULL));
    else if (strcmp(kind, "AlterTableStmt") == 0)
        alter_table(c, stmt);
    else if (strcmp(kind, "RenameStmt") == 0)
        rename_object(c, stmt);
    else if (strcmp(kind, "DropStmt") == 0)
        drop(c, stmt);
    else if (strcmp(kind, "IndexStmt") == 0)
        create_index(c, stmt);
    else if (strcmp(kind, "VacuumStmt") == 0)
        vacuum(c, stmt);
    else if (strcmp(kind, "ClusterStmt") == 0)
        cluster(c, stmt);
    else if (strcmp(kind, "AlterEnumStmt") == 0)
        rename_enum_value(c, stmt);
}

int lint_statement(struct lint_state *st, const char *sql, const char *comments,
                   size_t comments_len, struct lint_findings *out)
{
    struct check c = {st, comments, comments_len, out, 0};
    json_t *tree;
    char why[200];
    /* No rule applies to them, and their trees are the largest: a seed's
     * 2 MB INSERT took 310 MB as a jansson tree. */
    if (sql_changes_rows_only(sql, strlen(sql)))
        return 0;
    enum sqltree_result rc = sqltree_parse(sql, &tree, why, sizeof why);
    if (rc == SQLTREE_NO_MEMORY)
        return -1;
    if (rc == SQLTREE_UNPARSABLE) {
        add(&c, "not-checked", NULL, NULL, "%s", why);
        return c.failed ? -1 : 0;
    }
    const json_t *node = sqltree_statement(tree);
    if (node)
        check_statement(&c, node);
    json_decref(tree);
    return c.failed ? -1 : 0;
}

void lint_state_free(struct lint_state *st)
{
    free(st->created);
    memset(st, 0, sizeof *st);
}

void lint_findings_free(struct lint_findings *f)
{
    free(f->items);
    memset(f, 0, sizeof *f);
}

void lint_done(void)
{
    sqltree_done();
}

#ifndef BANDAGE_NO_PG_QUERY
int lint_available(void)
{
    return sqltree_available();
}
#endif
