/* Prisma 8's bookkeeping, schema prisma_contract (marker, ledger,
 * contract), created and written exactly as Prisma 8's migration runner
 * does on PostgreSQL, so that bandage and `prisma db migrate` can take
 * turns on one database (docs/internals.md "Prisma 8 packages"). */
#ifndef BANDAGE_PRISMA8_TABLE_H
#define BANDAGE_PRISMA8_TABLE_H

#include <stddef.h>

#include <libpq-fe.h>

#include "query.h"

/* The contract space bandage applies: Prisma's app space. */
#define P8_SPACE "app"

/* The key of Prisma 8's transaction lock, pg_advisory_xact_lock(hashtext(key)):
 * "prisma_8.contract.marker:<schema>:app", schema the newest contract's
 * first namespace. */
void prisma8_lock_key(const char *schema, char *out, size_t len);

/* The pids holding that lock, its key $1 (SESSION_ADVISORY_HOLDERS_SQL's
 * form for the int4 key hashtext gives, negative ones included). */
#define P8_LOCK_HOLDERS_SQL                                                                      \
    "SELECT l.pid FROM pg_catalog.pg_locks l WHERE l.locktype = 'advisory' AND l.granted"       \
    " AND l.objsubid = 1"                                                                       \
    " AND l.classid = ((pg_catalog.hashtext($1)::bigint >> 32) & 4294967295)::oid"              \
    " AND l.objid = (pg_catalog.hashtext($1)::bigint & 4294967295)::oid"                        \
    " AND l.database = (SELECT oid FROM pg_catalog.pg_database"                                 \
    "                   WHERE datname = pg_catalog.current_database())"

/* In the caller's transaction: pg_try_advisory_xact_lock(hashtext(key)).
 * 0 with *got, or -1 with err set. */
int prisma8_try_lock(PGconn *conn, int sfd, const char *key, int *got, struct db_error *err);

/* CREATE SCHEMA IF NOT EXISTS "prisma_contract" and its three tables, with
 * Prisma's columns, types, defaults and keys. 0, or -1 with err set. */
int prisma8_tables_create(PGconn *conn, int sfd, struct db_error *err);

/* The database's state, when prisma_contract.marker exists: row 0 holds the
 * marker's core_hash (NULL: no marker for the app space); every row, one
 * ledger row of the app space when ledger exists (name, migration hash,
 * destination; NULL when none), oldest first. NULL with err set on
 * failure (42P01 when the tables went). */
enum { P8_COL_MARKER, P8_COL_NAME, P8_COL_HASH, P8_COL_TO };
PGresult *prisma8_read(PGconn *conn, int sfd, int with_ledger, struct db_error *err);

/* The marker moves to `to` (profile_hash, invariants a text[] literal
 * "{a,b}"): inserted when from is NULL (Prisma's initMarker), else a
 * compare-and-set from `from`, invariants merged (Prisma's updateMarker).
 * 0 with *moved (0: the compare-and-set found another marker), or -1. */
int prisma8_marker_write(PGconn *conn, int sfd, const char *from, const char *to,
                         const char *profile_hash, const char *invariants, int *moved,
                         struct db_error *err);

/* One migration applied: its destination contract (when its snapshot is
 * known: contract_json non-NULL; kept once per hash), then its ledger row
 * with what ran (operations: a JSON array). 0, or -1 with err set. */
int prisma8_ledger_write(PGconn *conn, int sfd, const char *name, const char *hash,
                         const char *from, const char *to, const char *contract_json,
                         const char *operations, struct db_error *err);

#endif
