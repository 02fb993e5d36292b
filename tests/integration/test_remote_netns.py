"""An agent across a real (virtual) network: a namespace this test makes,
a veth pair in 198.18.0.0/15 and 1 ms of delay each way (2 ms round trip)
by `tc netem`, or, where the kernel has no sch_netem, by a relay inside the
namespace that delays every byte (tests/integration/delay_relay.py; the
test prints which).  The router's predicted completion for the remote
backend includes the network time, and requests whose objective it cannot
meet go to the local CPU while loose ones take the cheaper agent.
Namespace, links and processes are removed by name and PID at teardown."""
import os
import shutil
import subprocess
import sys

import pytest

import gwlib
from agentlib import Agent
from agentproc import models_dir, run, tcp_ready, wait_for
from gwlib import INFER, JSON_CT, H2Client, check_infer_response, infer_body
from test_remote import CPU0, backends, gw_config, rows_on

DELAY_MS = 1  # each way


def _can_netns():
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if not shutil.which("ip"):
        return "needs iproute2 (`ip`)"
    return ""


pytestmark = pytest.mark.skipif(bool(_can_netns()), reason=_can_netns() or "ok")


@pytest.fixture
def netns():
    """(ns name, host address, agent address): a namespace joined to this
    one by a veth pair, 198.18.N.1 here and 198.18.N.2 there."""
    tag = os.getpid() % 100000
    ns, va, vb = f"igw{tag}", f"igwa{tag}", f"igwb{tag}"
    net = 1 + os.getpid() % 250
    host, peer = f"198.18.{net}.1", f"198.18.{net}.2"
    run(["ip", "netns", "add", ns])
    try:
        run(["ip", "link", "add", va, "type", "veth", "peer", "name", vb])
        run(["ip", "link", "set", vb, "netns", ns])
        run(["ip", "addr", "add", f"{host}/30", "dev", va])
        run(["ip", "link", "set", va, "up"])
        run(["ip", "netns", "exec", ns, "ip", "addr", "add", f"{peer}/30", "dev", vb])
        run(["ip", "netns", "exec", ns, "ip", "link", "set", vb, "up"])
        run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"])
        yield ns, va, vb, host, peer
    finally:
        run(["ip", "link", "del", va], check=False)
        run(["ip", "netns", "del", ns], check=False)


def _netem(ns, va, vb):
    """Delay both directions with netem; False when the kernel lacks it."""
    a = run(["tc", "qdisc", "add", "dev", va, "root", "netem", "delay", f"{DELAY_MS}ms"],
            check=False)
    if a.returncode:
        return False
    run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", vb, "root", "netem",
         "delay", f"{DELAY_MS}ms"])
    return True


def test_router_counts_network_time(netns, start_gw, tmp_path, model, heldout):
    ns, va, vb, host, peer = netns
    prefix = ["ip", "netns", "exec", ns]
    port = gwlib.free_port()
    relay = None
    if _netem(ns, va, vb):
        how = "tc netem"
        agent = Agent(tmp_path, "agent-ns", models_dir(tmp_path), host=peer, port=port,
                      prefix=prefix).start()
    else:
        how = "delay relay (no sch_netem in this kernel)"
        # The agent listens on the namespace's loopback, the relay on its veth.
        agent = Agent(tmp_path, "agent-ns", models_dir(tmp_path), port=port,
                      prefix=prefix).start()
        relay = subprocess.Popen([*prefix, sys.executable,
                                  str(gwlib.REPO / "tests/integration/delay_relay.py"), peer,
                                  str(port), "127.0.0.1", str(port), str(DELAY_MS)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: tcp_ready(peer, port), 10, "the relay")
    print(f"\nnetwork delay by {how}: {DELAY_MS} ms each way")
    try:
        entry = f"""\
  - name: dpu0
    kind: remote
    address: {peer}:{port}
    cost: 0.5
    models: [digits]
    ping_ms: 100
"""
        g = start_gw("gw", gw_config(CPU0 + entry))
        g.metrics = lambda: gwlib.read_metrics(g.admin_port)
        bk = wait_for(lambda: (lambda b: b if b["dpu0"].get("rtt_us", 0) > 0 else None)(
            backends(g)), 10, "an RTT sample for dpu0")
        d0 = bk["dpu0"]
        assert d0["state"] == "up", d0
        rtt_floor = 2 * DELAY_MS * 1000 * 0.9
        assert d0["rtt_us"] >= rtt_floor, d0
        # Predicted service time of a batch of 1 on the agent includes the
        # round trip; on the local CPU it does not.
        pred = d0["models"][0]["service_time_us"]["batch_1"]
        cpu_pred = bk["cpu0"]["models"][0]["service_time_us"]["batch_1"]
        print(f"dpu0 rtt {d0['rtt_us']:.0f} us, predicted batch_1 {pred:.0f} us; "
              f"cpu0 predicted batch_1 {cpu_pred:.0f} us")
        assert pred >= rtt_floor, d0
        assert cpu_pred < rtt_floor, bk["cpu0"]

        x, _ = heldout

        def send(n, slo_ms):
            with H2Client(g.port) as c:
                reqs = []
                for i in range(n):
                    r = x[i % (len(x) - 1):i % (len(x) - 1) + 1]
                    reqs.append((c.request("POST", INFER, infer_body(r),
                                           [JSON_CT, ("x-slo-ms", str(slo_ms))]), r))
                    if len(reqs) % 4 == 0:  # a few in flight, not a burst
                        c.wait([s for s, _ in reqs[-4:]])
                got = c.wait([s for s, _ in reqs])
            for (_, r), resp in zip(reqs, got):
                assert resp.status == 200, (resp.status, bytes(resp.body)[:300])
                check_infer_response(bytes(resp.body), model, r)

        # Loose objective: the cheaper agent meets it and takes the work.
        d_before, c_before = rows_on(g, "dpu0"), rows_on(g, "cpu0")
        send(120, 500)
        d_loose, c_loose = rows_on(g, "dpu0") - d_before, rows_on(g, "cpu0") - c_before
        print(f"slo 500 ms: dpu0 {d_loose:.0f} rows, cpu0 {c_loose:.0f} rows")
        assert d_loose >= 60, (d_loose, c_loose)
        # Tight objective (3 ms, 1 ms of it routing margin): the agent's
        # predicted completion (>= its 2 ms round trip) cannot meet it.
        d_before, c_before = rows_on(g, "dpu0"), rows_on(g, "cpu0")
        send(120, 3)
        d_tight, c_tight = rows_on(g, "dpu0") - d_before, rows_on(g, "cpu0") - c_before
        print(f"slo 3 ms: dpu0 {d_tight:.0f} rows, cpu0 {c_tight:.0f} rows")
        assert d_tight == 0 and c_tight == 120, (d_tight, c_tight)
    finally:
        if relay:
            relay.kill()
            relay.wait(timeout=10)
        agent.stop()
        agent.kill()
