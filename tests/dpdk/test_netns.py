"""The fast path on a real (virtual) link: a veth pair infergw-dp0 <->
infergw-dp1, the peer end in a namespace this test makes (198.18.0.2/24),
DPDK on infergw-dp0 through net_af_packet.  A client inside the namespace
uses ordinary sockets, so the kernel's ARP for 198.18.0.1 goes through our
responder; every request must come back with the reference model's
values, pings must be answered, and a malformed datagram gets its error.
The namespace and links are removed by name, processes by PID."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import dplib
import gwlib

pytestmark = pytest.mark.skipif(bool(dplib.netns_skip_reason()),
                                reason=dplib.netns_skip_reason() or "ok")

IFACE, PEER = "infergw-dp0", "infergw-dp1"
HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"


def run(cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=30)


@pytest.fixture
def netns():
    ns = f"igwdp{os.getpid() % 100000}"
    run(["ip", "link", "del", IFACE], check=False)  # a previous run's, by name
    run(["ip", "netns", "add", ns])
    try:
        run(["ip", "link", "add", IFACE, "type", "veth", "peer", "name", PEER])
        run(["ip", "link", "set", PEER, "netns", ns])
        run(["sysctl", "-qw", f"net.ipv6.conf.{IFACE}.disable_ipv6=1"], check=False)
        run(["ip", "link", "set", IFACE, "up"])
        pre = ["ip", "netns", "exec", ns]
        run(pre + ["ip", "addr", "add", "198.18.0.2/24", "dev", PEER])
        run(pre + ["ip", "link", "set", PEER, "up"])
        run(pre + ["ip", "link", "set", "lo", "up"])
        yield ns
    finally:
        run(["ip", "link", "del", IFACE], check=False)
        run(["ip", "netns", "del", ns], check=False)


@pytest.fixture
def gateway(netns, tmp_path):
    text = dplib.config_text(["--no-huge", "--no-pci", "-m", "512",
                              f"--vdev=net_af_packet0,iface={IFACE}"],
                             admin_port=gwlib.free_port())
    g = dplib.DpGateway(tmp_path, "gw", text).start()
    yield g
    rc = g.stop()
    assert rc == 0, f"gateway exited {rc}\n{g.log()[-3000:]}"


PING = r"""
import socket, struct, sys
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(2)
got = 0
for seq in range(3):
    b = struct.pack('!BBHHH', 8, 0, 0, 0x4242, seq) + b'infergw-ping-data'
    b = b[:2] + struct.pack('!H', csum(b + b'\0')) + b[4:]
    s.sendto(b, (sys.argv[1], 0))
    try:
        while True:
            d, _ = s.recvfrom(2048); ih = (d[0] & 15) * 4; t, c, _, i, q = struct.unpack('!BBHHH', d[ih:ih + 8])
            if t == 0 and i == 0x4242 and q == seq and d[ih + 8:] == b'infergw-ping-data':
                got += 1; break
    except socket.timeout:
        pass
print(got)
"""


def client(ns, tmp_path, reqs, **kw):
    rf, of = tmp_path / "reqs.msgpack", tmp_path / "answers.msgpack"
    import msgpack

    rf.write_bytes(msgpack.packb(reqs, use_bin_type=True))
    args = [f"--{k}={v}" for k, v in kw.items()]
    r = run(["ip", "netns", "exec", ns, PY, os.path.join(HERE, "udp_loop.py"), "198.18.0.1",
             "9200", str(rf), str(of), *args])
    return json.loads(r.stdout), msgpack.unpackb(of.read_bytes(), raw=False)


def test_netns_requests_answered(netns, gateway, tmp_path):
    model = gwlib.RefModel.load()
    feats, _ = dplib.heldout()
    reqs, want = [], []
    for i in range(40):
        rows = feats[(i * 3) % 300:(i * 3) % 300 + 1 + i % 3]
        reqs.append(dplib.request_map(1000 + i, rows))
        want.append(model.forward(rows))
    summary, answers = client(netns, tmp_path, reqs)
    assert summary["unanswered"] == 0, (summary, gateway.log()[-2000:])
    for i, (ans, exp) in enumerate(zip(answers, want)):
        assert ans["id"] == 1000 + i and ans["model"] == "digits", ans
        assert "error" not in ans, ans
        got = dplib.answer_values(ans)
        assert got.shape == exp.shape
        np.testing.assert_allclose(got, exp, rtol=1e-4, atol=1e-5)
    m = gateway.metrics()
    assert gwlib.metric(m, "infergw_dpdk_requests_total", code="200") >= 40
    assert gwlib.metric(m, "infergw_dpdk_frames_total", kind="arp_req") >= 1


def test_netns_ping_and_errors(netns, gateway, tmp_path):
    r = run(["ip", "netns", "exec", netns, PY, "-c", PING, "198.18.0.1"])
    assert r.stdout.strip() == "3", (r.stdout, r.stderr)
    bad = [dplib.request_map(7, np.zeros((1, 64)), model="nope"),
           {"id": 8, "model": "digits", "inputs": "not a list"},
           dplib.request_map(9, np.zeros((1, 64)), name="wrong")]
    summary, answers = client(netns, tmp_path, bad, retries=1)
    assert summary["unanswered"] == 0, summary
    assert answers[0]["id"] == 7 and answers[0]["code"] == 404, answers[0]
    assert "nope" in answers[0]["error"]
    assert answers[1]["id"] == 8 and answers[1]["code"] == 400, answers[1]
    assert "inputs" in answers[1]["error"]
    assert answers[2]["id"] == 9 and answers[2]["code"] == 400, answers[2]
    m = gateway.metrics()
    assert gwlib.metric(m, "infergw_dpdk_requests_total", code="404") == 1
    assert gwlib.metric(m, "infergw_dpdk_requests_total", code="400") == 2
    assert gwlib.metric(m, "infergw_dpdk_frames_total", kind="icmp_echo") == 3
