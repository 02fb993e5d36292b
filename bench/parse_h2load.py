#!/usr/bin/python3
"""parse_h2load.py - turn one h2load run into one JSON object.

usage: parse_h2load.py NAME OUT [--log LOGFILE] [--ticks N | --cpu-ns N] [--syscalls N]
                        [--client-time FILE] [--bound F] [--latency]

OUT is h2load's stdout+stderr.  From it: "finished in Xs, N req/s",
"requests: ... done, ... succeeded, ... failed, ... errored, ... timeout",
"status codes: ... 2xx, ... 3xx, ... 4xx, ... 5xx" and "time for request:
min max mean sd".  LOGFILE (h2load --log-file) has one line per request:
start_us <TAB> status <TAB> duration_us; from it p50/p90/p99 (nearest rank).
--ticks (user+system clock ticks the server process used during the run,
from /proc/PID/stat) gives cpu_us_per_req: the server's CPU cost per
completed request, which still tells servers apart when h2load, not the
server, is the bottleneck.  --cpu-ns is the same in nanoseconds (the
threads' sum_exec_runtime from /proc/PID/task/*/schedstat): a clock tick
is 10 ms, a round of a few hundred ms of server CPU was +-5% from the
ticks' rounding alone.  --syscalls (read+write syscalls of the server
during the run, /proc/PID/io syscr+syscw) gives syscalls_per_req.
--client-time (GNU time -f "%U %S %e" output of h2load) gives
client_us_per_req (what the server's framing costs the client),
client_util (h2load's user+system CPU / its wall time: the share of its one
core it used) and client_bound: client_util above --bound (default 0.9, or
$BENCH_CLIENT_BOUND), a round where h2load, not the server, was the
bottleneck; such a round is kept in the tables but never used for a server
ratio (report.py).
All other times are printed in milliseconds.
"""
import json
import os
import re

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def dur_ms(tok):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)", tok)
    if not m:
        return None
    return float(m.group(1)) * UNITS[m.group(2)]


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def client_cpu(path):
    """(user+system seconds, wall seconds or None) from GNU time's "%U %S [%e]"."""
    try:
        lines = [l for l in open(path).read().split("\n") if l.strip()]
        last = lines[-1].split()
        cpu = float(last[0]) + float(last[1])
        wall = float(last[2]) if len(last) > 2 else None
        return cpu, wall
    except (OSError, IndexError, ValueError):
        return None, None


def default_bound():
    try:
        return float(os.environ.get("BENCH_CLIENT_BOUND", "0.9"))
    except ValueError:
        return 0.9


def parse(name, out_path, log_path=None, ticks=None, syscalls=None, client_time=None,
          bound=None, cpu_ns=None):
    r = {"name": name, "rps": None, "secs": None}
    try:
        text = open(out_path, errors="replace").read()
    except OSError as e:
        r["error"] = str(e)
        return r
    m = re.search(r"finished in ([0-9.]+)(us|ms|s), ([0-9.]+) req/s", text)
    if m:
        r["secs"] = float(m.group(1)) * UNITS[m.group(2)] / 1e3
        r["rps"] = float(m.group(3))
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    if m:
        for i, k in enumerate(["total", "started", "done", "succeeded", "failed",
                               "errored", "timeout"]):
            r[k] = int(m.group(i + 1))
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if m:
        for i, k in enumerate(["s2xx", "s3xx", "s4xx", "s5xx"]):
            r[k] = int(m.group(i + 1))
    m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", text)
    if m:
        r["min"], r["max"], r["mean"], r["sd"] = (dur_ms(t) for t in m.groups())
    if log_path:
        durs = []
        try:
            with open(log_path, errors="replace") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 3 and parts[1].isdigit():
                        durs.append(int(parts[2]) / 1e3)
        except OSError:
            pass
        durs.sort()
        r["logged"] = len(durs)
        for p in (50, 90, 99):
            r["p%d" % p] = pct(durs, p)
    if cpu_ns is None and ticks is not None:
        cpu_ns = ticks * 1e9 / os.sysconf("SC_CLK_TCK")
    if cpu_ns is not None and r.get("done"):
        r["cpu_us_per_req"] = cpu_ns / 1e3 / r["done"]
        r["cpu_util"] = cpu_ns / 1e9 / r["secs"] if r.get("secs") else None
    if syscalls is not None and r.get("done"):
        r["syscalls_per_req"] = syscalls / r["done"]
    if client_time:
        cpu, wall = client_cpu(client_time)
        if cpu is not None and r.get("done"):
            r["client_us_per_req"] = cpu * 1e6 / r["done"]
        # h2load's own wall time, else the run's: startup is short next to it
        span = wall if wall else r.get("secs")
        if cpu is not None and span:
            r["client_util"] = cpu / span
            r["client_bound"] = r["client_util"] > (default_bound() if bound is None else bound)
    if r["rps"] is None:
        tail = [l for l in text.splitlines() if l.strip()][-5:]
        r["error"] = " | ".join(tail) if tail else "no h2load output"
    return r


def main():
    import argparse
    ap = argparse.ArgumentParser(usage=__doc__)
    ap.add_argument("name")
    ap.add_argument("out")
    ap.add_argument("--log")
    ap.add_argument("--ticks", type=int)
    ap.add_argument("--cpu-ns", type=int)
    ap.add_argument("--syscalls", type=int)
    ap.add_argument("--client-time")
    ap.add_argument("--bound", type=float)
    ap.add_argument("--latency", action="store_true",
                    help="a latency round (--log-file): never used for throughput ratios")
    a = ap.parse_args()
    r = parse(a.name, a.out, a.log, a.ticks, a.syscalls, a.client_time, a.bound, a.cpu_ns)
    if a.latency:
        r["latency_round"] = True
    print(json.dumps(r))


if __name__ == "__main__":
    main()
