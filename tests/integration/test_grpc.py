"""KServe v2 gRPC (inference.GRPCInferenceService) on the gateway's HTTP/2
port: every unary method with grpcio stubs generated at test time from
proto/grpc_service.proto, values against the numpy reference, errors with
their gRPC codes, and malformed frames and protobuf bytes over a raw h2
connection (the gateway answers them and stays up)."""
import importlib
import json
import struct
import sys

import numpy as np
import pytest

import gwlib

grpc = pytest.importorskip("grpc", reason="python3-grpcio is not installed")
protoc = pytest.importorskip("grpc_tools.protoc", reason="python3-grpc-tools is not installed")

SVC = "/inference.GRPCInferenceService/"
GRPC_CT = ("content-type", "application/grpc")


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    """(messages module, stub class) compiled from the repo's .proto."""
    out = tmp_path_factory.mktemp("grpc-stubs")
    proto = gwlib.REPO / "proto"
    rc = protoc.main(["protoc", f"-I{proto}", f"--python_out={out}", f"--grpc_python_out={out}",
                      str(proto / "grpc_service.proto")])
    assert rc == 0, "grpc_tools.protoc failed on proto/grpc_service.proto"
    sys.path.insert(0, str(out))
    try:
        msgs = importlib.import_module("grpc_service_pb2")
        svc = importlib.import_module("grpc_service_pb2_grpc")
    finally:
        sys.path.remove(str(out))
    return msgs, svc.GRPCInferenceServiceStub


@pytest.fixture(scope="module")
def channel(gw):
    ch = grpc.insecure_channel(f"{gwlib.HOST}:{gw.port}")
    yield ch
    ch.close()


@pytest.fixture(scope="module")
def stub(pb, channel):
    return pb[1](channel)


def rows_of(n, seed=0):
    return np.random.default_rng(seed).uniform(0, 16, size=(n, 64)).astype(np.float32)


def infer_req(msgs, x, *, raw=True, **kw):
    req = msgs.ModelInferRequest(model_name=kw.pop("model", "digits"), **kw)
    t = req.inputs.add(name="input", datatype="FP32", shape=list(x.shape))
    if raw:
        req.raw_input_contents.append(x.astype("<f4").tobytes())
    else:
        t.contents.fp32_contents.extend(x.reshape(-1).tolist())
    return req


def check_output(resp, model, x, id=""):
    assert resp.model_name == "digits" and resp.model_version == "1" and resp.id == id
    assert len(resp.outputs) == 1 and len(resp.raw_output_contents) == 1
    out = resp.outputs[0]
    assert (out.name, out.datatype, list(out.shape)) == ("probabilities", "FP32", [len(x), 10])
    got = np.frombuffer(resp.raw_output_contents[0], dtype="<f4").reshape(len(x), 10)
    np.testing.assert_allclose(got, model.forward(x), rtol=1e-5, atol=1e-6)


def code_of(call):
    with pytest.raises(grpc.RpcError) as ei:
        call()
    return ei.value.code(), ei.value.details()


def frame(payload, flag=0):
    return struct.pack(">BI", flag, len(payload)) + payload


def raw_call(port, method, body):
    """One gRPC call over a raw h2 connection: (headers, trailers, body)."""
    with gwlib.H2Client(port) as c:
        sid = c.request("POST", SVC + method, body, [GRPC_CT, ("te", "trailers")])
        r = c.wait([sid])[0]
    assert r.status == 200 and r.ended, r
    return r.headers, r.trailers, bytes(r.body)


# ---- the methods ----------------------------------------------------------

def test_server_live_ready(pb, stub):
    msgs = pb[0]
    assert stub.ServerLive(msgs.ServerLiveRequest()).live is True
    assert stub.ServerReady(msgs.ServerReadyRequest()).ready is True


def test_server_metadata(pb, stub, h2client):
    meta = stub.ServerMetadata(pb[0].ServerMetadataRequest())
    http = h2client.get("/v2").json()
    assert meta.name == "infergw" == http["name"]
    assert meta.version == http["version"]
    assert list(meta.extensions) == http["extensions"]


def test_model_ready_and_metadata(pb, stub):
    msgs = pb[0]
    assert stub.ModelReady(msgs.ModelReadyRequest(name="digits")).ready is True
    assert stub.ModelReady(msgs.ModelReadyRequest(name="digits", version="1")).ready is True
    m = stub.ModelMetadata(msgs.ModelMetadataRequest(name="digits"))
    assert (m.name, list(m.versions), m.platform) == ("digits", ["1"], "infergw-mlp")
    assert [(t.name, t.datatype, list(t.shape)) for t in m.inputs] == [("input", "FP32", [-1, 64])]
    assert [(t.name, t.datatype, list(t.shape)) for t in m.outputs] == \
        [("probabilities", "FP32", [-1, 10])]


@pytest.mark.parametrize("n", [1, 3, 64])
def test_infer_raw(pb, stub, model, n):
    x = rows_of(n, seed=n)
    resp = stub.ModelInfer(infer_req(pb[0], x, id=f"raw-{n}"))
    check_output(resp, model, x, id=f"raw-{n}")


def test_large_raw_tensors(pb, start_gw):
    """mlp-large, 64 rows: 256 KiB of raw input in one message (gathered in
    one block by its 5-byte prefix: gRPC clients send no content-length;
    read where it lies) and 256 KiB of raw output (appended to the packed
    answer by reference, not packed in), every value against a float64
    forward pass, twice on one channel; then the same four requests on one
    ModelStreamInfer stream (each answer's raw output by reference inside
    its ModelStreamInferResponse), with a 10-row one (40 KiB) between."""
    from test_int8 import MLP_LARGE, Ref, serve
    if not (MLP_LARGE / "model.safetensors").exists():
        pytest.skip(f"{MLP_LARGE}/model.safetensors not generated (`make models`)")
    ref = Ref(MLP_LARGE)
    g = serve(start_gw, [(ref.name, MLP_LARGE)], max_body=8 << 20)
    opts = [("grpc.max_receive_message_length", 8 << 20),
            ("grpc.max_send_message_length", 8 << 20)]
    with grpc.insecure_channel(f"{gwlib.HOST}:{g.port}", options=opts) as ch:
        stub = pb[1](ch)
        for seed in (1, 2):
            x = np.random.default_rng(seed).uniform(-1, 1, (64, 1024)).astype("<f4")
            req = pb[0].ModelInferRequest(model_name=ref.name, id=f"big-{seed}")
            req.inputs.add(name="input", datatype="FP32", shape=[64, 1024])
            req.raw_input_contents.append(x.tobytes())
            resp = stub.ModelInfer(req, timeout=60)
            assert resp.model_name == ref.name and resp.id == f"big-{seed}", resp.id
            out = resp.outputs[0]
            assert (out.name, out.datatype, list(out.shape)) == ("probabilities", "FP32",
                                                                 [64, 1024])
            assert len(resp.raw_output_contents) == 1
            got = np.frombuffer(resp.raw_output_contents[0], dtype="<f4").reshape(64, 1024)
            np.testing.assert_allclose(got, ref.forward(x), rtol=1e-3, atol=1e-6)
        sent = {}

        def gen():
            for i, rows in enumerate((64, 10, 64, 64)):
                x = np.random.default_rng(20 + i).uniform(-1, 1, (rows, 1024)).astype("<f4")
                sent[f"st-{i}"] = x
                req = pb[0].ModelInferRequest(model_name=ref.name, id=f"st-{i}")
                req.inputs.add(name="input", datatype="FP32", shape=[rows, 1024])
                req.raw_input_contents.append(x.tobytes())
                yield req

        call = stub.ModelStreamInfer(gen(), timeout=60)
        for resp in call:
            assert not resp.error_message, resp.error_message
            r = resp.infer_response
            x = sent.pop(r.id)
            assert (r.model_name, list(r.outputs[0].shape)) == (ref.name, [len(x), 1024])
            got = np.frombuffer(r.raw_output_contents[0], dtype="<f4").reshape(len(x), 1024)
            np.testing.assert_allclose(got, ref.forward(x), rtol=1e-3, atol=1e-6)
        assert not sent and call.code() == grpc.StatusCode.OK, (sorted(sent), call.code())


def _raw_field(data):
    """raw_input_contents (field 7) carrying data, as protobuf writes it."""
    n, head = len(data), bytearray([0x3a])
    while n >= 0x80:
        head.append(n & 0x7F | 0x80)
        n >>= 7
    head.append(n)
    return bytes(head) + data


@pytest.mark.parametrize("order", ["raw first", "raw between", "raw last", "below the view size"])
def test_raw_input_anywhere_in_the_message(gw, pb, model, order):
    """A raw input of >= 16 KiB is read where it lies in the body rather
    than copied out (gateway/api/grpc.c grpc_held_unpack): wherever a
    client puts the field among the others (protobuf allows any order),
    the answer is the reference forward pass of those rows; 63 rows
    (16,128 bytes) take protobuf-c's copy and answer the same."""
    rows = 63 if order == "below the view size" else 64
    x = rows_of(rows, seed=40 + rows)
    head = pb[0].ModelInferRequest(model_name="digits", id=f"anywhere-{rows}")
    tensor = pb[0].ModelInferRequest()
    tensor.inputs.add(name="input", datatype="FP32", shape=[rows, 64])
    tensor.outputs.add(name="probabilities")
    a, b = head.SerializeToString(), tensor.SerializeToString()
    raw = _raw_field(x.astype("<f4").tobytes())
    msg = {"raw first": raw + a + b, "raw between": a + raw + b}.get(order, a + b + raw)
    hdrs, trailers, body = raw_call(gw.port, "ModelInfer", frame(msg))
    assert trailers.get("grpc-status") == "0", (trailers, hdrs)
    resp = pb[0].ModelInferResponse.FromString(body[5:])
    check_output(resp, model, x, id=f"anywhere-{rows}")


@pytest.mark.parametrize("case", ["short", "unknown model", "two raw inputs"])
def test_large_raw_input_errors(gw, pb, case):
    """Refusals of requests whose raw input is read in place: the error
    names the field, and the gateway goes on serving (the body held for
    the request is freed with it: the sanitizer runs see a leak or a
    use after free)."""
    x = rows_of(64, seed=9).astype("<f4").tobytes()
    req = pb[0].ModelInferRequest(model_name="nope" if case == "unknown model" else "digits")
    req.inputs.add(name="input", datatype="FP32", shape=[64, 64])
    req.raw_input_contents.append(x[:-4] if case == "short" else x)
    if case == "two raw inputs":
        req.raw_input_contents.append(x)
    hdrs, trailers, body = raw_call(gw.port, "ModelInfer", frame(req.SerializeToString()))
    src = trailers if "grpc-status" in trailers else hdrs
    want = {"short": ("3", "raw_input_contents[0]"), "unknown model": ("5", "unknown model"),
            "two raw inputs": ("3", "raw_input_contents: 2 entries")}[case]
    assert (src["grpc-status"], want[1] in src.get("grpc-message", "")) == (want[0], True), src


@pytest.mark.parametrize("n", [1, 5])
def test_infer_typed_contents(pb, stub, model, n):
    x = rows_of(n, seed=100 + n)
    resp = stub.ModelInfer(infer_req(pb[0], x, raw=False))
    check_output(resp, model, x)


def test_infer_parameters_and_deadline(pb, stub, model):
    """priority and timeout parameters, a requested output, and a generous
    grpc-timeout are accepted and change nothing in the values."""
    msgs = pb[0]
    x = rows_of(4, seed=9)
    req = infer_req(msgs, x, id="p")
    req.parameters["priority"].int64_param = 3
    req.parameters["timeout"].int64_param = 5_000_000
    req.outputs.add(name="probabilities")
    check_output(stub.ModelInfer(req, timeout=30), model, x, id="p")


def test_infer_concurrent(pb, stub, model):
    futs = [(x, stub.ModelInfer.future(infer_req(pb[0], x)))
            for x in (rows_of(2, seed=200 + i) for i in range(16))]
    for x, f in futs:
        check_output(f.result(timeout=30), model, x)


# ---- errors ---------------------------------------------------------------

def test_unknown_model_not_found(pb, stub):
    msgs = pb[0]
    code, msg = code_of(lambda: stub.ModelInfer(infer_req(msgs, rows_of(1), model="nope")))
    assert code == grpc.StatusCode.NOT_FOUND and "nope" in msg
    code, msg = code_of(lambda: stub.ModelReady(msgs.ModelReadyRequest(name="nope")))
    assert code == grpc.StatusCode.NOT_FOUND
    code, msg = code_of(lambda: stub.ModelMetadata(msgs.ModelMetadataRequest(name="digits",
                                                                             version="7")))
    assert code == grpc.StatusCode.NOT_FOUND and "version" in msg


def test_bad_input_invalid_argument(pb, stub):
    msgs = pb[0]
    x = rows_of(2)
    bad_shape = infer_req(msgs, x)
    bad_shape.inputs[0].shape[:] = [2, 63]
    short = infer_req(msgs, x)
    short.raw_input_contents[0] = short.raw_input_contents[0][:-4]
    typed_short = infer_req(msgs, x, raw=False)
    del typed_short.inputs[0].contents.fp32_contents[-1]
    wrong_name = infer_req(msgs, x)
    wrong_name.inputs[0].name = "pixels"
    wrong_dtype = infer_req(msgs, x)
    wrong_dtype.inputs[0].datatype = "INT32"
    bad_prio = infer_req(msgs, x)
    bad_prio.parameters["priority"].string_param = "high"
    bad_output = infer_req(msgs, x)
    bad_output.outputs.add(name="logits")
    too_many = infer_req(msgs, rows_of(65))
    sequence = infer_req(msgs, x)
    sequence.parameters["sequence_id"].int64_param = 7
    shm = infer_req(msgs, x)
    shm.outputs.add(name="probabilities").parameters["shared_memory_region"].string_param = "r"
    x_nan = x.copy()
    x_nan[1, 3] = np.nan
    nan_raw = infer_req(msgs, x_nan)
    x_inf = x.copy()
    x_inf[0, 5] = -np.inf
    inf_typed = infer_req(msgs, x_inf, raw=False)
    for req, word in [(nan_raw, "raw_input_contents[0][67]: not a finite FP32 value (NaN)"),
                      (inf_typed, "inputs[0].contents.fp32_contents[5]: not a finite FP32 value "
                                  "(-Inf)"),
                      (bad_shape, "shape"), (short, "raw_input_contents[0]"),
                      (typed_short, "fp32_contents"), (wrong_name, "pixels"),
                      (wrong_dtype, "datatype"), (bad_prio, "priority"),
                      (bad_output, "logits"), (too_many, "rows"),
                      (sequence, "parameters.sequence_id"),
                      (shm, "outputs[0].parameters.shared_memory_region")]:
        code, msg = code_of(lambda: stub.ModelInfer(req))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (word, msg)
        assert word in msg, (word, msg)


def test_unknown_method_unimplemented(channel):
    call = channel.unary_unary(SVC + "ModelStreamInferNope")
    code, msg = code_of(lambda: call(b"", timeout=10))
    assert code == grpc.StatusCode.UNIMPLEMENTED


def test_oversize_message_resource_exhausted(pb, stub):
    """Past limits.max_body_bytes (64 KiB here) the upload is cut short."""
    req = infer_req(pb[0], rows_of(1))
    req.raw_input_contents[0] = bytes(100_000)
    code, msg = code_of(lambda: stub.ModelInfer(req, timeout=30))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_body_bytes" in msg


@pytest.mark.parametrize("body,code,word", [
    (frame(b"\xff\xff\xff\xff\xff"), 3, "ModelInferRequest"),
    (frame(b"\x0a\x50abc"), 3, "ModelInferRequest"),	# a string past the end
    (frame(b"\x0a\x06digits") + frame(b""), 3, "one message"),
    (b"\x00\x00\x00", 3, "5-byte prefix"),
    (frame(b"\x0a\x06digits", flag=1), 13, "compressed flag set, but grpc-encoding"),
    (frame(b"\x0a\x06digits", flag=7), 3, "compressed flag"),
])
def test_malformed_frames(gw, pb, stub, body, code, word):
    hdrs, trailers, data = raw_call(gw.port, "ModelInfer", body)
    # trailers-only: the status comes in the headers, nothing else
    assert data == b"" and trailers == {}
    assert hdrs["content-type"] == "application/grpc"
    assert int(hdrs["grpc-status"]) == code, hdrs
    assert word in hdrs.get("grpc-message", ""), hdrs
    assert stub.ServerLive(pb[0].ServerLiveRequest()).live is True  # still serving


def test_raw_answer_has_trailers(gw, pb):
    """A success over a raw connection: one framed message, then trailers."""
    hdrs, trailers, data = raw_call(gw.port, "ServerLive", frame(b""))
    assert hdrs["content-type"] == "application/grpc" and "grpc-status" not in hdrs
    assert "content-length" not in hdrs
    assert trailers.get("grpc-status") == "0", trailers
    flag, n = struct.unpack(">BI", data[:5])
    assert flag == 0 and n == len(data) - 5
    live = pb[0].ServerLiveResponse.FromString(data[5:])
    assert live.live is True


def test_http1_never_grpc(gw):
    """gRPC needs HTTP/2: over HTTP/1.1 the method path is no route."""
    st, hdrs, body = gwlib.h1_request(gw.port, "POST", SVC + "ServerLive", frame(b""),
                                      headers=[GRPC_CT])
    assert st == 404 and "grpc-status" not in hdrs


def test_metrics_by_method_and_code(gw, pb, stub):
    stub.ModelInfer(infer_req(pb[0], rows_of(1)))
    with pytest.raises(grpc.RpcError):
        stub.ModelReady(pb[0].ModelReadyRequest(name="nope"))
    ms = gwlib.read_metrics(gw.metrics_port)
    assert gwlib.metric(ms, "infergw_grpc_requests_total", method="ModelInfer", code="0") >= 1
    assert gwlib.metric(ms, "infergw_grpc_requests_total", method="ModelReady", code="5") >= 1


def test_grpc_timeout_is_the_objective(gw, pb):
    """grpc-timeout becomes the request's objective: 1 µs cannot be met and
    is refused at admission (never queued); a malformed one is named."""
    body = frame(infer_req(pb[0], rows_of(1)).SerializeToString())
    for value, code, word in [("1u", 8, "objective of 1 us"), ("5x", 3, "grpc-timeout"),
                              ("123456789S", 3, "grpc-timeout")]:
        with gwlib.H2Client(gw.port) as c:
            sid = c.request("POST", SVC + "ModelInfer", body,
                            [GRPC_CT, ("te", "trailers"), ("grpc-timeout", value)])
            r = c.wait([sid])[0]
        assert r.status == 200 and int(r.headers["grpc-status"]) == code, (value, r.headers)
        assert word in r.headers.get("grpc-message", ""), (value, r.headers)
    # a generous one is served
    with gwlib.H2Client(gw.port) as c:
        sid = c.request("POST", SVC + "ModelInfer", body,
                        [GRPC_CT, ("te", "trailers"), ("grpc-timeout", "20S")])
        r = c.wait([sid])[0]
    assert r.trailers.get("grpc-status") == "0", r


def test_random_messages_answered(gw, pb, stub):
    """Seeded random bytes, and truncations and bit flips of a valid
    ModelInferRequest, to every method on one connection: each stream gets
    a well-formed gRPC answer (OK for what happens to parse, else a code
    naming the problem) and the gateway keeps serving."""
    rng = np.random.default_rng(16)
    valid = infer_req(pb[0], rows_of(2)).SerializeToString()
    bodies = [rng.bytes(int(rng.integers(0, 64))) for _ in range(60)]
    bodies += [valid[:int(rng.integers(0, len(valid)))] for _ in range(30)]
    for _ in range(30):
        b = bytearray(valid)
        b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
        bodies.append(bytes(b))
    methods = ["ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
               "ModelInfer"]
    with gwlib.H2Client(gw.port) as c:
        sids = [c.request("POST", SVC + methods[i % len(methods)], frame(b),
                          [GRPC_CT, ("te", "trailers")])
                for i, b in enumerate(bodies)]
        for r in c.wait(sids, timeout=60):
            assert r.status == 200 and r.ended, r
            st = r.trailers.get("grpc-status", r.headers.get("grpc-status"))
            assert st in {"0", "3", "5"}, r
    assert stub.ServerLive(pb[0].ServerLiveRequest()).live is True


# ---- deadlines in the queue, cancellation (slow model, own gateway) --------

import re  # noqa: E402
import time  # noqa: E402

import slowmodel as sm  # noqa: E402

SLOW = "slow"
SLOW_ROW = np.arange(64, dtype=np.float32).reshape(1, 64) / 64.0


@pytest.fixture(scope="module")
def slow_dir(tmp_path_factory):
    return sm.write_slow_model(tmp_path_factory.mktemp("grpc-slowmodel") / SLOW)


def slow_conf(slow_dir, routing=None, **model_kw):
    return sm.config_text([sm.model_yaml(SLOW, slow_dir, **model_kw)],
                          [sm.backend_yaml("cpu0", [SLOW])], routing=routing)


def grpc_body(msgs, x, **kw):
    return frame(infer_req(msgs, x, model=SLOW, **kw).SerializeToString())


def grpc_headers(*more):
    return [GRPC_CT, ("te", "trailers"), *more]


def check_slow_answers(pb, rs, ref):
    """Each raw h2 answer in rs is OK and carries ref (rows x 10)."""
    for r in rs:
        assert grpc_status(r) == (0, ""), r
        resp = pb[0].ModelInferResponse.FromString(bytes(r.body)[5:])
        got = np.frombuffer(resp.raw_output_contents[0], dtype="<f4").reshape(ref.shape)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)


def grpc_status(r):
    """(code, message) of a raw h2 gRPC answer: trailers, or trailers-only."""
    src = r.trailers if "grpc-status" in r.trailers else r.headers
    return int(src["grpc-status"]), src.get("grpc-message", "")


def test_deadline_expires_in_queue_never_executed(pb, slow_dir, start_gw):
    """B (gRPC, priority 2, grpc-timeout ~12 batch times) is admitted while
    A runs; C (priority 1, no deadline) arrives right after and jumps ahead
    for ~4 deadlines: B is answered DEADLINE_EXCEEDED ("deadline passed ...
    in the queue") and never executed (rows executed = rows answered OK)."""
    g = start_gw("grpc-expiry", slow_conf(slow_dir, max_batch=8, max_queue_delay_us=1000000,
                                          routing={"priority_levels": 3, "sheddable_levels": 1,
                                                   "drop_hopeless": "false"}))
    (_, _, t8), = g.calibration().values()
    timeout_us = int(max(60000, 12 * t8))
    n_a, n_b = 2, 4
    n_c = min(200, int(4 * timeout_us / t8))
    before = g.metrics()
    rows8 = np.tile(SLOW_ROW, (8, 1))
    bbody = grpc_body(pb[0], rows8)
    with sm.OrderedH2(g.port) as c:
        a = [c.queue_infer(SLOW, rows8, [("x-priority", "1")]) for _ in range(n_a)]
        bs = [c.request("POST", SVC + "ModelInfer", bbody,
                        grpc_headers(("x-priority", "2"), ("grpc-timeout", f"{timeout_us}u")),
                        flush=False) for _ in range(n_b)]
        cs = [c.queue_infer(SLOW, rows8, [("x-priority", "1")]) for _ in range(n_c)]
        c.flush()
        res = dict(zip([*a, *bs, *cs], c.wait([*a, *bs, *cs], timeout=60)))
    assert all(res[s].status == 200 for s in [*a, *cs])
    codes = {s: grpc_status(res[s]) for s in bs}
    print(f"B {codes}")
    expired = [s for s in bs if codes[s][0] == 4]
    assert expired, codes
    for s in bs:
        assert codes[s][0] in (0, 4), codes[s]
    for s in expired:
        m = re.fullmatch(r"deadline passed after (\d+) us in the queue of backend cpu0",
                         codes[s][1])
        assert m and int(m.group(1)) >= timeout_us, codes[s]
        assert bytes(res[s].body) == b""  # trailers-only
    n_ok = len(res) - len(expired)
    after = sm.wait_outcomes(g, before, SLOW, len(res))
    delta = sm.outcome_delta(before, after, SLOW)
    assert delta == {("cpu0", "success"): n_ok, ("cpu0", "expired"): len(expired)}, delta
    assert sm.rows_total(after) - sm.rows_total(before) == 8 * n_ok, \
        f"{len(expired)} expired gRPC requests must not run"
    ms = g.metrics()
    assert gwlib.metric(ms, "infergw_grpc_requests_total", method="ModelInfer",
                        code="4") == len(expired)


def test_deadline_unreachable_at_admission(pb, slow_dir, start_gw):
    """A deadline no backend can meet is refused at admission, never queued:
    RESOURCE_EXHAUSTED (HTTP's 429, documented), not DEADLINE_EXCEEDED."""
    g = start_gw("grpc-admit", slow_conf(slow_dir, max_batch=4))
    before = g.metrics()
    with gwlib.H2Client(g.port) as c:
        sid = c.request("POST", SVC + "ModelInfer", grpc_body(pb[0], SLOW_ROW),
                        grpc_headers(("grpc-timeout", "1u")))
        r = c.wait([sid])[0]
    code, msg = grpc_status(r)
    assert code == 8 and "objective of 1 us" in msg, (code, msg)
    after = sm.wait_outcomes(g, before, SLOW, 1)
    assert sm.outcome_delta(before, after, SLOW) == {("none", "rejected"): 1}
    assert sm.rows_total(after) == sm.rows_total(before)


def test_cancel_queued_requests_not_executed(pb, slow_dir, start_gw):
    """RST_STREAM(CANCEL) (what a grpcio cancel sends) on queued gRPC
    calls removes them from the queue: counted cancelled, never executed;
    the others are answered with the reference values."""
    g = start_gw("grpc-cancel", slow_conf(slow_dir, max_batch=64, max_queue_delay_us=1500000))
    before = g.metrics()
    n = 10
    body = grpc_body(pb[0], SLOW_ROW)
    with sm.OrderedH2(g.port) as c:
        sids = [c.request("POST", SVC + "ModelInfer", body, grpc_headers(), flush=False)
                for _ in range(n)]
        c.flush()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if gwlib.metric(g.metrics(), "infergw_queue_depth", backend="cpu0", model=SLOW) == n:
                break
            time.sleep(0.02)
        assert gwlib.metric(g.metrics(), "infergw_queue_depth", backend="cpu0", model=SLOW) == n
        reset, keep = sids[::2], sids[1::2]
        for s in reset:
            c.reset(s)
        rs = c.wait(keep, timeout=20)
    check_slow_answers(pb, rs, sm.ref_forward(slow_dir, SLOW_ROW))
    after = sm.wait_outcomes(g, before, SLOW, n)
    delta = sm.outcome_delta(before, after, SLOW)
    assert delta == {("cpu0", "success"): len(keep), ("cpu0", "cancelled"): len(reset)}, delta
    assert sm.rows_total(after) - sm.rows_total(before) == len(keep)
    assert gwlib.metric(after, "infergw_queue_depth", backend="cpu0", model=SLOW) == 0


def test_cancel_requests_that_view_their_body(pb, slow_dir, start_gw):
    """64-row requests (16 KiB raw input: read in place, the body held with
    the request) queued behind each other on the slow model, the last half
    reset (RST_STREAM CANCEL) while they wait: the body each one holds goes
    with it (the sanitizer runs see a leak or a use after free otherwise),
    the others are answered with the reference values."""
    g = start_gw("grpc-cancel-held", slow_conf(slow_dir, max_batch=64))
    before = g.metrics()
    n = 8
    x = np.tile(SLOW_ROW, (64, 1)) + np.arange(64, dtype=np.float32)[:, None] / 4096
    body = grpc_body(pb[0], x)
    with sm.OrderedH2(g.port) as c:
        sids = [c.request("POST", SVC + "ModelInfer", body, grpc_headers(), flush=False)
                for _ in range(n)]
        c.flush()
        reset, keep = sids[n // 2:], sids[:n // 2]
        for s in reset:
            c.reset(s)
        rs = c.wait(keep, timeout=30)
    check_slow_answers(pb, rs, sm.ref_forward(slow_dir, x))
    after = sm.wait_outcomes(g, before, SLOW, n)
    delta = sm.outcome_delta(before, after, SLOW)
    # a reset that came after its batch started is answered into the void
    assert delta.get(("cpu0", "success"), 0) >= len(keep), delta
    assert sum(delta.values()) == n, delta
    assert gwlib.metric(after, "infergw_queue_depth", backend="cpu0", model=SLOW) == 0


# ---- ModelStreamInfer -----------------------------------------------------

def test_stream_1000_requests(pb, stub, model):
    """1000 requests on one stream (1-4 rows each, every 10th for an
    unknown model): every answer's id matches one request, values against
    the reference; the unknown-model ones come as error_message and the
    stream goes on; OK at the end."""
    msgs = pb[0]
    sent = {}

    def gen():
        for i in range(1000):
            x = rows_of(1 + i % 4, seed=5000 + i)
            sent[f"s{i}"] = x
            yield infer_req(msgs, x, id=f"s{i}", model="nope" if i % 10 == 9 else "digits")

    call = stub.ModelStreamInfer(gen(), timeout=120)
    ok = errors = 0
    for resp in call:
        if resp.error_message:
            assert resp.error_message == 'unknown model "nope"', resp.error_message
            errors += 1
            continue
        r = resp.infer_response
        x = sent.pop(r.id)
        check_output(r, model, x, id=r.id)
        ok += 1
    assert (ok, errors) == (900, 100)
    assert all(int(k[1:]) % 10 == 9 for k in sent), "an answer is missing"
    assert call.code() == grpc.StatusCode.OK


def test_stream_bad_message_continues(gw, pb):
    """Over raw h2: a message that is not a ModelInferRequest is answered
    with error_message and the next one is served; the trailers come after
    the client's END_STREAM."""
    msgs = pb[0]
    good = frame(infer_req(msgs, rows_of(1), id="g").SerializeToString())
    body = good + frame(b"\xff\xff\xff") + good
    with gwlib.H2Client(gw.port) as c:
        sid = c.request("POST", SVC + "ModelStreamInfer", body, grpc_headers())
        r = c.wait([sid])[0]
    assert r.status == 200 and r.trailers.get("grpc-status") == "0", r
    data, out = bytes(r.body), []
    while data:
        flag, n = struct.unpack(">BI", data[:5])
        out.append(msgs.ModelStreamInferResponse.FromString(data[5:5 + n]))
        data = data[5 + n:]
    assert len(out) == 3
    assert sum(1 for m in out if "not a valid" in m.error_message) == 1
    assert sorted(m.infer_response.id for m in out if not m.error_message) == ["g", "g"]


@pytest.mark.parametrize("body,code,word", [
    (struct.pack(">BI", 0, 10_000_000), 8, "max_body_bytes"),
    (frame(b"\x0a\x06digits")[:-2], 3, "ended inside a message"),
    (frame(b"\x0a\x06digits", flag=1), 13, "compressed flag set"),
    (frame(b"\x0a\x06digits", flag=9), 3, "compressed flag"),
])
def test_stream_broken_framing(gw, pb, stub, body, code, word):
    """Framing the stream cannot go on from ends it with a status."""
    with gwlib.H2Client(gw.port) as c:
        sid = c.request("POST", SVC + "ModelStreamInfer", body, grpc_headers())
        r = c.wait([sid])[0]
    assert r.status == 200 and r.ended, r
    st, msg = grpc_status(r)
    assert (st, word in msg) == (code, True), (st, msg)
    assert stub.ServerLive(pb[0].ServerLiveRequest()).live is True


def test_stream_empty(gw):
    """A stream the client closes at once: OK, no message."""
    with gwlib.H2Client(gw.port) as c:
        sid = c.request("POST", SVC + "ModelStreamInfer", None, grpc_headers())
        r = c.wait([sid])[0]
    assert grpc_status(r) == (0, "") and bytes(r.body) == b""


WIDE = "wide"


def _queue_depth(g, model=SLOW):
    return gwlib.metric(g.metrics(), "infergw_queue_depth", backend="cpu0", model=model)


def test_stream_in_flight_cap_and_cancel(pb, tmp_path, start_gw):
    """digits as "wide" (batches of up to 256 rows, held 1.5 s to fill): a
    stream of 100 one-row requests (not half-closed) has at most 64 in
    flight (the rest wait in the client's flow-control window); cancelling
    the call (RST_STREAM) removes the queued ones: counted cancelled, none
    executed."""
    import threading
    d = sm.copy_model(gwlib.MODEL_DIR, tmp_path / WIDE)
    y = (d / "model.yaml").read_text()
    (d / "model.yaml").write_text(y.replace("name: digits", f"name: {WIDE}")
                                   .replace("max_batch_size: 64", "max_batch_size: 256"))
    g = start_gw("grpc-stream-cancel", sm.config_text(
        [sm.model_yaml(WIDE, d, max_batch=256, max_queue_delay_us=1500000)],
        [sm.backend_yaml("cpu0", [WIDE])]))
    stub = pb[1](grpc.insecure_channel(f"{gwlib.HOST}:{g.port}"))
    before = g.metrics()
    hold = threading.Event()

    def gen():
        for i in range(100):
            yield infer_req(pb[0], rows_of(1), id=f"c{i}", model=WIDE)
        hold.wait(30)

    call = stub.ModelStreamInfer(gen(), timeout=60)
    deadline, depth = time.monotonic() + 5, 0
    while time.monotonic() < deadline and depth < 64:
        depth = _queue_depth(g, WIDE)
        time.sleep(0.02)
    time.sleep(0.2)
    depth = _queue_depth(g, WIDE)
    assert depth == 64, depth
    call.cancel()
    hold.set()
    after = sm.wait_outcomes(g, before, WIDE, 64)
    assert sm.outcome_delta(before, after, WIDE) == {("cpu0", "cancelled"): 64}
    assert sm.rows_total(after) == sm.rows_total(before)
    assert _queue_depth(g, WIDE) == 0


# ---- Triton's extensions: ModelConfig, ModelStatistics, repository --------

def _num(v):
    return int(v) if isinstance(v, str) and v.lstrip("-").isdigit() else v


def test_model_config_matches_http(pb, stub, h2client):
    """ModelConfig carries what GET /v2/models/digits/config says (the same
    encoder), in model_config.proto's fields."""
    cfg = stub.ModelConfig(pb[0].ModelConfigRequest(name="digits")).config
    http = h2client.get("/v2/models/digits/config").json()
    assert (cfg.name, cfg.platform, cfg.backend, cfg.max_batch_size) == \
        (http["name"], http["platform"], http["backend"], http["max_batch_size"])
    assert list(cfg.version_policy.specific.versions) == http["version_policy"]["specific"]["versions"]
    for got, want in [(cfg.input, http["input"]), (cfg.output, http["output"])]:
        assert [(t.name, pb[0].DataType.Name(t.data_type), list(t.dims)) for t in got] == \
            [(t["name"], t["data_type"], t["dims"]) for t in want]
    db, hdb = cfg.dynamic_batching, http["dynamic_batching"]
    assert cfg.WhichOneof("scheduling_choice") == "dynamic_batching"
    assert (list(db.preferred_batch_size), db.max_queue_delay_microseconds, db.priority_levels,
            db.default_priority_level) == \
        (hdb["preferred_batch_size"], hdb["max_queue_delay_microseconds"],
         hdb["priority_levels"], hdb["default_priority_level"])
    qp = db.default_queue_policy
    assert (qp.default_timeout_microseconds, qp.allow_timeout_override, qp.max_queue_size) == \
        (hdb["default_queue_policy"]["default_timeout_microseconds"], True,
         hdb["default_queue_policy"]["max_queue_size"])
    assert [(g.name, pb[0].ModelInstanceGroup.Kind.Name(g.kind), g.count) for g in
            cfg.instance_group] == [(g["name"], g["kind"], g["count"])
                                    for g in http["instance_group"]]
    code, msg = code_of(lambda: stub.ModelConfig(pb[0].ModelConfigRequest(name="nope")))
    assert code == grpc.StatusCode.NOT_FOUND and "nope" in msg


def test_model_statistics_match_http(pb, stub, h2client, model):
    """ModelStatistics counts what /v2/models/digits/stats counts: after a
    3-row and a 2-row inference and a failed one, every field equal (no
    inference in between)."""
    from google.protobuf import json_format
    msgs = pb[0]
    before = stub.ModelStatistics(msgs.ModelStatisticsRequest(name="digits")).model_stats[0]
    stub.ModelInfer(infer_req(msgs, rows_of(3)))
    stub.ModelInfer(infer_req(msgs, rows_of(2)))
    bad = infer_req(msgs, rows_of(1))
    bad.inputs[0].shape[:] = [1, 63]
    with pytest.raises(grpc.RpcError):
        stub.ModelInfer(bad)
    got = stub.ModelStatistics(msgs.ModelStatisticsRequest(name="digits", version="1"))
    http = h2client.get("/v2/models/digits/stats").json()
    assert len(got.model_stats) == 1
    s = got.model_stats[0]
    assert s.inference_count - before.inference_count == 5
    assert s.inference_stats.success.count - before.inference_stats.success.count == 2
    assert s.inference_stats.fail.count - before.inference_stats.fail.count == 1
    d = json_format.MessageToDict(s, preserving_proto_field_name=True)
    h = http["model_stats"][0]
    for k in ["name", "version", "last_inference", "inference_count", "execution_count"]:
        assert _num(d.get(k, 0)) == _num(h[k]), k
    for k, v in h["inference_stats"].items():
        assert {f: _num(d["inference_stats"].get(k, {}).get(f, 0)) for f in ("count", "ns")} == v, k
    assert [{k: _num(v) if k == "batch_size" else {f: _num(v.get(f, 0)) for f in ("count", "ns")}
             for k, v in b.items()} for b in d.get("batch_stats", [])] == \
        [{k: v for k, v in b.items()} for b in h["batch_stats"]]
    every = stub.ModelStatistics(msgs.ModelStatisticsRequest())
    assert [m.name for m in every.model_stats] == ["digits"]
    code, _ = code_of(lambda: stub.ModelStatistics(msgs.ModelStatisticsRequest(name="nope")))
    assert code == grpc.StatusCode.NOT_FOUND


def test_repository_index_matches_http(pb, stub, gw):
    st, _, body = gwlib.h1_request(gw.port, "POST", "/v2/repository/index", b"")
    assert st == 200
    idx = stub.RepositoryIndex(pb[0].RepositoryIndexRequest())
    assert [(m.name, m.version, m.state, m.reason) for m in idx.models] == \
        [(m["name"], m["version"], m["state"], m["reason"]) for m in json.loads(body)]
    ready = stub.RepositoryIndex(pb[0].RepositoryIndexRequest(ready=True))
    assert [m.name for m in ready.models] == ["digits"]


def test_repository_load_unload_need_permission(pb, stub):
    """The HTTP rule: load/unload on the inference port only with
    admin.repository_on_main; else PERMISSION_DENIED naming the admin
    listener."""
    msgs = pb[0]
    for call in (lambda: stub.RepositoryModelLoad(msgs.RepositoryModelLoadRequest(model_name="digits")),
                 lambda: stub.RepositoryModelUnload(
                     msgs.RepositoryModelUnloadRequest(model_name="digits"))):
        code, msg = code_of(call)
        assert code == grpc.StatusCode.PERMISSION_DENIED and "admin listener" in msg, msg
    assert stub.ModelReady(msgs.ModelReadyRequest(name="digits")).ready


def test_repository_unload_load(pb, tmp_path, start_gw, model):
    """With admin.repository_on_main: unload drops the model (index
    UNAVAILABLE "unloaded", inference NOT_FOUND), load brings it back
    (values checked); a parameter HTTP refuses is refused, named."""
    msgs = pb[0]
    text = sm.config_text([sm.model_yaml("digits", gwlib.MODEL_DIR)],
                          [sm.backend_yaml("cpu0", ["digits"])])
    text = text.replace("admin:\n  address: 127.0.0.1\n",
                        "admin:\n  repository_on_main: true\n  address: 127.0.0.1\n")
    g = start_gw("grpc-repo", text)
    stub = pb[1](grpc.insecure_channel(f"{gwlib.HOST}:{g.port}"))
    x = rows_of(2, seed=77)
    stub.RepositoryModelUnload(msgs.RepositoryModelUnloadRequest(model_name="digits"))
    idx = stub.RepositoryIndex(msgs.RepositoryIndexRequest())
    assert [(m.name, m.state, m.reason) for m in idx.models] == [("digits", "UNAVAILABLE", "unloaded")]
    code, _ = code_of(lambda: stub.ModelInfer(infer_req(msgs, x)))
    assert code == grpc.StatusCode.NOT_FOUND
    bad = msgs.RepositoryModelLoadRequest(model_name="digits")
    bad.parameters["x"].string_param = "y"
    code, msg = code_of(lambda: stub.RepositoryModelLoad(bad))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and '"x"' in msg, msg
    code, msg = code_of(lambda: stub.RepositoryModelLoad(
        msgs.RepositoryModelLoadRequest(model_name="nope")))
    assert code == grpc.StatusCode.NOT_FOUND, msg
    stub.RepositoryModelLoad(msgs.RepositoryModelLoadRequest(model_name="digits"))
    check_output(stub.ModelInfer(infer_req(msgs, x)), model, x)


def test_repository_unload_needs_admin_token(pb, tmp_path, start_gw):
    """With admin.repository_on_main and admin.token_file: load/unload
    without the token's "authorization: Bearer" metadata (or with another)
    are UNAUTHENTICATED, naming what is missing, and change nothing; with
    it, the unload is done.  The index stays open."""
    msgs = pb[0]
    token = "0123456789abcdef0123456789abcdef"
    (tmp_path / "admin.token").write_text(token + "\n")
    text = sm.config_text([sm.model_yaml("digits", gwlib.MODEL_DIR)],
                          [sm.backend_yaml("cpu0", ["digits"])])
    text = text.replace("admin:\n  address: 127.0.0.1\n",
                        "admin:\n  repository_on_main: true\n  token_file: "
                        f"{tmp_path / 'admin.token'}\n  address: 127.0.0.1\n")
    g = start_gw("grpc-token", text)
    stub = pb[1](grpc.insecure_channel(f"{gwlib.HOST}:{g.port}"))
    unload = msgs.RepositoryModelUnloadRequest(model_name="digits")
    code, msg = code_of(lambda: stub.RepositoryModelUnload(unload))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "admin.token_file" in msg, msg
    code, msg = code_of(lambda: stub.RepositoryModelLoad(
        msgs.RepositoryModelLoadRequest(model_name="digits"),
        metadata=(("authorization", "Bearer " + token[::-1]),)))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "wrong bearer token" in msg, msg
    assert stub.ModelReady(msgs.ModelReadyRequest(name="digits")).ready
    stub.RepositoryModelUnload(unload, metadata=(("authorization", "Bearer " + token),))
    idx = stub.RepositoryIndex(msgs.RepositoryIndexRequest())
    assert [(m.name, m.state, m.reason) for m in idx.models] == \
        [("digits", "UNAVAILABLE", "unloaded")]


# ---- message compression (grpc-encoding) ----------------------------------

def test_gzip_messages_grpcio(pb, gw, model):
    """grpcio with gzip compression: unary and streaming requests are
    inflated and answered with the reference values."""
    ch = grpc.insecure_channel(f"{gwlib.HOST}:{gw.port}", compression=grpc.Compression.Gzip)
    stub = pb[1](ch)
    x = rows_of(8, seed=31)
    check_output(stub.ModelInfer(infer_req(pb[0], x, id="z"), timeout=30), model, x, id="z")
    xs = [rows_of(2, seed=40 + i) for i in range(20)]
    got = {r.infer_response.id: r for r in stub.ModelStreamInfer(
        (infer_req(pb[0], v, id=f"z{i}") for i, v in enumerate(xs)), timeout=30)}
    for i, v in enumerate(xs):
        check_output(got[f"z{i}"].infer_response, model, v, id=f"z{i}")
    ch.close()


def _gz(b):
    import gzip
    return gzip.compress(b, compresslevel=9)


def test_gzip_raw_and_bounds(gw, pb):
    """Over raw h2: a gzip message is served and every answer advertises
    grpc-accept-encoding; a gzip bomb (10 MB of zeros in ~10 KB) is
    RESOURCE_EXHAUSTED at limits.max_body_bytes; corrupt gzip INTERNAL; an
    unknown grpc-encoding UNIMPLEMENTED naming what is accepted."""
    msgs = pb[0]
    good = infer_req(msgs, rows_of(1), id="g").SerializeToString()
    enc = ("grpc-encoding", "gzip")
    bomb = msgs.ModelInferRequest(model_name="digits", id="x" * 10_000_000).SerializeToString()
    cases = [
        (frame(_gz(good), flag=1), [enc], 0, ""),
        (frame(_gz(bomb), flag=1), [enc], 8, "inflates past limits.max_body_bytes"),
        (frame(_gz(good)[:-6], flag=1), [enc], 13, "gzip message"),
        (frame(good), [("grpc-encoding", "br")], 12, "grpc-encoding \"br\" is not supported"),
    ]
    assert len(cases[1][0]) < 65536
    with gwlib.H2Client(gw.port) as c:
        sids = [c.request("POST", SVC + "ModelInfer", body, grpc_headers(*h))
                for body, h, _, _ in cases]
        rs = c.wait(sids, timeout=30)
    for r, (_, _, code, word) in zip(rs, cases):
        assert r.status == 200 and r.headers.get("grpc-accept-encoding") == "identity,gzip", r
        st, msg = grpc_status(r)
        assert st == code and word in msg, (st, msg)
    resp = msgs.ModelInferResponse.FromString(bytes(rs[0].body)[5:])
    assert resp.id == "g"


# ---- Triton's gRPC port (listen.grpc_port) --------------------------------

def test_grpc_port_serves_the_same_stack(pb, start_gw, model):
    """listen.grpc_port (0 here: a free one, logged as grpc_listen=) is one
    more listener into the same stack: gRPC (unary and streaming) and
    HTTP/2 and HTTP/1.1 on it; off unless configured (the main gateway
    logs no grpc_listen=)."""
    text = sm.config_text([sm.model_yaml("digits", gwlib.MODEL_DIR)],
                          [sm.backend_yaml("cpu0", ["digits"])])
    text = text.replace("  port: 8000\n", "  port: 8000\n  grpc_port: 0\n", 1)
    g = start_gw("grpc-port", text)
    m = re.search(r"grpc_listen=([0-9.]+):(\d+)", g.log())
    assert m, g.log()[-2000:]
    port = int(m.group(2))
    assert port != g.port
    stub = pb[1](grpc.insecure_channel(f"{gwlib.HOST}:{port}"))
    x = rows_of(3, seed=8001)
    check_output(stub.ModelInfer(infer_req(pb[0], x, id="p")), model, x, id="p")
    got = list(stub.ModelStreamInfer(iter([infer_req(pb[0], x, id="s")])))
    check_output(got[0].infer_response, model, x, id="s")
    with gwlib.H2Client(port) as c:
        r = c.wait([c.request("GET", "/v2/health/ready")])[0]
    assert r.status == 200
    st, _, _ = gwlib.h1_request(port, "GET", "/v2/health/live")
    assert st == 200
    cfg = g.effective_config()
    assert cfg["listen"]["grpc_port"] == 0


def test_grpc_port_off_by_default(gw):
    assert "grpc_listen=" not in gw.log()
