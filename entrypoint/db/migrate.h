/* Prisma migrations at deploy: --migrations DIR applies what is pending, each
 * migration and its _prisma_migrations row in one transaction, under
 * Prisma's own advisory lock. See DESIGN.md "Migrations, precisely". */
#ifndef BANDAGE_MIGRATE_H
#define BANDAGE_MIGRATE_H

#include <stddef.h>

#include <libpq-fe.h>

#include "config.h"
#include "migrations_dir.h"
#include "query.h"
#include "report/report.h"

/* Reads cfg->migrations (before connecting: a bad directory stops the start
 * with nothing touched): a Prisma 8 directory (app/<dir>/migration.json,
 * prisma8_dir.c; 64 unreadable, 65 a package that does not verify) or a
 * Prisma 6/7 one (migration_lock.toml; 64). Logs and reports the error.
 * Returns 0 or the exit code. */
int migrate_load(const struct config *cfg, struct migration_dir *dir,
                 struct deploy_report *report);

/* --migrations without --reset (a Prisma 8 directory goes to
 * prisma8_migrate()): reads _prisma_migrations (in
 * cfg->url_schema, default public) under Prisma's pg_advisory_lock(72707369),
 * stops on a failed row (Prisma's P3009) and, with --migrations-strict, on a
 * changed applied file; then, holding the lock, applies the pending
 * migrations in order, each all-or-nothing (statement by statement outside a
 * transaction when it must be). The lock is given back on every way out
 * (the read gives it back at once when nothing is to be applied); a
 * transaction pooler, found by the server process changing, is refused
 * (64) before the lock is held. With --plan, prints what it would do and
 * changes nothing. With nothing pending it costs one round trip. Returns
 * the exit code. */
int migrate_database(PGconn *conn, int sfd, const struct config *cfg,
                     const struct migration_dir *dir, struct deploy_report *report);

/* ---- for the reset ("--reset once|always --migrations DIR") ------------- */

struct migration_statement {
    const struct migration *migration; /* where it comes from, for error messages */
    int line;                          /* 1-based line of its first word in migration.sql */
    const char *text;                  /* NUL-terminated, without the ';' (owned by the list) */
    int outside_transaction;           /* PostgreSQL refuses it in a transaction block
                                          (VACUUM, ALTER SYSTEM, CREATE DATABASE...) */
};

struct migration_statements {
    struct migration_statement *items;
    size_t count;
    char *arena; /* the texts */
};

/* Every statement of every migration of dir, in order, as one list for a
 * reset that applies them in its own transaction(s): BEGIN/COMMIT written in
 * the files are left out, and CREATE INDEX, DROP INDEX and REINDEX lose their
 * CONCURRENTLY (on a schema the reset just emptied, with the other sessions
 * terminated, the plain form does the same, and it can run in a transaction).
 * Statements that still cannot run in one are flagged outside_transaction:
 * the caller decides. server_version as PQserverVersion() gives it.
 * Returns 0, or -1 with err naming the migration and line (a file that does
 * not split, holds ROLLBACK/SAVEPOINT, or has no migration.sql). */
int migration_statements_list(const struct migration_dir *dir, int server_version,
                              struct migration_statements *out, char *err, size_t errlen);
void migration_statements_free(struct migration_statements *list);

/* In the caller's open transaction, after its statements ran: creates
 * "schema"._prisma_migrations as Prisma does (and the schema if needed) and
 * records every migration of dir as applied (one INSERT, started_at in
 * directory order a microsecond apart, applied_steps_count 1), so that the
 * next `bandage --migrations` or `prisma migrate deploy` finds nothing
 * pending. The table must not hold rows for them already (the reset dropped
 * it). 0, or -1 with err set. */
int migrations_record_all_applied(PGconn *conn, int sfd, const char *schema,
                                  const struct migration_dir *dir, struct db_error *err);

#endif
