"""Prisma 8 as a real peer of bandage in the tests: its CLI from npm, run
against the harness's PostgreSQL.

Prisma 8 is a release candidate; the versions are pinned here, the one place
(see /work/shared/research/prisma8.md and docs/internals.md "Prisma 8
packages"). It is installed with the machine's npm into
``build/prisma-<version>`` and kept there for the next run (``npm dedupe``
after the install: two copies of arktype break Prisma's contract
validation). Node 20 runs the CLI (it asks for 22.18+).

:class:`History` is a project's history of migration packages, made by
Prisma itself from data models written here (``prisma contract emit``, then
``prisma migration plan``), cached in ``build/`` by the hash of the models
and the versions, so a session pays for it once. A package that needs
hand-written operations is made as Prisma asks: its ``migration.ts`` edited,
then run to emit ``ops.json`` (with jiti, which Prisma installs, because Node
20 cannot run TypeScript; ``@internal/postgres/migration`` is mapped to the
public ``@prisma/orm-postgres/migration``).
"""
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess

import pytest

from . import REPO_ROOT, scaled

VERSIONS = {"prisma": "8.0.0-rc.19", "@prisma/orm-postgres": "8.0.0-rc.13"}
PREFIX = os.path.join(REPO_ROOT, "build", f"prisma-{VERSIONS['prisma']}")
NPM = shutil.which("npm")

#: What an npm that cannot reach its registry says.
UNREACHABLE = re.compile(r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ECONNRESET|"
                         r"network request .* failed|getaddrinfo")

CONFIG_TS = """\
import { definePrismaConfig } from '@prisma/cli-engine';
import { defineConfig as ormConfig } from '@prisma/orm-postgres/config';

export default definePrismaConfig({
  orm: ormConfig({
    contract: './src/prisma/contract.prisma',
    db: { connection: process.env['DATABASE_URL'] ?? 'postgresql://app@127.0.0.1:9/app' },
  }),
});
"""


def node_version():
    """`node --version` (Prisma 8 asks for 22.18+; 20 runs it)."""
    node = shutil.which("node")
    if not node:
        return "none"
    r = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    return r.stdout.strip()


def _installed():
    found = {}
    for name in VERSIONS:
        try:
            with open(os.path.join(PREFIX, "node_modules", name, "package.json")) as f:
                found[name] = json.load(f).get("version")
        except (OSError, ValueError):
            found[name] = None
    return found == VERSIONS


def install():
    """The pinned Prisma 8 in build/, installed from npm once. Skips the test
    when npm is missing or cannot reach the registry; fails otherwise."""
    if _installed():
        return PREFIX
    if NPM is None:
        pytest.skip("npm is not installed: Prisma 8's CLI comes from npm")
    os.makedirs(PREFIX, exist_ok=True)
    with open(os.path.join(PREFIX, "package.json"), "w") as f:
        json.dump({"private": True, "dependencies": VERSIONS}, f)
    for args in (["install"], ["dedupe"]):
        r = subprocess.run([NPM, *args, "--prefix", PREFIX, "--no-audit", "--no-fund",
                            "--loglevel", "error"], capture_output=True, text=True,
                           timeout=scaled(900))
        if r.returncode != 0 and UNREACHABLE.search(r.stdout + r.stderr):
            pytest.skip(f"npm cannot reach its registry, so Prisma 8 cannot be installed: "
                        f"{UNREACHABLE.search(r.stdout + r.stderr).group(0)}")
        if r.returncode != 0:
            pytest.fail(f"npm {args[0]} of Prisma 8 failed:\n{r.stdout}{r.stderr}")
    if not _installed():
        pytest.fail(f"npm installed other versions than {VERSIONS} in {PREFIX}")
    return PREFIX


class Result:
    """One CLI run: exit code, the result envelope Prisma printed (its last
    ``"kind": "result"`` line), and the whole output for messages."""

    def __init__(self, code, output):
        self.code, self.output = code, output
        self.envelope = None
        for line in output.splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and item.get("kind") == "result":
                self.envelope = item.get("envelope")

    @property
    def ok(self):
        return self.code == 0 and bool(self.envelope and self.envelope.get("ok"))

    @property
    def result(self):
        return (self.envelope or {}).get("result") or {}

    @property
    def error_code(self):
        return ((self.envelope or {}).get("error") or {}).get("code")

    def __str__(self):
        return f"exit {self.code}:\n{self.output[-4000:]}"


def env(database_url=None):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("PRISMA_", "npm_", "PG")) and k != "DATABASE_URL"}
    e.update(PRISMA_DISABLE_TELEMETRY="1", CHECKPOINT_DISABLE="1", NO_COLOR="1", CI="1")
    if database_url:
        e["DATABASE_URL"] = database_url
    return e


def command(project, args):
    return [os.path.join(project, "node_modules", ".bin", "prisma"), *args]


def run(project, args, timeout=120, database_url=None):
    """Runs ``prisma ARGS`` in project, bounded; a :class:`Result`."""
    r = subprocess.run(command(project, args), cwd=project, env=env(database_url),
                       capture_output=True, text=True, timeout=scaled(timeout))
    return Result(r.returncode, r.stdout + r.stderr)


def start(project, args, database_url=None):
    """``prisma ARGS`` in the background: a Popen (stdout and stderr joined)."""
    return subprocess.Popen(command(project, args), cwd=project, env=env(database_url),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def new_project(path, model, prefix=None):
    """A Prisma 8 project at path (package.json, prisma.config.ts, the data
    model in src/prisma/contract.prisma), node_modules linked to the install."""
    os.makedirs(os.path.join(path, "src", "prisma"), exist_ok=True)
    with open(os.path.join(path, "package.json"), "w") as f:
        json.dump({"type": "module", "private": True}, f)
    with open(os.path.join(path, "prisma.config.ts"), "w") as f:
        f.write(CONFIG_TS)
    with open(os.path.join(path, "src", "prisma", "contract.prisma"), "w") as f:
        f.write(model)
    link = os.path.join(path, "node_modules")
    if not os.path.lexists(link):
        os.symlink(os.path.join(prefix or PREFIX, "node_modules"), link)
    return path


def _must(result, what):
    if not result.ok:
        raise AssertionError(f"prisma {what} failed: {result}")
    return result


def emit(project):
    return _must(run(project, ["contract", "emit"]), "contract emit")


def plan(project, name, after=None):
    """``prisma migration plan --name NAME [--from AFTER]``: the new package's
    directory name."""
    args = ["migration", "plan", "--name", name] + (["--from", after] if after else [])
    result = _must(run(project, args), "migration plan")
    return os.path.basename(result.result["dir"])


def emit_package_ts(project, dirname, edit):
    """Prisma's flow for a package with placeholders: migration.ts edited
    (``edit(text) -> text``), then run to emit ops.json and migration.json."""
    path = os.path.join(project, "migrations", "app", dirname, "migration.ts")
    with open(path) as f:
        text = edit(f.read())
    with open(path, "w") as f:
        f.write(text)
    jiti = os.path.join(project, "node_modules", ".bin", "jiti")
    e = env()
    e["JITI_ALIAS"] = json.dumps({"@internal/postgres/migration":
                                  "@prisma/orm-postgres/migration"})
    r = subprocess.run([jiti, path], cwd=project, env=e, capture_output=True, text=True,
                       timeout=scaled(120))
    if r.returncode != 0 or "Wrote ops.json" not in r.stdout + r.stderr:
        raise AssertionError(f"running {path} failed:\n{r.stdout}{r.stderr}")


# --- packages ---------------------------------------------------------------------------

def read_package(migrations, dirname):
    with open(os.path.join(migrations, "app", dirname, "migration.json")) as f:
        meta = json.load(f)
    with open(os.path.join(migrations, "app", dirname, "ops.json")) as f:
        ops = json.load(f)
    return meta, ops


def canonical(value):
    """Prisma's canonicalizeJson for the packages here (no number forms or
    astral-plane keys where Python and JavaScript differ)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def package_hash(meta, ops):
    def h(text):
        return hashlib.sha256(text.encode()).hexdigest()
    stripped = {k: v for k, v in meta.items() if k != "migrationHash"}
    return h(canonical([h(canonical(stripped)), h(canonical(ops))]))


def write_package(migrations, dirname, meta, ops, rehash=True):
    """Writes a package (a test's own, or a tampered copy); with rehash its
    migrationHash is made to match, as Prisma would."""
    path = os.path.join(migrations, "app", dirname)
    os.makedirs(path, exist_ok=True)
    if rehash:
        meta = dict(meta, migrationHash=package_hash(meta, ops))
    with open(os.path.join(path, "migration.json"), "w") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)
    with open(os.path.join(path, "ops.json"), "w") as f:
        json.dump(ops, f, indent=2, ensure_ascii=False)


# --- a history of packages ------------------------------------------------------------------

class History:
    """Packages planned by Prisma, one per step: ``steps`` is a list of
    ``(name, model, edit)``, edit None or a migration.ts editor (for
    packages Prisma plans with placeholders). ``extra`` names more packages
    planned in projects of their own: ``{name: (model, after_step)}`` with
    after_step None for a baseline (from an empty database).

    Kept in build/ under the hash of all that and the versions."""

    def __init__(self, steps, extra=None):
        self.steps, self.extra = steps, extra or {}
        key = hashlib.sha256(json.dumps([VERSIONS, [(n, m, e is not None) for n, m, e in steps],
                                         sorted(self.extra.items())]).encode()).hexdigest()[:16]
        self.cache = os.path.join(PREFIX, "histories", key)
        self.dirs = []

    def make(self):
        done = os.path.join(self.cache, "done.json")
        if os.path.exists(done):
            with open(done) as f:
                self.dirs = json.load(f)["dirs"]
            return self
        shutil.rmtree(self.cache, ignore_errors=True)
        work = new_project(os.path.join(self.cache, "work"), self.steps[0][1])
        for k, (name, model, edit) in enumerate(self.steps):
            with open(os.path.join(work, "src", "prisma", "contract.prisma"), "w") as f:
                f.write(model)
            emit(work)
            dirname = plan(work, name, self.dirs[-1] if self.dirs else None)
            if edit:
                emit_package_ts(work, dirname, edit)
            self.dirs.append(dirname)
            shutil.copytree(os.path.join(work, "src", "prisma"),
                            os.path.join(self.cache, "contracts", str(k + 1)))
        for name, (model, after) in self.extra.items():
            self._make_extra(name, model, after)
        with open(done, "w") as f:
            json.dump({"dirs": self.dirs}, f)
        return self

    def _make_extra(self, name, model, after):
        """A package planned in a project of its own, from the contract of
        step `after` (None: from an empty database)."""
        work = new_project(os.path.join(self.cache, "extra-" + name), model)
        if after:
            self._copy_migrations(work, after)
        emit(work)
        dirname = plan(work, name, self.dirs[after - 1] if after else None)
        os.makedirs(os.path.join(self.cache, "extra"), exist_ok=True)
        shutil.copytree(os.path.join(work, "migrations", "app", dirname),
                        os.path.join(self.cache, "extra", name, dirname))
        with open(os.path.join(work, "migrations", "app", dirname, "migration.json")) as f:
            to = json.load(f)["to"]
        shutil.copytree(os.path.join(work, "migrations", "snapshots", to),
                        os.path.join(self.cache, "extra", name, "snapshot-" + to))

    def _copy_migrations(self, project, upto, extra=()):
        """migrations/ of project: packages 1..upto (and the named extras),
        with the snapshots of their contracts."""
        work = os.path.join(self.cache, "work", "migrations")
        dst = os.path.join(project, "migrations")
        os.makedirs(os.path.join(dst, "app"), exist_ok=True)
        os.makedirs(os.path.join(dst, "snapshots"), exist_ok=True)
        for dirname in self.dirs[:upto]:
            shutil.copytree(os.path.join(work, "app", dirname), os.path.join(dst, "app", dirname))
            with open(os.path.join(work, "app", dirname, "migration.json")) as f:
                to = json.load(f)["to"]
            if not os.path.exists(os.path.join(dst, "snapshots", to)):
                shutil.copytree(os.path.join(work, "snapshots", to),
                                os.path.join(dst, "snapshots", to))
        for name in extra:
            src = os.path.join(self.cache, "extra", name)
            for entry in os.listdir(src):
                if entry.startswith("snapshot-"):
                    target = os.path.join(dst, "snapshots", entry[len("snapshot-"):])
                    if not os.path.exists(target):
                        shutil.copytree(os.path.join(src, entry), target)
                else:
                    shutil.copytree(os.path.join(src, entry), os.path.join(dst, "app", entry))
        return dst

    def project(self, path, upto, without=(), extra=()):
        """A project at path whose contract is step upto's and whose
        migrations/ holds packages 1..upto (but those of steps `without`,
        1-based) and the named extras. Returns the path."""
        new_project(path, self.steps[upto - 1][1])
        shutil.rmtree(os.path.join(path, "src", "prisma"))
        shutil.copytree(os.path.join(self.cache, "contracts", str(upto)),
                        os.path.join(path, "src", "prisma"))
        dst = self._copy_migrations(path, upto, extra)
        for step in without:
            shutil.rmtree(os.path.join(dst, "app", self.dirs[step - 1]))
        return path

    def names(self, upto=None):
        return self.dirs[:upto]

    def head(self, upto):
        with open(os.path.join(self.cache, "work", "migrations", "app", self.dirs[upto - 1],
                               "migration.json")) as f:
            return json.load(f)["to"]


def extra_dir(history, name):
    """The directory name of an extra package."""
    return [e for e in os.listdir(os.path.join(history.cache, "extra", name))
            if not e.startswith("snapshot-")][0]


def all_files(path):
    return sorted(glob.glob(os.path.join(path, "**"), recursive=True))
