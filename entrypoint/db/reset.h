/* The reset: lock, interlock, once-per-deploy marker, hooks, and the drop,
 * recreate and apply, all-or-nothing. See DESIGN.md "The reset, precisely". */
#ifndef BANDAGE_RESET_H
#define BANDAGE_RESET_H

#include <libpq-fe.h>

#include "config.h"
#include "report/report.h"

/* pg_advisory_lock key that serialises every bandage on a database:
 * the bytes of "bandage!" as a big-endian 64-bit integer. */
#define RESET_LOCK_KEY "7089068665867822369"

/* Held while the old schemas of a large reset are dropped, which may go on
 * beside the app after the reset lock is released: RESET_LOCK_KEY + 1. */
#define RESET_DROP_LOCK_KEY "7089068665867822370"

struct migration_dir;

/* reset_database()'s answer when the session was ended before it took the
 * reset lock: another start's reset terminates the sessions it finds, and a
 * peer that has connected but not yet queued on the lock is among them.
 * Nothing was done: connect again and start over. */
#define RESET_RECONNECT (-1)

/* Resets the database on conn when cfg asks for it and the checks pass,
 * rebuilding from `migrations` (loaded --migrations, or NULL) when given.
 * With --plan, prints what it would do instead. Returns the exit code (0
 * also when the reset was skipped: see report). */
int reset_database(PGconn *conn, int sfd, const struct config *cfg,
                   const struct migration_dir *migrations, struct deploy_report *report);

/* In a process of its own beside the app, on the reset's connection: drops
 * the old schemas a large reset left built (report->old_schemas_pending),
 * under RESET_DROP_LOCK_KEY instead of the reset lock. A stop signal ends
 * it; the next start resumes. Returns the exit code of that process. */
int reset_drop_old_schemas(PGconn *conn, int sfd, struct deploy_report *report);

#endif
