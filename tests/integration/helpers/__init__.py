"""Shared pieces of the bandage integration harness.

The fixtures live in ``conftest.py``; the classes and functions they are built
from live in this package so that test modules can import them directly::

    from helpers import scaled, wait_until, PYTHON
    from helpers.apps import AppFiles, sigrecorder_cmd

Everything here has a bounded timeout: a hang fails the test, it never stalls
the suite.
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION_DIR = os.path.dirname(HERE)
REPO_ROOT = os.path.dirname(os.path.dirname(INTEGRATION_DIR))

#: Set by ``make asan-check``: bandage is an ASan+UBSan build, slower to start
#: and to exit (leak check), so every timeout is stretched.
SANITIZED = os.environ.get("BANDAGE_SANITIZED", "") not in ("", "0")

#: Multiplier applied by :func:`scaled` to every timeout.
TIMEOUT_SCALE = 3.0 if SANITIZED else 1.0

#: The interpreter for helper apps. Debian's, because ``python3`` on PATH may
#: be another interpreter (see DESIGN.md, "Tests").
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

IS_ROOT = os.geteuid() == 0


def scaled(seconds):
    """A timeout of ``seconds``, stretched when bandage is a sanitized build."""
    return seconds * TIMEOUT_SCALE


class WaitTimeout(AssertionError):
    """A bounded wait ran out. An AssertionError, so pytest shows it as a failure."""


def wait_until(predicate, timeout, what="condition", interval=0.005, max_interval=0.05):
    """Poll ``predicate()`` until it returns a truthy value, which is returned.

    Bounded: after ``timeout`` seconds raises :class:`WaitTimeout` naming
    ``what`` (a string, or a callable returning one, evaluated only on failure
    so it can describe the state that was seen). The interval starts small and
    grows to ``max_interval``, so a condition that becomes true quickly is seen
    quickly. This is for waiting on an *event* (a file appearing, a process
    state changing), never a substitute for one.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            desc = what() if callable(what) else what
            raise WaitTimeout(f"timed out after {timeout:.1f}s waiting for {desc}")
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, max_interval)
