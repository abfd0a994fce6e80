/* Splits a SQL file into statements where psql does (its lexer,
 * src/fe_utils/psqlscan.l, is the reference), so that each can be sent on
 * its own and an error can name the line it comes from.
 *
 * Hand-written because no library splits as psql does: psql's lexer is not
 * exported, and libpg_query's two splitters do not fit. Its scanner split
 * counts parentheses but not BEGIN ATOMIC bodies, so it cuts a SQL-standard
 * function body apart; its parser split needs the whole file to parse under
 * the grammar of the PostgreSQL version it was built from (15 in Debian 12,
 * 17 in the static binaries), so a file using a newer server's syntax would be refused whole, where psql
 * leaves each statement to the server. Splitting needs the lexer's view only:
 * quotes, comments, parentheses and the words CREATE, FUNCTION, BEGIN ATOMIC,
 * CASE and END, which this small scanner follows. */
#ifndef BANDAGE_SQLSPLIT_H
#define BANDAGE_SQLSPLIT_H

#include <stddef.h>

struct sql_statement {
    size_t offset;  /* first byte of the statement (after leading blanks/comments) */
    size_t length;  /* up to, not including, the terminating ';' */
    int line;       /* 1-based line of offset */
};

/* Fills *out (malloc'ed, caller frees) with the statements of text, skipping
 * empty ones. A ';' ends a statement unless it is inside quotes (E-strings
 * too), dollar quotes, line or nested block comments, parentheses (a rule's
 * DO ALSO (...; ...)), or the BEGIN ATOMIC ... END body of a CREATE [OR
 * REPLACE] FUNCTION or PROCEDURE (where CASE ... END nests). Returns 0, or -1
 * with err set, naming a line: an unterminated quote or comment, an unclosed
 * '(' or BEGIN ATOMIC (which psql would run on to the end of the file), a psql
 * meta-command such as \connect. */
int sql_split(const char *text, size_t len, struct sql_statement **out, size_t *count,
              char *err, size_t errlen);

/* The 1-based line of byte `offset` in text. */
int sql_line_of(const char *text, size_t offset);

#endif
