"""TLS errors while waiting (DESIGN.md "Waiting, precisely"; issue 9 item 4).

Only a certificate that does not verify or does not match the host (and a
server that refuses TLS when it is required, missing client key files) is a
trust failure that exits 77 at once. Any other TLS error, such as the alert
a server (or the proxy in front of it) sends while it is still starting, is
retried with backoff. A real TLS proxy (``helpers/tlsproxy.py``) sits in
front of the session's PostgreSQL and fails the first handshakes; after
those, TLS runs end to end with the real server.
"""
import pytest

from helpers import scaled
from helpers.tlsproxy import TlsFailProxy
from test_wait import (READY, assert_refused_at_once, assert_secret_hidden, attempts_made,
                       not_ready_lines)

ALERT_BAD_CERTIFICATE = 42


@pytest.fixture
def proxy_factory(pg, test_ca):
    made = []

    def create(failures, mode="alert", **kw):
        proxy = TlsFailProxy(pg.host, pg.port, failures, mode=mode, cert=test_ca.server_cert,
                             **kw)
        made.append(proxy)
        return proxy

    yield create
    for proxy in made:
        proxy.close()


def proxied_dsn(pg, db, proxy, **params):
    # host=localhost names the certificate's host for verify-full; hostaddr
    # keeps libpq off ::1, where the proxy does not listen.
    return db.dsn(host="localhost", port=proxy.port, hostaddr="127.0.0.1", **params)


@pytest.mark.parametrize("mode, reason", [
    ("alert", "SSL error: tlsv1 alert internal error"),
    ("handshake", "SSL error: tlsv1 alert internal error"),
    ("eof", "SSL SYSCALL error: EOF detected"),
])
@pytest.mark.parametrize("sslmode", ["require", "verify-full"])
def test_tls_errors_while_starting_are_retried(run_bandage, pg, db, proxy_factory, mode, reason,
                                               sslmode):
    proxy = proxy_factory(3, mode)
    params = {"sslmode": sslmode}
    if sslmode == "verify-full":
        params["sslrootcert"] = pg.ca_file
    run = run_bandage(["--database-url", proxied_dsn(pg, db, proxy, **params),
                       "--wait-timeout", scaled(20)])
    run.wait_exit_code(0, scaled(20))
    assert proxy.failed == 3 and proxy.passed == 1, (proxy.failed, proxy.passed, run.stderr)
    assert READY.search(run.stderr) and attempts_made(run) == 4, run.stderr
    lines = not_ready_lines(run)
    assert [c for c, r in lines if reason in r] == ["retry with backoff"], (
        f"the TLS error must be logged once, as a retry with backoff:\n{run.stderr}")
    assert not proxy.errors, proxy.errors
    assert_secret_hidden(run, pg.superuser_password)


def test_wrong_ca_through_the_proxy_exits_77_at_once(run_bandage, pg, db, proxy_factory,
                                                     wrong_ca):
    proxy = proxy_factory(0)
    dsn = proxied_dsn(pg, db, proxy, sslmode="verify-full", sslrootcert=wrong_ca.ca_file)
    run = run_bandage(["--database-url", dsn, "--wait-timeout", "30"])
    assert_refused_at_once(run)
    assert "certificate verify failed" in run.stderr, run.stderr
    assert proxy.passed == 1, proxy.passed
    assert_secret_hidden(run, pg.superuser_password)


def test_wrong_ca_after_alerts_still_exits_77(run_bandage, pg, db, proxy_factory, wrong_ca):
    """Alerts are retried; the first handshake that reaches the real server
    then fails verification, which is not retried."""
    proxy = proxy_factory(2)
    dsn = proxied_dsn(pg, db, proxy, sslmode="verify-full", sslrootcert=wrong_ca.ca_file)
    run = run_bandage(["--database-url", dsn, "--wait-timeout", "30"])
    code = run.wait(scaled(10))
    assert code == 77, run.stderr
    assert run.exited_at - run.started_at < scaled(3), run.stderr
    assert attempts_made(run) == 3 and proxy.failed == 2 and proxy.passed == 1, run.stderr
    assert "certificate verify failed" in run.stderr, run.stderr
    assert_secret_hidden(run, pg.superuser_password)


def test_server_rejecting_our_certificate_exits_77(run_bandage, pg, db, proxy_factory):
    """An alert about the client's certificate (bad_certificate) is the
    server's verification failing, not a server still starting."""
    proxy = proxy_factory(100, alert=ALERT_BAD_CERTIFICATE)
    run = run_bandage(["--database-url", proxied_dsn(pg, db, proxy, sslmode="require"),
                       "--wait-timeout", "30"])
    assert_refused_at_once(run)
    assert "alert bad certificate" in run.stderr, run.stderr
    assert_secret_hidden(run, pg.superuser_password)
