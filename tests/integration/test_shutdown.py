"""Graceful shutdown (SIGTERM) with requests waiting in the batch queue, and
clients that give up on queued requests (RST_STREAM, closing the socket).

The gateways here batch with max_batch 64 and a long max_queue_delay_us, so a
request that is not part of a full batch waits in the queue; the tests wait
until /metrics shows the queue depth they expect (never a sleep) before they
act, and count rows executed afterwards."""
import socket
import threading
import time

import pytest

import gwlib
from gwlib import INFER, H1Conn, H2Client, check_infer_response, infer_body, metric

DELAY_US = 10_000_000  # the most max_queue_delay_us allows: queued until we act


def _rows_total(g, via="h1"):
    return metric(gwlib.read_metrics(g.metrics_port, via), "infergw_backend_rows_total", backend="cpu0")


def _depth(g):
    return metric(gwlib.read_metrics(g.metrics_port), "infergw_queue_depth", backend="cpu0",
                  model="digits")


def _wait_depth(g, want, timeout=10.0):
    """Poll /metrics until digits' queue on cpu0 holds exactly want requests;
    assert it does (timeout only bounds a failing test)."""
    deadline = time.monotonic() + timeout
    while True:
        d = _depth(g)
        if d == want:
            return
        assert time.monotonic() < deadline, f"queue depth {d}, expected {want}"
        time.sleep(0.02)


class H1Worker(threading.Thread):
    """One HTTP/1.1 request on its own socket; `sent` is set once it is out."""

    def __init__(self, port, rows, rid):
        super().__init__(daemon=True)
        self.port, self.rows, self.rid = port, rows, rid
        self.sent = threading.Event()
        self.result = None
        self.error = None
        self.done_at = None

    def run(self):
        try:
            with H1Conn(self.port, timeout=30) as c:
                c.send(H1Conn.build("POST", INFER, infer_body(self.rows, id=self.rid),
                                    [("Content-Type", "application/json")], self.port))
                self.sent.set()
                self.result = c.read_response()
                self.done_at = time.monotonic()
        except Exception as e:  # reported by the test
            self.error = e
            self.sent.set()


def _refused(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
    except ConnectionRefusedError:
        return True
    s.close()
    return False


def test_sigterm_finishes_queued_requests(gw_factory, model, heldout):
    x, _ = heldout
    # Queued requests wait out the batch delay within the grace period (the
    # scheduler drains without waiting only once the loops stopped): 3 s,
    # well inside the 10 s grace, is the margin for reading all 60.
    g = gw_factory("shut", max_batch=64, max_queue_delay_us=3_000_000, shutdown_grace_ms=10000)
    # 2 h2 connections x 24 streams + 12 HTTP/1.1 sockets = 60 one-row requests:
    # fewer rows than max_batch, so all of them wait for the batch delay.
    h2s = [H2Client(g.port, timeout=30) for _ in range(2)]
    plan = []
    try:
        for ci, c in enumerate(h2s):
            for k in range(24):
                i = ci * 24 + k
                plan.append((c, i, c.request("POST", INFER, infer_body(x[i:i + 1], id=f"h2-{i}"),
                                             [gwlib.JSON_CT], flush=False)))
            c._flush()
        workers = [H1Worker(g.port, x[100 + k:101 + k], f"h1-{k}") for k in range(12)]
        for w in workers:
            w.start()
        for w in workers:
            assert w.sent.wait(10), "HTTP/1.1 worker could not send"
        _wait_depth(g, 60)  # every request queued: none can have been answered
        early = [w.rid for w in workers if w.done_at is not None]
        assert not early, f"answered before SIGTERM, so not in flight: {early}"
        t_term = time.monotonic()
        g.terminate()

        for c in h2s:
            c.wait()
        for c, i, sid in plan:
            r = c.streams[sid]
            assert r.status == 200, (i, r)
            check_infer_response(bytes(r.body), model, x[i:i + 1], id=f"h2-{i}")
        for w in workers:
            w.join(timeout=20)
            assert not w.is_alive() and w.error is None, (w.rid, w.error)
            st, hd, body = w.result
            assert st == 200, (w.rid, body)
            check_infer_response(body, model, w.rows, id=w.rid)
        # each h2 connection is told GOAWAY, naming our last stream as processed,
        # and then closed
        for c in h2s:
            c.wait_eof(timeout=10)
            assert c.goaway is not None, "no GOAWAY before the connection closed"
            assert c.goaway.error_code == 0, c.goaway
            assert c.goaway.last_stream_id >= max(s for s in c.streams), c.goaway
        rc = g.wait(timeout=10)
        took = time.monotonic() - t_term
    finally:
        for c in h2s:
            c.close()
    print(f"\nexit {rc} {took:.2f}s after SIGTERM")
    assert rc == 0, g.log()[-2000:]
    assert "grace period over" not in g.log()
    assert _refused(g.port), "a new connection after shutdown was accepted"


def test_sigterm_closes_idle_connections(gw_factory):
    g = gw_factory("idle", idle_timeout_ms=60000, shutdown_grace_ms=10000)
    h1 = H1Conn(g.port)
    h2c = H2Client(g.port)
    try:
        st, _, _ = h1.request("GET", "/v2/health/live")
        assert st == 200
        assert h2c.get("/v2/health/live").status == 200
        g.terminate()
        assert h1.at_eof(timeout=10), "idle HTTP/1.1 connection not closed on SIGTERM"
        h2c.wait_eof(timeout=10)
        assert h2c.goaway is not None and h2c.goaway.error_code == 0, h2c.goaway
        rc = g.wait(timeout=10)
    finally:
        h1.close()
        h2c.close()
    assert rc == 0, g.log()[-2000:]
    assert _refused(g.port)


def test_rst_stream_while_queued(gw_factory, model, heldout):
    """Streams reset while their request waits in the queue are dropped (never
    executed); the other streams on the same connection complete."""
    x, _ = heldout
    g = gw_factory("rst", max_batch=64, max_queue_delay_us=DELAY_US)
    rows0 = _rows_total(g)
    with H2Client(g.port, timeout=30) as c:
        sids = [c.request("POST", INFER, infer_body(x[i:i + 2], id=str(i)), [gwlib.JSON_CT],
                          flush=False) for i in range(12)]
        c._flush()
        _wait_depth(g, 12)
        cancelled = set(sids[1::3])
        for sid in cancelled:
            c.reset(sid)
        _wait_depth(g, 12 - len(cancelled))
        keep = [(i, s) for i, s in enumerate(sids) if s not in cancelled]
        # 2 * 8 kept rows + 48 = max_batch: the batch is cut now, not after the delay.
        fill = c.request("POST", INFER, infer_body(x[50:98], id="fill"), [gwlib.JSON_CT])
        c.wait([s for _, s in keep] + [fill])
        for i, s in keep:
            r = c.streams[s]
            assert r.status == 200, (i, r)
            check_infer_response(bytes(r.body), model, x[i:i + 2], id=str(i))
        assert c.streams[fill].status == 200, c.streams[fill]
        check_infer_response(bytes(c.streams[fill].body), model, x[50:98], id="fill")
        for s in cancelled:
            r = c.streams[s]
            assert r.status is None and not r.body, f"reset stream {s} got an answer: {r}"
        assert c.goaway is None
    want = 2 * len(keep) + 48
    executed = gwlib.wait_metrics(g.metrics_port, [(("infergw_backend_rows_total",
                                             {"backend": "cpu0"}), rows0 + want)])
    moved = metric(executed, "infergw_backend_rows_total", backend="cpu0") - rows0
    assert moved == want, (
        f"backend executed {moved} rows; expected {want} "
        f"(the {len(cancelled)} reset requests, 2 rows each, must not run)")
    assert _depth(g) == 0
    assert g.alive()
    g.terminate()
    assert g.wait(timeout=10) == 0, g.log()[-2000:]


@pytest.mark.parametrize("proto", ["h2", "http/1.1"])
def test_client_disconnect_while_queued(gw_factory, model, heldout, proto):
    x, _ = heldout
    g = gw_factory("disc", max_batch=64, max_queue_delay_us=DELAY_US)
    rows0 = _rows_total(g)
    if proto == "h2":
        c = H2Client(g.port)
        for i in range(5):
            c.request("POST", INFER, infer_body(x[i:i + 3]), [gwlib.JSON_CT])
        _wait_depth(g, 5)
        c.close()
    else:
        socks = []
        for i in range(5):
            h = H1Conn(g.port)
            h.send(H1Conn.build("POST", INFER, infer_body(x[i:i + 3]),
                                [("Content-Type", "application/json")], g.port))
            socks.append(h)
        _wait_depth(g, 5)
        for h in socks:
            h.close()
    _wait_depth(g, 0)  # abandoned: out of the queue, so they can never run
    # a new client is served correctly (a full batch: cut at once)
    with H2Client(g.port) as c:
        r = c.post(INFER, infer_body(x[60:124], id="new"))
    assert r.status == 200, r
    check_infer_response(bytes(r.body), model, x[60:124], id="new")
    ms = gwlib.wait_metrics(g.metrics_port, [(("infergw_backend_rows_total",
                                              {"backend": "cpu0"}), rows0 + 64)])
    moved = metric(ms, "infergw_backend_rows_total", backend="cpu0") - rows0
    assert moved == 64, (f"backend executed {moved} rows; expected 64 (the 5 abandoned "
                         "3-row requests must not run)")
    assert g.alive()
    g.terminate()
    assert g.wait(timeout=10) == 0, g.log()[-2000:]


def test_idle_timeout_closes_connections(gw_factory):
    """limits.idle_timeout_ms: an idle HTTP/1.1 connection is closed and an
    idle HTTP/2 connection gets GOAWAY and is closed; busy ones are not."""
    g = gw_factory("idle-to", idle_timeout_ms=400)
    h1 = H1Conn(g.port)
    h2c = H2Client(g.port)
    try:
        assert h1.request("GET", "/v2/health/live")[0] == 200
        assert h2c.get("/v2/health/live").status == 200
        assert h1.at_eof(timeout=10), "idle HTTP/1.1 connection never closed"
        h2c.wait_eof(timeout=10)
        assert h2c.goaway is not None, "idle HTTP/2 connection closed without GOAWAY"
    finally:
        h1.close()
        h2c.close()
    # a connection that keeps working past the timeout is not cut
    with H1Conn(g.port) as h1:
        t_end = time.monotonic() + 1.2
        n = 0
        while time.monotonic() < t_end:
            st, _, body = h1.request("GET", "/v2/health/live")
            assert st == 200, body
            n += 1
            time.sleep(0.1)
        assert n >= 5
    assert g.alive()


def test_h2_settings_advertise_limits(gw_factory):
    g = gw_factory("settings", max_concurrent_streams=7)
    with H2Client(g.port) as c:
        assert c.get("/v2/health/live").status == 200
        assert c.settings_seen
        assert c.conn.remote_settings.max_concurrent_streams == 7


def test_admin_job_during_drain_answered(gw_factory):
    """An admin job (here the repository index) that reaches the control
    thread after SIGTERM, while the loops drain, is answered 503 at once and
    the gateway exits well inside its grace period; it used to wait in a
    queue nobody read, holding its stream (and the drain) until the grace
    ran out, then leak."""
    grace_s = 20
    g = gw_factory("adm", shutdown_grace_ms=grace_s * 1000)
    port = g.admin_port or g.port
    with H2Client(port, timeout=30) as c:
        # the request's head now, its body only once the drain has begun:
        # the GOAWAY keeps this stream (it is below the last stream id)
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                                  (":authority", f"127.0.0.1:{port}"),
                                  (":path", "/v2/repository/index"),
                                  ("content-type", "application/json"),
                                  ("content-length", "2")])
        c.streams[sid] = gwlib.H2Resp()
        c._flush()
        before = c.get("/v2/health/live")  # the head was read before this
        assert before.status == 200
        t_term = time.monotonic()
        g.terminate()
        deadline = time.monotonic() + 10
        while c.goaway is None:
            assert not c.eof, "closed before a GOAWAY"
            c._pump(deadline)
        c.conn.send_data(sid, b"{}", end_stream=True)
        c._flush()
        r = c.wait([sid], timeout=10)[0]
        answered = time.monotonic() - t_term
        rc = g.wait(timeout=grace_s)
        took = time.monotonic() - t_term
    print(f"\nanswered {answered:.2f}s, exit {rc} {took:.2f}s after SIGTERM")
    assert r.status == 503, (r.status, bytes(r.body))
    assert "shutting down" in r.json()["error"], bytes(r.body)
    assert rc == 0, g.log()[-2000:]
    assert "grace period over" not in g.log(), g.log()[-2000:]
    assert took < grace_s / 2, took
