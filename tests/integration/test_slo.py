"""SLO-aware routing under overload: priorities, shedding, deadlines (429 at
admission, 504 in the queue), cancellation, queue bounds, routing policies
and priority order, on a deliberately slow model (slowmodel.py).

Each test runs its own gateway on 127.0.0.1 (stopped by PID); every load is
bounded in requests and seconds.  Wall-clock speed is never asserted: the
tests count statuses and counters."""
import json
import os
import re
import time

import numpy as np
import pytest

import gwlib
import slowmodel as sm
from gwlib import metric

MODEL = "slow"
INFER_PATH = f"/v2/models/{MODEL}/infer"
ROW = np.arange(64, dtype=np.float64).reshape(1, 64) / 64.0


@pytest.fixture(scope="module")
def slow_dir(tmp_path_factory):
    t0 = time.monotonic()
    d = sm.write_slow_model(tmp_path_factory.mktemp("slowmodel") / "slow")
    print(f"\nslow model {'-'.join(map(str, sm.SLOW_DIMS))} written in "
          f"{time.monotonic() - t0:.2f}s")
    return d


@pytest.fixture
def start_gw(start_gw):
    """conftest's start_gw, printing each gateway's calibrated service times."""
    def start(name, text, **kw):
        g = start_gw(name, text, **kw)
        g.print_calibration()
        return g
    return start


def _one(slow_dir, routing=None, backends=None, threads=2, **model_kw):
    return sm.config_text([sm.model_yaml(MODEL, slow_dir, **model_kw)],
                          backends or [sm.backend_yaml("cpu0", [MODEL])], routing=routing,
                          threads=threads)


def _err(body):
    return json.loads(body)["error"]


def _check_probs(body, ref, rows):
    doc = json.loads(body)
    got = np.asarray(doc["outputs"][0]["data"], dtype=np.float64).reshape(rows, 10)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------ 1 ----

def test_overload_priorities(slow_dir, start_gw):
    """One burst of 600 sheddable requests (x-priority 3), far more than the
    queue drains within the objective, with 30 high-priority requests
    (x-priority 1) interleaved, all written to the socket at once.  Counted,
    never timed: every request is answered exactly once; high priority all
    200 with the reference values; sheddable 200, 429 (Retry-After and the
    shed, late or full message, some of them shed) or 504; and /metrics
    counts exactly what the client saw."""
    slo_ms, n_low, every = 200, 600, 20
    text = sm.config_text([sm.model_yaml(MODEL, slow_dir, max_batch=4, slo_ms=slo_ms)],
                          [sm.backend_yaml("cpu0", [MODEL])],
                          routing={"policy": "slo", "priority_levels": 3,
                                   "sheddable_levels": 1},
                          threads=1, max_concurrent_streams=1024)
    g = start_gw("overload", text)
    ref = sm.ref_forward(slow_dir, ROW)
    before = g.metrics()
    plan = []
    with sm.OrderedH2(g.port, timeout=120) as c:
        for i in range(n_low):
            plan.append(("low", c.queue_infer(MODEL, ROW, [("x-priority", "3")])))
            if i % every == every - 1:
                # A deadline of its own far above the model's: shared cores
                # cannot make it miss; its priority must get it through.
                plan.append(("hi", c.queue_infer(MODEL, ROW, [("x-priority", "1"),
                                                              ("x-slo-ms", "20000")])))
        c.flush(timeout=60)
        c.wait([sid for _, sid in plan])
        got = [(kind, c.streams[sid]) for kind, sid in plan]
    status = {"low": {}, "hi": {}}
    for kind, r in got:
        assert r.reset is None, f"{kind} stream reset: {r}"
        status[kind][r.status] = status[kind].get(r.status, 0) + 1
    print(f"\nsheddable statuses {status['low']}; high-priority statuses {status['hi']}")
    assert sum(status["low"].values()) == n_low and sum(status["hi"].values()) == n_low // every
    # High priority: every one served, with the right values.
    assert status["hi"] == {200: n_low // every}, status["hi"]
    for kind, r in got:
        if r.status == 200:
            _check_probs(bytes(r.body), ref, 1)
    # Sheddable: served, rejected with the reason, or expired in the queue.
    assert set(status["low"]) <= {200, 429, 504}, status["low"]
    shed = [r for kind, r in got if r.status == 429]
    assert shed and all(kind == "low" for kind, r in got if r.status == 429)
    for r in shed:
        assert int(r.headers["retry-after"]) >= 1, r.headers
        assert re.fullmatch(r"(shed under load: priority 3 of model slow is sheddable"
                            r"|no backend can answer model slow within its objective of "
                            r"\d+ us|queue for model slow is full"
                            r"(: displaced by a priority \d+ request)?)",
                            _err(bytes(r.body))), r
    assert any("shed under load" in _err(bytes(r.body)) for r in shed), shed[:3]

    # /metrics counts exactly what the client saw.
    total = len(plan)
    want = {}
    for sts in status.values():
        for st, n in sts.items():
            want[st] = want.get(st, 0) + n
    after = sm.wait_outcomes(g, before, MODEL, total)
    delta = sm.outcome_delta(before, after, MODEL)
    outc = sm.by_outcome(delta)
    print(f"/metrics outcome deltas: {delta}")
    assert sum(delta.values()) == total, (delta, total)
    assert set(b for b, _ in delta) <= {"cpu0", "none"}, delta
    assert outc.get("success", 0) == want.get(200, 0), (outc, want)
    assert outc.get("rejected", 0) == want.get(429, 0), (outc, want)
    assert outc.get("expired", 0) == want.get(504, 0), (outc, want)
    assert outc.get("error", 0) == 0 and outc.get("cancelled", 0) == 0, outc
    # Rejections are counted where no backend took them; 200/504 on cpu0.
    assert delta.get(("none", "rejected"), 0) == want.get(429, 0), delta
    assert sm.by_backend(delta) == {"cpu0": want.get(200, 0)}, delta
    # Every answered request had an objective: met + missed == success.
    slo = {r: metric(after, "infergw_slo_total", backend="cpu0", model=MODEL, result=r) -
           metric(before, "infergw_slo_total", backend="cpu0", model=MODEL, result=r)
           for r in ("met", "missed")}
    assert slo["met"] + slo["missed"] == want.get(200, 0), slo
    # Rows executed: one per 200 (no expired or shed request ran).
    assert sm.rows_total(after) - sm.rows_total(before) == want.get(200, 0)
    assert g.alive()


# ------------------------------------------------------------------ 2 ----

def test_deadline_rejected_at_admission(slow_dir, start_gw):
    g = start_gw("deadline", _one(slow_dir, max_batch=4))
    before = g.metrics()
    t0 = time.monotonic()
    st, h, b = g.infer(MODEL, ROW, params={"timeout": 1})
    took = time.monotonic() - t0
    assert st == 429, b
    assert _err(b) == "no backend can answer model slow within its objective of 1 us", b
    assert int(h["retry-after"]) >= 1, h
    st2, h2, b2 = g.infer(MODEL, ROW, headers=[("x-slo-ms", "0.001")])
    assert st2 == 429, b2
    assert _err(b2) == "no backend can answer model slow within its objective of 1 us", b2
    assert int(h2["retry-after"]) >= 1, h2
    # The body's parameters.timeout wins over the header.
    st3, _, b3 = g.infer(MODEL, ROW, headers=[("x-slo-ms", "10000")], params={"timeout": 1})
    assert st3 == 429, b3
    # A reachable objective is served.
    st4, _, b4 = g.infer(MODEL, ROW, headers=[("x-slo-ms", "5000")])
    assert st4 == 200, b4
    print(f"429 for timeout=1us answered in {took * 1e3:.2f} ms (client round trip)")
    after = sm.wait_outcomes(g, before, MODEL, 4)
    delta = sm.outcome_delta(before, after, MODEL)
    assert delta == {("none", "rejected"): 3, ("cpu0", "success"): 1}, delta
    assert sm.rows_total(after) - sm.rows_total(before) == 1
    # The rejection latency histogram (server side: arrival to answer) holds
    # the three 429s, in the series of the backend that took them: none.
    lbl = {"backend": "none", "model": MODEL}
    n429 = (metric(after, "infergw_reject_seconds_count", **lbl) -
            metric(before, "infergw_reject_seconds_count", **lbl))
    s429 = (metric(after, "infergw_reject_seconds_sum", **lbl) -
            metric(before, "infergw_reject_seconds_sum", **lbl))
    inf = (metric(after, "infergw_reject_seconds_bucket", le="+Inf", **lbl) -
           metric(before, "infergw_reject_seconds_bucket", le="+Inf", **lbl))
    assert n429 == 3 and inf == 3, (n429, inf)
    assert s429 > 0, s429
    assert metric(after, "infergw_reject_seconds_count", backend="cpu0", model=MODEL) == \
        metric(before, "infergw_reject_seconds_count", backend="cpu0", model=MODEL)


# ------------------------------------------------------------------ 3 ----

@pytest.mark.parametrize("drop_hopeless", [False, True])
def test_expired_in_queue_never_executed(slow_dir, start_gw, drop_hopeless):
    """B (priority 2, 8 rows each, an objective of ~12 batch times) is
    admitted while A runs; C (priority 1, no objective) arrives right after
    and jumps ahead for ~4 objectives: B is answered 504 and never executed
    (with drop_hopeless as soon as a batch started now would end too late,
    else once the deadline has passed)."""
    g = start_gw("expiry", _one(slow_dir, max_batch=8, max_queue_delay_us=1000000,
                                routing={"priority_levels": 3, "sheddable_levels": 1,
                                         "drop_hopeless": str(drop_hopeless).lower()}))
    (_, _, t8), = g.calibration().values()
    timeout_us = int(max(300000, 12 * t8))
    # A keeps the backend busy for a third of B's objective (B is still
    # admitted: its predicted wait fits) while the gateway reads B and every
    # C off the connection.  With 2 A batches (~10 ms on an idle machine) a
    # loop thread descheduled that long let B run before the Cs were queued
    # (seen under a loaded make test).
    n_a, n_b = max(2, int(timeout_us / 3 / t8)), 4
    n_c = min(200, int(4 * timeout_us / t8))
    print(f"B objective {timeout_us} us; {n_c} C requests of 8 rows")
    before = g.metrics()
    rows8 = np.tile(ROW, (8, 1))
    with sm.OrderedH2(g.port) as c:
        a = [c.queue_infer(MODEL, rows8, [("x-priority", "1")]) for _ in range(n_a)]
        bs = [c.queue_infer(MODEL, rows8, [("x-priority", "2")],
                            params={"timeout": timeout_us}) for _ in range(n_b)]
        cs = [c.queue_infer(MODEL, rows8, [("x-priority", "1")]) for _ in range(n_c)]
        c.flush()
        res = dict(zip([*a, *bs, *cs], c.wait([*a, *bs, *cs], timeout=60)))
        lat = {s: c.latency(s) for s in bs}
    statuses = [r.status for r in res.values()]
    print(f"A {[res[s].status for s in a]}; B {[res[s].status for s in bs]}; "
          f"C {sorted(set(res[s].status for s in cs))}")
    assert all(res[s].status == 200 for s in [*a, *cs]), statuses
    expired = [s for s in bs if res[s].status == 504]
    assert expired, f"no B request expired: {[(res[s].status, bytes(res[s].body)[:120]) for s in bs]}"
    for s in bs:
        assert res[s].status in (200, 504), res[s]
    for s in expired:
        msg = res[s].json()["error"]
        print(f"B 504 after {lat[s] * 1e3:.1f} ms: {msg}")
        m = re.fullmatch(r"deadline passed after (\d+) us in the queue of backend cpu0", msg)
        h = re.fullmatch(r"cannot finish before its deadline: (\d+) us left, "
                         r"a batch on backend cpu0 takes (\d+) us", msg)
        if drop_hopeless:
            assert m or h, msg
        else:
            assert m, msg
        if m:
            assert int(m.group(1)) >= timeout_us, msg
        else:
            assert int(h.group(1)) < int(h.group(2)), msg
    n200 = sum(1 for st in statuses if st == 200)
    after = sm.wait_outcomes(g, before, MODEL, len(statuses))
    delta = sm.outcome_delta(before, after, MODEL)
    assert delta == {("cpu0", "success"): n200, ("cpu0", "expired"): len(expired)}, delta
    rows = sm.rows_total(after) - sm.rows_total(before)
    assert rows == 8 * n200, f"{rows} rows executed, {n200} requests of 8 rows answered 200 " \
                             f"({len(expired)} expired must not run)"
    # Wait calibration: each expired B counts as a miss at level 2 (and a B
    # that ran waited far longer than predicted: one more); level 3 saw
    # nothing.
    st, _, doc = g.admin("GET", "/admin/backends")
    cal = doc["backends"][0]["models"][0]["wait_calibration"]
    print(f"wait_calibration {cal}")
    step = 1 + 0.005 * 0.99
    assert len(cal) == 3 and cal[2] == 1.0, cal
    assert step ** len(expired) - 1e-4 <= cal[1] <= step ** n_b + 1e-4, cal


# ------------------------------------------------------------------ 4 ----

def test_cancelled_requests_not_executed(slow_dir, start_gw):
    g = start_gw("cancel", _one(slow_dir, max_batch=64, max_queue_delay_us=1500000))
    before = g.metrics()
    n = 10
    with sm.OrderedH2(g.port) as c:
        sids = [c.queue_infer(MODEL, ROW) for _ in range(n)]
        c.flush()
        # Wait until all are queued (the queue-depth gauge), then reset half.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if metric(g.metrics(), "infergw_queue_depth", backend="cpu0", model=MODEL) == n:
                break
            time.sleep(0.02)
        assert metric(g.metrics(), "infergw_queue_depth", backend="cpu0", model=MODEL) == n
        reset, keep = sids[::2], sids[1::2]
        for s in reset:
            c.reset(s)
        rs = c.wait(keep, timeout=20)
    assert all(r.status == 200 for r in rs), rs
    after = sm.wait_outcomes(g, before, MODEL, n)
    delta = sm.outcome_delta(before, after, MODEL)
    assert delta == {("cpu0", "success"): len(keep), ("cpu0", "cancelled"): len(reset)}, delta
    assert sm.rows_total(after) - sm.rows_total(before) == len(keep)
    assert metric(after, "infergw_queue_depth", backend="cpu0", model=MODEL) == 0


# ------------------------------------------------------------------ 5 ----

def test_queue_bound(slow_dir, start_gw):
    g = start_gw("qbound", _one(slow_dir, max_batch=4, max_queue=4))
    before = g.metrics()
    rows4 = np.tile(ROW, (4, 1))
    n = 40
    with sm.OrderedH2(g.port) as c:
        sids = [c.queue_infer(MODEL, rows4) for _ in range(n)]
        c.flush()
        rs = c.wait(sids, timeout=60)
    st = {}
    for r in rs:
        st[r.status] = st.get(r.status, 0) + 1
    print(f"burst of {n}: {st}")
    assert set(st) <= {200, 429}, st
    assert st.get(429, 0) > 0 and st.get(200, 0) >= 4, st
    for r in rs:
        if r.status == 429:
            assert r.json()["error"] == "queue for model slow is full", r
            assert int(r.headers["retry-after"]) >= 1, r.headers
    after = sm.wait_outcomes(g, before, MODEL, n)
    delta = sm.outcome_delta(before, after, MODEL)
    assert delta == {("cpu0", "success"): st[200], ("none", "rejected"): st[429]}, delta
    assert sm.rows_total(after) - sm.rows_total(before) == 4 * st[200]


def test_queue_full_higher_priority_displaces_lower(slow_dir, start_gw):
    """docs (commit 2c48e69, scheduler.c sched_enqueue): when a model's queue
    is full, a higher-priority request displaces the lowest-priority queued
    one (answered 429 "... displaced by a priority P request") instead of
    being refused.  Four 1-row priority-3 requests wait for a fuller batch
    (max_queue_delay_us 1 s, max_batch 64) and fill max_queue 4; then two
    priority-1 requests arrive."""
    g = start_gw("displace", _one(slow_dir, max_batch=64, max_queue=4,
                                  max_queue_delay_us=1000000,
                                  routing={"priority_levels": 3, "sheddable_levels": 0}))
    before = g.metrics()
    with sm.OrderedH2(g.port) as c:
        lows = [c.queue_infer(MODEL, ROW, [("x-priority", "3")]) for _ in range(4)]
        c.flush()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and metric(
                g.metrics(), "infergw_queue_depth", backend="cpu0", model=MODEL) < 4:
            time.sleep(0.005)
        depth = metric(g.metrics(), "infergw_queue_depth", backend="cpu0", model=MODEL)
        highs = [c.queue_infer(MODEL, ROW, [("x-priority", "1")]) for _ in range(2)]
        c.flush()
        rs = dict(zip([*lows, *highs], c.wait([*lows, *highs], timeout=30)))
    names = [("L0", lows[0]), ("L1", lows[1]), ("L2", lows[2]), ("L3", lows[3]),
             ("H0", highs[0]), ("H1", highs[1])]
    got = {n: (rs[s].status, rs[s].json().get("error") if rs[s].status != 200 else None)
           for n, s in names}
    print(f"queue depth before H: {depth:.0f}; answers: {got}")
    assert depth == 4, "the queue did not fill (the test's setup, not the server)"
    displaced = "queue for model slow is full: displaced by a priority 1 request"
    assert got["H0"][0] == 200 and got["H1"][0] == 200, got
    assert got["L3"] == (429, displaced) and got["L2"] == (429, displaced), got
    assert got["L0"][0] == 200 and got["L1"][0] == 200, got
    after = sm.wait_outcomes(g, before, MODEL, 6)
    delta = sm.outcome_delta(before, after, MODEL)
    assert delta == {("cpu0", "success"): 4, ("cpu0", "rejected"): 2}, delta
    assert sm.rows_total(after) - sm.rows_total(before) == 4


# ------------------------------------------------------------------ 6 ----

def _two(slow_dir, policy, slo_ms=None):
    return _one(slow_dir, max_batch=4, slo_ms=slo_ms, routing={"policy": policy},
                backends=[sm.backend_yaml("cpu0", [MODEL], cost=1),
                          sm.backend_yaml("cpu1", [MODEL], cost=10)])


def _sequential(g, n):
    for _ in range(n):
        st, _, b = g.infer(MODEL, ROW)
        assert st == 200, b


def test_policy_slo_prefers_cheap_backend(slow_dir, start_gw):
    g = start_gw("pol-slo", _two(slow_dir, "slo", slo_ms=2000))
    before = g.metrics()
    _sequential(g, 20)
    after = sm.wait_outcomes(g, before, MODEL, 20)
    delta = sm.outcome_delta(before, after, MODEL)
    assert sm.by_backend(delta) == {"cpu0": 20}, delta
    assert sm.rows_total(after, "cpu1") == sm.rows_total(before, "cpu1")


def test_policy_round_robin_splits_evenly(slow_dir, start_gw):
    g = start_gw("pol-rr", _two(slow_dir, "round-robin"))
    before = g.metrics()
    _sequential(g, 20)
    after = sm.wait_outcomes(g, before, MODEL, 20)
    delta = sm.outcome_delta(before, after, MODEL)
    assert sm.by_backend(delta) == {"cpu0": 10, "cpu1": 10}, delta


def test_policy_least_queue_uses_both_under_load(slow_dir, start_gw, tmp_path):
    g = start_gw("pol-lq", _two(slow_dir, "least-queue"))
    body = tmp_path / "row.json"
    body.write_bytes(gwlib.infer_body(ROW))
    before = g.metrics()
    n = 1500
    req, codes, text = sm.run_h2load(["-n", n, "-c", 4, "-m", 16, "-t", 1,
                                      "-H", "content-type: application/json", "-d", body,
                                      f"{g.base}{INFER_PATH}"], timeout=60)
    assert codes["2xx"] == n and req["errored"] == 0, text[-2000:]
    after = sm.wait_outcomes(g, before, MODEL, n)
    split = sm.by_backend(sm.outcome_delta(before, after, MODEL))
    print(f"least-queue split of {n} concurrent requests: {split}")
    assert sum(split.values()) == n and split.get("cpu0", 0) > 0 and split.get("cpu1", 0) > 0, \
        split


# ------------------------------------------------------------------ 7 ----

def test_priority_order(slow_dir, start_gw):
    """While the worker runs A1..A3 (64 rows each, FIFO among themselves), 4
    low-priority then 4 high-priority requests of 64 rows queue up: the high
    ones complete first."""
    g = start_gw("prio", _one(slow_dir, max_batch=64, max_queue_delay_us=1000000,
                              routing={"priority_levels": 3, "sheddable_levels": 0}))
    rows64 = np.tile(ROW, (64, 1))
    with sm.OrderedH2(g.port) as c:
        blockers = [c.queue_infer(MODEL, rows64, [("x-priority", "1")]) for _ in range(3)]
        lows = [c.queue_infer(MODEL, rows64, [("x-priority", "3")]) for _ in range(4)]
        highs = [c.queue_infer(MODEL, rows64, params={"priority": 1}) for _ in range(4)]
        c.flush()
        rs = c.wait([*blockers, *lows, *highs], timeout=60)
        order = list(c.done_order)
        lat = {s: c.latency(s) for s in [*blockers, *lows, *highs]}
    assert all(r.status == 200 for r in rs), rs
    name = {**{s: f"A{i}" for i, s in enumerate(blockers)},
            **{s: f"L{i}" for i, s in enumerate(lows)},
            **{s: f"H{i}" for i, s in enumerate(highs)}}
    print("completion order:", " ".join(f"{name[s]}({lat[s] * 1e3:.0f}ms)" for s in order))
    pos = {s: i for i, s in enumerate(order)}
    assert max(pos[s] for s in highs) < min(pos[s] for s in lows), \
        [name[s] for s in order]
    # Each priority level is served in arrival order.
    assert [name[s] for s in order if s in lows] == ["L0", "L1", "L2", "L3"]
    assert [name[s] for s in order if s in highs] == ["H0", "H1", "H2", "H3"]


# ------------------------------------------------------------------ 8 ----

def _threads(pid):
    """{thread name: [(nice, scheduling policy), ...]} of process pid."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        # after "(comm)": field 3 is fields[0]; nice is field 19, policy 41
        out.setdefault(name, []).append((int(fields[16]), int(fields[38])))
    return out


def test_workers_yield_to_loops(slow_dir, start_gw):
    """Compute workers, and the OpenMP threads their batches use, run
    SCHED_BATCH at the backend's nice value; event loops stay at nice 0,
    SCHED_OTHER, so a request wakes a loop ahead of a running batch."""
    g = start_gw("nice", _one(slow_dir, max_batch=4, threads=2, routing={"policy": "round-robin"},
                              backends=[sm.backend_yaml("cpu0", [MODEL], threads=2, nice=15),
                                        sm.backend_yaml("cpu1", [MODEL])]))
    for _ in range(2):                      # one batch each: OpenMP threads exist now
        st, _, b = g.infer(MODEL, ROW)
        assert st == 200, b
    th = _threads(g.proc.pid)
    SCHED_OTHER, SCHED_BATCH = 0, 3
    assert th["igw-loop0"] == [(0, SCHED_OTHER)] and th["igw-loop1"] == [(0, SCHED_OTHER)], th
    # OpenMP threads inherit the worker's name, nice value and policy: cpu0
    # (2 threads per batch) has its worker and one OpenMP thread.
    assert th["igw-cpu0.0"] == [(15, SCHED_BATCH)] * 2, th
    assert th["igw-cpu1.0"] == [(10, SCHED_BATCH)], th      # the default
    assert th["igw-reaper"] == [(0, SCHED_OTHER)], th
