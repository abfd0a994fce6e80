"""A local HTTP(S) receiver for bandage's webhook: records every request and
answers as the test asks (status codes in turn, slowly, or never)."""
import collections
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import scaled


@dataclass
class Request:
    """One request as received.

    ``headers``: dict with lower-cased names (repeated headers joined with
    ", "); ``raw_headers``: [(name, value), ...] as sent. ``received_at``:
    ``time.monotonic()`` when the whole request had been read;
    ``received_wall``: ``time.time()`` then. ``status``: what was answered
    (None while hanging or if never answered)."""
    method: str
    path: str
    headers: dict
    raw_headers: list
    body: bytes
    received_at: float
    received_wall: float
    status: int = None
    client: tuple = field(default=None)

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bandage-test-receiver/1"
    timeout = 30  # an idle keep-alive connection does not hold a thread forever

    def log_message(self, fmt, *args):
        pass

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self):
        receiver = self.server.receiver
        body = self._read_body()
        headers = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        req = Request(self.command, self.path, headers, list(self.headers.items()), body,
                      time.monotonic(), time.time(), client=self.client_address)
        status, delay, hang, reply = receiver._record(req)
        if hang:
            receiver._released.wait()  # until the test ends
            self.close_connection = True
            return
        if delay and receiver._released.wait(delay):
            self.close_connection = True
            return
        req.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply)

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, receiver, context):
        self.receiver = receiver
        self.context = context
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request, client_address):
        # TLS handshake here, in the connection's own thread, so a client that
        # never completes it cannot block the accept loop.
        if self.context is not None:
            try:
                request.settimeout(scaled(10))
                request = self.context.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (ssl.SSLError, OSError) as e:
                self.receiver.tls_errors.append(repr(e))
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        pass  # a client hanging up mid-request is not the receiver's failure


class WebhookReceiver:
    """An HTTP receiver on 127.0.0.1 (random port) recording every request.

    Behaviour, settable any time (also between requests):
      ``statuses``       a deque of status codes answered in turn (e.g. 500,
                         500, 200); when empty, ``default_status`` (200).
      ``respond_with(*codes)``  replaces that queue.
      ``delay``          seconds to wait before answering each request.
      ``hang``           True: read the request, record it, never answer
                         (the connection is dropped when the test ends).
      ``response_body``  bytes answered (default ``{"ok":true}``).
    ``https=True`` serves TLS with a certificate signed by the harness CA
    (``ca_file``) for localhost / 127.0.0.1; handshake failures (a client
    that rejects the certificate) are listed in ``tls_errors``.
    """

    def __init__(self, https=False, ca=None):
        self._lock = threading.Condition()
        self._requests = []
        self.statuses = collections.deque()
        self.default_status = 200
        self.delay = 0.0
        self.hang = False
        self.response_body = b'{"ok":true}'
        self.tls_errors = []
        self._released = threading.Event()
        self.https = https
        self.ca_file = None
        context = None
        if https:
            if ca is None:
                raise ValueError("https=True needs the harness CA")
            cert, key = ca.server_cert
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self.ca_file = ca.ca_file
        self._server = _Server(self, context)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name=f"webhook-{self.port}")
        self._thread.start()

    @property
    def url(self):
        """``http(s)://127.0.0.1:PORT/hook``."""
        return self.url_for("/hook")

    def url_for(self, path):
        return f"{'https' if self.https else 'http'}://127.0.0.1:{self.port}{path}"

    def respond_with(self, *codes):
        """Answer the next requests with these status codes, in order."""
        with self._lock:
            self.statuses = collections.deque(codes)

    def _record(self, req):
        with self._lock:
            self._requests.append(req)
            status = self.statuses.popleft() if self.statuses else self.default_status
            result = status, self.delay, self.hang, self.response_body
            self._lock.notify_all()
        return result

    @property
    def requests(self):
        """A copy of the requests received so far, in order."""
        with self._lock:
            return list(self._requests)

    def wait_for(self, n=1, timeout=None):
        """Wait until at least ``n`` requests arrived (bounded; default 10 s,
        scaled); returns them all. Raises AssertionError on timeout."""
        timeout = scaled(10) if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"webhook got {len(self._requests)} request(s) in {timeout:.1f}s, "
                        f"expected {n}; TLS errors: {self.tls_errors}")
                self._lock.wait(left)
            return list(self._requests)

    def close(self):
        """Release hanging requests and stop serving."""
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(scaled(5))


class RefusedPort:
    """A loopback port with nothing listening: connecting is refused. Held
    bound (not listening) so nothing else takes it during the test."""

    def __init__(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def close(self):
        self._sock.close()
