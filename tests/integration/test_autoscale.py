"""The autoscaling signal on /metrics (gateway/sched/autoscale.c, scale.c):
infergw_pool_desired_replicas{pool} and its inputs, per pool (a remote
backend's `pool` key, else the backend's own name).

Values, not timing: between two scrapes the test sends a known number of
requests, so the arrival rate the gateway reports (an EWMA over renders) must lie
between what that number gives over the longest and over the shortest
interval the two scrapes can have been apart; and the desired count must be what the formula of
docs/deploy.md gives on the inputs the gateway exports (recomputed here,
independently: Erlang C in Python)."""
import math
import time

import numpy as np

import gwlib
import slowmodel as sm
from agentlib import Agent
from agentproc import models_dir, wait_for
from gwlib import H2Client

RHO_MAX, P_MISS, TAU_S = 0.8, 0.01, 30.0
N = 240


def _config(backends, slo_ms):
    return sm.config_text([sm.model_yaml("digits", gwlib.MODEL_DIR, max_batch=8, slo_ms=slo_ms,
                                         extra="    service_time_us: {base: 2000, per_row: 0}\n")],
                          backends, routing={"policy": "round-robin"})


def _fake(name, *, workers=2, latency_us=2000):
    return (f"  - name: {name}\n    kind: fake\n    workers: {workers}\n"
            f"    latency_us: {latency_us}\n    models: [digits]\n")


def _remote(name, port, pool):
    return (f"  - name: {name}\n    kind: remote\n    address: 127.0.0.1:{port}\n"
            f"    pool: {pool}\n    timeout_ms: 2000\n    ping_ms: 200\n    models: [digits]\n")


def pool(ms, name):
    keys = ("desired_replicas", "replicas", "arrival_rate", "load", "rows_per_request",
            "batch_rows", "batch_rows_seen", "batch_seconds", "slots", "objective_seconds")
    return {k: ms.get((f"infergw_pool_{k}", frozenset({("pool", name)}))) for k in keys}


def erlang_c(c, a):
    if a <= 0:
        return 0.0
    if a >= c:
        return 1.0
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b / (1 - (a / c) * (1 - b))


def expected_desired(p, lo=1, hi=1024):
    """docs/deploy.md: the smallest n with a/(n k) <= rho_max and
    P(W > objective - S) <= p_miss."""
    a, k, s, obj = p["load"], int(p["slots"]), p["batch_seconds"], p["objective_seconds"]
    if a <= 0:
        return lo
    budget = obj - s if obj > 0 else 0
    for n in range(lo, hi + 1):
        if a / (n * k) > RHO_MAX:
            continue
        if budget <= 0 or a >= n * k:
            if budget <= 0:
                return n
            continue
        if erlang_c(n * k, a) * math.exp(-(n * k - a) * budget / s) <= P_MISS:
            return n
    return hi


def _send(port, n, rows=1):
    """n requests of `rows` rows, 60 at a time on one HTTP/2 connection; all 200."""
    x = (np.arange(rows * 64, dtype=np.float64).reshape(rows, 64) % 7) / 8.0
    done = 0
    with H2Client(port, timeout=30.0) as c:
        while done < n:
            k = min(60, n - done)
            sids = [c.request("POST", gwlib.INFER, gwlib.infer_body(x), [gwlib.JSON_CT],
                              flush=False) for _ in range(k)]
            c._flush()
            for r in c.wait(sids):
                assert r.status == 200, (r.status, bytes(r.body)[:200])
            done += k


def _scrape(g):
    t0 = time.monotonic()
    ms = g.metrics()
    return ms, t0, time.monotonic()


def _idle_scrapes(g):
    """Two scrapes with nothing arriving: the rate is established at 0 (the
    first render primes the counters, whoever made it).  Returns the
    second's (ms, start, end)."""
    _scrape(g)
    time.sleep(0.01)
    return _scrape(g)


def assert_rate(rate, n, t1, t2):
    """n arrivals between two renders, the rate 0 before: the EWMA gives
    (1 - exp(-dt / tau)) x n / dt, which falls as dt grows; dt lies between
    the inner and the outer span of the two scrapes t1, t2 ((start, end))."""
    def f(dt):
        return (1 - math.exp(-dt / TAU_S)) * n / dt
    lo, hi = f(t2[1] - t1[0]), f(t2[0] - t1[1])
    assert lo * (1 - 1e-9) <= rate <= hi * (1 + 1e-9), (lo, rate, hi)


def test_fake_pool_signal_matches_formula(start_gw):
    g = start_gw("asc", _config(_fake("f0"), slo_ms=40))
    ms, t1_start, t1_end = _idle_scrapes(g)
    p = pool(ms, "f0")
    # no arrivals yet: no rate yet, so the count holds at the current one
    assert p["replicas"] == 1 and p["desired_replicas"] == 1, p
    assert p["objective_seconds"] == 0.040, p
    _send(g.port, N, rows=2)
    ms, t2_start, t2_end = _scrape(g)
    p = pool(ms, "f0")
    assert_rate(p["arrival_rate"], N, (t1_start, t1_end), (t2_start, t2_end))
    assert p["rows_per_request"] == 2, p
    assert 1 <= p["batch_rows_seen"] <= 8, p
    # t(B) = 2 ms at every size (fake: latency per batch): the largest
    # batch, 8, fits half the objective
    assert p["batch_rows"] == 8 and abs(p["batch_seconds"] - 0.002) < 0.0015, p
    assert p["slots"] == 2, p
    assert p["batch_seconds"] > 0, p
    # a = lambda x rows / B x S, exactly as exported
    a = p["arrival_rate"] * p["rows_per_request"] / p["batch_rows"] * p["batch_seconds"]
    assert abs(p["load"] - a) <= 1e-6 * max(a, 1e-9), (p, a)
    assert p["desired_replicas"] == expected_desired(p), p


def test_no_objective_headroom_only(start_gw):
    """Without an objective the headroom bound alone decides."""
    g = start_gw("asc2", _config(_fake("f0", latency_us=500), slo_ms=0))
    _, t1_start, t1_end = _idle_scrapes(g)
    _send(g.port, N)
    ms, t2_start, t2_end = _scrape(g)
    p = pool(ms, "f0")
    assert_rate(p["arrival_rate"], N, (t1_start, t1_end), (t2_start, t2_end))
    assert p["objective_seconds"] == 0, p
    assert p["desired_replicas"] == expected_desired(p), p
    assert p["desired_replicas"] == max(1, math.ceil(p["load"] / (p["slots"] * RHO_MAX) - 1e-9))


def test_remote_pool_groups_agents(start_gw, tmp_path):
    """Two agents with `pool: dpu` are one pool of 2 replicas; their slots
    are the agents' threads (from hello), not the window; a local backend
    is a pool of its own."""
    d = models_dir(tmp_path)
    agents = [Agent(tmp_path, f"agent{i}", d, args=["--threads", "1"]).start() for i in range(2)]
    try:
        bes = _remote("dpu0", agents[0].port, "dpu") + _remote("dpu1", agents[1].port, "dpu") \
            + _fake("f0")
        g = start_gw("asc3", _config(bes, slo_ms=100))
        wait_for(lambda: pool(g.metrics(), "dpu")["replicas"] == 2, 10, "both agents up")
        _, t1_start, t1_end = _idle_scrapes(g)
        _send(g.port, N)
        ms, t2_start, t2_end = _scrape(g)
        p, f = pool(ms, "dpu"), pool(ms, "f0")
        assert p["replicas"] == 2 and f["replicas"] == 1, (p, f)
        assert pool(ms, "dpu0")["replicas"] is None  # no pool per agent
        assert p["slots"] == 1, p  # --threads 1 (the window is 2)
        assert p["objective_seconds"] == 0.1, p
        # round-robin over 3 backends: the pool got two thirds
        total = p["arrival_rate"] + f["arrival_rate"]
        assert_rate(total, N, (t1_start, t1_end), (t2_start, t2_end))
        assert abs(p["arrival_rate"] / total - 2 / 3) < 0.05, (p, f)
        assert p["desired_replicas"] == expected_desired(p), p
        # one agent gone: one replica left; the demand is still counted
        agents[1].kill()
        wait_for(lambda: pool(g.metrics(), "dpu")["replicas"] == 1, 10, "one agent down")
        assert pool(g.metrics(), "dpu")["desired_replicas"] >= 1
    finally:
        for a in agents:
            a.stop()
            a.kill()
