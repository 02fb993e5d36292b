"""HTTP details Triton's clients and common tools rely on (issue 10, items 4
and 7): compressed request bodies and responses, HTTP/1.0 keep-alive,
Upgrade: h2c, and msgpack error bodies.

Compressed requests are built the way tritonclient.http does with
request_compression_algorithm="gzip"/"deflate": the whole body (JSON header
plus binary tensors) goes through gzip.compress / zlib.compress, the
Content-Encoding header names the algorithm, and
Inference-Header-Content-Length keeps the UNcompressed JSON length.  With
response_compression_algorithm it sends Accept-Encoding: gzip / deflate and
decompresses by the answer's Content-Encoding (gzip.decompress /
zlib.decompress), then splits the body by Inference-Header-Content-Length,
which refers to the decompressed body.  Every value is checked against the
numpy reference model.
"""
import base64
import gzip
import json
import shutil
import socket
import subprocess
import zlib

import h2.config
import h2.connection
import h2.events
import msgpack
import numpy as np
import pytest

import gwlib
from conftest import MAIN_MAX_BODY
from gwlib import INFER, JSON_CT, H1Conn, H2Client, curl, infer_body

IHCL = "inference-header-content-length"
MSGPACK = "application/msgpack"


@pytest.fixture(scope="module")
def rows(heldout):
    return heldout[0][:24].astype("<f4")


def triton_body(x, binary_output=True):
    """(body, json_size): tritonclient.http's binary request for FP32 rows x."""
    x = np.ascontiguousarray(np.asarray(x, dtype="<f4").reshape(-1, 64))
    req = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                       "parameters": {"binary_data_size": x.nbytes}}],
           "outputs": [{"name": "probabilities",
                        "parameters": {"binary_data": binary_output}}]}
    header = json.dumps(req, separators=(",", ":")).encode()
    return header + x.tobytes(), len(header)


def compress(algo, body):
    return gzip.compress(body) if algo == "gzip" else zlib.compress(body)


def decompress(hdrs, body):
    """What tritonclient does with an answer: by its Content-Encoding."""
    enc = hdrs.get("content-encoding")
    if enc == "gzip":
        return gzip.decompress(body)
    if enc == "deflate":
        return zlib.decompress(body)
    assert enc is None, hdrs
    return body


def binary_values(hdrs, body, n):
    """FP32 [n, 10] from a binary-extension answer (already decompressed)."""
    hl = int(hdrs[IHCL])
    doc = json.loads(body[:hl])
    gwlib.check_infer_doc(doc, n)
    assert doc["outputs"][0]["parameters"]["binary_data_size"] == n * 40, doc
    assert len(body) == hl + n * 40, (len(body), hl)
    return np.frombuffer(body[hl:], dtype="<f4").reshape(n, 10)


def h2_headers(r):
    return {k.lower(): v for k, v in r.headers.items()}


# ------------------------------------------------- compressed requests ----

@pytest.mark.parametrize("algo", ["gzip", "deflate"])
def test_triton_compressed_binary_request_h1(gw, model, rows, algo):
    """tritonclient's bytes: a compressed binary-tensor body whose
    Inference-Header-Content-Length is the uncompressed JSON length, on one
    keep-alive socket, answered with the reference values, twice."""
    body, hl = triton_body(rows)
    z = compress(algo, body)
    assert len(z) < len(body)
    with H1Conn(gw.port) as c:
        for _ in range(2):
            st, hd, rb = c.request("POST", INFER, z, [("Content-Encoding", algo), (IHCL, str(hl))])
            assert st == 200, rb[:300]
            vals = binary_values(hd, decompress(hd, rb), len(rows))
            np.testing.assert_allclose(vals, model.forward(rows), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("algo", ["gzip", "deflate"])
def test_compressed_json_request_h2(gw, model, rows, algo):
    with H2Client(gw.port) as c:
        r = c.post(INFER, compress(algo, infer_body(rows[:5], id="z2")),
                   [JSON_CT, ("content-encoding", algo)])
    assert r.status == 200, bytes(r.body)[:300]
    gwlib.check_infer_response(bytes(r.body), model, rows[:5], id="z2")


def test_other_spellings_of_codings(gw, model, rows):
    """x-gzip is gzip (RFC 9110 §8.4.1.3); identity changes nothing; raw
    deflate (no zlib header, as some clients send) is taken as deflate."""
    body = infer_body(rows[:2])
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw = raw.compress(body) + raw.flush()
    for enc, payload in (("x-gzip", gzip.compress(body)), ("identity", body),
                         ("Identity, GZIP", gzip.compress(body)), ("deflate", raw)):
        st, _, rb = gwlib.h1_request(gw.port, "POST", INFER, payload,
                                     [JSON_CT, ("Content-Encoding", enc)])
        assert st == 200, (enc, rb[:300])
        gwlib.check_infer_response(rb, model, rows[:2])


def test_inflated_size_is_capped_exactly(gw):
    """A body that inflates to exactly limits.max_body_bytes is served; one
    byte more is 413 naming the limit -- also when the wire body is tiny."""
    base = infer_body(np.zeros((1, 64)))
    for n, want in ((MAIN_MAX_BODY, 200), (MAIN_MAX_BODY + 1, 413)):
        plain = b" " * (n - len(base)) + base   # JSON allows leading blanks
        z = gzip.compress(plain)
        assert len(z) < 2048
        st, _, rb = gwlib.h1_request(gw.port, "POST", INFER, z, [("Content-Encoding", "gzip")])
        assert st == want, (n, rb[:300])
    assert json.loads(rb)["error"] == (
        f"request body exceeds limits.max_body_bytes ({MAIN_MAX_BODY}) once decompressed "
        "(Content-Encoding: gzip)")


def test_bomb_1000_to_1_is_413_on_both_protocols(gw, rows):
    """64 MiB of blanks in ~64 KiB of gzip: 413, the connection keeps
    serving (its body was read), and the binary extension's header length
    does not get around the cap."""
    bomb = gzip.compress(b" " * (64 << 20), 9)
    assert len(bomb) * 900 < 64 << 20 and len(bomb) < MAIN_MAX_BODY
    before = gwlib.settled_metrics(gw.metrics_port, "http/1.1", via="h2")
    with H1Conn(gw.port) as c:
        for hdrs in ([("Content-Encoding", "gzip")],
                     [("Content-Encoding", "gzip"), (IHCL, "10")]):
            st, hd, rb = c.request("POST", INFER, bomb, hdrs)
            gwlib.check_error_response("bomb", st, hd, rb, 413,
                                       ["limits.max_body_bytes (65536) once decompressed"])
            assert hd.get("connection") != "close", hd
        st, _, rb = c.request("POST", INFER, infer_body(rows[:1]), [JSON_CT])
        assert st == 200, rb[:200]
    gwlib.assert_codes_moved(gw.metrics_port, before, "http/1.1", {"413": 2, "200": 1}, "h2",
                             others=False)
    with H2Client(gw.port) as c:
        r = c.post(INFER, bomb, [("content-encoding", "gzip")])
        assert r.status == 413, bytes(r.body)
        assert "once decompressed" in json.loads(bytes(r.body))["error"]


@pytest.mark.parametrize("enc,msg", [
    ("br", 'Content-Encoding: "br" is not supported (gzip, deflate or identity)'),
    ("gzip, zstd", 'Content-Encoding: "zstd" is not supported'),
    ("compress", 'Content-Encoding: "compress" is not supported'),
    ("gzip, gzip", 'Content-Encoding: one coding at most is supported (gzip or deflate), '
                   'got "gzip, gzip"'),
    ("deflate, gzip", "one coding at most is supported"),
])
def test_unsupported_codings_are_415(gw, rows, enc, msg):
    body = gzip.compress(infer_body(rows[:1]))
    for via in ("h1", "h2"):
        if via == "h1":
            st, hd, rb = gwlib.h1_request(gw.port, "POST", INFER, body,
                                          [("Content-Encoding", enc)])
        else:
            with H2Client(gw.port) as c:
                r = c.post(INFER, body, [("content-encoding", enc)])
            st, hd, rb = r.status, r.headers, bytes(r.body)
        gwlib.check_error_response((enc, via), st, hd, rb, 415, [msg])


def test_two_content_encoding_fields_are_415(gw, rows):
    body = gzip.compress(gzip.compress(infer_body(rows[:1])))
    st, hd, rb = gwlib.h1_request(gw.port, "POST", INFER, body,
                                  [("Content-Encoding", "gzip"), ("Content-Encoding", "gzip")])
    gwlib.check_error_response("2 fields", st, hd, rb, 415, ["one coding at most"])


def test_corrupt_bodies_are_400(gw, rows):
    good = gzip.compress(infer_body(rows[:1]))
    crc = bytearray(good)
    crc[-8] ^= 0xFF
    cases = [
        ("gzip", good[:-5], "Content-Encoding: gzip: the body does not decompress (truncated)"),
        ("gzip", bytes(crc), "(incorrect data check)"),
        ("gzip", good + b"junk", "(data after the end of the stream)"),
        ("gzip", infer_body(rows[:1]), "Content-Encoding: gzip: the body does not decompress"),
        ("deflate", b"\x78\x9c" + b"\xff" * 40, "Content-Encoding: deflate: the body does not "
                                                 "decompress"),
    ]
    with H1Conn(gw.port) as c:
        for enc, body, msg in cases:
            st, hd, rb = c.request("POST", INFER, body, [("Content-Encoding", enc)])
            gwlib.check_error_response(msg, st, hd, rb, 400, [msg])


# ------------------------------------------------- compressed answers ----

@pytest.mark.parametrize("algo", ["gzip", "deflate"])
def test_triton_compressed_binary_answer(gw, model, rows, algo):
    """response_compression_algorithm: the binary answer comes compressed,
    Inference-Header-Content-Length still refers to the uncompressed body
    (as Triton's does), Content-Length to the bytes sent.  Repeated rows
    give repeated output bytes, so the answer does shrink."""
    rows = np.repeat(rows[:4], 8, axis=0)
    body, hl = triton_body(rows)
    with H1Conn(gw.port) as c:
        c.send(H1Conn.build("POST", INFER, body, [(IHCL, str(hl)), ("Accept-Encoding", algo)],
                            gw.port))
        st, hd, rb = c.read_response()
    assert st == 200, rb[:300]
    assert hd["content-encoding"] == algo and hd["vary"] == "Accept-Encoding", hd
    assert int(hd["content-length"]) == len(rb)
    plain = decompress(hd, rb)
    assert len(plain) > len(rb)
    vals = binary_values(hd, plain, len(rows))
    np.testing.assert_allclose(vals, model.forward(rows), rtol=1e-5, atol=1e-6)


def test_gzip_json_answer_both_protocols(gw, model, rows):
    with H2Client(gw.port) as c:
        r = c.post(INFER, infer_body(rows, id="gz"), [JSON_CT, ("accept-encoding", "gzip")])
    assert r.status == 200
    assert r.headers["content-encoding"] == "gzip" and r.headers["vary"] == "Accept-Encoding"
    assert int(r.headers["content-length"]) == len(r.body)
    gwlib.check_infer_response(gzip.decompress(bytes(r.body)), model, rows, id="gz")
    # curl --compressed: Accept-Encoding: deflate, gzip, br, zstd; decoded by curl
    code, ver, out, err = curl("--compressed", "-H", "Content-Type: application/json",
                               "--data-binary", infer_body(rows[:3], id="cc").decode(),
                               gw.base + INFER)
    assert code == 200, (out, err)
    gwlib.check_infer_response(out, model, rows[:3], id="cc")


@pytest.mark.parametrize("accept,enc", [
    ("gzip;q=0", None), ("gzip;q=0, deflate", "deflate"), ("deflate;q=0.5, gzip;q=0.9", "gzip"),
    ("br", None), ("*", "gzip"), ("identity", None), (None, None),
])
def test_accept_encoding_q_values(gw, model, rows, accept, enc):
    hdrs = [JSON_CT] + ([("Accept-Encoding", accept)] if accept else [])
    st, hd, rb = gwlib.h1_request(gw.port, "POST", INFER, infer_body(rows), hdrs)
    assert st == 200
    assert hd.get("content-encoding") == enc, hd
    assert hd["vary"] == "Accept-Encoding", hd   # the answer depends on it either way
    gwlib.check_infer_response(decompress(hd, rb), model, rows)


def test_small_answers_are_not_compressed(gw):
    st, hd, rb = gwlib.h1_request(gw.port, "GET", "/v2/health/live",
                                  headers=[("Accept-Encoding", "gzip")])
    assert (st, json.loads(rb)) == (200, {"live": True})
    assert "content-encoding" not in hd and "vary" not in hd, hd


def test_head_matches_get_when_compressed(gw, rows):
    """HEAD gets GET's headers (compressed Content-Length included), no body."""
    with H1Conn(gw.port) as c:
        st, get_h, get_b = c.request("GET", "/v2/models/digits",
                                      headers=[("Accept-Encoding", "gzip")])
        c.send(H1Conn.build("HEAD", "/v2/models/digits", None,
                            [("Accept-Encoding", "gzip")], gw.port))
        st2, head_h, _ = c.read_response(head=True)
    assert st == st2 == 200
    if int(get_h["content-length"]) >= 1024 or "content-encoding" in get_h:
        assert head_h.get("content-encoding") == get_h.get("content-encoding")
    assert head_h["content-length"] == get_h["content-length"]
    assert c.buf == b""


def test_metrics_scrape_with_gzip(gw):
    """Prometheus scrapes with Accept-Encoding: gzip; /metrics is big."""
    st, hd, rb = gwlib.h1_request(gw.metrics_port, "GET", "/metrics",
                                  headers=[("Accept-Encoding", "gzip")])
    assert st == 200 and hd["content-encoding"] == "gzip", hd
    assert "infergw_http_responses_total" in gzip.decompress(rb).decode()


# ----------------------------------------------- HTTP/1.0 keep-alive ----

def test_http10_keep_alive_two_requests_one_socket(gw, model, rows):
    with H1Conn(gw.port) as c:
        for i in range(2):
            c.send(H1Conn.build("POST", INFER, infer_body(rows[i:i + 1], id=f"k{i}"),
                                [JSON_CT, ("Connection", "keep-alive")], gw.port,
                                version="HTTP/1.0"))
            st, hd, rb = c.read_response()
            assert st == 200, rb
            assert hd.get("connection") == "keep-alive", hd
            gwlib.check_infer_response(rb, model, rows[i:i + 1], id=f"k{i}")
        assert not c.at_eof(timeout=0.5), "closed a keep-alive HTTP/1.0 connection"
        # a third without keep-alive: answered with Connection: close, then closed
        c.send(H1Conn.build("GET", "/v2/health/live", None, [], gw.port, version="HTTP/1.0"))
        st, hd, rb = c.read_response()
        assert st == 200 and hd.get("connection") == "close", hd
        assert c.at_eof(timeout=5)


@pytest.mark.skipif(not shutil.which("ab"), reason="ab (apache2-utils) not installed")
def test_ab_keep_alive(gw, tmp_path, rows):
    """ab -k speaks HTTP/1.0 with Connection: Keep-Alive and waits for the
    answer to say keep-alive; it used to hang.  200 inferences, 4 at a time.
    -l: the answers' lengths may differ - a request batched with others runs
    at another bucket, whose kernel may sum in another order (seen on an
    AVX2 EPYC: oneDNN's M=1 path), and %.9g of a float differing in its
    last bit can be a byte longer or shorter; the values are checked
    elsewhere."""
    body = tmp_path / "body.json"
    body.write_bytes(infer_body(rows[:1]))
    out = subprocess.run(["ab", "-k", "-l", "-n", "200", "-c", "4", "-s", "10", "-p", str(body),
                          "-T", "application/json", f"http://127.0.0.1:{gw.port}{INFER}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "Complete requests:      200" in text, text
    assert "Failed requests:        0" in text, text
    assert "Keep-Alive requests:    200" in text, text
    assert "Non-2xx" not in text, text


# ------------------------------------------------------ Upgrade: h2c ----

def upgrade_request(port, method, path, body=None, headers=(), settings=None):
    """(socket, h2 client connection, bytes after the 101 head, 101 head):
    an HTTP/1.1 request with Upgrade: h2c and python-h2's HTTP2-Settings.
    python-h2 queues its preface and SETTINGS at initiate_upgrade_connection;
    h2_collect sends them, after the 101, as RFC 7540 §3.5 says."""
    h2c = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    hs = h2c.initiate_upgrade_connection()
    hs = settings if settings is not None else hs.decode()
    sock = socket.create_connection((gwlib.HOST, port), timeout=10)
    sock.sendall(H1Conn.build(method, path, body,
                              [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                               ("HTTP2-Settings", hs), *headers], port))
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, f"closed before an answer: {buf!r}"
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 100 "):   # 100 Continue comes first
            return sock, h2c, buf, head.decode("latin-1")


def h2_collect(sock, h2c, rest, sids, timeout=10.0):
    """Feed rest then socket data to h2c until every stream in sids ended:
    {sid: (status, headers, body)}, and the events seen."""
    out = {s: [None, {}, b""] for s in sids}
    events = []
    sock.settimeout(timeout)
    data = rest
    while True:
        for ev in h2c.receive_data(data) if data else []:
            events.append(ev)
            sid = getattr(ev, "stream_id", None)
            if isinstance(ev, h2.events.ResponseReceived):
                hd = dict(ev.headers)
                out[sid][0] = int(hd.pop(":status"))
                out[sid][1] = hd
            elif isinstance(ev, h2.events.DataReceived):
                out[sid][2] += ev.data
                h2c.acknowledge_received_data(ev.flow_controlled_length, sid)
        sock.sendall(h2c.data_to_send())
        if all(any(isinstance(e, h2.events.StreamEnded) and e.stream_id == s for e in events)
               for s in sids):
            return {s: tuple(v) for s, v in out.items()}, events
        data = sock.recv(65536)
        assert data, f"connection closed; events {events}"


def test_upgrade_raw_socket_infer(gw, model, rows):
    """POST with a body and Upgrade: h2c: 101 with exactly Connection:
    Upgrade and Upgrade: h2c, then the server's SETTINGS and the answer on
    stream 1; the connection is HTTP/2 for the next request (stream 3)."""
    sock, h2c, rest, head = upgrade_request(gw.port, "POST", INFER,
                                            infer_body(rows[:4], id="up"), [JSON_CT])
    with sock:
        assert head.split("\r\n") == ["HTTP/1.1 101 Switching Protocols", "Connection: Upgrade",
                                      "Upgrade: h2c"], head
        got, events = h2_collect(sock, h2c, rest, [1])
        assert isinstance(events[0], h2.events.RemoteSettingsChanged), events[:3]
        st, hd, body = got[1]
        assert st == 200 and hd["content-type"] == "application/json", hd
        gwlib.check_infer_response(body, model, rows[:4], id="up")
        # stream 3 on the upgraded connection
        h2c.send_headers(3, [(":method", "POST"), (":scheme", "http"), (":path", INFER),
                             (":authority", "127.0.0.1"), ("content-type", "application/json")])
        h2c.send_data(3, infer_body(rows[4:6], id="s3"), end_stream=True)
        sock.sendall(h2c.data_to_send())
        got, _ = h2_collect(sock, h2c, b"", [3])
        assert got[3][0] == 200
        gwlib.check_infer_response(got[3][2], model, rows[4:6], id="s3")


def test_upgrade_get_and_expect_100(gw, model, rows):
    sock, h2c, rest, head = upgrade_request(gw.port, "GET", "/v2/health/live")
    with sock:
        assert head.startswith("HTTP/1.1 101 "), head
        got, _ = h2_collect(sock, h2c, rest, [1])
        assert got[1][0] == 200 and json.loads(got[1][2]) == {"live": True}
    # Expect: 100-continue, then the 101 once the body is in
    sock, h2c, rest, head = upgrade_request(gw.port, "POST", INFER, infer_body(rows[:1]),
                                            [JSON_CT, ("Expect", "100-continue")])
    with sock:
        assert head.startswith("HTTP/1.1 101 "), head
        got, _ = h2_collect(sock, h2c, rest, [1])
        gwlib.check_infer_response(got[1][2], model, rows[:1])


def test_upgrade_answers_errors_on_stream_1(gw):
    sock, h2c, rest, head = upgrade_request(gw.port, "GET", "/v2/models/nope",
                                            headers=[("Accept", MSGPACK)])
    with sock:
        assert head.startswith("HTTP/1.1 101 "), head
        got, _ = h2_collect(sock, h2c, rest, [1])
        st, hd, body = got[1]
        assert st == 404 and hd["content-type"] == MSGPACK, hd
        assert msgpack.unpackb(body) == {"error": 'unknown model "nope"'}


def test_upgrade_settings_with_padding_and_values_apply(gw, model):
    """The client's HTTP2-Settings count: a tiny INITIAL_WINDOW_SIZE (100) makes the server send the metadata
    answer (answered at once, before the client's own SETTINGS can arrive)
    as a first DATA frame of exactly 100 bytes."""
    payload = bytes.fromhex("0004" "00000064")   # SETTINGS_INITIAL_WINDOW_SIZE = 100
    hs = base64.urlsafe_b64encode(payload).decode()
    sock, h2c, rest, head = upgrade_request(gw.port, "GET", "/v2/models/digits", settings=hs)
    with sock:
        assert head.startswith("HTTP/1.1 101 "), head
        got, events = h2_collect(sock, h2c, rest, [1])
        sizes = [len(e.data) for e in events if isinstance(e, h2.events.DataReceived)]
        assert sizes[0] == 100 and sum(sizes) == len(got[1][2]) > 100, sizes
        assert got[1][0] == 200
        assert json.loads(got[1][2])["name"] == "digits"


@pytest.mark.parametrize("hs,why", [
    ("AAMAAABk!AQAAP__", "not base64url"),
    ("AAMAAABkAA", "7 bytes: not 6-byte entries"),
    ("AAIAAAAC", "ENABLE_PUSH = 2"),
    ("AAUAAAAA", "MAX_FRAME_SIZE = 0"),
    (base64.urlsafe_b64encode(b"\x00\x03\x00\x00\x00\x01" * 40).decode().rstrip("="),
     "40 settings"),
])
def test_upgrade_bad_settings_served_as_http1(gw, model, rows, hs, why):
    """A malformed HTTP2-Settings: no upgrade (RFC 7540 §3.2 lets a server
    ignore it); the request is answered over HTTP/1.1 and the connection
    stays HTTP/1.1."""
    sock, h2c, rest, head = upgrade_request(gw.port, "POST", INFER, infer_body(rows[:1]),
                                            [JSON_CT], settings=hs)
    with sock:
        c = H1Conn.__new__(H1Conn)
        c.sock, c.port = sock, gw.port
        c.buf = head.encode("latin-1") + b"\r\n\r\n" + rest
        st, hd, body = c.read_response()
        assert st == 200, (why, head)
        gwlib.check_infer_response(body, model, rows[:1])
        st, _, body = c.request("GET", "/v2/health/live")
        assert (st, json.loads(body)) == (200, {"live": True}), why


@pytest.mark.parametrize("hdrs,why", [
    ([("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABk")], "Upgrade not a connection option"),
    ([("Connection", "Upgrade"), ("Upgrade", "h2c")], "no HTTP2-Settings"),
    ([("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
      ("HTTP2-Settings", "AAMAAABk"), ("HTTP2-Settings", "AAMAAABk")], "two HTTP2-Settings"),
    ([("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "websocket"),
      ("HTTP2-Settings", "AAMAAABk")], "not h2c"),
])
def test_upgrade_not_asked_properly_stays_http1(gw, hdrs, why):
    with H1Conn(gw.port) as c:
        st, hd, body = c.request("GET", "/v2/health/live", None, hdrs)
        assert (st, json.loads(body)) == (200, {"live": True}), why
        st, _, _ = c.request("GET", "/v2/health/live")
        assert st == 200, why


def test_upgrade_http10_is_ignored(gw):
    with H1Conn(gw.port) as c:
        c.send(H1Conn.build("GET", "/v2/health/live", None,
                            [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                             ("HTTP2-Settings", "AAMAAABk")], gw.port, version="HTTP/1.0"))
        st, hd, body = c.read_response()
        assert (st, json.loads(body)) == (200, {"live": True})


def test_upgrade_with_body_over_limit_is_413_over_http1(gw):
    big = b"x" * (MAIN_MAX_BODY + 1)
    with socket.create_connection((gwlib.HOST, gw.port), timeout=10) as s:
        s.sendall(H1Conn.build("POST", INFER, big,
                               [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                                ("HTTP2-Settings", "AAMAAABk")], gw.port))
        c = H1Conn.__new__(H1Conn)
        c.sock, c.port, c.buf = s, gw.port, b""
        st, hd, body = c.read_response()
    gwlib.check_error_response("413", st, hd, body, 413, ["limits.max_body_bytes"])


def test_no_upgrade_over_tls(tmp_path, rows, model):
    """Over TLS, ALPN decides the protocol: Upgrade: h2c on an http/1.1
    TLS connection is served as HTTP/1.1, and the connection stays so."""
    import tlslib
    from conftest import Gateway

    class TlsGateway(tlslib.TlsReady, Gateway):
        pass

    pki = tlslib.make_pki(tmp_path / "pki")
    tlslib.install(pki, tmp_path)
    g = TlsGateway(tmp_path, "tlsup", listen_extra=tlslib.tls_listen())
    g.pki = pki
    g.start()
    try:
        with H1Conn(g.port, ssl_context=tlslib.client_context(pki, alpn=("http/1.1",))) as c:
            st, hd, body = c.request("POST", INFER, infer_body(rows[:2]),
                                     [JSON_CT, ("Connection", "Upgrade, HTTP2-Settings"),
                                      ("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABk")])
            assert st == 200, body[:200]
            gwlib.check_infer_response(body, model, rows[:2])
            st, _, body = c.request("GET", "/v2/health/live")
            assert (st, json.loads(body)) == (200, {"live": True})
    finally:
        g.kill()


def test_nghttp_upgrade(gw, model, rows, tmp_path):
    """nghttp -u: a GET upgrades directly; with -d it upgrades with OPTIONS *
    first and POSTs on a later stream."""
    out = subprocess.run(["nghttp", "-u", "-v", f"http://127.0.0.1:{gw.port}/v2/health/live"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "HTTP Upgrade success" in out.stdout, out.stdout
    assert '{"live":true}' in out.stdout
    body = tmp_path / "b.json"
    body.write_bytes(infer_body(rows[:6], id="ng"))
    out = subprocess.run(["nghttp", "-u", "-d", str(body), "-H", "content-type: application/json",
                          f"http://127.0.0.1:{gw.port}{INFER}"],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    gwlib.check_infer_response(out.stdout, model, rows[:6], id="ng")


def test_curl_http2_upgrade(gw, model, rows):
    code, ver, body, err = curl("--http2", "-H", "Content-Type: application/json",
                                "--data-binary", infer_body(rows[:2], id="cu").decode(),
                                gw.base + INFER)
    assert (code, ver) == (200, "2"), (body, err)
    gwlib.check_infer_response(body, model, rows[:2], id="cu")
    code, ver, body, err = curl("--http2", "-I", gw.base + "/v2/models/digits")
    assert (code, ver) == (200, "2"), (body, err)
    assert b"content-length" in body.lower() and b"{" not in body   # HEAD: no body


def test_upgraded_requests_are_counted_as_h2(gw):
    before = gwlib.settled_metrics(gw.metrics_port, "h2", via="h1")
    code, ver, _, _ = curl("--http2", gw.base + "/v2/health/live")
    assert (code, ver) == (200, "2")
    gwlib.assert_codes_moved(gw.metrics_port, before, "h2", {"200": 1}, "h1")


# ------------------------------------------------------ msgpack errors ----

def mp_error(st, hd, body, status, sub):
    assert st == status, (st, body[:200])
    assert hd["content-type"] == MSGPACK, hd
    doc = msgpack.unpackb(bytes(body), raw=False)
    assert set(doc) == {"error"} and sub in doc["error"], doc


def test_errors_are_msgpack_when_asked(gw):
    acc = ("Accept", MSGPACK)
    cases = [
        ("GET", "/v2/models/nope", None, [acc], 404, 'unknown model "nope"'),
        ("POST", INFER, b"\xc1", [acc, ("Content-Type", MSGPACK)], 400, "malformed msgpack"),
        ("POST", INFER, b"{", [acc, JSON_CT], 400, "malformed JSON"),
        ("PUT", INFER, b"", [acc], 405, "method PUT not allowed"),
        ("POST", INFER, b"x", [acc, ("Content-Encoding", "br")], 415, '"br" is not supported'),
        ("POST", INFER, gzip.compress(b" " * 200000), [acc, ("Content-Encoding", "gzip")], 413,
         "once decompressed"),
        ("POST", INFER, b"x" * (MAIN_MAX_BODY + 1), [("Accept", "application/x-msgpack")], 413,
         "limits.max_body_bytes"),
    ]
    for m, p, b, h, st, sub in cases:
        with H1Conn(gw.port) as c:
            mp_error(*c.request(m, p, b, h), st, sub)
        with H2Client(gw.port) as c:
            r = c.wait([c.request(m, p, b, [(k.lower(), v) for k, v in h])])[0]
            mp_error(r.status, r.headers, r.body, st, sub)
    # without Accept: JSON, as before
    st, hd, body = gwlib.h1_request(gw.port, "GET", "/v2/models/nope")
    gwlib.check_error_response("json", st, hd, body, 404, ['unknown model "nope"'])
