/* The --schema-file: read whole, refused when it is not what a reset may
 * apply (a directory, NUL bytes, nothing in it), split into statements, and
 * each statement run with errors that name its line. */
#ifndef BANDAGE_SCHEMAFILE_H
#define BANDAGE_SCHEMAFILE_H

#include <stddef.h>

#include "session.h"
#include "sqlsplit.h"

struct schema_file {
    const char *path;              /* NULL: no file */
    char *sql;                     /* the file, NUL-terminated */
    size_t len;
    struct sql_statement *stmts;   /* transaction control taken out */
    size_t n_stmts;
};

/* Reads and splits path into f. An empty file (no statements) is refused
 * unless allow_empty. Returns 0 or the exit code (64 unreadable, not a regular
 * file, NUL bytes, empty; 65 unterminated quote or a forbidden statement). */
int schema_file_load(struct schema_file *f, const char *path, int allow_empty,
                     struct deploy_report *report);

void schema_file_free(struct schema_file *f);

/* Runs statement i; on failure logs and reports it with its line and returns
 * the exit code (65, 69 when the connection was lost, 128+N on a signal).
 * *sqlstate (may be NULL) gets the server's SQLSTATE on failure. */
int schema_file_run(struct session *s, const struct schema_file *f, size_t i,
                    char sqlstate[6]);

/* Counts statement i as applied in the report. */
void schema_file_count_applied(struct deploy_report *report, const struct schema_file *f,
                               size_t i);

/* Statement i changes or creates something outside `schemas` (comma list),
 * judged by its leading words: `CREATE SCHEMA x`, `CREATE TABLE x.t`, `ALTER
 * TABLE x.t`, `INSERT INTO x.t`, `CREATE INDEX ... ON x.t`, `... SCHEMA x`
 * of CREATE EXTENSION. Fills name with that schema and returns 1, else 0. */
int schema_file_outside(const struct schema_file *f, size_t i, const char *schemas,
                        char *name, size_t namelen);

#endif
