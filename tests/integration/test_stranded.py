"""Nothing stranded (issue 17): bandage's locks never outlive it, a pooler
in front of the database is recognised before any lock is taken, and a lock
wait that runs out names the session holding the lock.
"""
import re

import pytest  # noqa: F401

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
