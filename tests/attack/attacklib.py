"""Helpers for attack tests: process memory, a bystander that checks other
clients are still served, raw sockets.  Everything talks to 127.0.0.1."""
import os
import socket
import threading
import time

import numpy as np

import gwlib

HOST = gwlib.HOST
ROW = np.linspace(0.0, 16.0, 64).reshape(1, 64)

# Under a sanitizer (tests/run_all.sh sets INFERGW_SANITIZER) every
# allocation carries redzones and freed memory waits in ASan's quarantine,
# so resident memory is a few times the plain build's.  The memory bounds
# are the plain build's promise (its attack run checks them as stated);
# sanitizer runs scale them so they still catch unbounded growth.
RSS_SCALE = 4 if os.environ.get("INFERGW_SANITIZER") else 1


def _status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {key} for pid {pid}")


def rss_kb(pid):
    """Resident set size of pid in KiB, from /proc/PID/status (VmRSS),
    divided by RSS_SCALE (see above): compare it with plain-build bounds."""
    return _status_kb(pid, "VmRSS") // RSS_SCALE


def vm_kb(pid):
    """Address space of pid in KiB (VmSize): room reserved and not yet
    written shows here, not in the RSS."""
    return _status_kb(pid, "VmSize")


def assert_alive(g):
    """The gateway process is still running and answers /v2/health/live."""
    assert g.alive(), f"gateway died (exit {g.proc.returncode})\n{g.log()[-3000:]}"
    st, _, body = gwlib.h1_request(g.port, "GET", "/v2/health/live", timeout=5)
    assert st == 200, (st, body)


class Bystander:
    """A well-behaved client on its own connections, sending one digits
    inference at a time (alternating HTTP/1.1 and HTTP/2) while an attack
    runs.  After stop(): .codes lists every status it got (None for a
    failure to connect or a timeout) and .values_ok tells whether every 200
    carried the reference probabilities.  Bounded by max_requests.
    With tls=(h1 context, h2 context) it speaks TLS (ALPN http/1.1 and h2),
    a full handshake per request."""

    def __init__(self, g, model, max_requests=2000, pause=0.02, timeout=5.0, tls=None):
        self.g, self.model = g, model
        self.max_requests, self.pause, self.timeout = max_requests, pause, timeout
        self.h1_tls, self.h2_tls = tls or (None, None)
        self.codes, self.latencies, self.values_ok = [], [], True
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self.wait_for(3)  # a short attack still gets a bystander to judge it by
        self.stop()

    def stop(self):
        self._stop.set()
        self._t.join(timeout=30)

    def _one(self, i):
        body = gwlib.infer_body(ROW)
        t0 = time.monotonic()
        if i % 2 == 0:
            st, _, data = gwlib.h1_request(self.g.port, "POST", gwlib.INFER, body,
                                           [gwlib.JSON_CT], timeout=self.timeout,
                                           ssl_context=self.h1_tls)
        else:
            with gwlib.H2Client(self.g.port, timeout=self.timeout,
                                ssl_context=self.h2_tls) as c:
                r = c.post(gwlib.INFER, body)
                st, data = r.status, bytes(r.body)
        self.latencies.append(time.monotonic() - t0)
        if st == 200:
            try:
                gwlib.check_infer_response(data, self.model, ROW)
            except AssertionError:
                self.values_ok = False
        return st

    def _run(self):
        for i in range(self.max_requests):
            if self._stop.is_set():
                break
            try:
                self.codes.append(self._one(i))
            except (OSError, ConnectionError, AssertionError, TimeoutError):
                self.codes.append(None)
            time.sleep(self.pause)

    def wait_for(self, n=3, timeout=15.0):
        """Wait until the bystander has made n requests."""
        deadline = time.monotonic() + timeout
        while len(self.codes) < n and self._t.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)

    def assert_served(self, min_requests=3):
        """Every request the bystander made was a 200 with the right values."""
        assert len(self.codes) >= min_requests, f"bystander made only {len(self.codes)} requests"
        bad = [c for c in self.codes if c != 200]
        assert not bad, f"bystander got {bad[:20]} of {len(self.codes)}"
        assert self.values_ok, "bystander got wrong probabilities"


def raw_conn(port, timeout=10.0):
    """A plain TCP socket to the gateway."""
    return socket.create_connection((HOST, port), timeout=timeout)


def metric_value(g, name, **labels):
    """The value of one metric series from the gateway's /metrics (0 if absent)."""
    return gwlib.metric(gwlib.read_metrics(g.metrics_port), name, **labels)


# ----------------------------------------------------------- processes ----

def cpu_seconds(pid):
    """User + system CPU seconds pid has used so far (all threads), from
    /proc/PID/stat."""
    import os
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after "pid (comm)": state is field 3, utime 14, stime 15 (1-based)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssPeak:
    """Tracks the highest RSS of pid seen by sample() since construction."""

    def __init__(self, pid):
        self.pid = pid
        self.base = rss_kb(pid)
        self.peak = self.base

    def sample(self):
        cur = rss_kb(self.pid)
        self.peak = max(self.peak, cur)
        return cur - self.base

    @property
    def growth_mib(self):
        return (self.peak - self.base) / 1024


def start_gateway(factory, name, **conf):
    """factory(name, **conf) started, but when this binary rejects a
    `limits` key as unknown (it predates the key), start it again without
    those keys so the test can show the defect instead of failing on the
    config; the dropped keys are in g.missing_keys (normally empty) and
    go into failure messages via describe_missing(g)."""
    import re
    import pytest

    limits = dict(conf.pop("limits", None) or {})
    missing = []
    while True:
        g = factory(name, start=False, limits=limits, **conf)
        try:
            g.start()
            g.missing_keys = missing
            return g
        except pytest.fail.Exception:
            log = g.log()
            bad = [k for k in limits if re.search(rf'unknown key "{k}"', log)]
            if not bad:
                raise
            for k in bad:
                del limits[k]
                missing.append(k)


def describe_missing(g):
    keys = getattr(g, "missing_keys", [])
    return f" [this binary does not know limits.{', limits.'.join(keys)}: started without]" \
        if keys else ""


# ---------------------------------------------------------- raw HTTP/1.1 ----

def flood(sock, unit, rss, rss_bound_mib, max_s=10.0, max_bytes=200e6):
    """Send unit over and over on sock (made non-blocking) without reading,
    until max_s or max_bytes, until our sends block for 2 s ("blocked": the
    gateway stopped reading), the connection closes ("closed"), or rss (an
    RssPeak) grows past rss_bound_mib ("rss").  (bytes sent, how it ended)."""
    sock.setblocking(False)
    mv, off, sent = memoryview(unit), 0, 0
    t0 = last = time.monotonic()
    end = "limit"
    while time.monotonic() - t0 < max_s and sent < max_bytes:
        try:
            n = sock.send(mv[off:])
            sent += n
            off = (off + n) % len(unit)
            last = time.monotonic()
        except BlockingIOError:
            if time.monotonic() - last > 2.0:
                end = "blocked"
                break
            time.sleep(0.01)
        except OSError:
            end = "closed"
            break
        if rss.sample() > rss_bound_mib * 1024:
            end = "rss"
            break
    time.sleep(0.3)
    rss.sample()
    return sent, end


def read_until_eof(sock, timeout=3.0, quiet=None, max_bytes=64 << 20):
    """(bytes, eof): what sock delivers until the peer closes (eof True),
    timeout seconds pass, or nothing arrives for `quiet` seconds after
    something did.  A reset counts as EOF."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while len(data) < max_bytes:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(data), False
        sock.settimeout(min(left, quiet) if (quiet and data) else left)
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, TimeoutError, BlockingIOError):
            return bytes(data), False
        except (ConnectionResetError, BrokenPipeError):
            return bytes(data), True
        if not chunk:
            return bytes(data), True
        data += chunk
    return bytes(data), False


def parse_h1_responses(data):
    """Split raw HTTP/1.1 response bytes (Content-Length framed, as the
    gateway writes them) into [(status, {lower name: value}, body)] and the
    trailing bytes that do not make a complete response."""
    out = []
    pos = 0
    while True:
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            break
        lines = data[pos:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        assert len(parts) >= 2 and parts[0] in ("HTTP/1.1", "HTTP/1.0") and \
            parts[1].isdigit(), f"not a status line: {lines[0]!r} at byte {pos}"
        hdrs = {}
        for ln in lines[1:]:
            k, sep, v = ln.partition(":")
            assert sep, f"bad response header line {ln!r}"
            hdrs[k.strip().lower()] = v.strip()
        status = int(parts[1])
        n = int(hdrs.get("content-length", "0"))
        if 100 <= status < 200:
            n = 0
        if end + 4 + n > len(data):
            break
        out.append((status, hdrs, data[end + 4:end + 4 + n]))
        pos = end + 4 + n
    return out, data[pos:]


def h1_exchange(port, raw, timeout=3.0, quiet=1.5):
    """Send raw bytes on a fresh connection and read until the gateway
    closes it (or goes quiet): (responses, leftover bytes, eof)."""
    with raw_conn(port, timeout) as s:
        s.sendall(raw)
        data, eof = read_until_eof(s, timeout, quiet)
    resps, rest = parse_h1_responses(data)
    return resps, rest, eof


def error_text(body):
    """The "error" string of a JSON error body ("" if it is not one)."""
    import json
    try:
        return json.loads(body).get("error", "")
    except (ValueError, AttributeError):
        return ""


# ------------------------------------------------------------ raw HTTP/2 ----

import struct  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, \
    WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED = 0x1, 0x1, 0x4, 0x8
SETTINGS_INITIAL_WINDOW_SIZE = 4
H2_ERRORS = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR",
             3: "FLOW_CONTROL_ERROR", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR",
             7: "REFUSED_STREAM", 8: "CANCEL", 9: "COMPRESSION_ERROR",
             11: "ENHANCE_YOUR_CALM"}


def frame(ftype, flags, sid, payload=b""):
    """One HTTP/2 frame on the wire (RFC 9113 §4.1)."""
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, ftype, flags, sid & 0x7FFFFFFF) + payload


def settings_frame(**kv):
    """SETTINGS with {id: value} given as s<ID>=value (e.g. s4=0)."""
    body = b"".join(struct.pack(">HI", int(k[1:]), v) for k, v in kv.items())
    return frame(SETTINGS, 0, 0, body)


def parse_frames(buf):
    """[(type, flags, sid, payload)] of the complete frames in buf, and the rest."""
    out, pos = [], 0
    while len(buf) - pos >= 9:
        hi, lo, ftype, flags, sid = struct.unpack(">BHBBI", buf[pos:pos + 9])
        n = (hi << 16) | lo
        if len(buf) - pos - 9 < n:
            break
        out.append((ftype, flags, sid & 0x7FFFFFFF, bytes(buf[pos + 9:pos + 9 + n])))
        pos += 9 + n
    return out, bytes(buf[pos:])


def goaway_of(frames):
    """(last_stream_id, error_code) of the first GOAWAY among frames, or None."""
    for ftype, _, _, p in frames:
        if ftype == GOAWAY and len(p) >= 8:
            last, code = struct.unpack(">II", p[:8])
            return last & 0x7FFFFFFF, code
    return None


def hpack_int(value, prefix_bits, first_byte_flags=0):
    """An HPACK integer (RFC 7541 §5.1) with the given prefix size."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte_flags | value])
    out = [first_byte_flags | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_str(s):
    """A raw (not Huffman) HPACK string literal."""
    if isinstance(s, str):
        s = s.encode()
    return hpack_int(len(s), 7) + s


def hpack_request(method, path, authority="127.0.0.1", extra=()):
    """A header block for a request, every field a literal without indexing
    (so it leaves the dynamic table alone): pseudo-headers and extra."""
    out = bytearray()
    for name_idx, value in ((2, method), (6, "http"), (4, path), (1, authority)):
        out += hpack_int(name_idx, 4) + hpack_str(value)  # literal w/o indexing, indexed name
    for k, v in extra:
        out += b"\x00" + hpack_str(k) + hpack_str(v)
    return bytes(out)


class RawH2(gwlib.SockConn):
    """An HTTP/2 client connection written frame by frame (for attacks that
    a conforming library would refuse to send).  Reads only when asked."""

    def __init__(self, port, settings=None, timeout=10.0, preface=True):
        self.sock = raw_conn(port, timeout)
        self.buf = b""
        self.frames = []
        self.eof = False
        if preface:
            self.sock.sendall(PREFACE + settings_frame(**(settings or {})))

    def send(self, data):
        self.sock.sendall(data)

    def pump(self, timeout):
        """Read what arrives within timeout (at most); new frames are
        appended to .frames and returned."""
        new = []
        self.sock.settimeout(max(timeout, 0.001))
        try:
            chunk = self.sock.recv(1 << 20)
        except (socket.timeout, TimeoutError, BlockingIOError):
            return new
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            return new
        new, self.buf = parse_frames(self.buf + chunk)
        self.frames += new
        return new

    def read_until(self, pred, timeout=5.0):
        """Read until pred(frame) holds for a new frame (returns it), EOF or
        timeout (returns None)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            for f in self.pump(left):
                if pred(f):
                    return f
        return None

    def read_to_eof(self, timeout=5.0):
        """Read every frame until the gateway closes (True) or timeout (False)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.pump(left)
        return True

    def ping_ack(self, timeout=10.0, data=b"attack!!"):
        """Send a PING and wait for its ACK: every frame sent before it has
        been processed.  True on ACK, False on EOF/timeout."""
        try:
            self.send(frame(PING, 0, 0, data))
        except OSError:
            self.eof = True
            return False
        return self.read_until(lambda f: f[0] == PING and f[1] & ACK and f[3] == data,
                               timeout) is not None


# The slowest YAML file the limits allow (docs/config.md: 16 MiB, 250,000
# nodes): 240,000 scalars of 60 bytes, 14.6 MB, about 0.3 s to parse (1.6 s
# under ASan) before an unknown key refuses it.
SLOW_YAML_ITEMS = 240_000


def append_slow_yaml(path):
    """Append a huge flow sequence under the unknown key `bulk` to the
    config file at path: a reload or index parses it all, then refuses it."""
    with open(path, "a") as f:
        f.write("\nbulk: [" + ",".join(["x" * 60] * SLOW_YAML_ITEMS) + "]\n")


def crash_note(g, wait=1.0):
    """"" while g runs; else "; the gateway DIED (exit N): <log tail>" for
    failure messages.  Waits up to `wait` s for a dying process to exit."""
    deadline = time.monotonic() + wait
    while g.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if g.alive():
        return ""
    return f"; the gateway DIED (exit {g.proc.returncode}): ...{g.log()[-600:]}"


def start_with_nofile(factory, name, nofile, **conf):
    """factory's gateway started with RLIMIT_NOFILE lowered to nofile."""
    import resource

    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    g = factory(name, start=False, **conf)
    popen = g.popen
    g.popen = lambda args: popen(args, preexec_fn=lower)
    g.start()
    return g


def peer_closed(sock):
    """True when the gateway has closed (FIN or reset) its end of sock,
    found without reading: poll for POLLRDHUP / POLLHUP / POLLERR."""
    import select
    p = select.poll()
    p.register(sock, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    return bool(p.poll(0))


def log_size(g):
    try:
        return g.log_path.stat().st_size
    except FileNotFoundError:
        return 0
