"""Binary tensor payloads: Triton's binary tensor extension and msgpack.

Requests are built byte for byte the way Triton's Python HTTP client
(tritonclient.http over geventhttpclient) sends them: lower-case header
names, no Content-Type, a compact JSON header (rapidjson.dumps) whose length
is in `inference-header-content-length`, then the raw little-endian FP32
rows.  They go over one raw HTTP/1.1 keep-alive socket (sequential and
pipelined) and over HTTP/2 (httpx prior knowledge, and python-h2 with many
streams in flight).  Every answer must hold the very float32 values the plain
JSON path gives for the same rows (JSON prints %.9g, which round-trips a
float32 exactly), and the argmax must be the held-out label.

msgpack (`content-type: application/msgpack`, `accept: application/msgpack`)
is checked the same way, with bin and array data.  Each malformed payload gets
a 400 whose JSON message names the field, the connection it came on keeps
serving, and infergw_http_responses_total{code="400"} moves by exactly the
number of bad requests sent.
"""
import json
import time

import httpx
import msgpack
import numpy as np
import pytest

import gwlib
from gwlib import INFER, JSON_CT, H1Conn, H2Client, infer_body

IHCL = "inference-header-content-length"
MSGPACK = "application/msgpack"
OCTET = "application/octet-stream"
NOUT = 10
# geventhttpclient's default header (its own version is irrelevant to us)
TRITON_UA = "python/gevent-http-client-2.0.11"


# ------------------------------------------------------------ payloads ----

def f32(rows):
    return np.ascontiguousarray(np.asarray(rows, dtype="<f4").reshape(-1, 64))


def triton_body(rows, *, outputs="binary", id=None, binary_input=True, datatype="FP32",
                shape=None, size=None):
    """(body, json_size) as tritonclient.http's _get_inference_request builds
    them.  outputs: "binary" (InferRequestedOutput(name), binary_data=True),
    "json" (binary_data=False), or None (no outputs requested: the client
    then asks for parameters.binary_data_output).  json_size is None when no
    input is binary (the client then sends no inference-header-content-length).
    shape/size override what the rows imply (for malformed requests)."""
    x = f32(rows)
    req = {}
    if id is not None:
        req["id"] = id
    inp = {"name": "input", "shape": list(shape or x.shape), "datatype": datatype}
    if binary_input:
        inp["parameters"] = {"binary_data_size": x.nbytes if size is None else size}
    else:
        inp["data"] = x.reshape(-1).tolist()
    req["inputs"] = [inp]
    params = {}
    if outputs == "binary":
        req["outputs"] = [{"name": "probabilities", "parameters": {"binary_data": True}}]
    elif outputs == "json":
        req["outputs"] = [{"name": "probabilities", "parameters": {"binary_data": False}}]
    else:
        assert outputs is None
        params["binary_data_output"] = True
    if params:
        req["parameters"] = params
    header = json.dumps(req, separators=(",", ":")).encode()
    if not binary_input:
        return header, None
    return header + x.tobytes(), len(header)


def triton_h1(port, body, json_size, *, name=IHCL, path=INFER):
    """The bytes geventhttpclient writes for client.infer(): default
    user-agent, the caller's headers, host, content-length; all lower case."""
    lines = [f"POST {path} HTTP/1.1", f"user-agent: {TRITON_UA}"]
    if json_size is not None:
        lines.append(f"{name}: {json_size}")
    lines += [f"host: 127.0.0.1:{port}", f"content-length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def mp_body(rows, *, bin=True, id=None, outputs=True, params=None, datatype="FP32",
            data=None):
    x = f32(rows)
    d = {}
    if id is not None:
        d["id"] = id
    if params is not None:
        d["parameters"] = params
    if data is None:
        data = x.tobytes() if bin else [float(v) for v in x.reshape(-1)]
    d["inputs"] = [{"name": "input", "datatype": datatype, "shape": list(x.shape),
                    "data": data}]
    if outputs:
        d["outputs"] = [{"name": "probabilities"}]
    return msgpack.packb(d, use_bin_type=True)


# ------------------------------------------------------------ decoding ----

def decode(status, hdrs, body, n, *, kind, id=None):
    """Check a 200 infer answer of the given kind ("binary", "json",
    "msgpack") for n rows; return its values as float32 (n, 10)."""
    body = bytes(body)
    assert status == 200, (status, hdrs, body[:300])
    ct = hdrs.get("content-type", "")
    if kind == "msgpack":
        assert ct.startswith(MSGPACK), hdrs
        assert IHCL not in hdrs, hdrs
        doc = msgpack.unpackb(body, raw=False)
        out = doc["outputs"][0]
        assert isinstance(out["data"], bytes), type(out["data"])
        assert len(out["data"]) == n * NOUT * 4, len(out["data"])
        vals = np.frombuffer(out["data"], dtype="<f4")
    elif kind == "binary":
        assert ct.startswith(OCTET), hdrs
        hl = int(hdrs[IHCL])
        assert 0 < hl <= len(body), (hl, len(body))
        doc = json.loads(body[:hl])
        out = doc["outputs"][0]
        assert "data" not in out, out
        size = out["parameters"]["binary_data_size"]
        assert size == n * NOUT * 4, out
        assert len(body) == hl + size, (len(body), hl, size)
        if "content-length" in hdrs:
            assert int(hdrs["content-length"]) == len(body), hdrs
        vals = np.frombuffer(body[hl:], dtype="<f4")
    else:
        assert kind == "json"
        assert ct.startswith("application/json"), hdrs
        assert IHCL not in hdrs, hdrs
        doc = json.loads(body)
        out = doc["outputs"][0]
        assert "parameters" not in out or "binary_data_size" not in out["parameters"], out
        # %.9g text -> the nearest float32 is the server's float32 exactly
        vals = np.asarray(out["data"], dtype=np.float64).astype(np.float32)
    gwlib.check_infer_doc(doc, n, id=id)
    assert vals.shape == (n * NOUT,), vals.shape
    return vals.reshape(n, NOUT)


def httpx_resp(r):
    assert r.http_version == "HTTP/2", r.http_version
    return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content


def h2_resp(r):
    assert r.reset is None, r
    return r.status, r.headers, bytes(r.body)


# ------------------------------------------------------------ fixtures ----

@pytest.fixture(scope="module")
def rows(model, heldout):
    """Held-out rows the model classifies right: one, five, and their labels."""
    x, y = heldout
    pred = model.forward(x[:60]).argmax(axis=1)
    good = [i for i in range(60) if pred[i] == y[i]]
    assert len(good) >= 8, good
    one, five = good[:1], good[1:6]
    return {"one": (x[one].astype("<f4"), y[one]), "five": (x[five].astype("<f4"), y[five]),
            "other": (x[good[6:8]].astype("<f4"), y[good[6:8]])}


@pytest.fixture(scope="module")
def ref(gw, model, rows):
    """The JSON path's float32 answers for each row set (one request each,
    over HTTP/1.1 with content-type application/json), checked against the
    float64 reference model and the labels."""
    out = {}
    with H1Conn(gw.port) as c:
        for key, (x, y) in rows.items():
            st, hd, body = c.request("POST", INFER, infer_body(x), [JSON_CT])
            vals = decode(st, hd, body, len(x), kind="json")
            np.testing.assert_allclose(vals, model.forward(x), rtol=1e-5, atol=1e-6)
            assert list(vals.argmax(axis=1)) == list(y), (vals.argmax(axis=1), y)
            out[key] = vals
    return out


def same(got, want, what):
    """Exactly the JSON path's float32 values (bit for bit)."""
    assert got.dtype == np.float32 and want.dtype == np.float32
    assert np.array_equal(got, want), (
        f"{what}: values differ from the JSON path; max |diff| "
        f"{np.max(np.abs(got.astype(np.float64) - want)):.3g}\n got {got[0]}\nwant {want[0]}")


# ------------------------------------------------ 1. Triton's client ----

def test_triton_header_is_what_tritonclient_sends():
    body, hl = triton_body(np.zeros((1, 64)))
    want = (b'{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32",'
            b'"parameters":{"binary_data_size":256}}],"outputs":[{"name":"probabilities",'
            b'"parameters":{"binary_data":true}}]}')
    assert body[:hl] == want
    assert len(body) == hl + 256
    body, hl = triton_body(np.zeros((2, 64)), outputs=None, id="r7")
    assert body[:hl] == (b'{"id":"r7","inputs":[{"name":"input","shape":[2,64],"datatype":"FP32",'
                         b'"parameters":{"binary_data_size":512}}],'
                         b'"parameters":{"binary_data_output":true}}')


def test_triton_http1_keepalive_one_socket(gw, rows, ref):
    """tritonclient's exact bytes, many requests on ONE keep-alive socket:
    binary outputs, JSON outputs, binary_data_output at request level, an
    id, header names in other cases, JSON requests in between."""
    x1, _ = rows["one"]
    x5, _ = rows["five"]
    plan = [  # (rows key, triton_body kwargs, header name, expected kind)
        ("one", {}, IHCL, "binary"),
        ("five", {}, IHCL, "binary"),
        ("one", {"outputs": "json"}, IHCL, "json"),
        ("five", {"outputs": "json"}, IHCL, "json"),
        ("one", {"outputs": None}, IHCL, "binary"),
        ("five", {"outputs": None, "id": "triton-5"}, IHCL, "binary"),
        ("five", {"id": "my id \u00e9"}, "Inference-Header-Content-Length", "binary"),
        ("one", {"outputs": "json", "id": "x"}, "INFERENCE-HEADER-CONTENT-LENGTH", "json"),
        ("other", {}, "Inference-header-content-length", "binary"),
    ]
    with H1Conn(gw.port) as c:
        for i, (key, kw, name, kind) in enumerate(plan):
            x = rows[key][0]
            body, hl = triton_body(x, **kw)
            c.send(triton_h1(gw.port, body, hl, name=name))
            st, hd, rb = c.read_response()
            assert hd.get("connection", "").lower() != "close", (i, hd)
            got = decode(st, hd, rb, len(x), kind=kind, id=kw.get("id"))
            same(got, ref[key], f"request {i} {kw} header {name!r}")
            if i % 3 == 2:  # a plain JSON request on the same socket in between
                st, hd, rb = c.request("POST", INFER, infer_body(x5), [JSON_CT])
                same(decode(st, hd, rb, 5, kind="json"), ref["five"], "JSON in between")
        # pipelined: three Triton requests in one write, answers in order
        b1, h1 = triton_body(x1)
        b5, h5 = triton_body(x5, outputs="json")
        bo, ho = triton_body(rows["other"][0], outputs=None)
        c.send(triton_h1(gw.port, b1, h1) + triton_h1(gw.port, b5, h5) +
               triton_h1(gw.port, bo, ho))
        same(decode(*c.read_response(), 1, kind="binary"), ref["one"], "pipelined 1")
        same(decode(*c.read_response(), 5, kind="json"), ref["five"], "pipelined 2")
        same(decode(*c.read_response(), 2, kind="binary"), ref["other"], "pipelined 3")


def test_triton_batch_of_64_binary(gw, model, heldout):
    """The model's max_batch_size in one binary request, both ways."""
    x = heldout[0][:64].astype("<f4")
    with H1Conn(gw.port) as c:
        st, hd, rb = c.request("POST", INFER, infer_body(x), [JSON_CT])
        want = decode(st, hd, rb, 64, kind="json")
        body, hl = triton_body(x)
        c.send(triton_h1(gw.port, body, hl))
        same(decode(*c.read_response(), 64, kind="binary"), want, "batch 64")
    np.testing.assert_allclose(want, model.forward(x), rtol=1e-5, atol=1e-6)
    assert np.mean(want.argmax(axis=1) == heldout[1][:64]) > 0.9


def test_binary_framing_variants(gw, rows, ref, model, heldout):
    """The binary section at every alignment (the server views the floats in
    place, so they may start at any byte), the body arriving in pieces, as
    chunks, after 100-continue, and over many h2 DATA frames."""
    x5 = rows["five"][0]
    with H1Conn(gw.port) as c:
        seen = set()
        for pad in range(4):  # the id's length moves the binary section
            body, hl = triton_body(x5, id="a" * (pad + 1))
            seen.add(hl % 4)
            c.send(triton_h1(gw.port, body, hl))
            same(decode(*c.read_response(), 5, kind="binary", id="a" * (pad + 1)),
                 ref["five"], f"offset {hl}")
        assert seen == {0, 1, 2, 3}, seen
        # headers, then the body in pieces across separate writes
        body, hl = triton_body(x5, id="split")
        raw = triton_h1(gw.port, body, hl)
        cut = len(raw) - len(body)
        for a, b in ((0, cut - 3), (cut - 3, cut + hl - 1), (cut + hl - 1, cut + hl + 5),
                     (cut + hl + 5, len(raw) - 1), (len(raw) - 1, len(raw))):
            c.send(raw[a:b])
            time.sleep(0.01)
        same(decode(*c.read_response(), 5, kind="binary", id="split"), ref["five"], "split")
        # chunked, chunk borders inside the JSON header and inside a float
        body, hl = triton_body(x5, outputs="json")
        chunks = [body[:hl - 7], body[hl - 7:hl + 3], body[hl + 3:]]
        head = (f"POST {INFER} HTTP/1.1\r\nhost: 127.0.0.1:{gw.port}\r\n"
                f"{IHCL}: {hl}\r\ntransfer-encoding: chunked\r\n\r\n").encode()
        c.send(head + b"".join(b"%x\r\n" % len(k) + k + b"\r\n" for k in chunks) + b"0\r\n\r\n")
        same(decode(*c.read_response(), 5, kind="json"), ref["five"], "chunked")
        # Expect: 100-continue (curl sends it for bodies over 1 MB)
        body, hl = triton_body(x5)
        head = (f"POST {INFER} HTTP/1.1\r\nhost: 127.0.0.1:{gw.port}\r\n{IHCL}: {hl}\r\n"
                f"content-length: {len(body)}\r\nexpect: 100-continue\r\n\r\n").encode()
        c.send(head)
        st, _, _ = c.read_response(interim=True)
        assert st == 100, st
        c.send(body)
        same(decode(*c.read_response(), 5, kind="binary"), ref["five"], "100-continue")
    # h2: 64 rows (16 KiB of floats + header: several DATA frames), binary and msgpack
    x = heldout[0][:64].astype("<f4")
    with H2Client(gw.port) as h:
        want = decode(*h2_resp(h.post(INFER, infer_body(x))), 64, kind="json")
        body, hl = triton_body(x)
        same(decode(*h2_resp(h.post(INFER, body, [(IHCL, str(hl))])), 64, kind="binary"),
             want, "h2 batch 64 binary")
        r = h.post(INFER, mp_body(x), [("content-type", MSGPACK), ("accept", MSGPACK)])
        same(decode(*h2_resp(r), 64, kind="msgpack"), want, "h2 batch 64 msgpack")
    np.testing.assert_allclose(want, model.forward(x), rtol=1e-5, atol=1e-6)


def test_triton_http2_httpx(gw, rows, ref):
    """The same payloads over HTTP/2 (httpx, prior knowledge, one connection)."""
    with httpx.Client(http1=False, http2=True, base_url=gw.base, timeout=10) as cl:
        for key in ("one", "five"):
            x = rows[key][0]
            for kw, kind in (({}, "binary"), ({"outputs": "json"}, "json"),
                             ({"outputs": None, "id": "h2"}, "binary")):
                body, hl = triton_body(x, **kw)
                r = cl.post(INFER, content=body, headers={IHCL: str(hl)})
                assert "content-type" not in r.request.headers
                got = decode(*httpx_resp(r), len(x), kind=kind, id=kw.get("id"))
                same(got, ref[key], f"h2 {key} {kw}")


# ------------------------------------------------------------ 2. mixed ----

def test_mixed_json_inputs_binary_outputs(gw, rows, ref):
    """JSON data in, binary out: no inference-header-content-length on the
    request (tritonclient with set_data_from_numpy(binary_data=False)), and
    also with one that covers the whole body (an empty binary section)."""
    with H1Conn(gw.port) as c:
        with httpx.Client(http1=False, http2=True, base_url=gw.base, timeout=10) as cl:
            for key in ("one", "five"):
                x = rows[key][0]
                for kw in ({"outputs": "binary"}, {"outputs": None, "id": "jb"}):
                    body, hl = triton_body(x, binary_input=False, **kw)
                    assert hl is None
                    c.send(triton_h1(gw.port, body, None))
                    same(decode(*c.read_response(), len(x), kind="binary", id=kw.get("id")),
                         ref[key], f"h1 json-in binary-out {kw}")
                    r = cl.post(INFER, content=body)
                    same(decode(*httpx_resp(r), len(x), kind="binary", id=kw.get("id")),
                         ref[key], f"h2 json-in binary-out {kw}")
                    # with the header: JSON header is the whole body
                    c.send(triton_h1(gw.port, body, len(body)))
                    same(decode(*c.read_response(), len(x), kind="binary", id=kw.get("id")),
                         ref[key], f"h1 json-in binary-out, header = body length {kw}")


def test_mixed_binary_inputs_json_outputs(gw, rows, ref):
    """Binary data in, JSON out: outputs binary_data false, and no outputs /
    no binary_data_output at all (a hand-written client)."""
    x = rows["five"][0]
    header = json.dumps({"inputs": [{"name": "input", "shape": [5, 64], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 5 * 256}}]}).encode()
    bare = header + x.tobytes()
    with H1Conn(gw.port) as c:
        with httpx.Client(http1=False, http2=True, base_url=gw.base, timeout=10) as cl:
            body, hl = triton_body(x, outputs="json")
            for b, h, what in ((body, hl, "binary_data false"), (bare, len(header), "bare")):
                st, hd, rb = c.request("POST", INFER, b, [("Inference-Header-Content-Length",
                                                           str(h))])
                same(decode(st, hd, rb, 5, kind="json"), ref["five"], f"h1 {what}")
                r = cl.post(INFER, content=b, headers={IHCL: str(h),
                                                       "content-type": OCTET})
                same(decode(*httpx_resp(r), 5, kind="json"), ref["five"], f"h2 {what}")
            # binary_data_output: false at request level, binary_data on the
            # output unset: JSON out
            hdr2 = json.dumps({"inputs": json.loads(header)["inputs"],
                               "parameters": {"binary_data_output": False}}).encode()
            st, hd, rb = c.request("POST", INFER, hdr2 + x.tobytes(), [(IHCL, str(len(hdr2)))])
            same(decode(st, hd, rb, 5, kind="json"), ref["five"], "binary_data_output false")


# ---------------------------------------------------------- 3. msgpack ----

def test_msgpack_round_trip_http1_and_http2(gw, rows, ref):
    acc = [("Content-Type", MSGPACK), ("Accept", MSGPACK)]
    with H1Conn(gw.port) as c, \
            httpx.Client(http1=False, http2=True, base_url=gw.base, timeout=10) as cl:
        for key in ("one", "five"):
            x = rows[key][0]
            for kw in ({"bin": True}, {"bin": False}, {"bin": True, "id": "mp-1"},
                       {"bin": False, "id": "mp-2", "outputs": False},
                       {"bin": True, "params": {"priority": 1, "timeout": 5000000}}):
                body = mp_body(x, **kw)
                st, hd, rb = c.request("POST", INFER, body, acc)
                same(decode(st, hd, rb, len(x), kind="msgpack", id=kw.get("id")),
                     ref[key], f"h1 msgpack {key} {kw}")
                r = cl.post(INFER, content=body,
                            headers={"content-type": MSGPACK, "accept": MSGPACK})
                same(decode(*httpx_resp(r), len(x), kind="msgpack", id=kw.get("id")),
                     ref[key], f"h2 msgpack {key} {kw}")
                # no Accept: a JSON answer to the msgpack request
                st, hd, rb = c.request("POST", INFER, body, [("Content-Type", MSGPACK)])
                same(decode(st, hd, rb, len(x), kind="json", id=kw.get("id")),
                     ref[key], f"h1 msgpack in, JSON out {kw}")
                r = cl.post(INFER, content=body, headers={"content-type": MSGPACK})
                same(decode(*httpx_resp(r), len(x), kind="json", id=kw.get("id")),
                     ref[key], f"h2 msgpack in, JSON out {kw}")
        # JSON in, msgpack out; Triton binary in, msgpack out; x-msgpack
        x = rows["five"][0]
        st, hd, rb = c.request("POST", INFER, infer_body(x, id="j"),
                               [JSON_CT, ("Accept", MSGPACK)])
        same(decode(st, hd, rb, 5, kind="msgpack", id="j"), ref["five"], "JSON in mp out")
        body, hl = triton_body(x)
        r = cl.post(INFER, content=body, headers={IHCL: str(hl), "accept": MSGPACK})
        same(decode(*httpx_resp(r), 5, kind="msgpack"), ref["five"], "binary in mp out")
        st, hd, rb = c.request("POST", INFER, mp_body(x),
                               [("Content-Type", "application/x-msgpack"),
                                ("Accept", "application/json;q=0.5, application/msgpack")])
        same(decode(st, hd, rb, 5, kind="msgpack"), ref["five"], "x-msgpack")
        # media types are case-insensitive (RFC 9110 8.3.1), parameters after
        for ct in ("Application/MsgPack", "APPLICATION/X-MSGPACK; charset=binary"):
            st, hd, rb = c.request("POST", INFER, mp_body(x), [("Content-Type", ct)])
            same(decode(st, hd, rb, 5, kind="json"), ref["five"], ct)


def test_everything_multiplexed_on_one_h2_connection(gw, model, rows, ref):
    """All formats in flight at once on one h2 connection.  Concurrent streams
    may be batched together, so values are compared with a tolerance here (the
    sequential tests above compare bit for bit)."""
    plan = []
    with H2Client(gw.port, timeout=20) as c:
        for rep in range(4):
            for key in ("one", "five", "other"):
                x = rows[key][0]
                body, hl = triton_body(x, id=f"t{rep}{key}")
                plan.append((key, "binary", f"t{rep}{key}",
                             c.request("POST", INFER, body, [(IHCL, str(hl))])))
                body, hl = triton_body(x, outputs="json")
                plan.append((key, "json", None, c.request("POST", INFER, body, [(IHCL, str(hl))])))
                plan.append((key, "msgpack", f"m{rep}", c.request(
                    "POST", INFER, mp_body(x, id=f"m{rep}"),
                    [("content-type", MSGPACK), ("accept", MSGPACK)])))
                plan.append((key, "json", None, c.request("POST", INFER, infer_body(x), [JSON_CT])))
        c.wait([p[3] for p in plan])
        for key, kind, id_, sid in plan:
            got = decode(*h2_resp(c.streams[sid]), len(rows[key][0]), kind=kind, id=id_)
            np.testing.assert_allclose(got, ref[key], rtol=1e-5, atol=1e-7)
            assert list(got.argmax(axis=1)) == list(rows[key][1])
        # and the connection still serves, sequentially, bit for bit
        body, hl = triton_body(rows["five"][0])
        r = c.post(INFER, body, [(IHCL, str(hl))])
        same(decode(*h2_resp(r), 5, kind="binary"), ref["five"], "after multiplexing")


# ----------------------------------------------------- 4. malformed ----

def _bad_cases(x1, x2):
    """(id, headers (lower-case names), body, [substrings of the error])."""
    b1, h1 = triton_body(x1)                       # a good Triton body, 1 row
    L1 = len(b1)
    js = b1[:h1]
    cases = []

    def add(cid, hdrs, body, *subs):
        cases.append((cid, hdrs, body, list(subs)))

    bi, hi = triton_body(x1, datatype="INT32")
    add("binary-datatype", [(IHCL, str(hi))], bi,
        'inputs[0].datatype: expected FP32, got INT32 (input "input" of model digits)')
    bs, hs = triton_body(x1, shape=[2, 64])        # says 2 rows, carries 256 bytes
    add("binary-size-not-shape", [(IHCL, str(hs))], bs,
        "inputs[0].parameters.binary_data_size: 256 bytes, expected 512 for shape [2, 64] FP32")
    add("ihcl-past-end", [(IHCL, str(L1 + 1))], b1,
        f"Inference-Header-Content-Length: {L1 + 1} is past the end of the {L1}-byte body")
    bp, hp = triton_body(x2)                       # 2 rows, 512 bytes declared ...
    bp = bp[:hp + 256]                             # ... 256 sent
    add("binary-past-end", [(IHCL, str(hp))], bp,
        "inputs[0]: binary data of 512 bytes runs past the end of the body "
        "(256 bytes after the JSON header)")
    add("binary-trailing-bytes", [(IHCL, str(h1))], b1 + b"\0" * 8,
        "request body: 8 bytes after the last binary input (binary section is 264 bytes, "
        "inputs use 256)")
    add("binary-size-no-header", [], js,
        "inputs[0].parameters.binary_data_size: set, but the request has no "
        "Inference-Header-Content-Length header")
    add("binary-body-no-header", [], b1, "malformed JSON at line 1 column")
    add("ihcl-not-a-number", [(IHCL, "abc")], b1,
        'Inference-Header-Content-Length: expected a byte count, got "abc"')
    add("ihcl-trailing-junk", [(IHCL, f"{h1}x")], b1,
        f'Inference-Header-Content-Length: expected a byte count, got "{h1}x"')
    add("ihcl-empty", [(IHCL, "")], b1,
        'Inference-Header-Content-Length: expected a byte count, got ""')
    add("ihcl-cuts-json", [(IHCL, str(h1 - 1))], b1, "malformed JSON at line 1 column")
    add("ihcl-zero", [(IHCL, "0")], b1, "request body: empty")
    bn, hn = triton_body(x1, size=-1)
    add("binary-size-negative", [(IHCL, str(hn))], bn[:hn],
        "inputs[0].parameters.binary_data_size: expected a non-negative integer")
    bo = json.loads(js)
    bo["outputs"][0]["parameters"]["binary_data"] = "yes"
    bo = json.dumps(bo, separators=(",", ":")).encode()
    add("binary-data-not-bool", [(IHCL, str(len(bo)))], bo + x1.tobytes(),
        "outputs[0].parameters.binary_data: expected true or false")
    bq = json.loads(js)
    bq["parameters"] = {"binary_data_output": 1}
    bq = json.dumps(bq, separators=(",", ":")).encode()
    add("binary-data-output-not-bool", [(IHCL, str(len(bq)))], bq + x1.tobytes(),
        "parameters.binary_data_output: expected true or false")

    mp = [("content-type", MSGPACK)]
    good = mp_body(x1)
    add("mp-bin-size", mp, mp_body(x1, data=x1.tobytes()[:252]),
        "inputs[0].data: 252 bytes, expected 256 for shape [1, 64] FP32")
    add("mp-bin-size-accept-mp", mp + [("accept", MSGPACK)],
        mp_body(x1, data=x1.tobytes() + b"\0\0\0\0"),
        "inputs[0].data: 260 bytes, expected 256 for shape [1, 64] FP32")
    add("mp-truncated", mp, good[:-10],
        "malformed msgpack: body ends inside the map (the value at byte ")
    # A 5-byte body whose header claims 2^28 elements: refused, no allocation.
    add("mp-huge-array32", mp, b"\xdd\x10\x00\x00\x00",
        "malformed msgpack: body ends inside the map (the value at byte 0 needs more "
        "than the 5 bytes sent)")
    add("mp-garbage", mp, b"\xc1garbage", "malformed msgpack at byte")
    add("mp-datatype", mp, mp_body(x1, datatype="INT32"),
        'inputs[0].datatype: expected FP32, got INT32 (input "input" of model digits)')
    add("mp-trailing", mp, good + b"\x00\x01", "request body: 2 bytes after the msgpack map")
    add("mp-not-a-map", mp, msgpack.packb([1, 2]),
        "request body: expected a msgpack map, got an array")
    add("mp-array-count", mp, mp_body(x1, data=[1.0] * 63),
        "inputs[0].data: expected 64 values for shape [1, 64], got 63")
    add("mp-empty", mp, b"", "request body: empty")
    return cases


@pytest.mark.parametrize("value", ["-5", "99999999999999999999999"])
def test_ihcl_negative_or_overflowing_is_named_as_sent(gw, rows, value):
    """A negative or out-of-range Inference-Header-Content-Length is not a
    byte count: the 400 must quote what the client sent, not what strtoull
    made of it (-5 wraps to 18446744073709551611, overflow saturates to
    18446744073709551615)."""
    body, _ = triton_body(rows["one"][0])
    with H1Conn(gw.port) as c:
        st, hd, rb = c.request("POST", INFER, body, [(IHCL, value)])
        _check_400(value, st, hd, rb, [f'Inference-Header-Content-Length: expected a byte '
                                       f'count, got "{value}"'])


def _check_400(cid, status, hdrs, body, subs):
    """A 400 whose {"error": ...} names every string in subs: JSON, or a
    msgpack map for the cases sent with Accept: application/msgpack."""
    if cid.endswith("-accept-mp"):
        assert status == 400 and hdrs.get("content-type") == MSGPACK, (cid, status, hdrs)
        doc = msgpack.unpackb(bytes(body), raw=False)
        assert set(doc) == {"error"} and all(s in doc["error"] for s in subs), (cid, doc)
        return
    gwlib.check_error_response(cid, status, hdrs, body, 400, subs)


@pytest.fixture(scope="module")
def bad_cases(rows):
    return _bad_cases(rows["one"][0], rows["five"][0][:2])


def test_malformed_http1_same_socket_keeps_serving(gw, rows, ref, bad_cases):
    """Each bad payload on one keep-alive socket gets its 400, and a good
    Triton request right after it on the same socket gets the right values;
    the HTTP/1.1 400 counter moves by exactly the number sent."""
    before = gwlib.settled_metrics(gw.metrics_port, "http/1.1", via="h2")
    body, hl = triton_body(rows["one"][0])
    with H1Conn(gw.port) as c:
        for cid, hdrs, bad, subs in bad_cases:
            st, hd, rb = c.request("POST", INFER, bad, hdrs)
            _check_400(cid, st, hd, rb, subs)
            assert hd.get("connection", "").lower() != "close", (cid, hd)
            c.send(triton_h1(gw.port, body, hl))
            same(decode(*c.read_response(), 1, kind="binary"), ref["one"], f"after {cid}")
    n = len(bad_cases)
    gwlib.assert_codes_moved(gw.metrics_port, before, "http/1.1", {"400": n, "200": n},
                             via="h2", others=False)


def test_malformed_http2_one_connection_keeps_serving(gw, rows, ref, bad_cases):
    """All bad payloads interleaved with good ones, all in flight on one h2
    connection; then each bad one again, sequentially; the connection keeps
    serving and the h2 400 counter moves by exactly what we sent."""
    before = gwlib.settled_metrics(gw.metrics_port, "h2", via="h1")
    body, hl = triton_body(rows["five"][0])
    good_hdrs = [(IHCL, str(hl))]
    n_bad = n_good = 0
    with H2Client(gw.port, timeout=20) as c:
        plan = []
        for cid, hdrs, bad, subs in bad_cases:
            plan.append((cid, subs, c.request("POST", INFER, bad, hdrs)))
            plan.append((None, None, c.request("POST", INFER, body, good_hdrs)))
        c.wait([p[2] for p in plan])
        for cid, subs, sid in plan:
            r = c.streams[sid]
            if cid is None:
                got = decode(*h2_resp(r), 5, kind="binary")
                np.testing.assert_allclose(got, ref["five"], rtol=1e-5, atol=1e-7)
                n_good += 1
            else:
                _check_400(cid, r.status, r.headers, r.body, subs)
                n_bad += 1
        for cid, hdrs, bad, subs in bad_cases:
            r = c.post(INFER, bad, hdrs)
            _check_400(cid, r.status, r.headers, r.body, subs)
            n_bad += 1
            r = c.post(INFER, body, good_hdrs)
            same(decode(*h2_resp(r), 5, kind="binary"), ref["five"], f"h2 after {cid}")
            n_good += 1
        assert c.goaway is None, c.goaway
    gwlib.assert_codes_moved(gw.metrics_port, before, "h2", {"400": n_bad, "200": n_good},
                             via="h1", others=False)
