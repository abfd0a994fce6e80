"""The npm package (scripts/npm-pack.sh): what `npm install --save-dev
pg-bandage` gives a Node project, with the machine's real npm and no network.

The package under test is installed from its tarball, and through a
loopback registry (helpers/npm_registry.py) for the lockfile tests. It is
packed from ``$BANDAGE`` (this machine's architecture) and, for the other
architecture's slot, a copy whose ELF machine byte is patched: it cannot run here, it only fills the layout (the
real arm64 binary is tested by ``make dist``'s qemu suite). Skipped, with the
reason, when npm is missing.
"""
import json
import os
import platform
import shutil
import signal
import subprocess
import tarfile

import pytest

from helpers import REPO_ROOT, scaled, wait_until
from helpers.apps import AppFiles, sigrecorder_cmd
from helpers.bandage import pid1_supported
from helpers.npm_registry import NpmRegistry

PACK = os.path.join(REPO_ROOT, "scripts", "npm-pack.sh")
PACKAGE = "pg-bandage"
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine())
OTHER = {"amd64": ("arm64", 0xB7), "arm64": ("amd64", 0x3E)}
NPM = shutil.which("npm")

pytestmark = [
    pytest.mark.skipif(NPM is None, reason="npm is not installed (Debian: apt-get install npm)"),
    pytest.mark.skipif(ARCH is None, reason=f"bandage ships for x86_64 and aarch64, this is "
                                            f"{platform.machine()}"),
]

with open(os.path.join(REPO_ROOT, "VERSION")) as f:
    VERSION = f.read().strip()


def npm_version():
    try:
        out = subprocess.run([NPM, "--version"], capture_output=True, text=True,
                             timeout=scaled(30)).stdout
        return tuple(int(x) for x in out.strip().split(".")[:2])
    except (OSError, ValueError, subprocess.SubprocessError):
        return (0, 0)


#: npm install --os/--cpu (a lockfile for another platform) came in npm 10.1;
#: older npm ignores them silently, which would make the test a no-op.
needs_os_cpu_flags = pytest.mark.skipif(
    NPM is not None and npm_version() < (10, 1),
    reason="npm install --os/--cpu need npm >= 10.1 (Debian's npm 9 ignores them)")


def npm_env(home):
    """npm isolated from the developer's configuration and from the network."""
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("npm_config_")}
    os.makedirs(home, exist_ok=True)
    userconfig = os.path.join(home, "npmrc")
    open(userconfig, "w").close()
    env.update(HOME=home, npm_config_userconfig=userconfig,
               npm_config_cache=os.path.join(home, "cache"), npm_config_offline="true",
               npm_config_audit="false", npm_config_fund="false",
               npm_config_update_notifier="false", npm_config_loglevel="warn")
    return env


def run(argv, cwd, env, timeout=60, check=True):
    r = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=scaled(timeout))
    if check and r.returncode != 0:
        raise AssertionError(f"{argv} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


#: The notices `make dist` writes beside the binaries (static.mk): the test
#: packs a stand-in of the same shape, and checks it arrives byte for byte.
NOTICES_STAND_IN = ("THIRD_PARTY_NOTICES: a stand-in of test_npm.py\n\n"
                    + "".join(f"{'=' * 80}\n[{lib}] {lib}\n{'=' * 80}\n\ntext\n\n"
                              for lib in ("bandage", "openssl", "libpq", "curl", "musl", "gcc")))


def version_ok(stdout):
    """--version: the version, then one line with the licence and where the
    notices are."""
    lines = stdout.splitlines()
    return (len(lines) == 2 and lines[0] == f"bandage {VERSION}"
            and "MIT" in lines[1] and "THIRD_PARTY_NOTICES" in lines[1])


def make_dist(directory, bandage_bin):
    """A dist directory as `make dist` leaves it, for this machine."""
    os.makedirs(directory)
    with open(os.path.join(directory, "THIRD_PARTY_NOTICES"), "w") as f:
        f.write(NOTICES_STAND_IN)
    native = os.path.join(directory, f"bandage-linux-{ARCH}")
    shutil.copy(bandage_bin, native)
    other, machine = OTHER[ARCH]
    stand_in = os.path.join(directory, f"bandage-linux-{other}")
    shutil.copy(bandage_bin, stand_in)
    with open(stand_in, "r+b") as f:
        f.seek(18)  # ELF e_machine
        f.write(bytes([machine]))
    return directory


def pack(dist, home):
    run([PACK, dist], REPO_ROOT, npm_env(home))
    path = os.path.join(dist, "npm", f"{PACKAGE}-{VERSION}.tgz")
    assert os.path.isfile(path), os.listdir(os.path.join(dist, "npm"))
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("npm")


@pytest.fixture(scope="module")
def tarball(work, bandage_bin):
    return pack(make_dist(str(work / "dist"), bandage_bin), str(work / "home"))


def new_project(path):
    os.makedirs(path)
    with open(os.path.join(path, "package.json"), "w") as f:
        json.dump({"name": "app", "version": "1.0.0", "private": True,
                   "scripts": {"start": "bandage -- node dist/index.js"}}, f)
    return path


@pytest.fixture(scope="module")
def project(work, tarball):
    """A Node project that ran `npm install --save-dev` of the tarball."""
    path = new_project(str(work / "project"))
    run([NPM, "install", "--save-dev", tarball], path, npm_env(str(work / "home")))
    return path


def launcher(project):
    return os.path.join(project, "node_modules", ".bin", "bandage")


def native(project, arch=ARCH):
    return os.path.realpath(os.path.join(project, "node_modules", PACKAGE, "libexec",
                                         f"linux-{arch}", "bandage"))


# --- the package itself -------------------------------------------------------------

def test_package_layout_and_no_install_scripts(tarball):
    with tarfile.open(tarball) as t:
        members = {m.name: m for m in t.getmembers()}
        manifest = json.load(t.extractfile("package/package.json"))
    assert sorted(members) == ["package/LICENSE", "package/README.md", "package/THIRD_PARTY_NOTICES",
                               "package/bin/bandage",
                               "package/libexec/linux-amd64/bandage",
                               "package/libexec/linux-arm64/bandage", "package/package.json"]
    for name in ("package/bin/bandage", "package/libexec/linux-amd64/bandage",
                 "package/libexec/linux-arm64/bandage"):
        assert members[name].mode & 0o111 == 0o111, f"{name} is not executable"
    assert manifest["name"] == PACKAGE and manifest["version"] == VERSION
    assert manifest["bin"] == {"bandage": "bin/bandage"}
    assert manifest["license"] == "MIT"
    # No public address yet: none invented.
    for field in ("repository", "homepage", "bugs"):
        assert field not in manifest, f"package.json has {field!r}"
    scripts = manifest.get("scripts", {})
    assert not {"preinstall", "install", "postinstall", "prepare"} & set(scripts), scripts
    # No platform fields: npm would refuse the install on a macOS laptop
    # (EBADPLATFORM), and the lockfile it writes must not depend on it.
    for field in ("os", "cpu", "libc", "optionalDependencies", "dependencies"):
        assert field not in manifest, f"package.json has {field!r}"


def test_package_carries_the_licence_and_the_notices(tarball):
    with tarfile.open(tarball) as t:
        licence = t.extractfile("package/LICENSE").read().decode()
        notices = t.extractfile("package/THIRD_PARTY_NOTICES").read().decode()
    with open(os.path.join(REPO_ROOT, "LICENSE")) as f:
        assert licence == f.read()
    assert licence.startswith("MIT License")
    assert notices == NOTICES_STAND_IN


def test_pack_refuses_a_dist_without_notices(work, bandage_bin):
    dist = make_dist(str(work / "dist-no-notices"), bandage_bin)
    os.remove(os.path.join(dist, "THIRD_PARTY_NOTICES"))
    r = run([PACK, dist], REPO_ROOT, npm_env(str(work / "home")), check=False)
    assert r.returncode == 1
    assert "THIRD_PARTY_NOTICES is missing" in r.stderr
    assert not os.path.exists(os.path.join(dist, "npm", f"{PACKAGE}-{VERSION}.tgz"))


def test_released_package_has_the_notices_of_its_binaries():
    """After `make dist`: the real tarball holds dist/THIRD_PARTY_NOTICES, and
    scripts/check-notices.sh finds a section for every library both static
    links used (build/static-ARCH/link-inputs)."""
    dist = os.path.join(REPO_ROOT, "dist")
    path = os.path.join(dist, "npm", f"{PACKAGE}-{VERSION}.tgz")
    inputs = [os.path.join(REPO_ROOT, "build", f"static-{a}", "link-inputs")
              for a in ("amd64", "arm64")]
    if not os.path.isfile(path) or not all(map(os.path.isfile, inputs)):
        pytest.skip("no dist/npm tarball and link inputs (make dist writes them)")
    with tarfile.open(path) as t:
        notices = t.extractfile("package/THIRD_PARTY_NOTICES").read()
    with open(os.path.join(dist, "THIRD_PARTY_NOTICES"), "rb") as f:
        assert notices == f.read()
    r = subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts", "check-notices.sh"),
                        os.path.join(dist, "THIRD_PARTY_NOTICES"), *inputs], capture_output=True, text=True, timeout=scaled(30))
    assert r.returncode == 0, r.stdout + r.stderr


def test_pack_is_deterministic(work, tarball, bandage_bin):
    again = pack(make_dist(str(work / "dist-again"), bandage_bin), str(work / "home-again"))
    with open(tarball, "rb") as a, open(again, "rb") as b:
        assert a.read() == b.read(), "two packs of the same binaries differ"


def test_pack_refuses_a_wrong_architecture(work, bandage_bin):
    dist = make_dist(str(work / "dist-swapped"), bandage_bin)
    other, _ = OTHER[ARCH]
    shutil.copy(bandage_bin, os.path.join(dist, f"bandage-linux-{other}"))  # not patched
    r = run([PACK, dist], REPO_ROOT, npm_env(str(work / "home")), check=False)
    assert r.returncode == 1
    assert f"is not a linux {other} ELF binary" in r.stderr
    assert not os.path.exists(os.path.join(dist, "npm", f"{PACKAGE}-{VERSION}.tgz"))


# --- installed in a project ------------------------------------------------------------

def test_npx_bandage_version(project, work):
    r = run(["npx", "--offline", "bandage", "--version"], project, npm_env(str(work / "home")))
    assert version_ok(r.stdout), r.stdout
    assert os.path.islink(launcher(project))


class Launched:
    """The launcher started in its own session, stderr to a file (a pipe
    would hold a reader hostage to any process that kept it); at exit the
    whole session is SIGKILLed, so a failing test leaves nothing behind."""

    def __init__(self, argv, workdir):
        self.stderr_path = os.path.join(workdir, "launcher.stderr")
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err,
                                         start_new_session=True)
        self.pid = self.proc.pid

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=scaled(10))


def proc_exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def proc_children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return f.read().split()
    except OSError:
        return []


def test_the_process_is_the_native_binary(project, app_dir):
    """The shell launcher execs: the process that started it is bandage, with
    the app as its child; no shell or Node in between."""
    with Launched([launcher(project), "--", "sleep", "30"], app_dir) as p:
        wait_until(lambda: proc_exe(p.pid) == native(project), scaled(10),
                   lambda: f"/proc/{p.pid}/exe to be {native(project)} (is {proc_exe(p.pid)})")
        with open(f"/proc/{p.pid}/comm") as f:
            assert f.read().strip() == "bandage"  # what ps shows
        # A child appears at fork, while it is still a copy of bandage; wait for
        # its exec rather than reading /proc/<child>/exe at the first sight of it.
        sleep = os.path.realpath(shutil.which("sleep"))
        children = lambda: [proc_exe(c) for c in proc_children(p.pid)]
        wait_until(lambda: children() == [sleep], scaled(10),
                   lambda: f"bandage's only child to be {sleep} (children: {children()})")


def test_sigterm_reaches_the_app(project, app_dir):
    app = AppFiles(app_dir)
    argv = [launcher(project), "--", *sigrecorder_cmd(app_dir, "--on-term", "exit:0")]
    with Launched(argv, app_dir) as p:
        app.wait_ready(timeout=scaled(15))
        assert app.status()["ppid"] == p.pid  # the app's parent is the launched process
        p.proc.send_signal(signal.SIGTERM)
        assert p.proc.wait(timeout=scaled(15)) == 0, p.stderr()
        assert app.signals() == [signal.SIGTERM]
        assert proc_children(p.pid) == []


def test_pid1_is_bandage(project):
    ok, reason = pid1_supported()
    if not ok:
        pytest.skip(f"cannot create a PID namespace with unshare: {reason}")
    r = run(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", launcher(project),
             "--", "sh", "-c", "cat /proc/1/comm; readlink /proc/1/exe"], project, None,
            timeout=20)
    assert r.stdout.split() == ["bandage", native(project)], r.stderr


@pytest.fixture(scope="module")
def registry(tarball):
    """A loopback npm registry serving the package, so that lockfiles hold
    registry URLs and integrity as they do from registry.npmjs.org."""
    with NpmRegistry() as reg:
        reg.publish(tarball)
        yield reg


@needs_os_cpu_flags
@pytest.mark.parametrize("ci_flags", [[], ["--omit=optional"]], ids=["ci", "ci-omit-optional"])
def test_lockfile_made_on_macos_installs_on_linux(work, registry, ci_flags):
    """`npm install --os darwin --cpu arm64` writes the lockfile a macOS
    laptop would; `npm ci` here from it (also with --omit=optional, common in
    Dockerfiles) must give a working bandage."""
    path = new_project(str(work / f"from-mac{len(ci_flags)}"))
    env = dict(npm_env(str(work / "home")), npm_config_registry=registry.url,
               npm_config_offline="false", npm_config_prefer_online="true")
    run([NPM, "install", "--save-dev", "--os", "darwin", "--cpu", "arm64", PACKAGE], path, env)
    with open(os.path.join(path, "package-lock.json")) as f:
        lock = json.load(f)
    entry = lock["packages"][f"node_modules/{PACKAGE}"]
    assert entry["resolved"].startswith(registry.url), entry
    assert not {"os", "cpu", "optional"} & set(entry), entry
    assert [k for k in lock["packages"] if k] == [f"node_modules/{PACKAGE}"], lock["packages"]
    shutil.rmtree(os.path.join(path, "node_modules"))
    run([NPM, "ci", *ci_flags], path, env)
    r = run([launcher(path), "--version"], path, env)
    assert version_ok(r.stdout), r.stdout


# --- the launcher on other platforms ------------------------------------------------------

def fake_uname(directory, system, machine):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "uname")
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\ncase "$1" in -s) echo "{system}";; -m) echo "{machine}";; '
                f'*) echo "{system}";; esac\n')
    os.chmod(path, 0o755)
    return directory


@pytest.mark.parametrize("system,machine", [("Darwin", "arm64"), ("Darwin", "x86_64"),
                                            ("MINGW64_NT-10.0-19045", "x86_64"),
                                            ("Linux", "riscv64"), ("Linux", "armv7l")])
def test_unsupported_platform_exits_64(project, work, system, machine):
    fake = fake_uname(str(work / f"uname-{system}-{machine}"), system, machine)
    env = dict(os.environ, PATH=f"{fake}:/usr/bin:/bin")
    r = run([launcher(project), "--", "true"], project, env, check=False)
    assert r.returncode == 64
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert "bandage: runs inside Linux containers" in lines[0] and machine in lines[0]


@pytest.mark.parametrize("machine,arch", [("x86_64", "amd64"), ("amd64", "amd64"),
                                          ("aarch64", "arm64"), ("arm64", "arm64")])
def test_launcher_picks_the_binary_for_uname_m(project, work, machine, arch):
    """Each name uname -m may print picks its binary: the native one runs;
    the other architecture's cannot run here, and the shell names the path
    it tried to exec."""
    fake = fake_uname(str(work / f"uname-linux-{machine}"), "Linux", machine)
    env = dict(os.environ, PATH=f"{fake}:/usr/bin:/bin")
    r = run([launcher(project), "--version"], project, env, check=False)
    if arch == ARCH:
        assert r.returncode == 0 and version_ok(r.stdout), r.stderr
    else:
        assert r.returncode != 0
        assert f"libexec/linux-{arch}/bandage" in r.stderr


# --- README's quickstart ---------------------------------------------------------------

README_STEPS = ["npm install --save-dev pg-bandage",
                'npm pkg set scripts.start="bandage -- node dist/index.js"']


def test_readme_npm_quickstart(work, tarball):
    """README's "plain npm project" steps, with the local tarball for the
    registry: `npm start` runs the app under bandage."""
    with open(os.path.join(REPO_ROOT, "README.md")) as f:
        readme = f.read()
    for step in README_STEPS:
        assert step in readme, f"README no longer says {step!r}: update this test"
    path = str(work / "quickstart")
    os.makedirs(os.path.join(path, "dist"))
    run([NPM, "init", "-y"], path, npm_env(str(work / "home")))
    with open(os.path.join(path, "dist", "index.js"), "w") as f:
        f.write('console.log("app ran, LAST_DB_RESET=" + (process.env.LAST_DB_RESET || "none"))\n')
    env = npm_env(str(work / "home"))
    run([NPM, "install", "--save-dev", tarball], path, env)
    run([NPM, "pkg", "set", "scripts.start=bandage -- node dist/index.js"], path, env)
    r = run([NPM, "start"], path, env)
    assert "app ran, LAST_DB_RESET=none" in r.stdout, r.stdout + r.stderr
