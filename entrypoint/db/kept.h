/* Kept schemas: the undo of a reset (DESIGN.md, "Undo a reset"). A reset
 * with --keep-previous renames the schemas it replaces aside, as they are
 * (tables, data, sequences, grants: nothing is copied), to bandage_kept_N,
 * and records each in bandage.kept_schemas with both the name and the OID it
 * had, so that nothing is later dropped or swapped back that the catalog does
 * not prove to be that very schema. --restore-previous swaps the newest ones
 * back under their names (the current ones are kept in turn). */
#ifndef BANDAGE_KEPT_H
#define BANDAGE_KEPT_H

#include <libpq-fe.h>

#include "config.h"
#include "report/report.h"
#include "session.h"

/* One transaction path: moves schema `name` aside as a kept schema and
 * gives `name` back as a new, empty schema with the same owner, ACL,
 * comment, default privileges and (relocatable) extensions; in the open
 * transaction. A schema that does not exist yet (--create-schemas) is only
 * created. */
int kept_move_aside(struct session *s, const struct config *cfg, const char *name);

/* The extensions living in `schema` that cannot change schema (relocatable
 * = false), comma-separated into names ("" when none). */
int kept_fixed_extensions(struct session *s, const char *schema, char *names, size_t len);

/* Exit 65, one line naming them and the way out, when `schema` holds
 * extensions that cannot change schema and `step` ("--restore-previous", "large
 * reset") would move it aside: `why` says what that would do to them. The
 * report gets a `phase` "extension" error. 0 when it holds none. */
int kept_refuse_fixed_extensions(struct session *s, const char *schema, const char *step,
                                 const char *phase, const char *why);

/* Whether schema `schema` (the live `original`, or its copy moved aside)
 * may be kept: not when objects elsewhere depend on it (allowed by
 * --drop-dependents: kept, they would go on reading the old copy), nor when
 * it holds an extension that cannot change schema. Says why when not. */
int kept_may_keep(struct session *s, const char *schema, const char *original, int *may);

/* Large path: renames the old schema `aside` (moved aside by rebuild.c) to a
 * kept name and records it as kept from `original`; in the open transaction
 * that marks the reset built. */
int kept_adopt(struct session *s, const struct config *cfg, const char *aside,
               const char *original);

/* The kept schemas past the newest `keep` of each original name that the
 * catalog still proves (columns: kept, original, deployment_id, kept_oid),
 * oldest first, to be dropped; rows whose schema no longer matches are
 * forgotten with a warning (nothing of theirs is dropped). NULL with *rc set
 * on failure; an empty result when there is no table. In the open
 * transaction. */
PGresult *kept_excess(struct session *s, long keep, int *rc);

/* Removes kept schema `kept`'s row (its schema is dropped, or restored). */
int kept_forget(struct session *s, const char *kept);

/* --restore-previous, in the open transaction, with the reset lock held:
 * the newest kept schemas (those kept by one reset or restore) are checked
 * against the catalog, the other sessions ended, their tables locked (at
 * most --lock-wait), then each swapped with the live schema of its name,
 * which is kept in its turn; extensions follow the live name. *restored:
 * how many. 0, 65 when the catalog does not match (nothing done) or nothing
 * is kept, 69 when the locks could not be had. */
int kept_restore(struct session *s, const struct config *cfg, const char *lock_key,
                 int *restored);

/* The disk that schemas (comma-separated, as --schemas) take: what keeping
 * them aside costs. */
int kept_schemas_bytes(struct session *s, const char *schemas, long long *bytes);

/* "512 bytes", "340 kB", "1.2 MB": for log lines and --plan. */
void kept_human_bytes(long long bytes, char *out, size_t len);

/* What is kept now, for --plan and the report: *count schemas, *bytes on
 * disk. 0 when there is no table. */
int kept_totals(struct session *s, int *count, long long *bytes);

/* --history: the recent deploys (bandage.deploys, _prisma_migrations in
 * `migrations_schema`) and the kept schemas, printed to stdout as text, or
 * one JSON object per line (json). Reads only. */
int kept_print_history(struct session *s, const char *migrations_schema, int json);

/* --history on a connection of its own (bandage's session settings first). */
int kept_history(PGconn *conn, int sfd, const struct config *cfg, struct deploy_report *report);

#endif
