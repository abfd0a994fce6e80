/* One SQL statement parsed by PostgreSQL's own grammar (libpg_query, the
 * server's parser as a C library), as a tree to walk: libpg_query gives its
 * parse tree as JSON ({"AlterTableStmt": {"relation": {...}, "cmds": [...]}}),
 * which this reads into nodes. Only what the statement checks (lint.c) need:
 * objects, arrays, strings, numbers and booleans, looked up by key. */
#ifndef BANDAGE_SQLTREE_H
#define BANDAGE_SQLTREE_H

#include <stddef.h>

enum sqlnode_type { SQLNODE_NULL, SQLNODE_BOOL, SQLNODE_NUMBER, SQLNODE_STRING, SQLNODE_ARRAY,
                    SQLNODE_OBJECT };

struct sqlnode {
    enum sqlnode_type type;
    const char *key;         /* its key in the enclosing object, NULL in an array */
    const char *text;        /* SQLNODE_STRING: the decoded string; NUMBER: its digits */
    int truth;               /* SQLNODE_BOOL */
    struct sqlnode *child;   /* ARRAY, OBJECT: the first member */
    struct sqlnode *next;    /* the next member of the enclosing array or object */
};

struct sqltree;

enum sqltree_result { SQLTREE_OK, SQLTREE_UNPARSABLE, SQLTREE_NO_MEMORY };

/* 0 when this binary was built without the parser (-DBANDAGE_NO_PG_QUERY:
 * a static build with STATIC_PG_QUERY=0, see static.mk): every statement is
 * then SQLTREE_UNPARSABLE. */
int sqltree_available(void);

/* Gives back the parser's memory (once parsing is done). */
void sqltree_done(void);

/* Parses sql (one statement, NUL-terminated). SQLTREE_UNPARSABLE: the
 * grammar (the linked libpg_query's: PostgreSQL 15's in Debian 12's
 * libpg-query-dev, 17's in the static binaries) does not read it; why holds
 * the parser's message. The tree's first statement is sqltree_statement(). */
enum sqltree_result sqltree_parse(const char *sql, struct sqltree **out, char *why,
                                  size_t whylen);
void sqltree_free(struct sqltree *t);

/* The parsed statement's node, e.g. {"AlterTableStmt": {...}}; NULL when
 * the text held no statement (only comments). */
const struct sqlnode *sqltree_statement(const struct sqltree *t);

/* The member `key` of an object; NULL when n is NULL, not an object, or has
 * no such member. */
const struct sqlnode *sqlnode_get(const struct sqlnode *n, const char *key);

/* Follows keys (NULL-terminated) from n: sqlnode_path(n, "def", "ColumnDef",
 * NULL). NULL when one is missing. */
const struct sqlnode *sqlnode_path(const struct sqlnode *n, ...);

/* The string at key of n, or "" (a missing string and an empty one are
 * the same to the checks). */
const char *sqlnode_str(const struct sqlnode *n, const char *key);

/* 1 when key of n is true (libpg_query leaves false members out). */
int sqlnode_true(const struct sqlnode *n, const char *key);

/* For a one-member object such as {"Constraint": {...}}: that member's key
 * (the node's kind), or "" . */
const char *sqlnode_kind(const struct sqlnode *n);

/* The member of a one-member object ({"Constraint": X} gives X). */
const struct sqlnode *sqlnode_inner(const struct sqlnode *n);

#endif
