"""Undo a reset (README "Undo a reset"; DESIGN.md "Undo a reset"):
--keep-previous keeps the replaced schemas aside, --restore-previous swaps
the newest back, --history lists what happened. Both reset paths, against a
real PostgreSQL; the blockers are real sessions holding real locks."""
import json
import os
import re
import signal
import subprocess

import pytest

from helpers import scaled, wait_until
from test_reset import (BATCHED_FILLER, EXAMPLE_SCHEMA, deploy_rows, gen_schema, reset_args,
                        regclass, write_sql)

PATHS = ["one transaction", "batched"]

#: A schema file that uses two extensions living in public (pg_trgm's
#: operator class in an index, pgcrypto's gen_random_uuid()) and a serial.
SCHEMA_SQL = """\
CREATE TABLE "Note" (
    "id" SERIAL PRIMARY KEY,
    "uid" UUID NOT NULL DEFAULT gen_random_uuid(),
    "body" TEXT NOT NULL
);
CREATE INDEX "Note_body_trgm" ON "Note" USING gin ("body" gin_trgm_ops);
"""


#: The same without extensions.
PLAIN_SQL = 'CREATE TABLE "Note" ("id" SERIAL PRIMARY KEY, "body" TEXT NOT NULL);\n'


def schema_file(tmp_path, path, name="schema.sql", extensions=True):
    text = SCHEMA_SQL if extensions else PLAIN_SQL
    if path == "batched":
        text += "\n" + gen_schema(BATCHED_FILLER, prefix="Filler")
    return write_sql(tmp_path, text, name)


def with_extensions(db):
    db.execute("CREATE EXTENSION pg_trgm WITH SCHEMA public;"
               " CREATE EXTENSION pgcrypto WITH SCHEMA public;")


def reset(run_bandage, db, schema, *extra, deployment="d1", keep=None, mode="always"):
    args = reset_args(db, "--deployment-id", deployment, *extra, mode=mode, schema_file=schema)
    if keep is not None:
        args += ["--keep-previous", str(keep)]
    run = run_bandage(args, timeout=scaled(90))
    run.wait_exit_code(0)
    return run


def restore(run_bandage, db, *extra, deployment="r1", code=0, confirm=True):
    args = ["--database-url", db.dsn(), "--restore-previous", "--deployment-id", deployment]
    if confirm:
        args += ["--confirm-database", db.name]
    run = run_bandage(args + list(extra), timeout=scaled(60))
    run.wait_exit_code(code)
    return run


def notes(db):
    return [r[0] for r in db.execute('SELECT "body" FROM public."Note" ORDER BY "id"')]


def kept_rows(db):
    if regclass(db, "bandage.kept_schemas") is None:
        return []
    return db.execute("SELECT kept, original, deployment_id,"
                      " kept_oid = (SELECT oid FROM pg_namespace WHERE nspname = kept)"
                      " FROM bandage.kept_schemas ORDER BY kept_at, kept", user="postgres")


def kept_schema_names(db):
    return [r[0] for r in db.execute("SELECT nspname::text FROM pg_namespace"
                                     " WHERE nspname LIKE 'bandage\\_kept\\_%' ORDER BY 1",
                                     user="postgres")]


def write_notes(db, *bodies):
    for b in bodies:
        db.execute('INSERT INTO public."Note" ("body") VALUES (%s)', (b,))


def extensions_work(db):
    """pg_trgm and pgcrypto, from public, serve the live tables."""
    return db.execute('SELECT similarity("body", "body" || \'x\') > 0, length("uid"::text)'
                      ' FROM public."Note" ORDER BY "id" LIMIT 1')


@pytest.mark.parametrize("path", PATHS)
def test_reset_keeps_the_previous_schema_and_restore_brings_it_back(run_bandage, db, tmp_path,
                                                                    path):
    """Reset, write, reset again (the data goes aside), restore: the data,
    its sequence's position and the extensions are back; the replaced schema
    is kept in its turn."""
    with_extensions(db)
    schema = schema_file(tmp_path, path)
    reset(run_bandage, db, schema, deployment="d1")
    write_notes(db, "hello world", "second note")
    run = reset(run_bandage, db, schema, deployment="d2")
    assert ("large reset: moving the schema(s) aside" in run.stderr) == (path == "batched")
    assert notes(db) == []
    assert [r[1:] for r in kept_rows(db)] == [("public", "d2", True)]
    assert "1 kept schema" in run.stderr
    write_notes(db, "written after the reset")

    run = restore(run_bandage, db)
    assert "restored 1 schema" in run.stderr, run.stderr
    assert notes(db) == ["hello world", "second note"]
    write_notes(db, "third")  # the serial goes on from where it was
    assert db.execute('SELECT max("id") FROM public."Note"') == [(3,)]
    assert extensions_work(db) == [(True, 36)]
    # The schema the restore replaced is kept, with what was written after the reset.
    (kept, original, deployment, proven), = kept_rows(db)
    assert (original, deployment, proven) == ("public", "r1", True)
    assert db.execute(f'SELECT "body" FROM {kept}."Note"', user="postgres") == [
        ("written after the reset",)]
    assert [r[1] for r in deploy_rows(db, "r1")] == ["restore"]


def test_a_restore_can_be_restored(run_bandage, db, tmp_path):
    """A restore keeps the schema it replaces: restoring again undoes it."""
    with_extensions(db)
    schema = schema_file(tmp_path, "one transaction")
    reset(run_bandage, db, schema, deployment="d1")
    write_notes(db, "old")
    reset(run_bandage, db, schema, deployment="d2")
    write_notes(db, "new")
    restore(run_bandage, db, deployment="r1")
    assert notes(db) == ["old"]
    restore(run_bandage, db, deployment="r2")
    assert notes(db) == ["new"]
    assert extensions_work(db) == [(True, 36)]
    assert [r[1:] for r in kept_rows(db)] == [("public", "r2", True)]


def test_restart_after_a_restore_neither_restores_nor_resets_again(run_bandage, db, tmp_path):
    """The same deployment id, --reset once and --restore-previous both set
    (a crash-restart of the restoring deployment): nothing happens twice."""
    schema = schema_file(tmp_path, "one transaction")
    with_extensions(db)
    reset(run_bandage, db, schema, deployment="d1")
    write_notes(db, "keep me")
    reset(run_bandage, db, schema, deployment="d2")
    args = ["--reset", "once", "--schema-file", schema]
    restore(run_bandage, db, *args, deployment="r1")
    assert notes(db) == ["keep me"]
    run = restore(run_bandage, db, *args, deployment="r1")
    assert "already restored" in run.stderr, run.stderr
    assert notes(db) == ["keep me"]
    assert [r[1] for r in deploy_rows(db, "r1")] == ["restore"]


def test_retention_keeps_the_newest_and_drops_the_older(run_bandage, db, tmp_path):
    """--keep-previous 2: three resets keep two schemas; --keep-previous 0
    then drops them all. Only schemas the catalog proves are dropped."""
    schema = schema_file(tmp_path, "one transaction")
    with_extensions(db)
    for n in range(4):
        reset(run_bandage, db, schema, deployment=f"d{n}", keep=2)
        write_notes(db, f"generation {n}")
    assert [r[2] for r in kept_rows(db)] == ["d2", "d3"]
    assert len(kept_schema_names(db)) == 2
    run = reset(run_bandage, db, schema, deployment="d9", keep=0)
    assert "is past --keep-previous 0: it is dropped" in run.stderr
    assert kept_rows(db) == [] and kept_schema_names(db) == []
    assert regclass(db, "bandage.resets_in_progress") is None


def test_retention_beside_the_app_drops_after_the_app_starts(run_bandage, db, tmp_path, app_dir):
    """With an app to run, the kept schema past the limit is dropped beside
    it, not before it."""
    schema = schema_file(tmp_path, "one transaction")
    with_extensions(db)
    reset(run_bandage, db, schema, deployment="d1")
    reset(run_bandage, db, schema, deployment="d2")
    (first,), = [r[:1] for r in kept_rows(db)]
    marker = os.path.join(app_dir, "started")
    run = run_bandage(reset_args(db, "--deployment-id", "d3", "--", "/bin/sh", "-c",
                                 f"touch {marker}; sleep 30", schema_file=schema),
                      timeout=scaled(60))
    wait_until(lambda: os.path.exists(marker), scaled(30), lambda: run.stderr)
    wait_until(lambda: first not in kept_schema_names(db), scaled(30), lambda: run.stderr)
    assert "dropped the old schema" in run.stderr
    assert len(kept_rows(db)) == 1
    run.kill_tree()


def test_a_kept_schema_that_no_longer_matches_is_refused(run_bandage, db, tmp_path):
    """Someone dropped the kept schema and made another of its name: the
    restore touches nothing and says what it found."""
    schema = schema_file(tmp_path, "one transaction")
    with_extensions(db)
    reset(run_bandage, db, schema, deployment="d1")
    write_notes(db, "current")
    reset(run_bandage, db, schema, deployment="d2")
    (kept,), = [r[:1] for r in kept_rows(db)]
    db.execute(f"DROP SCHEMA {kept} CASCADE; CREATE SCHEMA {kept};"
               f" CREATE TABLE {kept}.impostor (x int)", user="postgres")
    write_notes(db, "after")
    run = restore(run_bandage, db, code=65)
    assert f"bandage.kept_schemas records schema {kept} kept from public" in run.stderr
    assert "Nothing was changed" in run.stderr
    assert notes(db) == ["after"]
    assert regclass(db, f"{kept}.impostor") == f"{kept}.impostor"


def test_nothing_kept_is_refused(run_bandage, db, tmp_path):
    run = restore(run_bandage, db, code=65)
    assert "no schema is kept to restore" in run.stderr


def test_restore_needs_the_interlock_and_a_deployment_id(run_bandage, db, tmp_path):
    schema = schema_file(tmp_path, "one transaction")
    with_extensions(db)
    reset(run_bandage, db, schema, deployment="d1")
    write_notes(db, "current")
    reset(run_bandage, db, schema, deployment="d2")
    run = restore(run_bandage, db, code=77, confirm=False)
    assert "refusing to restore database" in run.stderr
    assert "--confirm-database (BANDAGE_CONFIRM_DATABASE) is not set" in run.stderr
    run = run_bandage(["--database-url", db.dsn(), "--restore-previous", "--confirm-database",
                       db.name])
    run.wait_exit_code(64)
    assert "--restore-previous needs a deployment id" in run.stderr
    assert notes(db) == []


def owned_by_app(db_factory, app_role):
    """A database owned by the ordinary role app (the blocker, a superuser's
    session, is one bandage may not end). No extensions: a trusted one that
    app creates has members owned by the bootstrap superuser, which app may
    not move (ALTER EXTENSION SET SCHEMA: "must be owner of function"), on
    either reset path, with or without --keep-previous."""
    return db_factory(owner=app_role.name)


def two_generations(run_bandage, db, tmp_path):
    """Reset, "old" written, reset (old kept), "new" written."""
    schema = schema_file(tmp_path, "one transaction", extensions=False)
    reset(run_bandage, db, schema, deployment="d1")
    write_notes(db, "old")
    reset(run_bandage, db, schema, deployment="d2")
    write_notes(db, "new")


def restore_args(db, deployment="r1", *extra):
    return ["--database-url", db.dsn(), "--restore-previous", "--deployment-id", deployment,
            "--confirm-database", db.name, *extra]


def test_restore_behind_a_blocker_fails_cleanly_then_succeeds(run_bandage, db_factory,
                                                              app_role, tmp_path):
    """A session bandage may not end (a superuser's) holds a lock on the live
    table: the restore gives up after --lock-wait with 69 naming it, nothing
    changed; once it is gone, the restore goes through."""
    db = owned_by_app(db_factory, app_role)
    two_generations(run_bandage, db, tmp_path)
    with db.connect(user="postgres", application_name="old-replica") as blocker:
        blocker.execute("BEGIN")
        blocker.execute('LOCK TABLE public."Note" IN ACCESS SHARE MODE')
        run = run_bandage(restore_args(db, "r1", "--lock-wait", "1"), timeout=scaled(30))
        run.wait_exit_code(69)
        assert "application 'old-replica'" in run.stderr, run.stderr
        blocker.execute("ROLLBACK")
    assert notes(db) == ["new"]
    assert [r[1:] for r in kept_rows(db)] == [("public", "d2", True)]
    restore(run_bandage, db)
    assert notes(db) == ["old"]


@pytest.mark.parametrize("how", ["bandage killed", "server killed"])
def test_crash_in_the_middle_of_a_restore_loses_nothing(run_bandage, pg_factory, tmp_path, how):
    """Killed inside the restore's transaction (waiting for a real blocker's
    table lock), bandage or the server: the next start finds the database as
    before and restores."""
    from helpers.pg import Database
    server = pg_factory()
    server.start()
    app = server.app_role()
    db = server.create_database("undo_crash", owner=app.name)
    server.execute('ALTER DATABASE "undo_crash" SET client_connection_check_interval = 50')
    two_generations(run_bandage, db, tmp_path)
    blocker = db.connect(user="postgres")
    blocker.execute("BEGIN")
    blocker.execute('LOCK TABLE public."Note" IN ACCESS SHARE MODE')
    run = run_bandage(restore_args(db, "r1", "--lock-wait", "120"), timeout=scaled(60),
                      env={"BANDAGE_PROGRESS_INTERVAL_MS": "100"})
    run.wait_for_stderr(r"attempt \d+ at the tables of public", timeout=scaled(20))
    if how == "bandage killed":
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        blocker.close()
    else:
        server.stop(mode="immediate")
        run.wait()
        blocker.close()
        server.start()
    assert notes(db) == ["new"]
    assert isinstance(db, Database)
    restore(run_bandage, db, deployment="r2")
    assert notes(db) == ["old"]


def test_history_lists_deploys_migrations_and_kept_schemas(run_bandage, db, tmp_path):
    schema = schema_file(tmp_path, "one transaction")
    with_extensions(db)
    reset(run_bandage, db, schema, deployment="d1")
    reset(run_bandage, db, schema, deployment="d2")
    restore(run_bandage, db, deployment="r1")
    run = run_bandage(["--database-url", db.dsn(), "--history", "--", "/bin/false"])
    run.wait_exit_code(0)
    out = run.stdout
    assert "restore   deployment r1  ok" in out, out
    assert "reset     deployment d2  ok" in out and "reset     deployment d1  ok" in out, out
    assert out.index("deployment r1") < out.index("deployment d2") < out.index("deployment d1")
    assert "bandage_kept_" in out and "was public" in out, out
    run = run_bandage(["--database-url", db.dsn(), "--history", "--log-format", "json"])
    run.wait_exit_code(0)
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    deploys = [x for x in lines if x["history"] == "deploy"]
    kept = [x for x in lines if x["history"] == "kept"]
    assert [(d["kind"], d["name"]) for d in deploys] == [("restore", "r1"), ("reset", "d2"),
                                                         ("reset", "d1")]
    assert len(kept) == 1 and kept[0]["original"] == "public" and kept[0]["bytes"] > 0


def test_plan_shows_what_is_kept(run_bandage, db, tmp_path):
    schema = schema_file(tmp_path, "one transaction")
    with_extensions(db)
    reset(run_bandage, db, schema, deployment="d1")
    reset(run_bandage, db, schema, deployment="d2")
    run = run_bandage(reset_args(db, "--plan", "--deployment-id", "d3", schema_file=schema))
    run.wait_exit_code(0)
    assert "keep the replaced schema(s) aside (--keep-previous 1)" in run.stdout
    # the sizes as the log gives them: a small schema is "48 kB", not "0 MB"
    assert re.search(r"aside \(--keep-previous 1\): [1-9][0-9.]* (bytes|kB|MB) on disk",
                     run.stdout), run.stdout
    assert re.search(r"kept now: 1 schema\(s\), [1-9][0-9.]* (bytes|kB|MB) ", run.stdout), run.stdout


def test_prisma_migrations_travel_with_their_schema(run_bandage, db, tmp_path):
    """_prisma_migrations is a table of the schema: kept with it, back with it."""
    schema = schema_file(tmp_path, "one transaction")
    with_extensions(db)
    db.execute("CREATE TABLE public._prisma_migrations (id text PRIMARY KEY,"
               " migration_name text NOT NULL, started_at timestamptz NOT NULL DEFAULT now(),"
               " finished_at timestamptz, rolled_back_at timestamptz, logs text,"
               " applied_steps_count int NOT NULL DEFAULT 0, checksum text NOT NULL DEFAULT '');"
               " INSERT INTO public._prisma_migrations (id, migration_name, finished_at)"
               " VALUES ('1', '20240101000000_before_the_reset', now())")
    reset(run_bandage, db, schema, deployment="d1")
    assert regclass(db, "public._prisma_migrations") is None
    restore(run_bandage, db)
    assert db.execute("SELECT migration_name FROM public._prisma_migrations") == [
        ("20240101000000_before_the_reset",)]
    run = run_bandage(["--database-url", db.dsn(), "--history"])
    run.wait_exit_code(0)
    assert "migration 20240101000000_before_the_reset  applied" in run.stdout, run.stdout


@pytest.mark.parametrize("value", ["-1", "101", "two", "1.5", ""])
def test_a_bad_keep_previous_is_refused_before_connecting(run_bandage, value):
    run = run_bandage(["--keep-previous", value, "--reset", "always"])
    run.wait_exit_code(64)
    assert "--keep-previous" in run.stderr
    if value:
        assert "is not a whole number from 0 to 100" in run.stderr, run.stderr


def test_a_schema_with_an_extension_that_cannot_move_is_dropped_not_kept(run_bandage, db,
                                                                        tmp_path):
    """xml2 (relocatable = false, like PostGIS) in public: the schema cannot
    move aside with it, so the reset drops it and creates xml2 anew, as
    --keep-previous 0 would, saying so, instead of failing every deploy."""
    db.execute("CREATE EXTENSION xml2 WITH SCHEMA public", user="postgres")
    schema = schema_file(tmp_path, "one transaction", extensions=False)
    run = reset(run_bandage, db, schema, deployment="d1")
    assert "schema public is dropped, not kept: its extension(s) xml2 cannot change schema" \
        in run.stderr, run.stderr
    assert kept_rows(db) == [] and kept_schema_names(db) == []
    assert db.execute("SELECT extnamespace::regnamespace::text FROM pg_extension"
                      " WHERE extname = 'xml2'") == [("public",)]


def test_restore_refuses_a_live_schema_with_an_extension_that_cannot_move(run_bandage, db,
                                                                         tmp_path):
    """Kept before xml2 came: swapping public aside would take xml2 with it
    and leave the restored schema without it. Refused, nothing changed."""
    schema = schema_file(tmp_path, "one transaction", extensions=False)
    reset(run_bandage, db, schema, deployment="d1")
    write_notes(db, "old")
    reset(run_bandage, db, schema, deployment="d2")
    db.execute("CREATE EXTENSION xml2 WITH SCHEMA public", user="postgres")
    write_notes(db, "new")
    run = restore(run_bandage, db, code=65)
    assert ("bandage: error: --restore-previous: schema public holds extension(s) xml2, which "
            "cannot change schema (relocatable = false): swapped aside, they would stay with "
            "it. Nothing was changed. Move them") in run.stderr, run.stderr
    assert notes(db) == ["new"] and len(kept_rows(db)) == 1
