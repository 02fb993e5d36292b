"""Inference values against a float64 numpy reference of model.yaml's layers,
and the held-out accuracy floor."""
import json

import httpx
import numpy as np
import pytest

from gwlib import INFER, H2Client, H1Conn, check_infer_response, infer_body


@pytest.fixture(scope="module")
def rows7(heldout):
    x, _ = heldout
    return x[10:17]


def row_cases(test):
    """Run test for n = 1 and 7 rows, each with flat and with nested data."""
    test = pytest.mark.parametrize("n", [1, 7])(test)
    return pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])(test)


def test_reference_model_is_sane(model, heldout):
    x, y = heldout
    p = model.forward(x)
    assert p.shape == (len(x), 10)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert (p.argmax(axis=1) == y).mean() >= 0.95


@row_cases
def test_infer_values_http2(gw, model, heldout, n, nested):
    x, _ = heldout
    rows = x[40:40 + n]
    with H2Client(gw.port) as c:
        r = c.post(INFER, infer_body(rows, id=f"h2-{n}-{nested}", nested=nested))
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("application/json")
    check_infer_response(bytes(r.body), model, rows, id=f"h2-{n}-{nested}")


@row_cases
def test_infer_values_http1(gw, model, heldout, n, nested):
    x, _ = heldout
    rows = x[80:80 + n]
    with H1Conn(gw.port) as c:
        st, hd, body = c.request("POST", INFER, infer_body(rows, id="h1", nested=nested),
                                 [("Content-Type", "application/json")])
    assert st == 200, body
    assert hd["content-type"].startswith("application/json")
    check_infer_response(body, model, rows, id="h1")


def test_infer_httpx_both_protocols(gw, model, rows7):
    for kw, ver in (({"http1": False, "http2": True}, "HTTP/2"),
                    ({"http1": True, "http2": False}, "HTTP/1.1")):
        with httpx.Client(base_url=gw.base, timeout=10, **kw) as c:
            r = c.post(INFER, content=infer_body(rows7, id="abc"),
                       headers={"content-type": "application/json"})
        assert r.http_version == ver
        assert r.status_code == 200, r.text
        check_infer_response(r.content, model, rows7, id="abc")


def test_id_only_echoed_when_given_and_outputs_optional(gw, model, rows7):
    with H2Client(gw.port) as c:
        no_id = c.post(INFER, infer_body(rows7))
        no_outputs = c.post(INFER, infer_body(rows7, id="o", outputs=False))
        # a non-trivial id survives JSON escaping both ways
        odd = 'id "with" \\ quotes/ünïcode'
        odd_r = c.post(INFER, infer_body(rows7[:1], id=odd))
    assert no_id.status == 200 and no_outputs.status == 200 and odd_r.status == 200
    check_infer_response(bytes(no_id.body), model, rows7)          # asserts no "id"
    check_infer_response(bytes(no_outputs.body), model, rows7, id="o")
    check_infer_response(bytes(odd_r.body), model, rows7[:1], id=odd)


def test_versioned_infer_path(gw, model, rows7):
    with H2Client(gw.port) as c:
        ok = c.post("/v2/models/digits/versions/1/infer", infer_body(rows7, id="v1"))
        bad = c.post("/v2/models/digits/versions/2/infer", infer_body(rows7))
    assert ok.status == 200, ok
    check_infer_response(bytes(ok.body), model, rows7, id="v1")
    assert bad.status == 404, bad
    assert "2" in bad.json()["error"]


def test_max_batch_rows(gw, model, heldout):
    """A batch of exactly max_batch_size rows is served; one more is a 400."""
    x, _ = heldout
    mb = model.max_batch_size
    with H2Client(gw.port) as c:
        full = c.post(INFER, infer_body(x[:mb]))
        over = c.post(INFER, infer_body(x[:mb + 1]))
    assert full.status == 200, full
    check_infer_response(bytes(full.body), model, x[:mb])
    assert over.status == 400, over
    assert "inputs[0].shape" in over.json()["error"], over


def test_integer_and_float_json_numbers(gw, model, heldout):
    """JSON ints (0..16 pixels), floats and exponents are all numbers."""
    x, _ = heldout
    row = x[5].astype(np.float64)
    data = [int(v) if i % 3 == 0 else (float(v) if i % 3 == 1 else f"{v:e}")
            for i, v in enumerate(row)]
    text = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64],
                                   "data": [0] * 64}]})
    text = text.replace(json.dumps([0] * 64), "[" + ", ".join(str(d) for d in data) + "]")
    with H2Client(gw.port) as c:
        r = c.post(INFER, text.encode())
    assert r.status == 200, r
    check_infer_response(bytes(r.body), model, row)


def test_heldout_accuracy(gw, model, heldout):
    x, y = heldout
    n = len(x)
    chunk = 32
    got = np.zeros((n, 10))
    with H2Client(gw.port, timeout=60) as c:
        sids = []
        for lo in range(0, n, chunk):
            sids.append((lo, c.infer(x[lo:lo + chunk], id=f"chunk{lo}")))
        for lo, sid in sids:
            r = c.wait([sid])[0]
            assert r.status == 200, (lo, r)
            got[lo:lo + chunk] = check_infer_response(
                bytes(r.body), model, x[lo:lo + chunk], id=f"chunk{lo}")
        # some one-row requests too, multiplexed, must agree with the chunked answers
        singles = {i: c.infer(x[i:i + 1], id=str(i)) for i in range(0, n, 17)}
        for i, sid in singles.items():
            r = c.wait([sid])[0]
            assert r.status == 200, (i, r)
            p = check_infer_response(bytes(r.body), model, x[i:i + 1], id=str(i))
            np.testing.assert_allclose(p[0], got[i], rtol=1e-5, atol=1e-6)
    acc = float((got.argmax(axis=1) == y).mean())
    ref_acc = float((model.forward(x).argmax(axis=1) == y).mean())
    print(f"\nheld-out accuracy via gateway: {acc:.4f} on {n} rows "
          f"(reference {ref_acc:.4f})")
    assert (got.argmax(axis=1) == model.forward(x).argmax(axis=1)).all()
    assert acc >= 0.95, acc
