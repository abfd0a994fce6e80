/* Keeping the app out while the reset runs: other sessions of the database are
 * terminated (again before each step of a large reset: an old replica that
 * reconnects must not write into a half-built schema), and the tables that a
 * one-transaction reset drops are locked up front, never waited for while
 * holding the others. */
#ifndef BANDAGE_EXCLUSIVE_H
#define BANDAGE_EXCLUSIVE_H

#include "session.h"

/* Terminates every other client session of this database that bandage may
 * signal, except peer bandages, which are recognised by the advisory lock
 * `lock_key` they wait on (not by a name anyone can set). quiet: log at debug
 * (repeated terminations). */
int exclusive_terminate_others(struct session *s, const char *lock_key, int quiet);

/* In the open transaction: ACCESS EXCLUSIVE on every table and view of
 * `schemas` (comma list), taken all at once with NOWAIT and retried (other
 * sessions terminated again each time) until wait_ms has passed, so the app is
 * never blocked behind a lock that bandage waits for. 0, 69 when the locks
 * could not be had in time (naming who holds one), or another exit code. */
int exclusive_lock_tables(struct session *s, const char *schemas, const char *lock_key,
                          long wait_ms);

#endif
