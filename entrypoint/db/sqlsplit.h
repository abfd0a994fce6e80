/* Splits a SQL file into statements, as psql does, so that each can be sent
 * on its own and an error can name the line it comes from. No library does
 * this for C (psql's lexer is not exported), hence this small scanner. */
#ifndef BANDAGE_SQLSPLIT_H
#define BANDAGE_SQLSPLIT_H

#include <stddef.h>

struct sql_statement {
    size_t offset;  /* first byte of the statement (after leading blanks/comments) */
    size_t length;  /* up to, not including, the terminating ';' */
    int line;       /* 1-based line of offset */
};

/* Fills *out (malloc'ed, caller frees) with the statements of text, skipping
 * empty ones. Knows quotes (E-strings too), dollar quotes, line and nested
 * block comments. Returns 0, or -1 with err set (unterminated quote or comment,
 * a psql meta-command such as \connect). */
int sql_split(const char *text, size_t len, struct sql_statement **out, size_t *count,
              char *err, size_t errlen);

/* The 1-based line of byte `offset` in text. */
int sql_line_of(const char *text, size_t offset);

#endif
