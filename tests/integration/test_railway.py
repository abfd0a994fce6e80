"""Railway's stop: SIGTERM, then SIGKILL RAILWAY_DEPLOYMENT_DRAINING_SECONDS
later (0 unless set). Without --grace / BANDAGE_GRACE, bandage's grace ends
1 s before that, leaving the exit report its second; a draining time of 0 is
warned about once at start."""
import signal
import time

from helpers import scaled
from helpers.apps import AppFiles, sigrecorder_cmd

DRAINING = "RAILWAY_DEPLOYMENT_DRAINING_SECONDS"


def warnings_about_draining(stderr):
    return [line for line in stderr.splitlines()
            if line.startswith("bandage:") and f"{DRAINING} is 0" in line]


def test_draining_time_bounds_the_grace(run_bandage, app_dir):
    run = run_bandage(["--", *sigrecorder_cmd(app_dir, "--on-term", "ignore")],
                      env={DRAINING: "2"})
    AppFiles(app_dir).wait_ready(run)
    sent = time.monotonic()
    run.send_signal(signal.SIGTERM)
    run.wait_exit_code(137, timeout=scaled(10))
    took = time.monotonic() - sent
    # grace = 2 s - 1 s: SIGKILL a second before Railway's own
    assert took >= 0.95, f"SIGKILL came {took:.2f}s after SIGTERM, before the 1 s grace"
    assert took <= 1 + scaled(0.9), f"bandage took {took:.2f}s: the 10 s default grace?"
    assert warnings_about_draining(run.stderr) == []


def test_explicit_grace_wins_over_draining_time(run_bandage, app_dir):
    run = run_bandage(["--grace", "0.2", "--", *sigrecorder_cmd(app_dir, "--on-term", "ignore")],
                      env={DRAINING: "30"})
    AppFiles(app_dir).wait_ready(run)
    sent = time.monotonic()
    run.send_signal(signal.SIGTERM)
    run.wait_exit_code(137, timeout=scaled(10))
    assert time.monotonic() - sent < 0.2 + scaled(1.5)


def test_draining_zero_is_warned_once(run_bandage):
    run = run_bandage(["--", "true"], env={DRAINING: "0"})
    assert run.wait() == 0
    warned = warnings_about_draining(run.stderr)
    assert len(warned) == 1, run.stderr
    assert "no graceful shutdown" in warned[0]


def test_draining_zero_without_an_app_is_not_warned(run_bandage):
    run = run_bandage(["--wait-timeout", "0"], env={DRAINING: "0"}, pid1=False)
    assert run.wait() == 0
    assert warnings_about_draining(run.stderr) == [], run.stderr


def test_unparsable_draining_time_is_a_usage_error(run_bandage):
    run = run_bandage(["--", "true"], env={DRAINING: "soon"}, pid1=False)
    assert run.wait() == 64
    assert f"{DRAINING}: 'soon'" in run.stderr
