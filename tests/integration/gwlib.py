"""Helpers for the infergw integration tests: a numpy reference model, a raw
HTTP/1.1 connection, a multiplexing HTTP/2 client built on python3-h2, a
Prometheus text parser, curl, and the process handling both gateway
launchers (conftest.Gateway, slowmodel.SlowGateway) share.  Only 127.0.0.1
is ever contacted."""
import json
import os
import re
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import numpy as np

import h2.config
import h2.connection
import h2.events
import h2.exceptions

REPO = Path(__file__).resolve().parents[2]
# The gateway binary every launcher runs; INFERGW_BIN runs the suites against
# another build (build-asan/infergw, build-tsan/infergw).
BINARY = Path(os.environ.get("INFERGW_BIN", str(REPO / "build" / "infergw")))
MODEL_DIR = REPO / "config" / "models" / "digits"
HOST = "127.0.0.1"
INFER = "/v2/models/digits/infer"
JSON_CT = ("content-type", "application/json")

# ---------------------------------------------------------------- model ----

_ST_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4",
              "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}


def read_safetensors(path):
    raw = Path(path).read_bytes()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen])
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        arr = np.frombuffer(raw[base + a:base + b], dtype=_ST_DTYPES[info["dtype"]])
        out[name] = arr.reshape(info["shape"]).copy()
    return out


def _flow_map(text):
    """Parse a one-line YAML flow mapping such as {type: dense, weight: w}."""
    text = text.strip()
    assert text.startswith("{") and text.endswith("}"), text
    out = {}
    for item in text[1:-1].split(","):
        if item.strip():
            k, v = item.split(":", 1)
            out[k.strip()] = v.strip().strip("'\"")
    return out


def read_model_yaml(path):
    """The few keys of model.yaml the tests need, without a YAML dependency."""
    meta = {"layers": []}
    in_layers = False
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line.startswith(" "):
            in_layers = line.startswith("layers:")
            m = re.match(r"(\w+):\s*(\S.*)?$", line)
            if m and m.group(2):
                meta[m.group(1)] = m.group(2).strip()
            continue
        if in_layers:
            m = re.match(r"\s*-\s*(\{.*\})\s*$", line)
            assert m, f"unexpected layers line in model.yaml: {line!r}"
            meta["layers"].append(_flow_map(m.group(1)))
    assert meta["layers"], "model.yaml: no layers parsed"
    return meta


class RefModel:
    """float64 forward pass of model.yaml's layers over model.safetensors."""

    def __init__(self, meta, weights):
        self.meta = meta
        self.weights = weights
        self.max_batch_size = int(meta["max_batch_size"])

    @classmethod
    def load(cls):
        meta = read_model_yaml(MODEL_DIR / "model.yaml")
        weights = read_safetensors(MODEL_DIR / meta.get("weights", "model.safetensors"))
        return cls(meta, weights)

    def forward(self, x):
        h = np.asarray(x, dtype=np.float64).reshape(-1, 64)
        for layer in self.meta["layers"]:
            kind = layer["type"]
            if kind == "dense":
                w = self.weights[layer["weight"]].astype(np.float64)
                h = h @ w.T
                if layer.get("bias"):
                    h = h + self.weights[layer["bias"]].astype(np.float64)
                act = layer.get("activation", "none")
                if act == "relu":
                    h = np.maximum(h, 0.0)
                else:
                    assert act in ("none", "linear", ""), f"unknown activation {act}"
            elif kind == "softmax":
                e = np.exp(h - h.max(axis=1, keepdims=True))
                h = e / e.sum(axis=1, keepdims=True)
            else:
                raise AssertionError(f"reference model: unknown layer type {kind}")
        return h


def infer_doc(rows, *, id=None, nested=False, outputs=True, datatype="FP32"):
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 64)
    data = rows.tolist() if nested else rows.reshape(-1).tolist()
    doc = {}
    if id is not None:
        doc["id"] = id
    doc["inputs"] = [{"name": "input", "datatype": datatype,
                      "shape": [int(rows.shape[0]), 64], "data": data}]
    if outputs:
        doc["outputs"] = [{"name": "probabilities"}]
    return doc


def infer_body(rows, **kw):
    return json.dumps(infer_doc(rows, **kw)).encode()


def check_infer_doc(doc, n, *, id=None):
    """Assert the parts of a digits infer answer that do not depend on its
    encoding (model, version, id, one FP32 [n, 10] output); return the output."""
    assert doc["model_name"] == "digits", doc
    assert doc["model_version"] == "1", doc
    if id is None:
        assert "id" not in doc, doc
    else:
        assert doc["id"] == id, doc
    assert len(doc["outputs"]) == 1, doc
    out = doc["outputs"][0]
    assert out["name"] == "probabilities", out
    assert out["datatype"] == "FP32", out
    assert list(out["shape"]) == [n, 10], out
    return out


def check_error_response(cid, status, hdrs, body, exp_status, subs, exp_hdrs=()):
    """Assert an error answer: exp_status, a JSON body that is exactly
    {"error": ...} containing every string in subs, and the (name, value)
    pairs of exp_hdrs among the headers.  cid names the case in messages."""
    body = bytes(body)
    assert status == exp_status, (cid, status, body[:300])
    assert hdrs.get("content-type", "").startswith("application/json"), (cid, hdrs)
    doc = json.loads(body)
    assert set(doc) == {"error"}, (cid, doc)
    for s in subs:
        assert s in doc["error"], (cid, "expected", s, "got", doc["error"])
    for k, v in dict(exp_hdrs).items():
        assert hdrs.get(k) == v, (cid, k, hdrs)


def assert_error(status, body, exp_status, word):
    """status is exp_status and the body's JSON "error" message contains word."""
    assert status == exp_status, (status, body)
    assert word in json.loads(body)["error"]


def check_infer_response(body, model, rows, *, id=None, rtol=1e-5, atol=1e-6):
    """Assert a 200 infer body's values against the reference; return probs."""
    doc = json.loads(body) if isinstance(body, (bytes, str)) else body
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 64)
    n = rows.shape[0]
    out = check_infer_doc(doc, n, id=id)
    got = np.asarray(out["data"], dtype=np.float64)
    assert got.shape == (n * 10,), f"expected {n * 10} values, got {got.shape}"
    got = got.reshape(n, 10)
    np.testing.assert_allclose(got.sum(axis=1), np.ones(n), rtol=0, atol=1e-5)
    np.testing.assert_allclose(got, model.forward(rows), rtol=rtol, atol=atol)
    return got


# ------------------------------------------------------------- metrics ----

_METRIC_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset(labels.items())): float}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC_RE.match(line)
        assert m, f"unparsable metrics line: {line!r}"
        labels = frozenset(_LABEL_RE.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(ms, name, **labels):
    return ms.get((name, frozenset(labels.items())), 0.0)


# ------------------------------------------------------------- HTTP/1.1 ----

class SockConn:
    """A test connection over self.sock (set by the subclass): close()
    closes it, an OSError from a socket already gone aside; a `with`
    block closes it at its end."""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class H1Conn(SockConn):
    """A raw HTTP/1.1 client connection: send bytes, read responses in order.
    With ssl_context, over TLS (tests/integration/tlslib.py)."""

    def __init__(self, port, timeout=10.0, ssl_context=None):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        if ssl_context is not None:
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname=HOST)
        self.buf = b""
        self.port = port

    def send(self, data):
        self.sock.sendall(data)

    @staticmethod
    def build(method, path, body=None, headers=(), port=0, version="HTTP/1.1"):
        lines = [f"{method} {path} {version}", f"Host: {HOST}:{port}"]
        names = {k.lower() for k, _ in headers}
        for k, v in headers:
            lines.append(f"{k}: {v}")
        if body is not None and "content-length" not in names and \
                "transfer-encoding" not in names:
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")

    def request(self, method, path, body=None, headers=()):
        self.send(self.build(method, path, body, headers, self.port))
        return self.read_response()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by server")
        self.buf += chunk

    def _read_until(self, sep):
        while sep not in self.buf:
            self._fill()
        i = self.buf.index(sep)
        out, self.buf = self.buf[:i], self.buf[i + len(sep):]
        return out

    def _read_n(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, interim=False, head=False):
        """(status, headers{lower: value}, body).  1xx responses are skipped
        unless interim=True, in which case a 1xx is returned as it is."""
        while True:
            head_raw = self._read_until(b"\r\n\r\n").decode("latin-1")
            lines = head_raw.split("\r\n")
            m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
            assert m, f"bad status line {lines[0]!r}"
            status = int(m.group(1))
            hdrs = {}
            for ln in lines[1:]:
                k, v = ln.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
            if 100 <= status < 200:
                if interim:
                    return status, hdrs, b""
                continue
            break
        if head or status in (204, 304):
            return status, hdrs, b""
        if "chunked" in hdrs.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int(self._read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self._read_until(b"\r\n")  # no trailers expected
                    break
                body += self._read_n(size)
                self._read_n(2)
            return status, hdrs, body
        if "content-length" in hdrs:
            return status, hdrs, self._read_n(int(hdrs["content-length"]))
        # neither: body runs to EOF
        body = self.buf
        self.buf = b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, hdrs, body

    def at_eof(self, timeout=5.0):
        """True when the server closes the connection within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True


def h1_request(port, method, path, body=None, headers=(), timeout=10.0, ssl_context=None):
    c = H1Conn(port, timeout, ssl_context)
    try:
        return c.request(method, path, body, headers)
    finally:
        c.close()


# --------------------------------------------------------------- HTTP/2 ----

class H2Resp:
    def __init__(self):
        self.status = None
        self.headers = {}
        self.body = bytearray()
        self.ended = False
        self.reset = None  # error code when the server reset the stream
        self.trailers = {}  # trailing HEADERS (gRPC's grpc-status)

    @property
    def done(self):
        return self.ended or self.reset is not None

    def json(self):
        return json.loads(bytes(self.body))

    def __repr__(self):
        return (f"<H2Resp status={self.status} ended={self.ended} reset={self.reset} "
                f"body={bytes(self.body)[:200]!r}>")


class H2Client(SockConn):
    """Prior-knowledge h2c over one socket, many concurrent streams; with
    ssl_context, h2 over TLS (the context offers ALPN h2)."""

    def __init__(self, port, timeout=15.0, ssl_context=None):
        self.port = port
        self.timeout = timeout
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.scheme = "http"
        if ssl_context is not None:
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname=HOST)
            self.scheme = "https"
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        # python-h2 treats any GOAWAY as the end of the connection and refuses
        # the frames that follow it, but a graceful GOAWAY (RFC 9113 6.8)
        # still lets streams up to last_stream_id finish: keep the connection
        # state machine open (h2 still reports ConnectionTerminated).
        sm = self.conn.state_machine
        orig = sm.process_input

        def process_input(inp, _orig=orig):
            if inp is h2.connection.ConnectionInputs.RECV_GOAWAY:
                return []
            return _orig(inp)
        sm.process_input = process_input
        self.streams = {}
        self.pending = {}
        self.cancelled = set()
        self.goaway = None
        self.eof = False
        self.settings_seen = False
        self._flush()

    def _flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method, path, body=None, headers=(), flush=True):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", self.scheme),
                (":authority", f"{HOST}:{self.port}"), (":path", path)]
        hdrs += list(headers)
        if body is not None:
            hdrs.append(("content-length", str(len(body))))
        self.conn.send_headers(sid, hdrs, end_stream=body is None)
        self.streams[sid] = H2Resp()
        if body is not None:
            self.pending[sid] = memoryview(body)
            self._send_pending()
        if flush:
            self._flush()
        return sid

    def infer(self, rows, path=INFER, **kw):
        return self.request("POST", path, infer_body(rows, **kw), [JSON_CT])

    def reset(self, sid):
        self.conn.reset_stream(sid, error_code=8)  # CANCEL
        self.cancelled.add(sid)
        self.pending.pop(sid, None)
        self._flush()

    def _send_pending(self):
        for sid in list(self.pending):
            data = self.pending[sid]
            try:
                while data:
                    win = min(self.conn.local_flow_control_window(sid),
                              self.conn.max_outbound_frame_size)
                    if win <= 0:
                        break
                    self.conn.send_data(sid, bytes(data[:win]))
                    data = data[win:]
                if data:
                    self.pending[sid] = data
                else:
                    self.conn.end_stream(sid)
                    del self.pending[sid]
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                # the server answered (e.g. 413) and closed the stream early
                del self.pending[sid]

    def _pump(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("HTTP/2 client: timed out waiting for the server")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            raise TimeoutError("HTTP/2 client: timed out waiting for the server")
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return
        for ev in self.conn.receive_data(data):
            sid = getattr(ev, "stream_id", None)
            r = self.streams.get(sid)
            if isinstance(ev, h2.events.ResponseReceived):
                hd = dict(ev.headers)
                r.status = int(hd.pop(":status"))
                r.headers = hd
            elif isinstance(ev, h2.events.InformationalResponseReceived):
                pass
            elif isinstance(ev, h2.events.TrailersReceived):
                if r is not None:
                    r.trailers = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                if r is not None:
                    r.body += ev.data
                try:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                except h2.exceptions.StreamClosedError:
                    pass
            elif isinstance(ev, h2.events.StreamEnded):
                if r is not None:
                    r.ended = True
            elif isinstance(ev, h2.events.StreamReset):
                if r is not None:
                    r.reset = ev.error_code
                self.pending.pop(sid, None)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = ev
            elif isinstance(ev, h2.events.RemoteSettingsChanged):
                self.settings_seen = True
        self._send_pending()
        self._flush()

    def wait(self, sids=None, timeout=None):
        """Read until every stream in sids (default: all not cancelled) is done."""
        if sids is None:
            sids = [s for s in self.streams if s not in self.cancelled]
        deadline = time.monotonic() + (timeout or self.timeout)
        while not all(self.streams[s].done for s in sids):
            if self.eof:
                missing = [s for s in sids if not self.streams[s].done]
                raise ConnectionError(f"connection closed; streams {missing} unanswered "
                                      f"(goaway={self.goaway})")
            self._pump(deadline)
        return [self.streams[s] for s in sids]

    def wait_eof(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not self.eof:
            self._pump(deadline)

    def get(self, path):
        sid = self.request("GET", path)
        return self.wait([sid])[0]

    def post(self, path, body, headers=(JSON_CT,)):
        sid = self.request("POST", path, body, list(headers))
        return self.wait([sid])[0]


# -------------------------------------------------- metrics over the wire ----

def read_metrics(port, via="h1"):
    """GET /metrics over HTTP/1.1 or HTTP/2 (pick the protocol whose counters
    the caller is NOT measuring)."""
    if via == "h1":
        st, _, body = h1_request(port, "GET", "/metrics")
    else:
        with H2Client(port) as c:
            r = c.get("/metrics")
        st, body = r.status, bytes(r.body)
    assert st == 200, body
    return parse_metrics(body.decode())


def response_codes(ms, proto):
    out = {}
    for (name, labels), v in ms.items():
        d = dict(labels)
        if name == "infergw_http_responses_total" and d.get("proto") == proto:
            out[d["code"]] = v
    return out


def settled_metrics(port, proto, via):
    """A baseline: responses from earlier tests may be counted a moment after
    they were written, so read until two reads agree on proto's counters."""
    prev = read_metrics(port, via)
    for _ in range(50):
        time.sleep(0.02)
        cur = read_metrics(port, via)
        if response_codes(cur, proto) == response_codes(prev, proto):
            return cur
        prev = cur
    return prev


def wait_metrics(port, want, via="h1", timeout=5.0):
    """Poll until every ((name, labels), value) in want is reached; return
    the last snapshot (the caller asserts exact values)."""
    deadline = time.monotonic() + timeout
    while True:
        ms = read_metrics(port, via)
        if all(metric(ms, n, **l) >= v for (n, l), v in want) or \
                time.monotonic() > deadline:
            return ms
        time.sleep(0.05)


def assert_codes_moved(port, before, proto, caused, via, *, others=True):
    """Wait until proto's infergw_http_responses_total counters reach the
    snapshot before plus caused ({code: n}), then assert they moved by
    exactly caused; with others=False the codes not in caused are not
    checked.  via: the protocol /metrics is read over (not proto)."""
    b = response_codes(before, proto)
    want = [(("infergw_http_responses_total", {"proto": proto, "code": k}), b.get(k, 0) + v)
            for k, v in caused.items()]
    a = response_codes(wait_metrics(port, want, via), proto)
    codes = set(a) | set(b) if others else set(caused)
    delta = {k: a.get(k, 0) - b.get(k, 0) for k in codes}
    delta = {k: v for k, v in delta.items() if v or k in caused}
    assert delta == caused, f"{proto} response counters moved by {delta}, we caused {caused}"


# ----------------------------------------------------------------- curl ----

def curl(*args, max_time=20, timeout=30):
    """Run curl -s with args (bounded by --max-time and timeout);
    (status code, HTTP version such as "1.1" or "2", body bytes, stderr)."""
    out = subprocess.run(["curl", "-s", "--max-time", str(max_time),
                          "-w", "\n%{http_code} %{http_version}", *args],
                         capture_output=True, timeout=timeout)
    body, _, tail = out.stdout.rpartition(b"\n")
    code, ver = tail.decode().split()
    return int(code), ver, body, out.stderr.decode()


# -------------------------------------------------------- gateway process ----

# The lines a gateway logs once it listens: listen=ADDR:PORT, admin=ADDR:PORT.
LISTEN_RE = re.compile(r"\blisten=(\S+):(\d+)\b")
ADMIN_RE = re.compile(r"\badmin=(\S+):(\d+)\b")


def free_port():
    """A TCP port nobody listens on at 127.0.0.1 right now (another process
    may take it before the gateway binds it: launchers retry on that)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ready_error(port, ssl_context=None):
    """What keeps GET /v2/health/ready on port from answering 200 ("" when
    it does); over TLS with ssl_context."""
    try:
        st, _, body = h1_request(port, "GET", "/v2/health/ready", timeout=2,
                                 ssl_context=ssl_context)
    except (OSError, ConnectionError) as e:
        return f"ready: {e}"
    return "" if st == 200 else f"ready returned {st} {body!r}"


# How long kill() waits after SIGTERM before SIGKILL (sanitizer runs set more).
STOP_GRACE_S = float(os.environ.get("INFERGW_STOP_GRACE_S", "10"))
# Written to a gateway's log when it did not exit by itself (see kill()).
UNCLEAN_EXIT = "gwlib: unclean exit:"


class GatewayProcess:
    """One gateway process writing its stdout/stderr to WORKDIR/NAME.stderr,
    configured by WORKDIR/NAME.yaml: how it is spawned, read and stopped (by
    PID).  Subclasses decide the command line and when it is ready."""

    def __init__(self, workdir, name):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.config = self.workdir / f"{name}.yaml"
        self.log_path = self.workdir / f"{name}.stderr"
        self.proc = None
        self.port = None
        self.admin_port = None

    def popen(self, args, preexec_fn=None):
        """Start args, output appended to the log (preexec_fn as for
        subprocess.Popen, e.g. to lower a resource limit).  The binary may
        be being relinked by a concurrent `make` (ETXTBSY / EACCES for a
        moment): retry for up to 10 s."""
        deadline = time.monotonic() + 10
        while True:
            try:
                with open(self.log_path, "ab") as logf:
                    self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf,
                                                 stderr=logf, cwd=str(self.workdir),
                                                 preexec_fn=preexec_fn)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def log(self):
        """Everything the process wrote so far ("" before it started)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """Stop the process we started (by PID): SIGTERM, SIGKILL after
        STOP_GRACE_S.  A process that did not exit through its own exit path
        (SIGKILLed here, or dead of any signal) gets an UNCLEAN_EXIT line in
        its log: sanitizer builds only check for leaks at exit, so
        tests/run_all.sh counts that line as a failure."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        rc = self.proc.returncode
        if rc < 0 and not getattr(self.proc, "unclean_noted", False):
            self.proc.unclean_noted = True
            with open(self.log_path, "a") as logf:
                logf.write(f"{UNCLEAN_EXIT} pid={self.proc.pid} signal={-rc} "
                           f"({signal.strsignal(-rc)})\n")

    @property
    def base(self):
        return f"http://{HOST}:{self.port}"
