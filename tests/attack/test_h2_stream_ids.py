"""HTTP/2 stream ids (issue 11): a client may jump straight to stream id
2^31-1.  Closing such a connection used to scan every odd id from 1 to the
last one processed (2^30 lookups on the event loop); it now costs the
streams still open.  Bounded: three connections of two requests each."""
import time

import pytest

import attacklib
from attacklib import (END_HEADERS, END_STREAM, HEADERS, RawH2, assert_alive, crash_note,
                       frame, hpack_request)

MAX_SID = 0x7FFFFFFF
# Generous: the three closes cost microseconds now; the old scan took
# seconds of CPU per connection.
CLOSE_CPU_BOUND_S = 1.5


@pytest.fixture
def gw(module_gw):
    """One loop thread, so a probe connection is served after the closes."""
    return module_gw("h2ids", threads=1)


def _health(sid):
    return frame(HEADERS, END_HEADERS | END_STREAM, sid, hpack_request("GET", "/v2/health/live"))


def test_close_after_max_stream_id_is_cheap(gw):
    pid = gw.proc.pid
    cpu0 = attacklib.cpu_seconds(pid)
    for i in range(3):
        with RawH2(gw.port, timeout=10) as h:
            h.send(_health(1) + _health(MAX_SID))
            answered = set()
            deadline = time.monotonic() + 10
            while answered != {1, MAX_SID} and time.monotonic() < deadline and not h.eof:
                for f in h.pump(deadline - time.monotonic()):
                    if f[0] == HEADERS:
                        answered.add(f[2])
            assert answered == {1, MAX_SID}, (
                f"connection {i}: answered streams {answered} in 10 s (the loop is stuck "
                f"closing an earlier connection?){crash_note(gw)}")
    # The single loop handles the closes before this probe's PING.
    with RawH2(gw.port, timeout=60) as probe:
        assert probe.ping_ack(timeout=60), f"probe not answered{crash_note(gw)}"
    cpu = attacklib.cpu_seconds(pid) - cpu0
    print(f"\nthree connections up to stream {MAX_SID}: {cpu:.2f} s of gateway CPU")
    assert cpu < CLOSE_CPU_BOUND_S, (
        f"closing three connections that used stream id {MAX_SID} cost {cpu:.2f} s of "
        f"gateway CPU (bound {CLOSE_CPU_BOUND_S} s)")
    assert_alive(gw)


def test_priority_naming_a_closed_stream(gw):
    """Closed streams are not kept for RFC 7540 priorities (issue 18:
    nghttp2's no_closed_streams): a HEADERS or PRIORITY frame that names
    one as its parent is taken as naming the root, never an error.  Each
    stream is answered, the connection stays up, and so does the gateway."""
    import struct
    from attacklib import PRIORITY, RST_STREAM, GOAWAY
    PRIO_FLAG = 0x20
    with RawH2(gw.port, timeout=10) as h:
        h.send(_health(1))
        assert h.read_until(lambda f: f[0] == HEADERS and f[2] == 1, 10), \
            f"stream 1 not answered{crash_note(gw)}"
        # stream 3: HEADERS with a priority block, exclusive, parent 1 (closed)
        dep = struct.pack(">IB", 0x80000000 | 1, 200)
        h.send(frame(HEADERS, END_HEADERS | END_STREAM | PRIO_FLAG, 3,
                     dep + hpack_request("GET", "/v2/health/live")))
        # a PRIORITY for an idle stream 7 on closed 1, then stream 5 on 7
        h.send(frame(PRIORITY, 0, 7, struct.pack(">IB", 1, 16)))
        h.send(frame(HEADERS, END_HEADERS | END_STREAM | PRIO_FLAG, 5,
                     struct.pack(">IB", 7, 16) + hpack_request("GET", "/v2/health/live")))
        answered, bad = set(), []
        deadline = time.monotonic() + 10
        while answered != {3, 5} and not h.eof and time.monotonic() < deadline:
            for f in h.pump(deadline - time.monotonic()):
                if f[0] == HEADERS:
                    answered.add(f[2])
                elif f[0] in (RST_STREAM, GOAWAY):
                    bad.append(f)
        assert answered == {3, 5} and not bad, (answered, bad, crash_note(gw))
        assert h.ping_ack(timeout=10)
    assert_alive(gw)
