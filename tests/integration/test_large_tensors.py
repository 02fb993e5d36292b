"""Large tensors both ways (mlp-large, 64 rows: 256 KiB in, 256 KiB out, as
Triton's binary extension): the request body is gathered in one block where
its content-length says it is large (read straight into it over HTTP/1.1),
and the answer's tensor goes out by reference, in 16 KiB blocks that the
native HTTP/2 engine moves into DATA frames whole.  Each answer is checked
value by value against a float64 forward pass, over HTTP/1.1 (the request
sent whole and in uneven pieces, a health request pipelined right behind
it), and over HTTP/2 with a wide window and with the default 64 KiB one
(flow control then cuts frames inside the answer's blocks); the same as
msgpack (the answer's data bin appended by reference too)."""
import json
import time

import h2.settings
import msgpack
import numpy as np
import pytest

import gwlib
from test_int8 import MLP_LARGE, Ref, serve

ROWS = 64
WIDE = 1 << 30


@pytest.fixture(scope="module")
def ref():
    if not (MLP_LARGE / "model.safetensors").exists():
        pytest.skip(f"{MLP_LARGE}/model.safetensors not generated (`make models`)")
    return Ref(MLP_LARGE)


def _request(seed):
    """(body, header length, x): a 64-row binary request with seeded rows."""
    x = np.random.default_rng(seed).uniform(-1, 1, (ROWS, 1024)).astype("<f4")
    hdr = json.dumps({"id": str(seed),
                      "inputs": [{"name": "input", "shape": [ROWS, 1024], "datatype": "FP32",
                                  "parameters": {"binary_data_size": x.nbytes}}],
                      "outputs": [{"name": "probabilities",
                                   "parameters": {"binary_data": True}}]}).encode()
    return hdr + x.tobytes(), len(hdr), x


def _check(ref, headers, body, x, seed):
    """The binary answer (headers: lower-case names) against the reference."""
    hl = int(headers["inference-header-content-length"])
    doc = json.loads(bytes(body[:hl]))
    assert doc["id"] == str(seed), doc
    out = doc["outputs"][0]
    assert out["shape"] == [ROWS, 1024] and out["datatype"] == "FP32", out
    assert out["parameters"]["binary_data_size"] == ROWS * 1024 * 4, out
    assert len(body) == hl + ROWS * 1024 * 4, len(body)
    got = np.frombuffer(bytes(body[hl:]), dtype="<f4").reshape(ROWS, 1024)
    np.testing.assert_allclose(got, ref.forward(x), rtol=1e-3, atol=1e-6)


def _headers(hl):
    return [("content-type", "application/octet-stream"),
            ("inference-header-content-length", str(hl))]


def test_large_tensors_http1(start_gw, ref):
    g = serve(start_gw, [(ref.name, MLP_LARGE)], max_body=8 << 20)
    plans = {"whole": None, "pieces": [300, 40_000, 16_383, 70_001, 7, 100_000]}
    for seed, (how, cuts) in enumerate(plans.items(), 1):
        body, hl, x = _request(seed)
        wire = gwlib.H1Conn.build("POST", f"/v2/models/{ref.name}/infer", body, _headers(hl)) + \
            gwlib.H1Conn.build("GET", "/v2/health/ready")
        with gwlib.H1Conn(g.port, timeout=30) as c:
            if cuts is None:
                c.send(wire)
            else:
                pos = 0
                for k in cuts:
                    c.send(wire[pos:pos + k])
                    pos += k
                    time.sleep(0.01)
                c.send(wire[pos:])
            st, hdrs, rbody = c.read_response()
            assert st == 200, (how, st, bytes(rbody)[:300])
            _check(ref, hdrs, rbody, x, seed)
            st2, _, _ = c.read_response()
            assert st2 == 200, (how, "the pipelined health request", st2)


@pytest.mark.parametrize("window", ["wide", "default"])
def test_large_tensors_http2(start_gw, ref, window):
    g = serve(start_gw, [(ref.name, MLP_LARGE)], max_body=8 << 20)
    reqs = [_request(10 + i) for i in range(4)]
    with gwlib.H2Client(g.port, timeout=60) as c:
        if window == "wide":
            c.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WIDE - 1})
            c.conn.increment_flow_control_window(WIDE - 1 - 65535)
            c._flush()
        sids = [c.request("POST", f"/v2/models/{ref.name}/infer", body, _headers(hl),
                          flush=False) for body, hl, _ in reqs]
        c._flush()
        rs = c.wait(sids, timeout=60)
    for i, (r, (_, _, x)) in enumerate(zip(rs, reqs)):
        assert r.status == 200, (i, r)
        _check(ref, r.headers, r.body, x, 10 + i)


@pytest.mark.parametrize("proto", ["h1", "h2"])
def test_large_tensors_msgpack(start_gw, ref, proto):
    g = serve(start_gw, [(ref.name, MLP_LARGE)], max_body=8 << 20)
    x = np.random.default_rng(30).uniform(-1, 1, (ROWS, 1024)).astype("<f4")
    body = msgpack.packb({"id": "mp", "inputs": [{"name": "input", "datatype": "FP32",
                                                  "shape": [ROWS, 1024], "data": x.tobytes()}]},
                         use_bin_type=True)
    hdrs = [("content-type", "application/msgpack"), ("accept", "application/msgpack")]
    path = f"/v2/models/{ref.name}/infer"
    if proto == "h1":
        st, rh, rb = gwlib.h1_request(g.port, "POST", path, body, hdrs, timeout=30)
    else:
        with gwlib.H2Client(g.port, timeout=60) as c:
            r = c.wait([c.request("POST", path, body, hdrs)], timeout=60)[0]
        st, rh, rb = r.status, r.headers, r.body
    assert st == 200, (st, bytes(rb)[:300])
    assert rh["content-type"].startswith("application/msgpack"), rh
    doc = msgpack.unpackb(bytes(rb), raw=False)
    assert doc["id"] == "mp", doc.keys()
    out = doc["outputs"][0]
    assert out["shape"] == [ROWS, 1024] and out["datatype"] == "FP32", out.keys()
    got = np.frombuffer(out["data"], dtype="<f4").reshape(ROWS, 1024)
    np.testing.assert_allclose(got, ref.forward(x), rtol=1e-3, atol=1e-6)
