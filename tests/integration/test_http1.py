"""HTTP/1.1 specifics: curl, Expect: 100-continue, h2c prior knowledge and
Upgrade with curl, pipelining, Connection: close, HTTP/1.0, chunked bodies."""
import json

import pytest

from conftest import MAIN_MAX_BODY
from gwlib import INFER, H1Conn, assert_error, check_infer_response, curl, infer_body


def _send_expect_100(c, port, length):
    """Send the head of a JSON POST of length bytes with Expect: 100-continue
    on c; return the first answer (a 1xx included)."""
    c.send(H1Conn.build("POST", INFER, None,
                        [("Content-Type", "application/json"),
                         ("Content-Length", str(length)),
                         ("Expect", "100-continue")], port))
    return c.read_response(interim=True)


@pytest.fixture(scope="module")
def rows(heldout):
    return heldout[0][20:27]


def test_curl_post_http1(gw, model, rows, tmp_path):
    f = tmp_path / "req.json"
    f.write_bytes(infer_body(rows[:1], id="curl"))
    code, ver, body, err = curl("--http1.1", "-X", "POST", "-H", "content-type: application/json",
                                "--data-binary", f"@{f}", gw.base + INFER)
    assert (code, ver) == (200, "1.1"), (body, err)
    check_infer_response(body, model, rows[:1], id="curl")


def test_curl_expect_100_continue(gw, model, rows, tmp_path):
    """curl with Expect: 100-continue (curl adds it by itself only for large
    bodies, so ask for it): the gateway must answer 100, not leave curl
    waiting for --expect100-timeout."""
    f = tmp_path / "big.json"
    f.write_bytes(infer_body(rows, id="big", nested=True))
    assert f.stat().st_size > 1024
    code, ver, body, err = curl("--http1.1", "-v", "--expect100-timeout", "30", "-X", "POST",
                                "-H", "content-type: application/json",
                                "-H", "Expect: 100-continue",
                                "--data-binary", f"@{f}", gw.base + INFER)
    assert (code, ver) == (200, "1.1"), (body, err)
    assert "Expect: 100-continue" in err, err  # curl really asked
    assert "HTTP/1.1 100" in err, "the gateway never sent 100 Continue:\n" + err
    check_infer_response(body, model, rows, id="big")


def test_raw_expect_100_continue(gw, model, rows):
    body = infer_body(rows, id="raw100")
    with H1Conn(gw.port, timeout=10) as c:
        st, _, _ = _send_expect_100(c, gw.port, len(body))
        assert st == 100, st
        c.send(body)
        st, hd, rbody = c.read_response()
        assert st == 200, rbody
        check_infer_response(rbody, model, rows, id="raw100")
        # the connection is still good for the next request
        st, _, rbody = c.request("GET", "/v2/health/live")
        assert (st, json.loads(rbody)) == (200, {"live": True})


def test_expect_100_continue_refused_when_too_large(gw):
    """A body over the limit is refused with 413 instead of 100 Continue."""
    with H1Conn(gw.port, timeout=10) as c:
        st, _, body = _send_expect_100(c, gw.port, MAIN_MAX_BODY + 1)
        assert_error(st, body, 413, "max_body_bytes")


def test_curl_http2_prior_knowledge(gw, model, rows, tmp_path):
    f = tmp_path / "req.json"
    f.write_bytes(infer_body(rows, id="pk"))
    code, ver, body, err = curl("--http2-prior-knowledge", "-X", "POST",
                                "-H", "content-type: application/json",
                                "--data-binary", f"@{f}", gw.base + INFER)
    assert (code, ver) == (200, "2"), (body, err)
    check_infer_response(body, model, rows, id="pk")
    code, ver, body, err = curl("--http2-prior-knowledge", gw.base + "/v2/health/ready")
    assert (code, ver, json.loads(body)) == (200, "2", {"ready": True})


def test_curl_h2c_upgrade_header_is_harmless(gw):
    """curl --http2 on http:// sends Upgrade: h2c; the gateway may switch or
    stay on HTTP/1.1, but the answer must be right either way."""
    code, ver, body, err = curl("--http2", gw.base + "/v2/models/digits/ready")
    assert code == 200, (body, err)
    assert ver in ("1.1", "2")
    assert json.loads(body) == {"name": "digits", "ready": True}


def test_pipelined_requests_answered_in_order(gw, model, heldout):
    x, _ = heldout
    reqs = [
        ("POST", INFER, infer_body(x[0:3], id="p0")),
        ("GET", "/v2/health/live", None),
        ("POST", INFER, infer_body(x[3:4], id="p2")),
        ("GET", "/foo", None),
        ("POST", INFER, b'{"inputs": ['),
        ("GET", "/v2/models/digits/ready", None),
        ("POST", INFER, infer_body(x[4:9], id="p6")),
    ]
    with H1Conn(gw.port, timeout=15) as c:
        c.send(b"".join(H1Conn.build(m, p, b, [("Content-Type", "application/json")] if b else [],
                                     gw.port) for m, p, b in reqs))
        got = [c.read_response() for _ in reqs]
    assert [g[0] for g in got] == [200, 200, 200, 404, 400, 200, 200], [g[:1] for g in got]
    check_infer_response(got[0][2], model, x[0:3], id="p0")
    assert json.loads(got[1][2]) == {"live": True}
    check_infer_response(got[2][2], model, x[3:4], id="p2")
    assert "no route for GET /foo" in json.loads(got[3][2])["error"]
    assert "malformed JSON" in json.loads(got[4][2])["error"]
    assert json.loads(got[5][2]) == {"name": "digits", "ready": True}
    check_infer_response(got[6][2], model, x[4:9], id="p6")


def test_pipelined_infer_burst(gw, model, heldout):
    """Many pipelined inferences of different sizes on one socket come back in
    order with their own rows' answers."""
    x, _ = heldout
    plan = [(i * 5, 1 + i % 6) for i in range(40)]
    with H1Conn(gw.port, timeout=30) as c:
        c.send(b"".join(H1Conn.build("POST", INFER, infer_body(x[lo:lo + n], id=f"b{k}"),
                                     [("Content-Type", "application/json")], gw.port)
                        for k, (lo, n) in enumerate(plan)))
        for k, (lo, n) in enumerate(plan):
            st, _, body = c.read_response()
            assert st == 200, (k, body)
            check_infer_response(body, model, x[lo:lo + n], id=f"b{k}")


def test_connection_close(gw, model, rows):
    with H1Conn(gw.port) as c:
        st, hd, body = c.request("POST", INFER, infer_body(rows, id="cc"),
                                 [("Content-Type", "application/json"), ("Connection", "close")])
        assert st == 200, body
        check_infer_response(body, model, rows, id="cc")
        assert hd.get("connection", "").lower() == "close", hd
        assert c.at_eof(timeout=5), "server kept the connection open after Connection: close"
        assert c.buf == b"", c.buf


def test_http10_request(gw):
    with H1Conn(gw.port) as c:
        c.send(b"GET /v2/health/live HTTP/1.0\r\n\r\n")
        st, hd, body = c.read_response()
        assert (st, json.loads(body)) == (200, {"live": True})
        assert c.at_eof(timeout=5), "HTTP/1.0 without keep-alive must be closed"


def test_chunked_request_body(gw, model, rows, tmp_path):
    body = infer_body(rows, id="chunked")
    parts = [body[i:i + 300] for i in range(0, len(body), 300)]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    with H1Conn(gw.port) as c:
        st, hd, rbody = c.request("POST", INFER, chunked,
                                  [("Content-Type", "application/json"),
                                   ("Transfer-Encoding", "chunked")])
        assert st == 200, rbody
        check_infer_response(rbody, model, rows, id="chunked")
        st, _, rbody = c.request("GET", "/v2/health/ready")
        assert (st, json.loads(rbody)) == (200, {"ready": True})


def test_chunked_bad_framing(gw):
    """A chunk size that is not hex, and both framings at once, are 400s."""
    for extra, payload in (([("Transfer-Encoding", "chunked")], b"zz\r\n"),
                           ([("Transfer-Encoding", "chunked"), ("Content-Length", "5")],
                            b"0\r\n\r\n")):
        with H1Conn(gw.port, timeout=10) as c:
            c.send(H1Conn.build("POST", INFER, None, extra, gw.port) + payload)
            st, hd, body = c.read_response()
            assert st == 400, (st, body)
            err = json.loads(body)["error"]
            assert "chunked" in err or "Content-Length" in err, err


def test_chunked_request_body_too_large(gw):
    with H1Conn(gw.port, timeout=10) as c:
        chunk = b" " * 16384
        data = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk)
                        for _ in range(MAIN_MAX_BODY // len(chunk) + 2)) + b"0\r\n\r\n"
        c.send(H1Conn.build("POST", INFER, None,
                            [("Content-Type", "application/json"),
                             ("Transfer-Encoding", "chunked")], gw.port))
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything
        st, _, body = c.read_response()
        assert_error(st, body, 413, "max_body_bytes")
