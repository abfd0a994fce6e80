/* What reset.c shares with the batched path of reset_batched.c. */
#ifndef BANDAGE_RESET_INTERNAL_H
#define BANDAGE_RESET_INTERNAL_H

#include <stddef.h>

#include <libpq-fe.h>

#include "config.h"
#include "query.h"
#include "report/report.h"
#include "sqlsplit.h"

struct reset_ctx {
    PGconn *conn;
    int sfd;
    const struct config *cfg;
    struct deploy_report *report;
    char *sql;                     /* the schema file, NUL-terminated */
    size_t sql_len;
    struct sql_statement *stmts;
    size_t n_stmts;
    char started_at[40];
    long started_ms;
    long lock_budget;              /* the server's shared lock table, in locks */
};

/* Logs and reports an SQL failure; returns the exit code for it (128+N when
 * a stop signal cancelled the query, 69 when the connection was lost). */
int reset_sql_failed(struct reset_ctx *c, const char *phase, const char *what,
                     const struct db_error *err, int code);

/* 1/0 for a one-value boolean query (param may be NULL), -1 on error. */
int reset_query_bool(struct reset_ctx *c, const char *sql, const char *param,
                     struct db_error *err);

/* The statements that rebuild schema `name` empty, as it is now: owner, ACL,
 * comment, extensions (mode "recreate": CREATE EXTENSION; "move": ALTER
 * EXTENSION SET SCHEMA), default privileges. NULL with *rc set on failure. */
PGresult *reset_restore_statements(struct reset_ctx *c, const char *name, const char *mode,
                                   int *rc);

int reset_terminate_other_sessions(struct reset_ctx *c);

/* Runs statement i of the schema file; on failure reset_statement_failed()
 * logs it with its line and gives the exit code. */
int reset_run_statement(struct reset_ctx *c, size_t i, struct db_error *err);
int reset_statement_failed(struct reset_ctx *c, size_t i, const struct db_error *err);
void reset_count_applied(struct reset_ctx *c, size_t i);

/* Creates bandage.deploys if needed and records this reset (in the open
 * transaction). */
int reset_record_deploy(struct reset_ctx *c);

/* The large-schema path (reset_batched.c). */
int reset_needs_batches(struct reset_ctx *c, int *batched);
int reset_in_batches(struct reset_ctx *c);
int reset_recover_interrupted(struct reset_ctx *c);

#endif
