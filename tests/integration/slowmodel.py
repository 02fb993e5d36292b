"""Helpers for the SLO and reload integration tests (test_slo.py,
test_reload.py): a deliberately slow MLP written to a temp directory, a
gateway launcher that takes any config text, and small HTTP helpers.

Everything talks to 127.0.0.1 only; every process started here is stopped by
PID (``SlowGateway.kill``).  Builds on gwlib (reference model, h2 client,
metrics parser); conftest.py's ``Gateway`` always writes the digits config,
so the tests that need their own YAML use ``SlowGateway`` from here.
"""
import importlib.util
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

import gwlib
from gwlib import H2Client, JSON_CT, free_port, h1_request, metric  # noqa: F401 (sm.free_port)

REPO = gwlib.REPO
BINARY = gwlib.BINARY
DIGITS_DIR = gwlib.MODEL_DIR

# 64 -> 4096 (relu) -> 4096 (relu) -> 10 -> softmax: ~17 M weights (67 MB,
# memory bound): ~4 ms per batch of 1..8 rows on one core of this machine.
SLOW_DIMS = (64, 4096, 4096, 10)


def _gen_mlp():
    spec = importlib.util.spec_from_file_location("gen_mlp", REPO / "tools" / "gen_mlp.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_slow_model(out, dims=SLOW_DIMS, seed=7, max_batch=64, name="slow"):
    """Write model.yaml + model.safetensors (seeded He-scaled weights) to out.
    Returns out as a Path."""
    gen = _gen_mlp()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tensors, layers = [], []
    for i, (n_in, n_out) in enumerate(zip(dims, dims[1:])):
        w = rng.standard_normal((n_out, n_in), dtype=np.float32)
        w *= np.float32(np.sqrt(2.0 / n_in))
        b = (rng.standard_normal(n_out, dtype=np.float32) * np.float32(0.01)).astype("<f4")
        tensors += [(f"fc{i + 1}.weight", np.ascontiguousarray(w, dtype="<f4")),
                    (f"fc{i + 1}.bias", np.ascontiguousarray(b))]
        act = ", activation: relu" if i < len(dims) - 2 else ""
        layers.append(f"  - {{type: dense, weight: fc{i + 1}.weight, "
                      f"bias: fc{i + 1}.bias{act}}}")
    layers.append("  - {type: softmax}")
    gen.write_safetensors(str(out / "model.safetensors"), tensors,
                          {"source": "tests/integration/slowmodel.py", "seed": seed})
    (out / "model.yaml").write_text(
        f"# {name}: deliberately slow MLP {'-'.join(map(str, dims))} for the SLO tests\n"
        f"name: {name}\n"
        f"platform: infergw-mlp\n"
        f"version: 1\n"
        f"max_batch_size: {max_batch}\n"
        f"weights: model.safetensors\n"
        f"inputs:\n"
        f"  - {{name: input, datatype: FP32, shape: [-1, {dims[0]}]}}\n"
        f"outputs:\n"
        f"  - {{name: probabilities, datatype: FP32, shape: [-1, {dims[-1]}]}}\n"
        f"layers:\n" + "\n".join(layers) + "\n")
    return out


def copy_model(src, dst):
    """A second copy of a model directory (hard links are not used: the
    reload signature compares inodes)."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for f in Path(src).iterdir():
        if f.is_file():
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


# ----------------------------------------------------------- configs ----

def model_yaml(name, path, *, max_batch=8, max_queue_delay_us=0, max_queue=1024,
               slo_ms=None, priority=None, extra=""):
    s = (f"  - name: {name}\n"
         f"    path: {path}\n"
         f"    max_batch: {max_batch}\n"
         f"    max_queue_delay_us: {max_queue_delay_us}\n"
         f"    max_queue: {max_queue}\n")
    if slo_ms is not None:
        s += f"    slo_ms: {slo_ms}\n"
    if priority is not None:
        s += f"    priority: {priority}\n"
    return s + extra


def backend_yaml(name, models, *, workers=1, cost=1.0, threads=1, nice=None):
    return (f"  - name: {name}\n"
            f"    kind: cpu\n"
            f"    workers: {workers}\n"
            f"    threads_per_worker: {threads}\n"
            f"    cost: {cost}\n"
            + (f"    nice: {nice}\n" if nice is not None else "")
            + f"    models: [{', '.join(models)}]\n")


def config_text(models, backends, *, routing=None, reload=None, threads=2, port=8000,
                admin_port=8002, level="info", max_concurrent_streams=256):
    """A whole gateway.yaml.  models/backends: lists of model_yaml/backend_yaml
    strings; routing/reload: dicts written as flow mappings."""
    def flow(d):
        return "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"
    s = ("# written by tests/integration/slowmodel.py\n"
         f"listen:\n  address: 127.0.0.1\n  port: {port}\n  threads: {threads}\n"
         f"admin:\n  address: 127.0.0.1\n  port: {admin_port}\n"
         "limits:\n  max_body_bytes: 4194304\n  max_header_bytes: 16384\n"
         f"  max_concurrent_streams: {max_concurrent_streams}\n"
         "  idle_timeout_ms: 60000\n  shutdown_grace_ms: 5000\n"
         f"log:\n  level: {level}\n  access: false\n")
    if routing:
        s += f"routing: {flow(routing)}\n"
    if reload:
        s += f"reload: {flow(reload)}\n"
    s += "models:\n" + "".join(models) + "backends:\n" + "".join(backends)
    return s


def atomic_write(path, text):
    """Replace path with text by writing a temp file beside it and renaming."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


# ----------------------------------------------------------- gateway ----

CALIB_RE = re.compile(r"backend=(\S+) model=(\S+) batch1_us=([\d.]+) batch(\d+)_us=([\d.]+) "
                      r"msg=\"calibrated service time\"")


class SlowGateway(gwlib.GatewayProcess):
    """One infergw process on a config file we wrote; the ports it serves come
    from its listen= and admin= log lines."""

    def __init__(self, workdir, name, text=None):
        super().__init__(workdir, name)
        self.admin_token = None  # admin.token_file's token: sent by admin()
        if text is not None:
            self.config.write_text(text)

    def start(self, port="free", admin_port="free", timeout=60.0, config=None):
        """Start on config (default self.config).  port/admin_port: "free" (a
        port picked here; `--port 0` is what we would rather pass, see
        test_reload.py::test_port_zero_picks_a_free_port), an int or str
        passed as --port/--admin-port, or None (the file's value)."""
        if not BINARY.exists():
            raise AssertionError(f"{BINARY} does not exist: run `make` first")
        if config is not None:
            self.config = Path(config)
        last = ""
        for _ in range(3):  # a lost race for a free port: try again
            args = [str(BINARY), "--config", str(self.config)]
            want = free_port() if port == "free" else port
            if want is not None:
                args += ["--port", str(want)]
            want_admin = free_port() if admin_port == "free" else admin_port
            if want_admin is not None:
                args += ["--admin-port", str(want_admin)]
            ok, last = self._run(args, timeout, admin=want_admin not in (-1, "-1"))
            if ok:
                return self
            if "cannot listen" not in last:
                break
        raise AssertionError(f"gateway {self.name} not ready: {last}")

    def _run(self, args, timeout, admin):
        mark = len(self.log())
        self.popen(args)
        deadline = time.monotonic() + timeout
        last = "no listen= line"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False, (f"exited {self.proc.returncode}: {' '.join(args)}\n"
                               f"{self.log()[mark:][-3000:]}")
            log = self.log()[mark:]
            m, a = gwlib.LISTEN_RE.search(log), gwlib.ADMIN_RE.search(log)
            if m and (a or not admin):
                self.port = int(m.group(2))
                self.admin_port = int(a.group(2)) if a else None
                last = gwlib.ready_error(self.port)
                if not last:
                    return True, ""
            time.sleep(0.05)
        self.kill()
        return False, f"{last}\n{self.log()[mark:][-3000:]}"

    def sighup(self):
        self.proc.send_signal(signal.SIGHUP)

    def calibration(self):
        """{(backend, model): (batch1_us, rows, batchN_us)} from the log."""
        return {(m.group(1), m.group(2)): (float(m.group(3)), int(m.group(4)),
                                           float(m.group(5)))
                for m in CALIB_RE.finditer(self.log())}

    def print_calibration(self):
        """Print the calibrated service times (seen with pytest -s)."""
        for (b, m), (t1, n, tn) in sorted(self.calibration().items()):
            print(f"\n{self.name}: backend={b} model={m} calibrated service time: "
                  f"batch of 1 {t1:.0f} us, batch of {n} {tn:.0f} us")

    # -- HTTP ------------------------------------------------------------
    def metrics(self):
        return gwlib.read_metrics(self.admin_port, "h1")

    def admin(self, method, path, body=None, timeout=30.0):
        """(status, headers, parsed JSON or raw bytes) from the admin port."""
        hdrs = [("content-type", "application/json")] if body is not None else []
        if self.admin_token:
            hdrs.append(("authorization", f"Bearer {self.admin_token}"))
        st, h, raw = h1_request(self.admin_port, method, path, body, hdrs, timeout=timeout)
        try:
            return st, h, json.loads(raw)
        except ValueError:
            return st, h, raw

    def reload(self):
        return self.admin("POST", "/admin/reload", b"")

    def effective_config(self):
        st, _, doc = self.admin("GET", "/admin/config")
        assert st == 200, doc
        return doc

    def infer(self, model, rows, headers=(), params=None, timeout=10.0):
        """One request over HTTP/1.1: (status, headers, body bytes)."""
        doc = gwlib.infer_doc(rows)
        if params:
            doc["parameters"] = params
        return h1_request(self.port, "POST", f"/v2/models/{model}/infer",
                          json.dumps(doc).encode(),
                          [("content-type", "application/json"), *headers], timeout=timeout)


def outcomes(ms, model):
    """{(backend, outcome): count} of infergw_requests_total for model."""
    out = {}
    for (name, labels), v in ms.items():
        d = dict(labels)
        if name == "infergw_requests_total" and d.get("model") == model:
            out[(d["backend"], d["outcome"])] = v
    return out


def outcome_delta(before, after, model):
    a, b = outcomes(after, model), outcomes(before, model)
    return {k: a.get(k, 0) - b.get(k, 0) for k in set(a) | set(b)
            if a.get(k, 0) - b.get(k, 0)}


def by_outcome(delta):
    out = {}
    for (_, o), v in delta.items():
        out[o] = out.get(o, 0) + v
    return out


def by_backend(delta, outcome="success"):
    out = {}
    for (b, o), v in delta.items():
        if o == outcome:
            out[b] = out.get(b, 0) + v
    return out


def rows_total(ms, backend="cpu0"):
    return metric(ms, "infergw_backend_rows_total", backend=backend)


def wait_outcomes(gw, before, model, total, timeout=10.0):
    """Poll /metrics until the outcomes of model moved by total; return the
    last snapshot."""
    deadline = time.monotonic() + timeout
    while True:
        ms = gw.metrics()
        if sum(outcome_delta(before, ms, model).values()) >= total or \
                time.monotonic() > deadline:
            return ms
        time.sleep(0.05)


class OrderedH2(H2Client):
    """H2Client that records when (and in which order) each stream completes."""

    def __init__(self, port, timeout=30.0):
        super().__init__(port, timeout)
        self.done_order = []
        self.done_at = {}
        self.sent_at = {}
        self._open = set()
        # The server's SETTINGS and connection WINDOW_UPDATE first: until
        # then python-h2 assumes 64 KiB windows and holds bodies back.
        deadline = time.monotonic() + 5
        while not self.settings_seen:
            self._pump(deadline)

    def request(self, method, path, body=None, headers=(), flush=True):
        sid = super().request(method, path, body, headers, flush)
        self.sent_at[sid] = time.monotonic()
        self._open.add(sid)
        return sid

    def _pump(self, deadline):
        super()._pump(deadline)
        now = time.monotonic()
        for sid in sorted(s for s in self._open if self.streams[s].done):
            self._open.discard(sid)
            self.done_at[sid] = now
            self.done_order.append(sid)

    def latency(self, sid):
        return self.done_at[sid] - self.sent_at[sid]

    def queue_infer(self, model, rows, headers=(), params=None):
        """HEADERS+DATA for one request, not yet flushed to the socket."""
        doc = gwlib.infer_doc(rows)
        if params:
            doc["parameters"] = params
        return self.request("POST", f"/v2/models/{model}/infer", json.dumps(doc).encode(),
                            [JSON_CT, *headers], flush=False)

    def flush(self, timeout=10.0):
        """Send everything queued, bodies included (reading the server's
        WINDOW_UPDATEs while flow control holds some back)."""
        self._send_pending()
        self._flush()
        deadline = time.monotonic() + timeout
        while self.pending:
            self._pump(deadline)


def open_loop(port, path, body, headers, rate, duration, max_requests, grace=30.0):
    """Open-loop sender on one HTTP/2 connection: one request every 1/rate s
    for duration s (at most max_requests), then wait (at most grace s) for
    the answers.  Returns [(status, latency_s, headers, body)] in send order;
    status None for a stream the server reset."""
    c = OrderedH2(port, timeout=duration + grace)
    hdrs = [JSON_CT, *headers]
    sids = []
    try:
        t0 = time.monotonic()
        hard = t0 + duration + grace
        while True:
            now = time.monotonic()
            if len(sids) < max_requests and now - t0 < duration:
                due = t0 + len(sids) / rate
                if now >= due:
                    sids.append(c.request("POST", path, body, hdrs))
                    continue
                deadline = due
            else:
                if not c._open:
                    break
                if now > hard:
                    raise AssertionError(f"{len(c._open)} requests unanswered after "
                                         f"{grace}s")
                deadline = min(now + 0.5, hard)
            if c.eof:
                raise AssertionError("the server closed the load connection")
            try:
                c._pump(deadline)
            except TimeoutError:
                pass
        out = []
        for sid in sids:
            r = c.streams[sid]
            out.append((r.status if r.reset is None else None, c.latency(sid), r.headers,
                        bytes(r.body)))
        return out
    finally:
        c.close()


H2_REQ_RE = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                       r"(\d+) failed, (\d+) errored, (\d+) timeout")
H2_CODES_RE = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")


def run_h2load(args, timeout):
    """Run h2load (bounded by -n and timeout); (req, codes, text)."""
    out = subprocess.run(["h2load", *map(str, args)], capture_output=True, text=True,
                         timeout=timeout)
    text = out.stdout + out.stderr
    req, codes = parse_h2load(text)
    return req, codes, text


def parse_h2load(text):
    m, c = H2_REQ_RE.search(text), H2_CODES_RE.search(text)
    assert m and c, f"h2load output not understood:\n{text[-3000:]}"
    req = dict(zip(["total", "started", "done", "succeeded", "failed", "errored",
                    "timeout"], map(int, m.groups())))
    codes = dict(zip(["2xx", "3xx", "4xx", "5xx"], map(int, c.groups())))
    return req, codes


def read_h2load_log(path):
    """[(start_us, status, duration_us)] from h2load --log-file."""
    out = []
    for line in Path(path).read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            out.append((int(parts[0]), int(parts[1]), int(parts[2])))
    return out


class Thread(threading.Thread):
    """A thread whose exception is re-raised by join()."""

    def __init__(self, fn, *a, **kw):
        super().__init__(daemon=True)
        self.fn, self.a, self.kw = fn, a, kw
        self.exc = None
        self.result = None

    def run(self):
        try:
            self.result = self.fn(*self.a, **self.kw)
        except BaseException as e:  # noqa: BLE001 - handed to join()
            self.exc = e

    def join(self, timeout=None):
        super().join(timeout)
        if self.is_alive():
            raise AssertionError(f"thread {self.fn.__name__} still running after {timeout}s")
        if self.exc:
            raise self.exc
        return self.result


def ref_forward(model_dir, rows):
    """float64 reference of any model directory (gwlib.RefModel on model_dir)."""
    meta = gwlib.read_model_yaml(Path(model_dir) / "model.yaml")
    w = gwlib.read_safetensors(Path(model_dir) / meta.get("weights", "model.safetensors"))
    return gwlib.RefModel(meta, w).forward(rows)
