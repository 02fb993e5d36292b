"""Hostile peers against infergw-agent: oversize and truncated frames,
garbage, wrong types, unknown models, window overflow, a peer that never
reads, the connection cap.  After each attack the agent is alive and a
well-behaved connection still gets correct answers.  127.0.0.1 only;
bounded in bytes and seconds."""
import socket
import struct
import time

import msgpack
import numpy as np
import pytest

import agentlib
import attacklib
import gwlib
import slowmodel

MAX_FRAME = 65536
FRAME_TIMEOUT_MS = 500
WINDOW = 2
MAX_CONNS = 6


@pytest.fixture(scope="module")
def ref():
    return gwlib.RefModel.load()


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    d = tmp_path_factory.mktemp("atk-models")
    (d / "digits").symlink_to(gwlib.MODEL_DIR)
    slowmodel.write_slow_model(d / "slow")
    a = agentlib.Agent(tmp_path_factory.mktemp("atk-agent"), models=d, args=[
        "--threads", "1", "--max-inflight", str(WINDOW), "--max-frame", str(MAX_FRAME),
        "--frame-timeout-ms", str(FRAME_TIMEOUT_MS), "--max-connections", str(MAX_CONNS),
        "--out-cap", "65536"]).start()
    yield a
    a.stop_clean()


def rows(n, seed=0):
    return np.random.default_rng(seed).uniform(0, 16, (n, 64)).astype(np.float32)


def assert_serves(agent, ref):
    """The agent is alive and a fresh, well-behaved connection gets the
    reference values."""
    assert agent.alive(), agent.log()[-3000:]
    x = rows(3, 99)
    with agent.conn() as c:
        r = c.infer(1, "digits", [x])
    assert r["status"] == 0, r
    np.testing.assert_allclose(agentlib.output(r, 10), ref.forward(x), atol=1e-5)


def raw_frame(payload):
    return struct.pack(">I", len(payload)) + payload


def test_oversize_length_413_and_close(agent, ref):
    with agent.conn() as c:
        c.send_raw(struct.pack(">I", MAX_FRAME + 1) + b"\x80" * 16)
        m = c.recv()
        assert m["t"] == "error" and m["status"] == 413, m
        assert str(MAX_FRAME) in m["msg"]
        assert c.closed_within(5)
    assert "413" in agent.log()
    assert_serves(agent, ref)


def test_http_request_instead_of_frames(agent, ref):
    """'GET ' read as a length is ~1.2 GB: refused before anything is buffered."""
    with agentlib.Conn(agent.port) as c:
        c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        m = c.recv()
        assert m["status"] == 413, m
        assert c.closed_within(5)
    assert_serves(agent, ref)


@pytest.mark.parametrize("payload", [
    b"\xc1\xc1\xc1",                              # never-used msgpack byte
    b"\x00" * 32,                                 # not a map
    msgpack.packb([1, 2, 3]),                     # an array
    msgpack.packb({"t": "ping", "id": 1}) + b"\x00",  # bytes after the map
    b"\xdd\xff\xff\xff\xff",                      # array32 claiming 4G entries
    b"\x81\xa1t\xdb\xff\xff\xff\xf0abc",          # str32 claiming 4 GB
    b"\xdf\x00\x00\x00\x02" + b"\x91" * 2000,     # deep nesting, truncated
])
def test_not_a_msgpack_map_400_and_close(agent, ref, payload):
    """The stream cannot be trusted (docs/agent-protocol.md section 7): one
    error 400 naming the problem, then the connection closes."""
    with agent.conn() as c:
        c.send_raw(raw_frame(payload))
        m = c.recv()
        assert m["t"] == "error" and m["status"] == 400 and m["id"] == 0, m
        assert m["msg"], m
        assert c.closed_within(5)
    assert_serves(agent, ref)


@pytest.mark.parametrize("payload", [
    msgpack.packb({"t": 5, "id": 1}),             # t not a string
    msgpack.packb({"t": "bogus", "id": 1}),       # unknown type
    msgpack.packb({"t": "infer", "id": "x"}),     # id not an integer
    msgpack.packb({"t": "infer", "id": 3, "model": "digits", "slices": [{"rows": -1}],
                   "input": b""}),
    msgpack.packb({"t": "infer", "id": 4, "model": "digits",
                   "slices": [{"rows": 1, "timeout_us": 0}], "input": "text"}),
    msgpack.packb({"t": "result", "id": 5, "status": 0}),  # only an agent sends it
    msgpack.packb({"t": "ping"}),                 # no id
    msgpack.packb({"id": 1}),                     # no t
])
def test_bad_fields_400_connection_stays(agent, ref, payload):
    with agent.conn() as c:
        c.send_raw(raw_frame(payload))
        m = c.recv()
        assert m["t"] == "error" and m["status"] == 400, m
        assert m["msg"], m
        # the frame boundary is intact: the connection keeps serving
        p = c.ping(77)
        assert p["t"] == "pong" and p["id"] == 77
    assert_serves(agent, ref)


def test_wrong_types_name_the_field(agent):
    with agent.conn() as c:
        c.send_raw(raw_frame(msgpack.packb({"t": "infer", "id": 9, "model": "digits",
                                            "slices": [{"rows": "two"}], "input": b""})))
        m = c.recv()
    assert m["status"] == 400 and "rows" in m["msg"], m


def test_truncated_frame_then_silence_closed(agent, ref):
    t0 = time.monotonic()
    with agent.conn() as c:
        c.send_raw(struct.pack(">I", 100) + b"\x82" * 10)
        assert c.closed_within(FRAME_TIMEOUT_MS / 1000 + 5)
    assert time.monotonic() - t0 >= FRAME_TIMEOUT_MS / 1000 * 0.9
    assert "frame incomplete" in agent.log()
    assert_serves(agent, ref)


def test_slow_drip_frame_closed(agent):
    """A frame sent a byte at a time: its whole frame must arrive in time."""
    with agent.conn() as c:
        c.send_raw(struct.pack(">I", 64))
        closed = False
        for _ in range(40):
            try:
                c.send_raw(b"\x00")
            except OSError:
                closed = True
                break
            time.sleep(0.05)
        assert closed or c.closed_within(5)


def test_unknown_model_404(agent, ref):
    with agent.conn() as c:
        r = c.infer(5, "no-such-model", [rows(1)])
    assert r["t"] == "result" and r["status"] == 404 and "unknown model" in r["msg"], r
    assert_serves(agent, ref)


def test_window_overflow_429(agent, ref):
    with agent.conn() as c:
        c.send(*[agentlib.infer_msg(i, "slow", [rows(64, i)]) for i in (1, 2, 3)])
        got = {m["id"]: m for m in (c.recv(30) for _ in range(3))}
    assert got[3]["status"] == 429 and "window" in got[3]["msg"], got[3]
    assert got[1]["status"] == 0 and got[2]["status"] == 0
    assert_serves(agent, ref)


def test_duplicate_id_in_flight(agent):
    with agent.conn() as c:
        c.send(agentlib.infer_msg(1, "slow", [rows(64)]), agentlib.infer_msg(1, "digits",
                                                                             [rows(1)]))
        first = c.recv(30)
        second = c.recv(30)
    msgs = sorted([first, second], key=lambda m: m["t"])
    assert msgs[0]["t"] == "error" and "already in flight" in msgs[0]["msg"], msgs
    assert msgs[1]["t"] == "result" and msgs[1]["status"] == 0


def test_peer_that_never_reads_stays_bounded(agent, ref):
    """Pings and infers as fast as the socket takes them, never reading:
    the agent stops reading once its output is over the cap, the kernel
    buffers fill, and the agent's memory stays flat; then the write
    timeout closes the connection."""
    rss = attacklib.RssPeak(agent.proc.pid)
    s = socket.create_connection((agentlib.HOST, agent.port), timeout=5)
    s.sendall(agentlib.frame(agentlib.hello_msg()))
    chunk = b"".join(agentlib.frame(agentlib.ping_msg(i)) for i in range(2000))
    infer = agentlib.frame(agentlib.infer_msg(1 << 40, "digits", [rows(64)]))
    sent, t_end = 0, time.monotonic() + 3
    s.setblocking(False)
    while time.monotonic() < t_end and sent < (64 << 20):
        try:
            sent += s.send(chunk + infer)
        except BlockingIOError:
            rss.sample()
            time.sleep(0.01)
        except OSError:
            break
    rss.sample()
    s.close()
    assert rss.growth_mib < 32, f"agent RSS grew {rss.growth_mib:.1f} MiB"
    assert_serves(agent, ref)


def test_connection_cap(agent, ref):
    conns = []
    try:
        for _ in range(MAX_CONNS):
            conns.append(agent.conn())
        with agentlib.Conn(agent.port) as extra:
            m = extra.recv(5)
            assert m["t"] == "error" and m["status"] == 503 and "connection limit" in m["msg"]
            assert extra.closed_within(5)
    finally:
        for c in conns:
            c.close()
    # the slots come back
    deadline = time.monotonic() + 5
    while True:
        try:
            assert_serves(agent, ref)
            break
        except (AssertionError, EOFError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_many_connections_opened_and_dropped(agent, ref):
    for i in range(50):
        s = socket.create_connection((agentlib.HOST, agent.port), timeout=5)
        if i % 2:
            s.sendall(agentlib.frame(agentlib.hello_msg())
                      + agentlib.frame(agentlib.infer_msg(i, "digits", [rows(2)]))[:30])
        s.close()
    time.sleep(0.2)
    assert_serves(agent, ref)


def test_close_with_batches_in_flight(agent, ref):
    """The peer leaves while its batches run and wait: they are dropped or
    orphaned, never answered to a freed connection."""
    for _ in range(5):
        c = agent.conn()
        c.send(*[agentlib.infer_msg(i, "slow", [rows(64)]) for i in (1, 2)])
        c.close()
    assert_serves(agent, ref)


def token_agent(tmp_path, name, token_text):
    """A started agent serving digits with --token-file holding token_text."""
    tf = tmp_path / "agent.token"
    tf.write_text(token_text)
    d = tmp_path / "models"
    d.mkdir()
    (d / "digits").symlink_to(gwlib.MODEL_DIR)
    return agentlib.Agent(tmp_path, name, models=d,
                          args=["--threads", "1", "--token-file", str(tf)]).start()


def test_token_guessing_refused_bounded(tmp_path, ref):
    """An agent with --token-file, against a guesser: 600 connections, each
    a hello with a wrong token (every length 1..4096, random bytes, a
    prefix and an extension of the right one), or one of more than 4096
    bytes, or none: each is answered error 401 (400 for the oversized) and
    closed before the agent says its models; a token-holding connection
    opened first keeps being served the reference values throughout; the
    log's refusal lines stay rate-limited; no token (right or guessed) is
    logged; the agent is alive and exits clean."""
    import random
    token = "".join(random.Random(3).choice("0123456789abcdef") for _ in range(64))
    a = token_agent(tmp_path, "tokatk", token + "\n")
    try:
        good = agentlib.Conn(a.port)
        good.send({**agentlib.hello_msg(), "token": token})
        assert good.recv()["t"] == "hello"
        rng = random.Random(5)
        guesses = [rng.randbytes(rng.randint(1, 2048)).hex()[:4096] for _ in range(500)]
        guesses += [token[:-1], token + "0", None, "x" * 4097] * 25
        t0 = time.monotonic()
        for i, g in enumerate(guesses):
            with agentlib.Conn(a.port) as c:
                hello = agentlib.hello_msg()
                if g is not None:
                    hello["token"] = g
                c.send(hello)
                m = c.recv()
                want = 400 if g is not None and len(g) > 4096 else 401
                assert m["t"] == "error" and m["status"] == want and "models" not in m, (i, m)
                assert c.closed_within(5), i
            if i % 100 == 0:
                x = rows(2, i)
                r = good.infer(1000 + i, "digits", [x])
                assert r["status"] == 0, r
                np.testing.assert_allclose(agentlib.output(r, 10), ref.forward(x), atol=1e-5)
        took = time.monotonic() - t0
        good.close()
        log = a.log()
        refusals = log.count('msg="401 ') + log.count('msg="400 ')
        # AGT_WARN_PER_SEC (20) in each second the flood touched, for the
        # refusals and for the connection lines alike (600 connections)
        assert 1 <= refusals <= 20 * (2 + int(took)), (refusals, took)
        lines = log.count('msg="connection open"') + log.count('msg="connection closed"')
        assert lines <= 20 * (3 + int(took)), (lines, took)
        assert token not in log and token[:-1] not in log
        assert not any(g and len(g) > 40 and g[:40] in log for g in guesses[:500:37])
        assert a.alive()
    finally:
        a.stop_clean()


def test_two_token_file_accepts_exactly_its_two(tmp_path, ref):
    """A --token-file of two lines (a rotation): a guesser who knows how the
    agent keeps them (the first, a NUL, the second, a NUL) or how the file
    spells them sends both joined by a NUL, a LF, a CRLF or nothing, one
    with a NUL or CR after it, a prefix of either, the second's prefix plus
    the first: each is answered error 401 and closed before the agent says
    its models; the first and the second token alone are each served the
    reference values; no token is logged."""
    a_tok, b_tok = "first-0123456789abcdef0123456789", "second-fedcba9876543210fedcba98"
    a = token_agent(tmp_path, "tok2", f"{a_tok}\r\n{b_tok}\n")
    try:
        bad = [a_tok + "\0" + b_tok, a_tok + "\0" + b_tok + "\0", a_tok + "\n" + b_tok,
               a_tok + "\r\n" + b_tok, a_tok + b_tok, b_tok + a_tok, a_tok + "\0",
               b_tok + "\0", a_tok + "\r", "\0" + b_tok, a_tok[:-1], b_tok[:-1],
               b_tok[:16] + a_tok, "", "\0"]
        for i, g in enumerate(bad):
            with agentlib.Conn(a.port) as c:
                c.send({**agentlib.hello_msg(), "token": g}, agentlib.infer_msg(1, "digits", [rows(1)]))
                m = c.recv()
                assert m["t"] == "error" and m["status"] == 401 and "models" not in m, (i, m)
                assert c.closed_within(5), i
        for i, tok in enumerate((a_tok, b_tok)):
            with agentlib.Conn(a.port) as c:
                c.send({**agentlib.hello_msg(), "token": tok})
                h = c.recv()
                assert h["t"] == "hello" and [m["name"] for m in h["models"]] == ["digits"], h
                x = rows(3, i)
                r = c.infer(2, "digits", [x])
                assert r["status"] == 0, r
                np.testing.assert_allclose(agentlib.output(r, 10), ref.forward(x), atol=1e-5)
        log = a.log()
        assert a_tok not in log and b_tok not in log and a_tok[:16] not in log
        assert a.alive()
    finally:
        a.stop_clean()
