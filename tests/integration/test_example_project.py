"""The example Prisma 7 project (examples/) as the README's strategies use it:
its migrations directory (what prisma.config.ts's migrations.path names)
applies with bandage, and its schema file resets. No Prisma CLI needed."""
import os

from helpers import REPO_ROOT

MIGRATIONS = os.path.join(REPO_ROOT, "examples", "prisma", "migrations")
SCHEMA_SQL = os.path.join(REPO_ROOT, "examples", "prisma", "schema.sql")


def tables(db):
    return sorted(r[0] for r in db.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", user="postgres"))


def test_migrations_apply_then_nothing_is_pending(run_bandage, db):
    """railway.ts's pre-deploy command on a fresh database, then again."""
    run_bandage(["--database-url", db.dsn(), "--migrations", MIGRATIONS]).wait_exit_code(0)
    names = db.execute('SELECT migration_name FROM "_prisma_migrations" WHERE finished_at '
                       'IS NOT NULL', user="postgres")
    assert [n for (n,) in names] == sorted(d for d in os.listdir(MIGRATIONS)
                                           if os.path.isdir(os.path.join(MIGRATIONS, d)))
    assert {"User", "Post", "Comment", "Tag", "_PostToTag"} <= set(tables(db))
    again = run_bandage(["--database-url", db.dsn(), "--migrations", MIGRATIONS, "--plan"])
    again.wait_exit_code(0)
    out = again.stdout + again.stderr
    assert "applied  20261201000000_init" in out and "0 pending" in out, out


def test_schema_file_and_migrations_build_the_same_tables(run_bandage, db_factory):
    """railpack.json's reset from schema.sql and the migrations: one schema."""
    a, b = db_factory(), db_factory()
    run_bandage(["--database-url", a.dsn(), "--reset", "always", "--confirm-database", a.name,
                 "--schema-file", SCHEMA_SQL]).wait_exit_code(0)
    run_bandage(["--database-url", b.dsn(), "--migrations", MIGRATIONS]).wait_exit_code(0)
    assert tables(a) == sorted(set(tables(b)) - {"_prisma_migrations"})
