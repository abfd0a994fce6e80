/* What kind of statement is this, for running it correctly: transaction
 * control (BEGIN/COMMIT written into a file that bandage runs in its own
 * transaction), and statements PostgreSQL refuses inside a transaction block.
 * Shared by the migrations and (later) the reset's --schema-file. */
#ifndef BANDAGE_SQLCLASS_H
#define BANDAGE_SQLCLASS_H

#include <stddef.h>

enum sql_tx_control {
    SQL_TX_NONE,     /* an ordinary statement */
    SQL_TX_DROPPABLE, /* BEGIN, START TRANSACTION, COMMIT, END: harmless to drop
                         when the caller runs the statements in its own transaction */
    SQL_TX_REFUSED   /* ROLLBACK, ABORT, SAVEPOINT, RELEASE, PREPARE TRANSACTION,
                        COMMIT/ROLLBACK PREPARED: no sensible meaning in a file */
};

/* Classifies statement text[0..len) (as sql_split gives it: starting at its
 * first word). word (at least 16 bytes) receives the first word, upper-cased. */
enum sql_tx_control sql_tx_control(const char *text, size_t len, char *word, size_t wordlen);

/* 1 when the statement only changes rows (INSERT, UPDATE, DELETE, MERGE,
 * COPY): it never changes the schema, so no statement check applies, and a
 * seed's INSERT can be megabytes long. */
int sql_changes_rows_only(const char *text, size_t len);

/* 1 when the statement cannot run inside a transaction block: CREATE/DROP
 * INDEX CONCURRENTLY, REINDEX ... CONCURRENTLY (and REINDEX SCHEMA, DATABASE,
 * SYSTEM), VACUUM, ALTER SYSTEM, CREATE/DROP DATABASE, CREATE/DROP
 * TABLESPACE, ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY, CLUSTER
 * without a table, and ALTER TYPE ... ADD VALUE on servers before 12
 * (server_version as PQserverVersion gives it, e.g. 110005). */
int sql_needs_autocommit(const char *text, size_t len, int server_version);

/* The offset and length of the CONCURRENTLY keyword of a CREATE INDEX, DROP
 * INDEX or REINDEX statement, for callers that may run it without (an empty
 * schema in a transaction nobody else sees); 0 when there is none. */
int sql_concurrently_keyword(const char *text, size_t len, size_t *offset, size_t *length);

#endif
