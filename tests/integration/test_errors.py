"""Every bad request gets its status and a message naming the field, over one
multiplexed HTTP/2 connection (good streams on it keep succeeding) and over
HTTP/1.1 keep-alive; the response counters move by exactly what we caused."""
import json
import time

import numpy as np
import pytest

import gwlib
from conftest import MAIN_MAX_BODY
from gwlib import (INFER, JSON_CT, H1Conn, H2Client, check_error_response,
                   check_infer_response, infer_body, metric)


def _doc(shape=(2, 64), n=None, data=None, datatype="FP32", name="input", outputs=None):
    if data is None:
        count = int(np.prod(shape)) if n is None else n
        data = [float(i % 17) for i in range(count)]
    d = {"id": "bad", "inputs": [{"name": name, "datatype": datatype,
                                  "shape": list(shape), "data": data}]}
    if outputs is not None:
        d["outputs"] = outputs
    return json.dumps(d).encode()


def _bad_string_at_5():
    data = [1.0] * 64
    data[5] = "five"
    return _doc(shape=(1, 64), data=data)


def _ragged_nested():
    # shape [2, 64] and 128 numbers in all, but rows of 63 and 65
    return _doc(shape=(2, 64), data=[[1.0] * 63, [2.0] * 65])


MULTILINE_BAD = b'{\n  "inputs": [\n    {"name": "input",,}\n  ]\n}'

# (id, method, path, body, status, [substrings of error], {header: value})
CASES = [
    ("malformed-json", "POST", INFER, b'{"inputs": [', 400,
     ["malformed JSON at line 1 column"], {}),
    ("malformed-json-multiline", "POST", INFER, MULTILINE_BAD, 400,
     ["malformed JSON at line 3 column"], {}),
    ("empty-body", "POST", INFER, b"", 400, ["inputs"], {}),
    ("not-an-object", "POST", INFER, b"[1, 2]", 400, ["object"], {}),
    ("no-inputs", "POST", INFER, b"{}", 400, ["inputs"], {}),
    ("zero-inputs", "POST", INFER, b'{"inputs": []}', 400, ["inputs"], {}),
    ("wrong-shape", "POST", INFER, _doc(shape=(2, 63)), 400,
     ["inputs[0].shape: expected [-1, 64], got [2, 63]"], {}),
    ("rank-1-shape", "POST", INFER, _doc(shape=(64,)), 400, ["inputs[0].shape"], {}),
    ("zero-rows", "POST", INFER, _doc(shape=(0, 64)), 400, ["inputs[0].shape"], {}),
    ("count-mismatch", "POST", INFER, _doc(shape=(2, 64), n=127), 400,
     ["inputs[0].data: expected 128 values for shape [2, 64], got 127"], {}),
    ("not-a-number", "POST", INFER, _bad_string_at_5(), 400,
     ["inputs[0].data[5]: expected a number, got a string"], {}),
    ("wrong-datatype", "POST", INFER, _doc(datatype="INT32"), 400,
     ["inputs[0].datatype: expected FP32, got INT32"], {}),
    ("wrong-input-name", "POST", INFER, _doc(name="pixels"), 400,
     ["inputs[0].name", "pixels"], {}),
    ("unknown-output", "POST", INFER, _doc(outputs=[{"name": "logits"}]), 400,
     ["outputs[0].name", "logits"], {}),
    ("unknown-model", "POST", "/v2/models/nope/infer", _doc(), 404,
     ['unknown model "nope"'], {}),
    ("unknown-path", "GET", "/foo", None, 404, ["no route for GET /foo"], {}),
    ("get-infer", "GET", INFER, None, 405, ["GET"], {"allow": "POST"}),
    ("post-live", "POST", "/v2/health/live", b"{}", 405, ["POST"], {"allow": "GET"}),
    ("too-large", "POST", INFER, b" " * (MAIN_MAX_BODY + 4096), 413,
     ["request body exceeds limits.max_body_bytes"], {}),
]
CASE_IDS = [c[0] for c in CASES]


def _metrics_h2(gw):
    return gwlib.read_metrics(gw.metrics_port, "h2")


def _wait_metrics(gw, want, via="h1"):
    return gwlib.wait_metrics(gw.metrics_port, want, via)


def _settled(gw, proto, via):
    return gwlib.settled_metrics(gw.metrics_port, proto, via)



@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_error_http1(gw, case):
    cid, method, path, body, st, subs, hd = case
    with H1Conn(gw.port) as c:
        status, hdrs, rbody = c.request(method, path, body,
                                        [("Content-Type", "application/json")] if body else [])
        check_error_response(cid, status, hdrs, rbody, st, subs, hd)


def test_errors_multiplexed_http2_with_good_streams(gw, model, heldout):
    """All bad cases and good inferences interleaved on ONE h2 connection,
    all in flight at once; every stream gets its own right answer, the
    connection survives, and the h2 response counters move by exactly that."""
    x, _ = heldout
    before = _settled(gw, "h2", via="h1")
    caused = {}
    with H2Client(gw.port, timeout=30) as c:
        plan = []
        for i, case in enumerate(CASES):
            cid, method, path, body, st, subs, hd = case
            rows = x[i:i + 1 + i % 3]
            plan.append(("good", (rows, f"good{i}"), c.infer(rows, id=f"good{i}")))
            hdrs = [JSON_CT] if body is not None else []
            plan.append(("bad", case, c.request(method, path, body, hdrs)))
        rows = x[100:105]
        plan.append(("good", (rows, "good-last"), c.infer(rows, id="good-last")))
        c.wait([sid for _, _, sid in plan])
        for kind, what, sid in plan:
            r = c.streams[sid]
            if kind == "good":
                assert r.status == 200, r
                check_infer_response(bytes(r.body), model, what[0], id=what[1])
                caused["200"] = caused.get("200", 0) + 1
            else:
                cid, method, path, body, st, subs, hd = what
                assert r.status is not None, (cid, r)
                check_error_response(cid, r.status, r.headers, r.body, st, subs, hd)
                caused[str(st)] = caused.get(str(st), 0) + 1
        # the connection still serves after all that
        assert c.goaway is None, c.goaway
        rows = x[200:203]
        r = c.post(INFER, infer_body(rows, id="after"))
        assert r.status == 200, r
        check_infer_response(bytes(r.body), model, rows, id="after")
        caused["200"] += 1
        r = c.get("/v2/health/ready")
        assert (r.status, r.json()) == (200, {"ready": True})
        caused["200"] += 1

    gwlib.assert_codes_moved(gw.metrics_port, before, "h2", caused, via="h1")


def test_http1_keepalive_bad_then_good(gw, model, heldout):
    """On one HTTP/1.1 socket: each bad request (except 413, which may close)
    followed by a good one; the socket stays usable throughout; counters
    for http/1.1 move by exactly what we sent (/metrics is read over h2)."""
    x, _ = heldout
    before = _settled(gw, "http/1.1", via="h2")
    caused = {}
    with H1Conn(gw.port) as c:
        for i, case in enumerate(CASES):
            cid, method, path, body, st, subs, hd = case
            if st == 413:
                continue
            status, hdrs, rbody = c.request(
                method, path, body, [("Content-Type", "application/json")] if body else [])
            check_error_response(cid, status, hdrs, rbody, st, subs, hd)
            assert hdrs.get("connection", "").lower() != "close", (cid, hdrs)
            caused[str(st)] = caused.get(str(st), 0) + 1
            rows = x[i:i + 2]
            status, hdrs, rbody = c.request("POST", INFER, infer_body(rows, id=cid),
                                            [("Content-Type", "application/json")])
            assert status == 200, (cid, rbody)
            check_infer_response(rbody, model, rows, id=cid)
            caused["200"] = caused.get("200", 0) + 1
    gwlib.assert_codes_moved(gw.metrics_port, before, "http/1.1", caused, via="h2")


def test_http1_too_large_answered_from_headers(gw):
    """413 comes from Content-Length alone, without the server waiting for
    (or reading) a body it will refuse."""
    with H1Conn(gw.port, timeout=10) as c:
        c.send(H1Conn.build("POST", INFER, None,
                            [("Content-Type", "application/json"),
                             ("Content-Length", str(10 * MAIN_MAX_BODY))], gw.port))
        status, hdrs, body = c.read_response()
    check_error_response("413-headers", status, hdrs, body, 413,
                         ["request body exceeds limits.max_body_bytes"])


def test_http2_too_large_answered_from_content_length(gw, model, heldout):
    x, _ = heldout
    with H2Client(gw.port) as c:
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                                  (":authority", "127.0.0.1"), (":path", INFER),
                                  ("content-type", "application/json"),
                                  ("content-length", str(10 * MAIN_MAX_BODY))])
        c.streams[sid] = gwlib.H2Resp()
        c._flush()
        r = c.wait([sid])[0]  # no body sent: the answer must not wait for it
        check_error_response("413-h2", r.status, r.headers, r.body, 413,
                             ["request body exceeds limits.max_body_bytes"])
        ok = c.post(INFER, infer_body(x[:3]))
        assert ok.status == 200, ok
        check_infer_response(bytes(ok.body), model, x[:3])


def test_http1_oversized_header_and_garbage(gw):
    with H1Conn(gw.port) as c:
        c.send(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000
               + b"\r\n\r\n")
        status, _, body = c.read_response()
        gwlib.assert_error(status, body, 431, "max_header_bytes")
    with H1Conn(gw.port) as c:
        c.send(b"GARBAGE\r\n\r\n")
        status, hdrs, body = c.read_response()
        assert status == 400, (status, body)
        assert "error" in json.loads(body)
    st, _, body = gwlib.h1_request(gw.port, "GET", "/v2/health/live")
    assert (st, json.loads(body)) == (200, {"live": True})


def test_ragged_nested_data_rejected(gw):
    """BUG (found by this suite): nested data whose rows do not match the
    declared shape is accepted when the total count happens to match, so the
    rows are silently re-sliced (row 0 gets row 1's first value)."""
    with H1Conn(gw.port) as c:
        status, hdrs, body = c.request("POST", INFER, _ragged_nested(),
                                       [("Content-Type", "application/json")])
    assert status == 400, (
        "ragged nested data [[63 values], [65 values]] for shape [2, 64] must be a 400 "
        f"naming inputs[0].data; got {status} {body[:200]!r}")
    assert "inputs[0].data" in json.loads(body)["error"]


def test_queue_full_429(gw_factory, model, heldout):
    """max_queue 4: four requests wait for the batch delay (/metrics shows the
    queue holding exactly 4); every request sent while it is full gets 429 +
    Retry-After, and only the four are executed."""
    x, _ = heldout
    g = gw_factory("q", max_queue=4, max_queue_delay_us=3000000, max_batch=64)
    before = g.metrics()
    n_full = 8
    with H2Client(g.port, timeout=30) as c:
        sids = [c.request("POST", INFER, infer_body(x[i:i + 1], id=str(i)), [JSON_CT],
                          flush=False) for i in range(4)]
        c._flush()
        _wait_depth(g, 4)
        late = [c.request("POST", INFER, infer_body(x[i:i + 1], id=str(i)), [JSON_CT],
                          flush=False) for i in range(4, 4 + n_full)]
        c._flush()
        full = c.wait(late)
        assert _depth(g) == 4, "the queue must still hold the first four"
        ok = c.wait(sids)
    for i, r in enumerate(ok):
        assert r.status == 200, (i, r)
        check_infer_response(bytes(r.body), model, x[i:i + 1], id=str(i))
    for r in full:
        assert r.status == 429, r
        assert r.headers.get("content-type", "").startswith("application/json")
        assert int(r.headers["retry-after"]) >= 1, r.headers
        assert r.json()["error"] == "queue for model digits is full", r
    after = _wait_metrics(g, [(("infergw_http_responses_total",
                                {"proto": "h2", "code": "429"}), n_full),
                              (("infergw_backend_rows_total", {"backend": "cpu0"}), 4)])
    assert metric(after, "infergw_http_responses_total", proto="h2", code="429") - \
        metric(before, "infergw_http_responses_total", proto="h2", code="429") == n_full
    assert metric(after, "infergw_http_responses_total", proto="h2", code="200") - \
        metric(before, "infergw_http_responses_total", proto="h2", code="200") == 4
    assert metric(after, "infergw_backend_rows_total", backend="cpu0") - \
        metric(before, "infergw_backend_rows_total", backend="cpu0") == 4
    assert metric(after, "infergw_requests_total", backend="none", model="digits",
                  outcome="rejected") - \
        metric(before, "infergw_requests_total", backend="none", model="digits",
               outcome="rejected") == n_full


def _depth(g):
    return metric(g.metrics(), "infergw_queue_depth", backend="cpu0", model="digits")


def _wait_depth(g, want, timeout=10.0):
    """Poll /metrics until digits' queue on cpu0 holds exactly want requests."""
    deadline = time.monotonic() + timeout
    while _depth(g) != want:
        assert time.monotonic() < deadline, f"queue depth {_depth(g)}, expected {want}"
        time.sleep(0.02)


def test_admission_before_parsing_respects_body_parameters(h2client, model):
    """A body without `parameters` is admitted (or not) on headers and model
    defaults before it is parsed: an impossible x-slo-ms is a 429 at once,
    even for a body that would not parse.  A body that sets its own timeout
    is parsed first and its timeout wins over the header."""
    import numpy as np

    path = "/v2/models/digits/infer"
    row = [float(v) for v in np.arange(64) % 17]
    plain = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64],
                                    "data": row}]})
    r = h2client.post(path, content=plain, headers={"x-slo-ms": "0.001"})
    assert r.status_code == 429, r.text
    assert "within its objective of 1 us" in r.json()["error"]
    assert int(r.headers["retry-after"]) >= 1
    r = h2client.post(path, content=b"{not json", headers={"x-slo-ms": "0.001"})
    assert r.status_code == 429, r.text
    with_params = json.dumps({"parameters": {"timeout": 5000000},
                              "inputs": [{"name": "input", "datatype": "FP32",
                                          "shape": [1, 64], "data": row}]})
    r = h2client.post(path, content=with_params, headers={"x-slo-ms": "0.001"})
    assert r.status_code == 200, r.text
    got = np.asarray(r.json()["outputs"][0]["data"])
    np.testing.assert_allclose(got, model.forward(np.asarray([row]))[0], rtol=1e-5, atol=1e-6)
