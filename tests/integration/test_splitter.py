"""The statement splitter (entrypoint/db/sqlsplit.c) against real PostgreSQL
and real psql: files that psql applies, bandage applies.

- SQL-standard function and procedure bodies (``BEGIN ATOMIC ... END``,
  PostgreSQL 14+, and what ``pg_dump --schema-only`` writes for them) and a
  rule's ``DO ALSO (...; ...)`` hold semicolons that end no statement: as a
  ``--schema-file`` of a reset, as a migration (also one wrapped in
  BEGIN/COMMIT, whose BEGIN and COMMIT are still left out), and as pg_dump's
  output of a database holding them.
- Every SQL corpus of the repository (examples/, the migrations of
  helpers/migrations.py, bench/gen_migrations.py's and scripts/gen_schema.py's
  output, pg_dump --schema-only of a database built from them) is cut into as
  many statements as psql sends to the server. The splitter is called through
  ctypes on a shared build of sqlsplit.c; psql's count is the number of
  ``Time:`` lines that ``\\timing`` prints, one per statement sent.
"""
import ctypes
import os
import re
import shutil
import subprocess
import sys

import pytest

from helpers import REPO_ROOT, scaled
from helpers.migrations import HISTORY, MigrationsDir
from helpers.dump import PG_DUMP, PG_DUMP_MAJOR, server_major
from helpers.pg import client_tool

PSQL = client_tool("psql")
SQLSPLIT_SRC = os.path.join(REPO_ROOT, "entrypoint", "db", "sqlsplit.c")
EXAMPLE_SCHEMA = os.path.join(REPO_ROOT, "examples", "prisma", "schema.sql")
GEN_SCHEMA = os.path.join(REPO_ROOT, "scripts", "gen_schema.py")
GEN_MIGRATIONS = os.path.join(REPO_ROOT, "bench", "gen_migrations.py")

SUMMARY_RESET = re.compile(r"reset in \d+ ms \((\d+) statements\)")

#: Semicolons inside bodies, parentheses and strings: ROUTINES_STATEMENTS statements.
ROUTINES = """\
-- CreateTable
CREATE TABLE "Event" ("id" SERIAL PRIMARY KEY, "kind" TEXT NOT NULL);
CREATE TABLE "EventCopy" ("kind" TEXT NOT NULL);
CREATE TABLE "Audit" ("id" SERIAL PRIMARY KEY, "what" TEXT NOT NULL);

-- A SQL-standard body (PostgreSQL 14+): its semicolons end nothing before END
CREATE FUNCTION sign_label(x integer) RETURNS text
    LANGUAGE sql IMMUTABLE
BEGIN ATOMIC
    SELECT CASE WHEN x > 0 THEN 'positive; >0'
                WHEN x < 0 THEN 'negative'
                ELSE 'zero' END;
END;

CREATE FUNCTION bump() RETURNS bigint LANGUAGE sql BEGIN ATOMIC INSERT INTO "Audit" ("what") VALUES ('bump'); SELECT count(*) FROM "Audit"; END;

CREATE OR REPLACE FUNCTION event_count() RETURNS bigint
    LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT count(*) FROM "Event";
END;

CREATE PROCEDURE record_event(kind text)
    LANGUAGE sql
BEGIN ATOMIC
    INSERT INTO "Event" ("kind") VALUES (kind);
    INSERT INTO "Audit" ("what") VALUES ('event ' || kind);
END;

-- A rule whose actions are separated by semicolons inside parentheses
CREATE RULE "Event_copy" AS ON INSERT TO "Event" DO ALSO (
    INSERT INTO "EventCopy" ("kind") VALUES (NEW."kind");
    INSERT INTO "Audit" ("what") VALUES ('copied ' || NEW."kind");
);

CREATE VIEW "EventLabel" AS
    SELECT "id", CASE WHEN "kind" = 'end' THEN 'last' ELSE "kind" END AS "label" FROM "Event";
"""
ROUTINES_STATEMENTS = 9

#: A hand-edited migration wrapped in BEGIN/COMMIT as Prisma wraps some steps:
#: BEGIN and COMMIT are left out, the body's END is not.
WRAPPED = """\
-- Hand-edited
BEGIN;
CREATE OR REPLACE FUNCTION post_count(author integer) RETURNS bigint
    LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT count(*) FROM "Post" WHERE "authorId" = author;
END;
COMMIT;
"""


# --- the splitter through ctypes, psql through \\timing -------------------------------

class _Statement(ctypes.Structure):
    _fields_ = [("offset", ctypes.c_size_t), ("length", ctypes.c_size_t),
                ("line", ctypes.c_int)]


@pytest.fixture(scope="session")
def sqlsplit(tmp_path_factory):
    """``sqlsplit(bytes) -> [(text, line)]``: entrypoint/db/sqlsplit.c built
    as a shared library (it needs nothing but libc) and called through
    ctypes; a split error fails the test."""
    lib_path = str(tmp_path_factory.mktemp("sqlsplit") / "libsqlsplit.so")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.fail("no C compiler (cc) to build sqlsplit.c; make deps installs one")
    r = subprocess.run([cc, "-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra", "-Werror",
                        "-shared", "-fPIC", "-o", lib_path, SQLSPLIT_SRC],
                       capture_output=True, timeout=scaled(120))
    if r.returncode != 0:
        pytest.fail(f"compiling sqlsplit.c failed:\n{r.stderr.decode(errors='replace')}")
    lib = ctypes.CDLL(lib_path)
    lib.sql_split.argtypes = [ctypes.c_char_p, ctypes.c_size_t,
                              ctypes.POINTER(ctypes.POINTER(_Statement)),
                              ctypes.POINTER(ctypes.c_size_t), ctypes.c_char_p, ctypes.c_size_t]
    lib.sql_split.restype = ctypes.c_int
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]

    def split(data):
        out = ctypes.POINTER(_Statement)()
        count = ctypes.c_size_t()
        err = ctypes.create_string_buffer(512)
        rc = lib.sql_split(data, len(data), ctypes.byref(out), ctypes.byref(count), err,
                           len(err))
        assert rc == 0, f"sql_split failed: {err.value.decode(errors='replace')}"
        try:
            return [(data[out[i].offset:out[i].offset + out[i].length].decode(), out[i].line)
                    for i in range(count.value)]
        finally:
            libc.free(out)
    return split


def psql_sends(db, path):
    """How many statements psql sends to the server applying ``path`` to
    ``db`` (it must succeed): ``\\timing`` prints one ``Time:`` line each."""
    r = subprocess.run([PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", os.devnull,
                        "-d", db.dsn(user="postgres"), "-c", "\\timing on", "-f", path],
                       capture_output=True, text=True, timeout=scaled(300))
    assert r.returncode == 0, f"psql -f {path}: {r.stderr}"
    return sum(1 for line in r.stdout.splitlines() if line.startswith("Time: "))


def schema_only_dump(db, path):
    """``pg_dump --schema-only --no-owner`` of ``db`` into ``path``, without
    the ``\\restrict`` lines of 15.14+ (psql meta-commands, refused by
    bandage; the README says to remove them). Skipped on a server newer
    than the machine's pg_dump, which refuses it: what is tested is pg_dump's
    own output."""
    if server_major(db) > PG_DUMP_MAJOR:
        pytest.skip(f"pg_dump {PG_DUMP_MAJOR} refuses PostgreSQL {server_major(db)}")
    r = subprocess.run([PG_DUMP, "--schema-only", "--no-owner", "--dbname",
                        db.dsn(user="postgres")], capture_output=True, timeout=scaled(120))
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    lines = r.stdout.decode().splitlines(keepends=True)
    with open(path, "w") as f:
        f.writelines(l for l in lines if not l.startswith(("\\restrict", "\\unrestrict")))
    return str(path)


def write(path, text):
    path.write_text(text)
    return str(path)


def assert_routines_work(db):
    """What ROUTINES made does what psql's application of it would do."""
    q = lambda sql: db.execute(sql, user="postgres")  # noqa: E731
    assert q("SELECT sign_label(3), sign_label(-1), sign_label(0)") == \
        [("positive; >0", "negative", "zero")]
    q("CALL record_event('deploy')")
    assert q('SELECT "kind" FROM "EventCopy"') == [("deploy",)]
    assert sorted(r[0] for r in q('SELECT "what" FROM "Audit"')) == \
        ["copied deploy", "event deploy"]
    assert q("SELECT event_count(), bump()") == [(1, 3)]
    assert q('SELECT "label" FROM "EventLabel"') == [("deploy",)]


# --- bandage applies what psql applies ---------------------------------------------------

def reset_args(db, schema_file):
    return ["--database-url", db.dsn(), "--reset", "always", "--confirm-database", db.name,
            "--schema-file", schema_file]


def test_schema_file_with_function_bodies_and_a_rule(run_bandage, db, tmp_path):
    run = run_bandage(reset_args(db, write(tmp_path / "schema.sql", ROUTINES)))
    run.wait_exit_code(0)
    assert [int(n) for n in SUMMARY_RESET.findall(run.stderr)] == [ROUTINES_STATEMENTS], \
        run.stderr
    assert_routines_work(db)


def test_migrations_with_function_bodies_and_a_rule(run_bandage, db, tmp_path):
    mdir = MigrationsDir(tmp_path, migrations=[
        HISTORY[0],
        ("20240201000000_routines", ROUTINES),
        ("20240202000000_post_count", WRAPPED),
    ])
    run = run_bandage(["--database-url", db.dsn(), "--migrations", mdir.path])
    run.wait_exit_code(0)
    assert re.search(rf"applied migration 20240201000000_routines in \d+ ms "
                     rf"\({ROUTINES_STATEMENTS} statements\)", run.stderr), run.stderr
    assert "line 2: BEGIN left out" in run.stderr and "line 8: COMMIT left out" in run.stderr
    assert "END left out" not in run.stderr, run.stderr
    applied = db.execute('SELECT migration_name FROM "_prisma_migrations"'
                         ' WHERE finished_at IS NOT NULL ORDER BY migration_name',
                         user="postgres")
    assert [r[0] for r in applied] == mdir.names
    assert_routines_work(db)
    assert db.execute("SELECT post_count(1)", user="postgres") == [(0,)]


def test_pg_dump_schema_only_of_such_a_database(run_bandage, db_factory, tmp_path):
    """What pg_dump writes for bodies and rules (its own layout: ``BEGIN
    ATOMIC`` on a line of its own, CASE ... END over several lines, ``DO (
    ...; ...;\\n)``) is a schema file bandage applies."""
    source = db_factory()
    source.execute(ROUTINES, user="postgres")
    dumped = schema_only_dump(source, tmp_path / "dump.sql")
    with open(dumped) as f:
        text = f.read()
    assert "BEGIN ATOMIC" in text and "DO ( INSERT" in text, text
    target = db_factory()
    run = run_bandage(reset_args(target, dumped))
    run.wait_exit_code(0)
    assert_routines_work(target)


# --- every corpus: as many statements as psql sends ----------------------------------

def _corpus_files(kind, tmp_path, db_factory):
    """(files in the order psql must apply them to one fresh database) of a
    corpus of the repository."""
    if kind == "examples/prisma/schema.sql":
        return [EXAMPLE_SCHEMA]
    if kind == "helpers/migrations.py":
        mdir = MigrationsDir(tmp_path, migrations=HISTORY)
        return [mdir.file(name) for name in mdir.names]
    if kind == "bench/gen_migrations.py":
        out = tmp_path / "bench"
        subprocess.run([sys.executable, GEN_MIGRATIONS, str(out), "10"], check=True,
                       timeout=scaled(60), capture_output=True)
        return sorted(str(p) for p in out.glob("*/migration.sql"))
    if kind == "scripts/gen_schema.py":
        r = subprocess.run([sys.executable, GEN_SCHEMA, "20"], check=True, capture_output=True,
                           text=True, timeout=scaled(60))
        return [write(tmp_path / "gen_schema.sql", r.stdout)]
    if kind == "function bodies and a rule":
        return [write(tmp_path / "routines.sql", ROUTINES)]
    if kind == "pg_dump --schema-only":
        source = db_factory()
        for path in [EXAMPLE_SCHEMA, write(tmp_path / "routines.sql", ROUTINES)]:
            psql_sends(source, path)
        return [schema_only_dump(source, tmp_path / "dump.sql")]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["examples/prisma/schema.sql", "helpers/migrations.py",
                                  "bench/gen_migrations.py", "scripts/gen_schema.py",
                                  "function bodies and a rule", "pg_dump --schema-only"])
def test_corpus_splits_as_psql_sends(kind, sqlsplit, db_factory, tmp_path):
    files = _corpus_files(kind, tmp_path, db_factory)
    target = db_factory()
    for path in files:
        with open(path, "rb") as f:
            ours = len(sqlsplit(f.read()))
        assert ours == psql_sends(target, path), path
