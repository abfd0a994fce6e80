/* The checks a reset passes before anything irreversible (before sessions are
 * terminated, before a hook runs, before anything is dropped): each refuses
 * with what it found and how to proceed. */
#ifndef BANDAGE_PREFLIGHT_H
#define BANDAGE_PREFLIGHT_H

#include "config.h"
#include "session.h"

/* A hot standby or a read-only database cannot be reset: exit 77. */
int preflight_writable(struct session *s);

/* Every schema of --schemas exists, unless --create-schemas or the database
 * holds nothing yet (a first deploy): else exit 64 naming the missing one (a
 * typo, or `PUBLIC` for `public`, would otherwise build a new schema beside
 * the old tables and report success). */
int preflight_schemas_exist(struct session *s, const struct config *cfg);

/* Objects outside --schemas that depend on something inside (a view in
 * `reporting`, a foreign key from `audit.log`) would be dropped by CASCADE:
 * refused (exit 77) unless --drop-dependents, then each is logged. */
int preflight_dependents(struct session *s, const struct config *cfg);

#endif
