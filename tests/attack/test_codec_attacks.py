"""Attacks on the request codecs (issue 9 #10, #11, #12), as a hostile
client sends them: non-finite numbers in JSON, binary and msgpack tensors;
a decoy "data" list beside the input; timeouts that overflow the deadline;
numbers spelt every way and malformed ones shaped for the word readers.
Every answer must be JSON (or msgpack when asked), carry the documented
status and message, and the process must survive.  Bounded: a few hundred
requests against one gateway."""
import json
import struct

import msgpack
import numpy as np
import pytest

import attacklib
import gwlib

INFER = gwlib.INFER
ROW = [float(x) for x in np.linspace(0.0, 16.0, 64)]
INP = '"name":"input","datatype":"FP32","shape":[1,64]'


@pytest.fixture
def g(gw_factory):
    return gw_factory("codec")


def post_both(g, body, headers=(gwlib.JSON_CT,)):
    """The same request over HTTP/1.1 and HTTP/2: [(status, headers, body)]."""
    st, h, b = gwlib.h1_request(g.port, "POST", INFER, body, list(headers))
    out = [(st, h, b)]
    with gwlib.H2Client(g.port) as c:
        r = c.post(INFER, body, list(headers))
        out.append((r.status, r.headers, bytes(r.body)))
    return out


def strict_json(raw):
    """json.loads that refuses NaN/Infinity tokens (Python accepts them)."""
    def bad(tok):
        raise AssertionError(f"not JSON: {tok} in {raw[:200]!r}")
    return json.loads(raw, parse_constant=bad)


def json_data(values):
    return ("{\"inputs\":[{" + INP + ",\"data\":[" + ",".join(values) + "]}]}").encode()


@pytest.mark.parametrize("token,name", [("1e39", "+Inf"), ("-1e39", "-Inf"),
                                         ("3.5e38", "+Inf")])
def test_fp32_overflow_in_json_is_400(g, token, name):
    vals = [repr(v) for v in ROW]
    vals[3] = token
    for st, h, body in post_both(g, json_data(vals)):
        gwlib.check_error_response(token, st, h, body, 400,
                                   [f"inputs[0].data[3]: not a finite FP32 value ({name})"])
    # nested data names the row and column
    doc = ("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,64],\"data\":[["
           + ",".join(vals) + "]]}]}").encode()
    for st, h, body in post_both(g, doc):
        gwlib.check_error_response(token, st, h, body, 400,
                                   [f"inputs[0].data[0][3]: not a finite FP32 value ({name})"])
    attacklib.assert_alive(g)


@pytest.mark.parametrize("bad,name", [(float("inf"), "+Inf"), (float("-inf"), "-Inf"),
                                      (float("nan"), "NaN")])
def test_nonfinite_binary_tensor_is_400(g, bad, name):
    vals = list(ROW)
    vals[5] = bad
    raw = struct.pack("<64f", *vals)
    hdr = ("{\"inputs\":[{" + INP + ",\"parameters\":{\"binary_data_size\":256}}]}").encode()
    for st, h, body in post_both(g, hdr + raw, [("inference-header-content-length",
                                                  str(len(hdr)))]):
        gwlib.check_error_response(name, st, h, body, 400,
                                   [f"inputs[0].data[5]: not a finite FP32 value ({name})"])
    attacklib.assert_alive(g)


@pytest.mark.parametrize("size,section,want", [
    (256, 252, "inputs[0]: binary data of 256 bytes runs past the end of the body"),
    (252, 252, "inputs[0].parameters.binary_data_size: 252 bytes, expected 256"),
    (256, 260, "request body: 4 bytes after the last binary input"),
    (0, 256, "inputs[0].parameters.binary_data_size: 0 bytes, expected 256"),
    (2**62, 256, "inputs[0].parameters.binary_data_size"),
])
def test_binary_section_that_does_not_fit_is_400(g, model, size, section, want):
    """Triton binary bodies are read in one walk (jfast_read): a binary
    section shorter or longer than binary_data_size says, or a size that
    does not fit the shape, gets the general path's 400 naming the field;
    the same header with a section that fits is answered with the model's
    values."""
    raw = struct.pack("<64f", *ROW)
    raw = (raw + b"\0" * 8)[:section]
    hdr = ("{\"inputs\":[{" + INP + ",\"parameters\":{\"binary_data_size\":%d}}]}" % size).encode()
    for st, h, body in post_both(g, hdr + raw, [("inference-header-content-length",
                                                  str(len(hdr)))]):
        assert st == 400, (size, section, st, body[:200])
        assert want in strict_json(body)["error"], (want, body[:300])
    ok = ("{\"inputs\":[{" + INP + ",\"parameters\":{\"binary_data_size\":256}}],"
          "\"outputs\":[{\"name\":\"probabilities\",\"parameters\":{\"binary_data\":false}}]}").encode()
    for st, h, body in post_both(g, ok + struct.pack("<64f", *ROW),
                                 [("inference-header-content-length", str(len(ok)))]):
        assert st == 200, body[:300]
        gwlib.check_infer_response(body, model, np.asarray(ROW).reshape(1, 64))
    attacklib.assert_alive(g)


@pytest.mark.parametrize("data,idx,name", [
    ("bin_inf", 7, "+Inf"), ("bin_nan", 7, "NaN"), ("array_1e39", 2, "+Inf")])
def test_nonfinite_msgpack_tensor_is_400(g, data, idx, name):
    vals = list(ROW)
    if data == "array_1e39":
        vals[idx] = 1e39              # a float64 msgpack value: finite, not as FP32
        tensor = vals
    else:
        vals[idx] = float("inf") if data == "bin_inf" else float("nan")
        tensor = struct.pack("<64f", *vals)
    body = msgpack.packb({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64],
                                      "data": tensor}]}, use_single_float=False)
    for st, h, resp in post_both(g, body, [("content-type", "application/msgpack")]):
        gwlib.check_error_response(data, st, h, resp, 400,
                                   [f"inputs[0].data[{idx}]: not a finite FP32 value ({name})"])
    attacklib.assert_alive(g)


def test_nonfinite_output_is_never_printed(g):
    """Finite inputs at FP32's limit (+3e38 then -3e38) make the digits
    model's sums inf - inf: NaN outputs.  A JSON answer is then a 500 that
    says so (it used to be a 200 with -nan in the body, which is not JSON);
    binary and msgpack answers carry the raw FP32 values with a 200."""
    huge = [3.0e38] * 32 + [-3.0e38] * 32
    body = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64],
                                   "data": huge}]}).encode()
    for st, h, raw in post_both(g, body):
        doc = strict_json(raw.decode("utf-8"))
        assert st == 500, (st, raw[:300])
        assert doc["error"] == ("model digits produced NaN at outputs[0].data[0], which JSON "
                                "cannot carry (binary_data_output or msgpack can)"), doc
    # binary output: the raw values, NaN included
    bin_body = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64],
                                       "data": huge}],
                           "parameters": {"binary_data_output": True}}).encode()
    st, h, raw = gwlib.h1_request(g.port, "POST", INFER, bin_body, [gwlib.JSON_CT])
    assert st == 200, raw[:300]
    hl = int(h["inference-header-content-length"])
    strict_json(raw[:hl].decode("utf-8"))
    assert np.isnan(np.frombuffer(raw[hl:], dtype="<f4")).all()
    # msgpack answers carry the output as bytes: 200
    mp_body = msgpack.packb({"inputs": [{"name": "input", "datatype": "FP32",
                                         "shape": [1, 64], "data": struct.pack("<64f", *huge)}]})
    st, h, raw = gwlib.h1_request(g.port, "POST", INFER, mp_body,
                                  [("content-type", "application/msgpack"),
                                   ("accept", "application/msgpack")])
    assert st == 200, raw[:300]
    assert h["content-type"] == "application/msgpack"
    out = msgpack.unpackb(raw)["outputs"][0]["data"]
    assert np.isnan(np.frombuffer(out, dtype="<f4")).all()
    attacklib.assert_alive(g)


def test_decoy_data_list_is_not_inferred(g, model):
    """inputs[0] spells its key "d\\u0061ta" (an empty list, for jansson
    the key "data"); a full list sits at x.data.  It used to be inferred on
    (200); the input is the empty list: 400."""
    decoy = ",".join(repr(v) for v in ROW)
    for tail in ("\"x\":{\"data\":[" + decoy + "]}",
                 "\"outputs\":[{\"name\":\"probabilities\",\"parameters\":{\"data\":["
                 + decoy + "]}}]"):
        body = ("{\"inputs\":[{" + INP + ",\"d\\u0061ta\":[]}]," + tail + "}").encode()
        for st, h, raw in post_both(g, body):
            gwlib.check_error_response(tail[:12], st, h, raw, 400,
                                       ["inputs[0].data: expected 64 values for shape [1, 64], got 0"])
    # the escaped spelling with real values is those values, not the decoy's
    zeros = ",".join("0" for _ in ROW)
    body = ("{\"inputs\":[{" + INP + ",\"d\\u0061ta\":[" + decoy + "]}],"
            "\"x\":{\"data\":[" + zeros + "]}}").encode()
    for st, h, raw in post_both(g, body):
        assert st == 200, raw[:300]
        gwlib.check_infer_response(raw, model, np.asarray(ROW).reshape(1, 64))
    attacklib.assert_alive(g)


def test_huge_timeout_saturates(g, model):
    """parameters.timeout = 2^63-1 (JSON) or 2^64-1 (msgpack) µs wrapped
    into a deadline in the past: 429 "objective of 18446744073709550 us".
    It saturates (31 years): the request is served."""
    body = json.dumps({"parameters": {"timeout": 2**63 - 1},
                       "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64],
                                   "data": ROW}]}).encode()
    for st, h, raw in post_both(g, body):
        assert st == 200, (st, raw[:300])
        gwlib.check_infer_response(raw, model, np.asarray(ROW).reshape(1, 64))
    mp_body = msgpack.packb({"parameters": {"timeout": 2**64 - 1},
                             "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64],
                                         "data": struct.pack("<64f", *ROW)}]})
    for st, h, raw in post_both(g, mp_body, [("content-type", "application/msgpack")]):
        assert st == 200, (st, raw[:300])
        gwlib.check_infer_response(raw, model, np.asarray(ROW).reshape(1, 64))
    # 2^63 does not fit jansson's integer: a 400 naming the field's problem
    too_big = body.replace(str(2**63 - 1).encode(), str(2**63).encode())
    st, h, raw = gwlib.h1_request(g.port, "POST", INFER, too_big, [gwlib.JSON_CT])
    assert st == 400 and "malformed JSON" in strict_json(raw)["error"], raw
    attacklib.assert_alive(g)


def test_error_messages_are_json_whatever_the_bytes(g):
    """Client bytes echoed in messages (a model name in the path, an id,
    an input name) are escaped: control characters and bytes that are not
    UTF-8 still give a body that is valid JSON in UTF-8."""
    for path in (b"/v2/models/a\"b\\c/infer", b"/v2/models/a\x01\x7fb/infer",
                 b"/v2/models/a\xff\xfeb/infer", b"/v2/models/\xc3/infer"):
        with attacklib.raw_conn(g.port) as s:
            s.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                      b"Connection: close\r\n\r\n{}")
            resp, _ = attacklib.read_until_eof(s, timeout=10)
        head, _, body = resp.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 4"), (path, head)
        strict_json(body.decode("utf-8"))     # strict UTF-8, strict JSON
    # msgpack ids and names are arbitrary bytes too
    for name in (b"in\xffput", b"in\"put\x01"):
        mark = "Z" * len(name)        # same length: the str header stays right
        body = msgpack.packb({"inputs": [{"name": mark, "datatype": "FP32",
                                          "shape": [1, 64], "data": ROW}]})
        body = body.replace(mark.encode(), name)
        st, h, raw = gwlib.h1_request(g.port, "POST", INFER, body,
                                      [("content-type", "application/msgpack")])
        assert st == 400, raw
        doc = strict_json(raw.decode("utf-8"))
        assert doc["error"].startswith("inputs[0].name: model digits has no input"), doc
    attacklib.assert_alive(g)


# The float32 row of test_number_spellings (exact in float32, so every
# spelling below names the same value).
ROW32 = [float(x) for x in np.float32(np.linspace(0.0, 16.0, 64) + 1 / 3)]


def spell(v, how):
    """v (a float32 value) written the ways clients write numbers."""
    return {"repr": repr(v), "g9": "%.9g" % v, "pad": "%.20f" % v,
            "exp": "%.8e" % v, "int": "%d" % v if v == int(v) else repr(v)}[how]


def test_number_spellings_read_alike(g, model):
    """The data list's number readers (a word at a time for the short
    shapes, byte-wise, jansson's) give the same float whatever the
    spelling: 17-digit doubles, %.9g, 20 fraction digits, exponents; and
    the answers are byte-identical.  The last values sit at the body's end
    (the word readers stop 9 bytes short of it)."""
    answers = {}
    for how in ("repr", "g9", "pad", "exp", "int"):
        body = json_data([spell(v, how) for v in ROW32])
        for st, h, raw in post_both(g, body):
            assert st == 200, (how, raw[:300])
            gwlib.check_infer_response(raw, model, np.asarray(ROW32).reshape(1, 64))
            answers.setdefault(json.loads(raw)["outputs"][0]["data"].__repr__(), []).append(how)
    assert len(answers) == 1, answers
    # short integers and "d.d"/"dd.d" with every digit: the masked shapes
    ints = [float(i % 17) for i in range(64)]
    for fmt in ("%d", "%.1f", "%.2f", "%.0f.0"):
        vals = [fmt % v for v in ints]
        for st, h, raw in post_both(g, json_data(vals)):
            assert st == 200, (fmt, raw[:300])
            gwlib.check_infer_response(raw, model, np.asarray(ints).reshape(1, 64))
    attacklib.assert_alive(g)


@pytest.mark.parametrize("token", ["1.2.3", "12.", ".5", "01.5", "1.5e", "1/5", "1:5",
                                    "-.5", "--1", "1.5.", "0x10", "1_0", "12.3a", "1,,2",
                                    "9" * 400, "1." + "0" * 400 + "x"])
def test_malformed_numbers_are_400(g, token):
    """Tokens shaped to trip the word readers (a point, a digit, a byte next
    to '0'..'9' in ASCII, cut exponents, 400 digits): 400 with a JSON error,
    at every place in the list (the masked 8-byte loads see the token at
    every offset and near the body's end), and the gateway survives."""
    for i in (0, 3, 62, 63):
        vals = ["%.1f" % v for v in ROW]
        vals[i] = token
        for st, h, raw in post_both(g, json_data(vals)):
            assert st == 400, (token, i, st, raw[:300])
            err = strict_json(raw)["error"]
            assert "malformed JSON" in err or "inputs[0].data" in err, (token, i, err)
    attacklib.assert_alive(g)


def test_body_cut_anywhere_in_the_numbers_is_400(g):
    """A body cut short inside its last numbers (content-length honest):
    400, never a read past what came.  Short numbers, and 17-digit doubles
    as Python clients print float32 data (the long-fraction reader loads a
    second word of digits when eight bytes remain)."""
    for vals in (["%.1f" % v for v in ROW], [repr(v) for v in ROW32]):
        body = json_data(vals)
        for cut in range(len(body) - 60, len(body)):
            st, h, raw = gwlib.h1_request(g.port, "POST", INFER, body[:cut], [gwlib.JSON_CT])
            assert st == 400, (cut, st, raw[:200])
            strict_json(raw)
    attacklib.assert_alive(g)
