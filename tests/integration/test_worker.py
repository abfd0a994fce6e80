"""The database worker: the process PID 1 forks for the database phases.

When it dies, PID 1 must say what really happened (killed by which signal,
or exited without its report), not lines meant for the app; and when bandage
itself dies, the worker must not live on and keep resetting (issue 8, item
10; issue 9, items 2 and 7), nor what the worker started: a hook's process
group, the dropper beside the app.
"""
import os
import re
import signal

import pytest

from helpers import REPO_ROOT, procs, scaled, wait_until

SLEEP_SQL = "SELECT pg_sleep(30);\n"


def sleeping_reset(run_bandage, db, tmp_path, *extra, pid1=True):
    """bandage resetting ``db`` with a schema file whose one statement sleeps
    30 s; returns the run once that statement is active on the server."""
    schema = tmp_path / "sleep.sql"
    schema.write_text(SLEEP_SQL)
    run = run_bandage(["--database-url", db.dsn(), "--reset", "always", "--confirm-database",
                       db.name, "--schema-file", str(schema), *extra], pid1=pid1)

    def sleeping():
        if not run.running:
            raise AssertionError(f"bandage exited {run.poll()}:\n{run.stderr}")
        rows = db.cluster.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state = 'active'"
            " AND query LIKE 'SELECT pg_sleep(30)%%'", (db.name,))
        return rows[0][0] > 0

    wait_until(sleeping, scaled(20), lambda: f"the schema file's pg_sleep to be active; "
               f"stderr:\n{run.stderr}")
    return run


def the_worker(run):
    """Host pid of the database worker: bandage's child running bandage."""
    (worker,) = [st for st in run.children() if st.comm == "bandage" and st.state != "Z"]
    return worker.pid


def test_worker_dies_with_a_killed_bandage(run_bandage, db, tmp_path):
    """Subreaper mode (not PID 1, so no namespace dies with bandage): SIGKILL
    of bandage mid-reset takes the worker with it within a few seconds."""
    run = sleeping_reset(run_bandage, db, tmp_path, pid1=False)
    worker = the_worker(run)
    assert worker in run.tagged_pids()
    run.send_signal(signal.SIGKILL)
    assert run.wait(scaled(5)) == 128 + signal.SIGKILL
    wait_until(lambda: not procs.exists(worker), scaled(3),
               lambda: f"the worker (pid {worker}) to die with bandage; still running: "
               f"{procs.proc_stat(worker)}")
    assert [p for p in run.tagged_pids() if procs.exists(p)] == []


def test_a_killed_worker_is_named(run_bandage, db, tmp_path, app_dir, pid1):
    """The worker SIGKILLed mid-reset (the OOM killer, an operator): bandage
    says the worker was killed by signal 9, exits 70 at once, and the app
    does not start."""
    started = f"{app_dir}/app.started"
    run = sleeping_reset(run_bandage, db, tmp_path, "--", "touch", started, pid1=pid1)
    procs.kill_quietly(the_worker(run), signal.SIGKILL)
    run.wait_exit_code(70, timeout=scaled(5))
    assert "bandage: error: the database worker was killed by signal 9 (Killed)" in run.stderr, \
        run.stderr
    assert "bandage: error: the database worker was killed by signal 9 (Killed), without a " \
        "report" in run.stderr, run.stderr
    for misleading in ("app still running", "ended without a report", "exited with 137"):
        assert misleading not in run.stderr, run.stderr
    summary = re.search(r"^bandage: deploy failed in \d+ ms: .*$", run.stderr, re.M)
    assert summary, run.stderr
    assert "killed by signal 9" in summary.group(0)
    assert not os.path.exists(started), "the app started after the worker died"


def test_the_summary_of_a_killed_worker_does_not_say_no_database_phase(run_bandage, db, tmp_path):
    run = sleeping_reset(run_bandage, db, tmp_path)
    procs.kill_quietly(the_worker(run), signal.SIGKILL)
    run.wait_exit_code(70, timeout=scaled(5))
    summary = re.search(r"^bandage: deploy failed in \d+ ms: .*$", run.stderr, re.M).group(0)
    assert "no database phase" not in summary, summary


def test_a_worker_that_ignores_the_stop_is_named(run_bandage, db, tmp_path, pid1):
    """bandage stopped (SIGTERM) while the worker cannot act on it (here:
    SIGSTOPped): after --grace the worker is SIGKILLed, and the lines say so
    (not "app still running"); the exit code is 128+15, as for any stop
    before the app started."""
    run = sleeping_reset(run_bandage, db, tmp_path, "--grace", "0.5", pid1=pid1)
    worker = the_worker(run)
    procs.kill_quietly(worker, signal.SIGSTOP)
    wait_until(lambda: (procs.proc_stat(worker) or procs.ProcStat(0, "", "T", 0, 0, 0)).state
               == "T", scaled(3), "the worker to stop")
    run.send_signal(signal.SIGTERM)
    run.wait_exit_code(128 + signal.SIGTERM, timeout=scaled(5))
    assert re.search(r"^bandage: warn: the database worker still running 500 ms after the stop "
                     r"signal; sending SIGKILL$", run.stderr, re.M), run.stderr
    assert "the database worker was killed by signal 9 (Killed)" in run.stderr, run.stderr
    assert "app still running" not in run.stderr, run.stderr


# --- what the worker starts dies with bandage too ------------------------------------------

EXAMPLE_SCHEMA = os.path.join(REPO_ROOT, "examples", "prisma", "schema.sql")


def read_pid(path):
    """The pid a hook wrote to ``path`` (``echo $$ > path``), once complete."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    return int(text) if text.endswith("\n") else None


def alive(pids):
    """The pids still running (zombies have ended: they only wait to be reaped)."""
    return {p: procs.proc_stat(p) for p in pids if procs.exists(p)}


@pytest.mark.parametrize("hook_stop", ["stops-on-sigterm", "ignores-sigterm"])
def test_a_hook_dies_with_a_killed_bandage(run_bandage, db, app_dir, hook_stop):
    """Subreaper mode (no namespace dies with bandage): bandage SIGKILLed
    while a --before-reset hook runs. The hook's shell and what it started in
    the background go too, SIGTERM first (the shell's trap sees it), SIGKILL
    after --grace for a hook that ignores SIGTERM, instead of running on
    against a database bandage no longer guards. The worker goes as well."""
    shell_file, child_file = f"{app_dir}/shell.pid", f"{app_dir}/child.pid"
    term_file = f"{app_dir}/term"
    if hook_stop == "stops-on-sigterm":
        grace, trap = scaled(3), f"trap 'echo TERM > {term_file}; exit 143' TERM"
    else:
        grace, trap = 1, "trap '' TERM"
    hook = f"{trap}; echo $$ > {shell_file}; sleep 300 & echo $! > {child_file}; wait"
    run = run_bandage(["--database-url", db.dsn(), "--reset", "once", "--deployment-id", "d1",
                       "--confirm-database", db.name, "--schema-file", EXAMPLE_SCHEMA,
                       "--grace", grace, "--before-reset", hook], pid1=False)

    def hook_pids():
        pids = read_pid(shell_file), read_pid(child_file)
        return None if None in pids else pids

    shell, child = wait_until(hook_pids, scaled(20),
                              lambda: f"the hook to write its pids; stderr:\n{run.stderr}")
    worker = the_worker(run)
    run.send_signal(signal.SIGKILL)
    assert run.wait(scaled(5)) == 128 + signal.SIGKILL
    # Within the grace when the hook stops on SIGTERM: it was not the SIGKILL.
    wait_until(lambda: not alive([shell, child, worker]),
               scaled(2.5) if hook_stop == "stops-on-sigterm" else grace + scaled(4),
               lambda: f"the hook (shell {shell}, its child {child}) and the worker "
               f"({worker}) to die with bandage; still running: "
               f"{alive([shell, child, worker])}")
    if hook_stop == "stops-on-sigterm":
        with open(term_file) as f:
            assert f.read() == "TERM\n"
    # Nothing of the run is left after the grace (what stopped the hook included);
    # whatever would be is SIGKILLed at teardown by run_bandage (found by its token).
    wait_until(lambda: not alive(run.tagged_pids()), grace + scaled(3),
               lambda: f"every process of the run to end; still running: "
               f"{alive(run.tagged_pids())}")


#: bandage's drop lock (entrypoint/db/reset.h, RESET_DROP_LOCK_KEY).
RESET_DROP_LOCK_KEY = 7089068665867822370


def leave_an_old_schema_to_drop(db):
    """What a large reset whose drop beside the app was stopped leaves: an
    old schema moved aside, recorded as built in bandage.resets_in_progress.
    The next start with an app drops it beside the app (the dropper)."""
    db.execute("CREATE SCHEMA bandage_aside_0; CREATE TABLE bandage_aside_0.old (id int);"
               "CREATE SCHEMA bandage;"
               "CREATE TABLE bandage.resets_in_progress (aside text PRIMARY KEY,"
               " original text NOT NULL, state text NOT NULL, deployment_id text,"
               " started_at timestamptz NOT NULL DEFAULT now(), position int, live_oid oid,"
               " aside_oid oid);"
               "INSERT INTO bandage.resets_in_progress (aside, original, state, position,"
               " live_oid, aside_oid) VALUES ('bandage_aside_0', 'public', 'built', 0,"
               " 'public'::regnamespace, 'bandage_aside_0'::regnamespace)", user="postgres")


def dropper_session(pg, db):
    """The backend that waits for the drop lock in ``db``, if any."""
    return pg.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                      " AND database = (SELECT oid FROM pg_database WHERE datname = %s)",
                      (db.name,))


def test_the_dropper_dies_with_a_killed_bandage(run_bandage, db, pg):
    """Subreaper mode: bandage SIGKILLed while its dropper (the process that
    drops a large reset's old schema beside the app) waits for the drop
    lock: the dropper goes too, and with it its session, so the next start
    can take the drop over."""
    leave_an_old_schema_to_drop(db)
    # A backend waiting for a lock sees its client gone only with this set
    # (as a container's killed bandage would need it too: see medium_db).
    db.execute(f"ALTER DATABASE {db.name} SET client_connection_check_interval = 50",
               user="postgres")
    with db.connect(user="postgres") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (RESET_DROP_LOCK_KEY,))

        def dropper_waiting():
            if not run.running:
                raise AssertionError(f"bandage exited {run.poll()}:\n{run.stderr}")
            return dropper_session(pg, db)

        run = run_bandage(["--database-url", db.dsn(), "--", "sleep", "300"], pid1=False)
        wait_until(dropper_waiting, scaled(20),
                   lambda: f"the dropper to wait for the drop lock; stderr:\n{run.stderr}")
        # The worker has exited; bandage's other child is the app, which outlives
        # a SIGKILLed bandage outside a container (as under any init): teardown
        # kills it.
        (dropper,) = [st.pid for st in run.children() if st.comm == "bandage"
                      and st.state != "Z"]
        run.send_signal(signal.SIGKILL)
        assert run.wait(scaled(5)) == 128 + signal.SIGKILL
        wait_until(lambda: not procs.exists(dropper), scaled(3),
                   lambda: f"the dropper (pid {dropper}) to die with bandage; still running: "
                   f"{procs.proc_stat(dropper)}")
        wait_until(lambda: not dropper_session(pg, db), scaled(5),
                   lambda: f"the dropper's session to end: {dropper_session(pg, db)}")
