#include "prisma_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

char *prisma_table_name(PGconn *conn, const char *schema)
{
    char *quoted = PQescapeIdentifier(conn, schema, strlen(schema));
    char *name = quoted ? malloc(strlen(quoted) + sizeof ".\"_prisma_migrations\"") : NULL;
    if (name)
        sprintf(name, "%s.\"_prisma_migrations\"", quoted);
    PQfreemem(quoted);
    return name;
}

/* Column for column what Prisma's PostgreSQL connector creates. */
int prisma_table_create(PGconn *conn, int sfd, const char *schema, const char *table,
                        struct db_error *err)
{
    static const char columns[] =
        " (\"id\" VARCHAR(36) PRIMARY KEY NOT NULL,"
        " \"checksum\" VARCHAR(64) NOT NULL,"
        " \"finished_at\" TIMESTAMPTZ,"
        " \"migration_name\" VARCHAR(255) NOT NULL,"
        " \"logs\" TEXT,"
        " \"rolled_back_at\" TIMESTAMPTZ,"
        " \"started_at\" TIMESTAMPTZ NOT NULL DEFAULT now(),"
        " \"applied_steps_count\" INTEGER NOT NULL DEFAULT 0)";
    char *ns = PQescapeIdentifier(conn, schema, strlen(schema));
    char *sql = ns ? malloc(strlen(ns) + strlen(table) + sizeof columns + 96) : NULL;
    int rc = -1;
    if (sql) {
        sprintf(sql, "CREATE SCHEMA IF NOT EXISTS %s; CREATE TABLE IF NOT EXISTS %s%s", ns, table,
                columns);
        rc = db_run(conn, sfd, sql, err);
    } else {
        memset(err, 0, sizeof *err);
        snprintf(err->message, sizeof err->message, "out of memory");
    }
    free(sql);
    PQfreemem(ns);
    return rc;
}

int prisma_uuid_v4(char out[37])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10xx (RFC 4122) */
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        p += sprintf(p, "%02x", b[i]);
    }
    return 0;
}

/* Runs sql (with %s for the table) with params. */
static int run_on_table(PGconn *conn, int sfd, const char *format, const char *table,
                        int nparams, const char *const *params, struct db_error *err)
{
    char *sql = malloc(strlen(format) + strlen(table) + 1);
    if (!sql) {
        memset(err, 0, sizeof *err);
        snprintf(err->message, sizeof err->message, "out of memory");
        return -1;
    }
    sprintf(sql, format, table);
    PGresult *res = db_exec(conn, sfd, sql, nparams, params, err);
    free(sql);
    PQclear(res);
    return res ? 0 : -1;
}

int prisma_record(PGconn *conn, int sfd, const char *table, const char *name,
                  const char *checksum, int finished, char id_out[37], struct db_error *err)
{
    char id[37];
    if (prisma_uuid_v4(id) != 0) {
        memset(err, 0, sizeof *err);
        snprintf(err->message, sizeof err->message, "RAND_bytes failed");
        return -1;
    }
    if (id_out)
        memcpy(id_out, id, sizeof id);
    const char *params[] = {id, checksum, name};
    return run_on_table(conn, sfd,
                        finished ? "INSERT INTO %s (id, checksum, migration_name, started_at,"
                                   " finished_at, applied_steps_count)"
                                   " VALUES ($1, $2, $3, pg_catalog.now(),"
                                   " pg_catalog.clock_timestamp(), 1)"
                                 : "INSERT INTO %s (id, checksum, migration_name, started_at)"
                                   " VALUES ($1, $2, $3, pg_catalog.clock_timestamp())",
                        table, 3, params, err);
}

int prisma_record_finished(PGconn *conn, int sfd, const char *table, const char *id,
                           struct db_error *err)
{
    const char *params[] = {id};
    return run_on_table(conn, sfd,
                        "UPDATE %s SET finished_at = pg_catalog.clock_timestamp(),"
                        " applied_steps_count = applied_steps_count + 1 WHERE id = $1",
                        table, 1, params, err);
}

int prisma_record_logs(PGconn *conn, int sfd, const char *table, const char *id,
                       const char *logs, struct db_error *err)
{
    const char *params[] = {id, logs};
    return run_on_table(conn, sfd, "UPDATE %s SET logs = $2 WHERE id = $1", table, 2, params,
                        err);
}
