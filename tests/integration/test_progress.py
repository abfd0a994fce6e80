"""Progress lines of long work (README "What a start does"; issue 23): a large
reset's build and the drop of the old schema, a migrations run and the wait
log how far they have got, at most one line per interval and none for work
that ends sooner, in both log formats.

The interval is shortened through BANDAGE_PROGRESS_INTERVAL_MS (2 s
otherwise), so that work of a second or two shows several lines; the tests
read the lines bandage wrote, never sleep to synchronise, and check that
lines of a phase are at least the interval apart (JSON's ``elapsed_ms``).
"""
import json
import re

import pytest

from helpers import scaled
from helpers.migrations import HISTORY, MigrationsDir, line_of
from helpers.pg import PortReservation
from test_reset import (  # noqa: F401  (medium_template and medium_db are fixtures)
    DROP_OLD, MEDIUM, SUMMARY_RESET, gen_schema, generated_statements, medium_db, medium_template,
    reset_args, write_sql)

INTERVAL_MS = 100
ENV = {"BANDAGE_PROGRESS_INTERVAL_MS": str(INTERVAL_MS)}

#: "bandage: reset-build: 400 of 1601 statements, 1 batch committed; 0.3 s so far,
#: about 0.9 s left"
TEXT_LINE = re.compile(r"^bandage: (?P<phase>reset-build|schema-drop|migrations|lock-retry|"
                       r"lock-wait|table-locks|wait): (?P<detail>.*); (?P<elapsed>\d+\.\d) s so far"
                       r"(?:, about (?P<eta>\d+\.\d) s left)?$", re.M)
FIELDS = {"phase", "done", "total", "elapsed_ms", "eta_ms"}


@pytest.fixture
def refused_port():
    """A loopback port held bound but not listening: every connection is refused."""
    r = PortReservation()
    yield r.port
    r.release()


def progress(run, fmt):
    """The progress lines of a run, as dicts: phase, done, total, elapsed_ms,
    eta_ms (None when not known) and msg (the text line's detail in text
    mode, the whole message in JSON)."""
    if fmt == "text":
        return [{"phase": m["phase"], "msg": m["detail"],
                 "elapsed_ms": int(float(m["elapsed"]) * 1000),
                 "eta_ms": int(float(m["eta"]) * 1000) if m["eta"] else None}
                for m in TEXT_LINE.finditer(run.stderr)]
    lines = []
    for raw in run.stderr.splitlines():
        obj = json.loads(raw)  # every line of stderr is one object
        if "phase" in obj:
            assert FIELDS <= obj.keys(), obj
            assert obj["level"] == "info" and "report" not in obj, obj
            lines.append(obj)
    return lines


def of_phase(lines, phase):
    return [p for p in lines if p["phase"] == phase]


def assert_paced(lines, fmt):
    """Lines of one phase: elapsed grows by at least the interval each time."""
    assert lines
    first = lines[0]["elapsed_ms"]
    # none before the interval (text: elapsed is shown to 0.1 s, rounded down)
    assert first >= INTERVAL_MS - (100 if fmt == "text" else 0), lines[0]
    if fmt == "json":
        for a, b in zip(lines, lines[1:]):
            assert b["elapsed_ms"] - a["elapsed_ms"] >= INTERVAL_MS, (a, b)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_large_reset_reports_its_build_and_drop(run_bandage, medium_db, tmp_path, fmt):
    """400 tables moved aside, 1,600 statements built in batches with a
    statement of 1 s among them, then the old schema dropped."""
    db, _ = medium_db
    stmts = generated_statements(gen_schema(MEDIUM, prefix="New"))
    stmts.insert(500, "SELECT pg_sleep(1);")
    text = "\n\n".join(stmts) + "\n"
    schema = write_sql(tmp_path, text)
    run = run_bandage([*reset_args(db, *DROP_OLD, schema_file=schema), "--log-format", fmt], env=ENV,
                      timeout=scaled(120))
    run.wait_exit_code(0)
    lines = progress(run, fmt)
    build = of_phase(lines, "reset-build")
    assert_paced(build, fmt)
    if fmt == "json":
        assert {p["total"] for p in build} == {len(stmts)}
        done = [p["done"] for p in build]
        assert done == sorted(done) and 0 <= done[0] and done[-1] <= len(stmts)
        for p in build:
            assert p["eta_ms"] is None if p["done"] == 0 else p["eta_ms"] >= 0, p
            assert p["msg"].startswith(f"reset-build: {p['done']} of {len(stmts)} statements")
    else:
        assert all(re.match(rf"\d+ of {len(stmts)} statements, \d+ batch(es)? committed",
                            p["msg"]) for p in build), build
    # the long statement is named by its line while it runs
    sleep_line = line_of(text, "pg_sleep(1)")
    assert any(re.search(rf", line {sleep_line} running for \d+\.\d s", p["msg"])
               for p in build), build
    drop = of_phase(lines, "schema-drop")
    assert_paced(drop, fmt)
    assert all(re.search(r"emptying schema bandage_aside_0: \d+ of \d+ objects dropped",
                         p["msg"]) for p in drop), drop
    if fmt == "json":
        assert all(0 <= p["done"] <= p["total"] for p in drop), drop
    # the summary keeps its content
    if fmt == "text":
        assert SUMMARY_RESET.search(run.stderr), run.stderr


def test_small_reset_reports_its_one_transaction(run_bandage, db, tmp_path):
    """The one-transaction path: a statement that runs long is named."""
    text = "CREATE TABLE a (id int);\nSELECT pg_sleep(0.5);\nCREATE TABLE b (id int);\n"
    run = run_bandage([*reset_args(db, schema_file=write_sql(tmp_path, text)),
                       "--log-format", "json"], env=ENV)
    run.wait_exit_code(0)
    lines = of_phase(progress(run, "json"), "reset-build")
    assert_paced(lines, "json")
    # a line written just as the sleep ends may already count it (seen under
    # ASan: done 2 at 504 ms); what matters is that the sleep is named
    assert all(p["total"] == 3 and p["done"] in (1, 2) for p in lines), lines
    assert [p["done"] for p in lines] == sorted(p["done"] for p in lines), lines
    assert any(re.search(r"1 of 3 statements, in one transaction, line 2 running for", p["msg"])
               for p in lines), lines


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_migrations_run_reports_the_migration_and_its_line(run_bandage, db, tmp_path, fmt):
    mdir = MigrationsDir(tmp_path, migrations=HISTORY[:3])
    name = "20240104110000_slow"
    body = 'CREATE TABLE "Slow" (id integer);\nSELECT pg_sleep(1);\n'
    mdir.add(name, body)
    run = run_bandage(["--database-url", db.dsn(), "--migrations", mdir.path,
                       "--log-format", fmt], env=ENV)
    run.wait_exit_code(0)
    lines = of_phase(progress(run, fmt), "migrations")
    assert_paced(lines, fmt)
    assert all(f"migration 4 of 4, {name}" in p["msg"] for p in lines), lines
    assert any(re.search(r", line 2 running for \d+\.\d s", p["msg"]) for p in lines), lines
    if fmt == "json":
        assert all((p["done"], p["total"]) == (3, 4) for p in lines), lines
        assert all(p["eta_ms"] is not None for p in lines), lines


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_wait_reports_what_it_waits_for(run_bandage, refused_port, pg, fmt):
    run = run_bandage(["--database-url", pg.dsn(port=refused_port), "--wait-timeout", "1",
                       "--log-format", fmt], env=ENV)
    assert run.wait(scaled(10)) == 69, run.stderr
    lines = of_phase(progress(run, fmt), "wait")
    assert_paced(lines, fmt)
    assert len(lines) >= 3, run.stderr
    # after the first reason, which it repeats
    first_reason = run.stderr.index("not ready (retry)")
    assert run.stderr.index('"phase"' if fmt == "json" else "wait: database") > first_reason
    for p in lines:
        assert re.search(r"database \(.*\) not ready after \d+ attempts?, up to 1000 ms: "
                         r".*Connection refused", p["msg"]), p
    if fmt == "json":
        attempts = [p["done"] for p in lines]
        assert attempts == sorted(attempts) and attempts[0] >= 1
        assert all(p["total"] is None and p["eta_ms"] is None for p in lines), lines


def test_short_work_logs_no_progress(run_bandage, db, tmp_path):
    """At the default interval (2 s) a quick migrations run says nothing more."""
    mdir = MigrationsDir(tmp_path, migrations=HISTORY[:3])
    run = run_bandage(["--database-url", db.dsn(), "--migrations", mdir.path])
    run.wait_exit_code(0)
    assert progress(run, "text") == [], run.stderr


def test_lock_retries_report_their_attempts(run_bandage, db, tmp_path):
    """A migration whose table an open transaction has read: its lock attempts
    are retried until --lock-wait is spent, and say which attempt they are at."""
    mdir = MigrationsDir(tmp_path, migrations=HISTORY[:3])
    run_bandage(["--database-url", db.dsn(), "--migrations", mdir.path]).wait_exit_code(0)
    name = "20240104110000_post_views"
    mdir.add(name, '-- AlterTable\nALTER TABLE "Post" ADD COLUMN "views" INTEGER;\n')
    app = db.connect(user="postgres")
    try:
        app.autocommit = False
        app.execute('SELECT count(*) FROM "Post"')  # ACCESS SHARE until the transaction ends
        run = run_bandage(["--database-url", db.dsn(), "--migrations", mdir.path,
                           "--lock-wait", "1", "--log-format", "json"], env=ENV)
        run.wait_exit_code(69)
    finally:
        app.close()
    lines = of_phase(progress(run, "json"), "lock-retry")
    assert_paced(lines, "json")
    attempts = [p["done"] for p in lines]
    assert attempts == sorted(attempts) and attempts[0] >= 1, lines
    assert all(p["total"] is None and p["eta_ms"] is None for p in lines), lines
    assert all(re.search(rf"migration {name}, attempt {p['done']} at its locks \(at line 2, a "
                         r"lock it needs was held by another session\)", p["msg"])
               for p in lines), lines


def test_reset_lock_wait_reports_while_another_start_holds_it(run_bandage, db):
    """A replica queued behind another start's reset lock says so while it waits."""
    holder = db.connect(user="postgres")
    try:
        holder.autocommit = True
        holder.execute("SELECT pg_advisory_lock(7089068665867822369)")  # bandage's reset lock
        run = run_bandage([*reset_args(db), "--wait-timeout", "1", "--log-format", "json"],
                          env=ENV)
        assert run.wait(scaled(20)) == 69, run.stderr
    finally:
        holder.close()
    lines = of_phase(progress(run, "json"), "lock-wait")
    assert_paced(lines, "json")
    assert len(lines) >= 3, run.stderr
    assert all(p["msg"].startswith("lock-wait: waiting for the reset lock: another start holds "
                                   "it; ") and p["total"] is None for p in lines), lines
