"""Every result status libpq can return, handled (DESIGN.md "Layout": query.c;
issue 9 item 2): a schema file with ``COPY ... FROM stdin`` (as pg_dump writes
it) or ``COPY ... TO stdout`` fails its statement promptly, with exit 65
naming the line, the database unchanged; a stop signal is honoured while a
COPY streams; bandage's server session ends soon after bandage is SIGKILLed
mid-statement (issue 8 item 10: client_connection_check_interval).

The reset arguments and the database checks come from ``test_reset.py``.
"""
import signal
import time

import pytest
from psycopg import sql

from helpers import scaled, wait_until
from test_reset import (SEED_SQL, assert_same_dump, dump, line_of, reset_args,
                        wait_bandage_query, wait_no_bandage_session, write_sql)

#: What pg_dump writes for a table's data: the COPY, tab-separated rows, "\.".
COPY_FROM_STDIN = (
    "CREATE TABLE t (id integer PRIMARY KEY, name text);\n"
    "COPY t (id, name) FROM stdin;\n"
    "1\tann\n"
    "2\tbob\n"
    "\\.\n"
    "CREATE TABLE after_copy (id integer);\n"
)

COPY_TO_STDOUT = (
    "CREATE TABLE t (id integer PRIMARY KEY, name text);\n"
    "INSERT INTO t VALUES (1, 'ann'), (2, 'bob');\n"
    "COPY t TO stdout;\n"
    "CREATE TABLE after_copy (id integer);\n"
)


def seeded(db):
    db.execute(SEED_SQL)
    return dump(db)


@pytest.mark.parametrize("text, needle, message", [
    (COPY_FROM_STDIN, "COPY t (id, name) FROM stdin", "bandage does not feed COPY FROM STDIN"),
    (COPY_TO_STDOUT, "COPY t TO stdout", "COPY TO STDOUT"),
], ids=["copy-from-stdin", "copy-to-stdout"])
def test_copy_in_schema_file_fails_promptly_with_65(run_bandage, db, tmp_path, text, needle,
                                                    message):
    before = seeded(db)
    schema = write_sql(tmp_path, text)
    run = run_bandage(reset_args(db, schema_file=schema, confirm=True))
    code = run.wait(scaled(10))
    assert code == 65, f"exited {code}\n{run.stderr}"
    assert run.exited_at - run.started_at < scaled(5), run.stderr
    line = line_of(text, needle)
    assert f"line {line}:" in run.stderr, f"the error must name line {line}:\n{run.stderr}"
    assert message in run.stderr, run.stderr
    assert_same_dump(before, dump(db))
    assert db.execute("SELECT count(*) FROM customers", user="postgres") == [(2,)]


def test_copy_from_stdin_error_carries_the_servers_sqlstate(run_bandage, db, tmp_path):
    """The server ends the COPY with an error (57014 "COPY from stdin
    failed"): that SQLSTATE is what is logged and reported."""
    seeded(db)
    run = run_bandage(reset_args(db, schema_file=write_sql(tmp_path, COPY_FROM_STDIN)))
    run.wait_exit_code(65, scaled(10))
    assert "57014: COPY from stdin failed: bandage does not feed COPY FROM STDIN" in run.stderr, \
        run.stderr


def test_sigterm_during_copy_to_stdout_is_honoured(run_bandage, db, tmp_path, pg, pid1):
    """A COPY that streams rows for a long time: SIGTERM cancels it, the
    reset rolls back, bandage exits 143 within a second."""
    before = seeded(db)
    schema = write_sql(tmp_path, "COPY (SELECT g, repeat('x', 100) FROM generate_series(1, 1000000000) g)"
                                 " TO stdout;\n")
    run = run_bandage(reset_args(db, schema_file=schema), pid1=pid1)
    wait_bandage_query(pg, db, "COPY (SELECT g%")
    sent = time.monotonic()
    run.send_signal(signal.SIGTERM)
    run.wait_exit_code(143, timeout=scaled(10))
    assert run.exited_at - sent < scaled(1), f"took {run.exited_at - sent:.2f} s\n{run.stderr}"
    wait_no_bandage_session(pg, db)
    assert_same_dump(before, dump(db))


# --- a killed bandage leaves no server session behind -------------------------------

def test_sigkill_of_pid1_ends_the_backend_promptly(run_bandage, db, tmp_path, pg):
    """SIGKILL of PID 1 during a 30 s statement: the backend notices the
    closed connection (bandage's own client_connection_check_interval) and
    ends within a few seconds instead of finishing the statement with its
    locks held. The database sets the interval to 0 so that nothing but
    bandage's own SET can make this pass."""
    pg.execute(sql.SQL("ALTER DATABASE {} SET client_connection_check_interval = 0")
               .format(sql.Identifier(db.name)))
    assert pg.execute("SHOW client_connection_check_interval", dbname=db.name) == [("0",)]
    before = seeded(db)
    schema = write_sql(tmp_path, "CREATE TABLE doomed (id integer);\nSELECT pg_sleep(30);\n")
    run = run_bandage(reset_args(db, schema_file=schema), pid1=True, timeout=scaled(60))
    [(backend,)] = wait_bandage_query(pg, db, "SELECT pg_sleep(30)%")
    killed = time.monotonic()
    run.kill_tree()
    assert run.poll() == 137, run.stderr

    def backend_gone():
        return not pg.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (backend,))
    wait_until(backend_gone, scaled(5),
               lambda: f"backend {backend} to end after bandage was killed "
                       f"({time.monotonic() - killed:.1f}s ago)")
    assert_same_dump(before, dump(db))
