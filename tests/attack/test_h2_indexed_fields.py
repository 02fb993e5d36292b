"""HPACK-indexed fields and the gateway's verdict memo (gateway/net/h2.c,
issue 18): h2check's verdict on the field at each position of a header
block is kept per connection while the field's buffers live, and a field
that comes again as the same HPACK table entry is not read again.  What a
kept verdict must never do is let through what a fresh reading refuses:
a duplicate pseudo-header, a pseudo-header after a regular field, a field
that was malformed, a pseudo-header in trailers, a body that does not
match an indexed content-length.  Every request below goes on ONE
connection (the memo is the connection's), each refused stream must be
reset with PROTOCOL_ERROR, each good one answered with its right body.
Bounded: one connection, a few dozen streams."""
import json
import struct
import time

import hpack
import pytest

import gwlib
from attacklib import (DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, RST_STREAM, RawH2,
                       assert_alive, crash_note, frame, hpack_int, hpack_str)

HEALTH = "/v2/health/live"
INFER = "/v2/models/digits/infer"
ROWS = __import__("numpy").linspace(0.0, 16.0, 64).reshape(1, 64)
BODY = gwlib.infer_body(ROWS)
BODY = BODY.encode() if isinstance(BODY, str) else BODY


class Encoder:
    """A header block writer that mirrors the gateway's HPACK table: each
    field goes in as a literal with incremental indexing (new name) the
    first time (its name from the static table with static_names, as
    real encoders do), as an indexed field (RFC 7541 §6.1) every time after."""

    # RFC 7541 Appendix A: names a real encoder takes from the static table
    # (the gateway then gets the same name buffer for every value)
    STATIC_NAMES = {b":authority": 1, b":method": 2, b":path": 4, b":scheme": 6,
                    b"accept": 19, b"content-length": 28, b"content-type": 31,
                    b"user-agent": 58}

    def __init__(self, static_names=False):
        self.table = []     # newest first: dynamic index 62 + position
        self.static_names = static_names

    def field(self, name, value):
        key = (name.encode() if isinstance(name, str) else name,
               value.encode() if isinstance(value, str) else value)
        if key in self.table:
            return hpack_int(62 + self.table.index(key), 7, 0x80)
        self.table.insert(0, key)
        assert sum(len(n) + len(v) + 32 for n, v in self.table) < 4096, "table would evict"
        if self.static_names and key[0] in self.STATIC_NAMES:
            return hpack_int(self.STATIC_NAMES[key[0]], 6, 0x40) + hpack_str(key[1])
        return b"\x40" + hpack_str(key[0]) + hpack_str(key[1])

    def block(self, fields):
        return b"".join(self.field(n, v) for n, v in fields)


def get_fields(path=HEALTH):
    return [(":method", "GET"), (":scheme", "http"), (":path", path),
            (":authority", "127.0.0.1"), ("user-agent", "memo-test/1"), ("accept", "*/*")]


class Conn:
    """One connection; each call sends a request on the next odd stream and
    returns what that stream got: ("rst", code) or ("status", N, body)."""

    def __init__(self, gw, static_names=False):
        self.gw = gw
        self.h = RawH2(gw.port, timeout=10)
        self.enc = Encoder(static_names)
        self.dec = hpack.Decoder()
        self.dec.max_allowed_table_size = 65536
        self.sid = -1

    def close(self):
        self.h.close()

    def send(self, fields, body=None, trailers=None):
        self.sid += 2
        sid = self.sid
        end = END_STREAM if body is None and trailers is None else 0
        wire = frame(HEADERS, END_HEADERS | end, sid, self.enc.block(fields))
        if body is not None:
            wire += frame(DATA, 0 if trailers else END_STREAM, sid, body)
        if trailers is not None:
            wire += frame(HEADERS, END_HEADERS | END_STREAM, sid, self.enc.block(trailers))
        self.h.send(wire)
        return self.wait(sid)

    def wait(self, sid, timeout=10.0):
        status, body = None, b""
        deadline = time.monotonic() + timeout
        while not self.h.eof and time.monotonic() < deadline:
            for ftype, flags, fsid, p in self.h.pump(deadline - time.monotonic()):
                if ftype == HEADERS:
                    fields = self.dec.decode(p)   # every block: the table stays in step
                    if fsid == sid:
                        status = int(dict(fields)[":status"])
                elif ftype == DATA and fsid == sid:
                    body += p
                    if flags & END_STREAM:
                        return ("status", status, body)
                elif ftype == RST_STREAM and fsid == sid:
                    return ("rst", struct.unpack(">I", p[:4])[0])
                elif ftype == GOAWAY:
                    return ("goaway", struct.unpack(">I", p[4:8])[0])
        return ("none", status)


@pytest.fixture(params=[False, True], ids=["new-names", "static-names"])
def conn(module_gw, request):
    c = Conn(module_gw("h2memo", threads=1), static_names=request.param)
    yield c
    c.close()
    assert_alive(c.gw)


def assert_health(got, gw):
    assert got[:2] == ("status", 200) and json.loads(got[2]) == {"live": True}, \
        f"{got}{crash_note(gw)}"


def assert_reset(got, gw, what):
    assert got == ("rst", 1), f"{what}: got {got}, expected a PROTOCOL_ERROR reset{crash_note(gw)}"


def test_indexed_request_served_like_literal(conn):
    """The same request as literals, then every field indexed (the memo's
    case), many times: each answered, with the right body."""
    for _ in range(5):
        assert_health(conn.send(get_fields()), conn.gw)


def test_duplicate_pseudo_header_from_memo(conn):
    """:method at position 6 is kept from the first such request; coming
    again there (a verdict from the memo) it is still a duplicate."""
    assert_health(conn.send(get_fields()), conn.gw)
    dup = get_fields() + [(":method", "GET")]
    for i in range(3):
        assert_reset(conn.send(dup), conn.gw, f"duplicate :method, try {i}")
    assert_health(conn.send(get_fields()), conn.gw)


def test_pseudo_after_regular_from_memo(conn):
    """:authority after user-agent, then the same fields indexed: refused
    each time, though each verdict at each position was kept."""
    late = [(":method", "GET"), (":scheme", "http"), (":path", HEALTH),
            ("user-agent", "memo-test/1"), (":authority", "127.0.0.1")]
    for i in range(3):
        assert_reset(conn.send(late), conn.gw, f"pseudo-header after a regular one, try {i}")
    assert_health(conn.send(get_fields()), conn.gw)


def test_malformed_field_indexed_again(conn):
    """A malformed field enters the HPACK table all the same (the decoder
    keeps it); referring to it again is refused again."""
    assert_health(conn.send(get_fields()), conn.gw)
    for name, value in (("x-bad", "a\x01b"), ("X-Upper", "1"), ("connection", "close"),
                        ("te", "gzip"), ("x-sp", " lead")):
        bad = get_fields() + [(name, value)]
        for i in range(3):
            assert_reset(conn.send(bad), conn.gw, f"{name}: {value!r}, try {i}")
    assert_health(conn.send(get_fields()), conn.gw)


def test_memo_position_changes_meaning(conn):
    """The same fields in another order: what each position held before
    does not leak into the new verdicts (order rules still hold, the
    request is still answered when it is well-formed)."""
    f = get_fields()
    assert_health(conn.send(f), conn.gw)
    swapped = [f[1], f[0], f[3], f[2]] + f[4:]
    assert_health(conn.send(swapped), conn.gw)
    assert_reset(conn.send(f[4:] + f[:4]), conn.gw, "every pseudo-header after the regular ones")
    assert_health(conn.send(f), conn.gw)


def test_pseudo_header_in_trailers_indexed(conn, model):
    """A pseudo-header in trailers, as an indexed field whose verdict was
    kept from a header block: refused."""
    post = [(":method", "POST"), (":scheme", "http"), (":path", INFER),
            (":authority", "127.0.0.1"), ("content-type", "application/json")]
    got = conn.send(post, body=BODY)
    assert got[:2] == ("status", 200), f"{got}{crash_note(conn.gw)}"
    gwlib.check_infer_response(got[2], model, ROWS)
    assert_reset(conn.send(post, body=BODY, trailers=[(":authority", "127.0.0.1")]),
                 conn.gw, "indexed :authority in trailers")


def test_indexed_content_length(conn, model):
    """content-length indexed: the kept value is the one checked against
    each body (right length answered with the model's output, checked
    against the reference; a wrong length reset)."""
    post = [(":method", "POST"), (":scheme", "http"), (":path", INFER),
            (":authority", "127.0.0.1"), ("content-type", "application/json"),
            ("content-length", str(len(BODY)))]
    for i in range(3):
        got = conn.send(post, body=BODY)
        assert got[:2] == ("status", 200), f"try {i}: {got}{crash_note(conn.gw)}"
        gwlib.check_infer_response(got[2], model, ROWS)
        assert_reset(conn.send(post, body=BODY[:-1]), conn.gw, f"short body, try {i}")
        assert_reset(conn.send(post, body=BODY + b" "), conn.gw, f"long body, try {i}")


def test_values_alternating_under_one_name(conn):
    """Two :path values (both HPACK table entries, with the static name
    when the encoder uses it) take turns at the same position: each request
    is answered for its own path, never for the one kept before."""
    live = get_fields(HEALTH)
    ready = get_fields("/v2/health/ready")
    meta = get_fields("/v2/models/digits")
    for i in range(3):
        assert_health(conn.send(live), conn.gw)
        got = conn.send(ready)
        assert got[:2] == ("status", 200) and json.loads(got[2]) == {"ready": True}, \
            f"try {i}: {got}{crash_note(conn.gw)}"
        got = conn.send(meta)
        assert got[:2] == ("status", 200) and json.loads(got[2])["name"] == "digits", \
            f"try {i}: {got}{crash_note(conn.gw)}"
