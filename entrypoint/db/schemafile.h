/* The --schema-file: read whole, refused when it is not what a reset may
 * apply (a directory, NUL bytes, nothing in it), split into statements, and
 * each statement run with errors that name its line. */
#ifndef BANDAGE_SCHEMAFILE_H
#define BANDAGE_SCHEMAFILE_H

#include <stddef.h>

#include "session.h"
#include "sqlsplit.h"

struct config;

/* A statement's parameters ($1...): Prisma 8's statements may have some. */
struct schema_params {
    int n;
    const char *const *values;     /* NULL entries are SQL NULLs */
};

struct schema_file {
    const char *path;              /* NULL: no file */
    char *sql;                     /* the file, NUL-terminated */
    size_t len;
    struct sql_statement *stmts;   /* transaction control taken out */
    size_t n_stmts;
    const char **migration;        /* built from migrations: each statement's migration
                                      name (line is the line in its migration.sql) */
    const char **operation;        /* built from Prisma 8 packages: each statement's
                                      operation (line is the line in its SQL); else NULL */
    struct schema_params *params;  /* per statement, NULL when no statement has any */
};

/* Reads and splits path into f. An empty file (no statements) is refused
 * unless allow_empty. Returns 0 or the exit code (64 unreadable, not a regular
 * file, a byte-order mark, NUL bytes, empty; 65 unterminated quote or a
 * forbidden statement). */
int schema_file_load(struct schema_file *f, const char *path, int allow_empty,
                     struct deploy_report *report);

/* The statements of every migration of dir, in order, as the reset applies
 * them (see migration_statements_list). Returns 0, 64 (a migration.sql that
 * starts with a byte-order mark) or 65 (a migration that does not split,
 * holds ROLLBACK, or cannot run in a transaction block). */
struct migration_dir;
int schema_file_from_migrations(struct schema_file *f, const struct migration_dir *dir,
                                int server_version, struct deploy_report *report);

/* The statements of the Prisma 8 packages on the path from no contract to
 * the newest (prisma8_statements), each with its parameters. Returns 0, or
 * 65 (no such path, transaction control, or a statement that cannot run in
 * a transaction block: Prisma 8 runs every one in its transaction too). */
struct prisma8_dir;
int schema_file_from_prisma8(struct schema_file *f, const struct prisma8_dir *dir,
                             int server_version, struct deploy_report *report);

void schema_file_free(struct schema_file *f);

/* "--schema-file PATH, line N", "migration NAME, line N" or "migration NAME,
 * operation ID, line N" for statement i, at `line` (its own line when 0). */
void schema_file_where(const struct schema_file *f, size_t i, int line, char *buf, size_t len);

/* Runs statement i; on failure logs and reports it with its line and returns
 * the exit code (65, 69 when the connection was lost, 128+N on a signal).
 * *sqlstate (may be NULL) gets the server's SQLSTATE on failure. */
int schema_file_run(struct session *s, const struct schema_file *f, size_t i,
                    char sqlstate[6]);

/* Is name one of the comma-separated list (exactly, case included)? */
int schema_list_contains(const char *list, const char *name);

/* The schema a reset builds in (unqualified names of the file land there):
 * the URL's schema parameter, as Prisma reads it, when --schemas resets it;
 * else --schemas' first entry. */
void schema_to_build(const struct config *cfg, char *name, size_t len);

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
