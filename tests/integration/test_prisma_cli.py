"""Prisma's own CLI over the repository, offline: the example project is valid
Prisma 7, and every Prisma command line the README and the deploy files show
is one that Prisma's argument parser takes.

Prisma is installed from npm, pinned below (the one place), into
``build/prisma-<version>`` and kept there for the next run. Its CLI downloads
its schema engine at start; that host is out of reach, so
``PRISMA_SCHEMA_ENGINE_BINARY`` points at a stub (and, for Prisma 6,
``PRISMA_QUERY_ENGINE_LIBRARY`` at an empty file). What works without the
engine: ``prisma validate`` (a wasm validator), ``prisma generate`` and the
argument parser of every command. A command line is judged by what the CLI
does with it:

- Prisma refused its arguments: the output says ``unknown or unexpected
  option: --x`` or ``` `--x` was removed```: the test fails, quoting Prisma;
- the CLI accepted them: it exited 0, or it went on to start the schema
  engine (the stub records that it was started, with the arguments the CLI
  gave it);
- anything else (a path that does not exist in the example project, a
  missing config) fails with the CLI's output.

Each command runs in a copy of ``examples/``, laid out as an app's root
(``prisma.config.ts``, ``prisma/schema.prisma``, ``prisma/migrations``), so the
paths the docs use exist. A command is Prisma 6's when its line says "Prisma 6"
(a code block's comment) or, for inline code, the prose since the previous
code span does ("Prisma 6: `npx prisma ...`"); those run through Prisma 6.
Those labelled "Prisma 8" the same way run through Prisma 8 (pinned in
helpers/prisma8.py, a TypeScript CLI with no engine to stub) in a Prisma 8
project of its own, ``$DATABASE_URL`` expanded to an address where nothing
listens: Prisma 8 refused them when it answers ``CLI.INVALID_ARGUMENTS`` or
``CLI.UNKNOWN_COMMAND``, and took them when it went on to run the command
(exit 0, or a later failure such as the refused connection). Every other one
runs through Prisma 7.
"""
import json
import os
import re
import shutil
import subprocess

import pytest

from helpers import REPO_ROOT, SANITIZED, scaled
from helpers import prisma8

#: The Prisma versions the docs are checked against: npm's latest 7, the
#: last 6 (the forms labelled "Prisma 6"), and Prisma 8's release candidate
#: (those labelled "Prisma 8", pinned in helpers/prisma8.py).
PRISMA = {7: "7.10.1", 6: "6.19.3", 8: prisma8.VERSIONS["prisma"]}

NPM = shutil.which("npm")
EXAMPLES = os.path.join(REPO_ROOT, "examples")

pytestmark = [
    pytest.mark.skipif(NPM is None, reason="npm is not installed: Prisma's CLI comes from npm"),
    # Nothing here runs bandage: once per `make check` is enough.
    pytest.mark.skipif(SANITIZED, reason="Prisma's CLI is checked in the plain run"),
]

#: Where Prisma command lines are documented.
DOC_FILES = ["README.md", "railpack.json", "railway.json", "nixpacks.toml",
             "examples/railway/railway.ts", "examples/prisma/schema.prisma",
             "examples/prisma.config.ts", "examples/kubernetes.yaml", "Dockerfile"]

PRISMA_COMMAND = re.compile(
    r"(?:\bnpx\s+)?(?<![\w/.-])prisma\s+(?:migrate|migration|db|contract|generate|validate|"
    r"format|init|studio|version|debug|introspect)\b[^`\"'>|&;)#\n]*")
REFUSED = re.compile(r"unknown or unexpected option: \S+|`[^`]+` was removed[^\n]*")


# --- finding the command lines -------------------------------------------------------

def _segments(path, text):
    """(line number, text, label text) pieces of a file where commands are
    written: a markdown file's fenced code lines, table rows and inline code
    spans (joined over line breaks); every line of any other file. The label
    text is where "Prisma 6" would say that the command is Prisma 6's."""
    if not path.endswith(".md"):
        for n, line in enumerate(text.splitlines(), 1):
            yield n, line, line
        return
    fenced = False
    lines = text.splitlines()
    prose = []  # (line number, line) of the current paragraph
    for n, line in enumerate(lines, 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            yield n, line, line
            continue
        if line.lstrip().startswith("|"):
            yield n, line, line
            continue
        if line.strip():
            prose.append((n, line))
        if not line.strip() or n == len(lines):
            yield from _inline_spans(prose)
            prose = []


def _inline_spans(prose):
    if not prose:
        return
    starts, joined = [], ""
    for n, line in prose:
        starts.append((len(joined), n))
        joined += line + "\n"
    last_end = 0
    for m in re.finditer(r"`([^`]+)`", joined):
        line_no = max(n for at, n in starts if at <= m.start())
        yield line_no, " ".join(m.group(1).split()), joined[last_end:m.start()]
        last_end = m.end()


def documented_commands(path, text):
    """[(line, command, major)]: every Prisma command line of the file, the
    leading ``npx`` dropped, with the Prisma major version it is for."""
    found = []
    for n, segment, label in _segments(path, text):
        for m in PRISMA_COMMAND.finditer(segment):
            command = re.sub(r"^npx\s+", "", m.group(0)).strip()
            major = (6 if re.search(r"\bPrisma 6\b", label) else
                     8 if re.search(r"\bPrisma 8\b", label) else 7)
            found.append((n, command, major))
    return found


def _collect():
    params = []
    for rel in DOC_FILES:
        path = os.path.join(REPO_ROOT, rel)
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for line, command, major in documented_commands(rel, text):
            params.append(pytest.param(rel, line, command, major,
                                       id=f"{rel}:{line}:prisma{major}"))
    return params


DOCUMENTED = _collect()


# --- Prisma's CLI ---------------------------------------------------------------

def _installed_version(prefix):
    try:
        with open(os.path.join(prefix, "node_modules", "prisma", "package.json")) as f:
            return json.load(f).get("version")
    except (OSError, ValueError):
        return None


def _install(major):
    """build/prisma-<version>/node_modules/.bin/prisma, installed from npm once."""
    version = PRISMA[major]
    prefix = os.path.join(REPO_ROOT, "build", f"prisma-{version}")
    if _installed_version(prefix) != version:
        os.makedirs(prefix, exist_ok=True)
        r = subprocess.run([NPM, "install", "--prefix", prefix, "--no-save", "--no-audit",
                            "--no-fund", "--loglevel", "error", f"prisma@{version}"],
                           capture_output=True, text=True, timeout=scaled(600))
        if r.returncode != 0 or _installed_version(prefix) != version:
            pytest.fail(f"npm install prisma@{version} failed:\n{r.stdout}{r.stderr}")
    return prefix


class PrismaCli:
    """One Prisma version, run offline in a copy of examples/."""

    def __init__(self, major, prefix, work):
        self.major, self.version = major, PRISMA[major]
        self.node_modules = os.path.join(prefix, "node_modules")
        self.work = work
        os.makedirs(work, exist_ok=True)
        self.stub_log = os.path.join(work, "schema-engine.log")
        self.stub = os.path.join(work, "schema-engine")
        with open(self.stub, "w") as f:
            f.write('#!/bin/sh\nprintf "%s\\n" "$*" >> "$BANDAGE_TEST_ENGINE_LOG"\n'
                    'echo "schema engine stub: the engine cannot be downloaded here" >&2\n'
                    'exit 1\n')
        os.chmod(self.stub, 0o755)
        self.library = os.path.join(work, "libquery_engine.so.node")
        open(self.library, "w").close()

    def project(self, name):
        """A fresh copy of examples/ with the installed node_modules beside it."""
        path = os.path.join(self.work, name)
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(EXAMPLES, path, ignore=shutil.ignore_patterns("node_modules",
                                                                      "generated"))
        os.symlink(self.node_modules, os.path.join(path, "node_modules"))
        if self.major == 6:
            # A Prisma 6 project keeps the URL in the schema (Prisma 7 moved
            # it to prisma.config.ts): give it one, as that project would.
            schema = os.path.join(path, "prisma", "schema.prisma")
            with open(schema) as f:
                text = f.read()
            with open(schema, "w") as f:
                f.write(text.replace('provider = "postgresql"\n}',
                                     'provider = "postgresql"\n  url      = env("DATABASE_URL")\n}'))
        return path

    def run(self, args, cwd):
        if os.path.exists(self.stub_log):
            os.unlink(self.stub_log)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PRISMA_", "npm_"))}
        env.update(PRISMA_SCHEMA_ENGINE_BINARY=self.stub,
                   PRISMA_QUERY_ENGINE_LIBRARY=self.library,
                   BANDAGE_TEST_ENGINE_LOG=self.stub_log,
                   CHECKPOINT_DISABLE="1", PRISMA_HIDE_UPDATE_MESSAGE="1",
                   PRISMA_DISABLE_TELEMETRY="1", NO_COLOR="1", CI="1",
                   HOME=self.work,
                   # A URL for the commands that want one; nothing connects
                   # to it (the engine is the stub).
                   DATABASE_URL="postgresql://app@127.0.0.1:9/app")
        env.pop("DIRECT_URL", None)
        r = subprocess.run([os.path.join(self.node_modules, ".bin", "prisma")] + args,
                           cwd=cwd, env=env, capture_output=True, text=True,
                           timeout=scaled(120))
        engine = None
        if os.path.exists(self.stub_log):
            with open(self.stub_log) as f:
                engine = f.read().strip()
        return r.returncode, r.stdout + r.stderr, engine

    def judge(self, args, cwd):
        """(accepted, why): Prisma's verdict on a command line's arguments."""
        code, out, engine = self.run(args, cwd)
        refused = REFUSED.search(out)
        if refused:
            return False, f"Prisma {self.version} refuses it: {refused.group(0)}"
        if code == 0:
            return True, f"exit 0: {out.strip().splitlines()[-1] if out.strip() else ''}"
        if engine is not None:
            return True, f"arguments accepted; the CLI started the schema engine ({engine})"
        return False, f"Prisma {self.version} failed (exit {code}):\n{out}"


#: The contract of the Prisma 8 project the documented commands run in.
PRISMA8_MODEL = "// use prisma-8\n\nmodel User {\n  id    Int    @id\n  email String @unique\n}\n"
PRISMA8_REFUSED = ("CLI.INVALID_ARGUMENTS", "CLI.UNKNOWN_COMMAND")


class Prisma8Cli:
    """Prisma 8, run in a Prisma 8 project of its own (its contract emitted)."""

    major, version = 8, PRISMA[8]

    def __init__(self, work):
        self.work = work
        self.base = prisma8.new_project(os.path.join(work, "base"), PRISMA8_MODEL)
        prisma8.emit(self.base)

    def project(self, name):
        path = os.path.join(self.work, name)
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(self.base, path, symlinks=True)
        return path

    def run(self, args, cwd):
        url = "postgresql://app@127.0.0.1:9/app"
        result = prisma8.run(cwd, [a.replace("$DATABASE_URL", url) for a in args],
                             database_url=url)
        return result.code, result.output, result

    def judge(self, args, cwd):
        _, out, result = self.run(args, cwd)
        if result.error_code in PRISMA8_REFUSED:
            return False, (f"Prisma {self.version} refuses it: {result.error_code}: "
                           f"{result.envelope['error'].get('summary')}")
        if result.envelope is None:
            return False, f"Prisma {self.version} printed no result ({result})"
        if result.ok:
            return True, "exit 0"
        return True, f"arguments accepted; the command then failed: {result.error_code}"


@pytest.fixture(scope="session")
def prisma(tmp_path_factory):
    """prisma(major) -> PrismaCli (Prisma8Cli for 8), installed once per session."""
    clis = {}

    def get(major):
        if major not in clis and major == 8:
            prisma8.install()
            clis[major] = Prisma8Cli(str(tmp_path_factory.mktemp("prisma8")))
        elif major not in clis:
            clis[major] = PrismaCli(major, _install(major),
                                    str(tmp_path_factory.mktemp(f"prisma{major}")))
        return clis[major]
    return get


# --- the example project ---------------------------------------------------------

def test_example_project_validates_with_prisma7(prisma):
    cli = prisma(7)
    code, out, _ = cli.run(["validate"], cli.project("validate"))
    assert code == 0 and "is valid" in out, out
    print(out)


def test_example_project_generates_with_prisma7(prisma):
    """The prisma-client generator with its output: the client is written."""
    cli = prisma(7)
    project = cli.project("generate")
    code, out, _ = cli.run(["generate"], project)
    assert code == 0, out
    assert os.path.exists(os.path.join(project, "generated", "prisma", "client.ts")), out
    print(out)


def test_old_example_schema_is_refused_by_prisma7(prisma, tmp_path):
    """What the example was: Prisma 7 says why (P1012), so the check above
    would catch a url coming back."""
    cli = prisma(7)
    project = cli.project("old-schema")
    schema = os.path.join(project, "prisma", "schema.prisma")
    with open(schema) as f:
        text = f.read()
    with open(schema, "w") as f:
        f.write(text.replace('provider = "postgresql"\n}',
                             'provider = "postgresql"\n  url      = env("DATABASE_URL")\n}'))
    code, out, _ = cli.run(["validate"], project)
    assert code != 0 and "P1012" in out and "`url` is no longer supported" in out, out


def test_first_migration_is_the_schema_file():
    """prisma/schema.sql (migrate diff --from-empty) and the first migration
    (migrate dev) are the same SQL, and the lock file names PostgreSQL."""
    prisma_dir = os.path.join(EXAMPLES, "prisma")
    migrations = os.path.join(prisma_dir, "migrations")
    names = sorted(d for d in os.listdir(migrations)
                   if os.path.isdir(os.path.join(migrations, d)))
    assert names and re.fullmatch(r"\d{14}_\w+", names[0]), names
    with open(os.path.join(prisma_dir, "schema.sql"), "rb") as a, \
            open(os.path.join(migrations, names[0], "migration.sql"), "rb") as b:
        assert a.read() == b.read()
    with open(os.path.join(migrations, "migration_lock.toml")) as f:
        assert re.search(r'^provider = "postgresql"$', f.read(), re.M)


def test_schema_sql_has_every_model_and_enum():
    """schema.sql is kept by hand (Prisma 7's schema engine cannot be
    downloaded here): at least every model is a table and every enum a type
    with the schema's values, so a model added to one file and not the other
    fails."""
    with open(os.path.join(EXAMPLES, "prisma", "schema.prisma")) as f:
        psl = f.read()
    with open(os.path.join(EXAMPLES, "prisma", "schema.sql")) as f:
        sql = f.read()
    models = re.findall(r"^model (\w+) \{", psl, re.M)
    enums = dict(re.findall(r"^enum (\w+) \{([^}]*)\}", psl, re.M))
    assert models and enums
    assert sorted(re.findall(r'^CREATE TABLE "(?!_)(\w+)"', sql, re.M)) == sorted(models)
    for name, body in enums.items():
        values = ", ".join(f"'{v}'" for v in body.split())
        assert f'CREATE TYPE "{name}" AS ENUM ({values});' in sql


# --- the documented command lines ----------------------------------------------------

def test_documented_commands_are_found():
    """The extraction sees what the docs hold (an empty list would pass
    everything), Prisma 6's forms labelled as such."""
    where = {(p.values[0], p.values[3]) for p in DOCUMENTED}
    for rel in ("README.md", "railpack.json", "nixpacks.toml", "examples/railway/railway.ts",
                "examples/prisma/schema.prisma"):
        assert (rel, 7) in where, f"no Prisma 7 command line found in {rel}"
    assert ("README.md", 6) in where
    assert ("README.md", 8) in where
    commands = {p.values[2] for p in DOCUMENTED}
    assert ("prisma migrate diff --from-empty --to-schema prisma/schema.prisma --script"
            in commands)


@pytest.mark.parametrize("doc,line,command,major", DOCUMENTED)
def test_documented_command_parses(prisma, doc, line, command, major):
    cli = prisma(major)
    accepted, why = cli.judge(command.split()[1:], cli.project("doc"))
    assert accepted, f"{doc}:{line}: `{command}`: {why}"
    print(f"{doc}:{line}: prisma {cli.version}: `{command}`: {why}")


@pytest.mark.parametrize("text,refused", [
    # The README's build step before Prisma 7, unlabelled: Prisma 7 refuses it.
    ("```sh\nnpx prisma migrate diff --from-empty --to-schema-datamodel prisma/schema.prisma "
     "--script > prisma/schema.sql\n```\n", "`--to-schema-datamodel` was removed"),
    ("Set `--schema-command \"npx prisma db push --skip-generate\"`.\n",
     "unknown or unexpected option: --skip-generate"),
    # The same, labelled, goes to Prisma 6, which takes it.
    ("```sh\nnpx prisma migrate diff --from-empty --to-schema-datamodel prisma/schema.prisma "
     "--script > prisma/schema.sql   # Prisma 6\n```\n", None),
    # Prisma 7's form labelled Prisma 6 is refused by Prisma 6.
    ("Prisma 6: `npx prisma migrate diff --from-empty --to-schema prisma/schema.prisma "
     "--script`\n", "unknown or unexpected option: --to-schema"),
    # Prisma 8's commands: unlabelled, Prisma 7 has no `db migrate`; labelled,
    # Prisma 8 takes it, and refuses a flag it does not have.
    ("Deploy with `npx prisma db migrate --db $DATABASE_URL`.\n", "Unknown command \"migrate\""),
    ("Deploy with Prisma 8's `npx prisma db migrate --db $DATABASE_URL`.\n", None),
    ("Deploy with Prisma 8's `npx prisma db migrate --skip-generate`.\n",
     "CLI.INVALID_ARGUMENTS"),
])
def test_a_doc_naming_a_removed_flag_fails(prisma, text, refused):
    """The judge on docs written wrong: the message is Prisma's own."""
    [(_, command, major)] = documented_commands("doc.md", text)
    cli = prisma(major)
    accepted, why = cli.judge(command.split()[1:], cli.project("wrong-doc"))
    if refused is None:
        assert accepted, why
    else:
        assert not accepted and refused in why, why
