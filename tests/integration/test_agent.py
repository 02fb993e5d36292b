"""infergw-agent over its protocol (agentlib): hello, infer against the
reference forward pass, pipelining, ping, cancel, deadlines, version
mismatch, drain on SIGTERM, --help/--version.  127.0.0.1 only; bounded."""
import socket
import subprocess

import numpy as np
import pytest

import agentlib
import gwlib
import slowmodel
from agentproc import models_dir

ATOL = 1e-5


@pytest.fixture(scope="module")
def ref():
    return gwlib.RefModel.load()


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    a = agentlib.Agent(tmp_path_factory.mktemp("agent"), args=["--threads", "2", "--max-inflight", "16"]).start()
    yield a
    a.stop_clean()


@pytest.fixture(scope="module")
def slow_models(tmp_path_factory):
    """A models directory with digits and the deliberately slow MLP (a
    batch of 64 takes milliseconds: long enough to keep the one worker
    busy while later frames are queued)."""
    d = tmp_path_factory.mktemp("slow-models")
    (d / "digits").symlink_to(gwlib.MODEL_DIR)
    slowmodel.write_slow_model(d / "slow")
    return d


@pytest.fixture(scope="module")
def slow_agent(tmp_path_factory, slow_models):
    a = agentlib.Agent(tmp_path_factory.mktemp("slow-agent"), models=slow_models,
                       args=["--threads", "1", "--max-inflight", "8"]).start()
    yield a
    a.stop_clean()


def rows(n, seed=0):
    return np.random.default_rng(seed).uniform(0, 16, (n, 64)).astype(np.float32)


def test_help_and_version():
    out = subprocess.run([str(agentlib.AGENT_BIN), "--help"], capture_output=True, text=True,
                         timeout=10)
    assert out.returncode == 0
    for flag in ("--listen", "--models", "--threads", "--max-inflight", "--max-frame"):
        assert flag in out.stdout
    out = subprocess.run([str(agentlib.AGENT_BIN), "--version"], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 0
    assert out.stdout.startswith("infergw-agent ")
    assert "protocol: 1" in out.stdout
    out = subprocess.run([str(agentlib.AGENT_BIN), "--listen", "127.0.0.1:0"],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 2 and "--models" in out.stderr


def test_no_models_exits_1(tmp_path):
    (tmp_path / "empty").mkdir()
    out = subprocess.run([str(agentlib.AGENT_BIN), "--listen", "127.0.0.1:0", "--models",
                          str(tmp_path / "empty")], capture_output=True, text=True, timeout=20)
    assert out.returncode == 1
    assert "no model could be loaded" in out.stderr


def test_broken_model_is_skipped(tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    (d / "digits").symlink_to(gwlib.MODEL_DIR)
    (d / "broken").mkdir()
    (d / "broken" / "model.yaml").write_text("name: broken\nlayers: [\n")
    a = agentlib.Agent(tmp_path, models=d).start()
    try:
        assert "model_dir=" in a.log() and "broken" in a.log() and "level=error" in a.log()
        with a.conn() as c:
            assert [m["name"] for m in c.hello_reply["models"]] == ["digits"]
    finally:
        a.stop_clean()


def test_hello(agent):
    with agent.conn() as c:
        h = c.hello_reply
    assert h["v"] == 1
    assert h["sw"].startswith("infergw-agent")
    assert h["window"] == 16 and h["threads"] == 2
    assert h["q"] == 0 and h["qc"] == 0
    models = {m["name"]: m for m in h["models"]}
    d = models["digits"]
    assert (d["in_dim"], d["out_dim"], d["max_batch"], d["dtype"], d["version"]) == \
        (64, 10, 64, "FP32", 1)


def test_infer_matches_reference(agent, ref):
    x1, x2 = rows(3, 1), rows(5, 2)
    with agent.conn() as c:
        r = c.infer(7, "digits", [x1, x2])
    assert r["t"] == "result" and r["id"] == 7, r
    assert r["status"] == 0, r
    assert agentlib.slice_statuses(r) == [0, 0]
    assert [s["rows"] for s in r["slices"]] == [3, 5]
    out = agentlib.output(r, 10)
    np.testing.assert_allclose(out, ref.forward(np.vstack([x1, x2])), atol=ATOL)
    assert r["exec_us"] >= 0 and r["queue_us"] >= 0
    assert r["svc_us"] > 0  # a batch ran: the service time is known


def test_pipelined_batches_matched_by_id(agent, ref):
    ids = list(range(100, 116))
    data = {i: rows(1 + i % 7, i) for i in ids}
    with agent.conn() as c:
        c.send(*[agentlib.infer_msg(i, "digits", [data[i]]) for i in ids])
        got = {}
        for _ in ids:
            m = c.recv()
            assert m["t"] == "result", m
            got[m["id"]] = m
    assert sorted(got) == ids
    for i in ids:
        assert got[i]["status"] == 0, got[i]
        np.testing.assert_allclose(agentlib.output(got[i], 10), ref.forward(data[i]),
                                   atol=ATOL)


def test_ping_pong_with_load(agent):
    with agent.conn() as c:
        p = c.ping(42)
    assert p["t"] == "pong" and p["id"] == 42
    assert p["q"] == 0 and p["qc"] == 0 and "svc_us" in p


def test_max_batch_and_unknown_model(agent):
    with agent.conn() as c:
        r = c.infer(1, "digits", [rows(40), rows(30)])
        assert r["status"] == 400 and "max_batch" in r["msg"], r
        assert agentlib.slice_statuses(r) == [400, 400]
        r = c.infer(2, "nope", [rows(1)])
        assert r["status"] == 404 and "unknown model" in r["msg"], r
        # wrong input length: the field and the sizes are named
        m = agentlib.infer_msg(3, "digits", [rows(2)])
        m["input"] = m["input"][:-4]
        c.send(m)
        r = c.recv_id(3)
        assert r["status"] == 400 and "input" in r["msg"], r
        # the connection still serves
        assert c.infer(4, "digits", [rows(1)])["status"] == 0


def test_cancel_queued_batch(slow_agent, ref):
    """One worker: batch 1 (slow, 64 rows) runs, 2 and 3 wait; cancel 3 in
    the same write.  3 is answered 499 at once and never runs; 1 and 2
    finish normally."""
    big = rows(64, 5)
    x2, x3 = rows(2, 6), rows(3, 7)
    with slow_agent.conn() as c:
        c.send(agentlib.infer_msg(1, "slow", [big]), agentlib.infer_msg(2, "digits", [x2]),
               agentlib.infer_msg(3, "digits", [x3]), agentlib.cancel_msg(3))
        order = [c.recv() for _ in range(3)]
    assert [m["id"] for m in order][0] == 3, [m["id"] for m in order]
    r3 = order[0]
    assert r3["status"] == 499 and agentlib.slice_statuses(r3) == [499], r3
    assert r3["exec_us"] == 0 and not r3.get("output"), r3
    by_id = {m["id"]: m for m in order}
    assert by_id[1]["status"] == 0 and by_id[2]["status"] == 0
    np.testing.assert_allclose(agentlib.output(by_id[2], 10), ref.forward(x2), atol=ATOL)


def test_cancel_unknown_id_is_harmless(agent):
    with agent.conn() as c:
        c.send(agentlib.cancel_msg(999))
        assert c.ping(5)["t"] == "pong"


def test_expired_slice_gets_504_only_itself(slow_agent, ref):
    """Slice 0's deadline (1 µs) has passed when its batch starts (behind a
    slow one); slice 1 has none: it runs, and slice 0's rows are zero."""
    big = rows(64, 8)
    x0, x1 = rows(2, 9), rows(3, 10)
    with slow_agent.conn() as c:
        c.send(agentlib.infer_msg(1, "slow", [big]),
               agentlib.infer_msg(2, "digits", [x0, x1], timeouts=[1, 0]))
        r = c.recv_id(2)
        c.recv_id(1)
    assert r["status"] == 0, r
    assert agentlib.slice_statuses(r) == [504, 0], r
    out = agentlib.output(r, 10)
    assert np.all(out[:2] == 0)
    np.testing.assert_allclose(out[2:], ref.forward(x1), atol=ATOL)


def test_all_slices_expired_never_run(slow_agent):
    with slow_agent.conn() as c:
        c.send(agentlib.infer_msg(1, "slow", [rows(64)]),
               agentlib.infer_msg(2, "digits", [rows(1), rows(1)], timeouts=[1, 1]))
        r = c.recv_id(2)
        c.recv_id(1)
    assert agentlib.slice_statuses(r) == [504, 504], r
    assert r["exec_us"] == 0


def test_queue_depth_reported(slow_agent):
    """Behind a running slow batch, three more wait: q and qc count them."""
    with slow_agent.conn() as c:
        c.send(agentlib.infer_msg(1, "slow", [rows(64)]),
               *[agentlib.infer_msg(i, "slow", [rows(8)]) for i in (2, 3, 4)],
               agentlib.ping_msg(50))
        p = c.recv_id(50)
        for i in (1, 2, 3, 4):
            assert c.recv_id(i)["status"] == 0
    assert p["q"] == 3 and p["qc"] == 3, p


def test_version_mismatch_426_and_close(agent):
    with agentlib.Conn(agent.port) as c:
        c.send(agentlib.hello_msg(v=2))
        m = c.recv()
        assert m["t"] == "error" and m["status"] == 426, m
        assert "protocol version 2 not supported; this agent speaks 1" in m["msg"]
        assert c.closed_within(5)


def test_infer_before_hello_400_and_close(agent):
    with agentlib.Conn(agent.port) as c:
        c.send(agentlib.infer_msg(1, "digits", [rows(1)]))
        m = c.recv()
        assert m["t"] == "error" and m["status"] == 400 and "expected hello first" in m["msg"]
        assert c.closed_within(5)


AGENT_TOKEN = "9c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"


def test_token_file_guards_the_hello(tmp_path, ref):
    """--token-file: a hello without the token, with another, or with a
    prefix or an extension of it is answered error 401 and the connection
    closed, before the agent's hello (its models unsaid) and before any
    infer runs; with the token the agent serves the reference values.  The
    file is read at every hello: a rotated token applies to new
    connections, and a file that stops holding one leaves the last good
    token in force (and says so in the log)."""
    tf = tmp_path / "agent.token"
    tf.write_text(AGENT_TOKEN + "\n")
    a = agentlib.Agent(tmp_path, "tok", models=models_dir(tmp_path),
                       args=["--token-file", str(tf)]).start()
    try:
        assert "auth=token" in a.log()
        for token, why in ((None, "hello without a token: this agent asks for one"),
                           ("nope", "wrong token in the hello"),
                           (AGENT_TOKEN[:-1], "wrong token in the hello"),
                           (AGENT_TOKEN + "0", "wrong token in the hello"),
                           (AGENT_TOKEN.upper(), "wrong token in the hello")):
            with agentlib.Conn(a.port) as c:
                hello = agentlib.hello_msg()
                if token is not None:
                    hello["token"] = token
                c.send(hello, agentlib.infer_msg(1, "digits", [rows(1)]))
                m = c.recv()
                assert m["t"] == "error" and m["status"] == 401 and why in m["msg"], m
                assert "models" not in m
                assert c.closed_within(5), token
        with agentlib.Conn(a.port) as c:
            c.send({**agentlib.hello_msg(), "token": 7})
            m = c.recv()
            assert m["t"] == "error" and m["status"] == 400 and "token" in m["msg"], m
            assert c.closed_within(5)

        def served(token):
            with agentlib.Conn(a.port) as c:
                c.send({**agentlib.hello_msg(), "token": token})
                h = c.recv()
                assert h["t"] == "hello" and [m["name"] for m in h["models"]] == ["digits"], h
                x = rows(3, seed=5)
                r = c.infer(2, "digits", [x])
                assert agentlib.slice_statuses(r) == [0], r
                np.testing.assert_allclose(agentlib.output(r, 10), ref.forward(x),
                                           rtol=1e-5, atol=ATOL)
        served(AGENT_TOKEN)
        new = "rotated-" + AGENT_TOKEN
        tf.write_text(new + "\n")
        with agentlib.Conn(a.port) as c:
            c.send({**agentlib.hello_msg(), "token": AGENT_TOKEN})
            assert c.recv()["status"] == 401
        served(new)
        tf.write_text("short\n")   # no token any more: the last good one stays
        served(new)
        assert "cannot read the token again" in a.log()
        assert AGENT_TOKEN not in a.log() and new not in a.log()
    finally:
        a.stop_clean()


def test_token_file_that_cannot_serve_stops_the_start(tmp_path):
    """An agent whose --token-file holds no token does not start: exit 1
    naming the flag, the file and why."""
    for name, content, want in (("short", "abc\n", "holds fewer than 16 characters"),
                                ("missing", None, "No such file or directory")):
        tf = tmp_path / f"{name}.token"
        if content is not None:
            tf.write_text(content)
        r = subprocess.run([str(agentlib.AGENT_BIN), "--listen", "127.0.0.1:0", "--models",
                            str(models_dir(tmp_path)), "--token-file", str(tf)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, (name, r.stdout, r.stderr)
        assert f"--token-file {tf}: {want}" in r.stdout + r.stderr, (name, r.stderr)


def test_sigterm_drains_in_flight(tmp_path, slow_models):
    """SIGTERM with batches queued and running: every one is answered, then
    the connection closes and the agent exits 0."""
    a = agentlib.Agent(tmp_path, models=slow_models, args=["--threads", "1"]).start()
    try:
        c = a.conn()
        c.send(*[agentlib.infer_msg(i, "slow", [rows(32)]) for i in (1, 2)])
        c.ping(9)  # both taken before the signal
        a.proc.send_signal(15)
        got = sorted(c.recv(20)["id"] for _ in (1, 2))
        assert got == [1, 2]
        assert c.closed_within(10)
        assert a.proc.wait(20) == 0
        assert 'msg="stopped"' in a.log()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", a.port), timeout=2).close()
    finally:
        a.kill()


def test_short_batch_overtakes_long_one(tmp_path, slow_models, ref):
    """Two workers: a slow 64-row batch and a tiny one sent after it; the
    tiny one's result comes first, both matched by id."""
    a = agentlib.Agent(tmp_path, models=slow_models, args=["--threads", "2"]).start()
    try:
        x = rows(2, 11)
        with a.conn() as c:
            c.send(agentlib.infer_msg(1, "slow", [rows(64, 12)]),
                   agentlib.infer_msg(2, "digits", [x]))
            first, second = c.recv(30), c.recv(30)
        assert (first["id"], second["id"]) == (2, 1)
        assert first["status"] == 0 and second["status"] == 0
        np.testing.assert_allclose(agentlib.output(first, 10), ref.forward(x), atol=ATOL)
    finally:
        a.stop_clean()


def test_cancel_running_batch_one_result(slow_agent):
    """A cancel racing the start of a batch: exactly one result, either run
    (0) or skipped (499), never both and never none."""
    with slow_agent.conn() as c:
        c.send(agentlib.infer_msg(1, "slow", [rows(64)]), agentlib.cancel_msg(1))
        r = c.recv_id(1, 30)
        assert r["t"] == "result" and r["status"] in (0, 499), r
        assert agentlib.slice_statuses(r)[0] in (0, 499)
        p = c.ping(2)  # nothing else for id 1 came before the pong
        assert p["t"] == "pong" and not c.pending.get(1)
