"""bandage under valgrind --leak-check=full: no leak and no memory error in
PID 1, in the database worker, or in the webhook sender (valgrind follows
forks), for a supervisor-only run and for a full wait + reset + webhook run.
Skipped for the ASan build (the two instrumentations do not mix)."""
import os
import re
import shutil
import subprocess

import pytest

from helpers import scaled
from helpers.bandage import bandage_env

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE_SCHEMA = os.path.join(REPO, "examples", "prisma", "schema.sql")

pytestmark = [
    pytest.mark.skipif(os.environ.get("BANDAGE_SANITIZED") == "1",
                       reason="an ASan build does not run under valgrind"),
    pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed"),
]

VALGRIND = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect",
            "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
            "--child-silent-after-fork=no", "--trace-children=no"]


def run_under_valgrind(bandage_bin, args, env=None):
    r = subprocess.run(VALGRIND + [bandage_bin] + args, env=bandage_env(env),
                       capture_output=True, text=True, timeout=scaled(120))
    summaries = re.findall(r"ERROR SUMMARY: (\d+) errors", r.stderr)
    return r, summaries


def assert_clean(r, summaries, processes):
    assert r.returncode == 0, r.stderr[-4000:]
    # One summary per process valgrind watched: PID 1 and each forked helper.
    assert len(summaries) >= processes, r.stderr[-4000:]
    assert set(summaries) == {"0"}, r.stderr[-4000:]
    assert "definitely lost: 0 bytes" in r.stderr or "All heap blocks were freed" in r.stderr
    assert not re.search(r"(definitely|indirectly) lost: [1-9]", r.stderr), r.stderr[-4000:]


def test_supervisor_only_run_is_clean(bandage_bin):
    r, summaries = run_under_valgrind(bandage_bin, ["--", "/bin/sh", "-c", "exit 0"])
    assert_clean(r, summaries, processes=1)


def test_wait_reset_and_webhook_run_is_clean(bandage_bin, db, webhook):
    r, summaries = run_under_valgrind(
        bandage_bin, ["--database-url", db.dsn(), "--reset", "always",
                      "--confirm-database", db.name, "--schema-file", EXAMPLE_SCHEMA,
                      "--webhook-url", webhook.url, "--", "/bin/sh", "-c", "exit 0"])
    # PID 1, the database worker, the deploy sender, the exit sender.
    assert_clean(r, summaries, processes=4)
    assert len(webhook.requests) == 2, webhook.requests


def test_failed_reset_is_clean(bandage_bin, db, tmp_path):
    bad = tmp_path / "bad.sql"
    bad.write_text("CREATE TABLE a (id int);\nCREATE TABLE b (id nosuchtype);\n")
    r, summaries = run_under_valgrind(
        bandage_bin, ["--database-url", db.dsn(), "--reset", "always",
                      "--confirm-database", db.name, "--schema-file", str(bad)])
    assert r.returncode == 65, r.stderr[-4000:]
    assert set(summaries) == {"0"} and len(summaries) >= 2, r.stderr[-4000:]
