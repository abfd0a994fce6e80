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

/* Objects whose namespace is not a target but that depend on an object in a
 * target schema. The dependent's namespace comes from its own catalog (a
 * view's rule through its view, a trigger or default through its table);
 * an object of a catalog not listed counts as outside, so it is shown, not
 * dropped silently. */
static const char dependents_sql[] =
    "WITH t AS (SELECT oid FROM pg_namespace WHERE nspname = ANY (string_to_array($1, ','))),"
    " inside AS ("
    "  SELECT 'pg_class'::regclass AS cls, oid FROM pg_class WHERE relnamespace IN (SELECT oid FROM t)"
    "  UNION ALL SELECT 'pg_type'::regclass, oid FROM pg_type WHERE typnamespace IN (SELECT oid FROM t)"
    "  UNION ALL SELECT 'pg_proc'::regclass, oid FROM pg_proc WHERE pronamespace IN (SELECT oid FROM t)"
    "  UNION ALL SELECT 'pg_namespace'::regclass, oid FROM t),"
    /* What surely lives in the targets, by the same rules as `placed`:
     * leaving it out first spares `placed` a lookup for each of the
     * schema's own dependencies (100,000 of them at 10,000 tables). */
    " mine AS (SELECT cls, oid FROM inside"
    "  UNION ALL SELECT 'pg_constraint'::regclass, oid FROM pg_constraint"
    "   WHERE connamespace IN (SELECT oid FROM t)"
    "  UNION ALL SELECT 'pg_attrdef'::regclass, a.oid FROM pg_attrdef a"
    "   JOIN pg_class c ON c.oid = a.adrelid WHERE c.relnamespace IN (SELECT oid FROM t)"
    "  UNION ALL SELECT 'pg_trigger'::regclass, g.oid FROM pg_trigger g"
    "   JOIN pg_class c ON c.oid = g.tgrelid WHERE c.relnamespace IN (SELECT oid FROM t)"
    "  UNION ALL SELECT 'pg_rewrite'::regclass, r.oid FROM pg_rewrite r"
    "   JOIN pg_class c ON c.oid = r.ev_class WHERE c.relnamespace IN (SELECT oid FROM t)),"
    " dep AS (SELECT DISTINCT d.classid, d.objid, d.objsubid FROM pg_depend d"
    "  JOIN inside i ON d.refclassid = i.cls AND d.refobjid = i.oid"
    "  WHERE d.deptype IN ('n', 'a')"
    "   AND d.classid NOT IN ('pg_extension'::regclass, 'pg_default_acl'::regclass)"
    "   AND NOT EXISTS (SELECT 1 FROM mine m WHERE m.cls = d.classid AND m.oid = d.objid)),"
    " placed AS (SELECT dep.*, CASE dep.classid"
    "   WHEN 'pg_class'::regclass THEN (SELECT relnamespace FROM pg_class WHERE oid = objid)"
    "   WHEN 'pg_type'::regclass THEN (SELECT typnamespace FROM pg_type WHERE oid = objid)"
    "   WHEN 'pg_proc'::regclass THEN (SELECT pronamespace FROM pg_proc WHERE oid = objid)"
    "   WHEN 'pg_constraint'::regclass THEN (SELECT connamespace FROM pg_constraint WHERE oid = objid)"
    "   WHEN 'pg_rewrite'::regclass THEN (SELECT c.relnamespace FROM pg_rewrite r"
    "        JOIN pg_class c ON c.oid = r.ev_class WHERE r.oid = objid)"
    "   WHEN 'pg_trigger'::regclass THEN (SELECT c.relnamespace FROM pg_trigger g"
    "        JOIN pg_class c ON c.oid = g.tgrelid WHERE g.oid = objid)"
    "   WHEN 'pg_attrdef'::regclass THEN (SELECT c.relnamespace FROM pg_attrdef a"
    "        JOIN pg_class c ON c.oid = a.adrelid WHERE a.oid = objid)"
    "   WHEN 'pg_policy'::regclass THEN (SELECT c.relnamespace FROM pg_policy p"
    "        JOIN pg_class c ON c.oid = p.polrelid WHERE p.oid = objid)"
    "   WHEN 'pg_statistic_ext'::regclass THEN (SELECT stxnamespace FROM pg_statistic_ext"
    "        WHERE oid = objid)"
    "   WHEN 'pg_operator'::regclass THEN (SELECT oprnamespace FROM pg_operator WHERE oid = objid)"
    "   WHEN 'pg_collation'::regclass THEN (SELECT collnamespace FROM pg_collation WHERE oid = objid)"
    "   WHEN 'pg_opclass'::regclass THEN (SELECT opcnamespace FROM pg_opclass WHERE oid = objid)"
    "   WHEN 'pg_opfamily'::regclass THEN (SELECT opfnamespace FROM pg_opfamily WHERE oid = objid)"
    "   WHEN 'pg_amop'::regclass THEN (SELECT f.opfnamespace FROM pg_amop a"
    "        JOIN pg_opfamily f ON f.oid = a.amopfamily WHERE a.oid = objid)"
    "   WHEN 'pg_amproc'::regclass THEN (SELECT f.opfnamespace FROM pg_amproc a"
    "        JOIN pg_opfamily f ON f.oid = a.amprocfamily WHERE a.oid = objid)"
    "   WHEN 'pg_conversion'::regclass THEN (SELECT connamespace FROM pg_conversion"
    "        WHERE oid = objid)"
    "   WHEN 'pg_ts_config'::regclass THEN (SELECT cfgnamespace FROM pg_ts_config WHERE oid = objid)"
    "   WHEN 'pg_ts_dict'::regclass THEN (SELECT dictnamespace FROM pg_ts_dict WHERE oid = objid)"
    "   WHEN 'pg_namespace'::regclass THEN objid END AS ns FROM dep"
    "  WHERE NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = dep.classid"
    "                    AND e.objid = dep.objid AND e.deptype = 'e'))"
    /* A view's rule is shown as the view. */
    " SELECT DISTINCT CASE WHEN classid = 'pg_rewrite'::regclass"
    "   THEN pg_describe_object('pg_class'::regclass,"
    "        (SELECT ev_class FROM pg_rewrite WHERE oid = objid), 0)"
    "   ELSE pg_describe_object(classid, objid, objsubid) END FROM placed"
    "  WHERE ns IS NULL OR ns NOT IN (SELECT oid FROM t) ORDER BY 1";

int preflight_dependents(struct session *s, const struct config *cfg)
{
    const char *params[] = {cfg->schemas};
    int rc;
    PGresult *res = session_query(s, dependents_sql, 1, params,
                                  "listing objects that depend on the schemas", &rc);
    if (!res)
        return rc;
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        if (cfg->drop_dependents)
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
        log_error("refusing to reset: %d object(s) outside --schemas would be dropped with it; "
                  "add their schemas to --schemas, remove the dependency, or set "
                  "--drop-dependents (BANDAGE_DROP_DEPENDENTS=true)", n);
        report_add_error(s->report, "reset", "dependents",
                         "%d object(s) outside --schemas depend on it, first: %s", n,
                         PQgetvalue(res, 0, 0));
        rc = EXIT_REFUSED;
    }
    PQclear(res);
    return rc;
}
