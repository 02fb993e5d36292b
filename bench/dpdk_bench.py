"""bench/dpdk.sh's driver.  Parts:
  ceiling  requests/s per lcore through parse, route and reply with the
           `fake` backend (no model work) over net_pcap replaying a capture
           of requests forever (infinite_rx, TX dropped by the PMD), and
           the average cycles per stage from /metrics over the window.
  udp      closed-loop client (WINDOW outstanding) inside the namespace:
           req/s, p50, p99 (run in the namespace by dpdk.sh).
Prints markdown lines."""
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "dpdk"))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def udp(host, port, n, window):
    import msgpack
    import numpy as np

    x = np.arange(64, dtype="<f4") % 17
    body = lambda i: msgpack.packb({"id": i, "model": "digits", "inputs": [
        {"name": "input", "datatype": "FP32", "shape": [1, 64], "data": x.tobytes()}]},
        use_bin_type=True)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, 11, 1)  # SO_NO_CHECK: see tests/dpdk/udp_loop.py
    s.settimeout(1.0)
    sent, lat, lost, nxt = {}, [], 0, 0
    t0 = time.perf_counter()
    while len(lat) + lost < n:
        while nxt < n and len(sent) < window:
            sent[nxt] = time.perf_counter()
            s.sendto(body(nxt), (host, port))
            nxt += 1
        try:
            d, _ = s.recvfrom(65536)
        except socket.timeout:
            lost += len(sent)
            sent.clear()
            continue
        i = msgpack.unpackb(d, raw=False).get("id")
        if i in sent:
            lat.append(time.perf_counter() - sent.pop(i))
    dt = time.perf_counter() - t0
    print(json.dumps({"rps": len(lat) / dt, "p50_us": pct(lat, 50) * 1e6,
                      "p99_us": pct(lat, 99) * 1e6, "n": len(lat), "lost": lost}))


def metrics(port):
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("infergw_dpdk_"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def ceiling(binary, tmp, admin, secs):
    import msgpack

    import dplib

    feats, _ = dplib.heldout()
    frames = [dplib.udp_frame(msgpack.packb(dplib.request_map(i, feats[i:i + 1]),
                                            use_bin_type=True), sport=40000 + i)
              for i in range(64)]
    dplib.pcap_write(f"{tmp}/req.pcap", frames)
    cfg = dplib.config_text(["--no-huge", "--no-pci", "-m", "512",
                             f"--vdev=net_pcap0,rx_pcap={tmp}/req.pcap,infinite_rx=1"],
                            admin_port=admin, model_kind="fake", max_queue=4096)
    open(f"{tmp}/ceiling.yaml", "w").write(cfg)
    log = open(f"{tmp}/ceiling.log", "w")
    p = subprocess.Popen([binary, "--config", f"{tmp}/ceiling.yaml"], stdout=log, stderr=log)
    try:
        time.sleep(3)
        a = metrics(admin)
        time.sleep(secs)
        b = metrics(admin)
    finally:
        p.terminate()
        p.wait(timeout=20)
    d = {k: b[k] - a.get(k, 0) for k in b}
    ok = d.get('infergw_dpdk_requests_total{code="200"}', 0)
    rej = d.get('infergw_dpdk_requests_total{code="429"}', 0)
    print(f"| answered/s (200 + 429), 1 lcore | {(ok + rej) / secs:,.0f} |")
    print(f"| of which 200/s | {ok / secs:,.0f} |")
    hz = b.get("infergw_dpdk_tsc_hz", 1)
    for st in ("rx", "parse", "route", "encode", "tx"):
        c = d.get(f'infergw_dpdk_stage_cycles_total{{stage="{st}"}}', 0)
        e = d.get(f'infergw_dpdk_stage_events_total{{stage="{st}"}}', 0)
        print(f"| {st}: cycles per event (events/s) | {c / e if e else 0:,.0f} "
              f"({e / secs:,.0f}/s, {c / e / hz * 1e9 if e else 0:.0f} ns) |")


if __name__ == "__main__":
    if sys.argv[1] == "udp":
        udp(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        ceiling(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
