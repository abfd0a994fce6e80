#include "sqltree.h"

#include <stdarg.h>
#include <stdio.h>

#ifndef BANDAGE_NO_PG_QUERY
#include <pg_query.h>
#endif

#ifdef BANDAGE_NO_PG_QUERY

int sqltree_available(void)
{
    return 0;
}

void sqltree_done(void)
{
}

enum sqltree_result sqltree_parse(const char *sql, json_t **tree, char *why, size_t whylen)
{
    (void)sql;
    *tree = NULL;
    snprintf(why, whylen, "this binary was built without PostgreSQL's parser (libpg_query)");
    return SQLTREE_UNPARSABLE;
}

#else

int sqltree_available(void)
{
    return 1;
}

void sqltree_done(void)
{
    pg_query_exit();
}

/* Why jansson did not read libpg_query's (well-formed) JSON. It refuses a
 * tree nested deeper than its limit and a string that is not UTF-8, which
 * libpg_query copies from the statement byte for byte. */
static enum sqltree_result unreadable(const json_error_t *err, char *why, size_t whylen)
{
    enum json_error_code code = json_error_code(err);
    if (code == json_error_out_of_memory)
        return SQLTREE_NO_MEMORY;
    if (code == json_error_stack_overflow)
        snprintf(why, whylen, "its parse tree nests deeper than jansson reads (2048 levels)");
    else if (code == json_error_invalid_utf8)
        snprintf(why, whylen, "it is not valid UTF-8");
    else
        snprintf(why, whylen, "its parse tree could not be read: %s", err->text);
    return SQLTREE_UNPARSABLE;
}

enum sqltree_result sqltree_parse(const char *sql, json_t **tree, char *why, size_t whylen)
{
    PgQueryParseResult res = pg_query_parse(sql);
    json_error_t err;
    *tree = NULL;
    if (res.error) {
        /* names the grammar at hand: PostgreSQL 15's (Debian's libpg-query-dev,
         * `make`) or 17's (the static release binaries) */
        snprintf(why, whylen, "PostgreSQL " PG_MAJORVERSION "'s grammar does not read it: %s",
                 res.error->message ? res.error->message : "syntax error");
        pg_query_free_parse_result(res);
        return SQLTREE_UNPARSABLE;
    }
    *tree = json_loads(res.parse_tree ? res.parse_tree : "{}", 0, &err);
    pg_query_free_parse_result(res);
    return *tree ? SQLTREE_OK : unreadable(&err, why, whylen);
}

#endif

const json_t *sqltree_statement(const json_t *tree)
{
    return sqlnode_get(json_array_get(sqlnode_get(tree, "stmts"), 0), "stmt");
}

const json_t *sqlnode_get(const json_t *n, const char *key)
{
    return json_object_get(n, key);
}

const json_t *sqlnode_path(const json_t *n, ...)
{
    va_list ap;
    va_start(ap, n);
    for (const char *key = va_arg(ap, const char *); key && n; key = va_arg(ap, const char *))
        n = sqlnode_get(n, key);
    va_end(ap);
    return n;
}

const char *sqlnode_str(const json_t *n, const char *key)
{
    const char *s = json_string_value(sqlnode_get(n, key));
    return s ? s : "";
}

int sqlnode_true(const json_t *n, const char *key)
{
    return json_is_true(sqlnode_get(n, key));
}

/* jansson's iterators take a non-const object; they only read it. */
const char *sqlnode_kind(const json_t *n)
{
    const char *key = json_object_iter_key(json_object_iter((json_t *)n));
    return key ? key : "";
}

const json_t *sqlnode_inner(const json_t *n)
{
    return json_object_iter_value(json_object_iter((json_t *)n));
}

const json_t *sqlnode_last(const json_t *n)
{
    size_t size = json_array_size(n);
    return size ? json_array_get(n, size - 1) : NULL;
}
