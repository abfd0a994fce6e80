"""Nothing stranded (issue 17): bandage's locks never outlive it, a pooler
in front of the database is recognised before any lock is taken, and a lock
wait that runs out names the session holding the lock.
"""
import os
import re

import pytest

from helpers import scaled
from helpers.migrations import HISTORY, MigrationsDir
from test_reset import SEED_SQL, assert_same_dump, dump, reset_args

#: bandage's advisory lock key (entrypoint/db/reset.h, RESET_LOCK_KEY).
RESET_LOCK_KEY = 7089068665867822369


def test_reset_lock_wait_names_the_holder(run_bandage, db):
    """Before: "waiting for the reset lock failed: 55P03 ..." and nothing
    about who holds it."""
    db.execute(SEED_SQL, user="postgres")
    before = dump(db)
    holder = db.connect(user="postgres", application_name="old-deploy")
    try:
        holder.execute(f"SELECT pg_advisory_lock({RESET_LOCK_KEY})")
        run = run_bandage(reset_args(db, "--wait-timeout", "1"))
        run.wait_exit_code(69)
        pid = holder.info.backend_pid
        assert re.search(rf"pg_advisory_lock\({RESET_LOCK_KEY}\) is held by server process "
                         rf"{pid} \(application 'old-deploy', client 127\.0\.0\.1, idle for "
                         r"[\d.]+ s, transaction open - s\)", run.stderr), run.stderr
    finally:
        holder.close()
    assert_same_dump(before, dump(db))


# --- a pooler in front of the database --------------------------------------------------------

PGBOUNCER = "/usr/sbin/pgbouncer"
#: Prisma's migrations lock key.
PRISMA_LOCK_KEY = 72707369


@pytest.fixture
def bouncer_factory(pg, db):
    from helpers.pgbouncer import PgBouncer
    made = []

    def make(mode, quiet=True):
        if not os.path.exists(PGBOUNCER):
            pytest.fail("pgbouncer is not installed (make deps installs it)")
        made.append(PgBouncer(PGBOUNCER, pg, db, mode=mode, quiet=quiet))
        return made[-1]
    yield make
    for bouncer in made:
        bouncer.stop()


def advisory_locks(db):
    """Every advisory lock held in the database, by any server session: the
    pool's idle server connections included."""
    return db.execute("SELECT pid, classid::bigint << 32 | objid::bigint FROM pg_locks"
                      " WHERE locktype = 'advisory' AND granted AND database ="
                      " (SELECT oid FROM pg_database WHERE datname = current_database())",
                      user="postgres")


@pytest.mark.parametrize("mode", ["transaction", "statement"])
def test_quiet_transaction_pooler_is_refused_before_any_lock(run_bandage, db, bouncer_factory,
                                                             mode):
    """A quiet pool hands bandage's one client the same server process every
    time, so the pinned check passed: the reset ran, and the pooled server
    connection kept pg_advisory_lock(7089068665867822369) after bandage had
    gone. Now the pooler is recognised first: exit 64, nothing touched,
    nothing held."""
    db.execute(SEED_SQL, user="postgres")
    before = dump(db)
    bouncer = bouncer_factory(mode)
    run = run_bandage(reset_args(db, url=False) + ["--database-url", bouncer.dsn()],
                      timeout=scaled(30))
    run.wait_exit_code(64)
    assert "transaction or statement pooler" in run.stderr and "DIRECT_URL" in run.stderr, \
        run.stderr
    assert advisory_locks(db) == []
    assert_same_dump(before, dump(db))


def test_migrations_through_a_quiet_transaction_pooler_leave_no_lock(run_bandage, db, tmp_path,
                                                                    bouncer_factory):
    """Before: the migrations ran, and Prisma's lock (72707369) stayed on the
    pooled server connection: every later `prisma migrate deploy` waited."""
    bouncer = bouncer_factory("transaction")
    mdir = MigrationsDir(tmp_path, migrations=HISTORY[:2])
    run = run_bandage(["--database-url", bouncer.dsn(), "--migrations", mdir.path],
                      timeout=scaled(30))
    run.wait_exit_code(64)
    assert "DIRECT_URL" in run.stderr, run.stderr
    assert advisory_locks(db) == []
    assert db.execute("SELECT to_regclass('_prisma_migrations')", user="postgres") == [(None,)]


def test_session_pooler_is_accepted_and_keeps_nothing(run_bandage, db, bouncer_factory):
    """A session pooler (Supabase's port 5432, the URL Prisma's docs give as
    directUrl) keeps the server process to bandage while it is connected:
    the reset runs, and no lock is left on the pool's server connection."""
    db.execute(SEED_SQL, user="postgres")
    bouncer = bouncer_factory("session")
    run = run_bandage(reset_args(db, url=False) + ["--database-url", bouncer.dsn()],
                      timeout=scaled(30))
    run.wait_exit_code(0)
    assert "session pooler" in run.stderr, run.stderr
    assert db.execute("SELECT to_regclass('public.customers')", user="postgres") == [(None,)]
    assert advisory_locks(db) == []


def test_direct_connection_opens_no_second_connection(run_bandage, db):
    """The check costs a direct connection one round trip: libpq's announced
    process is the server's own."""
    run = run_bandage(reset_args(db, "--log-level", "debug"))
    run.wait_exit_code(0)
    assert "pooler check" not in run.stderr, run.stderr
