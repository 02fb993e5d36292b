"""HTTP/2 attacks (issue 9): the request crash over h2 (1), PING and
SETTINGS floods from a client that never reads (4), HPACK CPU
amplification (5), GOAWAY before closing on a fatal error (17), and the
attacks 8fad295 already survived, kept so they stay survived: rapid reset,
CONTINUATION flood, unknown and oversized frames.  Frames are written by
hand (attacklib.RawH2) where a conforming library would refuse to send
them.  Bounded in frames, bytes and seconds; the process must survive."""
import json
import socket
import struct
import time

import hpack
import pytest

import attacklib
import gwlib
from attacklib import (ACK, CONTINUATION, DATA, END_HEADERS, END_STREAM, H2_ERRORS,
                       HEADERS, PADDED, PING, RST_STREAM, SETTINGS, ROW, RawH2, assert_alive,
                       crash_note, describe_missing, frame, goaway_of, hpack_request)
from gwlib import INFER


@pytest.fixture
def gw(module_gw):
    """The module's gateway (max_header_bytes 16384, max_body_bytes 65536,
    max_concurrent_streams 128), restarted if an earlier test killed it."""
    return module_gw("h2atk")


def _code(c):
    return f"{c} ({H2_ERRORS.get(c, '?')})"


# ---------------------------------------- 1. bad priority / objective -------

BAD_OBJECTIVE = [
    ([("x-priority", "abc")], None, "x-priority"),
    ([("x-priority", "-1")], None, "x-priority"),
    ([("x-slo-ms", "abc")], None, "x-slo-ms"),
    ([], {"priority": "high"}, "parameters.priority"),
    ([], {"timeout": -5}, "parameters.timeout"),
    ([], {"priority": 1.5}, "parameters.priority"),
]


def test_bad_objective_over_h2(gw, model):
    """Defect 1 over HTTP/2 (8fad295 already answered 400 here): every bad
    case as a stream on one connection, interleaved with good requests."""
    with gwlib.H2Client(gw.port, timeout=10) as c:
        plan = []
        for headers, params, field in BAD_OBJECTIVE:
            doc = gwlib.infer_doc(ROW)
            if params is not None:
                doc["parameters"] = params
            sid = c.request("POST", INFER, json.dumps(doc).encode(),
                            [gwlib.JSON_CT] + headers, flush=False)
            plan.append((sid, 400, field))
            plan.append((c.request("POST", INFER, gwlib.infer_body(ROW), [gwlib.JSON_CT],
                                   flush=False), 200, None))
        c._flush()
        c.wait([s for s, _, _ in plan])
        for sid, want, field in plan:
            r = c.streams[sid]
            assert r.status == want, f"stream {sid}: {r}, expected {want}"
            if field:
                assert field in attacklib.error_text(bytes(r.body)), r
            else:
                gwlib.check_infer_response(bytes(r.body), model, ROW)
    assert_alive(gw)


# -------------------------------------------- 4. floods, never reading ------

FLOOD_RSS_BOUND_MIB = 64


def _flood(g, unit, max_bytes=150e6, max_s=10.0):
    """Send unit repeatedly on a fresh h2 connection that never reads, until
    max_bytes / max_s, until our sends block for 2 s (the gateway stopped
    reading), the connection is closed, or the gateway's RSS grew past the
    bound.  (sent bytes, how it ended, RssPeak, the connection)."""
    h = RawH2(g.port)
    rss = attacklib.RssPeak(g.proc.pid)
    sent, end = attacklib.flood(h.sock, unit, rss, FLOOD_RSS_BOUND_MIB, max_s, max_bytes)
    return sent, end, rss, h


@pytest.mark.parametrize("kind", ["ping", "settings"])
def test_control_frame_flood_without_reading(gw, model, kind):
    """Defect 4: PINGs (or empty SETTINGS) as fast as the socket takes them,
    never reading the ACKs.  8fad295 queued every ACK in an unbounded
    output buffer (200 MB of PINGs: +190 MiB RSS in 1.5 s), so nghttp2's
    own ACK-flood guard never fired.  Expected: RSS growth below 64 MiB,
    and the gateway stops reading (our sends block) or closes the
    connection (GOAWAY ENHANCE_YOUR_CALM is fine)."""
    if kind == "ping":
        unit = b"".join(frame(PING, 0, 0, b"%08d" % i) for i in range(4096))
    else:
        unit = frame(SETTINGS, 0, 0) * 8192
    with attacklib.Bystander(gw, model, max_requests=300, pause=0.05) as by:
        sent, end, rss, h = _flood(gw, unit)
        try:
            assert rss.growth_mib < FLOOD_RSS_BOUND_MIB, (
                f"{kind} flood: gateway RSS grew {rss.growth_mib:.0f} MiB (bound "
                f"{FLOOD_RSS_BOUND_MIB}) after {sent / 1e6:.0f} MB of frames whose ACKs "
                f"were never read{crash_note(gw)}")
            if end == "limit":
                # neither blocked nor closed yet: maybe the gateway closes now
                h.sock.setblocking(True)
                closed = h.read_to_eof(timeout=5)
                assert closed, f"{kind} flood: {sent / 1e6:.0f} MB read without pausing or " \
                               f"closing the connection"
        finally:
            h.close()
    by.stop()
    assert_alive(gw)
    by.assert_served()


# ------------------------------------------------ 5. HPACK amplification ----

HPACK_FRAMES = 300
# 8fad295 on the 2-core test machine: 1.37 s of CPU per 100 of these frames
# (~14 ms each; the issue measured ~42 ms on its machine), so ~4 s for 300,
# mostly in nghttp2_check_header_value: every reference to the 4 KB entry is
# a 4 KB header value checked and handed to the gateway.
# Once a stream is past max_header_bytes its remaining fields are skipped
# (RST_STREAM) and repeated offences end the session: 0.02-0.05 s for the
# 300 on either engine (AMD EPYC, 2 cores).  The native engine once took
# 0.69 s (1.66 s under ASan): after it ended the session from a field
# callback it kept handing over the block's other 12,000 fields, each an
# offence logged again.  0.5 s catches that and leaves ASan its margin.
HPACK_CPU_BOUND_S = 0.5


def _amplified_headers(sid):
    """A ~16 KB HEADERS frame: a request, one 4000-byte field inserted into
    the dynamic table (literal with incremental indexing, new name), then
    one-byte references to it (index 62, the newest entry) to the end of
    the frame: ~12,000 x 4 KB = ~48 MB of header list per frame."""
    block = bytearray(hpack_request("GET", "/v2/health/live"))
    block += b"\x40" + attacklib.hpack_str("x-a") + attacklib.hpack_str(b"a" * 4000)
    block += b"\xbe" * (16384 - len(block))
    return frame(HEADERS, END_HEADERS | END_STREAM, sid, bytes(block))


def test_hpack_amplification_cpu_bounded(gw, model):
    """Defect 5: 300 HEADERS frames of references to one 4 KB table entry,
    new connections whenever the gateway closes one.  The gateway's CPU
    time (all threads, /proc/PID/stat) for all of them stays under
    HPACK_CPU_BOUND_S; the bystander is served meanwhile."""
    pid = gw.proc.pid
    frames_sent, conns, goaways = 0, 0, []
    with attacklib.Bystander(gw, model, max_requests=300, pause=0.05) as by:
        cpu0 = attacklib.cpu_seconds(pid)
        t0 = time.monotonic()
        while frames_sent < HPACK_FRAMES and time.monotonic() - t0 < 30:
            h = RawH2(gw.port, timeout=10)
            conns += 1
            sid = 1
            try:
                while frames_sent < HPACK_FRAMES:
                    h.send(_amplified_headers(sid))
                    frames_sent += 1
                    sid += 2
                    if sid % 20 == 1 and not h.ping_ack(timeout=20):
                        break  # closed (or hopelessly slow): reconnect
                h.ping_ack(timeout=20)  # wait until the gateway has processed them
            except OSError:
                pass
            finally:
                g = goaway_of(h.frames)
                if g:
                    goaways.append(g[1])
                h.close()
        cpu = attacklib.cpu_seconds(pid) - cpu0
    by.stop()
    print(f"\nHPACK amplification: {frames_sent} frames on {conns} connections cost "
          f"{cpu:.2f} s of gateway CPU; GOAWAY codes {goaways}")
    assert frames_sent == HPACK_FRAMES, f"only {frames_sent} frames sent in 30 s{crash_note(gw)}"
    assert cpu < HPACK_CPU_BOUND_S, (
        f"{frames_sent} amplified HEADERS frames cost the gateway {cpu:.2f} s of CPU "
        f"(bound {HPACK_CPU_BOUND_S} s; {conns} connections, GOAWAYs {goaways})")
    assert_alive(gw)
    by.assert_served()


# ---------------------------------------------- 17. GOAWAY before closing ---

def _continuation_burst():
    """HEADERS without END_HEADERS and 20 small CONTINUATIONs, also without:
    nghttp2 (Debian's CVE-2024-28182 fix) gives up after a few with a fatal
    error.  Small, so the gateway reads it all at once and a close cannot
    turn into a reset that hides the GOAWAY."""
    out = frame(HEADERS, END_STREAM, 1, hpack_request("GET", "/v2/health/live"))
    for i in range(20):
        out += frame(CONTINUATION, 0, 1, b"\x00" + attacklib.hpack_str(f"x-c{i}") +
                     attacklib.hpack_str("v"))
    return out


FATAL = [
    ("data-on-stream-0", lambda: frame(DATA, 0, 0, b"x"), {1}),
    ("bad-padding", lambda: frame(HEADERS, PADDED | END_HEADERS | END_STREAM, 1,
                                  bytes([200]) + hpack_request("GET", "/v2/health/live")), {1}),
    # only the 9-byte header of a 20000-byte PING (max frame size 16384)
    ("oversized-frame", lambda: bytes([0, 0x4E, 0x20, PING, 0, 0, 0, 0, 0]), {6}),
    ("continuation-flood", _continuation_burst, None),
]


@pytest.mark.parametrize("make,codes", [(m, c) for _, m, c in FATAL], ids=[f[0] for f in FATAL])
def test_fatal_error_sends_goaway(gw, make, codes):
    """Defect 17: a connection ended for a protocol error gets a GOAWAY
    naming the error before the close.  8fad295 sent it for errors nghttp2
    handles itself, but closed silently on the fatal ones mem_recv returns
    (e.g. too many CONTINUATION frames).  codes: the acceptable error
    codes (None: any error, not NO_ERROR)."""
    with RawH2(gw.port, timeout=5) as h:
        assert h.read_until(lambda f: f[0] == SETTINGS and not f[1] & ACK, 3), \
            "no SETTINGS from the gateway"
        h.send(make())
        closed = h.read_to_eof(timeout=5)
        ga = goaway_of(h.frames)
    assert closed, "the connection was not closed after a connection error"
    assert ga is not None, f"closed without GOAWAY; frames seen (type, flags, stream): " \
                           f"{[(f[0], f[1], f[2]) for f in h.frames]}"
    if codes is None:
        assert ga[1] != 0, "GOAWAY with NO_ERROR for a protocol error"
    else:
        assert ga[1] in codes, f"GOAWAY error {_code(ga[1])}, expected " \
                               f"{[_code(c) for c in codes]}"
    assert_alive(gw)


# ------------------------------------------------- attacks that pass ------

def _status_of(h, sid, timeout=5.0):
    """:status of the response HEADERS on stream sid (None if none came)."""
    f = h.read_until(lambda f: f[0] == HEADERS and f[2] == sid, timeout)
    if f is None:
        return None
    return dict(hpack.Decoder().decode(f[3])).get(":status")


def test_unknown_frame_types_are_ignored(gw):
    """Unknown frame types (RFC 9113 §4.1) on stream 0 and on an idle
    stream are ignored: the connection keeps working."""
    with RawH2(gw.port, timeout=5) as h:
        h.send(frame(0xFA, 0, 0, b"x" * 100) + frame(0xFB, 0xFF, 7, b"y" * 50))
        assert h.ping_ack(timeout=5), f"no PING ACK after unknown frames: {h.frames}"
        h.send(frame(HEADERS, END_HEADERS | END_STREAM, 1,
                     hpack_request("GET", "/v2/health/live")))
        assert _status_of(h, 1) == "200"
        assert goaway_of(h.frames) is None, goaway_of(h.frames)
    assert_alive(gw)


def test_rapid_reset(gw, model):
    """HEADERS + DATA of an inference immediately followed by RST_STREAM,
    3000 streams on one connection (CVE-2023-44487 pattern): memory
    bounded, the bystander served, the gateway alive; it may end the
    connection (GOAWAY) or keep answering PINGs."""
    body = gwlib.infer_body(ROW)
    enc = hpack_request("POST", INFER, extra=[("content-type", "application/json"),
                                              ("content-length", str(len(body)))])
    rss = attacklib.RssPeak(gw.proc.pid)
    with attacklib.Bystander(gw, model, max_requests=300, pause=0.05) as by:
        with RawH2(gw.port, timeout=10) as h:
            sid, closed = 1, False
            for batch in range(30):
                wire = b""
                for _ in range(100):
                    wire += frame(HEADERS, END_HEADERS, sid, enc) + \
                        frame(DATA, END_STREAM, sid, body) + \
                        frame(RST_STREAM, 0, sid, (8).to_bytes(4, "big"))
                    sid += 2
                try:
                    h.send(wire)
                except OSError:
                    closed = True
                    break
                h.pump(0.001)  # read a little so our own sends never block on ACKs
                rss.sample()
            if not closed:
                ok = h.ping_ack(timeout=10)
                ga = goaway_of(h.frames)
                assert ok or ga is not None, "neither PING ACK nor GOAWAY after rapid reset"
            rss.sample()
    by.stop()
    assert rss.growth_mib < 32, f"RSS grew {rss.growth_mib:.0f} MiB{crash_note(gw)}"
    assert_alive(gw)
    by.assert_served()


def _answers(h, model):
    """(status by stream, the streams whose 200 carried the reference
    probabilities) of what h read: headers decoded in order with one HPACK
    decoder, bodies gathered per stream."""
    dec, status, body = hpack.Decoder(), {}, {}
    for ftype, _, sid, p in h.frames:
        if ftype == HEADERS:
            status[sid] = dict(dec.decode(p)).get(":status")
        elif ftype == DATA and sid:
            body[sid] = body.get(sid, b"") + p
    good = set()
    for sid, st in status.items():
        if st == "200" and sid in body:
            gwlib.check_infer_response(body[sid], model, ROW)
            good.add(sid)
    return status, good


@pytest.mark.parametrize("end", ["protocol_error", "tcp_reset"])
def test_inference_then_gone_in_one_read(gw, model, end):
    """16 inferences and, in the same packet, the connection's end: a
    connection error (DATA on stream 0) or a TCP reset right after the
    send, 200 connections.  Their batches run inline and are answered
    within the read that carried them (server.c conn_answers_now,
    loop_release) while the connection is closing or gone: every answer
    that arrives is a 200 with the reference probabilities, memory stays
    bounded, the bystander is served, the gateway stays up."""
    body = gwlib.infer_body(ROW)
    enc = hpack_request("POST", INFER, extra=[("content-type", "application/json"),
                                              ("content-length", str(len(body)))])
    reqs = b"".join(frame(HEADERS, END_HEADERS, sid, enc) + frame(DATA, END_STREAM, sid, body)
                    for sid in range(1, 33, 2))
    rss = attacklib.RssPeak(gw.proc.pid)
    goaways = 0
    with attacklib.Bystander(gw, model, max_requests=300, pause=0.05) as by:
        for _ in range(200):
            with RawH2(gw.port, timeout=10) as h:
                if end == "protocol_error":
                    h.send(reqs + frame(DATA, 0, 0, b"x"))
                    assert h.read_to_eof(timeout=10), "connection not closed"
                    ga = goaway_of(h.frames)
                    assert ga is not None and ga[1] == 1, f"GOAWAY {ga}, not PROTOCOL_ERROR"
                    goaways += 1
                    status, good = _answers(h, model)  # often none: the session ended
                    bad = {s: st for s, st in status.items() if s not in good}
                    assert not bad, f"answers other than a right 200: {bad}"
                else:
                    h.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      struct.pack("ii", 1, 0))
                    h.send(reqs)
            rss.sample()
    by.stop()
    assert rss.growth_mib < 32, f"RSS grew {rss.growth_mib:.0f} MiB{crash_note(gw)}"
    assert_alive(gw)
    by.assert_served()
    if end == "protocol_error":
        assert goaways == 200


def test_continuation_flood_closed_memory_bounded(gw, model):
    """A HEADERS frame without END_HEADERS, then 16 KB CONTINUATION frames
    of header fields forever (up to 2000 frames / 32 MB or 5 s): the
    connection is closed and memory stays bounded (CVE-2024-28182)."""
    lit = b"\x00" + attacklib.hpack_str("x-cont") + attacklib.hpack_str("v" * 100)
    cont = frame(CONTINUATION, 0, 1, lit * (16000 // len(lit)))
    rss = attacklib.RssPeak(gw.proc.pid)
    with attacklib.Bystander(gw, model, max_requests=200, pause=0.05) as by:
        with RawH2(gw.port, timeout=5) as h:
            h.send(frame(HEADERS, END_STREAM, 1, hpack_request("GET", "/v2/health/live")))
            t0, n, closed = time.monotonic(), 0, False
            while n < 2000 and time.monotonic() - t0 < 5:
                try:
                    h.send(cont)
                except OSError:
                    closed = True
                    break
                n += 1
                rss.sample()
            closed = closed or h.read_to_eof(timeout=5)
        rss.sample()
    by.stop()
    assert closed, f"connection still open after {n} CONTINUATION frames without END_HEADERS"
    assert rss.growth_mib < 32, f"RSS grew {rss.growth_mib:.0f} MiB{crash_note(gw)}"
    assert_alive(gw)
    by.assert_served()


def test_declared_bodies_reserve_bounded(gw_factory, model):
    """Room for a declared body is reserved at its first DATA (one block
    the parser reads in place): 120 streams on one connection each
    declaring an 8 MiB body and sending one byte must not make the gateway
    reserve 1 GiB.  The connection's open streams reserve at most half its
    window (16 MiB here, max_body_bytes 32 MiB): its address space (VmSize:
    reserved room is not resident until written, so RSS would not tell)
    grows by far less than the declared total; then a real upload of the
    same size on the same connection, cut into odd-sized frames, gets the
    right answer."""
    g = attacklib.start_gateway(gw_factory, "resv", max_body_bytes=32 << 20)
    note = describe_missing(g)
    declared = 8 << 20
    enc = hpack_request("POST", INFER, extra=[("content-type", "application/json"),
                                              ("content-length", str(declared))])
    try:
        base = attacklib.vm_kb(g.proc.pid)
        with RawH2(g.port, settings={"s4": 1 << 30}, timeout=10) as h:
            # the connection window: 32 MiB opened by a WINDOW_UPDATE is ours
            # to use; one byte a stream stays far inside it
            wire = b"".join(frame(HEADERS, END_HEADERS, sid, enc) + frame(DATA, 0, sid, b"{")
                            for sid in range(1, 240, 2))
            h.send(wire)
            assert h.ping_ack(timeout=10), f"no PING ACK after 120 uploads began{note}"
            grew = (attacklib.vm_kb(g.proc.pid) - base) / 1024
            assert grew < 128, (f"address space grew {grew:.0f} MiB for 120 declared 8 MiB "
                                f"bodies of one byte each{crash_note(g)}")
            # a whole body of the declared kind on a fresh stream: padded
            # JSON of exactly `declared` bytes, sent in 7777-byte frames
            body = gwlib.infer_body(ROW)
            body = body[:-1] + b" " * (declared - len(body)) + body[-1:]
            sid = 241
            wire = frame(HEADERS, END_HEADERS, sid, enc)
            for off in range(0, declared, 7777):
                piece = body[off:off + 7777]
                last = off + 7777 >= declared
                wire += frame(DATA, END_STREAM if last else 0, sid, piece)
            h.send(wire[:1 << 20])
            h.send(wire[1 << 20:])
            f = h.read_until(lambda f: f[0] == DATA and f[2] == sid and f[1] & END_STREAM or
                             (f[0] == HEADERS and f[2] == sid and f[1] & END_STREAM) or
                             f[0] == RST_STREAM and f[2] == sid, timeout=20)
            assert f is not None and f[0] == DATA, f"no answer to the 8 MiB upload{note}"
            got = b"".join(fr[3] for fr in h.frames if fr[0] == DATA and fr[2] == sid)
            gwlib.check_infer_response(got, model, ROW)
            assert h.ping_ack(timeout=5), f"the connection did not go on{note}"
    finally:
        g.kill()


def _upload_frames(sid, body, size=16384, pad_every=0):
    """body as a list of DATA frames of size bytes (every pad_every-th one
    PADDED with 7 bytes of padding), END_STREAM on the last."""
    out = []
    for k, off in enumerate(range(0, len(body), size), 1):
        piece, flags = body[off:off + size], END_STREAM if off + size >= len(body) else 0
        if pad_every and k % pad_every == 0:
            out.append(frame(DATA, flags | PADDED, sid, bytes([7]) + piece + b"\0" * 7))
        else:
            out.append(frame(DATA, flags, sid, piece))
    return out


def _answer_of(h, sid, timeout=20):
    """(the frame that ended stream sid's answer, or None; its DATA bytes),
    from the frames already read (answers may come in any order) or new."""
    def last(f):
        return f[2] == sid and (f[0] == RST_STREAM or
                                (f[0] in (DATA, HEADERS) and f[1] & END_STREAM))
    f = next((f for f in h.frames if last(f)), None) or h.read_until(last, timeout=timeout)
    return f, b"".join(fr[3] for fr in h.frames if fr[0] == DATA and fr[2] == sid)


def test_large_uploads_interleaved(gw_factory, model):
    """Large bodies land in one block each (reserved at their first DATA),
    their frames' payloads handed on as reads bring them: two uploads whose
    frames alternate on one connection, one with padded frames (gathered
    whole) among its own, are each answered right, in whatever order; a
    body running past its content-length is refused (RST_STREAM or 400)
    without touching the others; an upload the client resets halfway
    leaves the connection working for the next one."""
    g = attacklib.start_gateway(gw_factory, "direct", max_body_bytes=1 << 20)
    note = describe_missing(g)
    size = 100_000
    body = gwlib.infer_body(ROW)
    body = body[:-1] + b" " * (size - len(body)) + body[-1:]

    def head(sid, cl):
        return frame(HEADERS, END_HEADERS, sid, hpack_request(
            "POST", INFER, extra=[("content-type", "application/json"),
                                  ("content-length", str(cl))]))
    try:
        with RawH2(g.port, settings={"s4": 1 << 30}, timeout=20) as h:
            a, b = _upload_frames(1, body), _upload_frames(3, body, 9000, pad_every=3)
            wire = head(1, size) + head(3, size)
            for i in range(max(len(a), len(b))):   # interleaved, frame by frame
                wire += (a[i] if i < len(a) else b"") + (b[i] if i < len(b) else b"")
            h.send(wire)
            for sid in (1, 3):
                f, got = _answer_of(h, sid)
                assert f is not None and f[0] != RST_STREAM, f"stream {sid}: {f}{note}"
                gwlib.check_infer_response(got, model, ROW)
            # past its content-length: refused, the connection goes on
            h.send(head(5, 40_000) + b"".join(_upload_frames(5, body[:50_000])))
            f, got = _answer_of(h, 5)
            assert f is not None, f"no answer for a body past its content-length{note}"
            assert f[0] == RST_STREAM or b"content-length" in got.lower() or \
                b"error" in got, (f, got[:200])
            # reset halfway, then a whole upload on the same connection
            h.send(head(7, size) + b"".join(_upload_frames(7, body)[:3]) +
                   frame(RST_STREAM, 0, 7, (8).to_bytes(4, "big")))
            h.send(head(9, size) + b"".join(_upload_frames(9, body)))
            f, got = _answer_of(h, 9)
            assert f is not None and f[0] != RST_STREAM, f"stream 9: {f}{note}"
            gwlib.check_infer_response(got, model, ROW)
            assert h.ping_ack(timeout=5), f"the connection did not go on{note}"
        assert_alive(g)
    finally:
        g.kill()
