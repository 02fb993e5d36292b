"""bench/dpdk.sh's driver for the software ceiling (the UDP-vs-HTTP/2 part
loads with bench/udpload; `stages ADMIN_PORT BEFORE.json` gives its
per-request stage times).  `ceiling BIN TMP ADMIN_PORT SECS` prints
markdown:
  - requests/s through parse, route and reply with the `fake` backend (no
    model work) over net_pcap replaying a capture of requests forever
    (infinite_rx; with no tx_pcap the PMD counts and drops what is sent),
    on 1 lcore / 1 queue and on 2 lcores / 2 queues (net_pcap has one RX
    queue per rx_pcap file and no RSS: each queue replays its own copy),
    and the average cycles per stage from /metrics over the window;
  - dpdk-testpmd's forwarding rate on the same vdev and capture, one
    forwarding core (io: rx_burst -> tx_burst untouched; macswap: each
    frame's MACs swapped, a reply's minimum work), when it is installed
    (Debian: dpdk-dev);
  - the ratios to testpmd and to eRPC's published ~10 M RPC/s per core."""
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "dpdk"))
import dplib  # noqa: E402
import pcaplib as pl  # noqa: E402

ERPC_PER_CORE = 10e6            # Kalia et al., NSDI 2019: ~10 M small RPCs/s/core
STAGES = ("rx", "parse", "route", "encode", "tx")


def metrics(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("infergw_dpdk_"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def write_captures(tmp, queues):
    """One capture of 64 one-row requests per RX queue; their paths."""
    paths = []
    for q in range(queues):
        frames = [pl.udp_frame(pl.NET_PCAP_MAC, pl.PEER_MAC, pl.PEER_IP, pl.GW_IP,
                               40000 + 64 * q + i, 9200,
                               pl.dg_request(64 * q + i + 1, "digits", pl.digits_rows(1, i)))
                  for i in range(64)]
        paths.append(f"{tmp}/req{q}.pcap")
        pl.write_pcap(paths[-1], frames)
    return paths


def vdev(paths):
    return "--vdev=net_pcap0," + ",".join(f"rx_pcap={p}" for p in paths) + ",infinite_rx=1"


def gateway_ceiling(binary, tmp, admin, secs, lcores):
    """{answered, ok, per-stage (cycles, events)} per second over secs."""
    cfg = dplib.config_text(["--no-huge", "--no-pci", "-m", "512",
                             vdev(write_captures(tmp, lcores))],
                            admin_port=admin, model_kind="fake", max_queue=4096,
                            lcores=lcores, queues=lcores)
    path = f"{tmp}/ceiling{lcores}.yaml"
    with open(path, "w") as f:
        f.write(cfg)
    with open(f"{tmp}/ceiling{lcores}.log", "w") as log:
        p = subprocess.Popen([binary, "--config", path], stdout=log, stderr=log)
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
    r = {"answered": (ok + rej) / secs, "ok": ok / secs, "hz": b.get("infergw_dpdk_tsc_hz", 1)}
    for st in STAGES:
        r[st] = (d.get(f'infergw_dpdk_stage_cycles_total{{stage="{st}"}}', 0),
                 d.get(f'infergw_dpdk_stage_events_total{{stage="{st}"}}', 0))
    return r


def testpmd(tmp, secs, mode):
    """testpmd's RX rate (packets/s, the median of its per-second reports
    after the first) forwarding the 1-queue capture on one core; None when
    it is not installed or did not report."""
    exe = shutil.which("dpdk-testpmd")
    if not exe:
        return None
    cmd = [exe, "-l", "0,1", "--no-huge", "--no-pci", "-m", "512", "--no-shconf",
           vdev([f"{tmp}/req0.pcap"]), "--", "--nb-cores=1", f"--forward-mode={mode}",
           "--total-num-mbufs=8192", "--stats-period=1"]
    with open(f"{tmp}/testpmd-{mode}.log", "w") as log:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            time.sleep(secs + 2)
        finally:
            p.send_signal(signal.SIGINT)    # testpmd stops forwarding and exits
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    with open(f"{tmp}/testpmd-{mode}.log") as f:
        pps = [int(x) for x in re.findall(r"Rx-pps:\s+(\d+)", f.read())]
    return statistics.median(pps[1:]) if len(pps) > 1 else None


def ceiling(binary, tmp, admin, secs):
    runs = {n: gateway_ceiling(binary, tmp, admin, secs, n) for n in (1, 2)}
    pmd = {m: testpmd(tmp, secs, m) for m in ("io", "macswap")}
    print(f"### Software ceiling: fake backend, net_pcap replay ({secs:g} s each)")
    print()
    print("| measure | 1 lcore, 1 queue | 2 lcores, 2 queues |")
    print("|---|---|---|")
    print("| answered/s (200 + 429) | " +
          " | ".join(f"{runs[n]['answered']:,.0f}" for n in (1, 2)) + " |")
    print("| of which 200/s | " + " | ".join(f"{runs[n]['ok']:,.0f}" for n in (1, 2)) + " |")
    for st in STAGES:
        cells = []
        for n in (1, 2):
            c, e = runs[n][st]
            cells.append(f"{c / e if e else 0:,.0f} ({e / secs:,.0f}/s, "
                         f"{c / e / runs[n]['hz'] * 1e9 if e else 0:.0f} ns)")
        print(f"| {st}: cycles per event (events/s) | " + " | ".join(cells) + " |")
    print()
    print("route is the request's decode, admission and submit; with the fake backend the "
          "submit hands each batch to the fake's own completion thread (a mutex and a "
          "condition-variable signal per batch, backends/fake/fake.c), which route includes: "
          "not the cost of routing alone.")
    print()
    print("net_pcap has no RSS (each RX queue replays its own rx_pcap file), so the "
          "2-queue run spreads load by construction, not by hashing.")
    print()
    print("### Anchors: dpdk-testpmd on the same vdev and capture (1 forwarding core), eRPC")
    print()
    if not any(pmd.values()):
        print("dpdk-testpmd: not installed (Debian package dpdk-dev) or no report; "
              "no forwarding-rate anchor in this run.")
        print()
    print("| rate | packets or requests/s | gateway (1 lcore) as a fraction |")
    print("|---|---|---|")
    g = runs[1]["answered"]
    for m, v in pmd.items():
        if v:
            print(f"| testpmd {m} forwarding | {v:,.0f} | {g / v:.2%} |")
    print(f"| eRPC, published (Kalia et al., NSDI 2019) | ~{ERPC_PER_CORE:,.0f} per core | "
          f"{g / ERPC_PER_CORE:.2%} |")
    print()


def stages(port, before_path):
    """Per answered request since the snapshot in before_path (written
    there, and nothing printed, when it does not exist yet): the fast
    path's TSC time in each stage, as JSON {stage: ns per request, ...,
    "requests": n} (rx and tx run per burst: their time is shared out)."""
    now = metrics(port)
    if not os.path.exists(before_path):
        with open(before_path, "w") as f:
            json.dump(now, f)
        return
    with open(before_path) as f:
        before = json.load(f)
    d = {k: v - before.get(k, 0) for k, v in now.items()}
    n = sum(v for k, v in d.items() if k.startswith("infergw_dpdk_requests_total{"))
    hz = now.get("infergw_dpdk_tsc_hz", 0)
    out = {"requests": n}
    for st in STAGES:
        c = d.get(f'infergw_dpdk_stage_cycles_total{{stage="{st}"}}', 0)
        out[st] = round(c / n / hz * 1e9, 1) if n and hz else None
    print(json.dumps(out))


USAGE = """usage: dpdk_bench.py ceiling BIN TMP ADMIN_PORT SECS
       dpdk_bench.py stages ADMIN_PORT BEFORE.json"""

if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "ceiling":
        ceiling(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    elif len(sys.argv) == 4 and sys.argv[1] == "stages":
        stages(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(USAGE)
