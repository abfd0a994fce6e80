#include "sqltree.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef BANDAGE_NO_PG_QUERY
#include <pg_query.h>
#endif

struct sqltree {
    char *json;                /* libpg_query's JSON, copied; strings decoded in place */
    struct sqlnode *root;
};

static void free_nodes(struct sqlnode *n)
{
    while (n) {
        struct sqlnode *next = n->next;
        free_nodes(n->child);
        free(n);
        n = next;
    }
}

#ifdef BANDAGE_NO_PG_QUERY

int sqltree_available(void)
{
    return 0;
}

void sqltree_done(void)
{
}

enum sqltree_result sqltree_parse(const char *sql, struct sqltree **out, char *why,
                                  size_t whylen)
{
    (void)sql;
    *out = NULL;
    snprintf(why, whylen, "this binary was built without PostgreSQL's parser (libpg_query)");
    return SQLTREE_UNPARSABLE;
}

#else

/* ---- a JSON reader for libpg_query's output ------------------------------
 * The text is machine-made (protobuf's JSON mapping), so the reader is
 * strict and small: a malformed text is an error, never a guess. */

struct reader {
    char *p;
    int depth;
};

#define MAX_DEPTH 1000 /* parse trees nest deeply, never this deeply */

static void skip_blanks(struct reader *r)
{
    while (*r->p == ' ' || *r->p == '\n' || *r->p == '\t' || *r->p == '\r')
        r->p++;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + (unsigned)d;
    }
    *out = v;
    return 0;
}

/* Writes code point cp as UTF-8 at *w. */
static void put_utf8(char **w, unsigned cp)
{
    unsigned char *o = (unsigned char *)*w;
    if (cp < 0x80) {
        *o++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *o++ = (unsigned char)(0xC0 | cp >> 6);
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (unsigned char)(0xE0 | cp >> 12);
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (unsigned char)(0xF0 | cp >> 18);
        *o++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    *w = (char *)o;
}

/* One \u escape (and its low surrogate) at r->p, just past the 'u'. */
static int read_unicode(struct reader *r, char **w)
{
    unsigned cp, low;
    if (hex4(r->p, &cp) != 0)
        return -1;
    r->p += 4;
    if (cp >= 0xD800 && cp < 0xDC00 && r->p[0] == '\\' && r->p[1] == 'u' &&
        hex4(r->p + 2, &low) == 0 && low >= 0xDC00 && low < 0xE000) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        r->p += 6;
    }
    put_utf8(w, cp);
    return 0;
}

/* A string at r->p (its opening quote), decoded in place (escapes only
 * shrink) and NUL-terminated; *out points at it. */
static int read_string(struct reader *r, const char **out)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    char *w = ++r->p;
    *out = w;
    while (*r->p != '"') {
        if (*r->p == '\0')
            return -1;
        if (*r->p != '\\') {
            *w++ = *r->p++;
            continue;
        }
        char e = *++r->p;
        const char *k = e ? strchr(from, e) : NULL;
        r->p++;
        if (e == 'u') {
            if (read_unicode(r, &w) != 0)
                return -1;
        } else if (k) {
            *w++ = to[k - from];
        } else {
            return -1;
        }
    }
    r->p++;
    *w = '\0'; /* w <= the closing quote's place: never past this string */
    return 0;
}

static struct sqlnode *read_value(struct reader *r, const char *key);

/* The members of an array (keyed 0) or object (keyed 1) up to `close`. */
static int read_members(struct reader *r, struct sqlnode *parent, int keyed, char close)
{
    struct sqlnode **tail = &parent->child;
    r->p++;
    skip_blanks(r);
    if (*r->p == close) {
        r->p++;
        return 0;
    }
    for (;;) {
        const char *key = NULL;
        skip_blanks(r);
        if (keyed) {
            if (*r->p != '"' || read_string(r, &key) != 0)
                return -1;
            skip_blanks(r);
            if (*r->p++ != ':')
                return -1;
        }
        struct sqlnode *child = read_value(r, key);
        if (!child)
            return -1;
        *tail = child;
        tail = &child->next;
        skip_blanks(r);
        if (*r->p == ',') {
            r->p++;
            continue;
        }
        if (*r->p != close)
            return -1;
        r->p++;
        return 0;
    }
}

/* A literal (true, false, null) or a number at r->p. The number's text is
 * kept as is: a node's text points at it, NUL-terminated in place after
 * the caller has looked at the byte that follows. */
static int read_scalar(struct reader *r, struct sqlnode *n)
{
    if (strncmp(r->p, "true", 4) == 0 || strncmp(r->p, "false", 5) == 0) {
        n->type = SQLNODE_BOOL;
        n->truth = r->p[0] == 't';
        r->p += n->truth ? 4 : 5;
        return 0;
    }
    if (strncmp(r->p, "null", 4) == 0) {
        n->type = SQLNODE_NULL;
        r->p += 4;
        return 0;
    }
    size_t len = strspn(r->p, "-+0123456789.eE");
    if (len == 0)
        return -1;
    n->type = SQLNODE_NUMBER;
    n->text = r->p;
    r->p += len;
    return 0;
}

static struct sqlnode *read_value(struct reader *r, const char *key)
{
    struct sqlnode *n = calloc(1, sizeof *n);
    int rc = -1;
    if (!n || ++r->depth > MAX_DEPTH) {
        free(n);
        return NULL;
    }
    n->key = key;
    skip_blanks(r);
    if (*r->p == '{') {
        n->type = SQLNODE_OBJECT;
        rc = read_members(r, n, 1, '}');
    } else if (*r->p == '[') {
        n->type = SQLNODE_ARRAY;
        rc = read_members(r, n, 0, ']');
    } else if (*r->p == '"') {
        n->type = SQLNODE_STRING;
        rc = read_string(r, &n->text);
    } else {
        rc = read_scalar(r, n);
    }
    r->depth--;
    if (rc != 0) {
        free_nodes(n);
        return NULL;
    }
    return n;
}

/* Numbers are left unterminated while reading (the byte after one is the
 * reader's next): terminate them once the whole text is read. Copies
 * each into a fresh allocation would cost more than this walk. */
static void terminate_numbers(struct sqlnode *n)
{
    for (; n; n = n->next) {
        if (n->type == SQLNODE_NUMBER) {
            char *end = (char *)n->text + strspn(n->text, "-+0123456789.eE");
            *end = '\0';
        }
        terminate_numbers(n->child);
    }
}

/* ---- the parser ---------------------------------------------------------- */

int sqltree_available(void)
{
    return 1;
}

void sqltree_done(void)
{
    pg_query_exit();
}

enum sqltree_result sqltree_parse(const char *sql, struct sqltree **out, char *why,
                                  size_t whylen)
{
    *out = NULL;
    PgQueryParseResult res = pg_query_parse(sql);
    if (res.error) {
        snprintf(why, whylen, "%s", res.error->message ? res.error->message : "syntax error");
        pg_query_free_parse_result(res);
        return SQLTREE_UNPARSABLE;
    }
    struct sqltree *t = calloc(1, sizeof *t);
    if (t)
        t->json = strdup(res.parse_tree ? res.parse_tree : "{}");
    pg_query_free_parse_result(res);
    if (!t || !t->json) {
        sqltree_free(t);
        return SQLTREE_NO_MEMORY;
    }
    struct reader r = {t->json, 0};
    t->root = read_value(&r, NULL);
    if (!t->root) {
        /* libpg_query's own output: only memory can make it unreadable */
        sqltree_free(t);
        return SQLTREE_NO_MEMORY;
    }
    terminate_numbers(t->root);
    *out = t;
    return SQLTREE_OK;
}

#endif

void sqltree_free(struct sqltree *t)
{
    if (!t)
        return;
    free_nodes(t->root);
    free(t->json);
    free(t);
}

const struct sqlnode *sqltree_statement(const struct sqltree *t)
{
    const struct sqlnode *stmts = sqlnode_get(t->root, "stmts");
    const struct sqlnode *first = stmts && stmts->type == SQLNODE_ARRAY ? stmts->child : NULL;
    return sqlnode_get(first, "stmt");
}

const struct sqlnode *sqlnode_get(const struct sqlnode *n, const char *key)
{
    if (!n || n->type != SQLNODE_OBJECT)
        return NULL;
    for (const struct sqlnode *c = n->child; c; c = c->next)
        if (strcmp(c->key, key) == 0)
            return c;
    return NULL;
}

const struct sqlnode *sqlnode_path(const struct sqlnode *n, ...)
{
    va_list ap;
    va_start(ap, n);
    for (const char *key = va_arg(ap, const char *); key && n; key = va_arg(ap, const char *))
        n = sqlnode_get(n, key);
    va_end(ap);
    return n;
}

const char *sqlnode_str(const struct sqlnode *n, const char *key)
{
    const struct sqlnode *v = sqlnode_get(n, key);
    return v && v->type == SQLNODE_STRING ? v->text : "";
}

int sqlnode_true(const struct sqlnode *n, const char *key)
{
    const struct sqlnode *v = sqlnode_get(n, key);
    return v && v->type == SQLNODE_BOOL && v->truth;
}

const char *sqlnode_kind(const struct sqlnode *n)
{
    return n && n->type == SQLNODE_OBJECT && n->child ? n->child->key : "";
}

const struct sqlnode *sqlnode_inner(const struct sqlnode *n)
{
    return n && n->type == SQLNODE_OBJECT ? n->child : NULL;
}
