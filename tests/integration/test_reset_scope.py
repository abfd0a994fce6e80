"""What a reset may drop, and where it builds (issue 16, the code review).

- Every kind of dependency outside ``--schemas`` on what a reset drops is
  found from ``pg_depend`` as a whole (collations, operators, operator
  classes, text-search configurations, extension members, publications),
  and found again once the reset holds its locks (a dependent made while
  ``--before-reset`` runs). Relocatable extensions of a reset schema are kept
  (moved out of the way and back), so their dependents elsewhere survive.
- The reset builds in the URL's ``schema`` (else ``--schemas``' first entry),
  on both paths, ``_prisma_migrations`` included.
- bandage's own statements resolve in ``pg_catalog``, whatever the database's
  or role's ``search_path`` puts first.
"""
import re
import signal

import pytest

from helpers import scaled, wait_until
from helpers.migrations import HISTORY, MigrationsDir
from test_reset import (  # noqa: F401  (medium_template and medium_db are fixtures)
    EXAMPLE_TABLES, SEED_SQL, assert_same_dump, dump, medium_db, medium_template, reset_args,
    write_sql)

TABLES_IN_SQL = ("SELECT relname::text FROM pg_class WHERE relkind = 'r'"
                 " AND relnamespace = %s::regnamespace ORDER BY 1")


def tables_in(db, schema):
    return {r[0] for r in db.execute(TABLES_IN_SQL, (schema,), user="postgres")}


def seeded(db):
    db.execute(SEED_SQL, user="postgres")


# --- 1. every kind of dependent --------------------------------------------------------------

#: (id, SQL that makes something outside public depend on public, what the log names)
KINDS = [
    ("collation",
     "CREATE COLLATION public.ci (provider = icu, locale = 'und-u-ks-level2',"
     " deterministic = false);"
     "CREATE SCHEMA audit; CREATE TABLE audit.log (id int, who text COLLATE public.ci);"
     "INSERT INTO audit.log VALUES (1, 'ann');",
     "column who of table audit.log"),
    ("operator",
     "CREATE FUNCTION public.same(int, int) RETURNS bool LANGUAGE sql IMMUTABLE"
     " AS 'SELECT $1 = $2';"
     "CREATE OPERATOR public.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = public.same);"
     "CREATE SCHEMA audit;"
     "CREATE VIEW audit.first AS SELECT 1 AS n WHERE 1 OPERATOR(public.===) 1;",
     "view audit.first"),
    ("operator-class",
     "CREATE OPERATOR CLASS public.int4_again FOR TYPE int4 USING btree AS"
     " OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,"
     " FUNCTION 1 btint4cmp(int4, int4);"
     "CREATE SCHEMA audit; CREATE TABLE audit.log (id int);"
     "CREATE INDEX log_id ON audit.log (id public.int4_again);",
     "index audit.log_id"),
    ("text-search-configuration",
     "CREATE TEXT SEARCH CONFIGURATION public.plain (COPY = pg_catalog.simple);"
     "CREATE SCHEMA audit; CREATE TABLE audit.log (body text);"
     "CREATE INDEX log_words ON audit.log USING gin (to_tsvector('public.plain'::regconfig, body));",
     "index audit.log_words"),
    ("publication",
     "CREATE PUBLICATION everything_public FOR TABLES IN SCHEMA public;",
     "publication of schema public in publication everything_public"),
]


@pytest.mark.parametrize("setup,named", [k[1:] for k in KINDS], ids=[k[0] for k in KINDS])
def test_each_kind_of_dependent_is_refused(run_bandage, db, setup, named):
    """Before: dropped with public by the CASCADE, exit 0."""
    seeded(db)
    if "TABLES IN SCHEMA" in setup and db.cluster.major < 15:
        pytest.skip("FOR TABLES IN SCHEMA is PostgreSQL 15+ (PG_VERSION=15 or newer)")
    db.execute(setup, user="postgres")
    before = dump(db)
    run = run_bandage(reset_args(db))
    run.wait_exit_code(77)
    assert named in run.stderr, run.stderr
    assert "--drop-dependents" in run.stderr
    assert_same_dump(before, dump(db), f"the database (stderr:\n{run.stderr})")


def test_a_dependent_of_a_dependent_is_listed(run_bandage, db):
    """A view on a view that uses public: both go with --drop-dependents,
    and both are named."""
    seeded(db)
    db.execute("CREATE SCHEMA audit;"
               "CREATE VIEW audit.names AS SELECT name FROM public.customers;"
               "CREATE VIEW audit.upper_names AS SELECT upper(name) FROM audit.names;",
               user="postgres")
    run = run_bandage(reset_args(db, "--drop-dependents", "true"))
    run.wait_exit_code(0)
    for name in ("view audit.names", "view audit.upper_names"):
        assert re.search(rf"dropping {name}, outside --schemas", run.stderr), run.stderr
    assert "2 object(s) outside --schemas dropped" in run.stderr, run.stderr


TRGM_SQL = """
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
CREATE SCHEMA audit;
CREATE TABLE audit.log (id int, body text);
INSERT INTO audit.log VALUES (1, 'hello');
CREATE INDEX log_body_trgm ON audit.log USING gin (body public.gin_trgm_ops);
"""


def test_extension_in_public_keeps_its_dependents_elsewhere(run_bandage, db):
    """pg_trgm in public (its usual home), a trigram index on audit.log:
    before, the index silently went with the extension. The extension is
    moved out of the way and back: same OID, the index stays."""
    seeded(db)
    db.execute(TRGM_SQL, user="postgres")
    ext_oid = db.execute("SELECT oid FROM pg_extension WHERE extname = 'pg_trgm'",
                         user="postgres")
    run = run_bandage(reset_args(db))
    run.wait_exit_code(0)
    assert db.execute("SELECT to_regclass('audit.log_body_trgm') IS NOT NULL",
                      user="postgres") == [(True,)], run.stderr
    assert db.execute("SELECT oid, extnamespace::regnamespace::text FROM pg_extension"
                      " WHERE extname = 'pg_trgm'", user="postgres") == [(ext_oid[0][0], "public")]
    assert tables_in(db, "public") == EXAMPLE_TABLES
    # Nothing of bandage's is left but the kept schema (--keep-previous 1).
    assert db.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'bandage\\_%'"
                      " AND nspname NOT LIKE 'bandage\\_kept\\_%'", user="postgres") == [(0,)]
    # The index still works through the extension's operator class.
    assert db.execute("SELECT count(*) FROM audit.log WHERE body % 'hello'",
                      user="postgres") == [(1,)]


def test_large_reset_keeps_extension_dependents_elsewhere(run_bandage, medium_db):
    db, _ = medium_db
    db.execute(TRGM_SQL, user="postgres")
    run = run_bandage(reset_args(db))
    run.wait_exit_code(0)
    assert "large reset" in run.stderr, run.stderr
    assert db.execute("SELECT to_regclass('audit.log_body_trgm') IS NOT NULL",
                      user="postgres") == [(True,)], run.stderr


def test_large_reset_drops_dependents_when_allowed(run_bandage, medium_db):
    """--drop-dependents on the large path: the view follows the old table
    aside and goes with the old schema, which must not be kept for it."""
    db, _ = medium_db
    db.execute('CREATE SCHEMA audit; CREATE VIEW audit.v AS SELECT * FROM public."Model0"',
               user="postgres")
    run = run_bandage(reset_args(db, "--drop-dependents", "true"))
    run.wait_exit_code(0)
    assert "large reset" in run.stderr, run.stderr
    assert aside_schemas(db) == [], run.stderr
    assert db.execute("SELECT to_regclass('audit.v')", user="postgres") == [(None,)]


# --- 2. a dependent made while --before-reset runs -------------------------------------------

def hook_making_view(db):
    sql = "CREATE SCHEMA IF NOT EXISTS audit; CREATE VIEW audit.v AS SELECT name FROM public.customers"
    return f"psql -X -q -v ON_ERROR_STOP=1 -d '{db.dsn(user='postgres')}' -c '{sql}'"


def test_dependent_made_during_the_hook_is_refused(run_bandage, db):
    """Before: the check ran before the hook only; the view the hook made
    went with the CASCADE, exit 0."""
    seeded(db)
    run = run_bandage(reset_args(db, "--before-reset", hook_making_view(db)))
    run.wait_exit_code(77)
    assert "view audit.v" in run.stderr, run.stderr
    assert db.execute("SELECT count(*) FROM audit.v", user="postgres") == [(2,)]
    assert db.execute("SELECT count(*) FROM public.customers", user="postgres") == [(2,)]


def test_dependent_made_during_the_hook_is_refused_on_the_large_path(run_bandage, medium_db):
    db, before = medium_db
    db.execute("CREATE TABLE public.customers (name text)", user="postgres")
    run = run_bandage(reset_args(db, "--before-reset", hook_making_view(db)))
    run.wait_exit_code(77)
    assert "view audit.v" in run.stderr, run.stderr
    assert db.execute("SELECT to_regclass('audit.v') IS NOT NULL", user="postgres") == [(True,)]
    assert db.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'bandage\\_aside%'",
                      user="postgres") == [(0,)]


# --- 3. the schema the reset builds in -------------------------------------------------------

def app_schema_db(db):
    db.execute("CREATE SCHEMA app; CREATE TABLE app.old (id int); INSERT INTO app.old VALUES (1)",
               user="postgres")


def test_url_schema_is_where_the_reset_builds(run_bandage, db):
    """Before: the tables landed in public, app stayed empty, exit 0."""
    app_schema_db(db)
    run = run_bandage(reset_args(db, url=False) + ["--database-url", db.dsn(schema="app")])
    run.wait_exit_code(0)
    assert tables_in(db, "app") == EXAMPLE_TABLES, run.stderr
    assert tables_in(db, "public") == set()


def test_first_schemas_entry_is_where_the_reset_builds_without_url_schema(run_bandage, db):
    app_schema_db(db)
    run = run_bandage(reset_args(db, "--schemas", "app,public"))
    run.wait_exit_code(0)
    assert tables_in(db, "app") == EXAMPLE_TABLES, run.stderr
    assert tables_in(db, "public") == set()


def test_reset_from_migrations_builds_in_the_url_schema(run_bandage, db, tmp_path):
    """Before: app._prisma_migrations said every migration was applied while
    the tables were in public: broken for good."""
    app_schema_db(db)
    mdir = MigrationsDir(tmp_path, migrations=HISTORY)
    run = run_bandage(reset_args(db, "--migrations", mdir.path, url=False, schema_file=None)
                      + ["--database-url", db.dsn(schema="app")])
    run.wait_exit_code(0)
    assert tables_in(db, "app") == {"User", "Post", "Tag", "_PostToTag", "_prisma_migrations"}, \
        run.stderr
    assert tables_in(db, "public") == set()
    assert db.execute("SELECT count(*) FROM app._prisma_migrations WHERE finished_at IS NOT NULL",
                      user="postgres") == [(len(HISTORY),)]


def test_large_reset_builds_in_the_url_schema(run_bandage, medium_db, tmp_path):
    db, _ = medium_db
    db.execute("ALTER SCHEMA public RENAME TO app; CREATE SCHEMA public", user="postgres")
    run = run_bandage(reset_args(db, url=False) + ["--database-url", db.dsn(schema="app")])
    run.wait_exit_code(0)
    assert "large reset" in run.stderr, run.stderr
    assert tables_in(db, "app") == EXAMPLE_TABLES, run.stderr
    assert tables_in(db, "public") == set()


# --- 4. bandage's own statements resolve in pg_catalog ---------------------------------------

def test_a_function_earlier_on_the_path_cannot_pass_the_interlock(run_bandage, db):
    """Before: public.current_database() returning 'staging' passed
    --confirm-database staging against this database, which was reset."""
    seeded(db)
    db.execute("CREATE FUNCTION public.current_database() RETURNS name LANGUAGE sql"
               " AS $$SELECT 'staging'::name$$;"
               f"ALTER DATABASE {db.name} SET search_path = public, pg_catalog", user="postgres")
    before = dump(db)
    run = run_bandage(reset_args(db, confirm="staging"))
    run.wait_exit_code(77)
    assert f"refusing to reset database '{db.name}'" in run.stderr, run.stderr
    assert_same_dump(before, dump(db), f"the database (stderr:\n{run.stderr})")


# --- 7. the old schemas a large reset left to drop --------------------------------------------

#: bandage's advisory lock key (entrypoint/db/reset.h, RESET_LOCK_KEY).
RESET_LOCK_KEY = 7089068665867822369

PROGRESS_TABLE_SQL = """
CREATE SCHEMA IF NOT EXISTS bandage;
CREATE TABLE IF NOT EXISTS bandage.resets_in_progress (
 aside text PRIMARY KEY, original text NOT NULL, state text NOT NULL,
 deployment_id text, started_at timestamptz NOT NULL DEFAULT now(),
 position int, live_oid oid, aside_oid oid)
"""


def built_row(db, aside, started_at):
    """An old schema a large reset moved aside and recorded as built, as a
    start whose drop was stopped leaves it: the next start drops it."""
    db.execute(f"CREATE SCHEMA {aside}; CREATE TABLE {aside}.old (id int);"
               f"INSERT INTO {aside}.old VALUES (1);" + PROGRESS_TABLE_SQL, user="postgres")
    db.execute("INSERT INTO bandage.resets_in_progress VALUES (%s, 'public', 'built', 'd-old',"
               " %s, 0, 'public'::regnamespace, %s::regnamespace)", (aside, started_at, aside),
               user="postgres")


def aside_schemas(db):
    return [r[0] for r in db.execute("SELECT nspname::text FROM pg_namespace WHERE nspname"
                                     " LIKE 'bandage\\_aside\\_%' ORDER BY 1", user="postgres")]


def bandage_waits_in_drop(pg, db):
    return pg.execute("SELECT 1 FROM pg_stat_activity WHERE application_name = 'bandage'"
                      " AND datname = %s AND wait_event_type = 'Lock' AND query LIKE 'DROP %%'",
                      (db.name,))


class TableLock:
    """A real session holding ACCESS SHARE on a table, in an open transaction."""

    def __init__(self, db, table):
        self.conn = db.connect(user="postgres")
        self.conn.autocommit = False
        self.conn.execute(f"LOCK TABLE {table} IN ACCESS SHARE MODE")

    def release(self):
        self.conn.rollback()
        self.conn.close()


def test_old_schema_something_depends_on_is_kept(run_bandage, db):
    """Before: the old schema went with CASCADE, and the view on it too."""
    built_row(db, "bandage_aside_0", "2026-01-01")
    db.execute("CREATE SCHEMA audit; CREATE VIEW audit.v AS SELECT * FROM bandage_aside_0.old",
               user="postgres")
    run = run_bandage(["--database-url", db.dsn()])
    run.wait_exit_code(0)
    assert "view audit.v, outside schema bandage_aside_0, depends on it" in run.stderr, run.stderr
    assert "the old schema bandage_aside_0 (was public) is kept" in run.stderr
    assert aside_schemas(db) == ["bandage_aside_0"]
    assert db.execute("SELECT count(*) FROM audit.v", user="postgres") == [(1,)]


def test_a_stopped_drop_leaves_the_next_old_schema_alone(run_bandage, pg, db, app_dir):
    """Two old schemas wait to be dropped beside the app; SIGTERM cancels the
    first drop (blocked by a real lock). Before: the dropper went on to the
    next row and dropped it after the signal."""
    built_row(db, "bandage_aside_0", "2026-01-01")
    built_row(db, "bandage_aside_1", "2026-01-02")  # newer: dropped first
    lock = TableLock(db, "bandage_aside_1.old")
    try:
        run = run_bandage(["--database-url", db.dsn(), "--lock-wait", "60", "--",
                           "sleep", "60"], timeout=scaled(60))
        wait_until(lambda: bandage_waits_in_drop(pg, db), scaled(30),
                   lambda: f"the drop to wait for the lock; stderr:\n{run.stderr}")
        run.send_signal(signal.SIGTERM)
        run.wait(scaled(30))
    finally:
        lock.release()
    assert "bandage_aside_1 (was public) is left for the next start" in run.stderr, run.stderr
    assert aside_schemas(db) == ["bandage_aside_0", "bandage_aside_1"], run.stderr


def test_dropper_leaves_the_progress_table_to_a_start_holding_the_lock(run_bandage, pg, db):
    """The drop beside the app runs without the reset lock; a start reads
    bandage.resets_in_progress under it. Before: the dropper dropped the
    table while a start held the lock (the start's read then failed, exit
    65). Here a real session holds the reset lock as a start would."""
    built_row(db, "bandage_aside_0", "2026-01-01")
    lock = TableLock(db, "bandage_aside_0.old")
    start = db.connect(user="postgres")
    try:
        run = run_bandage(["--database-url", db.dsn(), "--lock-wait", "60", "--",
                           "sleep", "60"], timeout=scaled(60))
        wait_until(lambda: bandage_waits_in_drop(pg, db), scaled(30),
                   lambda: f"the drop to wait for the lock; stderr:\n{run.stderr}")
        start.execute(f"SELECT pg_advisory_lock({RESET_LOCK_KEY})")
        lock.release()
        lock = None
        run.wait_for_stderr(r"dropped the old schema\(s\) beside the app", timeout=scaled(30))
        assert aside_schemas(db) == []
        assert db.execute("SELECT to_regclass('bandage.resets_in_progress')::text",
                          user="postgres") == [("bandage.resets_in_progress",)], run.stderr
        run.send_signal(signal.SIGTERM)
        run.wait(scaled(30))
    finally:
        if lock:
            lock.release()
        start.close()
