"""A TCP proxy in front of PostgreSQL that makes the first TLS handshakes fail.

What a server that is still starting (or a TLS-terminating proxy in front of
it) looks like to libpq: it accepts the connection, answers PostgreSQL's
SSLRequest with 'S', then ends the handshake with a TLS alert. After the
first ``failures`` such connections, every connection is passed through
byte for byte to the real server, SSLRequest included, so TLS (and the
server's certificate) is end to end between the client and PostgreSQL.

Failure modes (``mode``):

- ``"alert"``: reads the ClientHello and answers with a fatal TLS alert
  record (``alert``, default internal_error, 80), then closes: libpq reports
  "SSL error: tlsv1 alert internal error".
- ``"handshake"``: a real server-side handshake with Python's ``ssl`` whose
  SNI callback refuses the client with the same alert (the path OpenSSL
  takes in a server that is not ready to serve).
- ``"eof"``: reads the ClientHello, then closes: "SSL SYSCALL error: EOF detected".

Bounded everywhere: sockets have timeouts, threads are daemons, ``close()``
joins them. Use as a context manager or call ``close()``::

    with TlsFailProxy(pg.host, pg.port, failures=3) as proxy:
        dsn = pg.dsn(port=proxy.port, sslmode="require")
"""
import select
import socket
import ssl
import struct
import threading

SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
ALERT_INTERNAL_ERROR = 80

#: A fatal TLS alert record: content type 21 (alert), TLS 1.2 record version.
def alert_record(description):
    return struct.pack("!BHHBB", 21, 0x0303, 2, 2, description)


def _recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class TlsFailProxy:
    """Listens on ``<listen_host>:<free port>`` (``.port``; 127.0.0.1 unless
    told) and forwards to ``(host, port)``. With ``failures=0`` it is a plain
    TCP forwarder. ``.failed`` counts the handshakes it made fail,
    ``.passed`` the connections it passed through, ``.errors`` lists
    unexpected exceptions of its threads (a test may assert it is empty)."""

    def __init__(self, host, port, failures, mode="alert", alert=ALERT_INTERNAL_ERROR,
                 cert=None, timeout=10.0, listen_host="127.0.0.1"):
        if mode not in ("alert", "handshake", "eof"):
            raise ValueError(f"unknown mode {mode!r}")
        if mode == "handshake" and cert is None:
            raise ValueError("mode 'handshake' needs cert=(certfile, keyfile)")
        self.target = (host, port)
        self.failures = failures
        self.mode = mode
        self.alert = alert
        self.timeout = timeout
        self.failed = 0
        self.passed = 0
        self.errors = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._threads = []
        self._ctx = None
        if mode == "handshake":
            self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._ctx.load_cert_chain(*cert)
            self._ctx.sni_callback = lambda sslobj, name, ctx: alert
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((listen_host, 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True,
                                          name=f"tlsproxy-{self.port}")
        self._acceptor.start()

    # --- lifecycle --------------------------------------------------------------

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._closing.set()
        try:
            self._listener.close()
        except OSError:
            pass
        self._acceptor.join(self.timeout)
        for t in list(self._threads):
            t.join(self.timeout)

    # --- connections ------------------------------------------------------------

    def _accept_loop(self):
        while not self._closing.is_set():
            try:
                ready, _, _ = select.select([self._listener], [], [], 0.05)
                if not ready:
                    continue
                client, _ = self._listener.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads.append(t)
            t.start()

    def _take_failure(self):
        with self._lock:
            if self.failed < self.failures:
                self.failed += 1
                return True
            return False

    def _serve(self, client):
        client.settimeout(self.timeout)
        try:
            with client:
                first = _recv_exactly(client, 8)
                if first is None:
                    return
                length, code = struct.unpack("!II", first)
                if length == 8 and code == SSL_REQUEST_CODE and self._take_failure():
                    client.sendall(b"S")
                    self._fail_handshake(client)
                    return
                with self._lock:
                    self.passed += 1
                self._pass_through(client, first)
        except (OSError, ssl.SSLError) as e:
            if not self._closing.is_set():
                self.errors.append(repr(e))

    def _fail_handshake(self, client):
        if self.mode in ("alert", "eof"):
            # The ClientHello's record header says how long it is; read it all,
            # so the alert answers it rather than racing it, and so the close
            # is a FIN: closing with the hello unread sends an RST, which libpq
            # reports as "Connection reset by peer", not EOF.
            header = _recv_exactly(client, 5)
            if header is None:
                return
            _recv_exactly(client, struct.unpack("!H", header[3:5])[0])
            if self.mode == "alert":
                client.sendall(alert_record(self.alert))
            return
        try:
            with self._ctx.wrap_socket(client, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass  # the handshake failing is the point

    def _pass_through(self, client, first):
        with socket.create_connection(self.target, timeout=self.timeout) as server:
            server.sendall(first)
            client.settimeout(None)
            server.settimeout(None)
            peers = {client: server, server: client}
            while not self._closing.is_set():
                readable, _, _ = select.select(list(peers), [], [], 0.1)
                for sock in readable:
                    try:
                        data = sock.recv(65536)
                        if data:
                            peers[sock].sendall(data)
                    except (ConnectionResetError, BrokenPipeError):
                        data = b""  # a peer that hangs up hard ends the session too
                    if not data:
                        return
