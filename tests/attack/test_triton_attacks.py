"""Attacks on the Triton extensions (issue 10): hostile classification
counts, parameter names spelled to slip past the refusal list, statistics
and configuration for names that are not models or that need escaping.
Every answer must be the documented status with a JSON (or msgpack) body
that parses, and the gateway must survive.  Bounded: a few dozen requests
against two gateways."""
import json

import msgpack
import numpy as np
import pytest

import attacklib
import gwlib
from gwlib import H1Conn, H2Client, JSON_CT

INFER = gwlib.INFER
ROWS = np.linspace(0.0, 16.0, 64 * 64).reshape(64, 64).round(3)


@pytest.fixture
def g(gw_factory):
    return gw_factory("triton", max_body_bytes=1 << 20)


def classify_doc(k, rows=1, key="classification"):
    doc = gwlib.infer_doc(ROWS[:rows], outputs=False)
    doc["outputs"] = [{"name": "probabilities", "parameters": {key: k}}]
    return doc


def strict_json(raw):
    def bad(tok):
        raise AssertionError(f"not JSON: {tok} in {raw[:200]!r}")
    return json.loads(raw, parse_constant=bad)


@pytest.mark.parametrize("k", [-1, -(2 ** 63), 1.5, 1e308, "3", True, None, [3], {"k": 3}])
def test_bad_class_count_is_400(g, k):
    with H1Conn(g.port) as c:
        for key in ("classification", "class_count"):
            st, h, body = c.request("POST", INFER, json.dumps(classify_doc(k, key=key)).encode(),
                                    [JSON_CT])
            gwlib.check_error_response((key, k), st, h, body, 400, [
                f"outputs[0].parameters.{key}: expected a non-negative integer"])
    attacklib.assert_alive(g)


def test_huge_class_count_is_capped_not_allocated(g, model):
    """2^63-1 (JSON), 2^64-1 (msgpack uint64) on 64 rows: 10 classes a row,
    no allocation sized by the count."""
    rss0 = attacklib.rss_kb(g.proc.pid)
    with H1Conn(g.port) as c:
        st, _, body = c.request("POST", INFER, json.dumps(classify_doc(2 ** 63 - 1, 64)).encode(),
                                [JSON_CT])
        assert st == 200, body
        out = strict_json(body)["outputs"][0]
        assert out["shape"] == [64, 10] and len(out["data"]) == 640
        raw = msgpack.packb(classify_doc(2 ** 64 - 1, 64))
        st, _, body = c.request("POST", INFER, raw, [("Content-Type", "application/msgpack"),
                                                     ("Accept", "application/msgpack")])
        assert st == 200, body
        out = msgpack.unpackb(body)["outputs"][0]
        assert list(out["shape"]) == [64, 10] and len(out["data"]) == 640
        # negative in msgpack (int64 min) is refused like JSON's
        raw = msgpack.packb(classify_doc(-(2 ** 63), 1))
        st, h, body = c.request("POST", INFER, raw, [("Content-Type", "application/msgpack")])
        gwlib.check_error_response("mp", st, h, body, 400, [
            "outputs[0].parameters.classification: expected a non-negative integer"])
    assert attacklib.rss_kb(g.proc.pid) - rss0 < 64 * 1024
    attacklib.assert_alive(g)


def test_refusal_cannot_be_spelled_around(g):
    """A JSON escape still names sequence_id; a duplicate key is malformed
    JSON; a msgpack key with a NUL after the name is another key (ignored,
    like any parameter infergw does not know)."""
    inp = '"inputs":[{"name":"input","datatype":"FP32","shape":[1,64],"data":[%s]}]' % \
        ",".join("1" for _ in range(64))
    with H1Conn(g.port) as c:
        st, h, body = c.request("POST", INFER, (
            '{"parameters":{"\\u0073equence_id":1},' + inp + "}").encode(), [JSON_CT])
        gwlib.check_error_response("escape", st, h, body, 400,
                                   ["parameters.sequence_id: not supported"])
        st, h, body = c.request("POST", INFER, (
            '{"parameters":{"priority":1,"priority":2},' + inp + "}").encode(), [JSON_CT])
        gwlib.check_error_response("dup", st, h, body, 400, ["malformed JSON"])
        doc = gwlib.infer_doc(ROWS[:1])
        doc["parameters"] = {"sequence_id\0": 1}
        st, _, body = c.request("POST", INFER, msgpack.packb(doc),
                                [("Content-Type", "application/msgpack")])
        assert st == 200, body
        for params in (5, "x", [1]):
            doc = gwlib.infer_doc(ROWS[:1])
            doc["outputs"][0]["parameters"] = params
            for ct, raw in ((JSON_CT, json.dumps(doc).encode()),
                            (("Content-Type", "application/msgpack"), msgpack.packb(doc))):
                st, h, body = c.request("POST", INFER, raw, [ct])
                gwlib.check_error_response(params, st, h, body, 400,
                                           ["outputs[0].parameters: expected a"])
    attacklib.assert_alive(g)


@pytest.mark.parametrize("path,status", [
    ("/v2/models/nope/stats", 404),
    ("/v2/models/stats/stats", 404),
    ("/v2/models/stats/config", 404),
    ("/v2/models/digits/stats/", 404),
    ("/v2/models/digits/config/x", 404),
    ("/v2/models/digits/versions/99999999999999999999/stats", 404),
    ("/v2/models/digits/versions//config", 404),
    ("/v2/models/" + "s" * 300 + "/stats", 404),
    ("/v2/models/%22%5C/stats", 404),
    ("/v2/models/digits/stats?x=1", 200),
])
def test_stats_and_config_for_what_is_not_a_model(g, path, status):
    for proto in ("h1", "h2"):
        if proto == "h1":
            st, _, body = gwlib.h1_request(g.port, "GET", path)
        else:
            with H2Client(g.port) as c:
                r = c.get(path)
            st, body = r.status, bytes(r.body)
        assert st == status, (proto, path, body[:200])
        doc = strict_json(body)
        if status != 200:
            assert set(doc) == {"error"}, doc
    attacklib.assert_alive(g)


def test_model_named_with_quotes(g, tmp_path):
    """A model or backend name that would need escaping is refused by the
    config (issue 11: names are [A-Za-z0-9_.-]{1,64}) with FILE:LINE:COL;
    a request naming such a model still gets a JSON 404 that gives the
    name back exactly."""
    import subprocess
    name = 'q"uo\\te'
    for bad_model, bad_backend, where, what in (
            (name, "b", "6:11", "models[0].name: model name: character 2 is '\"'"),
            ("digits", 'b"e', "9:11", "backends[0].name: backend name: character 2 is '\"'")):
        cfg = tmp_path / "quotes.yaml"
        cfg.write_text(f"""\
listen:
  address: 127.0.0.1
  port: 8000
  threads: 1
models:
  - name: '{bad_model}'
    path: {gwlib.MODEL_DIR}
backends:
  - name: '{bad_backend}'
    kind: cpu
    workers: 1
""")
        chk = subprocess.run([str(gwlib.BINARY), "--check-config", str(cfg)],
                             capture_output=True, text=True, timeout=30)
        assert chk.returncode == 1, chk
        assert chk.stderr.startswith(f"{cfg}:{where}: {what}; names are 1 to 64 characters"), \
            chk.stderr
    with H2Client(g.port) as c:
        r = c.get("/v2/models/" + name + "x/stats")
        assert r.status == 404
        assert strict_json(bytes(r.body))["error"] == f'unknown model "{name}x"'
    attacklib.assert_alive(g)
