"""The test apps in this directory, as commands, and reading what they record."""
import json
import os
import signal

from . import HERE, PYTHON, scaled, wait_until

SIGRECORDER = os.path.join(HERE, "sigrecorder.py")
DIRTY_EXEC = os.path.join(HERE, "dirty_exec.py")
PTY_EXEC = os.path.join(HERE, "pty_exec.py")
ORPHANS_SRC = os.path.join(HERE, "orphans.c")


def python_cmd(script, *args):
    """``/usr/bin/python3 -I -S script args...`` (isolated, no site: starts fast)."""
    return [PYTHON, "-I", "-S", script, *map(str, args)]


def sigrecorder_cmd(directory, *options):
    """The command line of helpers/sigrecorder.py writing into ``directory``;
    ``options`` as in its docstring, e.g. ``"--on-term", "exit:3"``."""
    return python_cmd(SIGRECORDER, "--dir", directory, *options)


def dirty_exec_prefix(ignore=(), block=()):
    """An ``exec_prefix`` for ``run_bandage``: start bandage with these signals
    ignored (SIG_IGN) and blocked, as a careless parent would."""
    return python_cmd(DIRTY_EXEC, "--ignore", ",".join(ignore), "--block", ",".join(block),
                      "--")


def pty_exec_prefix(outfile):
    """An ``exec_prefix`` for ``run_bandage``: bandage gets a new pty as its
    controlling terminal and stdio; what is written to it goes to ``outfile``."""
    return python_cmd(PTY_EXEC, outfile, "--")


def sig_name(n):
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"SIGRTMIN+{n - signal.SIGRTMIN}" if n >= signal.SIGRTMIN else str(n)


class AppFiles:
    """What one sigrecorder instance (``name``) wrote into ``directory``.

    The ``wait_*`` methods take ``run`` (a BandageRun) so that they fail at once,
    with bandage's stderr, if bandage exits while they wait."""

    def __init__(self, directory, name="app"):
        self.dir = str(directory)
        self.name = name
        self.base = os.path.join(self.dir, name)

    def _read(self, suffix):
        try:
            with open(self.base + suffix) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def status(self):
        """The state the app started in (see sigrecorder's docstring)."""
        text = self._read(".status.json")
        return None if text is None else json.loads(text)

    def ready_info(self):
        text = self._read(".ready")
        return None if text is None else json.loads(text)

    def signal_records(self):
        """[(signo, ppid at receipt), ...] in the order received."""
        text = self._read(".signals") or ""
        return [tuple(map(int, line.split())) for line in text.splitlines() if line.strip()]

    def signals(self):
        """Signal numbers received, in order."""
        return [s for s, _ in self.signal_records()]

    def exit_code(self):
        """The code the app said it exits with, or None if it has not (yet)."""
        text = self._read(".exit")
        return None if text is None else int(text)

    def _check_alive(self, run, what):
        if run is not None and run.poll() is not None:
            raise AssertionError(f"bandage exited {run.poll()} while waiting for {what}; "
                                 f"stderr:\n{run.stderr}")

    def wait_ready(self, run=None, timeout=None):
        """Wait for the ready file (handlers installed, children made); returns it."""
        what = f"{self.name} to be ready"

        def ready():
            info = self.ready_info()
            if info is None:
                self._check_alive(run, what)
            return info
        return wait_until(ready, timeout or scaled(15), what)

    def wait_signal(self, sig, run=None, timeout=None, count=1):
        """Wait until ``sig`` has been recorded ``count`` times; returns all signals."""
        what = f"{self.name} to record {sig_name(sig)}"

        def seen():
            sigs = self.signals()
            if sigs.count(sig) >= count:
                return sigs
            self._check_alive(run, what)
            return None
        return wait_until(seen, timeout or scaled(5),
                          lambda: f"{what} (recorded so far: "
                                  f"{[sig_name(s) for s in self.signals()]})")
