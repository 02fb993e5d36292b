"""HTTP/2 request messaging rules (RFC 9113 §8): malformed requests.

The gateway checks them itself (gateway/net/h2check.c, issue 18), where
nghttp2 did before (its HTTP messaging checks are off).  Every case below
is one request on stream 1 of a fresh connection; the expected outcome is
what nghttp2 1.52's checks gave on f92790a (the binary before the change:
INFERGW_BIN=that-binary runs the cases against it):

  ("rst", 1)      stream reset with PROTOCOL_ERROR, no answer
  ("status", N)   answered with :status N (the request was well-formed)

A field name that is not a lower-case token, or a value with a control
character (HTAB inside excepted), DEL, or leading/trailing whitespace makes
the request malformed too (nghttp2 1.52 resets these: it would only drop
them with an on_invalid_header callback, which the gateway never set).
Bounded: one small connection per case, against one gateway."""
import struct
import time

import hpack
import pytest

import gwlib
from attacklib import (DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PING, ACK, RST_STREAM,
                       RawH2, assert_alive, crash_note, frame, hpack_str)

HEALTH = "/v2/health/live"
INFER = "/v2/models/digits/infer"


def lit(name, value):
    """A literal field without indexing, new name (bytes kept as given)."""
    return b"\x00" + hpack_str(name) + hpack_str(value)


def block(fields):
    return b"".join(lit(n, v) for n, v in fields)


def req(method="GET", path=HEALTH, scheme="http", authority="127.0.0.1", extra=()):
    """The usual four pseudo-headers (None leaves one out) then extra."""
    out = []
    for n, v in ((":method", method), (":scheme", scheme), (":path", path),
                 (":authority", authority)):
        if v is not None:
            out.append((n, v))
    return out + list(extra)


def hdr(fields, end_stream=True, sid=1):
    return frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), sid, block(fields))


def data(payload, end_stream=True, sid=1):
    return frame(DATA, END_STREAM if end_stream else 0, sid, payload)


def post(body, cl=None, extra=(), end=True):
    """A POST to the infer path with body in one DATA frame."""
    ex = list(extra) + ([("content-length", cl)] if cl is not None else [])
    return hdr(req("POST", INFER, extra=ex), end_stream=False) + data(body, end_stream=end)


BODY = gwlib.infer_body(__import__("numpy").linspace(0.0, 16.0, 64).reshape(1, 64))
if isinstance(BODY, str):
    BODY = BODY.encode()
CL = str(len(BODY))
RST = ("rst", 1)


def ok(n=200):
    return ("status", n)


def P(name, wire, expect):
    return pytest.param(wire, expect, id=name)


CASES = [
    # -- well-formed, for contrast
    P("plain-get", hdr(req()), ok()),
    P("head", hdr(req("HEAD")), ok()),
    P("host-instead-of-authority", hdr(req(authority=None, extra=[("host", "a")])), ok()),
    P("host-and-authority", hdr(req(extra=[("host", "a")])), ok()),
    P("no-authority-no-host", hdr(req(authority=None)), RST),
    P("scheme-https", hdr(req(scheme="https")), ok()),
    P("te-trailers", hdr(req(extra=[("te", "trailers")])), ok()),
    P("te-trailers-upper-value", hdr(req(extra=[("te", "TRAILERS")])), ok()),
    P("post-with-cl", post(BODY, CL), ok()),
    P("post-without-cl", post(BODY), ok()),
    P("cl-zero-get", hdr(req(extra=[("content-length", "0")])), ok()),
    P("cl-leading-zeros", post(BODY, "000" + CL), ok()),
    # -- pseudo-header fields
    P("no-method", hdr(req(method=None)), RST),
    P("no-path", hdr(req(path=None)), RST),
    P("no-scheme", hdr(req(scheme=None)), RST),
    P("only-authority", hdr([(":authority", "a")]), RST),
    P("empty-block", hdr([]), RST),
    P("dup-method", hdr([(":method", "GET")] + req()), RST),
    P("dup-path", hdr(req() + [(":path", HEALTH)]), RST),
    P("dup-scheme", hdr([(":scheme", "http")] + req()), RST),
    P("dup-authority", hdr([(":authority", "b")] + req()), RST),
    P("dup-host", hdr(req(extra=[("host", "a"), ("host", "a")])), RST),
    P("status-in-request", hdr(req() + [(":status", "200")]), RST),
    P("status-first", hdr([(":status", "200")] + req()), RST),
    P("unknown-pseudo", hdr(req() + [(":foo", "bar")]), RST),
    P("protocol-pseudo", hdr(req() + [(":protocol", "websocket")]), RST),
    P("pseudo-after-regular", hdr(req(path=None, extra=[("x-a", "1"), (":path", HEALTH)])),
      RST),
    P("pseudo-after-ignored-field", hdr(req(path=None, extra=[("x a", "1"), (":path", HEALTH)])),
      RST),
    P("pseudo-empty-name", hdr(req() + [(":", "x")]), RST),
    P("pseudo-upper", hdr(req(path=None, extra=[(":PATH", HEALTH)])), RST),
    P("pseudo-bad-char-name", hdr(req() + [(":pa th", "x")]), RST),
    P("empty-method", hdr(req(method="")), RST),
    P("method-space", hdr(req(method="GE T")), RST),
    P("method-lowercase", hdr(req(method="get")), ok(405)),
    P("method-token-odd", hdr(req(method="G!T")), ok(405)),
    P("method-nul", hdr(req(method="GE\x00T")), RST),
    P("method-leading-space", hdr(req(method=" GET")), RST),
    P("method-colon", hdr(req(method="GET:")), RST),
    P("empty-path", hdr(req(path="")), RST),
    P("path-no-slash", hdr(req(path="v2/health/live")), RST),
    P("path-no-slash-other-scheme", hdr(req(path="v2/health/live", scheme="foo")), ok(404)),
    P("path-asterisk-get", hdr(req(path="*")), RST),
    P("path-asterisk-options", hdr(req("OPTIONS", path="*")), ok(404)),
    P("path-space", hdr(req(path="/v2/health /live")), RST),
    P("path-tab", hdr(req(path="/v2/health\t/live")), RST),
    P("path-nul", hdr(req(path="/v2/health\x00")), RST),
    P("path-cr", hdr(req(path="/v2/health\r")), RST),
    P("path-del", hdr(req(path="/v2/health\x7f")), RST),
    P("path-ctl", hdr(req(path="/v2/health\x01")), RST),
    P("path-obs-text", hdr(req(path=b"/v2/health\x80")), ok(404)),
    P("path-query", hdr(req(path=HEALTH + "?a=b c")), RST),
    P("path-query-ok", hdr(req(path=HEALTH + "?a=b")), ok()),
    P("path-fragment", hdr(req(path=HEALTH + "#x")), ok(404)),
    P("empty-scheme", hdr(req(scheme="")), RST),
    P("scheme-space-only", hdr(req(scheme=" ")), RST),
    P("scheme-leading-space", hdr(req(scheme=" http")), RST),
    P("scheme-trailing-space", hdr(req(scheme="http ")), RST),
    P("scheme-nul", hdr(req(scheme="ht\x00tp")), RST),
    P("scheme-odd", hdr(req(scheme="h+t.p")), ok()),
    P("empty-authority", hdr(req(authority="")), RST),
    P("authority-space", hdr(req(authority="a b")), RST),
    P("authority-slash", hdr(req(authority="a/b")), RST),
    P("authority-userinfo", hdr(req(authority="u:p@a:80")), ok()),
    P("authority-ipv6", hdr(req(authority="[::1]:8000")), ok()),
    P("authority-percent", hdr(req(authority="a%20b")), ok()),
    P("authority-quote", hdr(req(authority='a"b')), RST),
    P("authority-obs-text", hdr(req(authority=b"a\x80")), RST),
    P("host-empty", hdr(req(extra=[("host", "")])), RST),
    P("host-space", hdr(req(extra=[("host", "a b")])), RST),
    P("host-tab-only", hdr(req(extra=[("host", "\t")])), RST),
    # -- CONNECT
    P("connect-authority-only", hdr([(":method", "CONNECT"), (":authority", "a:1")]), ok(400)),
    P("connect-with-path", hdr([(":method", "CONNECT"), (":authority", "a:1"), (":path", "/")]),
      RST),
    P("connect-with-scheme", hdr([(":method", "CONNECT"), (":authority", "a:1"),
                                  (":scheme", "http")]), RST),
    P("connect-path-first", hdr([(":path", "/"), (":method", "CONNECT"), (":authority", "a:1")]),
      RST),
    P("connect-no-authority", hdr([(":method", "CONNECT")]), RST),
    P("connect-host-only", hdr([(":method", "CONNECT"), ("host", "a:1")]), RST),
    # -- field names
    P("name-upper", hdr(req(extra=[("X-Foo", "1")])), RST),
    P("name-upper-last", hdr(req(extra=[("x-foO", "1")])), RST),
    P("name-upper-and-space", hdr(req(extra=[("X foo", "1")])), RST),
    P("name-space", hdr(req(extra=[("x foo", "1")])), RST),
    P("name-colon-inside", hdr(req(extra=[("x:foo", "1")])), RST),
    P("name-at", hdr(req(extra=[("x@foo", "1")])), RST),
    P("name-nul", hdr(req(extra=[("x\x00", "1")])), RST),
    P("name-del", hdr(req(extra=[("x\x7f", "1")])), RST),
    P("name-obs-text", hdr(req(extra=[(b"x\xe9", "1")])), RST),
    P("name-empty", hdr(req(extra=[("", "1")])), RST),
    P("name-token-odd", hdr(req(extra=[("x!#$%&'*+-.^_`|~09", "1")])), ok()),
    # -- field values
    P("value-nul", hdr(req(extra=[("x-a", "a\x00b")])), RST),
    P("value-cr", hdr(req(extra=[("x-a", "a\rb")])), RST),
    P("value-lf", hdr(req(extra=[("x-a", "a\nb")])), RST),
    P("value-leading-space", hdr(req(extra=[("x-a", " a")])), RST),
    P("value-trailing-space", hdr(req(extra=[("x-a", "a ")])), RST),
    P("value-trailing-tab", hdr(req(extra=[("x-a", "a\t")])), RST),
    P("value-space-only", hdr(req(extra=[("x-a", " ")])), RST),
    P("value-inner-space", hdr(req(extra=[("x-a", "a b\tc")])), ok()),
    P("value-empty", hdr(req(extra=[("x-a", "")])), ok()),
    P("value-ctl", hdr(req(extra=[("x-a", "a\x01b")])), RST),
    P("value-del", hdr(req(extra=[("x-a", "a\x7fb")])), RST),
    P("value-obs-text", hdr(req(extra=[("x-a", b"a\xffb")])), ok()),
    P("ignored-then-pseudo", hdr(req(method=None, extra=[("x-a", " a"), (":method", "GET")])),
      RST),
    # A bad value of a field with rules of its own is malformed first.
    P("bad-value-content-length", post(BODY, extra=[("content-length", " 5")]), RST),
    P("bad-value-connection", hdr(req(extra=[("connection", " close")])), RST),
    # -- connection-specific fields
    P("connection", hdr(req(extra=[("connection", "close")])), RST),
    P("connection-empty", hdr(req(extra=[("connection", "")])), RST),
    P("keep-alive", hdr(req(extra=[("keep-alive", "timeout=5")])), RST),
    P("proxy-connection", hdr(req(extra=[("proxy-connection", "keep-alive")])), RST),
    P("transfer-encoding", hdr(req(extra=[("transfer-encoding", "chunked")])), RST),
    P("transfer-encoding-identity", hdr(req(extra=[("transfer-encoding", "identity")])), RST),
    P("upgrade", hdr(req(extra=[("upgrade", "h2c")])), RST),
    P("te-gzip", hdr(req(extra=[("te", "gzip")])), RST),
    P("te-trailers-and-more", hdr(req(extra=[("te", "trailers, deflate")])), RST),
    P("te-empty", hdr(req(extra=[("te", "")])), RST),
    P("te-twice", hdr(req(extra=[("te", "trailers"), ("te", "trailers")])), ok()),
    P("connection-in-trailers", post(BODY, CL, end=False) +
      hdr([("connection", "close")]), RST),
    # -- content-length
    P("cl-not-number", post(BODY, "abc"), RST),
    P("cl-negative", post(BODY, "-1"), RST),
    P("cl-empty", post(BODY, ""), RST),
    P("cl-plus", post(BODY, "+" + CL), RST),
    P("cl-hex", post(BODY, "0x10"), RST),
    P("cl-list", post(BODY, CL + "," + CL), RST),
    P("cl-overflow", post(BODY, "99999999999999999999"), RST),
    P("cl-int64-max", hdr(req(extra=[("content-length", "9223372036854775807")])), RST),
    P("cl-twice-same", post(BODY, CL, extra=[("content-length", CL)]), RST),
    P("cl-too-small", post(BODY, str(len(BODY) - 1)), RST),
    P("cl-too-big", post(BODY, str(len(BODY) + 1)), RST),
    P("cl-too-big-two-frames", hdr(req("POST", INFER, extra=[("content-length",
                                                              str(len(BODY) + 1))]),
                                   end_stream=False) + data(BODY[:10], False) + data(BODY[10:]),
      RST),
    P("cl-too-small-two-frames", hdr(req("POST", INFER, extra=[("content-length", "10")]),
                                     end_stream=False) + data(BODY[:5], False) + data(BODY[5:]),
      RST),
    P("cl-on-end-stream-headers", hdr(req(extra=[("content-length", "5")])), RST),
    P("cl-ok-split", hdr(req("POST", INFER, extra=[("content-length", CL)]), end_stream=False) +
      data(BODY[:10], False) + data(BODY[10:]), ok()),
    P("cl-ok-empty-end", hdr(req("POST", INFER, extra=[("content-length", CL)]),
                             end_stream=False) + data(BODY, False) + data(b""), ok()),
    P("cl-ok-trailers", post(BODY, CL, end=False) + hdr([("x-t", "1")]), ok()),
    P("cl-short-then-trailers", post(BODY, str(len(BODY) + 3), end=False) + hdr([("x-t", "1")]),
      RST),
    # -- trailers
    P("trailers", post(BODY, end=False) + hdr([("x-t", "1")]), ok()),
    P("trailers-empty", post(BODY, end=False) + hdr([]), ok()),
    P("trailers-no-end-stream", post(BODY, end=False) + hdr([("x-t", "1")], end_stream=False),
      RST),
    P("trailers-pseudo", post(BODY, end=False) + hdr([(":path", "/x")]), RST),
    P("trailers-status", post(BODY, end=False) + hdr([(":status", "200")]), RST),
    P("trailers-upper", post(BODY, end=False) + hdr([("X-T", "1")]), RST),
    P("trailers-bad-name", post(BODY, end=False) + hdr([("x t", "1")]), RST),
    P("trailers-bad-value", post(BODY, end=False) + hdr([("x-t", " 1")]), RST),
    P("trailers-te-gzip", post(BODY, end=False) + hdr([("te", "gzip")]), RST),
    P("trailers-cl", post(BODY, end=False) + hdr([("content-length", CL)]), ok()),
    P("trailers-cl-twice", post(BODY, CL, end=False) + hdr([("content-length", CL)]), RST),
    P("trailers-cl-bad", post(BODY, end=False) + hdr([("content-length", "x")]), RST),
    P("trailers-host", post(BODY, end=False) + hdr([("host", "a")]), ok()),
    P("trailers-host-empty", post(BODY, end=False) + hdr([("host", "")]), RST),
    P("get-then-trailers", hdr(req(), end_stream=False) + hdr([("x-t", "1")]), ok()),
]


def _status(blk, dec):
    for n, v in dec.decode(blk):
        if n in (":status", b":status"):
            return int(v)
    return None


def outcome(port, wire, timeout=5.0):
    """What stream 1 got: ("rst", code), ("status", N), ("goaway", code) or
    ("none",) when neither came before the PING after the request."""
    dec = hpack.Decoder()
    dec.max_allowed_table_size = 65536
    with RawH2(port, timeout=timeout) as h:
        h.send(wire + frame(PING, 0, 0, b"msgcheck"))
        deadline = time.monotonic() + timeout
        status = None
        while not h.eof and time.monotonic() < deadline:
            for ftype, flags, sid, p in h.pump(deadline - time.monotonic()):
                if ftype == HEADERS and sid == 1 and status is None:
                    status = _status(p, dec)
                elif ftype == HEADERS:
                    dec.decode(p)
                elif ftype == RST_STREAM and sid == 1 and status is None:
                    return ("rst", struct.unpack(">I", p[:4])[0])
                elif ftype == GOAWAY:
                    return ("goaway", struct.unpack(">I", p[4:8])[0])
                elif ftype == PING and flags & ACK and status is not None:
                    return ("status", status)
                elif ftype == DATA and sid == 1 and flags & END_STREAM and status is not None:
                    return ("status", status)
        return ("status", status) if status is not None else ("none",)


@pytest.fixture(scope="module")
def gw(module_gw):
    return module_gw("h2msg", threads=1)


@pytest.mark.parametrize("wire,expect", CASES)
def test_malformed_request(gw, wire, expect):
    got = outcome(gw.port, wire)
    assert got == expect, f"got {got}, expected {expect}{crash_note(gw)}"


def test_connection_survives_malformed_streams(gw):
    """A reset stream costs the connection nothing: the next stream on it
    is served, and the gateway stays up after every case above."""
    with RawH2(gw.port, timeout=10) as h:
        h.send(hdr(req(extra=[("connection", "close")]), sid=1) +
               hdr(req(path=None), sid=3) + hdr(req(), sid=5))
        got = {}
        deadline = time.monotonic() + 10
        while len(got) < 3 and not h.eof and time.monotonic() < deadline:
            for ftype, _, sid, p in h.pump(deadline - time.monotonic()):
                if ftype in (RST_STREAM, HEADERS):
                    got.setdefault(sid, (ftype, p))
        assert got.get(1, (None,))[0] == RST_STREAM and got[1][1] == struct.pack(">I", 1), got
        assert got.get(3, (None,))[0] == RST_STREAM and got[3][1] == struct.pack(">I", 1), got
        assert got.get(5, (None,))[0] == HEADERS, got
    assert_alive(gw)
