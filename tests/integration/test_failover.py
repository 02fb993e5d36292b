"""Failover through the real gateway, on the test-only `fake` backend kind
(backends/fake/fake.c): it answers output[row][j] = (j + 1) * sum(row), so
every value is checkable, and `fail_every: N` gives every Nth batch back as
retryable.  A request a backend gives back is placed on another backend
with what is left of its deadline, or answered 503: every request gets
exactly one answer."""
import json

import numpy as np

import gwlib
import slowmodel as sm
from gwlib import H2Client, MODEL_DIR

N = 150


def _fake(name, *, workers=2, latency_us=300, fail_every=0, down_after=0):
    return (f"  - name: {name}\n"
            f"    kind: fake\n"
            f"    workers: {workers}\n"
            f"    latency_us: {latency_us}\n"
            f"    fail_every: {fail_every}\n"
            f"    down_after: {down_after}\n"
            f"    models: [digits]\n")


def _config(backends):
    # A configured warm start: no calibration batches before the traffic.
    return sm.config_text([sm.model_yaml("digits", MODEL_DIR, max_batch=8,
                                         extra="    service_time_us: {base: 300, per_row: 1}\n")],
                          backends, routing={"policy": "round-robin"})


def _rows(k):
    """Request k's input: 1 to 3 rows, distinct values."""
    n = 1 + k % 3
    return (np.arange(n * 64, dtype=np.float64).reshape(n, 64) % 17 - 8.0 + k) / 16.0


def _flood(port):
    """N concurrent requests on one connection; [(rows, H2Resp)] in order."""
    with H2Client(port, timeout=30.0) as c:
        sent = [(_rows(k), c.request("POST", gwlib.INFER, gwlib.infer_body(_rows(k)),
                                     [gwlib.JSON_CT], flush=False)) for k in range(N)]
        c._flush()
        c.wait()
        return [(rows, c.streams[sid]) for rows, sid in sent]


def _expect(rows):
    return (np.arange(1, 11, dtype=np.float64)[None, :] * rows.sum(axis=1)[:, None])


def _h2_codes(port):
    """HTTP/2 responses by code, read over HTTP/1.1 once they settle."""
    return gwlib.response_codes(gwlib.settled_metrics(port, "h2", "h1"), "h2")


def test_retryable_failures_fail_over(start_gw):
    """fake0 gives every batch back: each request runs on fake1 instead,
    answered once with fake1's values; nothing is answered 5xx."""
    g = start_gw("failover", _config([_fake("fake0", fail_every=1), _fake("fake1")]))
    for rows, resp in _flood(g.port):
        assert resp.status == 200, (resp.status, bytes(resp.body)[:200])
        doc = json.loads(bytes(resp.body))
        out = gwlib.check_infer_doc(doc, rows.shape[0])
        got = np.asarray(out["data"], dtype=np.float64).reshape(rows.shape[0], 10)
        np.testing.assert_allclose(got, _expect(rows), rtol=1e-5, atol=1e-4)
    assert "kind=fake" in g.log()
    assert _h2_codes(g.admin_port) == {"200": N}    # one answer each, none extra


def test_some_failures_fail_over(start_gw):
    """Every 3rd batch of fake0 fails: those requests move to fake1, the
    others run on fake0; all answered 200 once with the right values."""
    g = start_gw("failover3", _config([_fake("fake0", fail_every=3), _fake("fake1")]))
    for rows, resp in _flood(g.port):
        assert resp.status == 200, (resp.status, bytes(resp.body)[:200])
        got = np.asarray(json.loads(bytes(resp.body))["outputs"][0]["data"])
        np.testing.assert_allclose(got.reshape(rows.shape[0], 10), _expect(rows),
                                   rtol=1e-5, atol=1e-4)
    assert _h2_codes(g.admin_port) == {"200": N}


def test_failover_never_returns_to_a_backend_that_failed(start_gw):
    """fake0 and fake1 give every batch back, fake2 serves: a request the
    first two failed must reach fake2 (a request only avoiding the last
    backend that failed it could bounce fake0 -> fake1 -> fake0 -> fake1
    and be answered 503 after its 3 retries).  All 200 with fake2's
    values; fake2 ran every row."""
    g = start_gw("failover_avoid", _config([_fake("fake0", fail_every=1),
                                            _fake("fake1", fail_every=1),
                                            _fake("fake2")]))
    rows_sent = 0
    for rows, resp in _flood(g.port):
        assert resp.status == 200, (resp.status, bytes(resp.body)[:200])
        got = np.asarray(json.loads(bytes(resp.body))["outputs"][0]["data"])
        np.testing.assert_allclose(got.reshape(rows.shape[0], 10), _expect(rows),
                                   rtol=1e-5, atol=1e-4)
        rows_sent += rows.shape[0]
    assert _h2_codes(g.admin_port) == {"200": N}
    m = gwlib.read_metrics(g.admin_port)
    served = gwlib.metric(m, "infergw_backend_rows_total", backend="fake2")
    assert served == rows_sent, (served, rows_sent)


def test_nowhere_to_fail_over_503(start_gw):
    """Both backends give everything back: every request is answered 503,
    exactly once, with a message naming the failure."""
    g = start_gw("failover_all", _config([_fake("fake0", fail_every=1),
                                          _fake("fake1", fail_every=1)]))
    for rows, resp in _flood(g.port):
        assert resp.status == 503, (resp.status, bytes(resp.body)[:200])
        err = json.loads(bytes(resp.body))["error"]
        assert "failed the request" in err, err
    assert _h2_codes(g.admin_port) == {"503": N}


def test_backend_down_mid_flight(start_gw):
    """fake0 goes down (its own state) after 3 batches: what it held and
    what was queued on it fail over to fake1, the router stops sending it
    anything at once, and the admin API and /metrics show it down."""
    g = start_gw("failover_down", _config([_fake("fake0", latency_us=2000, down_after=3),
                                           _fake("fake1")]))
    for rows, resp in _flood(g.port):
        assert resp.status == 200, (resp.status, bytes(resp.body)[:200])
        got = np.asarray(json.loads(bytes(resp.body))["outputs"][0]["data"])
        np.testing.assert_allclose(got.reshape(rows.shape[0], 10), _expect(rows),
                                   rtol=1e-5, atol=1e-4)
    assert _h2_codes(g.admin_port) == {"200": N}
    st, _, body = gwlib.h1_request(g.admin_port, "GET", "/admin/backends")
    assert st == 200, body
    states = {b["name"]: b["state"] for b in json.loads(body)["backends"]}
    assert states == {"fake0": "down", "fake1": "up"}, states
    assert "calibrated service time" not in g.log()   # it went down under traffic
    ms = gwlib.read_metrics(g.admin_port)
    assert gwlib.metric(ms, "infergw_backend_up", backend="fake0") == 0
    assert gwlib.metric(ms, "infergw_backend_up", backend="fake1") == 1
    # fake0 ran its 3 batches before going down (batches given back are
    # not counted as executed)
    assert gwlib.metric(ms, "infergw_batch_rows_count", backend="fake0", model="digits") == 3
