"""What bandage says when a start fails or has nothing to do (issue 25, item 4):
a failed schema file or migration says the database is unchanged (rolled
back); a refused --confirm-database shows the value given and the name found;
the summary line does not repeat an error logged in full above it (the
webhook's text keeps it); --plan without --reset or --migrations says what a
start would do and exits 0; the demo prints each command it runs.

The reset arguments and the database checks come from ``test_reset.py``.
"""
import os
import re
import subprocess

import pytest

from helpers import IS_ROOT, REPO_ROOT, scaled
from helpers.migrations import HISTORY, MigrationsDir
from helpers.pg import PortReservation
from test_reset import SEED_SQL, assert_same_dump, dump, reset_args, schema_for_path

SUMMARY_RX = re.compile(r"^bandage: (deploy (?:ok|skipped|failed) in \d+ ms: .*)$", re.M)

BAD_SCHEMA = 'CREATE TABLE made_first (id int);\nCREATE TABLE broken (x no_such_type);\n'


def only_summary(run):
    found = SUMMARY_RX.findall(run.stderr)
    assert len(found) == 1, f"expected one summary line, got {found}; stderr:\n{run.stderr}"
    return found[0]


# --- exit 65 says the database is unchanged ---------------------------------------------

@pytest.mark.parametrize("path", ["one transaction", "batched"])
def test_failed_schema_file_says_the_database_is_unchanged(run_bandage, db, tmp_path, path):
    """Before: the line and SQLSTATE, and nothing about what became of the
    database."""
    db.execute(SEED_SQL)
    before = dump(db)
    schema, _ = schema_for_path(tmp_path, BAD_SCHEMA, path)
    run = run_bandage(reset_args(db, schema_file=schema), timeout=scaled(60))
    run.wait_exit_code(65)
    assert "line 2: 42704: type \"no_such_type\" does not exist" in run.stderr, run.stderr
    if path == "one transaction":
        said = f"bandage: error: the reset was rolled back: database '{db.name}' is unchanged"
    else:
        said = (f"bandage: error: the reset was undone: the old schema(s) are back and "
                f"database '{db.name}' is unchanged")
    assert said in run.stderr, run.stderr
    assert_same_dump(before, dump(db))


def test_failed_migration_says_it_was_rolled_back(run_bandage, db, tmp_path):
    mdir = MigrationsDir(tmp_path, migrations=HISTORY[:2])
    run = run_bandage(["--database-url", db.dsn(), "--migrations", mdir.path])
    run.wait_exit_code(0)
    name = "20240105000000_broken"
    mdir.add(name, 'CREATE TABLE "Made" (id int);\nCREATE TABLE "Broken" (x no_such_type);\n')
    before = dump(db)
    run = run_bandage(["--database-url", db.dsn(), "--migrations", mdir.path])
    run.wait_exit_code(65)
    assert re.search(rf"bandage: error: migration {name} failed at line 2 of \S+/{name}/"
                     r"migration.sql: 42704: type \"no_such_type\" does not exist; rolled back: "
                     r"the database is as it was before this migration; 0 later migrations not "
                     r"tried", run.stderr), run.stderr
    assert_same_dump(before, dump(db))


# --- a refused confirmation shows both names -----------------------------------------------

@pytest.mark.parametrize("given", ["staging", None], ids=["wrong name", "not set"])
def test_refused_confirmation_shows_the_value_given_and_the_name_found(run_bandage, db, given):
    db.execute(SEED_SQL)
    before = dump(db)
    run = run_bandage(reset_args(db, confirm=given))
    run.wait_exit_code(77)
    ident = db.execute("SELECT system_identifier::text FROM pg_control_system()")[0][0]
    found = f"refusing to reset database '{db.name}' (system identifier {ident}): "
    fix = f"set it to '{db.name}' (or '{db.name}:{ident}') if this is the database to reset"
    if given:
        said = (found + "--confirm-database (BANDAGE_CONFIRM_DATABASE) is 'staging', but the "
                f"connected database is '{db.name}'; " + fix)
    else:
        said = found + "--confirm-database (BANDAGE_CONFIRM_DATABASE) is not set; " + fix
    assert said in run.stderr, run.stderr
    assert_same_dump(before, dump(db))


# --- the summary does not repeat what was logged --------------------------------------------

def test_summary_does_not_repeat_a_logged_error(run_bandage, pg, webhook):
    """Before: "deploy failed ...: 1 error (wait timeout: not ready after 1
    attempt: connection to server at ... failed: Connection refused; Is the
    server running ...)", the libpq error a second time on one line."""
    port = PortReservation()
    try:
        run = run_bandage(["--database-url", pg.dsn(port=port.port), "--wait-timeout", "0",
                           "--webhook-url", webhook.url, "--webhook-format", "slack"])
        run.wait_exit_code(69)
    finally:
        port.release()
    errors = [line for line in run.stderr.splitlines() if line.startswith("bandage: error:")]
    assert len(errors) == 1 and "Connection refused" in errors[0], run.stderr
    summary = only_summary(run)
    assert summary.endswith(", 1 error (wait timeout)"), summary
    assert "Connection refused" not in summary, summary
    # The webhook has no log above it: its text keeps the message.
    (req,) = webhook.requests
    text = req.json()["text"]
    assert summary in text and "Connection refused" in text, text


# --- --plan with nothing to plan ----------------------------------------------------------------

@pytest.mark.parametrize("command", [[], ["--", "node", "dist/index.js"]], ids=["exit", "app"])
def test_plan_without_reset_or_migrations_says_what_a_start_does(run_bandage, db, command):
    """Before: no plan at all, only the summary line."""
    db.execute(SEED_SQL)
    before = dump(db)
    run = run_bandage(["--database-url", db.dsn(), "--plan", *command])
    run.wait_exit_code(0)
    lines = run.stdout.splitlines()
    assert lines[0] == ("bandage --plan: no --reset, no --migrations: nothing to change; a start "
                        "would"), run.stdout
    assert lines[1] == "  wait for the database (up to --wait-timeout; it is ready now)"
    assert lines[2] == ("  then run as PID 1: node dist/index.js" if command
                        else "  then exit 0 (no COMMAND after --)"), run.stdout
    assert lines[3] == "nothing was changed (--plan)", run.stdout
    assert only_summary(run).startswith("deploy ok in "), run.stderr
    assert_same_dump(before, dump(db))


def test_plan_without_a_database_says_it_would_not_wait(run_bandage):
    run = run_bandage(["--plan"], pid1=False)
    run.wait_exit_code(0)
    assert "  not wait: no database is configured (DATABASE_URL, PG* variables)\n" in run.stdout
    assert "  then exit 0 (no COMMAND after --)\n" in run.stdout


# --- the demo ---------------------------------------------------------------------------------

@pytest.mark.skipif(not IS_ROOT, reason="the demo runs bandage as PID 1 with unshare (root)")
def test_demo_prints_its_commands_and_the_second_start_skips(bandage_bin):
    """Before: no command was shown, and the header "the second start skips the
    reset" sat above a start that reset."""
    env = dict(os.environ, BANDAGE=bandage_bin)
    for name in list(env):
        if name.startswith(("BANDAGE_", "PG")) or name == "DATABASE_URL":
            del env[name]
    env["BANDAGE"] = bandage_bin
    out = subprocess.run([os.path.join(REPO_ROOT, "scripts", "demo.sh")], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=scaled(120))
    text = out.stdout
    assert out.returncode == 0, text
    shown = [line for line in text.splitlines() if line.startswith("$ ")]
    assert len(shown) == 4, text
    assert shown[0].startswith("$ export DATABASE_URL=postgresql://"), shown
    assert "--reset always --confirm-database postgres" in shown[1], shown
    assert shown[2] == shown[3] and "BANDAGE_DEPLOYMENT_ID=demo-1" in shown[2], shown

    def next_summary(header):
        """The first summary line after the header."""
        return SUMMARY_RX.search(text, text.index(header)).group(1)

    assert re.match(r"deploy ok in \d+ ms: .*reset in",
                    next_summary("== a first start with --reset once")), text
    assert re.match(r"deploy skipped in \d+ ms: .*reset skipped: deployment id already reset",
                    next_summary("== the second start with the same deployment id skips")), text
