#include "identity.h"

#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

/* pg_control_system() is executable by every role on a stock server; a
 * provider may revoke it, and then the identifier is unknown, not an error.
 * The privilege is asked first, apart: a CASE around the call would not
 * help, the server checks EXECUTE when it plans the whole query. Qualified:
 * this runs before bandage pins its search_path. */
#define IDENTITY_SQL                                                                            \
    "SELECT pg_catalog.current_database(),"                                                     \
    " pg_catalog.has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')"
#define SYSTEM_ID_SQL "SELECT system_identifier::text FROM pg_catalog.pg_control_system()"

int identity_read(struct session *s, struct db_identity *out)
{
    int rc;
    PGresult *res = session_query(s, IDENTITY_SQL, 0, NULL, "reading the database's identity",
                                  &rc);
    if (!res)
        return rc;
    snprintf(out->name, sizeof out->name, "%s", PQgetvalue(res, 0, 0));
    int may_read = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    PQclear(res);
    out->system_id[0] = '\0';
    if (!may_read)
        return 0;
    res = session_query(s, SYSTEM_ID_SQL, 0, NULL, "reading the system identifier", &rc);
    if (!res)
        return rc;
    snprintf(out->system_id, sizeof out->system_id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

void identity_parse_confirmation(const char *value, struct confirmation *out)
{
    snprintf(out->buf, sizeof out->buf, "%s", value ? value : "");
    out->name = out->buf;
    out->system_id = NULL;
    char *colon = strrchr(out->buf, ':');
    size_t digits = colon ? strspn(colon + 1, "0123456789") : 0;
    if (colon && digits > 0 && digits <= 20 && colon[1 + digits] == '\0') {
        *colon = '\0';
        out->system_id = colon + 1;
    }
}

int identity_confirms(const struct confirmation *c, const struct db_identity *id, char *why,
                      size_t len)
{
    if (strcmp(c->name, id->name) != 0) {
        snprintf(why, len, "it names database '%s'", c->name);
        return 0;
    }
    if (!c->system_id)
        return 1;
    if (!id->system_id[0]) {
        snprintf(why, len, "its system identifier %s cannot be checked: this role may not "
                           "read the server's (EXECUTE on pg_catalog.pg_control_system() was "
                           "revoked); confirm by name alone, or grant it", c->system_id);
        return 0;
    }
    if (strcmp(c->system_id, id->system_id) != 0) {
        snprintf(why, len, "system identifier %s is another server's, whose database has the "
                           "same name", c->system_id);
        return 0;
    }
    return 1;
}

int identity_name_is_shared(const char *name)
{
    /* Railway's, PostgreSQL's own, DigitalOcean's and Aiven's, Neon's. */
    static const char *const shared[] = {"railway", "postgres", "defaultdb", "neondb", NULL};
    for (int i = 0; shared[i]; i++)
        if (strcmp(name, shared[i]) == 0)
            return 1;
    return 0;
}
