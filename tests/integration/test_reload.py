"""Hot reload and the admin API: a reload storm under load, carry-over of
unchanged models and backends, rejected files, restart_required, the file
watcher (plain rename and a ConfigMap ..data swap), drain and the model
repository.

Each test runs its own gateway on 127.0.0.1 (stopped by PID); every load is
bounded in requests and seconds.  Config files are replaced atomically
(write a temp file beside, rename)."""
import json
import os
import re
import subprocess
import time

import numpy as np
import pytest

import gwlib
import slowmodel as sm
from gwlib import H2Client, check_infer_response, infer_body, metric

DIGITS = sm.DIGITS_DIR
INFER = gwlib.INFER


def digits_config(*, path=DIGITS, max_batch=32, max_queue_delay_us=0, slo_ms=None,
                  backends=(("cpu0", 1.0),), extra_models=(), policy=None, reload=None,
                  port=8000, threads=2):
    models = [sm.model_yaml("digits", path, max_batch=max_batch,
                            max_queue_delay_us=max_queue_delay_us, slo_ms=slo_ms)]
    names = ["digits"]
    for name, p in extra_models:
        models.append(sm.model_yaml(name, p, max_batch=max_batch))
        names.append(name)
    bes = [sm.backend_yaml(b, names, cost=cost) for b, cost in backends]
    return sm.config_text(models, bes, routing={"policy": policy} if policy else None,
                          reload=reload, port=port, threads=threads)


def reloads(ms, result="success"):
    return metric(ms, "infergw_config_reload_total", result=result)


def wait_reloads(g, n, result="success", timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        ms = g.metrics()
        if reloads(ms, result) >= n or time.monotonic() > deadline:
            return ms
        time.sleep(0.02)


def infer_ok(g, model, rows):
    st, _, body = h1_request_infer(g, "digits", rows)
    assert st == 200, body
    check_infer_response(body, model, rows)


def h1_request_infer(g, name, rows, path=None):
    return gwlib.h1_request(g.port, "POST", path or f"/v2/models/{name}/infer",
                            infer_body(rows), [("content-type", "application/json")])


# ------------------------------------------------------------------ 1 ----

def test_reload_storm_under_load(start_gw, tmp_path, model, heldout):
    """h2load (20000 requests, -c 8 -m 8) runs while the config is reloaded 50
    times (POST /admin/reload, every fifth by SIGHUP), alternating files that
    change batching, add and remove a backend (round-robin while it is
    there) and change slo_ms; after every reload 4 spot checks get the right
    values.  Counted, never timed: every request is answered 200 exactly
    once, the reload counter moves by exactly 50, the outcome counters by
    exactly the requests sent, and cpu1 serves while it is there."""
    x, _ = heldout
    files = {
        "base": digits_config(),
        "batching": digits_config(max_batch=8, max_queue_delay_us=300),
        "cpu1": digits_config(backends=(("cpu0", 1.0), ("cpu1", 2.0)), policy="round-robin"),
        "slo": digits_config(slo_ms=2000),
    }
    cycle = ["batching", "cpu1", "base", "slo", "cpu1", "batching", "base"]
    g = start_gw("storm", files["base"])
    sample = x[:4]
    st, _, ref_body = h1_request_infer(g, "digits", sample)
    assert st == 200, ref_body
    ref = check_infer_response(ref_body, model, sample)
    body = tmp_path / "one.json"
    body.write_bytes(infer_body(x[:1]))
    before = g.metrics()

    n, clients, rps, n_checks = 20000, 8, 300, 4
    load = subprocess.Popen(
        ["h2load", "-n", str(n), "-c", str(clients), "-m", "8", "-t", "1", f"--rps={rps}",
         "-H", "content-type: application/json", "-d", str(body), f"{g.base}{INFER}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    answers, checks, hups = [], 0, 0
    try:
        # Under load: the first reload waits until /metrics shows h2load's answers.
        ms = sm.wait_outcomes(g, before, "digits", 200, timeout=30)
        assert sum(sm.outcome_delta(before, ms, "digits").values()) >= 200, "h2load not running"
        with H2Client(g.port, timeout=30) as c:
            for i in range(50):
                kind = cycle[i % len(cycle)]
                sm.atomic_write(g.config, files[kind])
                if i % 5 == 4:  # every fifth by SIGHUP
                    done = reloads(g.metrics())
                    g.sighup()
                    hups += 1
                    ms = wait_reloads(g, done + 1)
                    assert reloads(ms) == done + 1, f"SIGHUP #{hups} did not reload"
                else:
                    st, _, doc = g.reload()
                    assert st == 200 and doc["result"] == "success", (kind, st, doc)
                    answers.append((kind, doc))
                for _ in range(n_checks):
                    r = c.post(INFER, infer_body(sample))
                    assert r.status == 200, (kind, r)
                    got = check_infer_response(bytes(r.body), model, sample)
                    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
                    checks += 1
        text, _ = load.communicate(timeout=120)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    req, codes = sm.parse_h2load(text)
    print(f"\nh2load: {text[text.find('finished'):].splitlines()[0]}; "
          f"{len(answers)} POST reloads + {hups} SIGHUP; {checks} spot checks")
    assert req["done"] == n and req["succeeded"] == n, text[-2000:]
    assert req["failed"] == 0 and req["errored"] == 0 and req["timeout"] == 0, text[-2000:]
    assert codes == {"2xx": n, "3xx": 0, "4xx": 0, "5xx": 0}, text[-2000:]
    assert checks == 50 * n_checks and hups == 10 and len(answers) == 40
    after = wait_reloads(g, reloads(before) + 50)
    assert reloads(after) - reloads(before) == 50
    assert reloads(after, "failure") == reloads(before, "failure")
    # What each answer says it did.
    for kind, doc in answers:
        assert doc["models_carried"] == ["digits"] and doc["models_loaded"] == [], doc
        assert "cpu0" in doc["backends_carried"], doc
        assert doc["restart_required"] is None, doc
    opened = [doc for kind, doc in answers if kind == "cpu1" and doc["backends_opened"]]
    assert opened and all(d["backends_opened"] == ["cpu1"] for d in opened), answers
    # Every request is counted once, as a success on cpu0 or cpu1.
    total = n + checks
    ms = sm.wait_outcomes(g, before, "digits", total)
    delta = sm.outcome_delta(before, ms, "digits")
    assert sm.by_outcome(delta) == {"success": total}, delta
    assert set(sm.by_backend(delta)) <= {"cpu0", "cpu1"}, delta
    print(f"successes by backend: {sm.by_backend(delta)}")
    # Round-robin while cpu1 is there: the spot checks after each of its 14
    # reloads alternate with everything else, so cpu1 takes some.
    assert sm.by_backend(delta).get("cpu1", 0) > 0, delta
    # Rows executed, from the per-(backend, model) series that outlive cpu1:
    # one per h2load request, four per spot check.
    rows = sum(metric(ms, "infergw_batch_rows_sum", backend=b, model="digits") -
               metric(before, "infergw_batch_rows_sum", backend=b, model="digits")
               for b in ("cpu0", "cpu1"))
    assert rows == n + 4 * checks, rows
    assert g.alive()


# ------------------------------------------------------------------ 2 ----

def test_carry_over(start_gw, tmp_path, model, heldout):
    x, _ = heldout
    mdir = sm.copy_model(DIGITS, tmp_path / "digits-copy")
    g = start_gw("carry", digits_config(path=mdir))

    t0 = time.monotonic()
    st, _, doc = g.reload()  # unchanged file
    wall_ms = (time.monotonic() - t0) * 1000
    assert st == 200, doc
    assert doc["result"] == "success"
    # The gateway's own measure lies within ours around the call.
    assert 0 < doc["duration_ms"] <= wall_ms, (doc["duration_ms"], wall_ms)
    assert doc["models_carried"] == ["digits"] and doc["models_loaded"] == [], doc
    assert doc["backends_carried"] == ["cpu0"] and doc["backends_opened"] == [], doc
    assert doc["restart_required"] is None
    assert isinstance(doc["generation"], int), doc
    gen = doc["generation"]

    # Batching and cost only: still carried, new values in effect.
    sm.atomic_write(g.config, digits_config(path=mdir, max_batch=8, max_queue_delay_us=100,
                                            backends=(("cpu0", 3.5),)))
    st, _, doc = g.reload()
    assert st == 200, doc
    assert doc["models_carried"] == ["digits"] and doc["models_loaded"] == [], doc
    assert doc["backends_carried"] == ["cpu0"] and doc["backends_opened"] == [], doc
    assert doc["generation"] > gen
    eff = g.effective_config()
    assert eff["models"][0]["max_batch"] == 8 and eff["models"][0]["max_queue_delay_us"] == 100
    assert eff["backends"][0]["cost"] == 3.5
    st, _, be = g.admin("GET", "/admin/backends")
    assert be["backends"][0]["models"][0]["max_batch"] == 8, be
    infer_ok(g, model, x[:3])

    # New mtime on the weights: the model is loaded again.
    w = mdir / "model.safetensors"
    t = time.time() + 5
    os.utime(w, (t, t))
    st, _, doc = g.reload()
    assert st == 200, doc
    assert doc["models_loaded"] == ["digits"] and doc["models_carried"] == [], doc
    infer_ok(g, model, x[:3])
    # A new model object means a new cpu0 too: the old one closes once the
    # snapshots that hold it retire (loops let go on traffic).  Wait for it,
    # so its "closed" line cannot be taken for the current cpu0's below.
    assert doc["backends_opened"] == ["cpu0"], doc
    deadline = time.monotonic() + 10
    while 'backend=cpu0 msg="closed"' not in g.log() and time.monotonic() < deadline:
        infer_ok(g, model, x[:1])
        time.sleep(0.05)
    assert 'backend=cpu0 msg="closed"' in g.log(), g.log()[-2000:]

    # Add cpu1, then remove it: it drains, then closes.
    sm.atomic_write(g.config, digits_config(path=mdir, backends=(("cpu0", 1), ("cpu1", 2))))
    st, _, doc = g.reload()
    assert st == 200 and doc["backends_opened"] == ["cpu1"], doc
    assert doc["models_carried"] == ["digits"], doc
    sm.atomic_write(g.config, digits_config(path=mdir))
    mark = len(g.log())
    st, _, doc = g.reload()
    assert st == 200 and doc["backends_carried"] == ["cpu0"] and doc["backends_opened"] == [], \
        doc
    deadline = time.monotonic() + 10
    while 'backend=cpu1 msg="closed"' not in g.log()[mark:] and time.monotonic() < deadline:
        infer_ok(g, model, x[:1])  # loops refresh their snapshot on traffic too
        time.sleep(0.1)
    assert 'backend=cpu1 msg="closed"' in g.log()[mark:], g.log()[mark:][-2000:]
    assert 'backend=cpu0 msg="closed"' not in g.log()[mark:]
    st, _, be = g.admin("GET", "/admin/backends")
    assert [b["name"] for b in be["backends"]] == ["cpu0"], be
    infer_ok(g, model, x[:2])


# ------------------------------------------------------------------ 3 ----

def _broken_files(tmp_path):
    """(id, text, [regexes the error must match]) for each broken file."""
    empty = tmp_path / "empty-model"
    empty.mkdir(exist_ok=True)
    noweights = tmp_path / "no-weights"
    noweights.mkdir(exist_ok=True)
    (noweights / "model.yaml").write_text((DIGITS / "model.yaml").read_text())
    good = digits_config()
    cases = [
        ("syntax", good.replace("  port: 8000\n", "  port: [8000\n"),
         [r"^{F}:\d+:\d+: YAML syntax error: did not find expected .,. or .\]."]),
        ("unknown-key", good.replace("limits:\n", "limits:\n  max_bdy_bytes: 1\n"),
         [r"^{F}:\d+:3: limits: unknown key \"max_bdy_bytes\" \(allowed: max_body_bytes"]),
        ("wrong-type", good.replace("  threads: 2\n", "  threads: two\n"),
         [r"^{F}:5:12: listen\.threads: expected an integer, got \"two\""]),
        ("wrong-type-range", good.replace("    max_batch: 32\n", "    max_batch: -3\n"),
         [r"^{F}:\d+:16: models\[0\]\.max_batch: expected an integer in \[0, 4096\], got -3"]),
        ("missing-weights", digits_config(path=noweights),
         [r"^{F}:\d+:\d+: models\[0\]\.path \(model digits\): ", re.escape(str(noweights / "model.yaml")) +
          r":\d+:\d+: weights: " + re.escape(str(noweights / "model.safetensors")) +
          r": No such file or directory"]),
        # docs/config.md: "Every error names FILE:LINE:COLUMN: key.path:".
        ("empty-model-dir", digits_config(path=empty),
         [re.escape(str(empty / "model.yaml")) + r": No such file or directory",
          r"^{F}:\d+:\d+: models\[0\]"]),
        ("duplicate-model", digits_config(extra_models=[("digits", DIGITS)]),
         [r"^{F}:\d+:\d+: models\[1\]: duplicate model name \"digits\""]),
    ]
    return cases


BROKEN_IDS = ["syntax", "unknown-key", "wrong-type", "wrong-type-range", "missing-weights",
              "empty-model-dir", "duplicate-model"]


@pytest.mark.parametrize("case", BROKEN_IDS)
def test_broken_file_rejected_old_config_serves(case, start_gw, tmp_path, model, heldout):
    x, _ = heldout
    good = digits_config(max_batch=16)
    g = start_gw("broken", good)
    (_, text, patterns), = [c for c in _broken_files(tmp_path) if c[0] == case]
    cfg = str(g.config)
    before = g.metrics()

    sm.atomic_write(g.config, text)
    st, _, doc = g.reload()
    print(f"\n{case}: {doc}")
    assert st == 400, doc
    assert doc["result"] == "failure", doc
    msg = doc["error"]
    # --check-config says the same and exits 1.
    chk = subprocess.run([str(sm.BINARY), "--check-config", cfg], capture_output=True,
                         text=True, timeout=30)
    assert chk.returncode == 1, chk
    assert chk.stderr.strip() == msg, (chk.stderr, msg)
    # The old configuration keeps serving.
    infer_ok(g, model, x[:2])
    eff = g.effective_config()
    assert eff["models"][0]["max_batch"] == 16 and len(eff["models"]) == 1, eff
    assert [b["name"] for b in eff["backends"]] == ["cpu0"], eff
    ms = g.metrics()
    assert reloads(ms, "failure") - reloads(before, "failure") == 1
    assert reloads(ms) == reloads(before)
    assert f'msg="reload failed; still serving the previous configuration: {msg}"' in g.log()
    for p in patterns:
        p = p.replace("{F}", re.escape(cfg))
        assert re.search(p, msg), f"error {msg!r} does not match {p!r}"

    # Fixed again: reload succeeds, --check-config prints a one-line summary.
    sm.atomic_write(g.config, digits_config(max_batch=12))
    st, _, doc = g.reload()
    assert st == 200 and doc["result"] == "success", doc
    assert g.effective_config()["models"][0]["max_batch"] == 12
    chk = subprocess.run([str(sm.BINARY), "--check-config", cfg], capture_output=True,
                         text=True, timeout=30)
    assert chk.returncode == 0, chk
    lines = chk.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{cfg}: ok: 1 model(s), 1 backend(s)"), \
        chk.stdout


# ------------------------------------------------------------------ 4 ----

def test_restart_required_listen_port(start_gw, model, heldout):
    x, _ = heldout
    for _ in range(3):
        p1, p2 = sm.free_port(), sm.free_port()
        if p1 != p2:
            break
    g = start_gw("restart", digits_config(port=p1), port=None)
    assert g.port == p1
    sm.atomic_write(g.config, digits_config(port=p2, max_batch=8))
    st, _, doc = g.reload()
    assert st == 200 and doc["result"] == "success", doc
    assert doc["restart_required"] and "listen.port" in doc["restart_required"], doc
    assert f"listen.port: {p1} -> {p2}" in doc["restart_required"], doc
    assert "restart_required=" in g.log() and f"{p1} -> {p2}" in g.log()
    # The rest of the file applied; still on the old port, not on the new one.
    assert g.effective_config()["models"][0]["max_batch"] == 8
    infer_ok(g, model, x[:1])
    with pytest.raises(OSError):
        gwlib.h1_request(p2, "GET", "/v2/health/live", timeout=2)


def test_port_zero_picks_a_free_port(start_gw):
    """docs/config.md: listen.port / admin.port 0 pick a free port, logged as
    listen=ADDR:PORT (and --port/--admin-port override them)."""
    g = start_gw("portzero", digits_config(), port=0, admin_port=0)
    assert g.port > 0 and g.admin_port > 0 and g.port != g.admin_port
    st, _, _ = gwlib.h1_request(g.port, "GET", "/v2/health/ready")
    assert st == 200
    st, _, _ = gwlib.h1_request(g.admin_port, "GET", "/metrics")
    assert st == 200


# ------------------------------------------------------------------ 5 ----

def _wait_config(g, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        eff = g.effective_config()
        if pred(eff) or time.monotonic() > deadline:
            return eff
        time.sleep(0.05)


def test_file_watch_rename(start_gw):
    watch = {"watch": "true", "debounce_ms": 100}
    g = start_gw("watch", digits_config(slo_ms=100, reload=watch))
    assert 'msg="watching the configuration for changes"' in g.log()
    before = g.metrics()
    sm.atomic_write(g.config, digits_config(slo_ms=250, reload=watch))
    eff = _wait_config(g, lambda e: e["models"][0]["slo_ms"] == 250)
    assert eff["models"][0]["slo_ms"] == 250, eff
    assert 'trigger=file-watch' in g.log()
    # A second edit in place (open + write + close) is seen too.
    g.config.write_text(digits_config(slo_ms=300, reload=watch))
    eff = _wait_config(g, lambda e: e["models"][0]["slo_ms"] == 300)
    assert eff["models"][0]["slo_ms"] == 300, eff
    assert reloads(g.metrics()) > reloads(before)


def test_file_watch_configmap_symlink_swap(start_gw, tmp_path):
    """Kubernetes ConfigMap layout: gateway.yaml -> ..data/gateway.yaml,
    ..data -> ..2026_01_01_00_00_00.1; an update writes a new timestamped
    dir and renames a new ..data symlink over the old one."""
    watch = {"watch": "true", "debounce_ms": 100}
    cm = tmp_path / "configmap"
    cm.mkdir()
    v1 = cm / "..2026_01_01_00_00_00.1"
    v1.mkdir()
    (v1 / "gateway.yaml").write_text(digits_config(slo_ms=100, reload=watch))
    os.symlink(v1.name, cm / "..data")
    os.symlink("..data/gateway.yaml", cm / "gateway.yaml")
    g = start_gw("cm", None, config=cm / "gateway.yaml")
    assert g.effective_config()["models"][0]["slo_ms"] == 100

    for i, slo in ((2, 222), (3, 333)):
        vn = cm / f"..2026_01_01_00_00_00.{i}"
        vn.mkdir()
        (vn / "gateway.yaml").write_text(digits_config(slo_ms=slo, reload=watch))
        tmp_link = cm / "..data_tmp"
        os.symlink(vn.name, tmp_link)
        os.replace(tmp_link, cm / "..data")
        eff = _wait_config(g, lambda e, s=slo: e["models"][0]["slo_ms"] == s)
        assert eff["models"][0]["slo_ms"] == slo, eff


# ------------------------------------------------------------------ 6 ----

def test_admin_config_and_backends(start_gw):
    g = start_gw("admin", digits_config(max_batch=16, slo_ms=50, policy="least-queue"))
    eff = g.effective_config()
    assert eff["file"] == str(g.config)
    assert eff["listen"]["address"] == "127.0.0.1" and eff["listen"]["threads"] == 2
    assert eff["routing"] == {"policy": "least-queue", "margin_us": 1000, "priority_levels": 3,
                              "sheddable_levels": 1, "shed_wait_fraction": 0.5,
                              "drop_hopeless": True, "probe_ms": 1000}, eff
    assert eff["reload"] == {"watch": False, "debounce_ms": 200, "resolve_ms": 0}, eff
    (m,) = eff["models"]
    assert m["name"] == "digits" and m["path"] == str(DIGITS) and m["max_batch"] == 16
    assert m["slo_ms"] == 50 and m["priority"] == 1 and m["max_queue"] == 1024, m
    assert m["adaptive_batching"] is False and m["preferred_batch_sizes"] == [], m
    (b,) = eff["backends"]
    assert b["name"] == "cpu0" and b["kind"] == "cpu" and b["workers"] == 1, b
    assert b["models"] == ["digits"] and b["cost"] == 1.0, b

    st, _, doc = g.admin("GET", "/admin/backends")
    assert st == 200, doc
    (b,) = doc["backends"]
    assert b["name"] == "cpu0" and b["state"] == "up" and b["kind"] == "cpu", b
    assert b["workers"] == 1 and b["cost"] == 1.0, b
    (q,) = b["models"]
    assert q["model"] == "digits" and q["queue_depth"] == 0 and q["max_batch"] == 16, q
    assert 0 < q["service_time_us"]["batch_1"] <= q["service_time_us"]["batch_max"], q


def test_drain_with_two_backends(start_gw, model, heldout):
    x, _ = heldout
    g = start_gw("drain2", digits_config(backends=(("cpu0", 1.0), ("cpu1", 5.0)),
                                         policy="round-robin"))
    st, _, doc = g.admin("POST", "/admin/backends/cpu0/drain", b"")
    assert st == 200 and doc["backend"] == "cpu0", doc
    assert doc["state"] in ("draining", "drained"), doc
    st, _, be = g.admin("GET", "/admin/backends")
    states = {b["name"]: b["state"] for b in be["backends"]}
    assert states == {"cpu0": "drained", "cpu1": "up"}, be
    assert metric(g.metrics(), "infergw_backend_up", backend="cpu0") == 0
    before = g.metrics()
    for _ in range(10):
        infer_ok(g, model, x[:1])
    after = sm.wait_outcomes(g, before, "digits", 10)
    assert sm.by_backend(sm.outcome_delta(before, after, "digits")) == {"cpu1": 10}
    st, _, _ = gwlib.h1_request(g.port, "GET", "/v2/health/ready")
    assert st == 200  # cpu1 still serves digits
    st, _, doc = g.admin("POST", "/admin/backends/nope/drain", b"")
    assert st == 404, doc


def test_drain_only_backend_then_reload_reopens(start_gw, model, heldout):
    x, _ = heldout
    g = start_gw("drain1", digits_config())
    st, _, doc = g.admin("POST", "/admin/backends/cpu0/drain", b"")
    assert st == 200, doc
    for port in (g.port, g.admin_port):
        st, _, body = gwlib.h1_request(port, "GET", "/v2/health/ready")
        assert st == 503, body
    st, _, body = gwlib.h1_request(g.port, "GET", "/v2/models/digits/ready")
    assert st == 503, body
    before = g.metrics()
    st, h, body = h1_request_infer(g, "digits", x[:1])
    assert st == 503, body
    assert json.loads(body)["error"] == "no backend available for model digits", body
    assert h.get("retry-after") == "1", h
    after = sm.wait_outcomes(g, before, "digits", 1)
    print(f"\n503 counted as {sm.outcome_delta(before, after, 'digits')}")
    st, _, doc = g.reload()
    assert st == 200 and doc["backends_opened"] == ["cpu0"], doc
    st, _, be = g.admin("GET", "/admin/backends")
    assert be["backends"][0]["state"] == "up", be
    st, _, _ = gwlib.h1_request(g.port, "GET", "/v2/health/ready")
    assert st == 200
    infer_ok(g, model, x[:3])


def test_repository_index_unload_load(start_gw, tmp_path, model, heldout):
    x, _ = heldout
    g = start_gw("repo", digits_config())
    st, _, idx = g.admin("POST", "/v2/repository/index", b"")
    assert st == 200, idx
    assert [(m["name"], m["state"]) for m in idx] == [("digits", "READY")], idx

    st, _, doc = g.admin("POST", "/v2/repository/models/digits/unload", b"")
    assert st == 200 and doc["result"] == "success", doc
    st, _, body = h1_request_infer(g, "digits", x[:1])
    assert st == 404, body
    st, _, body = gwlib.h1_request(g.port, "GET", "/v2/models/digits")
    assert st == 404, body
    st, _, idx = g.admin("POST", "/v2/repository/index", b"")
    assert st == 200, idx
    assert idx == [{"name": "digits", "version": "", "state": "UNAVAILABLE",
                    "reason": "unloaded"}], idx
    # Unloaded stays unloaded across a plain reload.
    st, _, doc = g.reload()
    assert st == 200, doc
    st, _, body = h1_request_infer(g, "digits", x[:1])
    assert st == 404, body

    st, _, doc = g.admin("POST", "/v2/repository/models/digits/load", b"")
    assert st == 200 and doc["result"] == "success", doc
    infer_ok(g, model, x[:2])
    st, _, idx = g.admin("POST", "/v2/repository/index", b"")
    assert [(m["name"], m["state"]) for m in idx] == [("digits", "READY")], idx
    st, _, doc = g.admin("POST", "/v2/repository/models/nope/load", b"")
    assert st == 404, doc


POST_ONLY = ["/admin/reload", "/admin/backends/cpu0/drain", "/v2/repository/index",
             "/v2/repository/models/digits/load", "/v2/repository/models/digits/unload"]


def test_post_only_endpoints_405(start_gw):
    g = start_gw("m405", digits_config())
    for path in POST_ONLY:
        for method in ("GET", "PUT", "DELETE"):
            st, h, body = gwlib.h1_request(g.admin_port, method, path)
            assert st == 405, (method, path, body)
            assert h.get("allow") == "POST", (method, path, h)
    st, h, _ = gwlib.h1_request(g.admin_port, "POST", "/metrics", b"")
    assert st == 405 and h.get("allow") == "GET", h
    # Nothing was drained or unloaded by those.
    st, _, be = g.admin("GET", "/admin/backends")
    assert be["backends"][0]["state"] == "up", be
    st, _, idx = g.admin("POST", "/v2/repository/index", b"")
    assert [(m["name"], m["state"]) for m in idx] == [("digits", "READY")], idx


def test_admin_error_names_a_long_config_path_whole(tmp_path):
    """An admin error quoting the config file's path is not cut short: the
    repository 404 names a path of 800+ bytes whole (bodies were cut at
    768 bytes before)."""
    deep = tmp_path / ("d" * 200) / ("e" * 200) / ("f" * 200) / ("g" * 200)
    deep.mkdir(parents=True)
    g = sm.SlowGateway(deep, "long", digits_config())
    try:
        g.start()
        st, _, doc = g.admin("POST", "/v2/repository/models/nosuch/load", b"")
        assert len(str(g.config)) > 800
        assert st == 404, doc
        assert doc == {"error": f'model "nosuch" is not in the model repository '
                                f'(the models of {g.config})'}, doc
    finally:
        g.kill()


def _with_engine(text, engine):
    """text with listen.http2_engine set (under the listen section)."""
    assert "\n  threads: 2\n" in text
    return text.replace("\n  threads: 2\n", f"\n  threads: 2\n  http2_engine: {engine}\n", 1)


def test_http2_engine_reload(start_gw, model, heldout):
    """listen.http2_engine is reloaded, not restart-only: connections that
    become HTTP/2 after the reload get the new engine, open ones keep
    theirs, and infergw_http2_sessions_total counts each by engine.  Both
    answer inference with the model's values."""
    x, _ = heldout

    def sessions(g, engine):
        return metric(g.metrics(), "infergw_http2_sessions_total", engine=engine)

    g = start_gw("h2engine", _with_engine(digits_config(), "native"))
    assert "http2_engine=native" in g.log()
    n0, g0 = sessions(g, "native"), sessions(g, "nghttp2")
    with H2Client(g.port, timeout=15) as old:
        assert old.get("/v2/health/live").status == 200
        assert (sessions(g, "native"), sessions(g, "nghttp2")) == (n0 + 1, g0)
        sm.atomic_write(g.config, _with_engine(digits_config(), "nghttp2"))
        st, _, doc = g.reload()
        assert st == 200 and doc["result"] == "success", doc
        assert not doc.get("restart_required"), doc
        assert g.effective_config()["listen"]["http2_engine"] == "nghttp2"
        with H2Client(g.port, timeout=15) as new:
            resp = new.wait([new.infer(x[:2])])[0]
            assert resp.status == 200, resp
            check_infer_response(resp.json(), model, x[:2])
        assert (sessions(g, "native"), sessions(g, "nghttp2")) == (n0 + 1, g0 + 1)
        # the connection opened before the reload still frames with its own
        resp = old.wait([old.infer(x[2:3])])[0]
        assert resp.status == 200, resp
        check_infer_response(resp.json(), model, x[2:3])
    assert (sessions(g, "native"), sessions(g, "nghttp2")) == (n0 + 1, g0 + 1)
