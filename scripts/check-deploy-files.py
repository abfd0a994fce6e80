#!/usr/bin/python3
"""Checks railpack.json, the Railway IaC example, railway.json, nixpacks.toml
and the Kubernetes example against the image and against bandage itself.

    scripts/check-deploy-files.py [--bandage build/bandage] [--kubernetes FILE]
                                  [--railpack FILE] [--railway-ts FILE]
                                  [railway.json] [nixpacks.toml]

Railway, as it documents itself (2026-12): railpack.json (Railpack, the
builder), railway.json (Config as Code, read at every deploy) and
examples/railway/railway.ts (Infrastructure as Code) are current; nixpacks.toml
(the deprecated builder) is kept and still checked. railpack.json:
``steps.*.commands`` (build; ``"..."`` is the provider's own) and
``deploy.startCommand``. railway.json: ``build.builder`` one of RAILPACK or
DOCKERFILE (NIXPACKS is refused as deprecated), ``build.buildCommand``,
``deploy.startCommand`` and ``deploy.preDeployCommand`` (a list of commands),
``deploy.restartPolicyType`` a value Railway knows, and the numbers
(``drainingSeconds``, ``overlapSeconds``, ``healthcheckTimeout``,
``restartPolicyMaxRetries``, ``numReplicas``) JSON numbers, whole and not
negative (Railway's parser refuses ``"10"``); ``drainingSeconds`` must be
there (Railway's default, 0, is no graceful shutdown). railway.ts, read as text
(no TypeScript toolchain needed): brackets balanced outside strings and
comments, the ``build:``, ``preDeploy:`` (a string or a list of them) and
``start:`` string literals checked as commands, the upper-case ``NAME:
"value"`` entries as the environment, ``deploy: {...}`` checked as railway.json's
deploy numbers and restart policy, and ``service(``, ``healthcheck`` and
``replicas`` present. railway.json's start command is Railway's for the
service, so railpack.json's and nixpacks.toml's must be the same; railway.ts
shows another strategy (migrations in the pre-deploy step) and is not
compared.

(``make check-deploy-files`` runs it; Debian's /usr/bin/python3, 3.11+ for
tomllib.) Every command of the files is extracted, also nixpacks.toml's
``phases.*.cmds`` / ``phases.*.cmd`` and ``start.cmd``. Each is split like the
shell does (``&&``, ``||``, ``;``, ``|``, redirections), and for every simple
command in it:

- the executable must be one the image provides: node, npm, npx (and
  corepack) when ``phases.setup.nixPkgs`` has a nodejs entry (Railpack's
  Node provider always); sh, bash and their builtins; or bandage as
  ``node_modules/.bin/bandage`` (the npm package pg-bandage) or the vendored
  ``bin/bandage``; never ``npx bandage``/``npm exec`` in a start command
  (npx stays alive in front of it: bandage would not be PID 1);
- in a bandage command, every option must be one of bandage's real flags (the
  flag column of ``bandage --help-markdown``, so a renamed flag fails here),
  with a value, and a valid one where that is checkable: the choice settings
  (``--reset once|always|never``...), durations, schema names, and
  ``--schema-file``, which must be a file the build commands write
  (``... > prisma/schema.sql``), since it does not exist before the build;
- the command bandage runs after ``--`` must itself be provided by the image;
  a start command must have one (bandage supervises the app), a pre-deploy
  command must not (the phases, then exit); a start or pre-deploy command is
  one simple command, so that the shell running it execs bandage (PID 1).

The Kubernetes manifest (default examples/kubernetes.yaml; needs python3-yaml,
skipped with a warning without it): in every container whose command is
bandage, the flags (command + args) as above, every ``BANDAGE_*`` variable is
one of bandage's (the environment column) with a valid literal value, an init
container runs no app and an app container does, and a reset has
``--confirm-database`` and (``once``) a deployment id.

Exit 0 when everything holds; else each problem is printed, exit 1.
"""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Executables every image has: the shell and the builtins worth writing.
SHELL_WORDS = {"sh", "bash", "cd", "test", "[", "true", "false", "echo", "printf", "export",
               "set", ":"}
#: What a nodejs Nix package puts on PATH.
NODE_BINARIES = {"node", "npm", "npx", "corepack"}
BANDAGE_PATHS = {"bin/bandage", "./bin/bandage", "node_modules/.bin/bandage",
                 "./node_modules/.bin/bandage"}
#: Commands that run a package's binary as their own child, staying alive.
NPX_LIKE = {"npx", "npm", "pnpm", "yarn", "bunx", "pnpx"}

#: bandage's choice settings; each is also checked to be a real flag, and its
#: documented default to be one of the choices, so this table cannot drift
#: from the binary unnoticed.
CHOICES = {
    "--reset": {"never", "once", "always"},
    "--forward-to": {"group", "child"},
    "--webhook-format": {"json", "slack"},
    "--log-format": {"text", "json"},
    "--log-level": {"error", "warn", "info", "debug"},
}
DURATION = re.compile(r"^\d+(\.\d+)?(s|ms)?$")
SCHEMAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(,[A-Za-z_][A-Za-z0-9_$]*)*$")
#: Flags that take no value (and make bandage print something and exit).
NO_VALUE = {"-h", "--help", "-V", "--version", "--help-markdown"}
RESTART_POLICIES = {"ON_FAILURE", "ALWAYS", "NEVER"}
#: railway.json's build.builder values (NIXPACKS: deprecated, refused here).
BUILDERS = {"RAILPACK", "DOCKERFILE"}
#: railway.json deploy settings (railway.ts deploy: {...} too) that Railway
#: parses as numbers: "10" fails the deploy.
NUMBER_FIELDS = ("healthcheckTimeout", "restartPolicyMaxRetries", "overlapSeconds",
                 "drainingSeconds", "numReplicas")
OPERATORS = {"&&", "||", ";", "|", "&", "(", ")", ";;"}
REDIRECTS = re.compile(r"^\d*(>>?|<<?|>&|<&|&>>?|>\|)$")
#: Railway's service variables and the ones Railway sets: present at run time
#: though no file shows them (README: set BANDAGE_CONFIRM_DATABASE there).
RAILWAY_IMPLICIT = {"RAILWAY_DEPLOYMENT_ID", "DATABASE_URL", "BANDAGE_CONFIRM_DATABASE"}


class Problems:
    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append(f"{where}: {message}")


# --- bandage's settings ------------------------------------------------------------

class Bandage:
    """bandage's settings, from its own ``--help-markdown``: ``flags``
    {flag: default as documented}, ``env`` {variable: flag}."""

    def __init__(self, binary):
        try:
            out = subprocess.run([binary, "--help-markdown"], capture_output=True, text=True,
                                 timeout=10, check=True).stdout
        except (OSError, subprocess.SubprocessError) as e:
            sys.exit(f"check-deploy-files: cannot run {binary} --help-markdown: {e} (make first)")
        self.flags, self.env = {}, {}
        for line in out.splitlines():
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            # | flag | value | environment | default | meaning |
            if len(cells) >= 4 and re.fullmatch(r"`--[a-z0-9-]+`", cells[0]):
                flag = cells[0].strip("`")
                self.flags[flag] = cells[3]
                if re.fullmatch(r"`[A-Z0-9_]+`", cells[2]):
                    self.env[cells[2].strip("`")] = flag
        if not self.flags:
            sys.exit(f"check-deploy-files: no flag table in {binary} --help-markdown")

    def check_tables(self, problems):
        """The hard-coded choice table against the binary."""
        for flag, choices in CHOICES.items():
            if flag not in self.flags:
                problems.add("check-deploy-files.py", f"{flag} is no longer a bandage flag: "
                                                      f"update CHOICES")
            elif self.flags[flag] not in choices:
                problems.add("check-deploy-files.py", f"{flag}'s documented default "
                                                      f"{self.flags[flag]!r} is not in "
                                                      f"{sorted(choices)}")

    def check_value(self, where, name, value, produced, problems, how=None):
        """``value`` for setting ``name`` (a flag); ``produced``: the files the
        build writes (None: unknown, not checked); ``how``: how it was given."""
        how = how or f"bandage {name}"
        if name in CHOICES and value not in CHOICES[name]:
            problems.add(where, f"{how} {value!r}: not one of {'|'.join(sorted(CHOICES[name]))}")
        elif self.flags.get(name, "").endswith("(s)") and not DURATION.match(value):
            problems.add(where, f"{how} {value!r}: not a duration (30, 2.5, 1.5s, 500ms)")
        elif name == "--schemas" and not SCHEMAS.match(value):
            problems.add(where, f"{how} {value!r}: not a comma-separated list of names")
        elif name == "--schema-file" and produced is not None and value not in produced:
            problems.add(where, f"{how} {value}: no build command writes it (written: "
                                f"{produced or 'nothing'}); generate it at build time")
        elif name in ("--database-url", "--webhook-url") and value.strip() and "$" not in value:
            var = "DATABASE_URL" if name == "--database-url" else "BANDAGE_WEBHOOK_URL"
            problems.add(where, f"{how}: a literal secret in a committed file; use the "
                                f"service's variables or a Secret ({var})")

    def check_invocation(self, where, args, problems, *, role, produced=None, env=None,
                         implicit=()):
        """One bandage invocation: ``args`` after the executable; ``env``
        {variable: literal value, or None when set from elsewhere};
        ``implicit``: variables present at run time that no file shows.
        ``role``: "start" (must run an app), "predeploy" (must not) or "run".
        Returns the app's command (after ``--``)."""
        env = env or {}
        seen, i, command = {}, 0, []
        while i < len(args):
            a = args[i]
            if a == "--":
                command = args[i + 1:]
                break
            if not a.startswith("-"):
                problems.add(where, f"bandage: '{a}' is not an option; the app's command goes "
                                    f"after '--'")
                command = args[i:]
                break
            name, eq, value = a.partition("=")
            if name in NO_VALUE:
                problems.add(where, f"bandage {name} prints and exits: not a deploy command")
                i += 1
                continue
            if name not in self.flags:
                close = [f for f in self.flags if f.startswith(name) or name.startswith(f)]
                hint = f" (did you mean {close[0]}?)" if close else ""
                problems.add(where, f"bandage has no flag {name}{hint}; its flags: "
                                    f"{', '.join(sorted(self.flags))}")
                # Every bandage setting takes a value: skip this one's too.
                i += 1 if eq or i + 1 >= len(args) or args[i + 1].startswith("-") else 2
                continue
            if not eq:
                if i + 1 >= len(args) or args[i + 1] == "--":
                    problems.add(where, f"bandage {name} needs a value")
                    i += 1
                    continue
                value = args[i + 1]
                i += 2
            else:
                i += 1
            if name in seen:
                problems.add(where, f"bandage {name} given twice")
            seen[name] = value
            self.check_value(where, name, value, produced, problems)

        # The environment: bandage's own variables must be real ones.
        settings = dict(seen)
        for var, value in env.items():
            if var.startswith("BANDAGE_") and var not in self.env:
                problems.add(where, f"{var} is not a bandage variable; its variables: "
                                    f"{', '.join(sorted(self.env))}")
                continue
            flag = self.env.get(var)
            if flag and flag not in seen:  # a flag wins over the environment
                settings[flag] = value
                if value is not None:
                    self.check_value(where, flag, value, produced, problems, how=var)

        if role == "start" and not command:
            problems.add(where, "bandage starts no app: put the app's command after '--'")
        if role == "predeploy" and command:
            problems.add(where, "a pre-deploy or init bandage must not run the app (nothing "
                                "after '--'): it runs the phases and exits")
        reset = settings.get("--reset")
        if reset in ("once", "always"):
            if "--confirm-database" not in settings and "BANDAGE_CONFIRM_DATABASE" not in implicit:
                problems.add(where, f"--reset {reset} without --confirm-database "
                                    f"(BANDAGE_CONFIRM_DATABASE): bandage would refuse (exit 77)")
            if reset == "once" and "--deployment-id" not in settings and not (
                    "RAILWAY_DEPLOYMENT_ID" in env or "RAILWAY_DEPLOYMENT_ID" in implicit):
                problems.add(where, "--reset once without a deployment id (--deployment-id, "
                                    "BANDAGE_DEPLOYMENT_ID or RAILWAY_DEPLOYMENT_ID): exit 64")
        return command


# --- shell commands ---------------------------------------------------------------

def simple_commands(command):
    """The simple commands of a shell command line: lists of words, with
    redirections removed; and the files redirected to (written)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    tokens = list(lexer)
    commands, current, written = [], [], []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t in OPERATORS:
            if current:
                commands.append(current)
            current = []
        elif REDIRECTS.match(t) or (t.isdigit() and i + 1 < len(tokens) and
                                   REDIRECTS.match(tokens[i + 1])):
            if t.isdigit():
                i += 1
                t = tokens[i]
            target = tokens[i + 1] if i + 1 < len(tokens) else None
            if target is not None and ">" in t and not target.startswith("&"):
                written.append(target)
            i += 1  # skip the target
        else:
            current.append(t)
        i += 1
    if current:
        commands.append(current)
    return commands, written


def executable_of(words):
    """(executable, its arguments) of a simple command: leading VAR=value
    assignments, ``exec`` and ``env [VAR=value...]`` skipped."""
    i = 0
    while i < len(words):
        w = words[i]
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", w) or w == "exec":
            i += 1
        elif w == "env":
            i += 1
            while i < len(words) and (re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[i])
                                      or words[i].startswith("-")):
                i += 1
        else:
            return w, words[i + 1:]
    return None, []


class Image:
    """What the image provides, from nixpacks.toml's setup phase."""

    def __init__(self, nix_pkgs):
        self.nix_pkgs = list(nix_pkgs)
        self.provides = set(SHELL_WORDS)
        self.node = [p for p in self.nix_pkgs if re.match(r"^nodejs([-_].*)?$", p)]
        if self.node:
            self.provides |= NODE_BINARIES

    def explain(self):
        extra = sorted(self.provides - SHELL_WORDS) or "nothing"
        return f"nixPkgs {self.nix_pkgs} provide {extra}; the shell; and bin/bandage"


class RailpackNodeImage(Image):
    """Railpack's Node provider (a package.json app): node, npm, npx."""

    def __init__(self):
        super().__init__(["nodejs"])

    def explain(self):
        return "Railpack's Node provider gives node, npm, npx; the shell; and bandage"


def check_command(where, command, image, bandage, produced, problems, role="run", env=None):
    """``env``: the variables the file gives the command ({name: literal or None})."""
    if not isinstance(command, str) or not command.strip():
        problems.add(where, f"not a command: {command!r}")
        return
    try:
        commands, _ = simple_commands(command)
    except ValueError as e:
        problems.add(where, f"cannot parse {command!r}: {e}")
        return
    if role in ("start", "predeploy") and len(commands) != 1:
        problems.add(where, "more than one command: the shell cannot exec bandage, so bandage "
                            "would not be PID 1")
    for words in commands:
        exe, args = executable_of(words)
        if exe is None:
            continue
        if exe in BANDAGE_PATHS:
            app = bandage.check_invocation(where, args, problems, role=role, produced=produced,
                                           env=env, implicit=RAILWAY_IMPLICIT)
            if app:
                app_exe, _ = executable_of(app)
                if app_exe not in image.provides and app_exe not in BANDAGE_PATHS:
                    problems.add(where, f"bandage would run '{app_exe}', which the image does "
                                        f"not provide ({image.explain()})")
        elif exe == "bandage" or exe.endswith("/bandage"):
            problems.add(where, f"'{exe}': start bandage as node_modules/.bin/bandage (npm "
                                f"install --save-dev pg-bandage) or the vendored bin/bandage, "
                                f"relative to the app's root")
        elif exe in NPX_LIKE and "bandage" in args and role in ("start", "predeploy"):
            problems.add(where, f"'{exe} ... bandage': {exe} stays alive in front of bandage, "
                                f"which is then not PID 1 (signals, zombies); run "
                                f"node_modules/.bin/bandage directly")
        elif exe not in image.provides:
            problems.add(where, f"'{exe}' is not provided by the image ({image.explain()})")


# --- the files ----------------------------------------------------------------------

def load(path, loader, problems):
    try:
        with open(path, "rb") as f:
            return loader(f)
    except FileNotFoundError:
        problems.add(path, "missing")
    except (ValueError, tomllib.TOMLDecodeError) as e:
        problems.add(path, f"does not parse: {e}")
    return None


def check_nixpacks(nixpacks_path, bandage, problems):
    """nixpacks.toml (the deprecated builder) on its own: its image, build
    phases and start. Returns (commands checked, start or None, written)."""
    nixpacks = load(nixpacks_path, tomllib.load, problems) or {}
    nx = os.path.basename(nixpacks_path)
    phases = nixpacks.get("phases", {}) if isinstance(nixpacks.get("phases"), dict) else {}
    image = Image(phases.get("setup", {}).get("nixPkgs", []))
    if not image.node:
        problems.add(f"{nx} phases.setup.nixPkgs", "no nodejs entry: node/npm/npx would be "
                                                   "missing")
    build = []  # (where, command)
    for name, phase in phases.items():
        if not isinstance(phase, dict):
            problems.add(f"{nx} phases.{name}", "not a table")
            continue
        cmds = phase.get("cmds", [])
        if isinstance(cmds, str):
            cmds = [cmds]
        for i, c in enumerate(cmds):
            if c != "...":  # "...": the provider's own commands
                build.append((f"{nx} phases.{name}.cmds[{i}]", c))
        if "cmd" in phase:
            build.append((f"{nx} phases.{name}.cmd", phase["cmd"]))
    produced = produced_by(c for _, c in build)
    for where, c in build:
        check_command(where, c, image, bandage, produced, problems)
    start = (nixpacks.get("start") or {}).get("cmd")
    if start is None:
        problems.add(nx, "no start.cmd")
        return len(build), None, produced
    check_command(f"{nx} start.cmd", start, image, bandage, produced, problems, role="start")
    return len(build) + 1, start, produced


def check_number(where, value, problems):
    """A deploy setting Railway parses as a number: a JSON/TypeScript number
    (Railway's parser rejects "10"), whole, not negative; null is allowed."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.add(where, f"{value!r}: must be a number, not {type(value).__name__} "
                            f"(Railway refuses the deploy: \"Expected number, received "
                            f"string\")")
    elif value != int(value) or value < 0:
        problems.add(where, f"{value!r}: not a whole number of seconds or times")


def check_railway_json(path, bandage, problems, railpack_produced, nixpacks_produced):
    """railway.json (Config as Code, read at every deploy; it overrides the
    dashboard for that deployment). The build runs with the builder it names
    (Railpack: railpack.json's steps, whose written files are
    ``railpack_produced``). Returns (commands checked, start or None)."""
    railway = load(path, json.load, problems)
    if railway is None:
        return 0, None
    rw = os.path.basename(path)
    if not isinstance(railway, dict):
        problems.add(rw, "not a JSON object")
        return 0, None
    build_section = railway.get("build") or {}
    deploy = railway.get("deploy") or {}
    builder = build_section.get("builder", "RAILPACK")
    if builder == "NIXPACKS":
        problems.add(f"{rw} build.builder", "NIXPACKS: Nixpacks is deprecated; Railpack "
                                            "(\"RAILPACK\", with railpack.json) is Railway's "
                                            "builder")
        image, produced = Image(["nodejs"]), list(nixpacks_produced)
    elif builder in BUILDERS:
        image, produced = RailpackNodeImage(), list(railpack_produced)
    else:
        problems.add(f"{rw} build.builder", f"{builder!r}: not one of {sorted(BUILDERS)}")
        image, produced = RailpackNodeImage(), list(railpack_produced)
    if builder == "DOCKERFILE":
        produced = None  # what the Dockerfile writes is not known here

    checked = 0
    if build_section.get("buildCommand"):
        c = build_section["buildCommand"]
        if produced is not None:
            produced += produced_by([c])
        check_command(f"{rw} build.buildCommand", c, image, bandage, produced, problems)
        checked += 1
    start = deploy.get("startCommand")
    if start is None:
        problems.add(rw, "no deploy.startCommand: Railway would start the app without bandage")
    else:
        check_command(f"{rw} deploy.startCommand", start, image, bandage, produced, problems,
                      role="start")
        checked += 1
    pre = deploy.get("preDeployCommand")
    if isinstance(pre, str):
        pre = [pre]
    if pre is not None and not (isinstance(pre, list) and all(isinstance(c, str) for c in pre)):
        problems.add(f"{rw} deploy.preDeployCommand", f"{pre!r}: not a list of commands")
        pre = []
    for i, c in enumerate(pre or []):
        check_command(f"{rw} deploy.preDeployCommand[{i}]", c, image, bandage, produced,
                      problems, role="predeploy")
        checked += 1

    policy = deploy.get("restartPolicyType")
    if policy is not None and policy not in RESTART_POLICIES:
        problems.add(f"{rw} deploy.restartPolicyType", f"{policy!r}: not one of "
                                                        f"{sorted(RESTART_POLICIES)}")
    for field in NUMBER_FIELDS:
        if field in deploy:
            check_number(f"{rw} deploy.{field}", deploy[field], problems)
    if deploy.get("drainingSeconds") is None:
        problems.add(rw, "no deploy.drainingSeconds: Railway's default is 0, SIGKILL at once "
                         "after SIGTERM (no graceful shutdown)")
    return checked, start


def produced_by(commands):
    """The files the shell commands write (redirection targets)."""
    produced = []
    for c in commands:
        try:
            produced += simple_commands(c)[1] if isinstance(c, str) else []
        except ValueError:
            pass
    return produced


def check_railpack(path, bandage, problems):
    """Returns (commands checked, the start command or None, the files its
    build writes)."""
    config = load(path, json.load, problems)
    if config is None:
        return 0, None, []
    name = os.path.basename(path)
    if not isinstance(config, dict):
        problems.add(name, "not a JSON object")
        return 0, None, []
    image = RailpackNodeImage()
    build = []
    steps = config.get("steps") or {}
    for step, spec in (steps.items() if isinstance(steps, dict) else []):
        commands = (spec or {}).get("commands", []) if isinstance(spec, dict) else []
        for i, c in enumerate(commands):
            c = c.get("cmd") if isinstance(c, dict) else c  # {"cmd": ...} or a string
            if c != "..." and c is not None:  # "...": the provider's own commands
                build.append((f"{name} steps.{step}.commands[{i}]", c))
    produced = produced_by(c for _, c in build)
    for where, c in build:
        check_command(where, c, image, bandage, produced, problems)
    start = (config.get("deploy") or {}).get("startCommand")
    if start is None:
        problems.add(name, "no deploy.startCommand: Railpack would start the app without "
                           "bandage")
        return len(build), None, produced
    check_command(f"{name} deploy.startCommand", start, image, bandage, produced, problems,
                  role="start")
    if isinstance(start, str) and " -- " not in f" {start} ":
        problems.add(f"{name} deploy.startCommand", "no ' -- ' before the app's command")
    return len(build) + 1, start, produced


_TS_STRING = r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|`(?:[^`\\]|\\.)*`'


def ts_code_and_strings(text, where, problems):
    """TypeScript text with comments removed and every string literal kept
    in place; the brackets outside strings and comments checked to balance."""
    out, stack, i, n = [], [], 0, len(text)
    pairs = {")": "(", "]": "[", "}": "{"}
    line = 1
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                problems.add(where, f"line {line}: unterminated /* comment")
                break
            line += text.count("\n", i, j)
            i = j + 2
            continue
        if c in "\"'`":
            m = re.compile(_TS_STRING).match(text, i)
            if not m:
                problems.add(where, f"line {line}: unterminated string")
                break
            out.append(m.group(0))
            line += m.group(0).count("\n")
            i = m.end()
            continue
        if c in "([{":
            stack.append((c, line))
        elif c in ")]}":
            if not stack or stack[-1][0] != pairs[c]:
                problems.add(where, f"line {line}: unbalanced '{c}'")
                return "".join(out)
            stack.pop()
        if c == "\n":
            line += 1
        out.append(c)
        i += 1
    for c, at in stack:
        problems.add(where, f"line {at}: '{c}' is never closed")
    return "".join(out)


def ts_string_value(literal):
    """The value of a plain string literal (no ${} interpolation), or None."""
    if literal.startswith("`") and "${" in literal:
        return None
    body = literal[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def check_railway_ts(path, bandage, problems):
    """Returns (commands checked, the start command or None)."""
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        problems.add(path, "missing")
        return 0, None
    code = ts_code_and_strings(text, name, problems)
    for needed, why in ((r"\bservice\(", "no service(...)"),
                        (r'\bfrom\s+"railway/iac"', 'no import from "railway/iac"'),
                        (r"\bhealthcheck\s*:", "no healthcheck: Railway would switch traffic "
                                             "before the app listens"),
                        (r"\breplicas\s*:", "no replicas")):
        if not re.search(needed, code):
            problems.add(name, why)

    def fields(key):
        return [(m.group(1), ts_string_value(m.group(1)))
                for m in re.finditer(rf"\b{key}\s*:\s*({_TS_STRING})", code)]
    env = {}
    for m in re.finditer(rf"\b([A-Z][A-Z0-9_]*)\s*:\s*({_TS_STRING}|[^,}}\n]+)", code):
        literal = m.group(2).strip()
        env[m.group(1)] = ts_string_value(literal) if literal[:1] in "\"'`" else None
    draining = env.get("RAILWAY_DEPLOYMENT_DRAINING_SECONDS")
    if draining is not None and not re.fullmatch(r"\d+", draining):
        problems.add(name, f"RAILWAY_DEPLOYMENT_DRAINING_SECONDS {draining!r}: not a whole "
                           f"number of seconds")

    image = RailpackNodeImage()
    builds = [v for _, v in fields("build") if v is not None]
    produced = produced_by(builds)
    for i, c in enumerate(builds):
        check_command(f"{name} build[{i}]", c, image, bandage, produced, problems)

    # preDeploy: "..." or ["...", ...]: bandage there runs the phases and exits.
    predeploys = []
    for m in re.finditer(rf"\bpreDeploy\s*:\s*(\[[^\]]*\]|{_TS_STRING}|[^,}}\n]+)", code):
        value = m.group(1).strip()
        items = (re.findall(_TS_STRING, value) if value.startswith("[") else [value])
        for literal in items:
            command = ts_string_value(literal) if literal[:1] in "\"'`" else None
            if command is None:
                problems.add(name, f"preDeploy: {literal!r} is not a plain string literal")
            else:
                predeploys.append(command)
    for i, c in enumerate(predeploys):
        check_command(f"{name} preDeploy[{i}]", c, image, bandage, produced, problems,
                      role="predeploy", env=env)

    # deploy: {...}: numbers as numbers, a restart policy Railway knows.
    deploy = {}
    m = re.search(r"\bdeploy\s*:\s*\{([^{}]*)\}", code)
    if m:
        for f in re.finditer(rf"\b([A-Za-z]+)\s*:\s*({_TS_STRING}|[^,}}\n]+)", m.group(1)):
            deploy[f.group(1)] = f.group(2).strip()
    for field in NUMBER_FIELDS:
        if field in deploy:
            literal = deploy[field]
            if re.fullmatch(r"\d+(\.\d+)?", literal):
                check_number(f"{name} deploy.{field}", float(literal), problems)
            elif literal[:1] in "\"'`":
                check_number(f"{name} deploy.{field}", ts_string_value(literal), problems)
            # else an expression: not checkable here
    if "restartPolicyType" in deploy:
        literal = deploy["restartPolicyType"]
        policy = ts_string_value(literal) if literal[:1] in "\"'`" else None
        if policy is not None and policy not in RESTART_POLICIES:
            problems.add(f"{name} deploy.restartPolicyType", f"{policy!r}: not one of "
                                                             f"{sorted(RESTART_POLICIES)}")
    if "drainingSeconds" not in deploy and draining is None:
        problems.add(name, "no deploy: {drainingSeconds}: Railway's default is 0, SIGKILL at "
                           "once after SIGTERM (no graceful shutdown)")
    starts = fields("start")
    if len(starts) != 1 or starts[0][1] is None:
        problems.add(name, f"want one start: \"...\" plain string (the service's start "
                           f"command), found {len(starts)}")
        return len(builds) + len(predeploys), None
    start = starts[0][1]
    where = f"{name} start"
    if not re.search(r"(^|\s|/)bandage\s", start) or " -- " not in f" {start} ":
        problems.add(where, "the start command must run bandage with the app after ' -- '")
    check_command(where, start, image, bandage, produced, problems, role="start", env=env)
    return len(builds) + len(predeploys) + 1, start


def pod_specs(doc):
    """The pod specs in one Kubernetes object (Pod, workloads, CronJob)."""
    if not isinstance(doc, dict):
        return []
    spec = doc.get("spec") or {}
    if doc.get("kind") == "Pod":
        return [spec]
    if doc.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = (spec.get("template") or {}).get("spec")
    return [template] if template else []


def check_kubernetes(path, bandage, problems):
    """Returns how many bandage containers were checked (None: skipped)."""
    try:
        import yaml
    except ImportError:
        print(f"check-deploy-files: warning: python3-yaml is not installed: {path} not checked",
              file=sys.stderr)
        return None
    try:
        with open(path) as f:
            docs = list(yaml.safe_load_all(f))
    except (OSError, yaml.YAMLError) as e:
        problems.add(path, f"cannot read: {e}")
        return 0
    checked = 0
    name = os.path.basename(path)
    for doc in docs:
        for spec in pod_specs(doc):
            for kind, role in (("initContainers", "predeploy"), ("containers", "start")):
                for c in spec.get(kind) or []:
                    argv = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
                    if not argv or os.path.basename(argv[0]) != "bandage":
                        continue
                    checked += 1
                    where = f"{name} {kind}[{c.get('name')}]"
                    env = {e["name"]: (str(e["value"]) if "value" in e else None)
                           for e in c.get("env") or [] if isinstance(e, dict) and "name" in e}
                    bandage.check_invocation(where, argv[1:], problems, role=role, env=env)
    if not checked:
        problems.add(path, "no container runs bandage")
    return checked


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bandage", default=os.path.join(REPO, "build", "bandage"))
    ap.add_argument("--kubernetes", default=os.path.join(REPO, "examples", "kubernetes.yaml"),
                    help="a Kubernetes manifest to check ('' to skip)")
    ap.add_argument("--railpack", default=os.path.join(REPO, "railpack.json"),
                    help="Railpack's config ('' to skip)")
    ap.add_argument("--railway-ts", default=os.path.join(REPO, "examples", "railway",
                                                         "railway.ts"),
                    help="a Railway IaC file, .railway/railway.ts ('' to skip)")
    ap.add_argument("railway", nargs="?", default=os.path.join(REPO, "railway.json"))
    ap.add_argument("nixpacks", nargs="?", default=os.path.join(REPO, "nixpacks.toml"))
    opts = ap.parse_args()

    problems = Problems()
    bandage = Bandage(opts.bandage)
    bandage.check_tables(problems)
    n = 0
    checked = []
    starts = []  # (file, start command) of the one service railpack/railway.json/nixpacks run
    railpack_produced = []
    if opts.railpack:
        count, start, railpack_produced = check_railpack(opts.railpack, bandage, problems)
        n += count
        checked.append(os.path.basename(opts.railpack))
        if start is not None:
            starts.append((os.path.basename(opts.railpack) + "'s deploy.startCommand", start))
    count, nx_start, nixpacks_produced = check_nixpacks(opts.nixpacks, bandage, problems)
    n += count
    count, rw_start = check_railway_json(opts.railway, bandage, problems, railpack_produced,
                                         nixpacks_produced)
    n += count
    if rw_start is not None:
        starts.insert(0, (os.path.basename(opts.railway) + "'s deploy.startCommand", rw_start))
    if nx_start is not None:
        starts.append((os.path.basename(opts.nixpacks) + "'s start.cmd", nx_start))
    # railway.json's wins over the builder's: two different ones would mislead.
    for other, start in starts[1:]:
        if start != starts[0][1]:
            problems.add(other.split("'")[0], f"start differs from {starts[0][0]} (one app, "
                                              f"one start): {start!r} vs {starts[0][1]!r}")
    if opts.railway_ts:
        # The Infrastructure-as-Code example: its own strategy (migrations in
        # the pre-deploy step), so its start is not compared with the others.
        count, _ = check_railway_ts(opts.railway_ts, bandage, problems)
        n += count
        checked.append(os.path.basename(opts.railway_ts))
    k = check_kubernetes(opts.kubernetes, bandage, problems) if opts.kubernetes else None

    if problems.items:
        for p in problems.items:
            print(f"check-deploy-files: {p}", file=sys.stderr)
        print(f"check-deploy-files: {len(problems.items)} problem(s)", file=sys.stderr)
        return 1
    files = ", ".join(checked + [os.path.basename(opts.railway), os.path.basename(opts.nixpacks)])
    if k is not None:
        files += f", {os.path.basename(opts.kubernetes)} ({k} bandage containers)"
    print(f"check-deploy-files: {files}: {n} commands checked against {len(bandage.flags)} "
          f"bandage flags: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
