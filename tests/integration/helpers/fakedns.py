"""A DNS server on a loopback address that knows no name: every query is
answered NXDOMAIN at once, and recorded.

The empty root's /etc/resolv.conf points at it, so a lookup that reaches DNS
(a name not in /etc/hosts) fails fast and deterministically, whatever the
machine's own network is, and the test can tell which names were looked up
over DNS (``queries``: [(qname, qtype), ...]). Binding port 53 needs root.
"""
import socket
import struct
import threading

#: Addresses tried in turn: all of 127.0.0.0/8 is loopback on Linux, and these
#: are unlikely to be taken by a local resolver (127.0.0.53, 127.0.0.1).
CANDIDATES = ("127.83.83.83", "127.83.83.84", "127.83.84.83")


def _parse_question(packet):
    """(qname, qtype, end offset of the question) of a query packet."""
    labels, i = [], 12
    while True:
        n = packet[i]
        i += 1
        if n == 0:
            break
        labels.append(packet[i:i + n].decode("ascii", "replace"))
        i += n
    qtype, _qclass = struct.unpack("!HH", packet[i:i + 4])
    return ".".join(labels), qtype, i + 4


class FakeDns:
    def __init__(self):
        self.queries = []
        self._lock = threading.Lock()
        self._sock = None
        errors = []
        for addr in CANDIDATES:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((addr, 53))
            except OSError as e:
                s.close()
                errors.append(f"{addr}: {e}")
                continue
            self._sock, self.address = s, addr
            break
        if self._sock is None:
            raise RuntimeError("cannot bind a fake DNS server on port 53: " + "; ".join(errors))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="fakedns")
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                packet, peer = self._sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                qname, qtype, end = _parse_question(packet)
            except (IndexError, struct.error):
                continue
            with self._lock:
                self.queries.append((qname, qtype))
            qid, flags = struct.unpack("!HH", packet[:4])
            # QR, the query's opcode and RD, RA, RCODE 3 (NXDOMAIN); the
            # question echoed, no answers.
            rflags = 0x8000 | (flags & 0x7900) | 0x0080 | 3
            reply = struct.pack("!HHHHHH", qid, rflags, 1, 0, 0, 0) + packet[12:end]
            try:
                self._sock.sendto(reply, peer)
            except OSError:
                pass

    def names(self):
        """The names queried so far (deduplicated, in order)."""
        with self._lock:
            seen = []
            for name, _ in self.queries:
                if name not in seen:
                    seen.append(name)
            return seen

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self._sock.close()
