"""Nothing lost, nothing stranded (issue 8): each test is a defect that fault
injection found in the reset, reproduced against a real PostgreSQL.

The large (batched) reset is forced by size, as in test_reset.py: the
400-table ``medium_db`` plus a 400-table schema file is past a quarter of the
lock table. Tests that need a session bandage may not terminate hold it in a
``--before-reset`` hook's window: the hook blocks on a FIFO while the test
makes a session wait for bandage's advisory lock (the mark of a peer bandage)
after taking a table lock; then the test lets the hook go.
"""
import os
import re
import signal
import threading
import time

import psycopg
import pytest

from helpers import scaled, wait_until
from test_reset import (  # noqa: F401  (medium_template and medium_db are fixtures)
    DROP_OLD, EXAMPLE_SCHEMA, MEDIUM, NO_LEFTOVERS, SEED_SQL, assert_same_dump, crash_mid_build,
    deploy_rows, dump, gen_schema, generated_statements, leftovers, medium_db, medium_template,
    prisma_tables, reset_args, wait_no_bandage_session, write_sql)
from test_reset_scope import TableLock, aside_schemas, bandage_waits_in_drop, built_row

#: bandage's advisory lock key (entrypoint/db/reset.h, RESET_LOCK_KEY).
RESET_LOCK_KEY = 7089068665867822369

EXAMPLE_TABLES_SQL = ("SELECT relname::text FROM pg_class WHERE relkind = 'r'"
                      " AND relnamespace = 'public'::regnamespace ORDER BY 1")


def seeded(db):
    db.execute(SEED_SQL, user="postgres")
    return dump(db)


def assert_untouched(db, before, run):
    assert_same_dump(before, dump(db), f"the database (bandage stderr:\n{run.stderr})")


# --- 1. a crash, a manual repair, then any start --------------------------------------

@pytest.mark.parametrize("mode", ["never", "always"])
def test_manual_repair_after_crash_is_refused_not_emptied(run_bandage, medium_db, tmp_path, pg,
                                                          mode):
    """The operator's obvious repair after a crashed large reset: drop the
    half-built public, rename bandage_aside_0 back. The stale row must not make
    the next start empty the real data: it checks the OIDs, touches nothing,
    exits 65 and says how to clear the row."""
    db, before = medium_db
    crash_mid_build(run_bandage, pg, db, tmp_path, "d-repair")
    db.execute("DROP SCHEMA public CASCADE; ALTER SCHEMA bandage_aside_0 RENAME TO public",
               user="postgres")
    repaired = dump(db)
    args = (reset_args(db, "--deployment-id", "d-repair2", mode="once") if mode == "always"
            else ["--database-url", db.dsn()])
    run = run_bandage(args, timeout=scaled(60))
    run.wait_exit_code(65)
    assert "restored by hand" in run.stderr, run.stderr
    assert "DELETE FROM bandage.resets_in_progress WHERE aside = 'bandage_aside_0'" in run.stderr
    assert_same_dump(repaired, dump(db), "the repaired database")
    assert len(prisma_tables(db, "Model")) == MEDIUM
    # Clearing the row as told makes the next start work.
    db.execute("DELETE FROM bandage.resets_in_progress WHERE aside = 'bandage_aside_0'",
               user="postgres")
    run_bandage(["--database-url", db.dsn()], timeout=scaled(60)).wait_exit_code(0)
    assert len(prisma_tables(db, "Model")) == MEDIUM


def test_wait_timeout_0_still_settles_an_interrupted_reset(run_bandage, medium_db, tmp_path, pg,
                                                          app_dir):
    """--wait-timeout 0 used to skip the database phase, so the app ran on the
    half-built schema a crash left. It connects once, and settles first."""
    db, before = medium_db
    crash_mid_build(run_bandage, pg, db, tmp_path, "d-zero")
    started = os.path.join(app_dir, "started")
    run = run_bandage(["--database-url", db.dsn(), "--wait-timeout", "0", "--",
                       "touch", started], timeout=scaled(60))
    run.wait_exit_code(0)
    assert "found an interrupted reset" in run.stderr
    assert os.path.exists(started)
    assert leftovers(db) == NO_LEFTOVERS
    assert_same_dump(before, dump(db), "the restored database")


def test_aside_schema_dropped_by_hand_is_refused(run_bandage, medium_db, tmp_path, pg):
    """The row says the old data is in bandage_aside_0, but someone dropped
    it: the half-built public must not be taken for anything, nor emptied."""
    db, _ = medium_db
    crash_mid_build(run_bandage, pg, db, tmp_path, "d-gone")
    db.execute("DROP SCHEMA bandage_aside_0 CASCADE", user="postgres")
    before = dump(db)
    run = run_bandage(["--database-url", db.dsn()], timeout=scaled(60))
    run.wait_exit_code(65)
    assert "bandage_aside_0, which held the old data, no longer exists" in run.stderr
    assert_same_dump(before, dump(db))


# --- 2. the schema file ------------------------------------------------------------------

def test_schema_file_that_is_a_directory_touches_nothing(run_bandage, db, tmp_path):
    before = seeded(db)
    directory = tmp_path / "schema.sql"
    directory.mkdir()  # what `docker run -v` of a missing host file creates
    run = run_bandage(reset_args(db, schema_file=str(directory)))
    run.wait_exit_code(64)
    assert "not a regular file" in run.stderr or "directory" in run.stderr.lower(), run.stderr
    assert "deploy ok" not in run.stderr
    assert_untouched(db, before, run)


@pytest.mark.parametrize("text", ["", "  \n\n", "-- nothing yet\n/* later */\n", ";\n;\n"],
                         ids=["empty", "blank", "comments", "semicolons"])
def test_empty_schema_file_is_refused(run_bandage, db, tmp_path, text):
    before = seeded(db)
    run = run_bandage(reset_args(db, schema_file=write_sql(tmp_path, text)))
    run.wait_exit_code(64)
    assert "--allow-empty-schema" in run.stderr
    assert_untouched(db, before, run)


def test_empty_schema_file_resets_to_empty_when_asked(run_bandage, db, tmp_path):
    seeded(db)
    run = run_bandage(reset_args(db, "--allow-empty-schema", "true",
                                 schema_file=write_sql(tmp_path, "-- empty on purpose\n")))
    run.wait_exit_code(0)
    assert db.execute(EXAMPLE_TABLES_SQL, user="postgres") == []


def test_reset_without_anything_to_build_is_refused(run_bandage, db):
    before = seeded(db)
    run = run_bandage(reset_args(db, schema_file=None))
    run.wait_exit_code(64)
    assert "nothing to build" in run.stderr
    assert_untouched(db, before, run)


def test_schema_file_with_a_nul_byte_is_refused(run_bandage, db, tmp_path):
    """libpq sends a statement up to its first NUL: the shortened statement
    (here: a CREATE TABLE without its second column) would commit."""
    before = seeded(db)
    path = tmp_path / "nul.sql"
    path.write_bytes(b"CREATE TABLE t (a int\x00, b int);\nCREATE TABLE u (x int);\n")
    run = run_bandage(reset_args(db, schema_file=str(path)))
    run.wait_exit_code(64)
    assert "NUL" in run.stderr and "line 1" in run.stderr
    assert_untouched(db, before, run)


# --- 4. --schemas naming a schema that does not exist ------------------------------------

@pytest.mark.parametrize("schemas", ["PUBLIC", "pubilc", "public,audti"])
def test_reset_of_a_missing_schema_is_refused(run_bandage, db, schemas):
    before = seeded(db)
    run = run_bandage(reset_args(db, "--schemas", schemas))
    run.wait_exit_code(64)
    missing = [s for s in schemas.split(",") if s != "public"][0]
    assert re.search(rf'--schemas names "?{missing}"?, which this database does not have',
                     run.stderr), run.stderr
    assert "--create-schemas" in run.stderr
    assert_untouched(db, before, run)


def test_missing_schema_is_created_when_asked_or_on_a_first_deploy(run_bandage, db_factory):
    seeded_db = db_factory()
    seeded(seeded_db)
    run = run_bandage(reset_args(seeded_db, "--schemas", "app", "--create-schemas", "true"))
    run.wait_exit_code(0)
    assert seeded_db.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'app'",
                             user="postgres") == [(1,)]
    fresh = db_factory()
    run = run_bandage(reset_args(fresh, "--schemas", "app"))
    run.wait_exit_code(0)
    assert fresh.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'app'",
                         user="postgres") == [(1,)]


# --- 9. read-only database ---------------------------------------------------------------

def test_read_only_database_is_refused_before_terminating_anyone(run_bandage, db, pg):
    before = seeded(db)
    db.execute(f'ALTER DATABASE "{db.name}" SET default_transaction_read_only = on',
               user="postgres")
    bystander = db.connect(user="postgres")
    try:
        run = run_bandage(reset_args(db))
        run.wait_exit_code(77)
        assert "read-only" in run.stderr
        assert "terminated" not in run.stderr
        assert bystander.execute("SELECT 1").fetchall() == [(1,)]  # still connected
    finally:
        bystander.close()
    pg.execute(f'ALTER DATABASE "{db.name}" RESET default_transaction_read_only')
    assert_untouched(db, before, run)


@pytest.fixture
def standby(pg, test_ca, wrong_ca):
    """A hot standby of ``pg``: pg_basebackup -R over the unix socket, then a
    PgCluster started from that copy on a port of its own."""
    import shutil
    import subprocess
    import tempfile
    from helpers import IS_ROOT
    from helpers.pg import PgCluster
    from helpers.pg import client_major, client_tool
    base = tempfile.mkdtemp(prefix="bandage-standby-")
    os.chmod(base, 0o755)
    backup = os.path.join(base, "backup")
    basebackup = client_tool("pg_basebackup", pg.bin_dir)
    if client_major(basebackup) >= pg.major:
        argv = [basebackup, "-h", pg.socket_dir, "-p", str(pg.port),
                "-U", "postgres", "-D", backup, "-R", "-X", "stream", "-c", "fast"]
        if IS_ROOT:
            shutil.chown(base, "postgres", "postgres")
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=scaled(120))
    else:
        # pg_basebackup refuses a newer server (npm's 16+ against Debian's
        # 15): PostgreSQL's low-level base backup, by hand, then what -R writes.
        with pg.connect() as conn:
            conn.execute("SELECT pg_backup_start('bandage standby', true)")
            subprocess.run(["cp", "-a", pg.data_dir, backup], check=True, timeout=scaled(120))
            label = conn.execute("SELECT labelfile FROM pg_backup_stop()").fetchone()[0]
        for name in ("postmaster.pid", "postmaster.opts"):
            if os.path.exists(os.path.join(backup, name)):
                os.unlink(os.path.join(backup, name))
        with open(os.path.join(backup, "backup_label"), "w") as f:
            f.write(label)
        open(os.path.join(backup, "standby.signal"), "w").close()
        with open(os.path.join(backup, "postgresql.auto.conf"), "a") as f:
            f.write(f"primary_conninfo = 'host={pg.socket_dir} port={pg.port} user=postgres'\n")
    cluster = PgCluster(test_ca, wrong_ca, pg.superuser_password, template=backup,
                        bin_dir=pg.bin_dir)
    cluster.start()
    yield cluster
    cluster.destroy()
    shutil.rmtree(base, ignore_errors=True)


def test_hot_standby_is_refused_before_terminating_anyone(run_bandage, db, pg, standby):
    seeded(db)
    wait_until(lambda: standby.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                       (db.name,)), scaled(30), "the standby to have the database")
    url = standby.dsn(dbname=db.name)
    wait_until(lambda: psycopg.connect(url).execute(
        "SELECT to_regclass('public.customers')").fetchone()[0], scaled(30),
        "the standby to have the tables")
    bystander = psycopg.connect(url)
    try:
        run = run_bandage(["--database-url", url, "--reset", "always", "--confirm-database",
                           db.name, "--schema-file", EXAMPLE_SCHEMA])
        run.wait_exit_code(77)
        assert "hot standby" in run.stderr, run.stderr
        assert "terminated" not in run.stderr
        assert bystander.execute("SELECT count(*) FROM customers").fetchall() == [(2,)]
    finally:
        bystander.close()


# --- 12. objects elsewhere that depend on a reset schema ------------------------------------

DEPENDENTS_SQL = """
CREATE SCHEMA reporting;
CREATE VIEW reporting.customer_names AS SELECT name FROM public.customers;
CREATE SCHEMA audit;
CREATE TABLE audit.log (id int, customer_id int REFERENCES public.customers(id));
INSERT INTO audit.log VALUES (1, 1);
"""


def test_dependents_in_other_schemas_are_refused(run_bandage, db):
    seeded(db)
    db.execute(DEPENDENTS_SQL, user="postgres")
    before = dump(db)
    run = run_bandage(reset_args(db))
    run.wait_exit_code(77)
    assert "view reporting.customer_names" in run.stderr, run.stderr
    assert "constraint log_customer_id_fkey on table audit.log" in run.stderr
    assert "--drop-dependents" in run.stderr
    assert_untouched(db, before, run)


PLACED_SQL = """
CREATE TYPE public.feeling AS ENUM ('ok');
CREATE SEQUENCE public.shared_seq;
CREATE SCHEMA audit;
CREATE TABLE audit.t2 (n int DEFAULT nextval('public.shared_seq'), m public.feeling);
CREATE TRIGGER t2_touch BEFORE INSERT ON audit.t2 FOR EACH ROW EXECUTE FUNCTION public.touch();
"""


def test_dependents_placed_through_their_table_are_refused(run_bandage, db):
    """A trigger, a default and a column are placed by their table's schema
    (the public schema's own are left out first, by the same rule); the
    seed's touch() is public's."""
    seeded(db)
    db.execute(PLACED_SQL, user="postgres")
    before = dump(db)
    run = run_bandage(reset_args(db))
    run.wait_exit_code(77)
    for what in ("trigger t2_touch on table audit.t2", "default value for column n of table "
                 "audit.t2", "column m of table audit.t2"):
        assert what in run.stderr, run.stderr
    assert "3 object(s) outside --schemas" in run.stderr, run.stderr
    assert_untouched(db, before, run)


def test_dependents_are_dropped_and_listed_when_allowed(run_bandage, db):
    seeded(db)
    db.execute(DEPENDENTS_SQL, user="postgres")
    run = run_bandage(reset_args(db, "--drop-dependents", "true"))
    run.wait_exit_code(0)
    assert re.search(r"bandage: dropping view reporting.customer_names, outside --schemas",
                     run.stderr), run.stderr
    assert re.search(r"deploy ok in \d+ ms: .*, 2 object\(s\) outside --schemas dropped, 0 errors",
                     run.stderr), run.stderr
    assert db.execute("SELECT to_regclass('reporting.customer_names')", user="postgres") == \
        [(None,)]
    # The table in audit stays, with its row; only the constraint went.
    assert db.execute("SELECT count(*) FROM audit.log", user="postgres") == [(1,)]


# --- 5. identity columns and every kind of object on the batched path ------------------------

KINDS_SQL = """
CREATE TABLE {p}_ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
CREATE TABLE {p}_ident_default (id bigint GENERATED BY DEFAULT AS IDENTITY, v text);
CREATE TABLE {p}_serial (id serial PRIMARY KEY);
CREATE SEQUENCE {p}_owned_seq;
CREATE TABLE {p}_owner (n int DEFAULT nextval('{p}_owned_seq'));
ALTER SEQUENCE {p}_owned_seq OWNED BY {p}_owner.n;
CREATE TABLE {p}_parted (id int, at date) PARTITION BY RANGE (at);
CREATE TABLE {p}_parted_2024 PARTITION OF {p}_parted FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE {p}_parent (id int);
CREATE TABLE {p}_child (extra text) INHERITS ({p}_parent);
CREATE MATERIALIZED VIEW {p}_mv AS SELECT count(*) AS n FROM {p}_ident;
CREATE DOMAIN {p}_dom AS int CHECK (VALUE > 0);
CREATE TYPE {p}_pair AS (a int, b text);
CREATE TABLE {p}_uses (d {p}_dom, pr {p}_pair);
CREATE FUNCTION {p}_fn() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER {p}_trg BEFORE INSERT ON {p}_ident FOR EACH ROW EXECUTE FUNCTION {p}_fn();
INSERT INTO {p}_ident (v) VALUES ('one');
"""


def large_schema(prefix, fail_last=False):
    text = gen_schema(MEDIUM, prefix=prefix) + KINDS_SQL.format(p=prefix.lower())
    return text + ("SELECT 1/0;\n" if fail_last else "")


def test_batched_reset_with_identity_columns_and_every_kind(run_bandage, medium_db, tmp_path):
    db, _ = medium_db
    db.execute(KINDS_SQL.format(p="old"), user="postgres")
    run = run_bandage(reset_args(db, schema_file=write_sql(tmp_path, large_schema("New"))),
                      timeout=scaled(180))
    run.wait_exit_code(0)
    assert "large reset" in run.stderr
    assert leftovers(db) == NO_LEFTOVERS, run.stderr
    assert db.execute("SELECT v FROM new_ident", user="postgres") == [("one",)]
    assert prisma_tables(db, "Model") == {}


def test_failed_batched_reset_with_identity_columns_restores_everything(run_bandage, medium_db,
                                                                        tmp_path):
    db, _ = medium_db
    db.execute(KINDS_SQL.format(p="old"), user="postgres")
    before = dump(db)
    run = run_bandage(reset_args(db, schema_file=write_sql(tmp_path,
                                                           large_schema("New", fail_last=True))),
                      timeout=scaled(180))
    run.wait_exit_code(65)
    assert "22012" in run.stderr  # division by zero, the last statement
    assert leftovers(db) == NO_LEFTOVERS, run.stderr
    assert_untouched(db, before, run)


# --- 6. statements outside --schemas on the batched path -------------------------------------

@pytest.mark.parametrize("outside", [
    "CREATE SCHEMA extra;",
    "CREATE TABLE audit.x (id int);",
    'INSERT INTO "audit"."log" VALUES (1);',
    "CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA extra;",
], ids=["create-schema", "create-table", "insert", "extension"])
def test_batched_reset_refuses_statements_outside_its_schemas(run_bandage, medium_db, tmp_path,
                                                              outside):
    """They would commit batch by batch and survive an undo: every retry would
    then fail (`schema "extra" already exists`). Refused before anything runs."""
    db, before = medium_db
    text = gen_schema(MEDIUM, prefix="New") + outside + "\n"
    run = run_bandage(reset_args(db, schema_file=write_sql(tmp_path, text)), timeout=scaled(60))
    run.wait_exit_code(65)
    line = text.count("\n")
    assert re.search(rf"line {line}: acts on schema (extra|audit), outside --schemas", run.stderr), \
        run.stderr
    assert_untouched(db, before, run)


# --- 7. and 11. locks bandage cannot break; sessions that come back ---------------------------

class PeerLike:
    """A session that holds a table lock, then waits for bandage's advisory
    lock, as a peer bandage would: bandage does not terminate it."""

    def __init__(self, db, lock_sql):
        self.conn = db.connect(user="postgres")
        self.conn.autocommit = False
        self.conn.execute(lock_sql)
        self.pid = self.conn.info.backend_pid
        self.thread = threading.Thread(target=self._wait, daemon=True)
        self.thread.start()

    def _wait(self):
        try:
            self.conn.execute(f"SELECT pg_advisory_lock({RESET_LOCK_KEY})")
        except psycopg.Error:
            pass

    def close(self):
        try:
            self.conn.cancel()
        except psycopg.Error:
            pass
        self.thread.join(scaled(10))
        self.conn.close()


def hold_peer_in_hook(run_bandage, pg, db, args, lock_sql, tmp_path, timeout):
    """Starts bandage with a --before-reset hook that waits on a FIFO; once
    bandage holds its lock, a PeerLike takes `lock_sql` and queues on it; then
    the hook is let go. Returns (run, peer)."""
    fifo = str(tmp_path / "go")
    os.mkfifo(fifo)
    hook = ["--before-reset", f"read line < {fifo}"]
    split = args.index("--") if "--" in args else len(args)
    run = run_bandage(args[:split] + hook + args[split:], timeout=timeout)
    run.wait_for_stderr(r"running --before-reset", timeout=scaled(30))
    peer = PeerLike(db, lock_sql)
    wait_until(lambda: pg.execute("SELECT 1 FROM pg_locks WHERE pid = %s AND locktype ="
                                  " 'advisory' AND NOT granted", (peer.pid,)),
               scaled(10), "the peer-like session to wait for bandage's lock")
    with open(fifo, "w") as f:
        f.write("go\n")
    return run, peer


def test_one_transaction_reset_never_waits_holding_the_app_out(run_bandage, db, pg, tmp_path):
    """A session bandage may not terminate holds a lock on one old table: the
    reset must not sit in DROP SCHEMA ... CASCADE holding the others for the
    whole wait. It tries NOWAIT until --lock-wait, exits 69 naming the holder,
    and meanwhile the app's reads of the other tables go through."""
    before = seeded(db)
    args = reset_args(db, "--lock-wait", "3")
    run, peer = hold_peer_in_hook(run_bandage, pg, db, args, "LOCK TABLE orders IN ACCESS SHARE MODE",
                                  tmp_path, scaled(30))
    try:
        # While bandage retries, the app's reads are never blocked behind its
        # locks (statement_timeout would cancel them: QueryCanceled fails the
        # test). Between its attempts bandage ends the sessions it may end,
        # the app's among them, as a reset does: the app reconnects.
        reads = 0
        while reads < 5:
            try:
                with db.connect(user="postgres", application_name="app") as app:
                    app.execute("SET statement_timeout = '1s'")
                    assert app.execute("SELECT count(*) FROM customers").fetchall() == [(2,)]
                    reads += 1
            except psycopg.errors.QueryCanceled:
                raise
            except psycopg.OperationalError:
                continue  # terminated by bandage between two attempts
        run.wait_exit_code(69)
    finally:
        peer.close()
    assert re.search(r"table (public\.)?orders is locked by server process \d+", run.stderr), \
        run.stderr
    assert_untouched(db, before, run)


def test_batched_reset_blocked_drop_still_starts_app_and_next_start_finishes(
        run_bandage, medium_db, pg, tmp_path, app_dir):
    """Once the new schema is built and recorded, a lock on an old table that
    bandage may not break must not keep the app down: the old schema is left
    aside with a warning, the app starts, and the next start drops it."""
    db, _ = medium_db
    schema = write_sql(tmp_path, gen_schema(MEDIUM, prefix="New"))
    marker = os.path.join(app_dir, "ran")
    args = reset_args(db, *DROP_OLD, "--deployment-id", "d-locked", "--lock-wait", "1", mode="once",
                      schema_file=schema) + ["--", "sh", "-c", f"touch {marker}"]
    run, peer = hold_peer_in_hook(run_bandage, pg, db, args,
                                  'LOCK TABLE "Model5" IN ACCESS SHARE MODE', tmp_path,
                                  scaled(180))
    try:
        run.wait_exit_code(0)
        assert os.path.exists(marker), run.stderr
        assert leftovers(db)["aside schemas"] == ["bandage_aside_0"]
        assert len(prisma_tables(db, "New")) == MEDIUM
    finally:
        peer.close()
    assert len(deploy_rows(db, "d-locked")) == 1
    run = run_bandage(reset_args(db, *DROP_OLD, "--deployment-id", "d-locked", mode="once",
                                 schema_file=schema), timeout=scaled(120))
    run.wait_exit_code(0)
    assert "dropped the old schema bandage_aside_0" in run.stderr
    assert leftovers(db) == NO_LEFTOVERS
    assert len(prisma_tables(db, "New")) == MEDIUM and prisma_tables(db, "Model") == {}


def test_app_starts_before_the_old_schema_is_gone(run_bandage, medium_db, pg, tmp_path,
                                                  app_dir):
    """Once the new schema is built and recorded, the app starts; the old
    schema is dropped beside it, by a process that holds the drop lock, not
    the reset lock. Here a peer-like session holds a lock on an old table,
    so the drop waits for it: the app has started while the old schema is
    still there, and once the lock goes, the old schema goes too while the
    app runs."""
    db, _ = medium_db
    schema = write_sql(tmp_path, gen_schema(MEDIUM, prefix="New"))
    started = os.path.join(app_dir, "started")
    args = reset_args(db, *DROP_OLD, "--deployment-id", "d-beside", "--lock-wait", "60", mode="once",
                      schema_file=schema) + ["--", "sh", "-c", f"touch {started}; exec sleep 60"]
    run, peer = hold_peer_in_hook(run_bandage, pg, db, args,
                                  'LOCK TABLE "Model5" IN ACCESS SHARE MODE', tmp_path,
                                  scaled(120))
    try:
        wait_until(lambda: os.path.exists(started), scaled(60),
                   lambda: f"the app to start; stderr:\n{run.stderr}")
        assert leftovers(db)["aside schemas"] == ["bandage_aside_0"]
        assert len(prisma_tables(db, "New")) == MEDIUM
        # The dropper releases the reset lock as its first step, soon after
        # the app starts: then only the peer-like session, queued on it, may
        # hold it, never a bandage session, while the drop waits.
        wait_until(lambda: pg.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND objsubid = 1 AND classid = (%(k)s::bigint >> 32)::oid"
            " AND objid = (%(k)s::bigint & 4294967295)::oid AND pid <> %(peer)s",
            {"k": RESET_LOCK_KEY, "peer": peer.pid}, dbname=db.name) == [(0,)],
                   scaled(10), "bandage to release the reset lock beside the app")
        assert leftovers(db)["aside schemas"] == ["bandage_aside_0"]
    finally:
        peer.close()
    wait_until(lambda: leftovers(db) == NO_LEFTOVERS, scaled(60),
               lambda: f"the old schema to go beside the app; stderr:\n{run.stderr}")
    assert run.running, run.stderr
    assert "dropped the old schema(s) beside the app" in run.stderr
    run.send_signal(15)
    run.wait(scaled(20))


def test_failed_large_reset_keeps_an_earlier_reset_waiting_for_its_drop(run_bandage, medium_db,
                                                                       pg, tmp_path, app_dir):
    """Deploy A's old schema still waits to be dropped (its app exited, the
    drop beside it, blocked, was stopped as the grace ended) when deploy B's
    large reset fails: B's undo restores B's old schema and leaves A's row
    as built: A's row is not taken for part of B's build."""
    db, _ = medium_db
    schema = write_sql(tmp_path, gen_schema(MEDIUM, prefix="New"))
    args = reset_args(db, *DROP_OLD, "--deployment-id", "d-a", "--lock-wait", "60", "--grace", "2",
                      mode="once", schema_file=schema) + ["--", "true"]
    run, peer = hold_peer_in_hook(run_bandage, pg, db, args,
                                  'LOCK TABLE "Model5" IN ACCESS SHARE MODE', tmp_path,
                                  scaled(120))
    try:
        run.wait_exit_code(0)
    finally:
        peer.close()
    wait_no_bandage_session(pg, db, timeout=scaled(10))
    assert db.execute("SELECT aside, state FROM bandage.resets_in_progress",
                      user="postgres") == [("bandage_aside_0", "built")]
    before_b = {t for t in prisma_tables(db, "New")}
    failing = write_sql(tmp_path, gen_schema(MEDIUM, prefix="Next", fail_last=True), "b.sql")
    run = run_bandage(reset_args(db, *DROP_OLD, "--deployment-id", "d-b", mode="once", schema_file=failing)
                      + ["--", "true"], timeout=scaled(180))
    run.wait_exit_code(65)
    assert set(prisma_tables(db, "New")) == before_b, run.stderr
    assert prisma_tables(db, "Next") == {}
    assert "bandage_aside_1" not in leftovers(db)["aside schemas"], run.stderr


def test_crash_while_dropping_the_old_schema_is_finished_by_next_start(run_bandage, medium_db,
                                                                      pg, tmp_path):
    """A crash after the new schema was built and recorded, while the old one
    is being dropped (here: waiting for a lock a peer-like session holds): the
    next start drops the rest of the old schema and, the deploy being
    recorded, skips."""
    db, _ = medium_db
    schema = write_sql(tmp_path, gen_schema(MEDIUM, prefix="New"))
    args = reset_args(db, *DROP_OLD, "--deployment-id", "d-swap", "--lock-wait", "60", mode="once",
                      schema_file=schema)
    run, peer = hold_peer_in_hook(run_bandage, pg, db, args,
                                  'LOCK TABLE "Model5" IN ACCESS SHARE MODE', tmp_path,
                                  scaled(120))
    try:
        wait_until(lambda: pg.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = 'bandage' AND datname = %s"
            " AND wait_event_type = 'Lock' AND query LIKE 'DROP %%'", (db.name,)),
            scaled(60), lambda: f"bandage to wait for the lock; stderr:\n{run.stderr}")
        assert db.execute("SELECT state FROM bandage.resets_in_progress", user="postgres") == \
            [("built",)]  # "dropping" commits with the first batch dropped
        assert len(deploy_rows(db, "d-swap")) == 1
        run.kill_tree()
    finally:
        peer.close()
    wait_no_bandage_session(pg, db, timeout=scaled(10))
    assert leftovers(db)["aside schemas"] == ["bandage_aside_0"]
    run = run_bandage(reset_args(db, *DROP_OLD, "--deployment-id", "d-swap", mode="once",
                                 schema_file=schema), timeout=scaled(120))
    run.wait_exit_code(0)
    assert "found an interrupted reset" in run.stderr
    assert re.search(r"deploy skipped in \d+ ms: .*reset skipped: deployment id already reset",
                     run.stderr), run.stderr
    assert leftovers(db) == NO_LEFTOVERS
    assert len(prisma_tables(db, "New")) == MEDIUM and prisma_tables(db, "Model") == {}
    assert len(deploy_rows(db, "d-swap")) == 1


def test_sessions_that_come_back_during_a_batched_build_are_terminated(run_bandage, medium_db,
                                                                       pg, tmp_path):
    """An old replica that reconnects mid-build would write into the
    half-built schema. Sessions are terminated again before each batch, and a
    name proves nothing: application_name = 'bandage' is not exempt."""
    db, _ = medium_db
    stmts = generated_statements(gen_schema(MEDIUM, prefix="New"))
    stmts.insert(500, "SELECT pg_sleep(2);")  # second batch
    run = run_bandage(reset_args(db, "--log-level", "debug",
                                 schema_file=write_sql(tmp_path, "\n".join(stmts) + "\n")),
                      timeout=scaled(120))
    wait_until(lambda: pg.execute("SELECT 1 FROM pg_stat_activity WHERE datname = %s AND"
                                  " query = 'SELECT pg_sleep(2)' AND state = 'active'",
                                  (db.name,)), scaled(60), "the build to reach its second batch")
    returner = db.connect(user="postgres", application_name="bandage")
    pid = returner.info.backend_pid
    try:
        wait_until(lambda: not pg.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                                          (pid,)),
                   scaled(30), "the returning session to be terminated")
        assert run.running or run.returncode == 0
    finally:
        returner.close()
    run.wait_exit_code(0)


# --- 3. a transaction pooler ------------------------------------------------------------------

PGBOUNCER = "/usr/sbin/pgbouncer"


@pytest.fixture
def pgbouncer(pg, db):
    """pgbouncer in transaction mode in front of ``db``, round-robin over a
    warm pool, so consecutive transactions of one client land on different
    server connections (as under load)."""
    if not os.path.exists(PGBOUNCER):
        pytest.fail("pgbouncer is not installed (make deps installs it)")
    from helpers.pgbouncer import PgBouncer
    bouncer = PgBouncer(PGBOUNCER, pg, db)
    yield bouncer
    bouncer.stop()


def test_reset_through_a_transaction_pooler_is_refused(run_bandage, db, pgbouncer):
    before = seeded(db)
    run = run_bandage(reset_args(db, url=False) + ["--database-url", pgbouncer.dsn()],
                      timeout=scaled(30))
    run.wait_exit_code(64)
    assert "transaction or statement pooler" in run.stderr and "DIRECT_URL" in run.stderr, run.stderr
    assert_untouched(db, before, run)


def test_direct_url_is_used_for_the_reset_and_database_url_reaches_hooks(run_bandage, db,
                                                                         pgbouncer, app_dir):
    seeded(db)
    seen = os.path.join(app_dir, "url")
    run = run_bandage(reset_args(db, url=False) + [
        "--schema-command", f'printf %s "$DATABASE_URL" > {seen}'],
        env={"DATABASE_URL": pgbouncer.dsn(), "DIRECT_URL": db.dsn()}, timeout=scaled(30))
    run.wait_exit_code(0)
    assert open(seen).read() == pgbouncer.dsn()
    assert db.execute(EXAMPLE_TABLES_SQL, user="postgres") != []
    assert db.execute("SELECT to_regclass('public.customers')", user="postgres") == [(None,)]


# --- the drop beside an app that exits by itself ---------------------------------------------
# PID 1 stops what is left when the app exits. The drop of the old schema is
# not cut short by that: it gets --grace to finish (SIGTERMed a little before
# the grace ends, to roll its batch back cleanly); a stop signal to bandage
# still stops it at once. Before: a one-shot job (or a crash-looping app)
# left bandage_aside_0, all the old data, after every start.

def test_old_schema_goes_even_when_the_app_exits_at_once(run_bandage, medium_db, tmp_path):
    db, _ = medium_db
    schema = write_sql(tmp_path, gen_schema(MEDIUM, prefix="New"))
    run = run_bandage(reset_args(db, *DROP_OLD, "--deployment-id", "d-oneshot", mode="once",
                                 schema_file=schema) + ["--", "true"], timeout=scaled(180))
    run.wait_exit_code(0)
    assert "dropped the old schema(s) beside the app" in run.stderr, run.stderr
    assert leftovers(db) == NO_LEFTOVERS, run.stderr
    assert len(prisma_tables(db, "New")) == MEDIUM and prisma_tables(db, "Model") == {}


def test_a_drop_cut_short_is_finished_by_the_next_one_shot_start(run_bandage, medium_db, pg,
                                                                  tmp_path):
    """--grace 0 leaves the drop no time (SIGKILL with the app's exit): the
    old schema stays. The next start, without a reset and with an app that
    exits at once too, resumes the drop and finishes it within its grace."""
    db, _ = medium_db
    schema = write_sql(tmp_path, gen_schema(MEDIUM, prefix="New"))
    run = run_bandage(reset_args(db, *DROP_OLD, "--deployment-id", "d-cut", "--grace", "0", mode="once",
                                 schema_file=schema) + ["--", "true"], timeout=scaled(180))
    run.wait_exit_code(0)
    wait_no_bandage_session(pg, db, timeout=scaled(10))
    assert leftovers(db)["aside schemas"] == ["bandage_aside_0"], run.stderr
    run = run_bandage(["--database-url", db.dsn(), "--", "true"], timeout=scaled(120))
    run.wait_exit_code(0)
    assert "dropped the old schema(s) beside the app" in run.stderr, run.stderr
    assert leftovers(db) == NO_LEFTOVERS, run.stderr
    assert len(prisma_tables(db, "New")) == MEDIUM and prisma_tables(db, "Model") == {}


def test_the_drop_gets_the_grace_when_the_app_exits(run_bandage, pg, db, pid1):
    """The drop waits for a lock when the app exits; the lock goes a moment
    later, within the grace: the drop finishes, and bandage exits then."""
    built_row(db, "bandage_aside_0", "2026-01-01")
    lock = TableLock(db, "bandage_aside_0.old")
    try:
        run = run_bandage(["--database-url", db.dsn(), "--lock-wait", "60", "--grace", "30",
                           "--", "true"], pid1=pid1, timeout=scaled(60))
        wait_until(lambda: bandage_waits_in_drop(pg, db), scaled(30),
                   lambda: f"the drop to wait for the lock; stderr:\n{run.stderr}")
        run.wait_for_stderr(r"may finish", timeout=scaled(10))  # the app has exited
        time.sleep(0.5)
        assert run.running, run.stderr
    finally:
        lock.release()
    run.wait_exit_code(0, timeout=scaled(20))
    assert "dropped the old schema(s) beside the app" in run.stderr, run.stderr
    assert "SIGKILL" not in run.stderr and "sending it SIGTERM" not in run.stderr, run.stderr
    assert aside_schemas(db) == []


def test_a_drop_that_outlasts_the_grace_is_stopped_cleanly_within_it(run_bandage, pg, db, pid1):
    """The lock stays: the drop is SIGTERMed before the grace ends, rolls its
    batch back and says so; nothing needs SIGKILL, and bandage has exited
    within the grace."""
    built_row(db, "bandage_aside_0", "2026-01-01")
    lock = TableLock(db, "bandage_aside_0.old")
    try:
        run = run_bandage(["--database-url", db.dsn(), "--lock-wait", "60", "--grace", "3",
                           "--", "true"], pid1=pid1, timeout=scaled(60))
        run.wait_for_stderr(r"may finish", timeout=scaled(10))  # the app has exited
        exited = time.monotonic()
        run.wait_exit_code(0, timeout=scaled(20))
        took = time.monotonic() - exited
    finally:
        lock.release()
    assert "still running as the grace ends; sending it SIGTERM" in run.stderr, run.stderr
    assert "bandage_aside_0 (was public) is left for the next start" in run.stderr
    assert "SIGKILL" not in run.stderr, run.stderr
    assert 2.0 <= took < 3.0, f"bandage exited {took:.2f} s after the app; stderr:\n{run.stderr}"
    assert aside_schemas(db) == ["bandage_aside_0"]
    wait_no_bandage_session(pg, db, timeout=scaled(10))


@pytest.mark.parametrize("app", ["running", "exited"])
def test_a_stop_signal_stops_the_drop_at_once(run_bandage, pg, db, pid1, app):
    """docker stop (SIGTERM to bandage) while the drop waits for a lock,
    with a long grace: the drop stops at once, while the app runs (as
    before) and also once the app has exited and the drop has its grace."""
    built_row(db, "bandage_aside_0", "2026-01-01")
    lock = TableLock(db, "bandage_aside_0.old")
    command = ["sleep", "60"] if app == "running" else ["true"]
    try:
        run = run_bandage(["--database-url", db.dsn(), "--lock-wait", "60", "--grace", "30",
                           "--", *command], pid1=pid1, timeout=scaled(60))
        wait_until(lambda: bandage_waits_in_drop(pg, db), scaled(30),
                   lambda: f"the drop to wait for the lock; stderr:\n{run.stderr}")
        if app == "exited":
            run.wait_for_stderr(r"may finish", timeout=scaled(10))
        stopped = time.monotonic()
        run.send_signal(signal.SIGTERM)
        run.wait(scaled(20))
        took = time.monotonic() - stopped
    finally:
        lock.release()
    assert "bandage_aside_0 (was public) is left for the next start" in run.stderr, run.stderr
    assert took < scaled(5), f"bandage took {took:.2f} s to stop; stderr:\n{run.stderr}"
    assert "SIGKILL" not in run.stderr, run.stderr
    assert aside_schemas(db) == ["bandage_aside_0"]
