"""Running bandage under test: as PID 1 of a fresh PID namespace, or directly.

``pid1=True`` runs ``unshare --pid --fork --mount-proc --kill-child BANDAGE ...``:
unshare forks, its child becomes PID 1 of the new namespace and execs bandage,
so bandage's host pid is unshare's only child. ``--kill-child`` makes the
kernel SIGKILL bandage (and so the whole namespace) if unshare dies, so a
crashed harness leaves nothing behind.

``pid1=False`` ("subreaper mode") runs bandage directly as a child of the
harness, where it is not PID 1 and becomes a child subreaper instead.

Exit status through unshare (util-linux 2.38, measured): when its child exits
with code N, unshare exits N; when its child dies of signal N, unshare resets
N to default and kills itself with it (returncode -N here), except for
SIGKILL, which it cannot reset: it prints "unshare: sigprocmask unblock
failed: Invalid argument" and exits 1. :meth:`BandageRun.wait` undoes all of
that and reports bandage's own status in bandage's convention (128+N for
signal N).
"""
import os
import re
import signal
import subprocess
import time
import uuid

from . import procs, scaled, wait_until, WaitTimeout

#: Environment variables removed from bandage's environment unless a test sets
#: them: bandage's own settings, libpq's, and whatever would make libcurl use a
#: proxy or another CA bundle on a developer's machine.
SCRUBBED_PREFIXES = ("BANDAGE_", "PG", "RAILWAY_")
SCRUBBED_NAMES = {
    "DATABASE_URL", "DIRECT_URL", "LAST_DB_RESET", "LAST_DB_MIGRATION", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE",
    "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy",
    "no_proxy", "NO_PROXY", "LISTEN_PID", "LISTEN_FDS",
}
#: Every process a test starts carries this variable (value: a per-run token), so
#: teardown can find and kill strays even after they left bandage's tree.
RUN_TOKEN_VAR = "ITEST_RUN_TOKEN"

UNSHARE_SIGKILL_MESSAGE = "unshare: sigprocmask unblock failed"


def bandage_env(overrides=None, base=None):
    """bandage's environment: ``base`` (default ``os.environ``) without the
    scrubbed variables, then ``overrides`` applied (a value of None removes)."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if k not in SCRUBBED_NAMES and not k.startswith(SCRUBBED_PREFIXES)}
    for k, v in (overrides or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


_pid1_probe = None


def pid1_supported():
    """(ok, reason): can this process create PID namespaces? Probed once."""
    global _pid1_probe
    if _pid1_probe is None:
        try:
            r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
                                "true"], stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=scaled(10))
            _pid1_probe = (r.returncode == 0, r.stderr.decode(errors="replace").strip())
        except (OSError, subprocess.TimeoutExpired) as e:
            _pid1_probe = (False, str(e))
    return _pid1_probe


def status_to_code(returncode):
    """A Popen returncode in bandage's convention: N, or 128+N for signal N."""
    return 128 - returncode if returncode < 0 else returncode


class BandageRun:
    """One running bandage. Made by the ``run_bandage`` fixture.

    Attributes:
      pid:    bandage's pid in the host namespace (send it signals with
              :meth:`send_signal`; in PID-1 mode it is PID 1 inside).
      pid1:   True when bandage is PID 1 of its own namespace.
      mode:   "pid1" or "subreaper".
      outer:  the ``subprocess.Popen`` started (unshare, or bandage itself).
      argv:   the full command line started.
      timeout: default for :meth:`wait`.
      started_at: ``time.monotonic()`` when it was started.
    """

    def __init__(self, bandage_bin, args, *, pid1, env, timeout, workdir, stdin=None,
                 cwd=None, exec_prefix=(), start_timeout=None):
        self.pid1 = pid1
        self.mode = "pid1" if pid1 else "subreaper"
        self.timeout = timeout
        self.token = uuid.uuid4().hex
        os.makedirs(workdir, exist_ok=True)
        self._stdout_path = os.path.join(workdir, "stdout")
        self._stderr_path = os.path.join(workdir, "stderr")
        env = dict(env)
        env[RUN_TOKEN_VAR] = self.token
        inner = [*exec_prefix, bandage_bin, *args]
        if pid1:
            self.argv = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", *inner]
        else:
            self.argv = inner
        self._code = None
        with open(self._stdout_path, "wb") as out, open(self._stderr_path, "wb") as err:
            self.started_at = time.monotonic()
            self.outer = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL if stdin is None else stdin,
                stdout=out, stderr=err, env=env, cwd=cwd, close_fds=True,
                start_new_session=True)
        if pid1:
            self.pid = self._find_namespace_init(start_timeout or scaled(10))
        else:
            self.pid = self.outer.pid

    def _find_namespace_init(self, timeout):
        """bandage's host pid, or None when it has already come and gone.

        bandage can run to completion (``--version``, a command not found: a
        few ms) before /proc shows unshare's child, and unshare then exits
        too: that is not a failure to start, unless unshare itself complained.
        With pid None, the methods that signal or inspect bandage must not be
        used, and are not needed: it is gone."""
        path = f"/proc/{self.outer.pid}/task/{self.outer.pid}/children"

        def child():
            try:
                with open(path) as f:
                    pids = f.read().split()
            except FileNotFoundError:
                pids = []
            if pids:
                return int(pids[0])
            if self.outer.poll() is not None:
                if self.stderr.startswith("unshare:"):
                    raise AssertionError(f"unshare failed ({self.outer.returncode}): "
                                         f"{self.stderr.strip()}")
                return -1
            return None

        try:
            pid = wait_until(child, timeout, "unshare to fork bandage")
        except WaitTimeout:
            self.kill_tree()
            raise
        return None if pid == -1 else pid

    # --- output -------------------------------------------------------------

    @property
    def stdout_bytes(self):
        with open(self._stdout_path, "rb") as f:
            return f.read()

    @property
    def stderr_bytes(self):
        with open(self._stderr_path, "rb") as f:
            return f.read()

    @property
    def stdout(self):
        """Everything bandage (and the app) wrote to stdout so far, decoded."""
        return self.stdout_bytes.decode("utf-8", "replace")

    @property
    def stderr(self):
        """Everything written to stderr so far (bandage's log lines, the app's
        stderr; in PID-1 mode also unshare's own messages)."""
        return self.stderr_bytes.decode("utf-8", "replace")

    def wait_for_stderr(self, pattern, timeout=None):
        """Wait until ``pattern`` (a regex) matches stderr; returns the match."""
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.stderr), timeout or scaled(5),
                          lambda: f"{pattern!r} on bandage's stderr; got:\n{self.stderr}")

    # --- control ------------------------------------------------------------

    def send_signal(self, sig):
        """Send ``sig`` to bandage itself (its host pid)."""
        os.kill(self.pid, sig)

    def poll(self):
        """bandage's exit code if it has exited, else None."""
        if self._code is None and self.outer.poll() is not None:
            self._code = self._translate(self.outer.returncode)
        return self._code

    @property
    def running(self):
        return self.poll() is None

    @property
    def returncode(self):
        return self.poll()

    @property
    def raw_returncode(self):
        """The outer process's Popen returncode (unshare's in PID-1 mode)."""
        return self.outer.returncode

    def _translate(self, rc):
        if self.pid1 and rc == 1 and UNSHARE_SIGKILL_MESSAGE in self.stderr:
            return 128 + signal.SIGKILL
        return status_to_code(rc)

    def wait(self, timeout=None):
        """Wait for bandage to exit and return its exit code (N, or 128+N for
        signal N). After ``timeout`` (default: the run's) the whole process
        tree is killed and :class:`~helpers.WaitTimeout` is raised, naming what
        was still running."""
        timeout = self.timeout if timeout is None else timeout
        try:
            self.outer.wait(timeout)
        except subprocess.TimeoutExpired:
            tree = self.describe_tree()
            self.kill_tree()
            raise WaitTimeout(
                f"bandage ({self.mode}) still running {timeout:.1f}s later: {self.argv}\n"
                f"processes:\n{tree}\nstderr:\n{self.stderr}") from None
        self.exited_at = time.monotonic()
        return self.poll()

    def wait_exit_code(self, expected, timeout=None):
        """:meth:`wait`, then assert the code, showing stderr when it differs."""
        code = self.wait(timeout)
        assert code == expected, (f"bandage exited {code}, expected {expected} ({self.mode})\n"
                                  f"stderr:\n{self.stderr}")
        return code

    # --- processes ----------------------------------------------------------

    def children(self):
        """bandage's direct children (:class:`~helpers.procs.ProcStat`, host pids,
        zombies included)."""
        return procs.children_of(self.pid)

    def descendants(self):
        """Every process below bandage (host pids, zombies included)."""
        return procs.descendants_of(self.pid)

    def host_pid(self, ns_pid):
        """The host pid of a process that knows itself as ``ns_pid`` (what
        ``getpid()`` returns inside bandage's namespace). Identity in
        subreaper mode."""
        if not self.pid1:
            return ns_pid
        if ns_pid == 1:
            return self.pid
        for st in self.descendants():
            nsp = procs.ns_pids(st.pid)
            if nsp and nsp[-1] == ns_pid:
                return st.pid
        raise LookupError(f"no process with pid {ns_pid} in bandage's namespace")

    def tagged_pids(self):
        """Host pids of every live process started by this run (found by the
        environment token, so also processes that left bandage's tree)."""
        tag = f"{RUN_TOKEN_VAR}={self.token}".encode()
        return [p for p in procs.all_pids() if p != os.getpid() and procs.has_env(p, tag)]

    def describe_tree(self):
        lines = []
        for st in [procs.proc_stat(self.pid)] + self.descendants():
            if st is not None:
                args = " ".join(procs.cmdline(st.pid) or [st.comm])
                lines.append(f"  {st.pid} ppid={st.ppid} pgrp={st.pgrp} {st.state} {args[:120]}")
        return "\n".join(lines) or "  (none)"

    def kill_tree(self):
        """SIGKILL bandage and everything it started (bounded); reap the outer
        process. Safe to call at any time, also after bandage exited."""
        def targets():
            pids = set(self.tagged_pids())
            if procs.exists(self.pid) and self.outer.poll() is None:
                pids.add(self.pid)
                pids.update(st.pid for st in self.descendants())
            return pids

        if self.pid1 and self.outer.poll() is None:
            procs.kill_quietly(self.pid)  # PID 1 gone: the kernel kills the namespace
        procs.kill_all(targets, timeout=scaled(5))
        if self.outer.poll() is None:
            procs.kill_quietly(self.outer.pid)
        try:
            self.outer.wait(scaled(5))
        except subprocess.TimeoutExpired:
            pass


def wait_gone(pid, timeout, what=None):
    """Wait until host ``pid`` is neither alive nor a zombie."""
    wait_until(lambda: procs.proc_stat(pid) is None, timeout, what or f"pid {pid} to be gone")
