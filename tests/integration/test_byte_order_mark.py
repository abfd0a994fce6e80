"""A file of SQL that starts with a byte-order mark (what Notepad, Visual
Studio and PowerShell's ``Out-File -Encoding utf8`` write): PostgreSQL reads
U+FEFF as part of the first word and fails with ``syntax error at or near
"CREATE"``, the mark invisible in the quote. psql sends the mark as it is,
and so does Prisma (it reads migration.sql as a UTF-8 string).

bandage refuses such a file before anything runs (exit 64, naming the file
and the fix) rather than strip the mark: a --schema-file it reads is left as
it is, and a migration's recorded checksum is of its bytes, mark included.
An applied migration is never refused for one: its bytes ran (or were
resolved) as they are.
"""
import hashlib


from helpers.migrations import HISTORY, MigrationsDir
from test_reset import EXAMPLE_SQL, dump, reset_args, write_sql
from test_reset_safety import assert_untouched, seeded

BOM = "\ufeff"
BOM_BYTES = BOM.encode()


def assert_named(run, path):
    assert f"{path} starts with a UTF-8 byte-order mark" in run.stderr, run.stderr
    assert "save it without one" in run.stderr, run.stderr
    assert "deploy ok" not in run.stderr
    assert BOM not in run.stderr, "the mark itself reached the log, unescaped"


def prisma_rows(db):
    return db.execute('SELECT migration_name, finished_at IS NOT NULL, rolled_back_at IS NULL'
                      ' FROM public."_prisma_migrations" ORDER BY migration_name',
                      user="postgres")


def test_schema_file_with_a_byte_order_mark_is_refused(run_bandage, db, tmp_path):
    before = seeded(db)
    path = write_sql(tmp_path, BOM + EXAMPLE_SQL)
    run = run_bandage(reset_args(db, schema_file=path))
    run.wait_exit_code(64)
    assert_named(run, f"--schema-file {path}:")
    assert_untouched(db, before, run)


def test_reset_from_a_migration_with_a_byte_order_mark_is_refused(run_bandage, db, tmp_path):
    before = seeded(db)
    mdir = MigrationsDir(tmp_path, migrations=HISTORY[:1])
    name, sql = HISTORY[1]
    path = mdir.add(name, BOM + sql)
    run = run_bandage(reset_args(db, "--migrations", mdir.path, schema_file=None))
    run.wait_exit_code(64)
    assert_named(run, f"--migrations: {path}")
    assert_untouched(db, before, run)


def test_pending_migration_with_a_byte_order_mark_is_refused(run_bandage, db, tmp_path):
    """Before: the migration ran and failed on its first statement (exit 65,
    `syntax error at or near "<U+FEFF>"`, the mark invisible in the log)."""
    mdir = MigrationsDir(tmp_path, migrations=HISTORY[:1])
    run_bandage(["--database-url", db.dsn(), "--migrations", mdir.path]).wait_exit_code(0)
    before = dump(db)
    name, sql = HISTORY[1]
    path = mdir.add(name, BOM + sql)
    run = run_bandage(["--database-url", db.dsn(), "--migrations", mdir.path])
    run.wait_exit_code(64)
    assert_named(run, f"--migrations: {path}")
    assert_untouched(db, before, run)
    assert prisma_rows(db) == [(HISTORY[0][0], True, True)]


def test_applied_migration_with_a_byte_order_mark_is_not_refused(run_bandage, db, tmp_path):
    """A baseline made with `prisma migrate diff > migration.sql` in
    PowerShell and `prisma migrate resolve --applied`: the file, mark
    included, is what the recorded checksum is of. Prisma deploys past it;
    so does bandage, without a word about the mark or a changed file."""
    mdir = MigrationsDir(tmp_path, migrations=HISTORY[:1])
    run_bandage(["--database-url", db.dsn(), "--migrations", mdir.path]).wait_exit_code(0)
    name, sql = HISTORY[0]
    mdir.add(name, BOM + sql)
    checksum = hashlib.sha256(BOM_BYTES + sql.encode()).hexdigest()
    assert mdir.checksum(name) == checksum
    db.execute('UPDATE public."_prisma_migrations" SET checksum = %s WHERE migration_name = %s',
               (checksum, name), user="postgres")
    mdir.add(*HISTORY[1])
    run = run_bandage(["--database-url", db.dsn(), "--migrations", mdir.path,
                       "--migrations-strict", "true"])
    run.wait_exit_code(0)
    assert "byte-order mark" not in run.stderr, run.stderr
    assert "another file" not in run.stderr, run.stderr
    assert prisma_rows(db) == [(HISTORY[0][0], True, True), (HISTORY[1][0], True, True)]
