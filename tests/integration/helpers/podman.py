"""A real container runtime for the tests: Debian's podman with runc, in
storage of its own (``make check-podman``, tests/integration/test_podman.py).

What makes podman work on these machines (DESIGN.md, "Shipping, precisely"):
``CONTAINERS_CONF`` points at :data:`CONTAINERS_CONF` (helpers/containers.conf,
also podman.mk's: no default ulimits, since setting them needs
CAP_SYS_RESOURCE, which the machine lacks; runc, because crun fails on this
cgroup layout), and every command
gets ``--root``/``--runroot`` in a temp dir and ``--storage-driver vfs`` (no
overlay mounts, nothing shared with the machine's own podman storage).

:class:`Podman` is one such storage: ``podman.run(args...)`` runs a podman
command with a bounded timeout; the helpers on top (``build``, ``exit_code``,
``init_pid``...) are what the tests need. :func:`podman_missing` says why the
tests cannot run here (None when they can).
"""
import os
import shutil
import subprocess
import tempfile

from . import HERE, scaled

#: The CONTAINERS_CONF the tests (and podman.mk) use.
CONTAINERS_CONF = os.path.join(HERE, "containers.conf")


def podman_missing():
    """Why podman cannot run containers here (a one-line reason), or None."""
    for tool, package in (("podman", "podman"), ("runc", "runc")):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{tool} not found (apt-get install {package})"
    if os.geteuid() != 0:
        return "the podman tests run as root (rootless podman needs subuid ranges)"
    return None


class PodmanError(AssertionError):
    """A podman command failed: the message holds its command line and stderr."""


class Podman:
    """Podman with :data:`CONTAINERS_CONF` and its own --root, --runroot and
    vfs storage under ``base`` (a new temp dir when None). ``remove()`` deletes every
    container and the storage."""

    def __init__(self, base=None):
        self.base = base or tempfile.mkdtemp(prefix="bandage-podman-")
        self.conf = CONTAINERS_CONF
        self.prefix = ["podman", "--root", os.path.join(self.base, "root"),
                       "--runroot", os.path.join(self.base, "runroot"),
                       "--storage-driver", "vfs"]
        self.env = dict(os.environ, CONTAINERS_CONF=self.conf)

    def argv(self, *args):
        return self.prefix + [str(a) for a in args]

    def run(self, *args, timeout=60, check=True, input=None):
        """``podman ARGS...`` -> CompletedProcess (text); raises
        :class:`PodmanError` when it exits non-zero and ``check``, or when it
        runs longer than ``timeout`` seconds (scaled)."""
        argv = self.argv(*args)
        try:
            r = subprocess.run(argv, env=self.env, capture_output=True, text=True,
                               timeout=scaled(timeout), input=input)
        except subprocess.TimeoutExpired as e:
            raise PodmanError(f"{' '.join(argv)}: still running after {e.timeout:.0f}s") from None
        if check and r.returncode != 0:
            raise PodmanError(f"{' '.join(argv)}: exit {r.returncode}\n{r.stderr.strip()}")
        return r

    def version(self):
        return self.run("version", "--format", "{{.Client.Version}}").stdout.strip()

    def build(self, context, tag, *options, timeout=120):
        """``podman build -t TAG OPTIONS... CONTEXT`` (its output is returned)."""
        return self.run("build", "-t", tag, *options, context, timeout=timeout).stdout

    def inspect(self, name, fmt):
        """``podman inspect --format FMT NAME``, stripped."""
        return self.run("inspect", "--format", fmt, name).stdout.strip()

    def state(self, name):
        """'running', 'exited', 'created'... of a container."""
        return self.inspect(name, "{{.State.Status}}")

    def init_pid(self, name):
        """Host pid of the container's PID 1 (0 when it is not running)."""
        return int(self.inspect(name, "{{.State.Pid}}"))

    def wait(self, name, timeout=30):
        """``podman wait NAME``: the container's exit code, once it has exited."""
        return int(self.run("wait", name, timeout=timeout).stdout.strip().splitlines()[-1])

    def logs(self, name):
        """What the container wrote, stdout and stderr (podman keeps them apart)."""
        r = self.run("logs", name, check=False)
        return r.stdout + r.stderr

    def remove(self):
        """Removes every container (killed at once), then the storage."""
        if os.path.isdir(os.path.join(self.base, "root")):
            self.run("rm", "--all", "--force", "--time", "0", check=False, timeout=60)
        shutil.rmtree(self.base, ignore_errors=True)
