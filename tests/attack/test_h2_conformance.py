"""RFC 9113 / RFC 7541 conformance of the HTTP/2 framing, case by case in
the manner of h2spec: each case sends frames a conforming client would not
send, on a fresh connection, and checks what the gateway answers:
GOAWAY with the error code the RFC names (then the connection closes), or
RST_STREAM with it where the RFC makes it a stream error, or nothing
(PING still answered) where the frame is to be ignored.  Where the RFC lets
an endpoint choose between a stream and a connection error, either is
accepted, with the same code.

The attack suite runs this against the default engine (the native one,
gateway/net/h2w.c); tests/run_all.sh's h2alt suite runs it again with
listen.http2_engine nghttp2, so both engines answer the same."""
import struct

import pytest

from attacklib import (ACK, CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, H2_ERRORS,
                       HEADERS, PADDED, PING, PRIORITY, RST_STREAM, SETTINGS, WINDOW_UPDATE,
                       RawH2, assert_alive, crash_note, frame, hpack_request)

NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED, FRAME_SIZE_ERROR, \
    REFUSED_STREAM, COMPRESSION_ERROR = 0, 1, 3, 5, 6, 7, 9
PRIORITY_FLAG = 0x20
SYNC = b"conform!"
MAX_STREAMS = 16


@pytest.fixture
def gw(module_gw):
    return module_gw("conform", threads=1, max_concurrent_streams=MAX_STREAMS)


def get(sid, flags=END_HEADERS | END_STREAM, path="/v2/health/live"):
    return frame(HEADERS, flags, sid, hpack_request("GET", path))


def post_open(sid, length=10):
    """A POST whose body is still to come (the stream stays open)."""
    return frame(HEADERS, END_HEADERS, sid, hpack_request(
        "POST", "/v2/models/digits/infer", extra=[("content-type", "application/json"),
                                                  ("content-length", str(length))]))


def u32(v):
    return struct.pack(">I", v)


def setting(ident, value):
    return struct.pack(">HI", ident, value)


def outcome(h, timeout=5.0, settle=0.3):
    """What the gateway answered to what h sent, then a PING: ("goaway",
    code), ("rst", code) for the first RST_STREAM, ("ok",) when the PING
    came back and neither followed within settle seconds (an engine may
    send ACKs ahead of the frames it queued before them: nghttp2 does),
    ("eof",) when the connection closed with neither."""
    try:
        h.send(frame(PING, 0, 0, SYNC))
    except OSError:
        pass
    seen, acked = list(h.frames), False
    while True:
        for ftype, flags, sid, p in seen:
            if ftype == GOAWAY and len(p) >= 8:
                return ("goaway", struct.unpack(">I", p[4:8])[0])
            if ftype == RST_STREAM and len(p) == 4:
                return ("rst", struct.unpack(">I", p)[0])
            acked = acked or (ftype == PING and flags & ACK and p == SYNC)
        if h.eof:
            return ("eof",)
        seen = h.pump(settle if acked else timeout)
        if not seen and not h.eof:
            return ("ok",) if acked else ("timeout",)


def name(o):
    return o[0] if len(o) == 1 else f"{o[0]} {H2_ERRORS.get(o[1], o[1])}"


CONN = "goaway"
STREAM_OR_CONN = "either"
IGNORED = "ok"

# (case, frames after the SETTINGS exchange, what the RFC asks, code)
CASES = [
    # 4.2: frame size
    ("headers over max frame size",
     frame(HEADERS, END_HEADERS | END_STREAM, 1, hpack_request("GET", "/" + "a" * 16400)),
     CONN, FRAME_SIZE_ERROR),
    ("data over max frame size", post_open(1, 20000) + frame(DATA, 0, 1, b"x" * 16385),
     STREAM_OR_CONN, FRAME_SIZE_ERROR),
    # 5.1: stream states
    ("data on an idle stream", frame(DATA, END_STREAM, 1, b"x"), CONN, PROTOCOL_ERROR),
    ("rst_stream on an idle stream", frame(RST_STREAM, 0, 1, u32(8)), CONN, PROTOCOL_ERROR),
    ("window_update on an idle stream", frame(WINDOW_UPDATE, 0, 1, u32(1)), CONN,
     PROTOCOL_ERROR),
    ("data on a half-closed (remote) stream", get(1) + frame(DATA, 0, 1, b"x"), STREAM_OR_CONN,
     STREAM_CLOSED),
    ("headers on a half-closed (remote) stream", get(1) + get(1), STREAM_OR_CONN, STREAM_CLOSED),
    # 5.1.1: stream identifiers
    ("headers on an even stream", get(2), CONN, PROTOCOL_ERROR),
    # 5.5: extensions
    ("unknown frame inside a header block",
     frame(HEADERS, END_STREAM, 1, hpack_request("GET", "/v2/health/live")) +
     frame(0xfa, 0, 1, b"x"), CONN, PROTOCOL_ERROR),
    ("unknown frame type outside a header block", frame(0xfa, 0, 0, b"xyz") + frame(0xfb, 0xff, 3),
     IGNORED, None),
    # 6.1 DATA
    ("data on stream 0", frame(DATA, 0, 0, b"x"), CONN, PROTOCOL_ERROR),
    ("data padding longer than the payload", post_open(1) + frame(DATA, PADDED, 1, b"\x09abc"),
     CONN, PROTOCOL_ERROR),
    # 6.2 HEADERS
    ("headers on stream 0", get(0), CONN, PROTOCOL_ERROR),
    ("headers padding longer than the payload",
     frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 1, b"\xff" + hpack_request("GET", "/")),
     CONN, PROTOCOL_ERROR),
    ("headers depending on itself",
     frame(HEADERS, END_HEADERS | END_STREAM | PRIORITY_FLAG, 1,
           u32(1) + b"\x10" + hpack_request("GET", "/v2/health/live")),
     STREAM_OR_CONN, PROTOCOL_ERROR),
    ("headers without END_HEADERS, then PRIORITY",
     frame(HEADERS, END_STREAM, 1, hpack_request("GET", "/v2/health/live")) +
     frame(PRIORITY, 0, 3, u32(0) + b"\x10"), CONN, PROTOCOL_ERROR),
    # 6.3 PRIORITY
    ("priority on stream 0", frame(PRIORITY, 0, 0, u32(1) + b"\x10"), CONN, PROTOCOL_ERROR),
    ("priority of 4 bytes", frame(PRIORITY, 0, 3, u32(1)), STREAM_OR_CONN, FRAME_SIZE_ERROR),
    ("priority on an idle stream is fine", frame(PRIORITY, 0, 9, u32(0) + b"\x10") + get(11),
     IGNORED, None),
    # 6.4 RST_STREAM
    ("rst_stream on stream 0", frame(RST_STREAM, 0, 0, u32(8)), CONN, PROTOCOL_ERROR),
    ("rst_stream of 3 bytes", post_open(1) + frame(RST_STREAM, 0, 1, b"\0\0\x08"), CONN,
     FRAME_SIZE_ERROR),
    # 6.5 SETTINGS
    ("settings ack with a payload", frame(SETTINGS, ACK, 0, setting(3, 100)), CONN,
     FRAME_SIZE_ERROR),
    ("settings on a stream", frame(SETTINGS, 0, 1, setting(3, 100)), CONN, PROTOCOL_ERROR),
    ("settings of 3 bytes", frame(SETTINGS, 0, 0, b"\0\x03\0"), CONN, FRAME_SIZE_ERROR),
    ("settings enable_push 2", frame(SETTINGS, 0, 0, setting(2, 2)), CONN, PROTOCOL_ERROR),
    ("settings initial window 2^31", frame(SETTINGS, 0, 0, setting(4, 1 << 31)), CONN,
     FLOW_CONTROL_ERROR),
    ("settings max frame size 16383", frame(SETTINGS, 0, 0, setting(5, 16383)), CONN,
     PROTOCOL_ERROR),
    ("settings max frame size 2^24", frame(SETTINGS, 0, 0, setting(5, 1 << 24)), CONN,
     PROTOCOL_ERROR),
    ("settings of an unknown id are ignored", frame(SETTINGS, 0, 0, setting(0xfe, 7)),
     IGNORED, None),
    # 6.7 PING
    ("ping on a stream", frame(PING, 0, 1, b"12345678"), CONN, PROTOCOL_ERROR),
    ("ping of 7 bytes", frame(PING, 0, 0, b"1234567"), CONN, FRAME_SIZE_ERROR),
    # 6.8 GOAWAY
    ("goaway on a stream", frame(GOAWAY, 0, 1, u32(0) + u32(0)), CONN, PROTOCOL_ERROR),
    # 6.9 WINDOW_UPDATE
    ("window_update of 0 on the connection", frame(WINDOW_UPDATE, 0, 0, u32(0)), CONN,
     PROTOCOL_ERROR),
    ("window_update of 0 on a stream", post_open(1) + frame(WINDOW_UPDATE, 0, 1, u32(0)),
     STREAM_OR_CONN, PROTOCOL_ERROR),
    ("window_update of 3 bytes", frame(WINDOW_UPDATE, 0, 0, b"\0\0\x01"), CONN,
     FRAME_SIZE_ERROR),
    ("connection window over 2^31-1", frame(WINDOW_UPDATE, 0, 0, u32(0x7fffffff)), CONN,
     FLOW_CONTROL_ERROR),
    ("stream window over 2^31-1",
     post_open(1) + frame(WINDOW_UPDATE, 0, 1, u32(0x7fffffff)), STREAM_OR_CONN,
     FLOW_CONTROL_ERROR),
    # §6.9.2 asks for a connection error; nghttp2 1.52 resets the stream
    # instead (the native engine ends the connection: test_h2w.c pins it)
    ("initial window change overflowing a stream's window",
     post_open(1) + frame(WINDOW_UPDATE, 0, 1, u32(0x7fffffff - 65535)) +
     frame(SETTINGS, 0, 0, setting(4, 65536)), STREAM_OR_CONN, FLOW_CONTROL_ERROR),
    # 6.10 CONTINUATION
    ("continuation without headers", frame(CONTINUATION, END_HEADERS, 1,
                                           hpack_request("GET", "/")), CONN, PROTOCOL_ERROR),
    ("continuation after END_HEADERS", post_open(1) +
     frame(CONTINUATION, END_HEADERS, 1, b"\x00\x01a\x01b"), CONN, PROTOCOL_ERROR),
    ("continuation on another stream",
     frame(HEADERS, END_STREAM, 1, hpack_request("GET", "/v2/health/live")) +
     frame(CONTINUATION, END_HEADERS, 3, b""), CONN, PROTOCOL_ERROR),
    # RFC 7541: HPACK
    ("hpack index 0", frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x80"), CONN,
     COMPRESSION_ERROR),
    ("hpack index past the table", frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff\x10"),
     CONN, COMPRESSION_ERROR),
    ("hpack table size update over SETTINGS_HEADER_TABLE_SIZE",
     frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x3f\xe1\x3f" + hpack_request("GET", "/")),
     CONN, COMPRESSION_ERROR),
    ("hpack table size update after a field",
     frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x82\x20"), CONN, COMPRESSION_ERROR),
    ("hpack huffman string with EOS",
     frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x00\x84\xff\xff\xff\xff\x01a"), CONN,
     COMPRESSION_ERROR),
    ("hpack string longer than the block",
     frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x00\x0aab"), CONN, COMPRESSION_ERROR),
]


@pytest.mark.parametrize("case,wire,kind,code", CASES, ids=[c[0] for c in CASES])
def test_conformance(gw, case, wire, kind, code):
    with RawH2(gw.port, timeout=10) as h:
        h.send(wire)
        got = outcome(h)
        if kind == IGNORED:
            ok = got == ("ok",)
        elif kind == CONN:
            ok = got == ("goaway", code)
        else:
            ok = got in (("goaway", code), ("rst", code))
        want = "ignored (PING answered)" if kind == IGNORED else \
            f"{'GOAWAY' if kind == CONN else 'GOAWAY or RST_STREAM'} {H2_ERRORS.get(code, code)}"
        assert ok, f"{case}: expected {want}, got {name(got)}{crash_note(gw)}"
        if got[0] == "goaway":
            assert h.read_to_eof(timeout=5), f"{case}: connection still open after GOAWAY"
    assert_alive(gw)


def test_refused_past_max_concurrent_streams(gw):
    """5.1.2: the stream past SETTINGS_MAX_CONCURRENT_STREAMS is refused
    (RST_STREAM REFUSED_STREAM), the ones before stay open, and the
    connection goes on: a GET after the refused one is answered once the
    open ones are reset by the client."""
    with RawH2(gw.port, timeout=10) as h:
        wire = b"".join(post_open(2 * i + 1) for i in range(MAX_STREAMS + 1))
        h.send(wire)
        refused = 2 * MAX_STREAMS + 1
        f = h.read_until(lambda f: f[0] in (RST_STREAM, GOAWAY), timeout=5)
        assert f is not None and f[0] == RST_STREAM and f[2] == refused and \
            struct.unpack(">I", f[3])[0] == REFUSED_STREAM, \
            f"expected RST_STREAM REFUSED_STREAM on stream {refused}, got {f}{crash_note(gw)}"
        h.send(b"".join(frame(RST_STREAM, 0, 2 * i + 1, u32(8)) for i in range(MAX_STREAMS)))
        h.send(get(refused + 2))
        f = h.read_until(lambda f: f[0] == HEADERS and f[2] == refused + 2, timeout=5)
        assert f is not None, f"GET after the refused stream not answered{crash_note(gw)}"
    assert_alive(gw)


def test_valid_shapes_are_served(gw):
    """Valid but unusual requests are answered 200: padded HEADERS, a
    priority block, a header block split over CONTINUATIONs, an empty first
    fragment, padded DATA, a SETTINGS ACK comes back for our SETTINGS."""
    block = hpack_request("GET", "/v2/health/live")
    wire = (frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 1, b"\x04" + block + b"\0" * 4) +
            frame(HEADERS, END_HEADERS | END_STREAM | PRIORITY_FLAG, 3, u32(0) + b"\x20" + block) +
            frame(HEADERS, END_STREAM, 5, block[:3]) + frame(CONTINUATION, 0, 5, block[3:7]) +
            frame(CONTINUATION, END_HEADERS, 5, block[7:]) +
            frame(HEADERS, END_STREAM, 7, b"") + frame(CONTINUATION, END_HEADERS, 7, block))
    with RawH2(gw.port, timeout=10) as h:
        h.send(wire)
        answered = {}
        for _ in range(50):
            for ftype, flags, sid, p in h.pump(2):
                if ftype == HEADERS:
                    answered[sid] = p
            if len(answered) == 4 or h.eof:
                break
        assert sorted(answered) == [1, 3, 5, 7], f"answered {sorted(answered)}{crash_note(gw)}"
        # :status 200 is static index 8: 0x88 whatever else the encoder did
        assert all(p[:1] == b"\x88" for p in answered.values()), answered
        assert any(f[0] == SETTINGS and f[1] & ACK for f in h.frames), "no SETTINGS ACK"
        assert not any(f[0] in (GOAWAY, RST_STREAM) for f in h.frames), h.frames
    assert_alive(gw)
