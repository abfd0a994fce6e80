/* Prisma's bookkeeping table, _prisma_migrations, exactly as Prisma's schema
 * engine creates and fills it on PostgreSQL, so that bandage and `prisma
 * migrate deploy` can take turns on one database. */
#ifndef BANDAGE_PRISMA_TABLE_H
#define BANDAGE_PRISMA_TABLE_H

#include <libpq-fe.h>

#include "query.h"

/* Prisma's advisory lock key: its schema engine takes pg_advisory_lock(72707369). */
#define PRISMA_LOCK_KEY "72707369"

/* "schema"."_prisma_migrations", each part quoted by libpq (malloc'ed; NULL
 * when out of memory). */
char *prisma_table_name(PGconn *conn, const char *schema);

/* CREATE SCHEMA IF NOT EXISTS "schema"; CREATE TABLE IF NOT EXISTS <table>
 * (...) with Prisma's columns, types, defaults and primary key. */
int prisma_table_create(PGconn *conn, int sfd, const char *schema, const char *table,
                        struct db_error *err);

/* A random (v4) UUID from OpenSSL's RAND_bytes, as Prisma's ids are:
 * 36 lowercase characters. 0, or -1 when RAND_bytes failed. */
int prisma_uuid_v4(char out[37]);

/* One row, in whatever transaction is open: finished 1 records an applied
 * migration (started_at now(), finished_at clock_timestamp(), logs NULL,
 * applied_steps_count 1, as Prisma's deploy leaves it); finished 0 a started
 * one (finished_at NULL, applied_steps_count 0), whose id goes to id_out. */
int prisma_record(PGconn *conn, int sfd, const char *table, const char *name,
                  const char *checksum, int finished, char id_out[37], struct db_error *err);

/* Marks row id finished (finished_at clock_timestamp(), applied_steps_count 1). */
int prisma_record_finished(PGconn *conn, int sfd, const char *table, const char *id,
                           struct db_error *err);

/* Stores logs in row id, as Prisma does for a failed migration. */
int prisma_record_logs(PGconn *conn, int sfd, const char *table, const char *id,
                       const char *logs, struct db_error *err);

#endif
