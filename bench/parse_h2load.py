#!/usr/bin/python3
"""parse_h2load.py - turn one h2load run into one JSON object.

usage: parse_h2load.py NAME OUT [--log LOGFILE] [--ticks N] [--syscalls N]
                        [--client-time FILE]

OUT is h2load's stdout+stderr.  From it: "finished in Xs, N req/s",
"requests: ... done, ... succeeded, ... failed, ... errored, ... timeout",
"status codes: ... 2xx, ... 3xx, ... 4xx, ... 5xx" and "time for request:
min max mean sd".  LOGFILE (h2load --log-file) has one line per request:
start_us <TAB> status <TAB> duration_us; from it p50/p90/p99 (nearest rank).
--ticks (user+system clock ticks the server process used during the run,
from /proc/PID/stat) gives cpu_us_per_req: the server's CPU cost per
completed request, which still tells servers apart when h2load, not the
server, is the bottleneck.  --syscalls (read+write syscalls of the server
during the run, /proc/PID/io syscr+syscw) gives syscalls_per_req.
--client-time (GNU time -f "%U %S" output of h2load) gives
client_us_per_req: what the server's framing costs the client.
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


def parse(name, out_path, log_path=None, ticks=None, syscalls=None, client_time=None):
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
    if ticks is not None and r.get("done"):
        hz = os.sysconf("SC_CLK_TCK")
        r["cpu_us_per_req"] = ticks / hz * 1e6 / r["done"]
        r["cpu_util"] = ticks / hz / r["secs"] if r.get("secs") else None
    if syscalls is not None and r.get("done"):
        r["syscalls_per_req"] = syscalls / r["done"]
    if client_time and r.get("done"):
        try:
            last = [l for l in open(client_time).read().split("\n") if l.strip()][-1].split()
            r["client_us_per_req"] = (float(last[0]) + float(last[1])) * 1e6 / r["done"]
        except (OSError, IndexError, ValueError):
            pass
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
    ap.add_argument("--syscalls", type=int)
    ap.add_argument("--client-time")
    a = ap.parse_args()
    print(json.dumps(parse(a.name, a.out, a.log, a.ticks, a.syscalls, a.client_time)))


if __name__ == "__main__":
    main()
