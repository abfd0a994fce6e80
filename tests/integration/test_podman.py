"""The static binary in a real container runtime (``make check-podman``).

A ``FROM scratch`` image is built with podman (runc, its own storage:
helpers/podman.py) from build/bandage-static, laid out as README's Docker
quickstart has it::

    /usr/local/bin/bandage               the binary under test
    /usr/local/share/doc/bandage/THIRD_PARTY_NOTICES  the notices of the libraries it
                                         contains (the Dockerfile's usage comment)
    /usr/local/bin/node                  helpers/static_app.c (musl, static) standing in for node
    /usr/local/bin/orphans               helpers/orphans.c (musl, static)
    /usr/local/bin/leftover              helpers/leftover.c (musl, static)
    /app/prisma/schema.sql               examples/prisma/schema.sql
    /etc/ssl/certs/ca-certificates.crt   the system bundle plus the harness CA
    WORKDIR /app
    ENTRYPOINT ["bandage", "--"]
    CMD ["node", "dist/index.js"]

and what ``docker run``, ``docker kill``, ``docker stop``, ``docker exec`` and
``docker restart`` do to its users is run with podman: the container's exit
code is the app's (128+N when the app dies of signal N), ``podman stop``'s
SIGTERM reaches the app through the entrypoint and the container stops as
soon as the app has, orphans and zombies of ``exec``'d processes are reaped by
bandage as PID 1, and ``BANDAGE_RESET=once`` with a deployment id resets the
harness's PostgreSQL (``--network host``, ``sslmode=verify-full`` trusted
through the image's bundle) on the first start only, not after ``podman
restart``. Each container gets a host directory as /tmp, where the test app
writes what it saw (helpers/static_app.c's header).

With ``BANDAGE_IMAGE_ARCHIVE`` (``make check-dockerfile-build``), the binary
comes from the image the repository's Dockerfile built, through README's
``COPY --from=bandage /bandage /usr/local/bin/bandage``, and the notices
through the Dockerfile's ``COPY --from=bandage /THIRD_PARTY_NOTICES
/usr/local/share/doc/bandage/``; otherwise the notices are
``$BANDAGE_NOTICES`` (default: THIRD_PARTY_NOTICES beside ``$BANDAGE_STATIC``,
which `make static` writes), checked by scripts/check-notices.sh against the
static link's inputs when they are at hand.

Skipped unless ``BANDAGE_STATIC`` names the static binary and podman and runc
are installed (root). The test app is ``$BANDAGE_STATIC_APP`` if set, else
compiled here with ``musl-gcc -static``, like helpers/orphans.c and
helpers/leftover.c.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

from helpers import HERE, REPO_ROOT, scaled, wait_until
from helpers.apps import ORPHANS_SRC
from helpers.emptyroot import CA_VARIABLES
from helpers.pg import KNOWN_SECRETS
from helpers.podman import Podman, podman_missing
from helpers.procs import children_of, descendants_of, zombies_among

STATIC_BIN = os.environ.get("BANDAGE_STATIC")
if not STATIC_BIN:
    pytest.skip("BANDAGE_STATIC is not set (make check-podman runs these tests)",
                allow_module_level=True)
if podman_missing():
    pytest.skip(f"no container runtime: {podman_missing()}", allow_module_level=True)

IMAGE = "localhost/bandage-podman-test:latest"
NOTICES = os.environ.get("BANDAGE_NOTICES") or os.path.join(
    os.path.dirname(os.path.abspath(STATIC_BIN)), "THIRD_PARTY_NOTICES")
NOTICES_IN_IMAGE = "/usr/local/share/doc/bandage/THIRD_PARTY_NOTICES"
CHECK_NOTICES = os.path.join(REPO_ROOT, "scripts", "check-notices.sh")
SCHEMA_SQL = os.path.join(REPO_ROOT, "examples", "prisma", "schema.sql")
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
LEFTOVER_SRC = os.path.join(HERE, "leftover.c")

#: ``$BANDAGE_IMAGE_ARCHIVE`` (``make check-dockerfile-build`` sets it): a
#: ``podman save`` of the repository's Dockerfile's image, tagged
#: :data:`BANDAGE_IMAGE`. It is loaded and tagged ``bandage`` (as README's
#: ``docker build -t bandage .`` would), and the binary is not copied from
#: BANDAGE_STATIC but taken with README's own line, ``COPY --from=bandage
#: /bandage /usr/local/bin/bandage``.
IMAGE_ARCHIVE = os.environ.get("BANDAGE_IMAGE_ARCHIVE")
BANDAGE_IMAGE = "localhost/bandage:dockerfile"

CONTAINERFILE = """\
FROM scratch
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
{bandage}
{notices}
COPY node /usr/local/bin/node
COPY orphans /usr/local/bin/orphans
COPY leftover /usr/local/bin/leftover
COPY schema.sql /app/prisma/schema.sql
WORKDIR /app
ENTRYPOINT ["bandage", "--"]
CMD ["node", "dist/index.js"]
"""


# --- fixtures -------------------------------------------------------------------------

def containerfile():
    if IMAGE_ARCHIVE:
        line = "COPY --from=bandage /bandage /usr/local/bin/bandage"
        notices = "COPY --from=bandage /THIRD_PARTY_NOTICES /usr/local/share/doc/bandage/"
    else:
        line = "COPY bandage /usr/local/bin/bandage"
        notices = f"COPY THIRD_PARTY_NOTICES {NOTICES_IN_IMAGE}"
    return CONTAINERFILE.format(bandage=line, notices=notices)


def musl_static(src, out):
    cc = shutil.which("musl-gcc")
    if not cc:
        pytest.fail(f"musl-gcc not found (package musl-tools) to build {os.path.basename(src)}")
    r = subprocess.run([cc, "-static", "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror",
                        "-o", out, src], capture_output=True, text=True,
                       timeout=scaled(120))
    if r.returncode != 0:
        pytest.fail(f"compiling {src} failed:\n{r.stderr}")
    return out


@pytest.fixture(scope="module")
def podman():
    pm = Podman()
    yield pm
    pm.remove()


@pytest.fixture(scope="module")
def image(podman, test_ca, tmp_path_factory):
    """The scratch image above, built once for the module: its tag."""
    path = os.path.abspath(STATIC_BIN)
    if not os.access(path, os.X_OK):
        pytest.fail(f"BANDAGE_STATIC={STATIC_BIN}: not an executable file (make static)")
    ctx = tmp_path_factory.mktemp("image")
    shutil.copyfile(path, ctx / "bandage")
    if not IMAGE_ARCHIVE:
        if not os.path.isfile(NOTICES):
            pytest.fail(f"{NOTICES}: missing (make static writes it beside the binary; "
                        f"or set BANDAGE_NOTICES)")
        shutil.copyfile(NOTICES, ctx / "THIRD_PARTY_NOTICES")
    if IMAGE_ARCHIVE:
        podman.run("load", "-i", IMAGE_ARCHIVE, timeout=120)
        podman.run("tag", BANDAGE_IMAGE, "bandage")
    app = os.environ.get("BANDAGE_STATIC_APP")
    if app:
        shutil.copyfile(app, ctx / "node")
    else:
        musl_static(os.path.join(HERE, "static_app.c"), str(ctx / "node"))
    musl_static(ORPHANS_SRC, str(ctx / "orphans"))
    musl_static(LEFTOVER_SRC, str(ctx / "leftover"))
    for name in ("bandage", "node", "orphans", "leftover"):
        os.chmod(ctx / name, 0o755)
    shutil.copyfile(SCHEMA_SQL, ctx / "schema.sql")
    system = open(SYSTEM_BUNDLE).read() if os.path.exists(SYSTEM_BUNDLE) else ""
    with open(ctx / "ca-certificates.crt", "w") as f:
        f.write(system.rstrip("\n") + "\n" + open(test_ca.ca_file).read())
    (ctx / "Containerfile").write_text(containerfile())
    podman.build(str(ctx), IMAGE)
    return IMAGE


class Container:
    """One container of the image: ``name``, and ``tmp``, the host directory
    mounted as its /tmp (where the test app writes)."""

    def __init__(self, podman, image):
        self.podman = podman
        self.image = image
        self.name = f"bandage-test-{uuid.uuid4().hex[:10]}"
        self.tmp = tempfile.mkdtemp(prefix="bandage-podman-tmp-")
        os.chmod(self.tmp, 0o1777)

    def run_argv(self, args, env=None, detach=False, options=()):
        """``podman run`` for this container: --network host (the harness's
        PostgreSQL is on 127.0.0.1), /tmp from the host, ``env`` as -e."""
        argv = ["run", "--name", self.name, "--network", "host", "-v", f"{self.tmp}:/tmp",
                *options]
        for k, v in (env or {}).items():
            argv += ["-e", f"{k}={v}"]
        if detach:
            argv.append("-d")
        return argv + [self.image, *map(str, args)]

    def run(self, args=(), env=None, options=(), timeout=60):
        """Runs it in the foreground: the CompletedProcess of ``podman run``."""
        return self.podman.run(*self.run_argv(args, env, options=options), check=False,
                               timeout=timeout)

    def start(self, args=(), env=None, options=()):
        """Runs it detached (``podman run -d``), waits for the app's ready file."""
        self.podman.run(*self.run_argv(args, env, detach=True, options=options))
        return self.ready()

    def read(self, name):
        try:
            with open(os.path.join(self.tmp, name)) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def ready(self, name="app"):
        """The app's ready line as a dict (bounded wait; fails at once if the
        container exits first)."""
        def seen():
            text = self.read(f"{name}.ready")
            if text is None and self.podman.state(self.name) == "exited":
                raise AssertionError(f"{self.name} exited before the app was ready:\n"
                                     f"{self.podman.logs(self.name)}")
            return text
        text = wait_until(seen, scaled(20), f"{name}.ready in {self.name}")
        return dict(kv.split("=", 1) for kv in text.split())

    def signals(self, name="app"):
        return [int(s) for s in (self.read(f"{name}.signals") or "").split()]

    def env(self, name="app"):
        text = self.read(f"{name}.env") or ""
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def exit_code(self):
        return int(self.podman.inspect(self.name, "{{.State.ExitCode}}"))

    def remove(self):
        self.podman.run("rm", "--force", "--time", "0", self.name, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def container(podman, image):
    """Factory: ``container()`` -> a new :class:`Container` (not started);
    all are removed after the test."""
    made = []

    def create():
        c = Container(podman, image)
        made.append(c)
        return c

    yield create
    for c in made:
        c.remove()


def exec_leftovers(podman, c, n, termfile="/tmp/leftover.term"):
    """``podman exec C leftover N TERMFILE``: N processes that ignore SIGTERM
    (each records it in TERMFILE), left behind by the exec'd process when it
    exits. Returns once all N are children of the container's PID 1 (the
    host's /proc), i.e. re-parented to bandage."""
    init = podman.init_pid(c.name)
    podman.run("exec", c.name, "leftover", n, termfile, timeout=30)

    def adopted():
        kids = [st for st in children_of(init) if st.comm == "leftover"]
        return kids if len(kids) == n else None
    return wait_until(adopted, scaled(10),
                      lambda: f"{n} leftovers under PID 1 ({init}): {children_of(init)}")


def term_records(c, name="leftover.term"):
    """The pids that recorded a SIGTERM in /tmp/NAME, one per SIGTERM."""
    return (c.read(name) or "").split()


def bandage_lines(logs):
    return [line for line in logs.splitlines() if line.startswith("bandage:")]


# --- the image ------------------------------------------------------------------------

def test_image_is_scratch_with_the_quickstart_entrypoint(podman, image):
    config = podman.run("image", "inspect", "--format",
                        "{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{len .RootFS.Layers}}",
                        image).stdout.split()
    assert config[:2] == ['["bandage","--"]', '["node","dist/index.js"]'], config
    # One layer per COPY, nothing from a base image.
    assert int(config[2]) == containerfile().count("\nCOPY "), config


def copy_out(podman, image, path, dest):
    """File ``path`` of ``image`` (no shell to cat it: podman create + cp)."""
    name = f"bandage-files-{uuid.uuid4().hex[:8]}"
    podman.run("create", "--name", name, image)
    try:
        podman.run("cp", f"{name}:{path}", str(dest))
    finally:
        podman.run("rm", "--force", name, check=False)
    return dest


def check_notices(path, *inputs):
    r = subprocess.run(["bash", CHECK_NOTICES, str(path), *inputs], capture_output=True,
                       text=True, timeout=scaled(30))
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_image_carries_the_notices_of_what_bandage_contains(podman, image, tmp_path):
    """The notices travel with the binary into the app image, and name every
    library of the static link: the inputs static.mk recorded when it linked
    $BANDAGE_STATIC if they are here; else (the binary came out of the
    Dockerfile's image, whose builder linked it) every library bandage links."""
    got = copy_out(podman, image, NOTICES_IN_IMAGE, tmp_path / "notices")
    text = got.read_text()
    assert text.startswith("THIRD_PARTY_NOTICES"), text[:200]
    if IMAGE_ARCHIVE:
        # The Dockerfile's own image holds it beside /bandage, the same file.
        beside = copy_out(podman, BANDAGE_IMAGE, "/THIRD_PARTY_NOTICES", tmp_path / "beside")
        assert beside.read_text() == text
    else:
        with open(NOTICES) as f:
            assert text == f.read()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, "")
    inputs = os.path.join(os.path.dirname(os.path.abspath(STATIC_BIN)), f"static-{arch}",
                          "link-inputs")
    if not IMAGE_ARCHIVE and os.path.isfile(inputs):
        check_notices(got, inputs)
    else:
        for lib in ("bandage", "openssl", "libpq", "curl", "musl", "gcc"):
            assert f"\n[{lib}] " in text, f"no [{lib}] section"


def test_default_command_runs_as_child_of_pid1(container):
    c = container()
    r = c.run()
    assert r.returncode == 0, r.stdout + r.stderr
    ready = c.ready()
    assert ready["ppid"] == "1" and ready["pid"] != "1", ready   # bandage is PID 1
    assert ready["pgrp"] == ready["pid"], ready                   # the app leads its group
    assert ready["blocked"] == "0" and ready["ignored"] == "0", ready
    assert ready["args"] == "1", ready                            # dist/index.js
    assert "LAST_DB_RESET unset" in r.stdout, r.stdout
    assert not set(c.env()) & set(CA_VARIABLES), c.env()


# --- exit codes -------------------------------------------------------------------------

@pytest.mark.parametrize("code", [0, 3, 255])
def test_container_exit_code_is_the_apps(container, code):
    c = container()
    r = c.run(["node", "--exit", code])
    assert r.returncode == code, r.stdout + r.stderr
    assert c.exit_code() == code
    assert bandage_lines(r.stderr)[-1].startswith(f"bandage: app exited with code {code}"), \
        r.stderr


def test_app_killed_by_a_signal_gives_128_plus_n(podman, container):
    """``podman kill --signal SIGALRM`` goes to PID 1 (bandage), which passes
    it on; the app has no handler for it and dies of it: 128+14."""
    c = container()
    c.start(["node", "--wait", 60])
    podman.run("kill", "--signal", "SIGALRM", c.name)
    assert podman.wait(c.name) == 128 + signal.SIGALRM
    assert c.signals() == [], c.signals()     # it died of it, recorded nothing
    assert any(line.startswith("bandage: app killed by signal 14 ")
               and line.endswith(f"exit code {128 + signal.SIGALRM}")
               for line in bandage_lines(podman.logs(c.name))), podman.logs(c.name)


def test_missing_command_exits_127(container):
    """A scratch image has no shell and no node of its own."""
    c = container()
    r = c.run(["/bin/sh", "-c", "true"])
    assert r.returncode == 127, r.stdout + r.stderr
    assert "/bin/sh" in r.stderr and "No such file or directory" in r.stderr, r.stderr


# --- podman stop ----------------------------------------------------------------------

@pytest.mark.parametrize("term_exit", [0, 7])
def test_stop_reaches_the_app_through_the_entrypoint(podman, container, term_exit):
    """``podman stop -t 20``: SIGTERM to bandage, forwarded to the app, which
    records it and exits with the code it chose; the container stops as soon
    as the app has (well before the 20 s after which podman would SIGKILL)."""
    c = container()
    c.start(["node", "--wait", 120, "--term-exit", term_exit])
    t0 = time.monotonic()
    podman.run("stop", "-t", "20", c.name, timeout=40)
    elapsed = time.monotonic() - t0
    assert c.exit_code() == term_exit, podman.logs(c.name)
    assert c.signals() == [signal.SIGTERM], c.signals()
    assert elapsed < scaled(5), f"podman stop took {elapsed:.1f}s"


def test_stop_timeout_shorter_than_grace_ends_in_sigkill(podman, container):
    """docker's stop timeout bounds bandage's --grace: a leftover that ignores
    SIGTERM (helpers/leftover.c, from ``podman exec``) keeps
    bandage waiting out its 30 s grace, so podman SIGKILLs PID 1 after -t 2:
    exit 137 even though the app itself exited 0. Keep --grace below the
    platform's stop timeout (docker's default is 10 s, bandage's too)."""
    c = container()
    c.start(["node", "--wait", 120], env={"BANDAGE_GRACE": "30"})
    exec_leftovers(podman, c, 1)
    t0 = time.monotonic()
    podman.run("stop", "-t", "2", c.name, timeout=40)
    elapsed = time.monotonic() - t0
    assert c.signals() == [signal.SIGTERM], c.signals()
    assert c.exit_code() == 128 + signal.SIGKILL, podman.logs(c.name)
    assert 2 <= elapsed < scaled(15), f"podman stop took {elapsed:.1f}s"
    assert len(term_records(c)) == 1, term_records(c)


def test_grace_shorter_than_stop_timeout_stops_cleanly(podman, container):
    """The same leftover with --grace 1 under ``podman stop -t 20``: bandage
    SIGKILLs it after 1 s and the container exits with the app's code."""
    c = container()
    c.start(["node", "--wait", 120, "--term-exit", 5], env={"BANDAGE_GRACE": "1"})
    exec_leftovers(podman, c, 1)
    t0 = time.monotonic()
    podman.run("stop", "-t", "20", c.name, timeout=40)
    elapsed = time.monotonic() - t0
    assert c.exit_code() == 5, podman.logs(c.name)
    assert 1 <= elapsed < scaled(8), f"podman stop took {elapsed:.1f}s"
    assert len(term_records(c)) == 1, term_records(c)
    assert any("after the app exited; sending SIGKILL" in line
               for line in bandage_lines(podman.logs(c.name))), podman.logs(c.name)


# --- orphans and zombies -------------------------------------------------------------------

def test_orphans_of_exec_are_reaped_by_pid1(podman, container):
    """``podman exec`` starts processes inside the container's PID namespace
    whose parent (conmon) is outside it: their orphans go to PID 1. 50
    leftovers become bandage's children; 200 orphaned zombies are all reaped;
    ``podman stop`` then stops the leftovers (SIGTERM, which they ignore, then
    SIGKILL after --grace 1) and the container exits with the app's code."""
    c = container()
    c.start(["node", "--wait", 120], env={"BANDAGE_GRACE": "1"})
    init = podman.init_pid(c.name)
    exec_leftovers(podman, c, 50)
    podman.run("exec", c.name, "orphans", "zombie", 200, timeout=30)

    def no_zombies():
        return not zombies_among(descendants_of(init))
    wait_until(no_zombies, scaled(10),
               lambda: f"zombies under PID 1: {zombies_among(descendants_of(init))}")
    left = sorted(st.comm for st in descendants_of(init))
    assert left == ["leftover"] * 50 + ["node"], left
    assert podman.state(c.name) == "running"
    podman.run("stop", "-t", "20", c.name, timeout=40)
    assert c.exit_code() == 0, podman.logs(c.name)
    assert len(set(term_records(c))) == 50, term_records(c)


# --- a reset, once, across podman restart ---------------------------------------------------

def deploy_rows(db):
    return db.execute("SELECT deployment_id FROM bandage.deploys")


def test_reset_once_survives_podman_restart(podman, container, db):
    """README's ``docker run -e DATABASE_URL=... -e BANDAGE_RESET=once -e
    BANDAGE_DEPLOYMENT_ID=... -e BANDAGE_CONFIRM_DATABASE=... -e
    BANDAGE_SCHEMA_FILE=/app/prisma/schema.sql my-image``: the first start
    resets (the app sees LAST_DB_RESET); ``podman restart`` of the same
    container finds the deployment id and skips (the data written in between
    is still there); bandage.deploys holds one row."""
    c = container()
    env = {"DATABASE_URL": db.dsn(sslmode="verify-full", connect_timeout=5),
           "BANDAGE_RESET": "once", "BANDAGE_DEPLOYMENT_ID": "sha-1234",
           "BANDAGE_CONFIRM_DATABASE": db.name,
           "BANDAGE_SCHEMA_FILE": "/app/prisma/schema.sql"}
    r = c.run(env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "LAST_DB_RESET=" in r.stdout, r.stdout + r.stderr
    assert deploy_rows(db) == [("sha-1234",)]
    db.execute("""INSERT INTO "User" (email) VALUES ('kept@example.com')""")

    podman.run("restart", c.name, timeout=60)
    assert podman.wait(c.name) == 0, podman.logs(c.name)
    logs = podman.logs(c.name)
    assert logs.count("LAST_DB_RESET=") == 1 and "LAST_DB_RESET unset" in logs, logs
    assert deploy_rows(db) == [("sha-1234",)]
    assert db.execute("""SELECT email FROM "User" """) == [("kept@example.com",)]
    leaked = [secret[:3] for secret in KNOWN_SECRETS
              if len(secret) >= 8 and secret in "\n".join(bandage_lines(logs))]
    assert not leaked, f"a database password reached bandage's log: {leaked}"
