"""The fast path on a real (virtual) link: a veth pair infergw-dp0 <->
infergw-dp1, the peer end in a namespace this test makes (198.18.0.2/24),
DPDK on infergw-dp0 through net_af_packet.  A client inside the namespace
(tools/infergw-udp-client) uses ordinary sockets, so the kernel's ARP for
198.18.0.1 goes through our responder; every request must come back with
the reference model's values, pings must be answered, and an unknown
model or a bad shape gets its error.
The namespace and links are removed by name, processes by PID."""
import json

import numpy as np
import pytest

import dplib
import gwlib

pytestmark = pytest.mark.skipif(bool(dplib.netns_skip_reason()),
                                reason=dplib.netns_skip_reason() or "ok")

PY = "/usr/bin/python3"
CLIENT = dplib.REPO / "tools" / "infergw-udp-client"
run = dplib.run

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


def client(ns, *args):
    """tools/infergw-udp-client inside the namespace: (exit status, report).
    No checksum: veth leaves a partial one (see the client's --help)."""
    r = run(["ip", "netns", "exec", ns, PY, str(CLIENT), "--server", "198.18.0.1:9200",
             "--no-udp-checksum", "--json", *args], check=False)
    assert r.stdout.strip(), (r.returncode, r.stderr[-2000:])
    return r.returncode, json.loads(r.stdout)


def test_netns_requests_answered(netns, gateway, tmp_path):
    feats, _ = dplib.heldout()
    np.save(tmp_path / "heldout.npy", np.asarray(feats, dtype=np.float32))
    n = 0
    for rows in (1, 3):         # the client checks every answer against the reference
        rc, rep = client(netns, "--input", str(tmp_path / "heldout.npy"), "--rows", str(rows),
                         "-n", "20", "--concurrency", "8", "--wait", "5",
                         "--check", str(gwlib.MODEL_DIR))
        assert rc == 0 and rep["answered"] == 20 and rep["codes"] == {"200": 20}, \
            (rep, gateway.log()[-2000:])
        n += 20
    m = gateway.metrics()
    assert gwlib.metric(m, "infergw_dpdk_requests_total", code="200") == n
    assert gwlib.metric(m, "infergw_dpdk_frames_total", kind="arp_req") >= 1


def test_netns_ping_and_errors(netns, gateway):
    r = run(["ip", "netns", "exec", netns, PY, "-c", PING, "198.18.0.1"])
    assert r.stdout.strip() == "3", (r.stdout, r.stderr)
    rc, rep = client(netns, "--model", "nope", "-n", "2", "--wait", "5")
    assert rc == 1 and rep["answered"] == 2 and rep["codes"] == {"404": 2}, rep
    assert all("nope" in e for e in rep["examples"]), rep
    rc, rep = client(netns, "--in-dim", "63", "-n", "1", "--wait", "5")
    assert rc == 1 and rep["answered"] == 1 and rep["codes"] == {"400": 1}, rep
    assert "shape" in rep["examples"][0], rep
    m = gateway.metrics()
    assert gwlib.metric(m, "infergw_dpdk_requests_total", code="404") == 2
    assert gwlib.metric(m, "infergw_dpdk_requests_total", code="400") == 1
    # refused before any backend (dp_count_refused): the model's "none"
    # series counts the bad shape as an error, as HTTP's refusals are; an
    # unknown model has no series to count in
    assert gwlib.metric(m, "infergw_requests_total", backend="none", model="digits",
                        outcome="error") == 1
    assert not [k for k in m if k[0] == "infergw_requests_total" and ("model", "nope") in k[1]]
    assert gwlib.metric(m, "infergw_dpdk_frames_total", kind="icmp_echo") == 3
