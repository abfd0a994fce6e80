/* The large reset, one explicit state machine (DESIGN.md, "The reset,
 * precisely"). One transaction cannot drop or create more objects than the
 * server's shared lock table holds (about 2,000 Prisma tables by default), so
 * each schema goes through, one row per schema in bandage.resets_in_progress:
 *
 *   moved     the live schema renamed aside (bandage_aside_N), an empty one
 *             created under the real name with the same owner, ACL, comment,
 *             default privileges and extensions; the row holds both OIDs
 *   building  the schema file applied in batches, each its own transaction
 *   built     the deploy recorded: from here the deploy has succeeded
 *   dropping  the old schema emptied in batches
 *   (done)    old schema dropped and row deleted in one transaction
 *
 * Each transition commits with the work it records. Every step first checks
 * that the catalog still matches the rows (both OIDs, both names): after a
 * manual repair, a restored backup or a dropped schema it touches nothing and
 * says how to clear the row. A failure before `built` undoes: the half-built
 * schema is emptied in batches and the old one renamed back, data and OIDs as
 * they were. */
#ifndef BANDAGE_REBUILD_H
#define BANDAGE_REBUILD_H

#include "config.h"
#include "deploys.h"
#include "schemafile.h"
#include "session.h"

/* The server's shared lock table, in locks (max_locks_per_transaction x
 * (max_connections + max_prepared_transactions)). */
int rebuild_lock_budget(struct session *s, long *budget);

/* Whether a reset of cfg->schemas with n_stmts statements needs batches. */
int rebuild_needed(struct session *s, const struct config *cfg, size_t n_stmts, long budget,
                   int *batched);

/* Extensions of --schemas that cannot change schema (relocatable = false:
 * PostGIS, xml2): a batched reset moves its schemas aside, which they cannot
 * follow, and dropping them would take the old schema's columns of their
 * types, which an interrupted reset puts back. Refused before anything runs
 * (exit 65 naming them). */
int rebuild_check_extensions(struct session *s, const struct config *cfg);

/* Statements of the file that act outside --schemas: a batched reset cannot
 * undo them (they commit batch by batch), so it refuses them before starting
 * (exit 65 naming the line). */
int rebuild_check_file(struct session *s, const struct config *cfg,
                       const struct schema_file *file);

/* Runs the large reset. 0 once `built` is committed; the old schemas are then
 * dropped, or with defer_drops left for rebuild_drop_old() beside the app
 * (report->old_schemas_pending); a failed drop is left for the next start,
 * with a warning. Else the exit code, the old schemas restored (or left for
 * the next start to restore, with an error). */
int rebuild_run(struct session *s, const struct config *cfg, const struct schema_file *file,
                const struct deploy_start *start, long budget, int defer_drops);

/* Beside the app: releases the reset lock, takes the drop lock and drops the
 * old schemas of every built row. */
int rebuild_drop_old(struct session *s, long budget);

/* The kept schemas past --keep-previous (bandage.kept_schemas, kept.c) that
 * the catalog still proves become rows of bandage.resets_in_progress, built,
 * to be dropped as a large reset's old schemas are (rebuild_drop_queued, or
 * beside the app); in the open transaction of the reset or restore. */
int rebuild_queue_kept_drops(struct session *s, const struct config *cfg);

/* After a reset committed: drops what is queued (or, defer_drops, leaves it
 * to the process beside the app), as rebuild_recover does but silently. */
int rebuild_drop_queued(struct session *s, long budget, int defer_drops);

/* Settles what an interrupted large reset left, under the advisory lock:
 * undoes a move not yet built, finishes dropping a built one. Checks every
 * row against the catalog first: exit 65 with nothing touched on a mismatch.
 * A drop that fails is left for later with a warning (the app may start);
 * with defer_drops the drops are left for rebuild_drop_old(). */
int rebuild_recover(struct session *s, long budget, int defer_drops);

#endif
