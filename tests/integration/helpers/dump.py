"""What a database holds, as text, to prove that something did not change.

``dump(db)`` is a full plain ``pg_dump`` (schema and data) when the machine's
pg_dump can dump the server (pg_dump refuses a server newer than itself:
Debian 12's pg_dump 15 against npm's 16, 17 and 18). Against a newer server
it is :func:`catalog_dump`: the same facts read by query, in a stable order,
with the server's own deparsers (``pg_get_viewdef``, ``pg_get_constraintdef``,
``pg_get_functiondef``...), so two listings are equal exactly when the
schemas, their objects, owners, privileges, comments and every row are.

Why not a newer pg_dump: none is installable here (Debian 12 has 15 only, the
npm servers ship no client), and building one from source for each major
would cost CI minutes for what a catalog query shows as well.
"""
import re
import subprocess

from . import scaled
from .pg import client_major, client_tool

PG_DUMP = client_tool("pg_dump")
PG_DUMP_MAJOR = client_major(PG_DUMP)

# Each query returns text lines; together they are the listing. Schemas are
# those of the user (not pg_catalog, information_schema, pg_toast, temp).
_USER_NS = ("n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%' "
            "AND NOT (n.nspname = ANY(%(exclude)s))")

_QUERIES = [
    ("schema", f"""
        SELECT format('%%I owner=%%s acl=%%s comment=%%L', n.nspname, n.nspowner::regrole,
                      n.nspacl, obj_description(n.oid, 'pg_namespace'))
        FROM pg_namespace n WHERE {_USER_NS} ORDER BY 1"""),
    ("relation", f"""
        SELECT format('%%I.%%I kind=%%s owner=%%s acl=%%s options=%%s persistence=%%s '
                      'rls=%%s/%%s comment=%%L', n.nspname, c.relname, c.relkind,
                      c.relowner::regrole, c.relacl, c.reloptions, c.relpersistence,
                      c.relrowsecurity, c.relforcerowsecurity, obj_description(c.oid, 'pg_class'))
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_NS} AND c.relkind <> 'i' AND c.relkind <> 'I' ORDER BY 1"""),
    ("column", f"""
        SELECT format('%%I.%%I.%%I %%s notnull=%%s default=%%s identity=%%s generated=%%s '
                      'collation=%%s acl=%%s comment=%%L', n.nspname, c.relname, a.attname,
                      format_type(a.atttypid, a.atttypmod), a.attnotnull,
                      pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
                      CASE WHEN a.attcollation <> 0 THEN a.attcollation::regcollation::text END,
                      a.attacl, col_description(c.oid, a.attnum))
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE {_USER_NS} AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY n.nspname, c.relname, a.attnum"""),
    ("constraint", f"""
        SELECT format('%%I.%%s %%I %%s', n.nspname, coalesce(c.conrelid::regclass::text,
                      c.contypid::regtype::text), c.conname, pg_get_constraintdef(c.oid))
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE {_USER_NS} ORDER BY 1"""),
    ("index", f"""
        SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_NS} ORDER BY 1"""),
    ("view", f"""
        SELECT format('%%I.%%I %%s', n.nspname, c.relname, pg_get_viewdef(c.oid))
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_NS} AND c.relkind IN ('v', 'm') ORDER BY 1"""),
    ("sequence", f"""
        SELECT format('%%I.%%I %%s start=%%s inc=%%s min=%%s max=%%s cycle=%%s owned=%%s',
                      s.schemaname, s.sequencename, s.data_type, s.start_value, s.increment_by,
                      s.min_value, s.max_value, s.cycle, s.last_value)
        FROM pg_sequences s JOIN pg_namespace n ON n.nspname = s.schemaname
        WHERE {_USER_NS} ORDER BY 1"""),
    ("function", f"""
        SELECT format('%%s owner=%%s acl=%%s comment=%%L %%s', p.oid::regprocedure,
                      p.proowner::regrole, p.proacl, obj_description(p.oid, 'pg_proc'),
                      CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) END)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE {_USER_NS} ORDER BY 1"""),
    ("trigger", f"""
        SELECT format('%%s enabled=%%s', pg_get_triggerdef(t.oid), t.tgenabled) FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_NS} AND NOT t.tgisinternal ORDER BY 1"""),
    ("rule", f"""
        SELECT r.definition FROM pg_rules r JOIN pg_namespace n ON n.nspname = r.schemaname
        WHERE {_USER_NS} ORDER BY r.schemaname, r.tablename, r.rulename"""),
    ("policy", f"""
        SELECT format('%%I.%%I %%I %%s %%s using=%%s check=%%s', p.schemaname, p.tablename,
                      p.policyname, p.cmd, p.roles, p.qual, p.with_check)
        FROM pg_policies p JOIN pg_namespace n ON n.nspname = p.schemaname
        WHERE {_USER_NS} ORDER BY 1"""),
    ("type", f"""
        SELECT format('%%s kind=%%s owner=%%s acl=%%s labels=%%s comment=%%L',
                      t.oid::regtype, t.typtype, t.typowner::regrole, t.typacl,
                      (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e
                       WHERE e.enumtypid = t.oid), obj_description(t.oid, 'pg_type'))
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE {_USER_NS} AND t.typtype IN ('e', 'd', 'c', 'r', 'm')
          AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
        ORDER BY 1"""),
    ("extension", f"""
        SELECT format('%%I schema=%%I version=%%s', e.extname, n.nspname, e.extversion)
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE {_USER_NS} ORDER BY 1"""),
    ("default privileges", """
        SELECT format('%%s in %%s on %%s: %%s', d.defaclrole::regrole,
                      coalesce(d.defaclnamespace::regnamespace::text, '(all)'),
                      d.defaclobjtype, d.defaclacl)
        FROM pg_default_acl d ORDER BY 1"""),
    ("publication", """
        SELECT format('%%s %%s', p.pubname, (SELECT array_agg(t.schemaname || '.' || t.tablename
                      ORDER BY 1) FROM pg_publication_tables t WHERE t.pubname = p.pubname))
        FROM pg_publication p ORDER BY 1"""),
]

_TABLES = f"""
    SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE {_USER_NS} AND c.relkind IN ('r', 'p', 'm') ORDER BY 1"""


def catalog_dump(db, exclude_schemas=()):
    """Schema and data of ``db`` read from the catalog by query (as the
    superuser), one fact a line: what pg_dump would show, for servers newer
    than the machine's pg_dump. ``exclude_schemas`` leaves schemas out (as
    pg_dump's ``--exclude-schema``)."""
    params = {"exclude": list(exclude_schemas)}
    out = []
    with db.connect(user="postgres") as conn:
        for title, query in _QUERIES:
            for (line,) in conn.execute(query, params).fetchall():
                out.append(f"{title}: {line}")
        for (table,) in conn.execute(_TABLES, params).fetchall():
            rows = conn.execute(f"SELECT t::text FROM {table} t ORDER BY 1").fetchall()
            out.extend(f"row {table}: {r}" for (r,) in rows)
    return "\n".join(out)


def server_major(db):
    with db.connect(user="postgres") as conn:
        return int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000


def dump(db, *options):
    """Schema and data of ``db`` as text: a full plain pg_dump (without the
    random ``\\restrict`` lines of 15.14+) when pg_dump can dump this server,
    else :func:`catalog_dump`. ``options``: pg_dump options; only
    ``--exclude-schema=NAME`` is understood by the catalog form."""
    if server_major(db) <= PG_DUMP_MAJOR:
        r = subprocess.run([PG_DUMP, "--dbname", db.dsn(user="postgres"), *options],
                           capture_output=True, timeout=scaled(300))
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        lines = r.stdout.decode().splitlines()
        return "\n".join(l for l in lines if not l.startswith(("\\restrict", "\\unrestrict")))
    exclude = []
    for option in options:
        m = re.fullmatch(r"--exclude-schema=(.+)", option)
        if not m:
            raise AssertionError(f"catalog_dump does not understand {option!r}")
        exclude.append(m.group(1))
    return catalog_dump(db, exclude)
