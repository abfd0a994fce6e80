#include "deploys.h"

#include <stdio.h>

#include "clock.h"
#include "exitcodes.h"
#include "migrate.h"
#include "prisma8_apply.h"

int deploys_already_reset(struct session *s, const struct config *cfg, int *done)
{
    int exists = 0, rc;
    *done = 0;
    if (cfg->reset != RESET_ONCE)
        return 0;
    rc = session_bool(s, "SELECT to_regclass('bandage.deploys') IS NOT NULL", NULL,
                      "reading bandage.deploys", &exists);
    if (rc == 0 && exists)
        rc = session_bool(s, "SELECT EXISTS (SELECT 1 FROM bandage.deploys"
                             " WHERE deployment_id = $1)", cfg->deployment_id,
                          "reading bandage.deploys", done);
    return rc == EXIT_SCHEMA ? EXIT_INTERNAL : rc;
}

int deploys_record(struct session *s, const struct config *cfg, const struct deploy_start *start)
{
    return deploys_record_as(s, cfg, start, config_reset_mode_name(cfg->reset));
}

int deploys_already_restored(struct session *s, const struct config *cfg, int *done)
{
    int exists = 0, rc;
    *done = 0;
    rc = session_bool(s, "SELECT to_regclass('bandage.deploys') IS NOT NULL", NULL,
                      "reading bandage.deploys", &exists);
    /* The latest row of this id: a reset after the restore (another
     * deployment id's, or --reset once's own) may be undone by this one. */
    if (rc == 0 && exists)
        rc = session_bool(s, "SELECT coalesce((SELECT mode = 'restore' FROM bandage.deploys"
                             " WHERE deployment_id = $1 ORDER BY id DESC LIMIT 1), false)",
                          cfg->deployment_id, "reading bandage.deploys", done);
    return rc == EXIT_SCHEMA ? EXIT_INTERNAL : rc;
}

int deploys_record_as(struct session *s, const struct config *cfg,
                      const struct deploy_start *start, const char *mode)
{
    static const char create_sql[] =
        "CREATE SCHEMA IF NOT EXISTS bandage;"
        "CREATE TABLE IF NOT EXISTS bandage.deploys ("
        " id bigserial PRIMARY KEY, deployment_id text, mode text NOT NULL,"
        " started_at timestamptz NOT NULL, finished_at timestamptz NOT NULL DEFAULT now(),"
        " duration_ms bigint NOT NULL, schemas text[] NOT NULL, bandage_version text NOT NULL)";
    char duration[32];
    int rc;
    snprintf(duration, sizeof duration, "%ld", monotonic_ms() - start->ms);
    const char *params[] = {cfg->deployment_id, mode, start->at,
                            duration, cfg->schemas, bandage_version};
    if ((rc = session_run(s, create_sql, "creating bandage.deploys", EXIT_SCHEMA)) != 0)
        return rc;
    PGresult *res = session_query(s, "INSERT INTO bandage.deploys (deployment_id, mode,"
                                     " started_at, duration_ms, schemas, bandage_version)"
                                     " VALUES ($1, $2, $3, $4, string_to_array($5, ','), $6)",
                                  6, params, "recording the deploy", &rc);
    PQclear(res);
    return rc;
}

int deploys_record_reset(struct session *s, const struct config *cfg,
                         const struct deploy_start *start)
{
    if (start->migrations && start->migrations->prisma8) {
        struct db_error err;
        if (prisma8_record_all_applied(s->conn, s->sfd, start->migrations->prisma8, &err) != 0)
            return session_failed(s, "recording the migrations in prisma_contract", &err,
                                  EXIT_SCHEMA);
    } else if (start->migrations) {
        struct db_error err;
        const char *schema = cfg->url_schema ? cfg->url_schema : "public";
        if (migrations_record_all_applied(s->conn, s->sfd, schema, start->migrations, &err) != 0)
            return session_failed(s, "recording the migrations in _prisma_migrations", &err,
                                  EXIT_SCHEMA);
    }
    /* With a --schema-command the deploy is recorded only once it succeeded,
     * so that a failed command is retried by the next start. */
    return cfg->schema_command ? 0 : deploys_record(s, cfg, start);
}
