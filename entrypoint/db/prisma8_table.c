#include "prisma8_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prisma 8's statements, as its runner sends them (seen in the server's log). */
static const char create_sql[] =
    "CREATE SCHEMA IF NOT EXISTS \"prisma_contract\";"
    "CREATE TABLE IF NOT EXISTS \"prisma_contract\".\"marker\" (\n"
    "  \"space\" text DEFAULT 'app' NOT NULL PRIMARY KEY,\n"
    "  \"core_hash\" text NOT NULL,\n"
    "  \"profile_hash\" text NOT NULL,\n"
    "  \"contract_json\" jsonb,\n"
    "  \"canonical_version\" int,\n"
    "  \"updated_at\" timestamptz DEFAULT (now()) NOT NULL,\n"
    "  \"app_tag\" text,\n"
    "  \"meta\" jsonb DEFAULT '{}'::jsonb NOT NULL,\n"
    "  \"invariants\" text[] DEFAULT '{}'::text[] NOT NULL\n"
    ");"
    "CREATE TABLE IF NOT EXISTS \"prisma_contract\".\"ledger\" (\n"
    "  \"id\" bigserial PRIMARY KEY,\n"
    "  \"created_at\" timestamptz DEFAULT (now()) NOT NULL,\n"
    "  \"space\" text NOT NULL,\n"
    "  \"migration_name\" text NOT NULL,\n"
    "  \"migration_hash\" text NOT NULL,\n"
    "  \"origin_core_hash\" text,\n"
    "  \"origin_profile_hash\" text,\n"
    "  \"destination_core_hash\" text NOT NULL,\n"
    "  \"destination_profile_hash\" text,\n"
    "  \"operations\" jsonb NOT NULL\n"
    ");"
    "CREATE TABLE IF NOT EXISTS \"prisma_contract\".\"contract\" (\n"
    "  \"core_hash\" text NOT NULL PRIMARY KEY,\n"
    "  \"created_at\" timestamptz DEFAULT (now()) NOT NULL,\n"
    "  \"contract_json\" jsonb NOT NULL\n"
    ")";

void prisma8_lock_key(const char *schema, char *out, size_t len)
{
    snprintf(out, len, "prisma_8.contract.marker:%s:%s", schema, P8_SPACE);
}

static int run(PGconn *conn, int sfd, const char *sql, int n, const char *const *params,
               int *rows, struct db_error *err)
{
    PGresult *res = db_exec(conn, sfd, sql, n, params, err);
    if (!res)
        return -1;
    if (rows)
        *rows = atoi(PQcmdTuples(res));
    PQclear(res);
    return 0;
}

int prisma8_try_lock(PGconn *conn, int sfd, const char *key, int *got, struct db_error *err)
{
    const char *params[] = {key};
    PGresult *res = db_exec(conn, sfd, "SELECT pg_catalog.pg_try_advisory_xact_lock("
                                       "pg_catalog.hashtext($1))", 1, params, err);
    if (!res)
        return -1;
    *got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return 0;
}

int prisma8_tables_create(PGconn *conn, int sfd, struct db_error *err)
{
    return run(conn, sfd, create_sql, 0, NULL, NULL, err);
}

PGresult *prisma8_read(PGconn *conn, int sfd, int with_ledger, struct db_error *err)
{
    static const char with[] =
        "SELECT m.core_hash, l.migration_name, l.migration_hash, l.destination_core_hash"
        " FROM (SELECT 1) one"
        " LEFT JOIN \"prisma_contract\".\"marker\" m ON m.space = 'app'"
        " LEFT JOIN \"prisma_contract\".\"ledger\" l ON l.space = 'app' ORDER BY l.id";
    static const char without[] =
        "SELECT m.core_hash, NULL, NULL, NULL FROM (SELECT 1) one"
        " LEFT JOIN \"prisma_contract\".\"marker\" m ON m.space = 'app'";
    return db_exec(conn, sfd, with_ledger ? with : without, 0, NULL, err);
}

int prisma8_marker_write(PGconn *conn, int sfd, const char *from, const char *to,
                         const char *profile_hash, const char *invariants, int *moved,
                         struct db_error *err)
{
    static const char insert_sql[] =
        "INSERT INTO \"prisma_contract\".\"marker\" (\"space\", \"core_hash\", \"profile_hash\","
        " \"contract_json\", \"canonical_version\", \"updated_at\", \"app_tag\", \"meta\","
        " \"invariants\") VALUES ('app', $1, $2, NULL, NULL, now(), NULL, '{}'::jsonb, $3::text[])"
        " ON CONFLICT (\"space\") DO UPDATE SET \"core_hash\" = excluded.\"core_hash\","
        " \"profile_hash\" = excluded.\"profile_hash\", \"contract_json\" = excluded.\"contract_json\","
        " \"canonical_version\" = excluded.\"canonical_version\", \"updated_at\" = now(),"
        " \"app_tag\" = excluded.\"app_tag\", \"meta\" = excluded.\"meta\","
        " \"invariants\" = excluded.\"invariants\"";
    /* Prisma merges the invariants: sorted, each once. */
    static const char update_sql[] =
        "UPDATE \"prisma_contract\".\"marker\" SET \"core_hash\" = $1, \"profile_hash\" = $2,"
        " \"updated_at\" = now(), \"invariants\" = ARRAY(SELECT d.i FROM (SELECT DISTINCT i"
        " FROM pg_catalog.unnest(\"invariants\" || $3::text[]) i) d ORDER BY d.i COLLATE \"C\")"
        " WHERE \"space\" = 'app' AND \"core_hash\" = $4";
    const char *params[] = {to, profile_hash, invariants, from};
    *moved = 1;
    return run(conn, sfd, from ? update_sql : insert_sql, from ? 4 : 3, params,
               from ? moved : NULL, err);
}

int prisma8_ledger_write(PGconn *conn, int sfd, const char *name, const char *hash,
                         const char *from, const char *to, const char *contract_json,
                         const char *operations, struct db_error *err)
{
    const char *contract[] = {to, contract_json};
    const char *row[] = {name, hash, from, to, operations};
    if (contract_json &&
        run(conn, sfd, "INSERT INTO \"prisma_contract\".\"contract\" (\"core_hash\","
                       " \"contract_json\") VALUES ($1, $2::jsonb) ON CONFLICT (\"core_hash\")"
                       " DO NOTHING", 2, contract, NULL, err) != 0)
        return -1;
    return run(conn, sfd, "INSERT INTO \"prisma_contract\".\"ledger\" (\"space\","
                          " \"migration_name\", \"migration_hash\", \"origin_core_hash\","
                          " \"destination_core_hash\", \"operations\")"
                          " VALUES ('app', $1, $2, $3, $4, $5::jsonb)", 5, row, NULL, err);
}
