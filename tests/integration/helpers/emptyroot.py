"""An empty root for the static binary (``make check-static``), as on a
``FROM scratch`` image, and bandage run as PID 1 inside it.

:class:`EmptyRoot` is a temp directory holding only what a scratch image with
bandage would hold::

    /bandage                             the binary under test (a copy)
    /etc/ssl/certs/ca-certificates.crt   a CA bundle (the harness CA), optional
    /etc/hosts                           127.0.0.1 localhost and the test names
    /etc/resolv.conf                     nameserver: the harness's fake DNS
    /tmp/                                1777, where the test app writes
    /proc/                               empty; the run mounts the namespace's proc on it
    /app/                                the static test app, the schema file

No shell, no libc, no ld.so, no /etc/passwd, no /dev.

:class:`EmptyRootRun` runs ``unshare --pid --fork --kill-child --root=ROOT
--mount-proc /bandage ARGS...`` (util-linux 2.38: unshare forks, the child
chroots into ROOT, mounts a fresh proc on ROOT/proc in a private mount
namespace, then execs ``/bandage`` as PID 1 of the new PID namespace). It is
a :class:`helpers.bandage.BandageRun` (same ``wait``, ``stderr``,
``send_signal``, ``kill_tree``...); ``pid`` is bandage's host pid.
"""
import os
import shutil
import stat
import tempfile

from . import scaled, wait_until
from .bandage import BandageRun

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

#: What Docker gives a process in a scratch image (no USER, no /etc/passwd).
SCRATCH_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/",
}

#: Variables that would tell OpenSSL/libcurl/libpq where the CA bundle is:
#: never passed, so the tests prove bandage finds the bundle by itself.
CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "PGSSLROOTCERT",
                "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")


def root_env(overrides=None):
    """The environment of a run in the empty root: :data:`SCRATCH_ENV`, then
    ``overrides`` (None removes). Nothing of the harness's own environment,
    so none of :data:`CA_VARIABLES` (this machine exports three of them)."""
    env = dict(SCRATCH_ENV)
    for k, v in (overrides or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    leaked = [k for k in env if k in CA_VARIABLES]
    assert not leaked, f"CA bundle variables in the empty root's environment: {leaked}"
    return env


class EmptyRoot:
    """A directory laid out as above. ``path`` is its host path;
    ``host(p)`` maps an absolute path inside the root to the host."""

    def __init__(self, bandage_bin, *, ca_bundle=None, hosts=None, nameserver="127.0.0.1",
                 app=None, files=None):
        """``ca_bundle``: host path of the PEM copied to the bundle path (None:
        no bundle). ``hosts``: {name: ip} added to /etc/hosts after
        ``127.0.0.1 localhost``. ``app``: host path of the static test app,
        copied to /app/static_app. ``files``: {root path: host path} copied
        (executable if the host file is)."""
        self.path = tempfile.mkdtemp(prefix="bandage-root-")
        os.chmod(self.path, 0o755)
        self.bandage = "/bandage"
        self._copy(bandage_bin, self.bandage, 0o755)
        if ca_bundle:
            self._copy(ca_bundle, CA_BUNDLE, 0o644)
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost"]
        for name, ip in (hosts or {}).items():
            lines.append(f"{ip}\t{name}")
        self.write("/etc/hosts", "\n".join(lines) + "\n")
        # One try, one second: a resolver that does not answer fails fast.
        self.write("/etc/resolv.conf", f"nameserver {nameserver}\noptions timeout:1 attempts:1\n")
        for d, mode in (("/tmp", 0o1777), ("/proc", 0o555)):
            os.makedirs(self.host(d), exist_ok=True)
            os.chmod(self.host(d), mode)
        self.app = None
        if app:
            self.app = "/app/static_app"
            self._copy(app, self.app, 0o755)
        for inside, outside in (files or {}).items():
            self._copy(outside, inside, 0o755 if os.access(outside, os.X_OK) else 0o644)

    def host(self, inside):
        """The host path of ``inside`` (an absolute path in the root)."""
        return os.path.join(self.path, inside.lstrip("/"))

    def _copy(self, src, inside, mode):
        dst = self.host(inside)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
        os.chmod(dst, mode)

    def write(self, inside, text, mode=0o644):
        dst = self.host(inside)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w") as f:
            f.write(text)
        os.chmod(dst, mode)

    def listing(self):
        """Every file (not directory) in the root, as root paths, sorted;
        /proc and /tmp are not walked."""
        out = []
        for dirpath, dirs, files in os.walk(self.path):
            rel = "/" + os.path.relpath(dirpath, self.path).lstrip(".")
            if rel in ("/proc", "/tmp"):
                dirs[:] = []
                continue
            for name in files:
                p = os.path.join(rel, name) if rel != "/" else "/" + name
                st = os.lstat(os.path.join(dirpath, name))
                assert stat.S_ISREG(st.st_mode), f"{p}: not a regular file"
                out.append(p)
        return sorted(out)

    def read(self, inside, default=None):
        try:
            with open(self.host(inside), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return default

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)


class EmptyRootRun(BandageRun):
    """bandage as PID 1 of a new PID namespace, chrooted into an
    :class:`EmptyRoot`. Made like a BandageRun: ``EmptyRootRun(root, args,
    env=..., timeout=..., workdir=...)``."""

    def __init__(self, root, args, *, env, timeout, workdir, stdin=None, binary=None, wd=None):
        """``binary``: the path (in the root) run as bandage, default
        /bandage; relative to ``wd`` (the working directory in the root,
        default /) when it has no leading slash."""
        prefix = ["unshare", "--pid", "--fork", "--kill-child", f"--root={root.path}",
                  "--mount-proc"]
        if wd:
            prefix.append(f"--wd={wd}")
        # Started as BandageRun's "subreaper" shape (argv = prefix + binary +
        # args, run as given), then switched to PID-1 bookkeeping: bandage is
        # unshare's only child, PID 1 inside.
        super().__init__(binary or root.bandage, [str(a) for a in args], pid1=False, env=env,
                         timeout=timeout, workdir=workdir, stdin=stdin, exec_prefix=prefix)
        self.root = root
        self.pid1 = True
        self.mode = "pid1 (empty root)"
        self.pid = self._find_namespace_init(scaled(10))

    def vm_rss_kib(self):
        """bandage's (PID 1's) resident set size in KiB, from the host's
        /proc/<pid>/status; None if it is gone."""
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            return None
        return None
