"""bench/udpload (the fast path's load generator, bench/dpdk.sh): against a
Python stand-in server on loopback it must count every outcome right (200s
with the reference values, a 429, a lost request, wrong values, a stray
answer) and time every request; against the gateway's DPDK fast path in a
namespace, every request must come back a 200 with the reference values."""
import json
import socket
import subprocess
import threading

import msgpack
import numpy as np
import pytest

import dplib

REPO = dplib.REPO
UDPLOAD = REPO / "build" / "bench" / "udpload"
DIGITS = REPO / "config" / "models" / "digits"


@pytest.fixture(scope="module")
def udpload(tmp_path_factory):
    """The built tool, and the digits request and reference answer."""
    r = subprocess.run(["make", "-s", "-C", str(REPO), "build/bench/udpload"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    d = tmp_path_factory.mktemp("udpload")
    r = subprocess.run(["/usr/bin/python3", str(REPO / "bench" / "digits_body.py"), "--udp",
                        str(DIGITS), str(d / "req.mp"), str(d / "expect.f32")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return d


def run(d, port, *args, server="127.0.0.1"):
    p = subprocess.run([str(UDPLOAD), "-s", f"{server}:{port}", "-d", str(d / "req.mp"),
                        "-j", *args], capture_output=True, text=True, timeout=120)
    assert p.stdout.strip(), (p.returncode, p.stderr)
    return p.returncode, json.loads(p.stdout)


class StandIn:
    """Answers each request with the reference probabilities; id 5: 429,
    id 6: nothing, id 7: values off by 0.01, id 8: answered twice."""

    def __init__(self, expect):
        self.expect = expect
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.ids = []
        self.stop = threading.Event()
        self.th = threading.Thread(target=self.serve, daemon=True)
        self.th.start()

    def serve(self):
        while not self.stop.is_set():
            try:
                buf, peer = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            m = msgpack.unpackb(buf, raw=False)
            self.ids.append(m["id"])
            x = np.frombuffer(m["inputs"][0]["data"], "<f4")
            assert x.shape == (64,)
            if m["id"] == 6:
                continue
            if m["id"] == 5:
                ans = {"id": 5, "error": "admission: \"late\"", "code": 429}
            else:
                y = self.expect + (0.01 if m["id"] == 7 else 0)
                ans = {"id": m["id"], "model": "digits", "model_version": "1",
                       "outputs": [{"name": "probabilities", "datatype": "FP32",
                                    "shape": [1, 10], "data": y.astype("<f4").tobytes()}]}
            b = msgpack.packb(ans, use_bin_type=True)
            for _ in range(2 if m["id"] == 8 else 1):
                self.sock.sendto(b, peer)

    def close(self):
        self.stop.set()
        self.th.join()
        self.sock.close()


def test_udpload_counts_every_outcome(udpload):
    expect = np.fromfile(udpload / "expect.f32", "<f4")
    s = StandIn(expect)
    try:
        rc, rep = run(udpload, s.port, "-n", "4", "-w", "2", "-e", str(udpload / "expect.f32"))
        assert rc == 0, rep
        assert rep["answered"] == 4 and rep["codes"] == {"200": 4} and rep["lost"] == 0, rep
        assert rep["wrong"] == 0 and rep["stray"] == 0 and rep["p50_us"] > 0, rep
        assert 0 < rep["cpu_s"] <= rep["wall_s"] * 1.5, rep   # its own CPU, measured
        assert s.ids == [1, 2, 3, 4], s.ids      # ids filled in, in order
        s.ids.clear()
        rc, rep = run(udpload, s.port, "-n", "10", "-w", "4", "-W", "0.3",
                      "-e", str(udpload / "expect.f32"))
        assert rc == 1, rep
        assert rep["codes"] == {"200": 8, "429": 1}, rep
        assert rep["answered"] == 9 and rep["lost"] == 1, rep
        assert rep["wrong"] == 1, rep           # id 7's values
        assert rep["stray"] == 1, rep           # id 8's second answer
        assert rep["example"] == "admission: \"late\"", rep
        assert sorted(s.ids) == list(range(1, 11)), s.ids
        # without -e nothing is compared: id 7 passes, the rest is the same
        rc, rep = run(udpload, s.port, "-n", "10", "-w", "10", "-W", "0.3")
        assert rep["wrong"] == 0 and rep["lost"] == 1 and rep["codes"]["429"] == 1, rep
    finally:
        s.close()


def test_udpload_refuses_bad_input(udpload, tmp_path):
    bad = tmp_path / "bad.mp"
    bad.write_bytes(msgpack.packb({"model": "digits", "id": 1}))
    p = subprocess.run([str(UDPLOAD), "-s", "127.0.0.1:9", "-d", str(bad)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "uint64" in p.stderr, p.stderr
    p = subprocess.run([str(UDPLOAD), "-s", "127.0.0.1", "-d", str(udpload / "req.mp")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "HOST:PORT" in p.stderr, p.stderr
    p = subprocess.run([str(UDPLOAD), "-d", str(udpload / "req.mp")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "-s and -d are required" in p.stderr, p.stderr


@pytest.mark.skipif(bool(dplib.netns_skip_reason()), reason=dplib.netns_skip_reason() or "ok")
def test_udpload_against_the_fast_path(udpload, netns, gateway):
    """5000 requests, 16 in flight, over a veth pair into a namespace: all
    answered 200 with the float64 reference's values (1e-4 relative)."""
    p = subprocess.run(["ip", "netns", "exec", netns, str(UDPLOAD), "-s", "198.18.0.1:9200",
                        "-d", str(udpload / "req.mp"), "-e", str(udpload / "expect.f32"),
                        "-n", "5000", "-w", "16", "-W", "5", "-k", "-j"],
                       capture_output=True, text=True, timeout=120)
    rep = json.loads(p.stdout)
    assert p.returncode == 0, (rep, gateway.log()[-2000:])
    assert rep["answered"] == 5000 and rep["codes"] == {"200": 5000}, rep
    assert rep["wrong"] == 0 and rep["lost"] == 0 and rep["stray"] == 0, rep
    assert rep["p50_us"] > 0 and 0 < rep["cpu_fraction"] <= 1.5, rep
    assert dplib.gwlib.metric(gateway.metrics(), "infergw_dpdk_requests_total", code="200") == 5000
