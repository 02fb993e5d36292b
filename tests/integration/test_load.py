"""Bounded h2load runs (requests and seconds) against 127.0.0.1 only.  No
timed assertions: the time is printed, the counts are asserted."""
import re
import subprocess
import threading
import time

import numpy as np

import gwlib
from gwlib import INFER, H2Client, check_infer_response, infer_body, metric

REQ_RE = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored")
CODES_RE = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")


def h2load(args, timeout):
    t0 = time.monotonic()
    out = subprocess.run(["h2load", *args], capture_output=True, text=True, timeout=timeout)
    took = time.monotonic() - t0
    text = out.stdout + out.stderr
    m = REQ_RE.search(text)
    c = CODES_RE.search(text)
    assert m and c, f"h2load output not understood (rc {out.returncode}):\n{text[-3000:]}"
    req = dict(zip(["total", "started", "done", "succeeded", "failed", "errored"],
                   map(int, m.groups())))
    codes = dict(zip(["2xx", "3xx", "4xx", "5xx"], map(int, c.groups())))
    fin = re.search(r"finished in [^\n]*", text)
    print(f"\nh2load {' '.join(args[:-1])} ...: {took:.2f}s wall; "
          f"{fin.group(0) if fin else ''}")
    return req, codes, text


def _assert_all_ok(req, codes, n, text):
    assert req == {"total": n, "started": n, "done": n, "succeeded": n, "failed": 0,
                   "errored": 0}, text[-2000:]
    assert codes == {"2xx": n, "3xx": 0, "4xx": 0, "5xx": 0}, text[-2000:]


def _rows(ms):
    return metric(ms, "infergw_backend_rows_total", backend="cpu0")


def _batches(ms):
    return metric(ms, "infergw_backend_batches_total", backend="cpu0")


def test_h2load_infer_20000(gw, model, heldout, tmp_path):
    x, _ = heldout
    body = tmp_path / "one.json"
    body.write_bytes(infer_body(x[:1]))
    n = 20000
    before = gwlib.settled_metrics(gw.metrics_port, "h2", via="h1")
    req, codes, text = h2load(["-n", str(n), "-c", "16", "-m", "16",
                               "-H", "content-type: application/json", "-d", str(body),
                               f"http://127.0.0.1:{gw.port}{INFER}"], timeout=120)
    _assert_all_ok(req, codes, n, text)
    h2_200 = gwlib.metric(before, "infergw_http_responses_total", proto="h2", code="200")
    after = gwlib.wait_metrics(gw.metrics_port, [(("infergw_http_responses_total",
                                           {"proto": "h2", "code": "200"}), h2_200 + n)])
    assert metric(after, "infergw_http_responses_total", proto="h2", code="200") - h2_200 == n
    rows = _rows(after) - _rows(before)
    batches = _batches(after) - _batches(before)
    print(f"rows {rows:.0f} in {batches:.0f} batches ({rows / max(batches, 1):.1f} rows/batch)")
    assert rows == n, f"backend rows moved by {rows}, expected {n} (one row per request)"
    # The batch-size histogram of (cpu0, digits) saw exactly the batches the
    # backend counted, their rows sum to n, and none is over max_batch (64):
    # so at least n / 64 of them.
    hist = {k: _hist(after, k) - _hist(before, k) for k in ("count", "sum", "64", "+Inf")}
    assert hist["count"] == batches, (hist, batches)
    assert hist["sum"] == n, hist
    assert hist["64"] == hist["+Inf"] == batches, f"a batch over max_batch 64: {hist}"
    assert batches >= -(-n // 64), f"{n} rows in {batches} batches of at most 64"
    assert gw.alive()


def _hist(ms, key):
    """infergw_batch_rows of (cpu0, digits): _count, _sum or the bucket le=key."""
    if key in ("count", "sum"):
        return metric(ms, f"infergw_batch_rows_{key}", backend="cpu0", model="digits")
    return metric(ms, "infergw_batch_rows_bucket", backend="cpu0", model="digits", le=key)


def test_h2load_health(gw):
    n = 5000
    req, codes, text = h2load(["-n", str(n), "-c", "4", "-m", "8",
                               f"http://127.0.0.1:{gw.port}/v2/health/live"], timeout=30)
    _assert_all_ok(req, codes, n, text)


def test_h2load_http1_infer(gw, heldout, tmp_path):
    x, _ = heldout
    body = tmp_path / "three.json"
    body.write_bytes(infer_body(x[:3]))
    n = 4000
    before = gwlib.settled_metrics(gw.metrics_port, "http/1.1", via="h2")
    req, codes, text = h2load(["--h1", "-n", str(n), "-c", "8",
                               "-H", "content-type: application/json", "-d", str(body),
                               f"http://127.0.0.1:{gw.port}{INFER}"], timeout=60)
    _assert_all_ok(req, codes, n, text)
    after = gwlib.wait_metrics(gw.metrics_port, [(("infergw_backend_rows_total",
                                           {"backend": "cpu0"}), _rows(before) + 3 * n)],
                               via="h2")
    assert _rows(after) - _rows(before) == 3 * n


def test_values_correct_while_batched_with_load(gw, model, heldout, tmp_path):
    """While h2load keeps the batcher full of one request shape, our own
    requests of varied sizes (batched together with h2load's rows) still get
    exactly their own rows' answers."""
    x, _ = heldout
    body = tmp_path / "bg.json"
    body.write_bytes(infer_body(x[300:302]))
    n_bg = 20000
    result = {}

    def bg():
        result["r"] = h2load(["-n", str(n_bg), "-c", "4", "-m", "16",
                              "-H", "content-type: application/json", "-d", str(body),
                              f"http://127.0.0.1:{gw.port}{INFER}"], timeout=60)

    t = threading.Thread(target=bg)
    t.start()
    try:
        rng = np.random.default_rng(1)
        deadline = time.monotonic() + 20
        checked = 0
        with H2Client(gw.port, timeout=30) as c:
            for rnd in range(8):
                if time.monotonic() > deadline:
                    break
                plan = []
                for k in range(24):
                    lo = int(rng.integers(0, len(x) - 8))
                    n = int(rng.integers(1, 8))
                    plan.append((lo, n, f"{rnd}-{k}", c.infer(x[lo:lo + n], id=f"{rnd}-{k}")))
                c.wait([p[3] for p in plan])
                for lo, n, rid, sid in plan:
                    r = c.streams[sid]
                    assert r.status == 200, r
                    check_infer_response(bytes(r.body), model, x[lo:lo + n], id=rid)
                    checked += 1
        print(f"checked {checked} responses under load")
    finally:
        t.join(timeout=90)
    assert not t.is_alive()
    req, codes, text = result["r"]
    _assert_all_ok(req, codes, n_bg, text)
