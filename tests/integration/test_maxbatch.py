"""The advertised max_batch_size is the one enforced (issue 9, defect 16).

config/gateway.yaml sets models[].max_batch 32 for digits, whose model.yaml
says max_batch_size 64.  max_batch is the most rows one *batch* holds; a
request up to the model's max_batch_size is accepted and, when larger than
a batch, runs as several batches (slices) whose rows come back together and
in order.  GET /v2/models/digits says max_batch_size: what a client may
send; one row more is a 400 naming that same limit.  Checked over HTTP/1.1
and HTTP/2 against the numpy reference (gwlib.RefModel), and through the
infergw_batch_rows histogram (no batch above 32 rows; a 64-row request is
two batches).
"""
import json
import threading

import numpy as np
import pytest

import gwlib
from conftest import Gateway
from gwlib import INFER, H2Client, check_infer_response, h1_request, infer_body

CONF_MAX_BATCH = 32
META = "/v2/models/digits"


@pytest.fixture(scope="module")
def mgw(tmp_path_factory):
    # Bodies of 65 rows of JSON exceed the suite's default 64 KiB limit.
    g = Gateway(tmp_path_factory.mktemp("gw-maxbatch"), "maxbatch", max_batch=CONF_MAX_BATCH,
                max_body_bytes=1 << 20, workers=2)
    g.start()
    yield g
    g.kill()
    assert g.proc.returncode == 0, g.log()[-3000:]


@pytest.fixture(scope="module")
def rows(model):
    """Distinct rows (so an answer out of order cannot pass)."""
    rng = np.random.default_rng(16)
    return rng.uniform(0, 16, size=(model.max_batch_size + 1, 64)).round(2)


def h1_post(port, body):
    status, hdrs, data = h1_request(port, "POST", INFER, body,
                                    headers=[("content-type", "application/json")])
    return status, data


def h2_post(port, body):
    with H2Client(port) as c:
        r = c.post(INFER, body)
    return r.status, bytes(r.body)


POSTS = {"http1": h1_post, "h2": h2_post}


def advertised(port, proto):
    if proto == "http1":
        status, _, data = h1_request(port, "GET", META)
    else:
        with H2Client(port) as c:
            r = c.get(META)
        status, data = r.status, bytes(r.body)
    assert status == 200, data
    return json.loads(data)["max_batch_size"]


def batch_hist(g):
    ms = g.metrics()
    lbl = dict(backend="cpu0", model="digits")
    return {k: gwlib.metric(ms, "infergw_batch_rows_" + k, **lbl) for k in ("count", "sum")} | {
        "le32": gwlib.metric(ms, "infergw_batch_rows_bucket", le="32", **lbl)}


@pytest.mark.parametrize("proto", ["http1", "h2"])
def test_advertised_limit_is_accepted_and_one_more_is_refused(mgw, model, rows, proto):
    mb = advertised(mgw.port, proto)
    assert mb == model.max_batch_size == 64      # model.yaml, not models[].max_batch
    assert mb > CONF_MAX_BATCH
    status, body = POSTS[proto](mgw.port, infer_body(rows[:mb]))
    assert status == 200, body[:300]
    check_infer_response(body, model, rows[:mb])
    status, body = POSTS[proto](mgw.port, infer_body(rows[:mb + 1]))
    assert status == 400, body[:300]
    err = json.loads(body)["error"]
    assert "inputs[0].shape[0]" in err and f"batch of {mb + 1} rows" in err, err
    assert f"expected 1 to {mb}" in err, err      # the limit named is the advertised one


@pytest.mark.parametrize("proto", ["http1", "h2"])
@pytest.mark.parametrize("n", [CONF_MAX_BATCH + 1, 50, 63])
def test_rows_above_one_batch_come_back_in_order(mgw, model, rows, proto, n):
    x = rows[7:7 + n]
    status, body = POSTS[proto](mgw.port, infer_body(x))
    assert status == 200, body[:300]
    check_infer_response(body, model, x)


def test_big_request_runs_as_several_batches(mgw, model, rows):
    """Idle gateway, one 64-row request: exactly two batches of 32 rows."""
    before = batch_hist(mgw)
    status, body = h2_post(mgw.port, infer_body(rows[:64]))
    assert status == 200, body[:300]
    check_infer_response(body, model, rows[:64])
    after = batch_hist(mgw)   # counted before the answer is posted
    assert after["count"] - before["count"] == 2, (before, after)
    assert after["sum"] - before["sum"] == 64, (before, after)
    # every batch ever run on this gateway held at most max_batch rows
    assert after["le32"] == after["count"], after


def test_mixed_concurrent_big_and_small(mgw, model, rows):
    """Big and small requests at once, multiplexed on one HTTP/2 connection
    and from HTTP/1.1 threads: every answer is 200 with its own rows."""
    sizes = [64, 1, 40, 3, 33, 7, 64, 2, 50, 1, 17, 64, 5, 31, 32, 9]
    starts = [(i * 5) % (len(rows) - 64) for i in range(len(sizes))]
    h1_results = {}

    def h1_worker(k):
        x = rows[starts[k]:starts[k] + sizes[k]]
        h1_results[k] = (x, *h1_post(mgw.port, infer_body(x)))

    threads = [threading.Thread(target=h1_worker, args=(k,)) for k in range(0, len(sizes), 3)]
    for t in threads:
        t.start()
    with H2Client(mgw.port) as c:
        sids = [(c.request("POST", INFER, infer_body(rows[s:s + n]),
                           [("content-type", "application/json")], flush=False), s, n)
                for s, n in zip(starts, sizes)]
        c._flush()
        answers = c.wait([sid for sid, _, _ in sids], timeout=30)
    for t in threads:
        t.join(30)
    for (sid, s, n), r in zip(sids, answers):
        assert r.status == 200, (n, r)
        check_infer_response(bytes(r.body), model, rows[s:s + n])
    assert len(h1_results) == len(threads)
    for x, status, body in h1_results.values():
        assert status == 200, body[:300]
        check_infer_response(body, model, x)
    assert batch_hist(mgw)["le32"] == batch_hist(mgw)["count"]


# ------------------------------------------------ cancellation (slow model) ----

@pytest.fixture(scope="module")
def slow_dir(tmp_path_factory):
    import slowmodel as sm
    return sm.write_slow_model(tmp_path_factory.mktemp("slowmodel") / "slow")


def test_cancelled_sliced_request_stops_its_slices(slow_dir, start_gw):
    """max_batch 1 on the slow model (milliseconds a batch): a 64-row request
    is 64 batches.  The client resets the stream once the first has run; the
    slices not started never run, the request counts as cancelled (one
    answer, none sent), and the gateway then serves the next request."""
    import slowmodel as sm

    g = start_gw("slicecancel", sm.config_text(
        [sm.model_yaml("slow", slow_dir, max_batch=1)], [sm.backend_yaml("cpu0", ["slow"])]))
    lbl = dict(backend="cpu0", model="slow")
    x = (np.arange(64 * 64) % 7).reshape(64, 64).astype(np.float64)
    # (a short body: it fits one flow-control window, sent before any read)
    before = g.metrics()
    n0 = gwlib.metric(before, "infergw_batch_rows_count", **lbl)
    with H2Client(g.port) as c:
        sid = c.request("POST", "/v2/models/slow/infer", infer_body(x),
                        [("content-type", "application/json")])
        for _ in range(500):
            if gwlib.metric(g.metrics(), "infergw_batch_rows_count", **lbl) > n0:
                break
        c.reset(sid)
        after = sm.wait_outcomes(g, before, "slow", 1)
        assert sm.outcome_delta(before, after, "slow") == {("cpu0", "cancelled"): 1}
        ran = gwlib.metric(g.metrics(), "infergw_batch_rows_count", **lbl) - n0
        assert 1 <= ran < 64, ran
        assert gwlib.metric(g.metrics(), "infergw_queue_depth", **lbl) == 0
        ok = c.post("/v2/models/slow/infer", infer_body(x[:3]))
    assert ok.status == 200, ok
    assert json.loads(bytes(ok.body))["outputs"][0]["shape"] == [3, 10]
    ran_later = gwlib.metric(g.metrics(), "infergw_batch_rows_count", **lbl) - n0
    assert ran_later == ran + 3, (ran, ran_later)   # no slice of the cancelled one ran since
