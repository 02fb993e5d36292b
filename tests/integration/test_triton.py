"""Triton's HTTP extensions as Triton's clients and tools use them (issue 10,
items 1, 2, 5 and 6): model configuration, statistics, classification, and
the parameters infergw refuses rather than ignores.

tritonclient and perf_analyzer are not installed here: the requests are the
ones tritonclient.http builds (InferRequestedOutput(class_count=k) sends
outputs[].parameters.classification; set_shared_memory sends
shared_memory_region / _byte_size / _offset; a sequence sends sequence_id,
sequence_start, sequence_end), and test_perf_analyzer_startup does what
perf_analyzer does at start-up with GET .../config.  Values are checked
against model.yaml, the gateway.yaml written here, and gwlib.RefModel.
"""
import json
import struct
import time

import msgpack
import numpy as np
import pytest

import gwlib
from gwlib import H1Conn, H2Client, JSON_CT

MODEL = "/v2/models/digits"
INFER = MODEL + "/infer"

# gateway.yaml of the config test: every dynamic_batching source set to a
# value other than its default, two backends hosting digits.
CONFIG_TEXT = """\
listen:
  address: 127.0.0.1
  port: 8000
  threads: 1
limits:
  max_body_bytes: 1048576
routing:
  priority_levels: 4
log:
  level: info
models:
  - name: digits
    path: {model_dir}
    max_batch: 32
    max_queue_delay_us: 300
    max_queue: 77
    slo_ms: 250
    priority: 2
    preferred_batch_sizes: [4, 8]
backends:
  - name: cpu0
    kind: cpu
    workers: 2
    threads_per_worker: 1
    models: [digits]
  - name: cpu1
    kind: cpu
    workers: 1
    threads_per_worker: 1
    models: [digits]
"""


def get_json(port, path):
    status, hdrs, body = gwlib.h1_request(port, "GET", path)
    return status, json.loads(body)


def post(conn, body, headers=(JSON_CT,), path=INFER):
    return conn.request("POST", path, body, headers=list(headers))


@pytest.fixture(scope="module")
def rows(model):
    """Distinct rows, more than the model's max_batch_size."""
    rng = np.random.default_rng(10)
    return rng.uniform(0, 16, size=(model.max_batch_size, 64)).round(3)


# ------------------------------------------------------------ GET /v2 ----

def test_server_lists_the_extensions_that_work(gw):
    status, doc = get_json(gw.port, "/v2")
    assert status == 200
    ext = doc["extensions"]
    assert sorted(ext) == sorted(["binary_tensor_data", "classification", "model_configuration",
                                  "statistics", "schedule_policy", "model_repository"]), ext
    # every name listed is served on this port
    assert get_json(gw.port, MODEL + "/config")[0] == 200
    assert get_json(gw.port, "/v2/models/stats")[0] == 200
    status, _, body = gwlib.h1_request(gw.port, "POST", "/v2/repository/index", b"{}",
                                       headers=[JSON_CT])
    assert status == 200, body


# ------------------------------------------------- model configuration ----

def test_model_config_from_model_yaml_and_gateway_yaml(start_gw, model):
    g = start_gw("config", CONFIG_TEXT.format(model_dir=gwlib.MODEL_DIR))
    for path in (MODEL + "/config", MODEL + "/versions/1/config"):
        status, cfg = get_json(g.port, path)
        assert status == 200, cfg
        assert cfg == {
            "name": "digits",
            "platform": "infergw-mlp",
            "backend": "infergw",
            "version_policy": {"specific": {"versions": [1]}},
            # model.yaml's max_batch_size (64): what a request may carry; the
            # gateway's max_batch 32 only cuts batches (test_maxbatch.py)
            "max_batch_size": model.max_batch_size,
            "input": [{"name": "input", "data_type": "TYPE_FP32", "format": "FORMAT_NONE",
                       "dims": [64], "is_shape_tensor": False, "allow_ragged_batch": False,
                       "optional": False}],
            "output": [{"name": "probabilities", "data_type": "TYPE_FP32", "dims": [10],
                        "is_shape_tensor": False}],
            "dynamic_batching": {
                "preferred_batch_size": [4, 8],
                "max_queue_delay_microseconds": 300,
                "preserve_ordering": False,
                "priority_levels": 4,
                "default_priority_level": 2,
                "default_queue_policy": {"timeout_action": "REJECT",
                                         "default_timeout_microseconds": 250000,
                                         "allow_timeout_override": True,
                                         "max_queue_size": 77},
                "priority_queue_policy": {}},
            "instance_group": [{"name": "cpu0", "kind": "KIND_CPU", "count": 2, "gpus": []},
                               {"name": "cpu1", "kind": "KIND_CPU", "count": 1, "gpus": []}],
        }, cfg
    status, doc = get_json(g.port, MODEL + "/versions/2/config")
    assert status == 404 and "no version" in doc["error"], doc
    status, doc = get_json(g.port, "/v2/models/nope/config")
    assert status == 404 and doc["error"] == 'unknown model "nope"', doc
    status, _, body = gwlib.h1_request(g.port, "POST", MODEL + "/config", b"{}")
    assert status == 405, body


def _perf_analyzer_startup(port, model):
    """What perf_analyzer does before it drives load: read the metadata and
    the configuration, check they agree, and for each batch size 1..
    max_batch_size build an input of [batch] + dims with the declared
    datatype and send it (binary tensors, its HTTP default)."""
    _, meta = get_json(port, MODEL)
    status, cfg = get_json(port, MODEL + "/config")
    assert status == 200, cfg
    mbs = cfg["max_batch_size"]
    assert isinstance(mbs, int) and mbs > 0  # > 0: the batch dimension is implicit
    assert "dynamic_batching" in cfg and "sequence_batching" not in cfg
    np_types = {"TYPE_FP32": ("FP32", np.float32)}
    (inp,) = cfg["input"]
    (out,) = cfg["output"]
    kserve, dtype = np_types[inp["data_type"]]
    assert [t["name"] for t in meta["inputs"]] == [inp["name"]]
    assert meta["inputs"][0]["datatype"] == kserve
    assert meta["inputs"][0]["shape"] == [-1] + inp["dims"]
    assert meta["outputs"][0]["shape"] == [-1] + out["dims"]
    rng = np.random.default_rng(3)
    with H1Conn(port) as c:
        for batch in range(1, mbs + 1):
            x = rng.uniform(0, 16, size=[batch] + inp["dims"]).astype(dtype)
            raw = x.tobytes()
            head = json.dumps({
                "inputs": [{"name": inp["name"], "shape": list(x.shape), "datatype": kserve,
                            "parameters": {"binary_data_size": len(raw)}}],
                "outputs": [{"name": out["name"], "parameters": {"binary_data": True}}],
            }).encode()
            status, hdrs, body = c.request("POST", INFER, head + raw, headers=[
                ("Inference-Header-Content-Length", str(len(head)))])
            assert status == 200, (batch, body[:300])
            hl = int(hdrs["inference-header-content-length"])
            doc = json.loads(body[:hl])
            assert doc["outputs"][0]["shape"] == [batch] + out["dims"]
            got = np.frombuffer(body[hl:], dtype="<f4").reshape(batch, -1)
            np.testing.assert_allclose(got, model.forward(x), rtol=1e-5, atol=1e-6)
        # one past max_batch_size is refused: the configuration told the truth
        x = np.zeros((mbs + 1, 64), dtype=np.float32)
        status, _, body = post(c, gwlib.infer_body(x))
        assert status == 400 and f"expected 1 to {mbs}" in json.loads(body)["error"], body
    return mbs


def test_perf_analyzer_startup(gw_factory, model):
    g = gw_factory("perf", max_batch=32, max_body_bytes=1 << 20)
    assert _perf_analyzer_startup(g.port, model) == model.max_batch_size


# -------------------------------------------------------- statistics ----

def _stats(port, path="/v2/models/stats"):
    status, doc = get_json(port, path)
    assert status == 200, doc
    (s,) = doc["model_stats"]
    return s


def test_statistics_move_by_exactly_the_requests_sent(gw_factory, model, rows):
    g = gw_factory("stats", max_batch=32, max_body_bytes=1 << 20)
    s = _stats(g.port)
    zero = {"count": 0, "ns": 0}
    assert s["name"] == "digits" and s["version"] == "1"
    assert s["inference_count"] == 0 and s["execution_count"] == 0
    assert s["last_inference"] == 0 and s["batch_stats"] == []
    assert s["inference_stats"] == {k: zero for k in (
        "success", "fail", "queue", "compute_input", "compute_infer", "compute_output",
        "cache_hit", "cache_miss")}

    t0 = int(time.time() * 1000)
    sent = [1, 1, 1, 5, 40]  # one at a time: 1-row batches, a 5-row batch, 32 + 8
    with H1Conn(g.port) as c:
        for n in sent:
            status, _, body = post(c, gwlib.infer_body(rows[:n]))
            assert status == 200, body
            gwlib.check_infer_response(body, model, rows[:n])
        bad = [gwlib.infer_body(rows[:2]).replace(b'"shape": [2, 64]', b'"shape": [2, 63]'),
               json.dumps(dict(gwlib.infer_doc(rows[:1]), parameters={"sequence_id": 7})).encode(),
               gwlib.infer_body(rows[:model.max_batch_size]).replace(b"[64, 64]", b"[65, 64]")]
        for b in bad:
            status, _, body = post(c, b)
            assert status == 400, body
    t1 = int(time.time() * 1000)

    s = _stats(g.port)
    st = s["inference_stats"]
    assert s["inference_count"] == sum(sent)
    assert s["execution_count"] == 6
    assert t0 <= s["last_inference"] <= t1 + 1, (t0, s["last_inference"], t1)
    assert st["success"]["count"] == len(sent) and st["success"]["ns"] > 0
    assert st["fail"]["count"] == len(bad) and st["fail"]["ns"] > 0
    for k in ("queue", "compute_input", "compute_infer", "compute_output"):
        assert st[k]["count"] == len(sent), (k, st)
    assert st["compute_infer"]["ns"] > 0
    assert st["compute_input"]["ns"] == 0 and st["compute_output"]["ns"] == 0
    assert st["cache_hit"] == zero and st["cache_miss"] == zero
    assert st["queue"]["ns"] + st["compute_infer"]["ns"] <= st["success"]["ns"]
    by_size = {b["batch_size"]: b for b in s["batch_stats"]}
    assert sorted(by_size) == [1, 5, 8, 32], s["batch_stats"]
    assert {k: b["compute_infer"]["count"] for k, b in by_size.items()} == \
        {1: 3, 5: 1, 8: 1, 32: 1}
    for b in by_size.values():
        assert set(b) == {"batch_size", "compute_input", "compute_infer", "compute_output"}
        assert b["compute_input"] == {"count": b["compute_infer"]["count"], "ns": 0}
        assert b["compute_infer"]["ns"] > 0
    # one worker: a request's execution spans its batches, so per-request
    # compute time covers the batches' own
    assert sum(b["compute_infer"]["ns"] for b in by_size.values()) <= st["compute_infer"]["ns"]

    # the same counters under every path, and in /metrics
    assert _stats(g.port, MODEL + "/stats") == s
    assert _stats(g.port, MODEL + "/versions/1/stats") == s
    ms = g.metrics()
    total = {o: sum(v for (name, lbl), v in ms.items() if name == "infergw_requests_total"
                    and dict(lbl)["model"] == "digits" and dict(lbl)["outcome"] == o)
             for o in ("success", "error")}
    assert total == {"success": len(sent), "error": len(bad)}, total
    assert gwlib.metric(ms, "infergw_batch_rows_count", backend="cpu0", model="digits") == 6


def test_statistics_errors(gw):
    status, doc = get_json(gw.port, "/v2/models/nope/stats")
    assert status == 404 and doc["error"] == 'unknown model "nope"', doc
    status, doc = get_json(gw.port, MODEL + "/versions/9/stats")
    assert status == 404 and "no version" in doc["error"], doc
    status, _, body = gwlib.h1_request(gw.port, "POST", "/v2/models/stats", b"{}")
    assert status == 405, body
    with H2Client(gw.port) as c:
        r = c.get("/v2/models/stats")
    assert r.status == 200 and r.json()["model_stats"][0]["name"] == "digits"


# ---------------------------------------------------- classification ----

def _class_strings(k_key, k, rows, **out_params):
    doc = gwlib.infer_doc(rows, outputs=False)
    doc["outputs"] = [{"name": "probabilities", "parameters": {k_key: k, **out_params}}]
    return json.dumps(doc).encode()


def _expect_classes(probs, ref, k):
    """numpy's answer: top k by score, ties by lower index (a stable sort of
    -score), as "score:index:label" with Triton's %f score."""
    np.testing.assert_allclose(probs, ref, rtol=1e-5, atol=1e-6)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[f"{probs[r, i]:f}:{i}:{i}" for i in order[r]] for r in range(len(probs))]


@pytest.mark.parametrize("k_key", ["classification", "class_count"])
def test_classification_json_against_numpy(gw, model, heldout, k_key):
    x = heldout[0][:12].astype(np.float64)
    with H1Conn(gw.port) as c:
        status, _, body = post(c, gwlib.infer_body(x))
        assert status == 200
        probs = np.asarray(json.loads(body)["outputs"][0]["data"], dtype=np.float32)
        probs = probs.reshape(len(x), 10)
        for k, want_k in ((1, 1), (3, 3), (10, 10), (1000, 10)):
            status, hdrs, body = post(c, _class_strings(k_key, k, x))
            assert status == 200, body
            assert hdrs["content-type"] == "application/json"
            out = json.loads(body)["outputs"][0]
            assert out["name"] == "probabilities" and out["datatype"] == "BYTES", out
            assert out["shape"] == [len(x), want_k], out
            want = _expect_classes(probs, model.forward(x), want_k)
            assert out["data"] == [s for row in want for s in row]
        # top-1 is the digit the reference model predicts, and mostly the label
        top1 = [int(s.split(":")[1]) for s in json.loads(
            post(c, _class_strings(k_key, 1, x))[2])["outputs"][0]["data"]]
        assert top1 == list(model.forward(x).argmax(axis=1))
        assert np.mean(np.array(top1) == heldout[1][:12]) >= 0.9
        # 0: no classification, the tensor itself
        status, _, body = post(c, _class_strings(k_key, 0, x))
        gwlib.check_infer_response(body, model, x)


def test_classification_binary_and_msgpack(gw, model, heldout):
    x = heldout[0][:5].astype(np.float64)
    with H1Conn(gw.port) as c:
        probs = np.asarray(json.loads(post(c, gwlib.infer_body(x))[2])["outputs"][0]["data"],
                           dtype=np.float32).reshape(len(x), 10)
        want = [s for row in _expect_classes(probs, model.forward(x), 4) for s in row]
        # binary_data output: BYTES as 4-byte little-endian length + bytes
        status, hdrs, body = post(c, _class_strings("classification", 4, x, binary_data=True))
        assert status == 200, body
        assert hdrs["content-type"] == "application/octet-stream"
        hl = int(hdrs["inference-header-content-length"])
        out = json.loads(body[:hl])["outputs"][0]
        assert out["datatype"] == "BYTES" and out["shape"] == [5, 4], out
        raw = body[hl:]
        assert out["parameters"]["binary_data_size"] == len(raw)
        got, off = [], 0
        while off < len(raw):
            (n,) = struct.unpack_from("<I", raw, off)
            got.append(raw[off + 4:off + 4 + n].decode())
            off += 4 + n
        assert got == want
        # msgpack request and answer: data is an array of str
        doc = gwlib.infer_doc(x, outputs=False)
        doc["outputs"] = [{"name": "probabilities", "parameters": {"classification": 4}}]
        status, hdrs, body = post(c, msgpack.packb(doc), headers=[
            ("Content-Type", "application/msgpack"), ("Accept", "application/msgpack")])
        assert status == 200, body
        out = msgpack.unpackb(body)["outputs"][0]
        assert out["datatype"] == "BYTES" and list(out["shape"]) == [5, 4]
        assert out["data"] == want


# ------------------------------------------------- honest parameters ----

UNSUPPORTED = {"sequence_id": 5, "sequence_start": True, "sequence_end": False,
               "shared_memory_region": "region0", "shared_memory_byte_size": 256,
               "shared_memory_offset": 0}


@pytest.mark.parametrize("where", ["parameters", "inputs[0].parameters",
                                   "outputs[0].parameters"])
@pytest.mark.parametrize("fmt", ["json", "msgpack", "binary"])
def test_unimplemented_parameters_are_refused(gw, rows, where, fmt):
    with H1Conn(gw.port) as c:
        for key, val in UNSUPPORTED.items():
            doc = gwlib.infer_doc(rows[:1])
            x = np.asarray(rows[:1], dtype="<f4")
            if fmt == "binary":
                doc["inputs"][0]["parameters"] = {"binary_data_size": x.nbytes}
                del doc["inputs"][0]["data"]
            target = {"parameters": doc, "inputs[0].parameters": doc["inputs"][0],
                      "outputs[0].parameters": doc["outputs"][0]}[where]
            target.setdefault("parameters", {})[key] = val
            if fmt == "json":
                status, _, body = post(c, json.dumps(doc).encode())
            elif fmt == "msgpack":
                status, _, body = post(c, msgpack.packb(doc), headers=[
                    ("Content-Type", "application/msgpack")])
            else:
                head = json.dumps(doc).encode()
                status, _, body = post(c, head + x.tobytes(), headers=[
                    ("Inference-Header-Content-Length", str(len(head)))])
            assert status == 400, (key, body)
            assert json.loads(body)["error"].startswith(f"{where}.{key}: not supported ("), body
        # and the same request without them is answered
        status, _, body = post(c, gwlib.infer_body(rows[:1]))
        assert status == 200, body
