"""The `remote` backend through the real gateway and real agents
(build/infergw-agent on loopback): every request answered exactly once
with the model's values while an agent is SIGKILLed (failover, then
readmitted after a probe once restarted) or SIGSTOPped (batches time out
onto the other agent, the stopped one is ejected).  Bounded: a few hundred
requests, short timeouts in the config; no timing assertions."""
import json
import threading
import time

import numpy as np
import pytest

import agentlib
import gwlib
import slowmodel as sm
from gwlib import H2Client, MODEL_DIR

pytestmark = pytest.mark.skipif(not agentlib.AGENT_BIN.exists(),
                                reason=f"{agentlib.AGENT_BIN} not built (make)")

N = 120


def _remote(name, port):
    return (f"  - name: {name}\n    kind: remote\n    address: 127.0.0.1:{port}\n"
            "    cost: 0.5\n    pool: dpu\n    timeout_ms: 400\n    ping_ms: 50\n"
            "    reconnect_ms: 20\n    reconnect_max_ms: 200\n    consecutive_failures: 3\n"
            "    ejection_ms: 300\n    max_ejection_ms: 600\n    max_ejection_percent: 50\n"
            "    models: [digits]\n")


def _config(ports):
    return sm.config_text([sm.model_yaml("digits", MODEL_DIR, max_batch=8,
                                         extra="    service_time_us: {base: 300, per_row: 1}\n")],
                          [_remote(f"dpu{i}", p) for i, p in enumerate(ports)],
                          routing={"policy": "round-robin"})


def _rows(k):
    n = 1 + k % 3
    return (np.arange(n * 64, dtype=np.float64).reshape(n, 64) % 17 - 8.0 + k) / 16.0


def _flood(port):
    with H2Client(port, timeout=30.0) as c:
        sent = [(_rows(k), c.request("POST", gwlib.INFER, gwlib.infer_body(_rows(k)),
                                     [gwlib.JSON_CT], flush=False)) for k in range(N)]
        c._flush()
        c.wait()
        return [(rows, c.streams[sid]) for rows, sid in sent]


def _check(results, model):
    for rows, resp in results:
        assert resp.status == 200, (resp.status, bytes(resp.body)[:200])
        gwlib.check_infer_response(bytes(resp.body), model, rows, rtol=1e-4, atol=1e-5)


def _states(g):
    st, _, body = gwlib.h1_request(g.admin_port, "GET", "/admin/backends")
    assert st == 200, body
    return {b["name"]: b for b in json.loads(body)["backends"]}


def _wait_state(g, name, want, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _states(g)[name]["state"] == want:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def agents(tmp_path):
    started = [agentlib.Agent(tmp_path, f"agent{i}").start() for i in range(2)]
    yield started
    for a in started:
        a.kill()


def test_remote_serves_with_values(start_gw, agents, model):
    g = start_gw("remote", _config([a.port for a in agents]))
    _check(_flood(g.port), model)
    be = _states(g)
    assert {n: b["state"] for n, b in be.items()} == {"dpu0": "up", "dpu1": "up"}
    assert be["dpu0"]["address"] == f"127.0.0.1:{agents[0].port}"
    assert be["dpu0"]["credits"] >= 1
    ms = gwlib.read_metrics(g.admin_port)
    assert gwlib.metric(ms, "infergw_backend_state", backend="dpu0", state="up") == 1
    assert gwlib.metric(ms, "infergw_backend_state", backend="dpu0", state="down") == 0
    # round-robin: both agents ran batches
    assert gwlib.metric(ms, "infergw_backend_batches_total", backend="dpu0") > 0
    assert gwlib.metric(ms, "infergw_backend_batches_total", backend="dpu1") > 0
    for _ in range(100):    # pings every 50 ms measure the round trip
        if gwlib.metric(gwlib.read_metrics(g.admin_port), "infergw_backend_rtt_seconds",
                        backend="dpu1"):
            break
        time.sleep(0.05)
    assert gwlib.metric(gwlib.read_metrics(g.admin_port), "infergw_backend_rtt_seconds",
                        backend="dpu1") > 0


def test_sigkill_fails_over_then_readmits(start_gw, agents, model, tmp_path):
    g = start_gw("remote_kill", _config([a.port for a in agents]))
    results, errors = [], []

    def load():
        try:
            for _ in range(3):
                results.extend(_flood(g.port))
        except Exception as e:     # reported below, on the test's thread
            errors.append(e)

    t = threading.Thread(target=load)
    t.start()
    time.sleep(0.05)
    port0 = agents[0].port
    agents[0].kill()               # SIGKILL mid-run
    t.join(120)
    assert not t.is_alive() and not errors, errors
    assert len(results) == 3 * N
    _check(results, model)         # every request answered once, 200, right values
    assert _states(g)["dpu0"]["state"] in ("down", "ejected")
    assert _states(g)["dpu0"]["reason"]
    # back on the same port: reconnect + hello (and a probe if ejected) -> up
    agents[0] = agentlib.Agent(tmp_path, "agent0b", args=["--listen", f"127.0.0.1:{port0}"])
    agents[0].start()
    assert _wait_state(g, "dpu0", "up"), _states(g)["dpu0"]
    _check(_flood(g.port), model)
    assert "to=up" in g.log()


def test_sigstop_times_out_onto_the_other(start_gw, agents, model):
    g = start_gw("remote_stop", _config([a.port for a in agents]))
    _check(_flood(g.port), model)
    agents[1].proc.send_signal(19)  # SIGSTOP: hangs, the connection stays
    try:
        _check(_flood(g.port), model)   # its batches time out and run on dpu0
        assert _wait_state(g, "dpu1", "ejected"), _states(g)["dpu1"]
        assert _states(g)["dpu1"]["ejections"] >= 1
        assert "to=ejected" in g.log()
        _check(_flood(g.port), model)
    finally:
        agents[1].proc.send_signal(18)  # SIGCONT
