/* Before bandage takes a session lock: is the server session its own, or
 * lent by a transaction pooler? See pooler.c. */
#ifndef BANDAGE_POOLER_H
#define BANDAGE_POOLER_H

#include "config.h"
#include "session.h"

/* 0 for a direct connection (or a plain TCP proxy) and for a session
 * pooler; EXIT_USAGE, logged with the fix (DIRECT_URL), for a transaction or
 * statement pooler, however quiet its pool; another exit code if the check
 * itself failed. Opens up to three short-lived second connections, and only
 * when a pooler answers the login. */
int pooler_check(struct session *s, const struct config *cfg);

#endif
