#include "schemafile.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "exitcodes.h"
#include "log.h"
#include "migrate.h"
#include "prisma8_apply.h"
#include "sqlclass.h"

static int refuse(struct deploy_report *report, int code, const char *fmt, const char *path,
                  const char *why)
{
    log_error(fmt, path, why);
    report_add_error(report, "schema-file", code == EXIT_USAGE ? "config" : "syntax", fmt, path,
                     why);
    return code;
}

/* The whole file, or an exit code: fread errors are errors, not an end. */
static int read_whole(struct schema_file *f, FILE *in)
{
    size_t cap = 1 << 16;
    f->sql = malloc(cap);
    while (f->sql) {
        size_t n = fread(f->sql + f->len, 1, cap - f->len - 1, in);
        f->len += n;
        if (n == 0)
            break;
        if (f->len + 1 == cap) {
            char *grown = realloc(f->sql, cap *= 2);
            if (!grown)
                free(f->sql);
            f->sql = grown;
        }
    }
    if (!f->sql)
        return EXIT_INTERNAL;
    f->sql[f->len] = '\0';
    return ferror(in) ? -1 : 0;
}

/* bandage runs the file in its own transaction(s). A BEGIN or COMMIT in it
 * (Prisma migrations wrap enum changes so) would end ours early and break
 * all-or-nothing: those are dropped; a ROLLBACK or prepared transaction
 * cannot mean anything sensible here and is refused. */
static int drop_transaction_control(struct schema_file *f, struct deploy_report *report)
{
    size_t kept = 0;
    for (size_t i = 0; i < f->n_stmts; i++) {
        char word[16];
        enum sql_tx_control tx = sql_tx_control(f->sql + f->stmts[i].offset, f->stmts[i].length,
                                                word, sizeof word);
        if (tx == SQL_TX_REFUSED) {
            log_error("--schema-file %s, line %d: %s is not allowed: bandage applies the file "
                      "all-or-nothing in its own transaction", f->path, f->stmts[i].line, word);
            report_add_error(report, "schema-file", "transaction", "line %d: %s is not allowed",
                             f->stmts[i].line, word);
            return EXIT_SCHEMA;
        }
        if (tx == SQL_TX_DROPPABLE)
            log_warn("--schema-file %s, line %d: ignoring %s: bandage applies the file in its own "
                     "transaction", f->path, f->stmts[i].line, word);
        else
            f->stmts[kept++] = f->stmts[i];
    }
    f->n_stmts = kept;
    return 0;
}

static int check_contents(struct schema_file *f, int allow_empty, struct deploy_report *report)
{
    char err[256];
    const char *bom = sql_byte_order_mark(f->sql, f->len);
    if (bom) /* before the NUL bytes: UTF-16 text is full of them */
        return refuse(report, EXIT_USAGE, "--schema-file %s: %s", f->path, bom);
    const char *nul = memchr(f->sql, '\0', f->len);
    if (nul) {
        /* libpq sends a statement up to its first NUL: the rest would be
         * silently dropped and the shortened statement would commit. */
        snprintf(err, sizeof err, "line %d holds a NUL byte; save the file as plain text",
                 sql_line_of(f->sql, (size_t)(nul - f->sql)));
        return refuse(report, EXIT_USAGE, "--schema-file %s: %s", f->path, err);
    }
    if (sql_split(f->sql, f->len, &f->stmts, &f->n_stmts, err, sizeof err) != 0)
        return refuse(report, EXIT_SCHEMA, "--schema-file %s: %s", f->path, err);
    int rc = drop_transaction_control(f, report);
    if (rc == 0 && f->n_stmts == 0 && !allow_empty)
        return refuse(report, EXIT_USAGE,
                      "--schema-file %s: %s", f->path,
                      "holds no SQL statement: a reset would leave the schemas empty; give the "
                      "right file, or set --allow-empty-schema (BANDAGE_ALLOW_EMPTY_SCHEMA=true) "
                      "if empty is what you want");
    return rc;
}

int schema_file_load(struct schema_file *f, const char *path, int allow_empty,
                     struct deploy_report *report)
{
    struct stat st;
    memset(f, 0, sizeof *f);
    f->path = path;
    if (!path)
        return 0;
    FILE *in = fopen(path, "rb");
    if (!in)
        return refuse(report, EXIT_USAGE, "--schema-file: cannot read '%s': %s", path,
                      strerror(errno));
    if (fstat(fileno(in), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(in);
        return refuse(report, EXIT_USAGE, "--schema-file: '%s' %s", path,
                      "is not a regular file (a directory is what `docker run -v` makes of a "
                      "missing host file); mount or name the SQL file itself");
    }
    int rc = read_whole(f, in);
    int read_errno = errno;
    fclose(in);
    if (rc < 0)
        return refuse(report, EXIT_USAGE, "--schema-file: cannot read '%s': %s", path,
                      strerror(read_errno));
    return rc ? rc : check_contents(f, allow_empty, report);
}

/* Copies the listed statements into f, one after another. */
static int take_statements(struct schema_file *f, const struct migration_statements *list)
{
    size_t bytes = 1;
    for (size_t i = 0; i < list->count; i++)
        bytes += strlen(list->items[i].text) + 1;
    f->sql = malloc(bytes);
    f->stmts = calloc(list->count + 1, sizeof *f->stmts);
    f->migration = calloc(list->count + 1, sizeof *f->migration);
    if (!f->sql || !f->stmts || !f->migration)
        return EXIT_INTERNAL;
    for (size_t i = 0; i < list->count; i++) {
        size_t n = strlen(list->items[i].text);
        memcpy(f->sql + f->len, list->items[i].text, n);
        f->stmts[i] = (struct sql_statement){.offset = f->len, .length = n,
                                             .line = list->items[i].line};
        f->migration[i] = list->items[i].migration->name;
        f->len += n;
        f->sql[f->len++] = '\n';
    }
    f->sql[f->len] = '\0';
    f->n_stmts = list->count;
    return 0;
}

/* A reset runs every migration: each is checked before anything runs. */
static int check_scripts(const struct migration_dir *dir, struct deploy_report *report)
{
    char err[1024]; /* a path and a migration name of up to 255 bytes */
    for (size_t i = 0; i < dir->count; i++) {
        if (migration_script_check(dir, &dir->items[i], err, sizeof err) != 0) {
            log_error("%s", err);
            report_add_error(report, "schema-file", "config", "%s", err);
            return EXIT_USAGE;
        }
    }
    return 0;
}

int schema_file_from_migrations(struct schema_file *f, const struct migration_dir *dir,
                                int server_version, struct deploy_report *report)
{
    struct migration_statements list;
    char err[320];
    memset(f, 0, sizeof *f);
    f->path = dir->path;
    int rc = check_scripts(dir, report);
    if (rc != 0)
        return rc;
    if (migration_statements_list(dir, server_version, &list, err, sizeof err) != 0)
        return refuse(report, EXIT_SCHEMA, "--migrations %s: %s", dir->path, err);
    for (size_t i = 0; i < list.count; i++) {
        if (!list.items[i].outside_transaction)
            continue;
        snprintf(err, sizeof err, "migration %s, line %d cannot run inside a transaction "
                 "block, and a reset applies every migration in its own; move it to a later "
                 "migration applied without --reset", list.items[i].migration->name,
                 list.items[i].line);
        migration_statements_free(&list);
        return refuse(report, EXIT_SCHEMA, "--migrations %s: %s", dir->path, err);
    }
    rc = take_statements(f, &list);
    migration_statements_free(&list);
    return rc;
}

/* ---- Prisma 8 packages ------------------------------------------------------- */

/* Each statement must run in the reset's transaction, as in Prisma's. */
static int check_prisma8_statement(const struct p8_statement *st, int server_version,
                                   struct deploy_report *report, const char *path)
{
    char word[16], why[600];
    size_t len = strlen(st->step->sql);
    const char *what = sql_tx_control(st->step->sql, len, word, sizeof word) != SQL_TX_NONE
                           ? "is transaction control"
                       : sql_needs_autocommit(st->step->sql, len, server_version)
                           ? "cannot run inside a transaction block"
                           : NULL;
    if (!what)
        return 0;
    snprintf(why, sizeof why, "migration %s, operation %s: its statement %s, and a reset applies "
             "every migration in its own transaction (as Prisma 8 applies them in its)",
             st->package->name, st->op->id, what);
    return refuse(report, EXIT_SCHEMA, "--migrations %s: %s", path, why);
}

static int take_prisma8(struct schema_file *f, const struct p8_statement *list, size_t n)
{
    size_t bytes = 1;
    for (size_t i = 0; i < n; i++)
        bytes += strlen(list[i].step->sql) + 1;
    f->sql = malloc(bytes);
    f->stmts = calloc(n + 1, sizeof *f->stmts);
    f->migration = calloc(n + 1, sizeof *f->migration);
    f->operation = calloc(n + 1, sizeof *f->operation);
    f->params = calloc(n + 1, sizeof *f->params);
    if (!f->sql || !f->stmts || !f->migration || !f->operation || !f->params)
        return EXIT_INTERNAL;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(list[i].step->sql);
        memcpy(f->sql + f->len, list[i].step->sql, len);
        f->stmts[i] = (struct sql_statement){.offset = f->len, .length = len, .line = 1};
        f->migration[i] = list[i].package->name;
        f->operation[i] = list[i].op->id;
        f->params[i] = (struct schema_params){list[i].step->n_params, list[i].step->params};
        f->len += len;
        f->sql[f->len++] = '\n';
    }
    f->sql[f->len] = '\0';
    f->n_stmts = n;
    return 0;
}

int schema_file_from_prisma8(struct schema_file *f, const struct prisma8_dir *dir,
                             int server_version, struct deploy_report *report)
{
    struct p8_statement *list = NULL;
    size_t n = 0;
    char err[320];
    int rc = 0;
    memset(f, 0, sizeof *f);
    f->path = dir->path;
    if (prisma8_statements(dir, &list, &n, err, sizeof err) != 0)
        return refuse(report, EXIT_SCHEMA, "--migrations %s: %s", dir->path, err);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = check_prisma8_statement(&list[i], server_version, report, dir->path);
    if (rc == 0)
        rc = take_prisma8(f, list, n);
    free(list);
    return rc;
}

void schema_file_free(struct schema_file *f)
{
    free(f->stmts);
    free(f->sql);
    free(f->migration);
    free(f->operation);
    free(f->params);
    f->stmts = NULL;
    f->sql = NULL;
    f->migration = NULL;
    f->operation = NULL;
    f->params = NULL;
}

void schema_file_where(const struct schema_file *f, size_t i, int line, char *buf, size_t len)
{
    if (f->operation)
        snprintf(buf, len, "migration %s, operation %s, line %d", f->migration[i],
                 f->operation[i], line ? line : f->stmts[i].line);
    else if (f->migration)
        snprintf(buf, len, "migration %s, line %d", f->migration[i], line ? line : f->stmts[i].line);
    else
        snprintf(buf, len, "--schema-file %s, line %d", f->path, line ? line : f->stmts[i].line);
}

/* The line of the schema file where statement i failed at position pos
 * (PostgreSQL counts characters, 1-based; the file is UTF-8). */
static int failing_line(const struct schema_file *f, size_t i, int pos)
{
    const struct sql_statement *st = &f->stmts[i];
    size_t at = st->offset, end = st->offset + st->length;
    int line = st->line;
    for (int chars = 1; chars < pos && at < end; chars++) {
        line += f->sql[at] == '\n';
        at++;
        while (at < end && ((unsigned char)f->sql[at] & 0xC0) == 0x80)
            at++; /* continuation bytes belong to the same character */
    }
    return line;
}

int schema_file_run(struct session *s, const struct schema_file *f, size_t i, char sqlstate[6])
{
    const struct sql_statement *st = &f->stmts[i];
    struct db_error err;
    char saved = f->sql[st->offset + st->length];
    f->sql[st->offset + st->length] = '\0';
    const struct schema_params *p = f->params ? &f->params[i] : NULL;
    PGresult *res = p && p->n > 0 ? db_exec(s->conn, s->sfd, f->sql + st->offset, p->n,
                                            p->values, &err)
                                   : NULL;
    int failed = p && p->n > 0 ? !res : db_run(s->conn, s->sfd, f->sql + st->offset, &err) != 0;
    PQclear(res);
    f->sql[st->offset + st->length] = saved;
    if (sqlstate)
        snprintf(sqlstate, 6, "%s", failed ? err.sqlstate : "");
    if (!failed)
        return 0;
    if (err.stop_signal || err.connection_lost)
        return session_failed(s, "applying the schema file", &err, EXIT_SCHEMA);
    char where[200];
    int line = failing_line(f, i, err.position);
    schema_file_where(f, i, line, where, sizeof where);
    log_error("%s: %s%s%s", where, err.sqlstate, err.sqlstate[0] ? ": " : "", err.message);
    if (f->migration)
        report_add_error(s->report, "migrations", err.sqlstate[0] ? err.sqlstate : "connection",
                         "%s: %s", where, err.message);
    else
        report_add_error(s->report, "schema-file", err.sqlstate[0] ? err.sqlstate : "connection",
                         "line %d: %s", line, err.message);
    return strcmp(err.sqlstate, SQLSTATE_LOCK_NOT_AVAILABLE) == 0 ? EXIT_UNAVAILABLE : EXIT_SCHEMA;
}

void schema_file_count_applied(struct deploy_report *report, const struct schema_file *f,
                               size_t i)
{
    report->statements++;
    report->bytes += (long)f->stmts[i].length + 1;
}

/* ---- what a statement acts on ---------------------------------------------- */

enum token_kind { TOK_END, TOK_WORD, TOK_QUOTED, TOK_DOT, TOK_OPEN, TOK_OTHER };

struct lexer {
    const char *p, *end;
    char text[64];   /* the identifier, folded (bare) or unquoted (quoted) */
};

static void skip_blanks_and_comments(struct lexer *l)
{
    for (;;) {
        while (l->p < l->end && isspace((unsigned char)*l->p))
            l->p++;
        if (l->end - l->p >= 2 && l->p[0] == '-' && l->p[1] == '-') {
            while (l->p < l->end && *l->p != '\n')
                l->p++;
        } else if (l->end - l->p >= 2 && l->p[0] == '/' && l->p[1] == '*') {
            const char *close = l->p + 2;
            while (close + 1 < l->end && !(close[0] == '*' && close[1] == '/'))
                close++;
            l->p = close + 2 < l->end ? close + 2 : l->end;
        } else {
            return;
        }
    }
}

static enum token_kind next_token(struct lexer *l)
{
    size_t n = 0;
    skip_blanks_and_comments(l);
    if (l->p >= l->end)
        return TOK_END;
    char c = *l->p;
    if (c == '"') {
        for (l->p++; l->p < l->end; l->p++) {
            if (*l->p == '"' && !(l->p + 1 < l->end && l->p[1] == '"'))
                break;
            if (*l->p == '"')
                l->p++; /* a doubled quote is one quote */
            if (n + 1 < sizeof l->text)
                l->text[n++] = *l->p;
        }
        l->p++;
        l->text[n] = '\0';
        return TOK_QUOTED;
    }
    if (isalpha((unsigned char)c) || c == '_' || (unsigned char)c >= 0x80) {
        while (l->p < l->end && (isalnum((unsigned char)*l->p) || *l->p == '_' || *l->p == '$' ||
                                 (unsigned char)*l->p >= 0x80)) {
            if (n + 1 < sizeof l->text)
                l->text[n++] = (char)tolower((unsigned char)*l->p);
            l->p++;
        }
        l->text[n] = '\0';
        return TOK_WORD;
    }
    l->p++;
    return c == '.' ? TOK_DOT : c == '(' ? TOK_OPEN : TOK_OTHER;
}

static int is_word(const struct lexer *l, enum token_kind k, const char *word)
{
    return k == TOK_WORD && strcmp(l->text, word) == 0;
}

int schema_list_contains(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t m = comma ? (size_t)(comma - p) : strlen(p);
        if (m == n && strncmp(p, name, n) == 0)
            return 1;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

void schema_to_build(const struct config *cfg, char *name, size_t len)
{
    const char *list = cfg->schemas ? cfg->schemas : "public";
    size_t first = strcspn(list, ",");
    if (cfg->url_schema && schema_list_contains(list, cfg->url_schema))
        snprintf(name, len, "%s", cfg->url_schema);
    else
        snprintf(name, len, "%.*s", (int)first, list);
}

/* Words after which the statement no longer names what it acts on. DELETE
 * names its table after FROM, GRANT its privileges (SELECT, ...) before ON;
 * `ALTER DEFAULT PRIVILEGES` is the one DEFAULT that starts a header. */
static int ends_header(const struct lexer *l, enum token_kind k, int index, const char *verb)
{
    static const char *const stops[] = {"as", "is", "select", "values", "where", "returning",
                                        "to", "from", NULL};
    if (k == TOK_END || k == TOK_OPEN)
        return 1;
    if (strcmp(verb, "delete") == 0)
        return is_word(l, k, "where");
    if (strcmp(verb, "grant") == 0 || strcmp(verb, "revoke") == 0)
        return is_word(l, k, "to") || is_word(l, k, "from");
    if (index > 1 && is_word(l, k, "default"))
        return 1;
    for (int i = 0; stops[i]; i++)
        if (is_word(l, k, stops[i]))
            return 1;
    return 0;
}

/* Words of statement headers: the first identifier that is not one of them
 * names the object acted on. */
static int is_header_keyword(const char *word)
{
    static const char *const words[] = {
        "create", "alter", "drop", "comment", "insert", "update", "delete", "truncate", "grant",
        "revoke", "security", "label", "or", "replace", "temp", "temporary", "unlogged", "global",
        "local", "table", "view", "materialized", "recursive", "sequence", "type", "domain",
        "function", "procedure", "aggregate", "index", "unique", "concurrently", "if", "not",
        "exists", "only", "trigger", "constraint", "foreign", "data", "wrapper", "server",
        "extension", "into", "all", "privileges", "tables", "sequences", "functions", "usage",
        "select", "references", "policy", "rule", "event", "operator", "class", "family",
        "collation", "text", "search", "configuration", "dictionary", "parser", "template",
        "conversion", "statistics", "publication", "column", "large", "object", "on", "in",
        "default", "from", NULL};
    for (int i = 0; words[i]; i++)
        if (strcmp(word, words[i]) == 0)
            return 1;
    return 0;
}

/* Reads a possibly qualified name whose first part the lexer just read.
 * Returns the number of dots; l->p is left after the name. */
static int qualified_name(struct lexer *l, char *first, size_t len)
{
    int dots = 0;
    snprintf(first, len, "%s", l->text);
    const char *after = l->p;
    for (enum token_kind d = next_token(l); d == TOK_DOT; d = next_token(l)) {
        enum token_kind part = next_token(l);
        if (part != TOK_WORD && part != TOK_QUOTED)
            break;
        dots++;
        after = l->p;
    }
    l->p = after;
    return dots;
}

int schema_file_outside(const struct schema_file *f, size_t i, const char *schemas, char *name,
                        size_t namelen)
{
    static const char *const checked[] = {"create", "alter", "drop", "comment", "insert",
                                          "update", "delete", "truncate", "grant", "revoke",
                                          "security", NULL};
    const struct sql_statement *st = &f->stmts[i];
    struct lexer l = {.p = f->sql + st->offset, .end = f->sql + st->offset + st->length};
    enum token_kind k = next_token(&l);
    int wanted = 0, column = 0, seen_object = 0, after_schema = 0, after_on = 0, index = 1;
    char first[64], verb[sizeof l.text];
    for (int w = 0; checked[w]; w++)
        wanted |= is_word(&l, k, checked[w]);
    if (!wanted)
        return 0;
    snprintf(verb, sizeof verb, "%s", l.text);
    for (k = next_token(&l); !ends_header(&l, k, index, verb); k = next_token(&l), index++) {
        column |= is_word(&l, k, "column");
        if (after_schema && k == TOK_WORD &&
            (strcmp(l.text, "if") == 0 || strcmp(l.text, "not") == 0 ||
             strcmp(l.text, "exists") == 0 || strcmp(l.text, "authorization") == 0))
            continue;
        if (after_schema && (k == TOK_WORD || k == TOK_QUOTED)) {
            after_schema = 0;
            if (!schema_list_contains(schemas, l.text)) {
                snprintf(name, namelen, "%s", l.text);
                return 1;
            }
            continue;
        }
        if (k == TOK_OTHER && l.p[-1] == ',') {
            after_on = 1; /* a list: DROP TABLE a, b; TRUNCATE a, b */
            continue;
        }
        if (is_word(&l, k, "schema") || is_word(&l, k, "on")) {
            after_schema |= is_word(&l, k, "schema");
            after_on |= is_word(&l, k, "on");
            continue;
        }
        if (k == TOK_QUOTED || (k == TOK_WORD && !is_header_keyword(l.text))) {
            /* The object acted on, the table after ON (an index's, a
             * trigger's) and each of a list: schema.object, or
             * schema.table.column after COLUMN. */
            int counts = !seen_object || after_on;
            seen_object = 1;
            after_on = 0;
            int dots = qualified_name(&l, first, sizeof first);
            if (counts && dots > (column ? 1 : 0) && !schema_list_contains(schemas, first)) {
                snprintf(name, namelen, "%s", first);
                return 1;
            }
        }
    }
    return 0;
}
