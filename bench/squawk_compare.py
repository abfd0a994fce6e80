#!/usr/bin/python3
"""bandage's statement checks next to squawk (npm `squawk-cli`), on the same
Prisma migrations (issue 20, item 5). Results: bench/README.md.

Each corpus is deployed the way it would be in production: migration k is
the one pending deploy, onto a database holding migrations 1..k-1 (applied by
bandage, then ANALYZEd). bandage's view is its `--plan` (the live catalog:
what exists, its estimated rows and size); squawk's is `squawk --reporter
json` of the same file, which reads the text alone. A finding is attributed
to the statement whose first line is the last at or before squawk's line.

usage: bench/squawk_compare.py [--history] [--generated N] [DIR ...]
  --history       tests/integration/helpers/migrations.py HISTORY
  --generated N   bench/gen_migrations.py's first N migrations
  DIR             a Prisma migrations directory (e.g. other projects' files,
                  kept outside the repository)
Environment: BANDAGE (default build/bandage); SQUAWK (default: installed
with npm into BENCH_TOOLS, bench/.tools).
"""
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, HERE)
from helpers.pg import CertAuthority, PgCluster  # noqa: E402

import gen_migrations  # noqa: E402
import tools  # noqa: E402

#: squawk rules about the session or the style, not what a statement does to
#: the running deployment: bandage sets lock_timeout itself and runs each
#: migration in one transaction, so these do not apply to it.
SESSION_RULES = {"require-lock-timeout", "require-statement-timeout", "require-timeout-settings",
                 "prefer-robust-stmts", "prefer-bigint-over-int", "prefer-big-int",
                 "prefer-bigint-over-smallint", "prefer-identity", "prefer-text-field",
                 "prefer-timestamptz", "prefer-timestamp-tz", "ban-char-field",
                 "transaction-nesting", "require-enum-value-ordering",
                 "ban-concurrent-index-creation-in-transaction"}

PLAN_LINE = re.compile(r"^ {11}line (\d+): (breaking|long-lock) (\S+)")
PENDING = re.compile(r"^  pending  (\S+)")


def squawk_bin():
    path = os.environ.get("SQUAWK")
    if path:
        return path
    hit = os.path.join(tools.TOOLS, "node_modules", ".bin", "squawk")
    if not os.path.exists(hit):
        subprocess.run(["npm", "install", "--prefix", tools.TOOLS, "--no-audit", "--no-fund",
                        "--loglevel", "error", "squawk-cli"], check=True, timeout=600)
    return hit


def statement_lines(sql):
    """First lines of the statements (a rough split: enough to attribute)."""
    sql = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), sql, flags=re.S)
    lines, depth, start = [], 0, None
    for n, line in enumerate(sql.splitlines(), 1):
        code = line.split("--", 1)[0].strip()
        if start is None and code:
            start = n
        depth += code.count("(") - code.count(")")
        if start is not None and code.endswith(";") and depth <= 0:
            lines.append(start)
            start = None
    return lines


def on_new_table(sql, line):
    """Does the statement at `line` act on a table the same file creates?"""
    text = "\n".join(sql.splitlines()[line - 1:]).split(";", 1)[0]
    m = re.search(r'(?:\bON|ALTER TABLE)\s+("[^"]+"|\w+)', text)
    return bool(m) and re.search(r"CREATE TABLE\s+" + re.escape(m.group(1)), sql) is not None


def attribute(line, starts):
    best = starts[0] if starts else line
    for s in starts:
        if s <= line:
            best = s
    return best


def run_squawk(squawk, path, pg_version):
    r = subprocess.run([squawk, "--reporter", "json", f"--pg-version={pg_version}", path],
                       capture_output=True, text=True, timeout=120)
    try:
        return json.loads(r.stdout or "[]")
    except json.JSONDecodeError:
        return [{"rule_name": "squawk-error", "line": 0, "message": r.stdout + r.stderr}]


def bandage(args, url):
    env = dict(os.environ, DATABASE_URL=url)
    b = os.environ.get("BANDAGE", os.path.join(REPO, "build", "bandage"))
    return subprocess.run([b, *args], capture_output=True, text=True, env=env, timeout=300)


def plan_findings(out, name):
    found, mine = [], False
    for line in out.splitlines():
        m = PENDING.match(line)
        if m:
            mine = m.group(1) == name
        m = PLAN_LINE.match(line)
        if m and mine:
            found.append((int(m.group(1)), m.group(2), m.group(3)))
    return found


def deploy_one_by_one(cluster, label, migrations, squawk, pg_version):
    """[(migration, statement line, 'bandage'|'squawk', rule)], statements."""
    dbname = re.sub(r"\W", "_", label.lower())[:40]
    cluster.drop_database(dbname)
    db = cluster.create_database(dbname)
    url = db.dsn()
    work = tempfile.mkdtemp(prefix="squawk-cmp-")
    mdir = os.path.join(work, "migrations")
    rows, statements = [], 0
    new = set()
    try:
        for k, (name, sql) in enumerate(migrations):
            gen_migrations.write_prisma(mdir, [(name, sql)])
            starts = statement_lines(sql)
            statements += len(starts)
            plan = bandage(["--migrations", mdir, "--plan", "true"], url)
            if plan.returncode != 0:
                raise RuntimeError(f"{label} {name}: plan exited {plan.returncode}: {plan.stderr}")
            for line, cls, rule in plan_findings(plan.stdout, name):
                rows.append((name, line, "bandage", rule))
            new |= {(name, l) for l in starts if on_new_table(sql, l)}
            for f in run_squawk(squawk, os.path.join(mdir, name, "migration.sql"),
                                pg_version):
                rows.append((name, attribute(f["line"] + 1, starts), "squawk", f["rule_name"]))
            run = bandage(["--migrations", mdir, "--migration-checks", "off"], url)
            if run.returncode != 0:
                raise RuntimeError(f"{label} {name}: exited {run.returncode}: {run.stderr}")
            db.execute("ANALYZE", user="postgres")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        cluster.drop_database(dbname)
    return rows, statements, new


def summarize(label, migrations, rows, statements, new):
    by_tool = collections.defaultdict(collections.Counter)
    for _, _, tool, rule in rows:
        by_tool[tool][rule] += 1
    semantic = {(m, l) for m, l, t, r in rows if t == "squawk" and r not in SESSION_RULES}
    mine = {(m, l) for m, l, t, _ in rows if t == "bandage"}
    print(f"### {label}: {len(migrations)} migrations, {statements} statements\n")
    print("| | bandage | squawk |")
    print("|---|---|---|")
    print(f"| findings | {sum(by_tool['bandage'].values())} | "
          f"{sum(by_tool['squawk'].values())} "
          f"({sum(c for r, c in by_tool['squawk'].items() if r in SESSION_RULES)} session/style) |")
    print(f"| statements flagged | {len(mine)} | {len(semantic)} (without session/style rules) |")
    print(f"| flagged by both | {len(mine & semantic)} | |")
    print(f"| flagged by one only | {len(mine - semantic)} | {len(semantic - mine)} "
          f"({len((semantic - mine) & new)} on a table the same migration creates) |")
    print("| rules | " + ", ".join(f"`{r}` {c}" for r, c in by_tool["bandage"].most_common())
          + " | " + ", ".join(f"`{r}` {c}" for r, c in by_tool["squawk"].most_common()) + " |")
    print()
    only = sorted((semantic - mine) | (mine - semantic))
    for m, l in only:
        who = "squawk only" if (m, l) in semantic else "bandage only"
        rules = sorted({r for mm, ll, _, r in rows if (mm, ll) == (m, l)
                        and r not in SESSION_RULES})
        print(f"- {who}: {m} line {l}: {', '.join(rules)}")
    if only:
        print()


def corpora(argv):
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--history":
            from helpers.migrations import HISTORY
            out.append(("tests HISTORY", list(HISTORY)))
        elif a == "--generated":
            n = int(argv[i + 1])
            i += 1
            out.append((f"gen_migrations {n}", gen_migrations.history(n)))
        else:
            names = sorted(d for d in os.listdir(a) if os.path.isdir(os.path.join(a, d)))
            migs = [(d, open(os.path.join(a, d, "migration.sql")).read()) for d in names]
            out.append((os.path.basename(a.rstrip("/")), migs))
        i += 1
    return out


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 64
    squawk = squawk_bin()
    version = subprocess.run([squawk, "--version"], capture_output=True, text=True).stdout
    tmp, _ = tools.data_tmpdir("squawk-bench-")
    cluster = PgCluster(CertAuthority(os.path.join(tmp, "ca")), base_dir=os.path.join(tmp, "pg"))
    cluster.start()
    try:
        server = cluster.execute("SHOW server_version")[0][0]
        pg_version = server.split()[0]
        print(f"{version.strip()} (--pg-version={pg_version}), bandage --plan against "
              f"PostgreSQL {server}\n")
        for label, migrations in corpora(argv):
            rows, statements, new = deploy_one_by_one(cluster, label, migrations, squawk,
                                                      pg_version)
            summarize(label, migrations, rows, statements, new)
    finally:
        cluster.stop(mode="immediate")
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
