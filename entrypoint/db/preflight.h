/* The checks a reset passes before anything irreversible (before sessions are
 * terminated, before a hook runs, before anything is dropped): each refuses
 * with what it found and how to proceed. */
#ifndef BANDAGE_PREFLIGHT_H
#define BANDAGE_PREFLIGHT_H

#include "config.h"
#include "session.h"

/* A hot standby or a read-only database cannot be reset: exit 77. */
int preflight_writable(struct session *s);

/* bandage's role may drop every existing schema of --schemas (it owns it,
 * or has its owner's privileges): else exit 77 naming the schemas, their
 * owners and the ALTER SCHEMA that fixes it, before anything is done. On
 * PostgreSQL 14 and older public belongs to the bootstrap superuser, so a
 * database owner cannot drop it. */
int preflight_schemas_owned(struct session *s, const struct config *cfg);

/* Every schema of --schemas exists, unless --create-schemas or the database
 * holds nothing yet (a first deploy): else exit 64 naming the missing one (a
 * typo, or `PUBLIC` for `public`, would otherwise build a new schema beside
 * the old tables and report success). */
int preflight_schemas_exist(struct session *s, const struct config *cfg);

/* Objects outside --schemas that depend on something the reset drops (a
 * view in `reporting`, a foreign key from `audit.log`, a column with a
 * collation of public, an index using an operator class of an extension
 * that cannot be moved) would be dropped by CASCADE: refused (exit 77)
 * unless --drop-dependents, then each is logged. `again`: the check made
 * once the reset holds its locks, which catches what a --before-reset hook
 * or the app made since the first. */
int preflight_dependents(struct session *s, const struct config *cfg, int again);

/* The same check for one schema about to be dropped (an old schema moved
 * aside): 0 with *count set, each dependent logged as a warning. */
int preflight_count_dependents(struct session *s, const char *schema, int *count);

#endif
