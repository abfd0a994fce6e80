"""The statement checks (--migration-checks, issue 20 items 3 and 4): every
pending statement read with PostgreSQL's own parser before anything runs,
each finding with its table's estimated rows and size from the live catalog.

A rule per case against a real database with rows (--plan shows it, changes
nothing); the safe forms and tables created earlier in the run are not
flagged; warn applies and logs and reports; refuse exits 65 and touches
nothing; a ``-- bandage:allow RULE`` comment lets the step through; a
statement the binary's grammar (PostgreSQL 15's with Debian's libpg-query-dev,
17's in the static release binaries) cannot read is "not checked", never
refused. The parser's side alone: tests/unit/test_lint.c.
"""
import json
import re

import pytest

from helpers import scaled
from helpers.migrations import MigrationsDir
from test_migrate import assert_same_dump, dump, migrate_args

BASE = """\
-- CreateEnum
CREATE TYPE "Role" AS ENUM ('USER', 'ADMIN');
CREATE TYPE "Mood" AS ENUM ('OK');

-- CreateTable
CREATE TABLE "User" (
    "id" SERIAL NOT NULL,
    "email" TEXT NOT NULL,
    "name" TEXT,
    "role" "Role" NOT NULL DEFAULT 'USER',
    CONSTRAINT "User_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Post" (
    "id" SERIAL NOT NULL,
    "title" TEXT NOT NULL,
    "authorId" INTEGER NOT NULL,
    CONSTRAINT "Post_pkey" PRIMARY KEY ("id")
);

-- CreateIndex (a new table: no finding)
CREATE UNIQUE INDEX "Post_title_key" ON "Post"("title");

-- AddForeignKey (a new table: no finding)
ALTER TABLE "Post" ADD CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId") REFERENCES "User"("id");

CREATE VIEW "UserNames" AS SELECT "email" FROM "User";
CREATE FUNCTION "slugify"(t TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $$ SELECT lower(t) $$;
"""

USERS, POSTS = 1000, 3000

#: (rule, class, statement, table or None). Each is line 2 of its migration.
RULES = [
    ("drop-table", "breaking", 'DROP TABLE "Post";', "Post"),
    ("drop-view", "breaking", 'DROP VIEW "UserNames";', "UserNames"),
    ("drop-column", "breaking", 'ALTER TABLE "User" DROP COLUMN "name";', "User"),
    ("rename-table", "breaking", 'ALTER TABLE "Post" RENAME TO "Article";', "Post"),
    ("rename-column", "breaking", 'ALTER TABLE "User" RENAME COLUMN "name" TO "fullName";',
     "User"),
    ("change-column-type", "breaking",
     'ALTER TABLE "User" ALTER COLUMN "email" SET DATA TYPE VARCHAR(300);', "User"),
    ("set-not-null", "breaking", 'ALTER TABLE "User" ALTER COLUMN "name" SET NOT NULL;', "User"),
    ("add-not-null-column", "breaking", 'ALTER TABLE "User" ADD COLUMN "age" INTEGER NOT NULL;',
     "User"),
    ("drop-type", "breaking", 'DROP TYPE "Mood";', None),
    ("rename-enum-value", "breaking", "ALTER TYPE \"Role\" RENAME VALUE 'ADMIN' TO 'OWNER';",
     None),
    ("drop-function", "breaking", 'DROP FUNCTION "slugify"(TEXT);', None),
    ("index-not-concurrent", "long-lock", 'CREATE INDEX "Post_authorId_idx" ON "Post"("authorId");',
     "Post"),
    ("add-foreign-key", "long-lock",
     'ALTER TABLE "Post" ADD CONSTRAINT "Post_author2_fkey" FOREIGN KEY ("authorId") '
     'REFERENCES "User"("id") ON DELETE RESTRICT ON UPDATE CASCADE;', "Post"),
    ("add-check", "long-lock",
     'ALTER TABLE "Post" ADD CONSTRAINT "title_len" CHECK (length("title") > 0);', "Post"),
    ("add-unique-constraint", "long-lock",
     'ALTER TABLE "User" ADD CONSTRAINT "User_email_key" UNIQUE ("email");', "User"),
    ("column-type-rewrite", "long-lock",
     'ALTER TABLE "Post" ALTER COLUMN "authorId" SET DATA TYPE BIGINT;', "Post"),
    ("vacuum-full", "long-lock", 'VACUUM FULL "Post";', "Post"),
    ("cluster", "long-lock", 'CLUSTER "Post" USING "Post_pkey";', "Post"),
]

ROWS = {"User": USERS, "Post": POSTS}


@pytest.fixture
def base(run_bandage, db, tmp_path):
    """The BASE migration applied, USERS users and POSTS posts, analyzed."""
    mdir = MigrationsDir(tmp_path, migrations=[("20240101000000_init", BASE)])
    run = run_bandage(migrate_args(db, mdir))
    run.wait_exit_code(0)
    assert "breaking" not in run.stderr and "long-lock" not in run.stderr, run.stderr
    db.execute(f"INSERT INTO \"User\" (email, name) SELECT 'u' || g || '@example.com', 'n' || g"
               f" FROM generate_series(1, {USERS}) g", user="postgres")
    db.execute(f"INSERT INTO \"Post\" (title, \"authorId\") SELECT 't' || g, 1 + g % {USERS}"
               f" FROM generate_series(1, {POSTS}) g", user="postgres")
    db.execute("ANALYZE", user="postgres")
    return mdir


def finding_line(out, cls, rule, table):
    """The --plan line of a finding: class, rule, table, then its size."""
    where = rf' on "{table}"( \([^)]*\))?: ~{ROWS[table]} rows, \d+ (bytes|kB|MB)' \
        if table in ROWS else (rf' on "{table}"' if table else " ")
    return re.search(rf"^ {{11}}line 2: {cls} {re.escape(rule)}{where}", out, re.M)


@pytest.mark.parametrize("rule,cls,sql,table", RULES, ids=[r[0] for r in RULES])
def test_plan_shows_each_rule_with_the_tables_size(run_bandage, db, base, rule, cls, sql, table):
    base.add("20240102000000_step", f"-- step\n{sql}\n")
    before = dump(db)
    plan = run_bandage(migrate_args(db, base, "--plan", "true"))
    plan.wait_exit_code(0)
    assert finding_line(plan.stdout, cls, rule, table), plan.stdout
    findings = [l for l in plan.stdout.splitlines() if l.startswith(" " * 11 + "line ")]
    extra = 1 if rule in ("column-type-rewrite",) else 0  # a type change is both
    assert len(findings) == 1 + extra, plan.stdout
    assert re.search(rf"warn: migration 20240102000000_step, line 2: {cls} {re.escape(rule)}",
                     plan.stderr), plan.stderr
    assert_same_dump(before, dump(db))


SAFE = """\
-- CreateTable
CREATE TABLE "Tag" ("id" SERIAL NOT NULL, "name" TEXT NOT NULL, CONSTRAINT "Tag_pkey" PRIMARY KEY ("id"));
CREATE UNIQUE INDEX "Tag_name_key" ON "Tag"("name");
ALTER TABLE "Tag" ADD COLUMN "postId" INTEGER NOT NULL;
ALTER TABLE "Tag" ADD CONSTRAINT "Tag_postId_fkey" FOREIGN KEY ("postId") REFERENCES "Post"("id");
-- expand: nullable, or with a default
ALTER TABLE "User" ADD COLUMN "bio" TEXT, ADD COLUMN "score" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "Post" ADD CONSTRAINT "Post_title_len" CHECK (length("title") > 0) NOT VALID;
ALTER TABLE "Post" ADD CONSTRAINT "Post_authorId_fkey2" FOREIGN KEY ("authorId") REFERENCES "User"("id") NOT VALID;
ALTER TYPE "Role" ADD VALUE 'EDITOR';
ALTER TABLE "User" ALTER COLUMN "email" DROP NOT NULL;
"""


def test_safe_forms_and_new_tables_are_not_flagged(run_bandage, db, base):
    base.add("20240102000000_safe", SAFE)
    base.add("20240103000000_tag_index", 'CREATE INDEX "Tag_postId_idx" ON "Tag"("postId");\n')
    base.add("20240104000000_concurrently",
             'CREATE INDEX CONCURRENTLY "Post_authorId_idx" ON "Post"("authorId");\n')
    run = run_bandage(migrate_args(db, base, "--migration-checks", "refuse"))
    run.wait_exit_code(0)
    assert "breaking" not in run.stderr and "long-lock" not in run.stderr, run.stderr
    assert db.execute("SELECT to_regclass('\"Tag_postId_idx\"')::text")[0][0] == "\"Tag_postId_idx\""


def test_warn_applies_logs_and_reports(run_bandage, db, base, webhook):
    sql = '-- AlterTable\nALTER TABLE "User" DROP COLUMN "name";\n' \
          'CREATE INDEX "Post_authorId_idx" ON "Post"("authorId");\n'
    base.add("20240102000000_contract", sql)
    run = run_bandage(migrate_args(db, base, "--webhook-url", webhook.url))
    run.wait_exit_code(0)
    assert re.search(r'warn: migration 20240102000000_contract, line 2: breaking drop-column '
                     r'on "User" \(column name\): ~1000 rows, \d+ kB: the running deployment still '
                     r'selects and writes it', run.stderr), run.stderr
    assert re.search(r'line 3: long-lock index-not-concurrent on "Post" \(Post_authorId_idx\): '
                     r'~3000 rows', run.stderr), run.stderr
    assert "checks: 1 breaking, 1 long-lock (0 acknowledged), 0 not checked" in run.stderr
    assert not db.execute("SELECT 1 FROM information_schema.columns WHERE table_name = 'User'"
                          " AND column_name = 'name'")
    webhook.wait_for(1, scaled(5))
    checks = json.loads(webhook.requests[0].body)["migrations"]["checks"]
    assert (checks["breaking"], checks["long_lock"], checks["acknowledged"],
            checks["not_checked"]) == (1, 1, 0, 0)
    first = checks["findings"][0]
    assert (first["migration"], first["line"], first["rule"], first["class"], first["table"],
            first["rows"], first["acknowledged"]) == \
        ("20240102000000_contract", 2, "drop-column", "breaking", "User", USERS, False)
    assert first["bytes"] > 8192
    assert checks["findings"][1]["rows"] == POSTS


def test_refuse_exits_65_names_migration_line_rule_and_touches_nothing(run_bandage, db, base,
                                                                       webhook):
    base.add("20240102000000_fine", 'ALTER TABLE "User" ADD COLUMN "bio" TEXT;\n')
    base.add("20240103000000_contract", '-- AlterTable\n\nALTER TABLE "User" DROP COLUMN "name";\n')
    before = dump(db)
    plan = run_bandage(migrate_args(db, base, "--plan", "true", "--migration-checks", "refuse"))
    plan.wait_exit_code(65)
    assert re.search(r"^refused \(exit 65\): migration 20240103000000_contract line 3: breaking "
                     r'drop-column on "User"', plan.stdout, re.M), plan.stdout
    run = run_bandage(migrate_args(db, base, "--migration-checks", "refuse", "--webhook-url",
                                   webhook.url))
    run.wait_exit_code(65)
    webhook.wait_for(1, scaled(5))
    report = json.loads(webhook.requests[0].body)
    assert (report["outcome"], report["exit_code"]) == ("failed", 65)
    assert (report["migrations"]["applied"], report["migrations"]["pending"]) == (0, 2)
    checks = report["migrations"]["checks"]
    assert checks["breaking"] == 1 and checks["findings"][0]["line"] == 3, checks
    assert report["errors"][0]["code"] == "check", report["errors"]
    assert re.search(r'error: migration 20240103000000_contract, line 3: breaking drop-column on '
                     r'"User" \(column name\): with --migration-checks refuse no migration was '
                     r'applied.*-- bandage:allow drop-column', run.stderr), run.stderr
    assert_same_dump(before, dump(db))  # not even the first, fine migration
    env = {"BANDAGE_MIGRATION_CHECKS": "refuse"}
    run_bandage(migrate_args(db, base), env=env).wait_exit_code(65)
    assert_same_dump(before, dump(db))


def test_allow_comment_lets_a_planned_contract_step_through(run_bandage, db, base, webhook):
    sql = ('-- The app stopped reading "name" in the previous deploy (expand/contract).\n'
           '-- bandage:allow drop-column\n'
           'ALTER TABLE "User" DROP COLUMN "name";\n')
    base.add("20240102000000_contract", sql)
    plan = run_bandage(migrate_args(db, base, "--plan", "true", "--migration-checks", "refuse"))
    plan.wait_exit_code(0)
    assert re.search(r'line 3: breaking drop-column on "User" .*, acknowledged$', plan.stdout,
                     re.M), plan.stdout
    run = run_bandage(migrate_args(db, base, "--migration-checks", "refuse", "--webhook-url",
                                   webhook.url))
    run.wait_exit_code(0)
    assert "acknowledged (-- bandage:allow drop-column)" in run.stderr, run.stderr
    assert not db.execute("SELECT 1 FROM information_schema.columns WHERE table_name = 'User'"
                          " AND column_name = 'name'")
    webhook.wait_for(1, scaled(5))
    checks = json.loads(webhook.requests[0].body)["migrations"]["checks"]
    assert checks["acknowledged"] == 1 and checks["findings"][0]["acknowledged"] is True


def test_allow_comment_names_one_rule_only(run_bandage, db, base):
    base.add("20240102000000_step", '-- bandage:allow drop-column\n'
                                    'ALTER TABLE "User" RENAME COLUMN "name" TO "fullName";\n')
    run = run_bandage(migrate_args(db, base, "--migration-checks", "refuse"))
    run.wait_exit_code(65)
    assert "breaking rename-column" in run.stderr, run.stderr


def test_unparsable_statement_is_not_checked_never_refused(run_bandage, db, base):
    # PostgreSQL 18's virtual generated columns: neither the 15 grammar (make)
    # nor the 17 one (the static binaries) reads VIRTUAL (a --plan: the test
    # server is older and would refuse it when run)
    base.add("20240102000000_newer", '-- newer syntax\n'
             'ALTER TABLE "Post" ADD COLUMN "slug" TEXT GENERATED ALWAYS AS (lower("title")) VIRTUAL;\n'
             'ALTER TABLE "User" ADD COLUMN "bio" TEXT;\n')
    plan = run_bandage(migrate_args(db, base, "--plan", "true", "--migration-checks", "refuse"))
    plan.wait_exit_code(0)
    assert re.search(r"^ {11}line 2: not checked \(PostgreSQL 1[5-9]'s grammar does not read it: "
                     r'syntax error at or near "VIRTUAL"\)$',
                     plan.stdout, re.M), plan.stdout
    assert "not checked" in plan.stderr and "left to the server" in plan.stderr
    assert re.search(r"PostgreSQL 1[5-9]'s grammar does not read it", plan.stderr), plan.stderr
    assert "1 pending, 0 changed" in plan.stdout


def test_off_checks_nothing(run_bandage, db, base, webhook):
    base.add("20240102000000_contract", 'ALTER TABLE "User" DROP COLUMN "name";\n')
    run = run_bandage(migrate_args(db, base, "--migration-checks", "off", "--webhook-url",
                                   webhook.url))
    run.wait_exit_code(0)
    assert "drop-column" not in run.stderr
    webhook.wait_for(1, scaled(5))
    assert json.loads(webhook.requests[0].body)["migrations"]["checks"] is None


def test_url_schema_sizes_the_table_in_that_schema(run_bandage, db, tmp_path):
    """With Prisma's schema parameter the unqualified names are that schema's."""
    db.execute("CREATE SCHEMA app AUTHORIZATION " + db.owner, user="postgres")
    url = db.dsn() + "?schema=app"
    mdir = MigrationsDir(tmp_path, migrations=[("20240101000000_init", BASE)])
    run_bandage(migrate_args(db, mdir, url=url)).wait_exit_code(0)
    db.execute(f"INSERT INTO app.\"User\" (email) SELECT 'u' || g FROM generate_series(1, {USERS}) g",
               user="postgres")
    db.execute("ANALYZE app.\"User\"", user="postgres")
    mdir.add("20240102000000_contract", '-- x\nALTER TABLE "User" DROP COLUMN "name";\n')
    plan = run_bandage(migrate_args(db, mdir, "--plan", "true", url=url))
    plan.wait_exit_code(0)
    assert finding_line(plan.stdout, "breaking", "drop-column", "User"), plan.stdout


def test_a_reset_with_migrations_is_not_checked(run_bandage, db, base):
    """A reset drops the schemas and rebuilds them: every table is new and
    the running deployment is being replaced wholesale; nothing to check."""
    base.add("20240102000000_contract", 'ALTER TABLE "User" DROP COLUMN "name";\n')
    run = run_bandage(["--database-url", db.dsn(), "--reset", "always", "--confirm-database",
                       db.name, "--migrations", base.path, "--migration-checks", "refuse"])
    run.wait_exit_code(0)
    assert "drop-column" not in run.stderr, run.stderr
