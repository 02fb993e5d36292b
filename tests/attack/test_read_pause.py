"""Reading on plain connections (issue 18): the gateway reads cleartext
sockets itself (conn_on_sock_read), with one switch for reading
(conn_set_reading, stopped lazily), an idle clock kept as a timestamp and
a linger with a fixed end.  These check what that must still do: stop
reading a client that does not read its answers (memory bounded, other
clients served), read again once it does, time out idle and slowloris
connections at the right moment, serve a half-closed client, and end a
linger 1 s after it starts however the client trickles.  Bounded in
bytes and seconds; the process must survive."""
import socket
import threading
import time

import attacklib
import gwlib
from attacklib import (assert_alive, crash_note, parse_h1_responses, peer_closed, raw_conn,
                       read_until_eof)

LIVE = gwlib.H1Conn.build("GET", "/v2/health/live")
LIVE_BODY = b'{"live":true}'
RSS_BOUND_MIB = 64


def _read_answers(s, n_req, timeout=20.0):
    """Read until n_req answers came (or EOF / timeout), each checked to
    be 200 {"live":true}; (number read, EOF seen)."""
    got, data, eof, t0 = 0, bytearray(), False, time.monotonic()
    while got < n_req and not eof and time.monotonic() - t0 < timeout:
        chunk, eof = read_until_eof(s, timeout=2.0, quiet=0.2, max_bytes=8 << 20)
        data += chunk
        resps, rest = parse_h1_responses(bytes(data))
        for i, (st, _, body) in enumerate(resps):
            assert st == 200 and body == LIVE_BODY, f"answer {got + i}: {st} {body!r}"
        got += len(resps)
        data = bytearray(rest)
    return got, eof


def _small_conn(port):
    """A TCP socket to the gateway with 64 KiB socket buffers, set before
    connecting: the kernel then holds little of what the gateway does not
    read or we do not read (loopback buffers grow to megabytes), so a
    gateway that kept reading is told apart from one that paused."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    s.settimeout(5)
    s.connect((attacklib.HOST, port))
    return s


def _wait_closed(s, limit):
    """Seconds until the gateway closed s (FIN or reset), polled; None
    when still open after limit seconds."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if peer_closed(s):
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


def test_many_connections_not_reading_pause_then_resume(module_gw, model):
    """4 connections each send 100,000 pipelined GET /v2/health/live (5 MB)
    and read nothing for 2 s: the gateway must stop reading each once its
    answers pass limits.output_buffer_bytes (RSS bounded, our sends
    block), keep serving a bystander, and, once each reads, answer every
    one of its requests in order: reading resumes, with input already
    buffered parsed without waiting for more."""
    g = module_gw("pause")
    n_req, n_conn = 100000, 4
    rss = attacklib.RssPeak(g.proc.pid)
    socks = [_small_conn(g.port) for _ in range(n_conn)]
    senders = []
    try:
        with attacklib.Bystander(g, model, max_requests=400, pause=0.05) as by:
            for s in socks:
                t = threading.Thread(target=lambda s=s: _sendall_quiet(s, LIVE * n_req),
                                     daemon=True)
                t.start()
                senders.append(t)
            t_end = time.monotonic() + 2.0
            while time.monotonic() < t_end:
                rss.sample()
                time.sleep(0.05)
            assert all(t.is_alive() for t in senders), \
                "a sender finished without anyone reading: the gateway never paused reading"
            assert rss.growth_mib < RSS_BOUND_MIB, \
                f"RSS grew {rss.growth_mib:.0f} MiB while clients did not read{crash_note(g)}"
            # All read at once: one left waiting while others are read
            # would meet limits.write_stall_timeout_ms (its answers stuck).
            results = [None] * n_conn
            readers = [threading.Thread(target=_read_into, args=(results, i, s, n_req),
                                        daemon=True) for i, s in enumerate(socks)]
            for t in readers:
                t.start()
            for t in readers:
                t.join(timeout=90)
            for i, r in enumerate(results):
                assert r is not None and r[0] == n_req, \
                    f"connection {i}: {r} answers of {n_req} (answers read, EOF){crash_note(g)}"
            for t in senders:
                t.join(timeout=10)
        by.stop()
    finally:
        for s in socks:
            s.close()
    assert_alive(g)
    by.assert_served()


def _read_into(results, i, s, n_req):
    try:
        results[i] = _read_answers(s, n_req, timeout=60.0)
    except AssertionError as e:
        results[i] = (-1, str(e)[:200])


def _sendall_quiet(s, data):
    try:
        s.sendall(data)
    except OSError:
        pass


def test_answers_sent_straight_then_queued_keep_their_order(module_gw):
    """8,000 GET /v2/models/digits/config (~900-byte answers) sent one at
    a time, 0.3 ms apart, and nothing read for a while: each request comes
    in a read of its own, so its answer is the read's last and goes
    straight from its buffer to the socket while nothing is queued.  The
    socket fills (7 MB of answers, more than the kernel holds): one such
    send is cut short or refused and its rest queued, every later answer
    queued behind it, then reading pauses.  Read at last, every answer
    arrives whole and in order, each byte-for-byte the model's config;
    memory stays bounded."""
    g = module_gw("pause")
    req = gwlib.H1Conn.build("GET", "/v2/models/digits/config")
    with raw_conn(g.port, timeout=5) as s:
        s.sendall(req)
        first, _ = read_until_eof(s, timeout=5, quiet=0.3)
    resps, rest = parse_h1_responses(first)
    assert len(resps) == 1 and resps[0][0] == 200 and rest == b"", (resps, rest)
    want = resps[0][2]
    assert b'"max_batch_size"' in want and len(want) > 500, want
    n_req = 8000
    rss = attacklib.RssPeak(g.proc.pid)
    s = _small_conn(g.port)  # the kernel holds little of the answers
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(60)

    def one_by_one():
        try:
            for _ in range(n_req):
                s.sendall(req)
                time.sleep(0.0003)
        except OSError:
            pass

    sender = threading.Thread(target=one_by_one, daemon=True)
    try:
        sender.start()
        t_end = time.monotonic() + 8
        while sender.is_alive() and time.monotonic() < t_end:
            rss.sample()
            time.sleep(0.05)
        assert rss.growth_mib < RSS_BOUND_MIB, \
            f"RSS grew {rss.growth_mib:.0f} MiB while the client did not read{crash_note(g)}"
        got, data, t0 = 0, bytearray(), time.monotonic()
        while got < n_req and time.monotonic() - t0 < 60:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
            resps, rest = parse_h1_responses(bytes(data))
            for i, (st, _, body) in enumerate(resps):
                assert st == 200 and body == want, \
                    f"answer {got + i}: {st} {body[:80]!r}{crash_note(g)}"
            got += len(resps)
            data = bytearray(rest)
        sender.join(timeout=10)
        assert got == n_req and data == b"", \
            f"{got} whole answers of {n_req}, {len(data)} bytes left over{crash_note(g)}"
    finally:
        s.close()
    assert_alive(g)


def test_half_closed_client_gets_its_answers(module_gw):
    """A client pipelines 3 requests, then shuts down writing: it gets
    its 3 answers, then EOF (not a reset, not silence)."""
    g = module_gw("pause")
    with raw_conn(g.port, timeout=5) as s:
        s.sendall(LIVE * 3)
        s.shutdown(socket.SHUT_WR)
        data, eof = read_until_eof(s, timeout=5)
    resps, rest = parse_h1_responses(data)
    assert [(st, body) for st, _, body in resps] == [(200, LIVE_BODY)] * 3, (resps, rest)
    assert eof, "half-closed connection not closed after its answers"
    assert_alive(g)


def test_requests_served_from_the_read_buffer_keep_their_order(module_gw, model):
    """Bodiless requests are served straight from the read buffer while
    nothing is buffered; anything else (a body, a chunked body, a head cut
    by the read) goes through the connection's input buffer.  One write
    mixing them, then a head split over three writes: every answer, in
    order, with the right bodies."""
    g = module_gw("pause")
    body = gwlib.infer_body(attacklib.ROW)
    post = gwlib.H1Conn.build("POST", gwlib.INFER, body, [gwlib.JSON_CT])
    chunked = (b"POST " + gwlib.INFER.encode() + b" HTTP/1.1\r\nHost: x\r\n"
               b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
               b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    ready = gwlib.H1Conn.build("GET", "/v2/health/ready")
    with raw_conn(g.port, timeout=5) as s:
        s.sendall(LIVE + LIVE + post + ready + chunked + LIVE + LIVE[:10])
        time.sleep(0.2)
        s.sendall(LIVE[10:-3])
        time.sleep(0.2)
        s.sendall(LIVE[-3:] + ready)
        data = b""
        want = 8
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            data += s.recv(65536)
            resps, _ = parse_h1_responses(data)
            if len(resps) >= want:
                break
    resps, rest = parse_h1_responses(data)
    assert [st for st, _, _ in resps] == [200] * want, (resps, rest)
    bodies = [b for _, _, b in resps]
    assert bodies[0] == bodies[1] == bodies[5] == bodies[6] == LIVE_BODY
    assert bodies[3] == bodies[7] == b'{"ready":true}'
    gwlib.check_infer_response(bodies[2], model, attacklib.ROW)
    gwlib.check_infer_response(bodies[4], model, attacklib.ROW)
    assert rest == b""
    assert_alive(g)


IDLE_MS = 800


def test_idle_timeout_counts_from_the_last_request(gw_factory):
    """limits.idle_timeout_ms runs from the last read, not from accept nor
    from the timer's first arming: a connection used at 0 and ~0.5 s is
    closed about IDLE_MS after the second request (not after the first),
    and counted as reason="idle"."""
    g = attacklib.start_gateway(gw_factory, "idle", idle_timeout_ms=IDLE_MS)
    idle0 = attacklib.metric_value(g, "infergw_connections_closed_total", reason="idle")
    with gwlib.H1Conn(g.port) as h:
        assert h.request("GET", "/v2/health/live")[0] == 200
        time.sleep(0.5)
        assert h.request("GET", "/v2/health/live")[0] == 200
        t_last = time.monotonic()
        took = _wait_closed(h.sock, IDLE_MS / 1000 + 3)
    assert took is not None, "idle connection never closed"
    since_last = time.monotonic() - t_last
    assert took >= IDLE_MS / 1000 - 0.1, \
        f"closed {took:.2f} s after the last request (idle_timeout_ms {IDLE_MS}): too early"
    assert since_last <= IDLE_MS / 1000 + 1.0, f"closed {since_last:.2f} s after the last request"
    assert attacklib.metric_value(g, "infergw_connections_closed_total",
                                  reason="idle") >= idle0 + 1
    assert_alive(g)


HEADER_MS = 1000


def test_trickled_head_gets_408_despite_reads(gw_factory):
    """A head trickled a byte every 200 ms keeps the connection's reads
    (and its idle clock) busy; limits.header_timeout_ms still answers 408
    with Connection: close about HEADER_MS after its first byte."""
    g = attacklib.start_gateway(gw_factory, "loris", idle_timeout_ms=60000,
                                limits={"header_timeout_ms": HEADER_MS})
    head = b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    with raw_conn(g.port, timeout=5) as s:
        t0 = time.monotonic()
        i = 0
        while not peer_closed(s) and time.monotonic() - t0 < HEADER_MS / 1000 + 3:
            try:
                s.send(head[i % len(head):i % len(head) + 1])
            except OSError:
                break
            i += 1
            time.sleep(0.2)
        took = time.monotonic() - t0
        data, _ = read_until_eof(s, timeout=2)
    resps, _ = parse_h1_responses(data)
    assert [r[0] for r in resps] == [408], (took, data[:200])
    assert resps[0][1].get("connection") == "close"
    assert HEADER_MS / 1000 - 0.1 <= took <= HEADER_MS / 1000 + 1.5, f"408 after {took:.2f} s"
    assert_alive(g)


def test_linger_ends_one_second_after_it_starts(module_gw):
    """After an error answer with Connection: close the gateway shuts
    down writing and reads what the client still sends, so its close does
    not reset the answer away (RFC 9112 §9.6): for 1 s.  A client that
    keeps trickling bytes must not extend that (the linger's clock was a
    read timeout re-armed by every read: such a client held the
    connection for ever).  We send a byte every 100 ms and expect the
    connection gone (a reset, or our send failing) within ~2 s."""
    g = module_gw("pause")
    with raw_conn(g.port, timeout=5) as s:
        s.sendall(b"BOGUS\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            assert chunk, f"closed before an answer: {data!r}"
            data += chunk
        assert data.startswith(b"HTTP/1.1 400"), data[:100]
        t0 = time.monotonic()
        gone = None
        s.setblocking(False)
        while time.monotonic() - t0 < 4.0:
            try:
                s.send(b"x")
                while s.recv(4096):
                    pass
            except BlockingIOError:
                pass
            except OSError:
                gone = time.monotonic() - t0
                break
            time.sleep(0.1)
    assert gone is not None, "lingering connection still open 4 s after the answer"
    assert gone <= 2.2, f"linger lasted {gone:.2f} s (should end 1 s after it starts)"
    assert_alive(g)


STALL_MS = 1500


def test_unread_answers_closed_after_write_stall(gw_factory):
    """A paused connection is not held for ever: a client that pipelines
    100,000 requests and never reads has its reads paused (output at the
    cap), then is closed limits.write_stall_timeout_ms after its answers
    stopped moving, counted as reason="write_stall"; the idle clock (60 s
    here) does not keep it, nor does the input it still has queued."""
    g = attacklib.start_gateway(gw_factory, "stall", idle_timeout_ms=60000,
                                limits={"write_stall_timeout_ms": STALL_MS})
    stall0 = attacklib.metric_value(g, "infergw_connections_closed_total", reason="write_stall")
    s = _small_conn(g.port)
    try:
        t = threading.Thread(target=_sendall_quiet, args=(s, LIVE * 100000), daemon=True)
        t.start()
        took = _wait_closed(s, STALL_MS / 1000 + 5)
    finally:
        s.close()
    assert took is not None, f"a client that never reads still connected after " \
                             f"{STALL_MS / 1000 + 5:.1f} s{crash_note(g)}"
    assert took >= STALL_MS / 1000 - 0.1, f"closed after {took:.2f} s, before the stall timeout"
    assert attacklib.metric_value(g, "infergw_connections_closed_total",
                                  reason="write_stall") >= stall0 + 1
    assert_alive(g)
