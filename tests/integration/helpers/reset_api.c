/* Drives migrate.h's API for the reset ("--reset ... --migrations DIR") the
 * way the reset will: every statement of every migration in one transaction,
 * then _prisma_migrations written with all of them applied, then COMMIT.
 * Linked by test_migrate.py against bandage's own objects.
 *
 *   reset_api CONNINFO DIR SCHEMA   -> exit 0 and "applied N statements",
 *                                      or 1 with the failing migration and line */
#include <stdio.h>
#include <stdlib.h>

#include <libpq-fe.h>

#include "db/migrate.h"

int main(int argc, char **argv)
{
    struct migration_dir dir;
    struct migration_statements list;
    struct db_error err;
    char why[512];
    if (argc != 4)
        return 2;
    PGconn *conn = PQconnectdb(argv[1]);
    if (PQstatus(conn) != CONNECTION_OK || migration_dir_read(argv[2], &dir, why, sizeof why) != 0 ||
        migration_statements_list(&dir, PQserverVersion(conn), &list, why, sizeof why) != 0) {
        fprintf(stderr, "setup: %s %s\n", PQerrorMessage(conn), why);
        return 1;
    }
    int rc = db_run(conn, -1, "BEGIN", &err);
    for (size_t i = 0; rc == 0 && i < list.count; i++) {
        if (list.items[i].outside_transaction)
            continue; /* the reset decides; this driver skips them */
        if ((rc = db_run(conn, -1, list.items[i].text, &err)) != 0)
            fprintf(stderr, "migration %s line %d: %s: %s\n", list.items[i].migration->name,
                    list.items[i].line, err.sqlstate, err.message);
    }
    if (rc == 0 && (rc = migrations_record_all_applied(conn, -1, argv[3], &dir, &err)) != 0)
        fprintf(stderr, "recording: %s: %s\n", err.sqlstate, err.message);
    if (rc == 0 && (rc = db_run(conn, -1, "COMMIT", &err)) != 0)
        fprintf(stderr, "COMMIT: %s\n", err.message);
    if (rc == 0)
        printf("applied %zu statements\n", list.count);
    migration_statements_free(&list);
    migration_dir_free(&dir);
    PQfinish(conn);
    return rc == 0 ? 0 : 1;
}
