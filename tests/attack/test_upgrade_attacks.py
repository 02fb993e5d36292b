"""Upgrade: h2c from hostile clients (issue 10, item 7): an upgraded
connection is an HTTP/2 connection like any other, so the promises of
docs/security.md hold on it too -- a PING flood from a client that never
reads is bounded by limits.output_buffer_bytes and nghttp2's flood guard;
a client that takes the 101 and never sends its preface is closed at
limits.header_timeout_ms; an HTTP2-Settings header past
limits.max_header_bytes is a 431, and one with too many or invalid
settings does not upgrade.  Bounded in frames, bytes and seconds."""
import base64
import json
import time

import numpy as np
import pytest

import attacklib
import gwlib
from attacklib import (END_HEADERS, END_STREAM, HEADERS, PING, PREFACE, RawH2, assert_alive,
                       crash_note, frame, settings_frame)
from gwlib import H1Conn

FLOOD_RSS_BOUND_MIB = 64
HEADER_TIMEOUT_MS = 1500


@pytest.fixture
def g(module_gw):
    return module_gw("upatk", limits={"header_timeout_ms": HEADER_TIMEOUT_MS})


def upgrade(port, settings="AAMAAABk", path="/v2/health/live"):
    """A RawH2 whose socket sent an upgrading GET and read the 101 head
    (frames after it stay in .buf).  The preface is not sent yet."""
    h = RawH2(port, preface=False)
    h.send(H1Conn.build("GET", path, None,
                        [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                         ("HTTP2-Settings", settings)], port))
    buf = b""
    h.sock.settimeout(5)
    while b"\r\n\r\n" not in buf:
        chunk = h.sock.recv(65536)
        assert chunk, f"closed before the 101: {buf!r}"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    h.frames, h.buf = attacklib.parse_frames(rest)
    return h


def test_ping_flood_after_upgrade(g, model):
    """Upgrade, send the preface, then PINGs as fast as the socket takes
    them, never reading: RSS stays bounded and the gateway stops reading or
    closes the connection; other clients are served."""
    unit = b"".join(frame(PING, 0, 0, b"%08d" % i) for i in range(4096))
    with attacklib.Bystander(g, model, max_requests=300, pause=0.05) as by:
        h = upgrade(g.port)
        h.send(PREFACE + settings_frame())
        rss = attacklib.RssPeak(g.proc.pid)
        sent, end = attacklib.flood(h.sock, unit, rss, FLOOD_RSS_BOUND_MIB, 10.0, 150e6)
        try:
            assert rss.growth_mib < FLOOD_RSS_BOUND_MIB, (
                f"RSS grew {rss.growth_mib:.0f} MiB after {sent / 1e6:.0f} MB of PINGs"
                f"{crash_note(g)}")
            if end == "limit":
                h.sock.setblocking(True)
                assert h.read_to_eof(timeout=5), \
                    f"{sent / 1e6:.0f} MB of PINGs read without pausing or closing"
        finally:
            h.close()
    by.stop()
    assert_alive(g)
    by.assert_served()


def test_no_preface_after_101_is_closed_at_header_timeout(g):
    """The 101 and the answer on stream 1 go out; a client that then sends
    nothing is closed at header_timeout_ms (counted as header_timeout)."""
    before = attacklib.metric_value(g, "infergw_connections_closed_total",
                                    reason="header_timeout")
    h = upgrade(g.port)
    try:
        t0 = time.monotonic()
        assert h.read_to_eof(timeout=HEADER_TIMEOUT_MS / 1000 + 5), "never closed"
        waited = time.monotonic() - t0
    finally:
        h.close()
    assert waited >= HEADER_TIMEOUT_MS / 1000 * 0.5, waited
    heads = [f for f in h.frames if f[0] == 1 and f[2] == 1]
    assert heads, f"no answer on stream 1: {h.frames}"
    after = attacklib.metric_value(g, "infergw_connections_closed_total",
                                   reason="header_timeout")
    assert after == before + 1, (before, after)


def test_preface_in_time_keeps_the_connection(g):
    """An upgraded client that sent its preface and SETTINGS is past the
    header timeout: idle for twice header_timeout_ms, it still gets PING
    answers."""
    h = upgrade(g.port)
    try:
        h.send(PREFACE + settings_frame())
        assert h.ping_ack(timeout=5)
        time.sleep(2 * HEADER_TIMEOUT_MS / 1000)
        assert h.ping_ack(timeout=5), f"closed while idle: {h.frames[-3:]}"
    finally:
        h.close()


def test_huge_http2_settings_header_is_431(g):
    """An HTTP2-Settings value past max_header_bytes (16 KiB): 431 and
    close, as any oversized head; nothing is decoded or upgraded."""
    hs = base64.urlsafe_b64encode(b"\x00\x03\x00\x00\x00\x64" * 4000).decode()
    resps, _, eof = attacklib.h1_exchange(
        g.port, H1Conn.build("GET", "/v2/health/live", None,
                             [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                              ("HTTP2-Settings", hs)], g.port))
    assert [r[0] for r in resps] == [431], resps
    assert eof
    assert_alive(g)


@pytest.mark.parametrize("payload,why", [
    (b"\x00\x03\x00\x00\x00\x64" * 2000, "2000 settings (nghttp2 takes 32)"),
    (b"\x00\x04\x80\x00\x00\x00", "INITIAL_WINDOW_SIZE 2^31"),
    (b"\x00\x05\x01\x00\x00\x00", "MAX_FRAME_SIZE 2^24"),
    (b"\x00\x02\x00\x00\x00\x07", "ENABLE_PUSH 7"),
])
def test_bad_settings_do_not_upgrade(g, payload, why):
    hs = base64.urlsafe_b64encode(payload).decode()
    with H1Conn(g.port) as c:
        st, hd, body = c.request("GET", "/v2/health/live", None,
                                 [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                                  ("HTTP2-Settings", hs)])
        assert (st, json.loads(body)) == (200, {"live": True}), why
        st, _, _ = c.request("GET", "/v2/health/live")
        assert st == 200, why
    assert_alive(g)


def test_upgraded_inference_abandoned_when_client_leaves(g):
    """An inference sent as the upgrading request is answered on stream 1;
    a client that leaves before the answer cancels it like any h2 stream's
    (the call on stream 1 is one of the connection's: h2_free abandons it,
    and the answer never reaches the freed connection).  Many times, with
    other streams opened beside stream 1, then the gateway still serves."""
    rows = np.zeros((8, 64), dtype=np.float32)
    body = gwlib.infer_body(rows)
    for i in range(40):
        h = RawH2(g.port, preface=False)
        h.send(H1Conn.build("POST", "/v2/models/digits/infer", body,
                            [("Content-Type", "application/json"),
                             ("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                             ("HTTP2-Settings", "AAMAAABkAAQAAAAA")], g.port))
        if i % 2:	# stream 3 opened beside stream 1 (windows at 0: nothing closes)
            h.send(PREFACE + settings_frame() +
                   frame(HEADERS, END_STREAM | END_HEADERS, 3,
                         attacklib.hpack_request("GET", "/v2/health/live")))
        h.close()
    time.sleep(0.5)
    assert_alive(g)
    st, _, _ = gwlib.h1_request(g.port, "POST", "/v2/models/digits/infer", body,
                                headers=[("Content-Type", "application/json")], timeout=5)
    assert st == 200
