#include "preflight.h"

#include <string.h>

#include "exitcodes.h"
#include "log.h"

int preflight_writable(struct session *s)
{
    int rc;
    PGresult *res = session_query(s, "SELECT pg_is_in_recovery(),"
                                     " current_setting('transaction_read_only') = 'on'",
                                  0, NULL, "checking that the database is writable", &rc);
    if (!res)
        return rc;
    int standby = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    int read_only = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    PQclear(res);
    if (!standby && !read_only)
        return 0;
    log_error("refusing to reset: the database is %s; point DATABASE_URL (or DIRECT_URL) at the "
              "primary", standby ? "a hot standby (in recovery)" : "read-only "
              "(default_transaction_read_only)");
    report_add_error(s->report, "reset", "read-only", "the database is %s",
                     standby ? "a hot standby" : "read-only");
    return EXIT_REFUSED;
}

int preflight_schemas_owned(struct session *s, const struct config *cfg)
{
    const char *params[] = {cfg->schemas};
    int rc;
    /* pg_has_role(owner, 'USAGE'): the owner's privileges, a superuser's included. */
    PGresult *res = session_query(
        s, "SELECT pg_catalog.string_agg(pg_catalog.quote_ident(n.nspname), ', '),"
           " pg_catalog.string_agg(DISTINCT pg_catalog.quote_ident("
           "   pg_catalog.pg_get_userbyid(n.nspowner)), ', '), pg_catalog.quote_ident(current_user)"
           " FROM pg_catalog.pg_namespace n"
           " WHERE n.nspname = ANY (pg_catalog.string_to_array($1, ','))"
           " AND NOT pg_catalog.pg_has_role(n.nspowner, 'USAGE')",
        1, params, "checking who owns the schemas", &rc);
    if (!res)
        return rc;
    rc = 0;
    if (!PQgetisnull(res, 0, 0)) {
        const char *schemas = PQgetvalue(res, 0, 0), *owners = PQgetvalue(res, 0, 1),
                   *role = PQgetvalue(res, 0, 2);
        log_error("refusing to reset: schema(s) %s belong to %s, and role %s may not drop them "
                  "(on PostgreSQL 14 and older, schema public belongs to the superuser that "
                  "created the cluster); as a superuser, run ALTER SCHEMA ... OWNER TO %s once "
                  "for each, or connect as their owner", schemas, owners, role, role);
        report_add_error(s->report, "reset", "privileges", "schema(s) %s belong to %s", schemas,
                         owners);
        rc = EXIT_REFUSED;
    }
    PQclear(res);
    return rc;
}

int preflight_schemas_exist(struct session *s, const struct config *cfg)
{
    const char *params[] = {cfg->schemas};
    int rc;
    /* A first deploy: no user schema but an empty public. */
    PGresult *res = session_query(
        s, "SELECT (SELECT string_agg(quote_ident(w), ', ') FROM unnest(string_to_array($1, ','))"
           "        w WHERE NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = w)),"
           "       NOT EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname NOT IN"
           "                   ('public', 'bandage', 'information_schema')"
           "                   AND n.nspname NOT LIKE 'pg\\_%')"
           "   AND NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n"
           "                   ON n.oid = c.relnamespace WHERE n.nspname = 'public')",
        1, params, "checking the schemas exist", &rc);
    if (!res)
        return rc;
    const char *missing = PQgetisnull(res, 0, 0) ? NULL : PQgetvalue(res, 0, 0);
    int fresh = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    rc = 0;
    if (missing && !cfg->create_schemas && !fresh) {
        log_error("--schemas names %s, which this database does not have (schema names are "
                  "case-sensitive); fix the name, or set --create-schemas "
                  "(BANDAGE_CREATE_SCHEMAS=true) to create it", missing);
        report_add_error(s->report, "config", "schemas", "no such schema: %s", missing);
        rc = EXIT_USAGE;
    } else if (missing) {
        log_info("creating schema(s) %s", missing);
    }
    PQclear(res);
    return rc;
}

/* What `DROP SCHEMA ... CASCADE` of the targets would take that does not live
 * in them, derived from pg_depend as a whole rather than from a list of
 * catalogs: `dropped` walks every dependency down from the schemas (and up
 * from an internal or extension member to its owner, which goes with it);
 * relocatable extensions are left out with their members, since the reset
 * moves them out of the way and back. An object reached through an internal
 * or extension dependency, or placed in a target by its own namespace
 * dependency, is the schemas' own; any other is placed by its namespace
 * (pg_identify_object, with the commonest catalogs read directly: 100,000
 * objects at 10,000 tables), or, having none (a trigger, a default, a
 * rule), by the objects it is part of. What is not proven inside is shown. */
static const char dependents_sql[] =
    "WITH RECURSIVE"
    " t AS (SELECT oid, nspname FROM pg_catalog.pg_namespace"
    "       WHERE nspname = ANY (pg_catalog.string_to_array($1, ','))),"
    " kept AS (SELECT e.oid FROM pg_catalog.pg_extension e"
    "          WHERE e.extnamespace IN (SELECT oid FROM t) AND e.extrelocatable),"
    " dropped (c, o, sub, owned) AS ("
    "  SELECT 'pg_catalog.pg_namespace'::pg_catalog.regclass, oid, 0, true FROM t"
    "  UNION"
    "  SELECT e.* FROM dropped x CROSS JOIN LATERAL ("
    "   SELECT d.classid, d.objid, d.objsubid, d.deptype IN ('i', 'e')"
    "          OR (x.c = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND d.deptype = 'n')"
    "     FROM pg_catalog.pg_depend d"
    "    WHERE d.refclassid = x.c AND d.refobjid = x.o AND (x.sub = 0 OR d.refobjsubid = x.sub)"
    "   UNION ALL"
    "   SELECT d.refclassid, d.refobjid, d.refobjsubid, false FROM pg_catalog.pg_depend d"
    "    WHERE d.classid = x.c AND d.objid = x.o AND d.deptype IN ('i', 'e')"
    "      AND (x.sub = 0 OR d.objsubid = x.sub)) e (c, o, sub, owned)"
    "  WHERE NOT EXISTS (SELECT 1 FROM kept k"
    "   WHERE e.c = 'pg_catalog.pg_extension'::pg_catalog.regclass AND e.o = k.oid"
    "      OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend m WHERE m.classid = e.c"
    "                 AND m.objid = e.o AND m.deptype = 'e' AND m.refobjid = k.oid))),"
    " objects AS (SELECT c, o, sub FROM dropped GROUP BY c, o, sub"
    "             HAVING NOT pg_catalog.bool_or(owned)),"
    " placed AS (SELECT x.*, coalesce(CASE x.c"
    "   WHEN 'pg_catalog.pg_class'::pg_catalog.regclass THEN"
    "    (SELECT relnamespace FROM pg_catalog.pg_class WHERE oid = x.o)"
    "   WHEN 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN"
    "    (SELECT connamespace FROM pg_catalog.pg_constraint WHERE oid = x.o)"
    "   WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN (SELECT c.relnamespace"
    "     FROM pg_catalog.pg_attrdef a JOIN pg_catalog.pg_class c ON c.oid = a.adrelid"
    "     WHERE a.oid = x.o) END"
    "    IN (SELECT oid FROM t UNION ALL SELECT 'pg_toast'::pg_catalog.regnamespace), CASE"
    "   WHEN i.schema IS NOT NULL THEN i.schema IN (SELECT nspname FROM t UNION ALL"
    "    SELECT 'pg_toast')"
    "   WHEN x.c = 'pg_catalog.pg_extension'::pg_catalog.regclass THEN"
    "    (SELECT extnamespace IN (SELECT oid FROM t) FROM pg_catalog.pg_extension"
    "     WHERE oid = x.o)"
    "   ELSE (SELECT pg_catalog.bool_and(coalesce(CASE"
    "     WHEN d.refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass"
    "     THEN d.refobjid IN (SELECT oid FROM t)"
    "     ELSE (pg_catalog.pg_identify_object(d.refclassid, d.refobjid, 0)).schema"
    "          IN (SELECT nspname FROM t) END, false))"
    "    FROM pg_catalog.pg_depend d WHERE d.classid = x.c AND d.objid = x.o"
    "     AND d.deptype IN ('a', 'i')) END) AS inside"
    "  FROM objects x LEFT JOIN LATERAL pg_catalog.pg_identify_object(x.c, x.o, x.sub) i"
    "   ON x.c NOT IN ('pg_catalog.pg_class'::pg_catalog.regclass,"
    "    'pg_catalog.pg_constraint'::pg_catalog.regclass,"
    "    'pg_catalog.pg_attrdef'::pg_catalog.regclass))"
    /* A view's rule is shown as the view. */
    " SELECT DISTINCT CASE WHEN c = 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
    "   THEN pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass,"
    "        (SELECT ev_class FROM pg_catalog.pg_rewrite WHERE oid = o), 0)"
    "   ELSE pg_catalog.pg_describe_object(c, o, sub) END FROM placed"
    "  WHERE inside IS NOT true ORDER BY 1";

static PGresult *list_dependents(struct session *s, const char *schemas, int *rc)
{
    const char *params[] = {schemas};
    return session_query(s, dependents_sql, 1, params,
                         "listing objects that depend on the schemas", rc);
}

int preflight_dependents(struct session *s, const struct config *cfg, int again)
{
    int rc;
    PGresult *res = list_dependents(s, cfg->schemas, &rc);
    if (!res)
        return rc;
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        if (cfg->drop_dependents && again)
            log_debug("dropping %s, outside --schemas", PQgetvalue(res, i, 0));
        else if (cfg->drop_dependents)
            log_info("dropping %s, outside --schemas: it depends on what the reset drops",
                     PQgetvalue(res, i, 0));
        else
            log_error("%s, outside --schemas, depends on what the reset drops",
                      PQgetvalue(res, i, 0));
    }
    if (n > 0 && cfg->drop_dependents) {
        s->report->dependents_dropped = n;
        snprintf(s->report->first_dependent, sizeof s->report->first_dependent, "%s",
                 PQgetvalue(res, 0, 0));
    }
    if (n > 0 && !cfg->drop_dependents) {
        log_error("refusing to reset: %d object(s) outside --schemas would be dropped with it%s; "
                  "add their schemas to --schemas, remove the dependency, or set "
                  "--drop-dependents (BANDAGE_DROP_DEPENDENTS=true)", n,
                  again ? " (made since the first check, while the reset prepared)" : "");
        report_add_error(s->report, "reset", "dependents",
                         "%d object(s) outside --schemas depend on it, first: %s", n,
                         PQgetvalue(res, 0, 0));
        rc = EXIT_REFUSED;
    }
    PQclear(res);
    return rc;
}

int preflight_count_dependents(struct session *s, const char *schema, int *count)
{
    int rc;
    PGresult *res = list_dependents(s, schema, &rc);
    if (!res)
        return rc;
    *count = PQntuples(res);
    for (int i = 0; i < *count; i++)
        log_warn("%s, outside schema %s, depends on it", PQgetvalue(res, i, 0), schema);
    PQclear(res);
    return 0;
}
