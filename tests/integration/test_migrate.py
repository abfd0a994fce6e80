"""--migrations DIR (DESIGN.md "Migrations, precisely"): Prisma's migrations
directory applied by bandage against a real PostgreSQL, with Prisma's own
bookkeeping (_prisma_migrations, pg_advisory_lock(72707369)) so that bandage
and ``prisma migrate deploy`` can take turns on one database.

The migration histories are generated the way Prisma writes them
(``helpers/migrations.py``). "Nothing touched" is checked with a full
``pg_dump`` before and after.
"""
import difflib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from helpers import scaled, wait_until
from helpers.bandage import bandage_env
from helpers.migrations import (HISTORY, TAGS, TITLE_INDEX_CONCURRENTLY,
                                MigrationsDir, line_of)
from helpers.dump import dump
UUID_V4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

#: information_schema's view of the table Prisma's PostgreSQL connector
#: creates: (name, data type, max length, nullable, default).
PRISMA_COLUMNS = [
    ("id", "character varying", 36, "NO", None),
    ("checksum", "character varying", 64, "NO", None),
    ("finished_at", "timestamp with time zone", None, "YES", None),
    ("migration_name", "character varying", 255, "NO", None),
    ("logs", "text", None, "YES", None),
    ("rolled_back_at", "timestamp with time zone", None, "YES", None),
    ("started_at", "timestamp with time zone", None, "NO", "now()"),
    ("applied_steps_count", "integer", None, "NO", "0"),
]


def assert_same_dump(before, after):
    if before != after:
        diff = list(difflib.unified_diff(before.splitlines(), after.splitlines(), "before",
                                         "after", lineterm="", n=1))
        raise AssertionError("the database changed:\n" + "\n".join(diff[:60]))


def migrate_args(db, mdir, *extra, url=None):
    return ["--database-url", url or db.dsn(), "--migrations", mdir.path, *extra]


def rows(db, schema="public"):
    return db.execute(f'SELECT migration_name, checksum, id, finished_at, started_at, logs,'
                      f' rolled_back_at, applied_steps_count FROM "{schema}"."_prisma_migrations"'
                      f' ORDER BY started_at, migration_name', user="postgres")


def applied_names(db, schema="public"):
    return [r[0] for r in rows(db, schema) if r[3] is not None and r[6] is None]


def tables(db, schema="public"):
    return {r[0] for r in db.execute(
        "SELECT relname::text FROM pg_class WHERE relkind = 'r' AND relnamespace = %s::regnamespace",
        (schema,), user="postgres")}


def regclass(db, name):
    return db.execute("SELECT to_regclass(%s)::text", (name,), user="postgres")[0][0]


def run_ok(run_bandage, db, mdir, *extra, **kw):
    run = run_bandage(migrate_args(db, mdir, *extra), **kw)
    run.wait_exit_code(0)
    return run


@pytest.fixture
def mdir(tmp_path):
    """The first three migrations of HISTORY."""
    return MigrationsDir(tmp_path, migrations=HISTORY[:3])


# --- applying ---------------------------------------------------------------------

def test_empty_database_gets_every_migration_recorded_as_prisma_does(run_bandage, db, tmp_path,
                                                                      app_dir):
    mdir = MigrationsDir(tmp_path, migrations=HISTORY)
    seen = os.path.join(app_dir, "env")
    run = run_ok(run_bandage, db, mdir, "--", "sh", "-c",
                 f'printf %s "$LAST_DB_MIGRATION" > {seen}')
    assert tables(db) == {"User", "Post", "Tag", "_PostToTag", "_prisma_migrations"}
    got = rows(db)
    assert [r[0] for r in got] == mdir.names
    for name, checksum, id_, finished, started, logs, rolled_back, steps in got:
        assert checksum == mdir.checksum(name)
        assert UUID_V4.match(id_), id_
        assert finished is not None and started <= finished
        assert (logs, rolled_back, steps) == (None, None, 1)
    assert len({r[2] for r in got}) == len(got), "ids must differ"
    assert open(seen).read() == mdir.names[-1]
    assert re.search(r"deploy ok in \d+ ms: .*migrations: 5 applied in \d+ ms "
                     r"\(last 20240105080000_post_title_index\), 0 already applied", run.stderr)
    # the enum change ran inside bandage's transaction (its BEGIN/COMMIT left out)
    assert db.execute("SELECT enum_range(NULL::\"Role\")::text", user="postgres")[0][0] == \
        "{USER,EDITOR,ADMIN}"


def test_prisma_migrations_table_matches_prismas_ddl(run_bandage, db, mdir):
    run_ok(run_bandage, db, mdir)
    cols = db.execute("SELECT column_name::text, data_type::text, character_maximum_length,"
                      " is_nullable::text, column_default::text FROM information_schema.columns"
                      " WHERE table_schema = 'public' AND table_name = '_prisma_migrations'"
                      " ORDER BY ordinal_position", user="postgres")
    assert [tuple(c) for c in cols] == PRISMA_COLUMNS
    pk = db.execute("SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON"
                    " a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indisprimary"
                    " AND i.indrelid = 'public._prisma_migrations'::regclass", user="postgres")
    assert pk == [("id",)]


def test_one_new_migration_is_the_only_one_applied(run_bandage, db, mdir):
    run_ok(run_bandage, db, mdir)
    before = rows(db)
    mdir.add(*HISTORY[3])
    run = run_ok(run_bandage, db, mdir)
    after = rows(db)
    assert after[:3] == before
    assert [r[0] for r in after] == [n for n, _ in HISTORY[:4]]
    assert "Tag" in tables(db)
    assert "migrations: 1 applied" in run.stderr and "3 already applied" in run.stderr


def test_last_db_migration_is_the_newest_applied_also_with_nothing_pending(run_bandage, db,
                                                                           mdir, app_dir):
    run_ok(run_bandage, db, mdir)
    seen = os.path.join(app_dir, "env")
    run = run_ok(run_bandage, db, mdir, "--", "sh", "-c",
                 f'printf %s "${{LAST_DB_MIGRATION-unset}}" > {seen}')
    assert "up to date (3 applied)" in run.stderr
    assert open(seen).read() == HISTORY[2][0]


def test_nothing_pending_costs_one_query_more_than_a_plain_start(run_bandage, db, pg, mdir):
    """Counted by the server: transactions of the database (each round trip
    outside a transaction block is one) during a plain start and during a
    start with everything applied."""
    run_ok(run_bandage, db, mdir)

    def transactions_of(args):
        def count():
            pg.execute("SELECT pg_stat_clear_snapshot()")
            return pg.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database"
                              " WHERE datname = %s", (db.name,))[0][0]

        def idle():
            return not pg.execute("SELECT 1 FROM pg_stat_activity WHERE datname = %s",
                                  (db.name,))
        wait_until(idle, scaled(5), "the database to have no session")
        start = count()
        run_bandage(args).wait_exit_code(0)
        wait_until(idle, scaled(5), "bandage's session to end")
        # a backend's counters reach the shared stats when it exits
        return wait_until(lambda: count() - start or None, scaled(5), "the stats to arrive")

    # An autovacuum worker visiting the database (every autovacuum_naptime once
    # it has activity, with or without work) adds two or more transactions of
    # its own: the fewest of three starts is bandage's alone.
    plain = min(transactions_of(["--database-url", db.dsn()]) for _ in range(3))
    migrate = min(transactions_of(migrate_args(db, mdir)) for _ in range(3))
    assert migrate - plain == 1, (plain, migrate)


def test_failing_migration_changes_nothing_and_stops(run_bandage, db, mdir):
    run_ok(run_bandage, db, mdir)
    before = dump(db)
    bad = TAGS + '\n-- AlterTable\nALTER TABLE "Nope" ADD COLUMN "x" INTEGER;\n'
    mdir.add("20240104110000_tags", bad)
    mdir.add("20240106000000_after", 'CREATE TABLE "After" ("id" INTEGER);\n')
    run = run_bandage(migrate_args(db, mdir))
    run.wait_exit_code(65)
    line = line_of(bad, 'ALTER TABLE "Nope"')
    assert re.search(rf"migration 20240104110000_tags failed at line {line} of .*42P01", run.stderr), \
        run.stderr
    assert "1 later migration not tried" in run.stderr
    assert_same_dump(before, dump(db))
    assert "deploy failed" in run.stderr and "migration 20240104110000_tags failed" in run.stderr


def test_changed_applied_migration_warns_and_strict_refuses(run_bandage, db, mdir):
    run_ok(run_bandage, db, mdir)
    with open(mdir.file(HISTORY[1][0]), "a") as f:
        f.write("-- edited after it was applied\n")
    run = run_ok(run_bandage, db, mdir)
    assert f"bandage: warn: migration {HISTORY[1][0]} was applied from another file" in run.stderr
    mdir.add(*HISTORY[3])
    before = dump(db)
    strict = run_bandage(migrate_args(db, mdir, "--migrations-strict", "true"))
    strict.wait_exit_code(65)
    assert HISTORY[1][0] in strict.stderr and "--migrations-strict" in strict.stderr
    assert_same_dump(before, dump(db))


def test_crlf_checkout_of_an_applied_migration_is_not_a_change(run_bandage, db, mdir):
    run_ok(run_bandage, db, mdir)
    for name, sql in HISTORY[:3]:
        mdir.add(name, sql, crlf=True)
    run = run_ok(run_bandage, db, mdir, "--migrations-strict", "true")
    assert "another file" not in run.stderr


def test_missing_from_directory_is_a_warning(run_bandage, db, mdir):
    run_ok(run_bandage, db, mdir)
    os.remove(mdir.file(HISTORY[2][0]))
    os.rmdir(os.path.dirname(mdir.file(HISTORY[2][0])))
    run = run_ok(run_bandage, db, mdir)
    assert f"bandage: warn: migration {HISTORY[2][0]} is recorded in" in run.stderr


def test_failed_row_left_by_prisma_blocks_until_resolved(run_bandage, db, mdir):
    run_ok(run_bandage, db, mdir)
    mdir.add(*HISTORY[3])
    failed = HISTORY[3][0]
    # what Prisma's deploy leaves when a migration fails: started, logs, no finished_at
    db.execute("INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, logs)"
               " VALUES (%s, %s, %s, now(), %s)",
               (str(uuid.uuid4()), mdir.checksum(failed), failed,
                "Database error code: 42P07 relation \"Tag\" already exists"), user="postgres")
    before = dump(db)
    run = run_bandage(migrate_args(db, mdir))
    run.wait_exit_code(65)
    assert f"npx prisma migrate resolve --rolled-back {failed}" in run.stderr
    assert "P3009" in run.stderr
    assert_same_dump(before, dump(db))
    plan = run_bandage(migrate_args(db, mdir, "--plan", "true"))
    plan.wait_exit_code(65)
    assert f"  failed   {failed} (started " in plan.stdout
    # `prisma migrate resolve --rolled-back` sets rolled_back_at: then it is applied again
    db.execute("UPDATE _prisma_migrations SET rolled_back_at = now() WHERE migration_name = %s",
               (failed,), user="postgres")
    run_ok(run_bandage, db, mdir)
    assert applied_names(db)[-1] == failed and "Tag" in tables(db)


def test_non_empty_database_without_history_is_refused(run_bandage, db, mdir):
    db.execute('CREATE TABLE "User" ("id" INTEGER)', user="postgres")
    before = dump(db)
    run = run_bandage(migrate_args(db, mdir))
    run.wait_exit_code(65)
    assert "P3005" in run.stderr and "--reset once --migrations" in run.stderr
    assert_same_dump(before, dump(db))


def test_migration_that_cannot_run_in_a_transaction(run_bandage, db, mdir):
    run_ok(run_bandage, db, mdir)
    mdir.add(*HISTORY[4])
    run = run_ok(run_bandage, db, mdir)
    assert re.search(r"migration 20240105080000_post_title_index runs statement by statement, "
                     r"outside a transaction \(line 2: CREATE INDEX CONCURRENTLY", run.stderr), \
        run.stderr
    assert db.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = '\"Post_title_idx\"'"
                      "::regclass", user="postgres") == [(True,)]
    assert rows(db)[-1][7] == 1 and rows(db)[-1][3] is not None


@pytest.mark.parametrize("first", [False, True], ids=["second-statement", "first-statement"])
def test_failure_outside_a_transaction_leaves_a_blocking_row(run_bandage, db, mdir, first):
    """Even when the first statement fails: an interrupted CREATE INDEX
    CONCURRENTLY leaves an INVALID index, so the row stays, as Prisma's."""
    run_ok(run_bandage, db, mdir)
    name = "20240105080000_post_title_index"
    bad = 'CREATE INDEX CONCURRENTLY "x" ON "Nope"("y");\n'
    mdir.add(name, bad + TITLE_INDEX_CONCURRENTLY if first else TITLE_INDEX_CONCURRENTLY + bad)
    run = run_bandage(migrate_args(db, mdir))
    run.wait_exit_code(65)
    assert f"npx prisma migrate resolve --rolled-back {name}" in run.stderr
    assert f"{0 if first else 1} statement(s) before it stay applied" in run.stderr
    last = rows(db)[-1]
    assert last[0] == name and last[3] is None and "42P01" in last[5]
    again = run_bandage(migrate_args(db, mdir))
    again.wait_exit_code(65)
    assert "P3009" in again.stderr


# --- concurrency and signals ------------------------------------------------------------

def test_eight_replicas_apply_each_migration_once(run_bandage, db, tmp_path):
    """Including the CREATE INDEX CONCURRENTLY one: it waits for every other
    transaction's snapshot, so replicas must not wait for the lock inside a
    statement (they poll pg_try_advisory_lock)."""
    mdir = MigrationsDir(tmp_path, migrations=HISTORY)
    runs = [run_bandage(migrate_args(db, mdir), pid1=False, timeout=scaled(60))
            for _ in range(8)]
    codes = [r.wait() for r in runs]
    assert codes == [0] * 8, "\n".join(r.stderr for r in runs if r.returncode)
    got = rows(db)
    assert [r[0] for r in got] == mdir.names, [r[0] for r in got]
    assert sum("migrations: 5 applied" in r.stderr for r in runs) == 1
    assert sum("up to date (5 applied)" in r.stderr for r in runs) == 7


def bandage_sessions(pg, db):
    return pg.execute("SELECT pid, state, query FROM pg_stat_activity WHERE datname = %s"
                      " AND application_name = 'bandage'", (db.name,))


def test_sigterm_mid_migration_rolls_it_back(run_bandage, db, mdir, pg):
    run_ok(run_bandage, db, mdir)
    before = dump(db)
    mdir.add("20240104110000_tags", TAGS + "\nSELECT pg_sleep(30);\n")
    run = run_bandage(migrate_args(db, mdir))
    wait_until(lambda: any(q.startswith("SELECT pg_sleep(30)") for _, _, q in
                           bandage_sessions(pg, db)), scaled(15), "the migration's pg_sleep")
    sent = time.monotonic()
    run.send_signal(signal.SIGTERM)
    run.wait_exit_code(143, timeout=scaled(10))
    assert run.exited_at - sent < scaled(2)
    wait_until(lambda: not bandage_sessions(pg, db), scaled(5), "bandage's session to end")
    assert_same_dump(before, dump(db))


# --- locks: a wait that runs out, and Prisma's lock left behind -------------------------------

#: Prisma's migration lock: pg_advisory_lock(72707369).
PRISMA_LOCK_KEY = 72707369

HOLDER_LINE = (r"{lock} is held by server process {pid} \(application '{app}', client "
               r"127\.0\.0\.1, {state} for [\d.]+ s, transaction open {open} s\)")


@pytest.mark.parametrize("hold", ['SELECT count(*) FROM "Post"',
                                  'LOCK TABLE "Post" IN ACCESS SHARE MODE'],
                         ids=["select", "lock-table"])
def test_lock_wait_of_a_migration_exits_69_and_names_the_session(run_bandage, db, mdir, hold):
    """Before: exit 65, "migration ... failed at line 2 ...: 55P03: canceling
    statement due to lock timeout": the code that tells the operator to fix a
    migration that is fine, and nothing about the session in the way."""
    run_ok(run_bandage, db, mdir)
    name = "20240104110000_post_views"
    mdir.add(name, '-- AlterTable\nALTER TABLE "Post" ADD COLUMN "views" INTEGER;\n')
    before = dump(db)
    app = db.connect(user="postgres", application_name="app-in-a-transaction")
    try:
        app.autocommit = False
        app.execute(hold)  # ACCESS SHARE on "Post" until the transaction ends
        run = run_bandage(migrate_args(db, mdir, "--lock-wait", "0.5"))
        run.wait_exit_code(69)
        pid = app.info.backend_pid
    finally:
        app.close()
    assert re.search(rf"bandage: error: migration {name} was not applied \(rolled back\): a "
                     rf"lock it needs at line 2 of \S+/{name}/migration.sql was not free within "
                     r"500 ms in \d+ attempts of at most 200 ms \(--lock-wait, BANDAGE_LOCK_WAIT; "
                     r"55P03: ", run.stderr), run.stderr
    assert re.search(HOLDER_LINE.format(lock='a lock on a table of schema "public"', pid=pid,
                                        app="app-in-a-transaction",
                                        state="idle in transaction", open=r"[\d.]+"),
                     run.stderr), run.stderr
    assert name not in [r[0] for r in rows(db)]
    assert_same_dump(before, dump(db))


#: The app's own bound in the test below: PostgreSQL cancels any of its
#: queries that waits longer for a lock. bandage's goal is 250 ms (attempts of
#: at most 200 ms); twice that leaves a loaded CI machine room to schedule the
#: server. The goal itself is measured by bench/stall_rows.py, not asserted.
APP_LOCK_TIMEOUT = "500ms"


def test_migration_behind_an_old_transaction_never_stalls_the_app(run_bandage, db, mdir):
    """The previous deployment still serves: one of its requests holds a
    transaction that has read "Post"; its other requests keep querying
    "Post". bandage's ALTER TABLE must not queue them behind its own wait for
    the table's lock (before: one wait of --lock-wait, 20 s here, and every
    query of the app on "Post" behind it), and it applies once the old
    transaction ends."""
    run_ok(run_bandage, db, mdir)
    name = "20240104110000_post_views"
    mdir.add(name, '-- AlterTable\nALTER TABLE "Post" ADD COLUMN "views" INTEGER;\n')
    old_request = db.connect(user="postgres", application_name="old-request")
    app = db.connect(user="postgres", application_name="old-app")
    try:
        old_request.autocommit = False
        old_request.execute('SELECT count(*) FROM "Post"')  # ACCESS SHARE until it ends
        app.execute(f"SET lock_timeout = '{APP_LOCK_TIMEOUT}'")
        run = run_bandage(migrate_args(db, mdir, "--lock-wait", "20"))
        wait_until(lambda: db.execute("SELECT count(*) FROM pg_stat_activity WHERE "
                                      "application_name = 'bandage' AND wait_event_type = "
                                      "'Lock'", user="postgres")[0][0] == 1,
                   scaled(10), "bandage's migration to wait for the table's lock")
        # The app's queries while bandage retries: each would be cancelled
        # (55P03) if it queued behind a migration waiting longer than 1 s.
        for _ in range(15):
            app.execute('SELECT count(*) FROM "Post"')
            time.sleep(0.1)
        assert run.running, run.stderr
        old_request.rollback()  # the old request ends
        run.wait_exit_code(0, timeout=scaled(10))
    finally:
        old_request.close()
        app.close()
    assert "trying again in attempts of at most 200 ms" in run.stderr, run.stderr
    assert re.search(rf"migration {name} got its locks at attempt \d+", run.stderr), run.stderr
    assert name in [r[0] for r in rows(db)]
    assert db.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'Post'"
                      " AND column_name = 'views'", user="postgres") == [(1,)]


def test_stop_signal_while_retrying_a_migration_exits_at_once(run_bandage, db, mdir):
    """SIGTERM between two attempts: nothing applied, 143, no wait for --lock-wait."""
    run_ok(run_bandage, db, mdir)
    name = "20240104110000_post_views"
    mdir.add(name, '-- AlterTable\nALTER TABLE "Post" ADD COLUMN "views" INTEGER;\n')
    old_request = db.connect(user="postgres", application_name="old-request")
    try:
        old_request.autocommit = False
        old_request.execute('SELECT count(*) FROM "Post"')
        run = run_bandage(migrate_args(db, mdir, "--lock-wait", "60"))
        run.wait_for_stderr(r"trying again in attempts", timeout=scaled(10))
        sent = time.monotonic()
        run.send_signal(signal.SIGTERM)
        run.wait_exit_code(143, timeout=scaled(10))
        assert run.exited_at - sent < scaled(2)
    finally:
        old_request.close()
    assert name not in [r[0] for r in rows(db)]


def test_prisma_lock_wait_names_its_holder_in_this_database(run_bandage, db, db_factory, mdir):
    """Before: "the migrations lock ... was not free within 1000 ms" and
    nothing about who holds it. The same key held in another database is
    another lock (advisory locks are per database): not named."""
    other = db_factory()
    holder = db.connect(user="postgres", application_name="prisma-migrate-deploy")
    elsewhere = other.connect(user="postgres", application_name="another-database")
    try:
        holder.execute(f"SELECT pg_advisory_lock({PRISMA_LOCK_KEY})")
        elsewhere.execute(f"SELECT pg_advisory_lock({PRISMA_LOCK_KEY})")
        run = run_bandage(migrate_args(db, mdir, "--wait-timeout", "1"))
        run.wait_exit_code(69)
        pid = holder.info.backend_pid
    finally:
        holder.close()
        elsewhere.close()
    assert re.search(HOLDER_LINE.format(lock=rf"the migrations lock \(pg_advisory_lock\("
                                             rf"{PRISMA_LOCK_KEY}\)\)",
                                        pid=pid, app="prisma-migrate-deploy", state="idle",
                                        open="-"), run.stderr), run.stderr
    assert "another-database" not in run.stderr
    assert tables(db) == set()


def prisma_lock_holders(pg, db):
    """Server sessions holding Prisma's lock in ``db``, read on the server
    itself (not through a pooler)."""
    return pg.execute("SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                      " WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = %s"
                      " AND l.objsubid = 1 AND d.datname = %s", (PRISMA_LOCK_KEY, db.name))


def test_prisma_lock_is_free_after_a_run_that_succeeded_and_one_that_failed(run_bandage, db, pg,
                                                                            mdir):
    """Direct connection: bandage's session ends with it, so this held before
    the explicit release too; the pooler test below is the one that needs it."""
    run_ok(run_bandage, db, mdir)
    wait_until(lambda: not prisma_lock_holders(pg, db), scaled(5), "no holder after success")
    mdir.add("20240201000000_broken", 'ALTER TABLE "Nope" ADD "x" INT;\n')
    run_bandage(migrate_args(db, mdir)).wait_exit_code(65)
    wait_until(lambda: not prisma_lock_holders(pg, db), scaled(5), "no holder after failure")
    with db.connect(user="postgres") as conn:
        assert conn.execute(f"SELECT pg_try_advisory_lock({PRISMA_LOCK_KEY})").fetchone()[0]


PGBOUNCER = "/usr/sbin/pgbouncer"


@pytest.fixture
def pgbouncer(pg, db):
    """pgbouncer in transaction mode in front of ``db`` (helpers/pgbouncer.py:
    round robin over a warm pool), without pgbouncer=true in the URL: a pooler
    bandage is not told about."""
    if not os.path.exists(PGBOUNCER):
        pytest.fail("pgbouncer is not installed (make deps installs it)")
    from helpers.pgbouncer import PgBouncer
    bouncer = PgBouncer(PGBOUNCER, pg, db)
    yield bouncer
    bouncer.stop()


@pytest.mark.parametrize("case", ["up-to-date", "plan", "pending", "plan-pending"])
def test_no_prisma_lock_is_left_on_a_pooled_server_connection(run_bandage, db, pg, mdir,
                                                              pgbouncer, case):
    """pgbouncer keeps its server connections after bandage exits: a session
    lock taken through it stays with one of them, and every later `prisma
    migrate deploy` or bandage waits for it in vain. Before: the lock stayed
    in every case, the pending migration was applied through the pooler (its
    transactions on other server connections than the lock), and the plan
    of it said it would be."""
    run_ok(run_bandage, db, mdir)
    if case.endswith("pending"):
        mdir.add(*HISTORY[3])
    extra = ["--plan", "true"] if case.startswith("plan") else []
    run = run_bandage(migrate_args(db, mdir, *extra, url=pgbouncer.dsn()), timeout=scaled(30))
    code = run.wait()
    if case.endswith("pending"):
        assert code == 64, run.stderr
        assert re.search(r"bandage: error: the database connection goes through a transaction "
                         r"(or statement )?pooler .*set DIRECT_URL", run.stderr), run.stderr
        assert applied_names(db) == mdir.names[:3]
    else:
        assert code == 0, run.stderr
    if case == "plan-pending":
        assert "refused (exit 64): connection through a transaction pooler" in run.stdout
    assert prisma_lock_holders(pg, db) == []


# --- --plan -------------------------------------------------------------------------------

def test_plan_lists_pending_and_changes_nothing(run_bandage, db, mdir, app_dir):
    run_ok(run_bandage, db, mdir)
    mdir.add(*HISTORY[3])
    mdir.add(*HISTORY[4])
    with open(mdir.file(HISTORY[0][0]), "a") as f:
        f.write("-- edited\n")
    before = dump(db)
    started = os.path.join(app_dir, "started")
    run = run_ok(run_bandage, db, mdir, "--plan", "true", "--", "touch", started)
    out = run.stdout
    assert f"  changed  {HISTORY[0][0]} (applied; its file's checksum differs)" in out
    assert f"  applied  {HISTORY[1][0]}" in out
    assert f"  pending  {HISTORY[3][0]} (6 statements)" in out
    assert re.search(rf"  pending  {HISTORY[4][0]} \(1 statement, outside a transaction: "
                     r"line 2: CREATE INDEX CONCURRENTLY", out), out
    assert "2 pending, 1 changed: nothing was changed (--plan)" in out
    assert not os.path.exists(started), "--plan must not start the app"
    assert_same_dump(before, dump(db))


def failed_row(db, mdir):
    """A row as Prisma's deploy leaves a failed migration (P3009), and that
    migration pending in the directory."""
    mdir.add(*HISTORY[3])
    db.execute("INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, logs)"
               " VALUES (%s, %s, %s, now(), 'Database error code: 42P07')",
               (str(uuid.uuid4()), mdir.checksum(HISTORY[3][0]), HISTORY[3][0]), user="postgres")
    return "P3009", []


def changed_strict(db, mdir):
    """An applied migration edited since, with --migrations-strict."""
    with open(mdir.file(HISTORY[1][0]), "a") as f:
        f.write("-- edited after it was applied\n")
    mdir.add(*HISTORY[3])
    return "checksum", ["--migrations-strict", "true"]


def tables_without_history(db, mdir):
    """A database built without migrations (Prisma's P3005)."""
    db.execute("DROP TABLE _prisma_migrations", user="postgres")
    return "P3005", []


@pytest.mark.parametrize("refusal", [failed_row, changed_strict, tables_without_history],
                         ids=["failed-row", "changed-strict", "tables-without-history"])
def test_plan_of_a_start_that_would_be_refused_says_so_and_exits_as_it(run_bandage, db, mdir,
                                                                       refusal):
    """Before: the plan listed the pending migrations, ended "N pending: nothing
    was changed" and exited 0 ("deploy ok"), while the start it described
    applied none and exited 65. The plan now exits with the start's code and
    logs the start's own error lines."""
    run_ok(run_bandage, db, mdir)
    code, extra = refusal(db, mdir)
    before = dump(db)
    plan = run_bandage(migrate_args(db, mdir, "--plan", "true", *extra))
    plan_code = plan.wait()
    assert_same_dump(before, dump(db))
    start = run_bandage(migrate_args(db, mdir, *extra))
    start.wait_exit_code(65)
    assert_same_dump(before, dump(db))
    assert plan_code == 65, plan.stdout + plan.stderr
    errors = [l for l in start.stderr.splitlines() if l.startswith("bandage: error: ")]
    assert errors and all(l in plan.stderr.splitlines() for l in errors), \
        (errors, plan.stderr)
    assert re.search(r"^refused \(exit 65\): .+; a real start applies no migration; nothing "
                     r"was changed \(--plan\)$", plan.stdout, re.M), plan.stdout
    assert "pending, " not in plan.stdout.splitlines()[-1]
    assert "deploy failed" in plan.stderr and f"migrate {code}" in plan.stderr, plan.stderr


def test_plan_on_an_empty_database_creates_nothing(run_bandage, db, mdir):
    before = dump(db)
    run = run_ok(run_bandage, db, mdir, "--plan", "true")
    assert "(does not exist yet)" in run.stdout and "3 pending" in run.stdout
    assert_same_dump(before, dump(db))


# --- configuration ---------------------------------------------------------------------------

def test_wrong_provider_is_a_usage_error_before_connecting(run_bandage, tmp_path):
    mdir = MigrationsDir(tmp_path, provider="mysql", migrations=HISTORY[:1])
    run = run_bandage(["--database-url", "postgresql://u@127.0.0.1:9/x", "--migrations",
                       mdir.path])
    run.wait_exit_code(64, timeout=scaled(5))
    assert "migration_lock.toml" in run.stderr and '"mysql"' in run.stderr
    assert "waiting" not in run.stderr.lower()


def test_pending_directory_without_migration_sql_is_a_usage_error(run_bandage, db, mdir):
    os.makedirs(os.path.join(mdir.path, "20240109000000_empty"))
    before = dump(db)
    run = run_bandage(migrate_args(db, mdir))
    run.wait_exit_code(64)
    assert "20240109000000_empty has no migration.sql" in run.stderr
    assert_same_dump(before, dump(db))


def test_url_schema_parameter_puts_everything_there(run_bandage, db, mdir):
    run = run_bandage(migrate_args(db, mdir, url=db.dsn(schema="other")))
    run.wait_exit_code(0)
    assert tables(db, "other") == {"User", "Post", "_prisma_migrations"}
    assert tables(db) == set()
    assert [r[0] for r in rows(db, "other")] == mdir.names


def test_webhook_report_has_the_migrations(run_bandage, db, mdir, webhook):
    run_ok(run_bandage, db, mdir, "--webhook-url", webhook.url)
    webhook.wait_for(1, scaled(5))
    report = json.loads(webhook.requests[0].body)
    m = report["migrations"]
    assert (m["applied"], m["skipped"], m["failed"], m["pending"]) == (3, 0, 0, 0)
    assert m["last"] == HISTORY[2][0]
    assert [i["name"] for i in m["items"]] == [n for n, _ in HISTORY[:3]]
    assert all(i["status"] == "applied" and isinstance(i["ms"], int) for i in m["items"])


# --- memory -------------------------------------------------------------------------------

VALGRIND = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect",
            "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
            "--child-silent-after-fork=no", "--trace-children=no"]


@pytest.mark.skipif(os.environ.get("BANDAGE_SANITIZED") == "1",
                    reason="an ASan build does not run under valgrind")
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_migration_runs_are_clean_under_valgrind(bandage_bin, db, tmp_path):
    """Apply (with the outside-a-transaction path), nothing pending, --plan,
    and a failure: no leak, no memory error, in PID 1 or the worker."""
    mdir = MigrationsDir(tmp_path, migrations=HISTORY)
    steps = [([], 0), ([], 0), (["--plan", "true"], 0)]
    for extra, expected in steps + [(None, 65)]:
        if extra is None:
            mdir.add("20240201000000_broken", 'SELECT 1;\nALTER TABLE "Nope" ADD "x" INT;\n')
            extra = []
        r = subprocess.run(VALGRIND + [bandage_bin, *migrate_args(db, mdir, *extra)],
                           env=bandage_env(None), capture_output=True, text=True,
                           timeout=scaled(120))
        summaries = re.findall(r"ERROR SUMMARY: (\d+) errors", r.stderr)
        assert r.returncode == expected, r.stderr[-4000:]
        assert len(summaries) >= 2 and set(summaries) == {"0"}, r.stderr[-4000:]
        assert not re.search(r"(definitely|indirectly) lost: [1-9]", r.stderr), r.stderr[-4000:]


# --- reset plus migrations ------------------------------------------------------------------

def reset_migrate_args(db, mdir, *extra):
    return ["--database-url", db.dsn(), "--reset", "always", "--confirm-database", db.name,
            "--migrations", mdir.path, *extra]


def test_reset_with_migrations_rebuilds_and_baselines(run_bandage, db, tmp_path):
    """A database that held another schema (a db push era table with data):
    the reset drops it and rebuilds from every migration in the reset's own
    all-or-nothing machinery (BEGIN/COMMIT of the files left out,
    CONCURRENTLY dropped), and records every migration: bandage --migrations
    (or prisma migrate deploy) then finds nothing pending."""
    db.execute("CREATE TABLE legacy (id int); INSERT INTO legacy VALUES (1)", user="postgres")
    mdir = MigrationsDir(tmp_path, migrations=HISTORY)
    run = run_bandage(reset_migrate_args(db, mdir))
    run.wait_exit_code(0)
    assert tables(db) == {"User", "Post", "Tag", "_PostToTag", "_prisma_migrations"}
    assert regclass(db, '"Post_title_idx"') is not None
    got = rows(db)
    assert [g[0] for g in got] == mdir.names
    assert all(g[1] == mdir.checksum(g[0]) and UUID_V4.match(g[2]) and g[7] == 1
               and g[3] is not None and g[6] is None for g in got)
    assert len({g[4] for g in got}) == len(got), "started_at must order them"
    run = run_ok(run_bandage, db, mdir, "--migrations-strict", "true")
    assert "up to date (5 applied)" in run.stderr


def test_reset_with_migrations_names_the_failing_migration_and_line(run_bandage, db, tmp_path):
    db.execute("CREATE TABLE legacy (id int); INSERT INTO legacy VALUES (1)", user="postgres")
    before = dump(db)
    mdir = MigrationsDir(tmp_path, migrations=HISTORY[:2])
    mdir.add("20240103000000_bad", "SELECT 1;\n\nALTER TABLE \"Nope\" ADD \"x\" INT;\n")
    run = run_bandage(reset_migrate_args(db, mdir))
    run.wait_exit_code(65)
    assert "migration 20240103000000_bad, line 3: 42P01" in run.stderr, run.stderr
    assert_same_dump(before, dump(db))


def test_plan_of_a_reset_changes_nothing(run_bandage, db, tmp_path, app_dir):
    db.execute("CREATE TABLE legacy (id int); INSERT INTO legacy VALUES (1), (2)",
               user="postgres")
    db.execute("ANALYZE legacy", user="postgres")
    before = dump(db)
    mdir = MigrationsDir(tmp_path, migrations=HISTORY)
    started = os.path.join(app_dir, "started")
    run = run_bandage(reset_migrate_args(db, mdir, "--plan", "--", "touch", started))
    run.wait_exit_code(0)
    assert "drop and recreate schema public: 1 table(s), about 2 row(s)" in run.stdout, run.stdout
    assert "in one transaction" in run.stdout
    # what the migrations find after the reset, not in the database as it is (no history)
    assert f"the reset records the 5 migration(s) in {mdir.path} as applied; none pending" \
        in run.stdout, run.stdout
    assert "nothing was changed (--plan)" in run.stdout
    assert not os.path.exists(started)
    assert_same_dump(before, dump(db))


def test_concurrent_index_waits_for_the_apps_transactions_beyond_lock_wait(run_bandage, db, mdir):
    """CREATE INDEX CONCURRENTLY waits for older transactions (blocking
    nobody): an app transaction longer than --lock-wait must not fail it."""
    run_ok(run_bandage, db, mdir)
    mdir.add(*HISTORY[4])
    with db.connect(user="postgres") as app:
        app.autocommit = False
        # a snapshot held open (READ COMMITTED would drop it between statements)
        app.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        app.execute('SELECT count(*) FROM "Post"')
        run = run_bandage(migrate_args(db, mdir, "--lock-wait", "0.5"))
        wait_until(lambda: db.execute("SELECT 1 FROM pg_stat_activity WHERE application_name ="
                                      " 'bandage' AND wait_event_type = 'Lock'", user="postgres"),
                   scaled(10), "CREATE INDEX CONCURRENTLY to wait for the app's transaction")
        time.sleep(1)  # longer than --lock-wait: the point of the test, not a synchronisation
        assert run.running, run.stderr
        app.rollback()
    run.wait_exit_code(0)
    assert db.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = '\"Post_title_idx\"'"
                      "::regclass", user="postgres") == [(True,)]
