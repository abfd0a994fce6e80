/* One SQL statement parsed by PostgreSQL's own grammar (libpg_query, the
 * server's parser as a C library), as a tree to walk: libpg_query gives its
 * parse tree as JSON ({"AlterTableStmt": {"relation": {...}, "cmds": [...]}}),
 * which jansson reads. The nodes are jansson's json_t: the sqlnode_
 * accessors below look members up (NULL-safe, as jansson's getters are),
 * json_array_foreach walks a list. */
#ifndef BANDAGE_SQLTREE_H
#define BANDAGE_SQLTREE_H

#include <stddef.h>

#include <jansson.h>

enum sqltree_result { SQLTREE_OK, SQLTREE_UNPARSABLE, SQLTREE_NO_MEMORY };

/* 0 when this binary was built without the parser (-DBANDAGE_NO_PG_QUERY:
 * a static build with STATIC_PG_QUERY=0, see static.mk): every statement is
 * then SQLTREE_UNPARSABLE. */
int sqltree_available(void);

/* Gives back the parser's memory (once parsing is done). */
void sqltree_done(void);

/* Parses sql (one statement, NUL-terminated) into *tree, libpg_query's whole
 * parse tree ({"version": ..., "stmts": [...]}), the caller's to json_decref.
 * SQLTREE_UNPARSABLE: the grammar (the linked libpg_query's: PostgreSQL 15's
 * in Debian 12's libpg-query-dev, 17's in the static binaries) does not read
 * it, or jansson cannot read the tree it gave (nested deeper than 2048
 * levels, or not UTF-8); why says which. */
enum sqltree_result sqltree_parse(const char *sql, json_t **tree, char *why, size_t whylen);

/* The parsed statement's node, e.g. {"AlterTableStmt": {...}}; NULL when
 * the text held no statement (only comments). */
const json_t *sqltree_statement(const json_t *tree);

/* The member `key` of an object; NULL when n is NULL, not an object, or has
 * no such member. */
const json_t *sqlnode_get(const json_t *n, const char *key);

/* Follows keys (NULL-terminated) from n: sqlnode_path(n, "def", "ColumnDef",
 * NULL). NULL when one is missing. */
const json_t *sqlnode_path(const json_t *n, ...);

/* The string at key of n, or "" (a missing string and an empty one are
 * the same to the checks). */
const char *sqlnode_str(const json_t *n, const char *key);

/* 1 when key of n is true (libpg_query leaves false members out). */
int sqlnode_true(const json_t *n, const char *key);

/* For a one-member object such as {"Constraint": {...}}: that member's key
 * (the node's kind), or "" . */
const char *sqlnode_kind(const json_t *n);

/* The member of a one-member object ({"Constraint": X} gives X). */
const json_t *sqlnode_inner(const json_t *n);

/* The last element of an array; NULL when n is NULL, not an array or empty. */
const json_t *sqlnode_last(const json_t *n);

#endif
