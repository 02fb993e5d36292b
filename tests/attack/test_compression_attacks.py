"""Compressed request bodies from hostile clients (issue 10, item 4):
decompression bombs over HTTP/1.1 and HTTP/2, and gzip / zlib streams that
are truncated, followed by garbage, carry a wrong CRC-32 or length, declare
huge header fields, or stack thousands of members.  The promise
(docs/security.md): a body inflates to at most limits.max_body_bytes
(413 past it: decoding stops there), whatever its ratio, so memory and CPU
stay bounded by the cap; a broken stream is a 400 that names the coding
and what is wrong; the connection and other clients keep being served.
Bounded in requests, bytes and seconds; 127.0.0.1 only."""
import gzip
import struct
import zlib

import pytest

import attacklib
import gwlib
from attacklib import ROW, assert_alive, crash_note
from gwlib import INFER, JSON_CT, H1Conn, H2Client

MAX_BODY = 1 << 20
BOMB_PLAIN = 768 << 20          # what one bomb claims to hold
BOMBS = 8
# Inflated in full, 8 bombs would take 6 GiB and seconds of CPU; capped,
# each costs at most max_body_bytes (1 MiB) and a millisecond or so.
BOMB_RSS_BOUND_MIB = 64
BOMB_CPU_BOUND_S = 3.0


@pytest.fixture
def g(module_gw):
    return module_gw("zatk", max_body_bytes=MAX_BODY)


@pytest.fixture(scope="module")
def bomb():
    """768 MiB of zeros as gzip (~750 KiB: ~1000:1), built in 1 MiB pieces."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    out = [z.compress(zeros) for _ in range(BOMB_PLAIN >> 20)]
    data = b"".join(out) + z.flush()
    assert len(data) < MAX_BODY and BOMB_PLAIN / len(data) > 900, len(data)
    return data


def test_bombs_cost_little_memory_and_cpu(g, model, bomb):
    """BOMBS bombs, half over one HTTP/1.1 keep-alive connection, half as
    concurrent HTTP/2 streams: every one is a 413 naming the limit, the
    gateway's RSS and CPU grow by a bounded amount, and a bystander keeps
    getting right answers."""
    rss = attacklib.RssPeak(g.proc.pid)
    cpu0 = attacklib.cpu_seconds(g.proc.pid)
    with attacklib.Bystander(g, model, max_requests=300, pause=0.05) as by:
        with H1Conn(g.port, timeout=20) as c:
            for i in range(BOMBS // 2):
                st, hd, body = c.request("POST", INFER, bomb, [("Content-Encoding", "gzip")])
                rss.sample()
                gwlib.check_error_response(f"h1 bomb {i}", st, hd, body, 413,
                                           [f"limits.max_body_bytes ({MAX_BODY}) once "
                                            "decompressed"])
            st, _, body = c.request("POST", INFER, gwlib.infer_body(ROW), [JSON_CT])
            assert st == 200, body[:200]
        with H2Client(g.port, timeout=20) as c:
            sids = [c.request("POST", INFER, bomb, [("content-encoding", "gzip")])
                    for _ in range(BOMBS // 2)]
            for r in c.wait(sids):
                assert r.status == 413, r
            rss.sample()
    by.stop()
    cpu = attacklib.cpu_seconds(g.proc.pid) - cpu0
    assert rss.growth_mib < BOMB_RSS_BOUND_MIB, (
        f"RSS grew {rss.growth_mib:.0f} MiB for {BOMBS} bombs{crash_note(g)}")
    assert cpu < BOMB_CPU_BOUND_S, f"{BOMBS} bombs cost {cpu:.2f} s of CPU"
    assert_alive(g)
    by.assert_served()


def _gzip_header(flags=0, extra=b""):
    return b"\x1f\x8b\x08" + bytes([flags]) + b"\0\0\0\0\0\xff" + extra


def _broken_cases():
    plain = gwlib.infer_body(ROW)
    good = gzip.compress(plain)
    deflated = zlib.compress(plain)
    crc = bytearray(good)
    crc[-8] ^= 0x01
    isize = good[:-4] + struct.pack("<I", 0xFFFFFFFF)
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw = raw.compress(plain) + raw.flush()
    fhcrc = _gzip_header(0x02, b"\x00\x00") + raw + struct.pack("<II", zlib.crc32(plain),
                                                                  len(plain))
    dictid = bytes([0x78, 0xBB]) + b"\x00\x00\x00\x01" + b"\x00" * 16   # FDICT set
    members = gzip.compress(b"") * 3000                                 # 60 KB of nothing
    return [
        ("gzip", good[:len(good) // 2], 400, "(truncated)"),
        ("gzip", good[:10], 400, "(truncated)"),
        ("gzip", good + b"\x00" * 64, 400, "(data after the end of the stream)"),
        ("gzip", good + b"<html>", 400, "(data after the end of the stream)"),
        ("gzip", bytes(crc), 400, "(incorrect data check)"),
        ("gzip", isize, 400, "(incorrect length check)"),
        # FEXTRA declaring 65535 bytes, 100 sent
        ("gzip", _gzip_header(0x04, b"\xff\xff") + b"x" * 100, 400, "(truncated)"),
        # FNAME that never ends
        ("gzip", _gzip_header(0x08) + b"n" * 50000, 400, "(truncated)"),
        ("gzip", fhcrc, 400, "Content-Encoding: gzip: the body does not decompress"),
        ("gzip", deflated, 400, "(incorrect header check)"),
        ("deflate", dictid, 400, "(preset dictionaries are not supported)"),
        ("deflate", deflated + b"!", 400, "(data after the end of the stream)"),
        ("deflate", deflated[:-3], 400, "(truncated)"),
        ("gzip", members, 400, "request body: empty"),
    ]


def test_broken_streams_are_400_and_the_connection_serves_on(g, model):
    before = gwlib.settled_metrics(g.metrics_port, "http/1.1", via="h2")
    cases = _broken_cases()
    with H1Conn(g.port) as c:
        for enc, body, status, msg in cases:
            st, hd, rb = c.request("POST", INFER, body, [("Content-Encoding", enc)])
            gwlib.check_error_response(msg, st, hd, rb, status, [msg])
            assert hd.get("connection") != "close", (msg, hd)
        st, _, rb = c.request("POST", INFER, gzip.compress(gwlib.infer_body(ROW)),
                              [("Content-Encoding", "gzip")])
        assert st == 200
        gwlib.check_infer_response(rb, model, ROW)
    gwlib.assert_codes_moved(g.metrics_port, before, "http/1.1",
                             {"400": len(cases), "200": 1}, "h2", others=False)
    assert_alive(g)


def test_good_member_then_bomb_member_is_413(g, bomb):
    """The cap counts every gzip member together: a small valid member
    followed by a bomb member cannot reset it."""
    body = gzip.compress(b" " * 1000) + bomb
    st, hd, rb = gwlib.h1_request(g.port, "POST", INFER, body, [("Content-Encoding", "gzip")])
    gwlib.check_error_response("member bomb", st, hd, rb, 413, ["once decompressed"])


def test_nested_gzip_is_not_unwrapped(g):
    """gzip inside gzip (the classic nested bomb) is decoded once: what
    comes out is gzip bytes, not JSON, so 400; stacking codings is 415."""
    inner = gzip.compress(b" " * (4 << 20), 9)
    outer = gzip.compress(inner, 9)
    st, hd, rb = gwlib.h1_request(g.port, "POST", INFER, outer, [("Content-Encoding", "gzip")])
    assert st == 400, rb[:200]
    st, hd, rb = gwlib.h1_request(g.port, "POST", INFER, outer,
                                  [("Content-Encoding", "gzip, gzip")])
    gwlib.check_error_response("stacked", st, hd, rb, 415, ["one coding at most"])
