/* Which database bandage is connected to: its name, and the system
 * identifier of the cluster that holds it. The name alone does not tell
 * databases apart on platforms that give every database the same one
 * (every Railway database is "railway", staging's and production's). */
#ifndef BANDAGE_IDENTITY_H
#define BANDAGE_IDENTITY_H

#include <stddef.h>

#include "session.h"

struct db_identity {
    char name[64];      /* current_database() */
    char system_id[24]; /* pg_control_system()'s system_identifier; "" when this role may
                         * not read it */
};

/* Reads both in one query; 0, or the exit code (logged and reported). */
int identity_read(struct session *s, struct db_identity *out);

/* --confirm-database's value: NAME, or NAME:IDENTIFIER (the identifier all
 * digits, after the last ':'). name and system_id point into buf. */
struct confirmation {
    char buf[128];
    const char *name;
    const char *system_id; /* NULL when not given */
};
void identity_parse_confirmation(const char *value, struct confirmation *out);

/* Does the confirmation name this very database? 1 or 0; why (when 0) says
 * what differs: the name, the identifier, or an identifier this role
 * cannot read. */
int identity_confirms(const struct confirmation *c, const struct db_identity *id, char *why,
                      size_t len);

/* Is this a name that many databases share (Railway's "railway",
 * "postgres", ...)? Confirming by it alone then tells little. */
int identity_name_is_shared(const char *name);

#endif
