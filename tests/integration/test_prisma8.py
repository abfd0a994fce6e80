"""--migrations DIR with a Prisma 8 directory (docs/internals.md "Prisma 8
packages"): bandage applies Prisma 8's migration packages without Node, and
Prisma 8 itself is the judge. Its CLI (pinned in helpers/prisma8.py, from
npm) plans the packages from data models written here, applies some of them
(``prisma db migrate``), and checks what bandage did: ``prisma db verify``
(marker and live schema against the contract) and ``prisma migration status``
(nothing pending).

The history (packages planned once per build, see helpers.prisma8.History):

1. ``init``: User (id, email unique, name).
2. ``v2``: User.bio with a default that needs every JSON escape (quotes,
   backslash, tab, a control character, é, an emoji), User.name dropped
   (destructive), Post with a foreign key and an index.
3. ``v3``: User.nickname (nullable), Tag.
4. ``v4``: User.nickname NOT NULL: Prisma plans a data transform placeholder;
   its migration.ts keeps the setNotNull only, whose precheck is "no NULL
   values" (a precheck that is not just "not there yet").

and ``baseline``: step 2's contract planned from an empty database, as a
project moving from Prisma 7 plans it after ``prisma db sign``.
"""
import json
import os
import re
import shutil
import time

import pytest

from helpers import scaled, wait_until
from helpers import prisma8
from helpers.dump import dump

MODEL_1 = """\
// use prisma-8

model User {
  id    Int     @id @default(autoincrement())
  email String  @unique
  name  String?
}
"""

USER_2 = """\
model User {
  id       Int     @id @default(autoincrement())
  email    String  @unique
  bio      String  @default("it's \\"quoted\\" \\\\ back\\tslash \u00e9 \U0001F600 \\u0001")
%s  posts    Post[]
}

model Post {
  id       Int     @id @default(autoincrement())
  title    String
  author   User    @relation(fields: [authorId], references: [id])
  authorId Int
  @@index([authorId])
}
"""

MODEL_2 = "// use prisma-8\n\n" + USER_2 % ""
MODEL_3 = ("// use prisma-8\n\n" + USER_2 % "  nickname String?\n" +
           "\nmodel Tag {\n  id   Int    @id @default(autoincrement())\n  name String\n}\n")
MODEL_4 = MODEL_3.replace("nickname String?", "nickname String")


def only_set_not_null(text):
    """v4's migration.ts: Prisma's placeholder data transform left out."""
    text = re.sub(r"      this\.dataTransform\(.*?\}\),\n", "", text, flags=re.S)
    return text.replace(", placeholder }", " }")


STEPS = [("init", MODEL_1, None), ("v2", MODEL_2, None), ("v3", MODEL_3, None),
         ("v4", MODEL_4, only_set_not_null)]
EXTRA = {"baseline": (MODEL_2, None)}


@pytest.fixture(scope="session")
def history():
    prisma8.install()
    return prisma8.History(STEPS, EXTRA).make()


@pytest.fixture
def project(history, tmp_path):
    """project(upto, name=..., **kw) -> path of a Prisma 8 project at step upto."""
    def make(upto, name="app", **kw):
        return history.project(str(tmp_path / name), upto, **kw)
    return make


def migrations(path):
    return os.path.join(path, "migrations")


def bandage(run_bandage, db, project_path, *extra, code=0, timeout=60):
    run = run_bandage(["--database-url", db.dsn(), "--migrations", migrations(project_path),
                       *extra], timeout=scaled(timeout))
    run.wait_exit_code(code)
    return run


def prisma_ok(project_path, args, db):
    result = prisma8.run(project_path, [*args, "--db", db.dsn()])
    assert result.ok, f"prisma {' '.join(args)}: {result}"
    return result


def verified(project_path, db):
    """prisma db verify: the marker and the live schema match the contract."""
    result = prisma_ok(project_path, ["db", "verify"], db)
    assert result.result["summary"] == "Database marker and schema match contract", result
    return result


def nothing_pending(project_path, db):
    result = prisma_ok(project_path, ["migration", "status"], db)
    migrations_ = [m for s in result.result["spaces"] for m in s["migrations"]]
    assert result.result["summary"] == "Up to date", result
    assert "pending" not in {m["status"] for m in migrations_}, migrations_
    return result


def ledger(db):
    return db.execute("SELECT migration_name, migration_hash, origin_core_hash,"
                      " origin_profile_hash, destination_core_hash, destination_profile_hash,"
                      " operations, space FROM prisma_contract.ledger ORDER BY id",
                      user="postgres")


def bookkeeping(db):
    """prisma_contract without ids and timestamps: marker, ledger, contracts."""
    marker = db.execute("SELECT space, core_hash, profile_hash, contract_json,"
                        " canonical_version, app_tag, meta, invariants"
                        " FROM prisma_contract.marker ORDER BY space", user="postgres")
    contracts = db.execute("SELECT core_hash, contract_json FROM prisma_contract.contract"
                           " ORDER BY core_hash", user="postgres")
    return {"marker": marker, "ledger": ledger(db), "contract": contracts}


def regclass(db, name):
    return db.execute("SELECT to_regclass(%s)::text", (name,), user="postgres")[0][0]


def marker(db):
    rows = db.execute("SELECT core_hash FROM prisma_contract.marker WHERE space = 'app'",
                      user="postgres")
    return rows[0][0] if rows else None


# --- bandage applies, Prisma agrees -----------------------------------------------------------

def test_bandage_writes_what_prisma_db_migrate_writes(run_bandage, db_factory, project, history,
                                                      app_dir):
    """The same packages applied by Prisma to one database and by bandage
    to another: the same schema, the same prisma_contract rows (operations
    and contracts compared as JSON); then Prisma verifies bandage's
    database and finds nothing pending. The app sees LAST_DB_MIGRATION."""
    app = project(4)
    by_prisma, by_bandage = db_factory(), db_factory()
    result = prisma_ok(app, ["db", "migrate"], by_prisma)
    assert result.result["migrationsApplied"] == 4, result
    out = os.path.join(app_dir, "last")
    run = run_bandage(["--database-url", by_bandage.dsn(), "--migrations", migrations(app),
                       "--", "sh", "-c", f'printf %s "$LAST_DB_MIGRATION" > {out}'],
                      timeout=scaled(60))
    run.wait_exit_code(0)
    assert bookkeeping(by_bandage) == bookkeeping(by_prisma)
    assert dump(by_bandage, "--exclude-schema=prisma_contract") == \
        dump(by_prisma, "--exclude-schema=prisma_contract")
    verified(app, by_bandage)
    nothing_pending(app, by_bandage)
    with open(out) as f:
        assert f.read() == history.names()[-1]
    assert "migrations: 4 applied" in run.stderr and "0 already applied" in run.stderr, run.stderr
    # the escaped default arrived as Prisma meant it
    default = by_bandage.execute("SELECT column_default FROM information_schema.columns"
                                 " WHERE table_name = 'User' AND column_name = 'bio'",
                                 user="postgres")[0][0]
    assert default.startswith("'it''s \"quoted\" \\ back\tslash \u00e9 \U0001F600 \x01'"), default


def test_a_second_start_finds_nothing_pending(run_bandage, db, project):
    app = project(4)
    bandage(run_bandage, db, app)
    before = bookkeeping(db)
    run = bandage(run_bandage, db, app)
    assert "nothing pending" in run.stderr, run.stderr
    assert "migrations: up to date (4 applied)" in run.stderr, run.stderr
    assert bookkeeping(db) == before


def test_prisma_applies_some_and_bandage_the_rest(run_bandage, db, project, history):
    prisma_ok(project(2, "first"), ["db", "migrate"], db)
    app = project(4)
    run = bandage(run_bandage, db, app)
    assert "migrations: 2 applied" in run.stderr and "2 already applied" in run.stderr, \
        run.stderr
    assert [r[0] for r in ledger(db)] == history.names()
    verified(app, db)
    nothing_pending(app, db)


def test_bandage_applies_some_and_prisma_the_rest(run_bandage, db, project, history):
    bandage(run_bandage, db, project(2, "first"))
    app = project(4)
    result = prisma_ok(app, ["db", "migrate"], db)
    assert result.result["migrationsApplied"] == 2, result
    assert [r[0] for r in ledger(db)] == history.names()
    verified(app, db)
    nothing_pending(app, db)


def test_prisma_and_bandage_started_together_apply_each_package_once(run_bandage, db, project,
                                                                      history):
    """Both wait for Prisma's lock, which a third session holds; once it is
    free, one applies the four packages and the other finds them applied:
    four ledger rows, both exit 0."""
    app = project(4)
    key = "prisma_8.contract.marker:public:app"
    with db.connect(user="postgres") as holder:
        holder.autocommit = False
        holder.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
        run = run_bandage(["--database-url", db.dsn(), "--migrations", migrations(app)],
                          timeout=scaled(60))
        peer = prisma8.start(app, ["db", "migrate", "--db", db.dsn()])
        run.wait_for_stderr(r"waiting for Prisma 8's migrations lock", timeout=scaled(30))
        wait_until(lambda: db.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                                      " AND NOT granted", user="postgres")[0][0] >= 1,
                   scaled(60), "prisma db migrate waiting for its lock")
        holder.commit()
    out, _ = peer.communicate(timeout=scaled(120))
    assert peer.returncode == 0, out
    run.wait_exit_code(0)
    assert sorted(r[0] for r in ledger(db)) == sorted(history.names())
    verified(app, db)


# --- what bandage refuses --------------------------------------------------------------------

def test_a_tampered_package_is_refused_and_nothing_applied(run_bandage, db, project, history):
    app = project(4)
    dirname = history.names()[2]
    meta, ops = prisma8.read_package(migrations(app), dirname)
    [step] = [s for op in ops for s in op["execute"] if 'CREATE TABLE "public"."Tag"' in s["sql"]]
    step["sql"] = step["sql"].replace('"Tag"', '"Tags"')
    prisma8.write_package(migrations(app), dirname, meta, ops, rehash=False)
    before = dump(db)
    run = bandage(run_bandage, db, app, code=65)
    assert re.search(rf"{dirname}: migrationHash {meta['migrationHash'][:12]}… does not match "
                     r"the package", run.stderr), run.stderr
    assert dump(db) == before
    # Prisma refuses it too, and computes the same hash of the changed package
    [failure] = prisma8.run(app, ["migration", "check"]).result["failures"]
    assert failure["code"] == "MIGRATION.CHECK_HASH_MISMATCH", failure
    recomputed = re.search(r"recomputed hash ([0-9a-f]{64})", failure["why"]).group(1)
    assert f"hash to {recomputed[:12]}…" in run.stderr, (failure, run.stderr)


def test_a_failing_precheck_rolls_the_whole_run_back(run_bandage, db, project, history):
    """v3 and v4 run in one transaction: v4's precheck (no NULL nicknames)
    fails on a row v3's column left NULL, and v3 goes with it."""
    bandage(run_bandage, db, project(2, "first"))
    db.execute("""INSERT INTO "User" (email) VALUES ('a@example.com')""", user="postgres")
    before = dump(db)
    run = bandage(run_bandage, db, project(4), code=65)
    assert re.search(r"migration \w+_v4, operation alterNullability\.setNotNull\.User\.nickname "
                     r"\(.*\): precheck 2 is false: ensure no NULL values in \"nickname\" "
                     r"\(Prisma's MIGRATION\.PRECHECK_FAILED\); rolled back", run.stderr), \
        run.stderr
    assert dump(db) == before
    assert marker(db) == history.head(2)


def test_a_failing_postcheck_rolls_the_whole_run_back(run_bandage, db, project, history):
    """An event trigger drops the table Tag as soon as it is created: v3's
    postcheck (table Tag exists) fails, and v3 is rolled back whole."""
    bandage(run_bandage, db, project(2, "first"))
    db.execute("""
        CREATE FUNCTION public.no_tag() RETURNS event_trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF to_regclass('public."Tag"') IS NOT NULL THEN DROP TABLE public."Tag"; END IF;
        END $$;
        CREATE EVENT TRIGGER no_tag ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
          EXECUTE FUNCTION public.no_tag();""", user="postgres")
    before = dump(db)
    run = bandage(run_bandage, db, project(3), code=65)
    assert re.search(r"operation table\.Tag \(.*\): postcheck 1 is false: .*Prisma's "
                     r"MIGRATION\.POSTCHECK_FAILED", run.stderr), run.stderr
    assert dump(db) == before


def test_a_marker_on_no_path_is_refused(run_bandage, db, project, history):
    """A database migrated further than the directory knows (an older
    deploy, another branch): refused, nothing changed."""
    bandage(run_bandage, db, project(4))
    before = dump(db)
    run = bandage(run_bandage, db, project(2, "older"), code=65)
    assert f"prisma_contract.marker is at contract {history.head(4)[:12]}…, which no migration" \
        in run.stderr, run.stderr
    assert dump(db) == before


def test_two_newest_contracts_are_refused(run_bandage, db, project, history):
    """A branch: a second package out of v2's contract, to another one."""
    app = project(3)
    meta, ops = prisma8.read_package(migrations(app), history.names()[2])
    meta = dict(meta, to="f" * 64, createdAt="2099-01-01T00:00:00.000Z")
    prisma8.write_package(migrations(app), "20990101T0000_branch", meta, ops)
    run = bandage(run_bandage, db, app, code=65)
    assert "end in two contracts" in run.stderr and "the history branched" in run.stderr, \
        run.stderr
    assert regclass(db, "prisma_contract.marker") is None


def test_an_extension_space_is_refused_before_connecting(run_bandage, db, project):
    app = project(2)
    shutil.copytree(os.path.join(migrations(app), "app"), os.path.join(migrations(app), "pgvec"))
    run = bandage(run_bandage, db, app, code=64)
    assert 'contract space "pgvec"' in run.stderr, run.stderr


# --- --plan, checks, the reset ------------------------------------------------------------------

def test_plan_lists_pending_packages_and_their_operation_classes(run_bandage, db, project,
                                                                  history):
    bandage(run_bandage, db, project(2, "first"))
    before = dump(db)
    run = bandage(run_bandage, db, project(4), "--plan")
    names = history.names()
    assert f"  applied  {names[0]}\n  applied  {names[1]}\n" in run.stdout, run.stdout
    assert f"  pending  {names[2]} (2 operations: 2 additive)\n" in run.stdout, run.stdout
    assert (f"  pending  {names[3]} (1 operation: 1 destructive: "
            f"alterNullability.setNotNull.User.nickname)\n") in run.stdout, run.stdout
    assert "2 pending: nothing was changed (--plan)" in run.stdout, run.stdout
    assert dump(db) == before


def test_statement_checks_see_the_pending_operations(run_bandage, db, project, history):
    """--migration-checks refuse: v4's SET NOT NULL on a table of the
    running app breaks it; nothing runs."""
    bandage(run_bandage, db, project(3, "first"))
    before = dump(db)
    run = bandage(run_bandage, db, project(4), "--migration-checks", "refuse", code=65)
    assert re.search(rf"migration {history.names()[3]}, operation alterNullability\.setNotNull"
                     r"\.User\.nickname, line 1: breaking set-not-null", run.stderr), run.stderr
    assert dump(db) == before


def test_reset_rebuilds_from_the_packages_and_records_them(run_bandage, db, project, history):
    bandage(run_bandage, db, project(2, "first"))
    db.execute('CREATE TABLE public.leftover (id int)', user="postgres")
    app = project(4)
    run = bandage(run_bandage, db, app, "--reset", "always", "--confirm-database", db.name)
    assert regclass(db, "public.leftover") is None
    assert marker(db) == history.head(4)
    # the earlier run's rows stay, as history; the reset's follow
    assert [r[0] for r in ledger(db)] == history.names(2) + history.names()
    assert "nothing pending" in run.stderr, run.stderr
    verified(app, db)
    nothing_pending(app, db)


# --- from Prisma 7 to Prisma 8 ------------------------------------------------------------------

def test_moving_from_prisma7_to_prisma8(run_bandage, db, project, history, tmp_path):
    """A database built by Prisma 7 migrations (migration.sql, _prisma_migrations)
    moves to Prisma 8 as README "Migrations" says: prisma db sign, then a
    baseline package; bandage applies what follows the baseline, and the
    directory given decides which bookkeeping is read and written."""
    # Prisma 7's history: one migration.sql with step 2's schema
    old = tmp_path / "prisma7"
    (old / "20240101000000_init").mkdir(parents=True)
    (old / "migration_lock.toml").write_text('provider = "postgresql"\n')
    sql, source = [], project(4, "source")
    for dirname in history.names(2):
        _, ops = prisma8.read_package(migrations(source), dirname)
        sql += [step["sql"] + ";" for op in ops for step in op["execute"]]
    (old / "20240101000000_init" / "migration.sql").write_text("\n".join(sql) + "\n")
    run_bandage(["--database-url", db.dsn(), "--migrations", str(old)]).wait_exit_code(0)
    # Prisma 8: sign the database with step 2's contract, plan a baseline
    signer = project(2, "signer")
    result = prisma_ok(signer, ["db", "sign", "--no-advance-ref"], db)
    assert marker(db) == history.head(2), result
    app = project(4, without=(1, 2), extra=("baseline",))
    bandage(run_bandage, db, app)
    assert [r[0] for r in ledger(db)] == history.names()[2:]
    verified(app, db)
    nothing_pending(app, db)
    # Prisma 7's bookkeeping is left alone, and its directory still finds nothing pending
    assert db.execute("SELECT migration_name FROM _prisma_migrations", user="postgres") == \
        [("20240101000000_init",)]
    run = run_bandage(["--database-url", db.dsn(), "--migrations", str(old)])
    run.wait_exit_code(0)
    assert "nothing pending" in run.stderr, run.stderr


# --- locks: the app comes first ------------------------------------------------------------------

#: The app's own bound in the lock tests below: PostgreSQL cancels any of its
#: queries that waits longer for a lock. bandage's goal is 250 ms (attempts of
#: at most 200 ms); twice that leaves a loaded CI machine room to schedule the
#: server. The goal itself is measured by bench/stall_rows.py, not asserted.
APP_LOCK_TIMEOUT = "500ms"


def waiting_for_a_lock(db):
    return db.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bandage'"
                      " AND wait_event_type = 'Lock'", user="postgres")[0][0] == 1


def test_the_run_behind_an_old_transaction_never_stalls_the_app(run_bandage, db, project,
                                                                history):
    """The previous deployment still serves: one of its requests holds a
    transaction that has read "User"; its other requests keep querying it.
    v3's ALTER TABLE waits at most one short attempt at a time, so none of
    the app's queries (lock_timeout 1 s) is cancelled, and the run applies
    once the old transaction ends."""
    bandage(run_bandage, db, project(2, "first"))
    old_request = db.connect(user="postgres", application_name="old-request")
    app = db.connect(user="postgres", application_name="old-app")
    try:
        old_request.autocommit = False
        old_request.execute('SELECT count(*) FROM "User"')  # ACCESS SHARE until it ends
        app.execute(f"SET lock_timeout = '{APP_LOCK_TIMEOUT}'")
        run = run_bandage(["--database-url", db.dsn(), "--migrations", migrations(project(3)),
                           "--lock-wait", "20"], timeout=scaled(60))
        wait_until(lambda: waiting_for_a_lock(db), scaled(10),
                   "bandage's run to wait for the table's lock")
        for _ in range(15):  # the app's queries while bandage retries
            app.execute('SELECT count(*) FROM "User"')
            time.sleep(0.1)
        assert run.running, run.stderr
        old_request.rollback()  # the old request ends
        run.wait_exit_code(0, timeout=scaled(10))
    finally:
        old_request.close()
        app.close()
    name = history.names()[2]
    assert re.search(rf"migration {name}: a lock it needs at operation \S+ is held by another "
                     r"session; rolled back, trying again in attempts of at most 200 ms",
                     run.stderr), run.stderr
    assert re.search(rf"migration {name} got its locks at attempt \d+", run.stderr), run.stderr
    assert [r[0] for r in ledger(db)] == history.names(3)


def test_a_lock_wait_that_runs_out_exits_69_and_names_the_session(run_bandage, db, project,
                                                                   history):
    bandage(run_bandage, db, project(2, "first"))
    before = dump(db)
    with db.connect(user="postgres", application_name="old-request") as old_request:
        old_request.autocommit = False
        old_request.execute('SELECT count(*) FROM "User"')
        run = bandage(run_bandage, db, project(4), "--lock-wait", "1", code=69)
        old_request.rollback()
    assert re.search(r"migrations \S+_v3 to \S+_v4 \(one transaction\): a lock it needs at "
                     r"migration \S+_v3, operation \S+ was not free within 1000 ms in \d+ attempts "
                     r"of at most 200 ms", run.stderr), run.stderr
    assert re.search(r"is held by server process \d+ \(application 'old-request'", run.stderr), \
        run.stderr
    assert dump(db) == before


def test_prisma_lock_held_elsewhere_exits_69_naming_its_holder(run_bandage, db, project):
    """Prisma's transaction lock, held by another migrator for longer than
    --wait-timeout: 69, the holder named, nothing applied."""
    key = "prisma_8.contract.marker:public:app"
    with db.connect(user="postgres", application_name="other-migrator") as holder:
        holder.autocommit = False
        holder.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
        run = bandage(run_bandage, db, project(2), "--wait-timeout", "1", code=69)
        holder.rollback()
    assert f"Prisma 8's migrations lock (pg_advisory_xact_lock(hashtext('{key}'))) was not free " \
        "within 1000 ms" in run.stderr, run.stderr
    assert "application 'other-migrator'" in run.stderr, run.stderr
    assert regclass(db, "prisma_contract.marker") is None
