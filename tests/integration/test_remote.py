"""The `remote` backend with real infergw-agent processes on loopback:
values through the agents, failover when one is SIGKILLed under bounded
h2load (every request answered exactly once), readmission after a restart,
and ejection of an agent that hangs (SIGSTOP).  No timed assertions: the
waits below are upper bounds on state changes, never speed claims."""
import json
import threading
import time

import pytest

import agentlib
import gwlib
from agentlib import Agent
from agentproc import models_dir, wait_for
from gwlib import INFER, JSON_CT, H2Client, check_infer_response, infer_body, metric
from test_load import h2load


def remote_entry(name, port, *, cost=0.5, timeout_ms=400, failures=3, ejection_ms=1500,
                 max_pct=50, extra=""):
    return f"""\
  - name: {name}
    kind: remote
    address: 127.0.0.1:{port}
    cost: {cost}
    models: [digits]
    pool: dpu
    timeout_ms: {timeout_ms}
    ping_ms: 200
    reconnect_ms: 50
    reconnect_max_ms: 400
    consecutive_failures: {failures}
    ejection_ms: {ejection_ms}
    max_ejection_ms: 10000
    max_ejection_percent: {max_pct}
{extra}"""


def gw_config(backends, *, slo_ms=0, max_batch=32, policy="slo"):
    return f"""\
listen:
  address: 127.0.0.1
  port: 8000
  threads: 1
admin:
  address: 127.0.0.1
  port: 8002
limits:
  max_body_bytes: 65536
  shutdown_grace_ms: 5000
log:
  level: info
routing:
  policy: {policy}
models:
  - name: digits
    path: {gwlib.MODEL_DIR}
    max_batch: {max_batch}
    max_queue_delay_us: 0
    max_queue: 4096
    slo_ms: {slo_ms}
backends:
{backends}"""


CPU0 = """\
  - name: cpu0
    kind: cpu
    workers: 1
    threads_per_worker: 1
    cost: 1.0
    models: [digits]
"""


def backends(g):
    st, _, body = gwlib.h1_request(g.admin_port, "GET", "/admin/backends")
    assert st == 200, body
    return {b["name"]: b for b in json.loads(body)["backends"]}


def rows_on(g, name):
    return metric(g.metrics(), "infergw_backend_rows_total", backend=name)


@pytest.fixture
def agents(tmp_path):
    made = []

    def make(n, args=("--threads", "1"), **kw):
        d = models_dir(tmp_path)
        for i in range(n):
            made.append(Agent(tmp_path, f"agent{len(made)}", d, args=list(args), **kw).start())
        return made[-n:]

    yield make
    for a in made:
        a.resume()
        a.stop()  # SIGTERM: under ASan its leak check runs at exit
        a.kill()


def _slo_gw(start_gw, agents_, backends_text, **kw):
    """A gateway on backends_text (gw_config's keywords in kw)."""
    g = start_gw("gw", gw_config(backends_text, **kw))
    g.metrics = lambda: gwlib.read_metrics(g.admin_port)
    return g


def _check_values(g, model, heldout, n, rows_of=lambda i: 1 + i % 5, headers=()):
    x, _ = heldout
    sids, got = [], []
    with H2Client(g.port) as c:
        for i in range(n):
            k = rows_of(i)
            o = (7 * i) % (len(x) - 8)
            r = x[o:o + k]
            sids.append((c.request("POST", INFER, infer_body(r), [JSON_CT, *headers]), r))
            if len(sids) % 50 == 0 or i == n - 1:  # under max_concurrent_streams
                got += c.wait([s for s, _ in sids[len(got):]])
    for (sid, r), resp in zip(sids, got):
        assert resp.status == 200, (resp.status, bytes(resp.body)[:300])
        check_infer_response(bytes(resp.body), model, r)


def test_agents_serve_correct_values(start_gw, agents, model, heldout):
    a0, a1 = agents(2)
    g = _slo_gw(start_gw, (a0, a1), remote_entry("dpu0", a0.port) + remote_entry("dpu1", a1.port))
    bk = backends(g)
    assert bk["dpu0"]["state"] == "up" and bk["dpu1"]["state"] == "up", bk
    assert bk["dpu0"]["kind"] == "remote"
    _check_values(g, model, heldout, 200)
    moved = rows_on(g, "dpu0") + rows_on(g, "dpu1")
    assert moved >= sum(1 + i % 5 for i in range(200)), moved
    # Both agents' round trips are measured (health pings) and shown.
    bk = wait_for(lambda: all(b.get("rtt_us", 0) > 0 for b in backends(g).values()) and
                  backends(g), 5, "rtt_us on both agents")
    for b in bk.values():
        assert 0 < b["rtt_us"] < 1e6, b


def _traffic_checker(g, model, heldout, stop, errors, counts):
    """Background client: varied requests, every answer checked (200 values
    exact; anything else recorded) until stop is set."""
    x, _ = heldout
    i = 0
    with H2Client(g.port, timeout=30) as c:
        while not stop.is_set():
            batch = []
            for _ in range(8):
                k = 1 + i % 4
                o = (11 * i) % (len(x) - 8)
                r = x[o:o + k]
                batch.append((c.request("POST", INFER, infer_body(r), [JSON_CT]), r))
                i += 1
            for (sid, r), resp in zip(batch, c.wait([s for s, _ in batch])):
                counts[resp.status] = counts.get(resp.status, 0) + 1
                if resp.status != 200:
                    errors.append((resp.status, bytes(resp.body)[:200]))
                    continue
                try:
                    check_infer_response(bytes(resp.body), model, r)
                except AssertionError as e:  # a wrong value is the worst failure
                    errors.append(("value", str(e)[:300]))


def test_sigkill_agent_mid_run_fails_over(start_gw, agents, model, heldout, tmp_path):
    """Two agents (no local backend) under bounded h2load; one is SIGKILLed
    mid-run.  Its queued and in-flight batches go back to the router and run
    on the other: every request gets exactly one answer, all 200 (no
    deadline: nothing may 504; one agent stays: nothing may 503)."""
    a0, a1 = agents(2)
    # Round-robin: both agents surely carry traffic before the kill and the
    # restarted one right after it is back (slo routing may leave an equal
    # agent idle while the other keeps up).
    g = _slo_gw(start_gw, (a0, a1), remote_entry("dpu0", a0.port) + remote_entry("dpu1", a1.port),
                policy="round-robin")
    x, _ = heldout
    body = tmp_path / "one.json"
    body.write_bytes(infer_body(x[:1]))
    n = 6000
    before = gwlib.read_metrics(g.admin_port)
    res = {}
    stop, errors, counts = threading.Event(), [], {}
    checker = threading.Thread(target=_traffic_checker,
                               args=(g, model, heldout, stop, errors, counts))
    checker.start()

    def load():
        res["r"] = h2load(["-n", str(n), "-c", "4", "-m", "8", "-H",
                           "content-type: application/json", "-d", str(body),
                           f"http://127.0.0.1:{g.port}{INFER}"], timeout=180)

    t = threading.Thread(target=load)
    t.start()
    try:
        wait_for(lambda: rows_on(g, "dpu0") > 300 and rows_on(g, "dpu1") > 300, 60,
                 "both agents serving")
        a0.sigkill()
        t.join(timeout=200)
    finally:
        stop.set()
        checker.join(timeout=60)
    req, codes, text = res["r"]
    assert req["done"] == n and req["errored"] == 0 and req["failed"] == 0, text[-2000:]
    assert codes == {"2xx": n, "3xx": 0, "4xx": 0, "5xx": 0}, text[-2000:]
    assert not errors, errors[:5]
    assert counts.get(200, 0) > 0, counts
    # Exactly one answer each: the gateway counted as many h2 200s as were asked.
    total = n + sum(counts.values())
    after = gwlib.wait_metrics(g.admin_port, [(("infergw_http_responses_total",
                                                {"proto": "h2", "code": "200"}),
                                               metric(before, "infergw_http_responses_total",
                                                      proto="h2", code="200") + total)])
    got = metric(after, "infergw_http_responses_total", proto="h2", code="200") - \
        metric(before, "infergw_http_responses_total", proto="h2", code="200")
    assert got == total, (got, total)
    bk = backends(g)
    assert bk["dpu0"]["state"] in ("down", "ejected"), bk["dpu0"]
    assert bk["dpu1"]["state"] == "up", bk["dpu1"]
    assert "dpu0" in g.log() and ("down" in g.log() or "ejected" in g.log())

    # Restarted on the same port: reconnected (and, if it was ejected,
    # readmitted by a probe), it takes requests again.
    a0r = Agent(tmp_path, "agent0-restarted", a0.models, port=a0.port).start()
    try:
        wait_for(lambda: backends(g)["dpu0"]["state"] == "up", 20, "dpu0 up again")
        r0 = rows_on(g, "dpu0")
        _check_values(g, model, heldout, 300)
        wait_for(lambda: rows_on(g, "dpu0") > r0, 5, "rows on the restarted agent")
    finally:
        a0r.kill()


def test_sigstop_agent_times_out_and_is_ejected(start_gw, agents, model, heldout):
    """An agent that hangs (SIGSTOP: connection open, nothing answered): its
    batches time out onto the other agent (all answers 200 with the right
    values), it is ejected, exported as such; after SIGCONT a probe
    readmits it."""
    a0, a1 = agents(2)
    g = _slo_gw(start_gw, (a0, a1), remote_entry("dpu0", a0.port, timeout_ms=300) +
                remote_entry("dpu1", a1.port, timeout_ms=300), policy="round-robin")
    _check_values(g, model, heldout, 40)
    a1.pause()
    stop, errors, counts = threading.Event(), [], {}
    checker = threading.Thread(target=_traffic_checker,
                               args=(g, model, heldout, stop, errors, counts))
    checker.start()
    try:
        wait_for(lambda: backends(g)["dpu1"]["state"] == "ejected", 20, "dpu1 ejected")
        ms = g.metrics()
        assert metric(ms, "infergw_backend_state", backend="dpu1", state="ejected") == 1
        assert metric(ms, "infergw_backend_state", backend="dpu1", state="up") == 0
        assert metric(ms, "infergw_backend_ejections_total", backend="dpu1") >= 1
        assert metric(ms, "infergw_backend_state", backend="dpu0", state="up") == 1
        time.sleep(0.5)  # traffic keeps flowing past the ejected agent
    finally:
        stop.set()
        checker.join(timeout=60)
    assert not errors, errors[:5]
    assert counts.get(200, 0) > 0, counts
    assert "ejected" in g.log()
    a1.resume()
    wait_for(lambda: backends(g)["dpu1"]["state"] == "up", 30, "dpu1 readmitted after SIGCONT")
    r1 = rows_on(g, "dpu1")
    _check_values(g, model, heldout, 300)
    wait_for(lambda: rows_on(g, "dpu1") > r1, 5, "rows on the readmitted agent")


def test_pool_never_ejects_past_its_share(start_gw, agents, model, heldout):
    """max_ejection_percent 50 of a pool of two: with both agents hung, at
    most one is ejected at once; requests fail over to the local CPU."""
    a0, a1 = agents(2)
    g = _slo_gw(start_gw, (a0, a1), CPU0.replace("cost: 1.0", "cost: 2.0") +
                remote_entry("dpu0", a0.port, timeout_ms=250) +
                remote_entry("dpu1", a1.port, timeout_ms=250))
    a0.pause()
    a1.pause()
    stop, errors, counts = threading.Event(), [], {}
    checker = threading.Thread(target=_traffic_checker,
                               args=(g, model, heldout, stop, errors, counts))
    checker.start()
    try:
        wait_for(lambda: any(b["state"] == "ejected" for b in backends(g).values()), 20,
                 "one agent ejected")
        seen = []
        for _ in range(20):
            bk = backends(g)
            seen.append(sum(b["state"] == "ejected" for b in bk.values()))
            time.sleep(0.1)
        assert max(seen) == 1, seen
    finally:
        stop.set()
        checker.join(timeout=60)
        a0.resume()
        a1.resume()
    assert not errors, errors[:5]
    assert "max_ejection_percent" in g.log() or "pool" in g.log()


def test_agent_down_at_start_is_down_and_others_serve(start_gw, agents, model, heldout):
    """An agent nobody listens for: the backend is down with the reason; the
    model stays ready on the others; when the agent comes up it joins."""
    (a0,) = agents(1)
    port = gwlib.free_port()
    g = _slo_gw(start_gw, (a0,), remote_entry("dpu0", a0.port) + remote_entry("dpu1", port))
    bk = backends(g)
    # down, or already ejected when the gateway's start was slow (a loaded
    # machine, a sanitizer build): failed reconnects count toward ejection
    # (docs/config.md); either way the reason names the refused connect
    assert bk["dpu1"]["state"] in ("down", "ejected"), bk["dpu1"]
    assert "refused" in (bk["dpu1"].get("reason") or "").lower(), bk["dpu1"]
    st, _, _ = gwlib.h1_request(g.port, "GET", "/v2/health/ready")
    assert st == 200
    _check_values(g, model, heldout, 50)
    late = Agent(a0.workdir, "late", a0.models, port=port).start()
    try:
        wait_for(lambda: backends(g)["dpu1"]["state"] == "up", 20, "dpu1 up once its agent is")
    finally:
        late.kill()


def test_agent_token_file(start_gw, agents, model, heldout, tmp_path):
    """Agents with --token-file and the gateway's backends[].token_file (the
    same file, as the Kubernetes manifests mount one Secret in both): the
    agent is up and serves the reference values; a backend without the
    token (or with another) stays down, its reason the agent's 401; a
    token rotated in the file applies at the gateway's next reload (the
    backend reopens with it; the agent reads the file at every hello).
    /admin/config shows the file, never the token."""
    tok = tmp_path / "agents.token"
    tok.write_text("0f1e2d3c4b5a69788796a5b4c3d2e1f0\n")
    other = tmp_path / "other.token"
    other.write_text("another-token-of-sixteen-chars\n")
    (a0,) = agents(1, args=["--threads", "1", "--token-file", str(tok)])
    text = (remote_entry("dpu0", a0.port, extra=f"    token_file: {tok}\n") +
            remote_entry("bare", a0.port) +
            remote_entry("other", a0.port, extra=f"    token_file: {other}\n"))
    g = _slo_gw(start_gw, (a0,), text)
    bk = wait_for(lambda: backends(g)["dpu0"]["state"] == "up" and backends(g), 10, "dpu0 up")
    for name, why in (("bare", "hello without a token"), ("other", "wrong token in the hello")):
        assert bk[name]["state"] in ("down", "ejected"), bk[name]
        assert f"refused the hello: {why}" in (bk[name].get("reason") or ""), bk[name]
    _check_values(g, model, heldout, 40)
    assert rows_on(g, "bare") == 0 and rows_on(g, "other") == 0
    st, _, raw = gwlib.h1_request(g.admin_port, "GET", "/admin/config")
    doc = json.loads(raw)
    remote = {b["name"]: b["remote"] for b in doc["backends"]}
    assert remote["dpu0"]["token_file"] == str(tok) and remote["bare"]["token_file"] is None
    assert b"0f1e2d3c4b5a6978" not in raw
    # rotation: the file changes; the gateway's reload reopens dpu0 with it
    tok.write_text("rotated-0f1e2d3c4b5a69788796a5\n")
    st, _, raw = gwlib.h1_request(g.admin_port, "POST", "/admin/reload", b"")
    doc = json.loads(raw)
    assert st == 200 and "dpu0" in doc["backends_opened"], doc
    wait_for(lambda: backends(g)["dpu0"]["state"] == "up", 10, "dpu0 up with the new token")
    _check_values(g, model, heldout, 20)
    # rotated again, no reload: the agent restarts (a new pod) and reads
    # the file; the gateway's reconnect reads it again too
    tok.write_text("third-token-0f1e2d3c4b5a6978\n")
    assert a0.stop() == 0
    wait_for(lambda: backends(g)["dpu0"]["state"] != "up", 10, "dpu0 down with its agent")
    a1 = Agent(a0.workdir, "restarted", a0.models, port=a0.port,
               args=["--threads", "1", "--token-file", str(tok)]).start()
    try:
        wait_for(lambda: backends(g)["dpu0"]["state"] == "up", 20, "dpu0 up, no reload")
        _check_values(g, model, heldout, 20)
    finally:
        a1.stop_clean()


def _hello_status(port, token):
    """The agent's answer to a hello carrying token: 0 (its hello) or the
    error's status."""
    with agentlib.Conn(port) as c:
        c.send({**agentlib.hello_msg(), "token": token})
        m = c.recv()
        return 0 if m["t"] == "hello" else m["status"]


def test_agent_token_rotation_without_downtime(start_gw, agents, model, heldout, tmp_path):
    """A token rotated through one file that the gateway and two agents
    share (one Secret), in the three steps docs/agent.md gives: OLD, then
    OLD and NEW (agents accept either, the gateway still shows OLD), then
    NEW and OLD (the gateway shows NEW), then NEW alone.  An agent restarted
    at each step (a new pod, so the gateway's reconnect reads the file
    again) comes back up without a reload, and both backends serve the
    reference values at every step; at the end OLD is refused."""
    old, new = "old-0f1e2d3c4b5a69788796a5b4c3d2e1", "new-89abcdef0123456789abcdef0123"
    tok = tmp_path / "shared.token"
    tok.write_text(old + "\n")
    ags = list(agents(2, args=["--threads", "1", "--token-file", str(tok)]))
    g = _slo_gw(start_gw, ags, remote_entry("dpu0", ags[0].port, extra=f"    token_file: {tok}\n")
                + remote_entry("dpu1", ags[1].port, extra=f"    token_file: {tok}\n"))

    def both_up(why):
        wait_for(lambda: all(b["state"] == "up" for b in backends(g).values()), 20, why)
        _check_values(g, model, heldout, 20)

    def restart(i, why):
        port, workdir, models = ags[i].port, ags[i].workdir, ags[i].models
        assert ags[i].stop() == 0
        wait_for(lambda: backends(g)[f"dpu{i}"]["state"] != "up", 10, f"dpu{i} down")
        ags[i] = Agent(workdir, f"step{why}", models, port=port,
                       args=["--threads", "1", "--token-file", str(tok)]).start()
        both_up(f"step {why}: dpu{i} back up")

    try:
        both_up("both up with OLD")
        tok.write_text(f"{old}\n{new}\n")   # step 1
        assert _hello_status(ags[0].port, old) == 0 and _hello_status(ags[0].port, new) == 0
        restart(1, 1)
        tok.write_text(f"{new}\r\n{old}\r\n")   # step 2: the gateway shows NEW
        restart(0, 2)
        assert _hello_status(ags[1].port, old) == 0
        tok.write_text(new + "\n")   # step 3
        assert _hello_status(ags[0].port, old) == 401 and _hello_status(ags[1].port, old) == 401
        assert _hello_status(ags[1].port, new) == 0
        restart(1, 3)
        assert old not in g.log() and new not in g.log()
        assert all(old not in a.log() and new not in a.log() for a in ags)
    finally:
        for a in ags:
            a.stop()  # SIGTERM: under ASan its leak check runs at exit
            a.kill()
