/* bandage.deploys: one row per reset, in bandage's own schema (never reset);
 * `--reset once` skips a deployment id that has a row. */
#ifndef BANDAGE_DEPLOYS_H
#define BANDAGE_DEPLOYS_H

#include "config.h"
#include "session.h"

struct migration_dir;

/* When this reset started, for its row, and what it was built from. */
struct deploy_start {
    char at[40];   /* RFC 3339 */
    long ms;       /* monotonic */
    const struct migration_dir *migrations; /* rebuilt from migrations, or NULL */
};

/* With --reset once: *done = 1 if this deployment id has a row. */
int deploys_already_reset(struct session *s, const struct config *cfg, int *done);

/* Creates bandage.deploys if needed and records this reset, in the open
 * transaction. */
int deploys_record(struct session *s, const struct config *cfg, const struct deploy_start *start);

/* The same, with `mode` for bandage.deploys.mode ("restore"). */
int deploys_record_as(struct session *s, const struct config *cfg,
                      const struct deploy_start *start, const char *mode);

/* --restore-previous: *done = 1 if this deployment id's latest row is a
 * restore (a restart after it must not swap the schemas back). */
int deploys_already_restored(struct session *s, const struct config *cfg, int *done);

/* What the reset's own transaction records with the new schema: a rebuild
 * from migrations writes _prisma_migrations with every migration applied
 * (the database is then baselined for `prisma migrate deploy`), or for a
 * Prisma 8 directory prisma_contract at the newest contract (for `prisma db
 * migrate`), and the deploy's row, unless a --schema-command must succeed
 * first. */
int deploys_record_reset(struct session *s, const struct config *cfg,
                         const struct deploy_start *start);

#endif
