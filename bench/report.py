#!/usr/bin/python3
"""report.py - markdown tables from parse_h2load.py JSON lines.

usage: report.py health RUNS.jsonl [LOGDIR]   infergw vs nghttpd vs h2o
       report.py infer  RUNS.jsonl [LOGDIR]   infer vs health on one infergw

Rows with the same name are rounds of the same run.  A row shows the median
req/s over its rounds, the range, and latency percentiles over every request
of every round (LOGDIR/NAME.log, h2load --log-file lines pooled) or, without
logs, those of the median round.  Ratios are the median of per-round ratios:
each round runs the servers back to back, so a round's ratio compares runs
that saw the same neighbours on a shared machine.
"""
import json
import os
import statistics
import sys


def load(path):
    runs, order = {}, []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            if r["name"] not in runs:
                order.append(r["name"])
                runs[r["name"]] = []
            runs[r["name"]].append(r)
    return order, runs


def bad(r):
    return sum(r.get(k) or 0 for k in ("failed", "errored", "timeout", "s3xx", "s4xx", "s5xx"))


def pooled_percentiles(logdir, name):
    path = os.path.join(logdir, name + ".log") if logdir else None
    if not path or not os.path.exists(path):
        return None
    durs = []
    with open(path, errors="replace") as f:
        for line in f:
            p = line.split()
            if len(p) >= 3 and p[1].isdigit():
                durs.append(int(p[2]) / 1e3)
    if not durs:
        return None
    durs.sort()
    n = len(durs)
    return {"n": n, **{"p%d" % q: durs[min(n - 1, max(0, -(-q * n // 100) - 1))]
                       for q in (50, 90, 99)}, "max": durs[-1]}


def summary(rounds, logdir, name):
    ok = [r for r in rounds if r.get("rps")]
    s = {"name": name, "rounds": len(rounds), "ok_rounds": len(ok),
         "bad": sum(bad(r) for r in rounds)}
    if not ok:
        s["error"] = rounds[0].get("error", "no result")
        return s
    rps = sorted(r["rps"] for r in ok)
    s["rps"] = statistics.median(rps)
    s["rps_lo"], s["rps_hi"] = rps[0], rps[-1]
    cpu = [r["cpu_us_per_req"] for r in ok if r.get("cpu_us_per_req")]
    util = [r["cpu_util"] for r in ok if r.get("cpu_util")]
    s["cpu"] = statistics.median(cpu) if cpu else None
    for k in ("syscalls_per_req", "client_us_per_req"):
        v = [r[k] for r in ok if r.get(k) is not None]
        s[k] = statistics.median(v) if v else None
    s["util"] = statistics.median(util) if util else None
    pp = pooled_percentiles(logdir, name)
    if pp:
        s.update(pp)
    else:
        mid = sorted(ok, key=lambda r: r["rps"])[(len(ok) - 1) // 2]
        for k in ("p50", "p90", "p99", "max"):
            s[k] = mid.get(k)
        s["n"] = None
    return s


def ms(v):
    return "-" if v is None else ("%.2f" % v if v < 10 else "%.1f" % v)


def fmt_rps(v):
    return "-" if v is None else "{:,.0f}".format(v)


def table(order, runs, logdir):
    rows = {n: summary(runs[n], logdir, n) for n in order}
    print("| run | req/s (median) | req/s range | p50 ms | p90 ms | p99 ms | max ms "
          "| server CPU µs/req | server CPU util | server syscalls/req | h2load CPU µs/req "
          "| non-2xx/failed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in order:
        s = rows[n]
        if "rps" not in s:
            print("| %s | FAILED: %s | | | | | | | | | | |" % (n, str(s.get("error")).replace("|", "/")))
            continue
        print("| %s | %s | %s-%s | %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
            n, fmt_rps(s["rps"]), fmt_rps(s["rps_lo"]), fmt_rps(s["rps_hi"]),
            ms(s.get("p50")), ms(s.get("p90")), ms(s.get("p99")), ms(s.get("max")),
            "-" if s.get("cpu") is None else "%.2f" % s["cpu"],
            "-" if s.get("util") is None else "%.0f%%" % (100 * s["util"]),
            "-" if s.get("syscalls_per_req") is None else "%.3f" % s["syscalls_per_req"],
            "-" if s.get("client_us_per_req") is None else "%.2f" % s["client_us_per_req"],
            s["bad"]))
    return rows


def paired(runs, a, b, key="rps", invert=False):
    """Median over rounds of a/b (b/a when invert) for `key`."""
    q = []
    for ra, rb in zip(runs.get(a, []), runs.get(b, [])):
        x, y = ra.get(key), rb.get(key)
        if x and y:
            q.append(y / x if invert else x / y)
    return (statistics.median(q), min(q), max(q), len(q)) if q else None


def health(path, logdir):
    order, runs = load(path)
    rows = table(order, runs, logdir)
    print()
    print("| anchor ratio | req/s: median of per-round ratios (range) | req/s: ratio of medians "
          "| CPU efficiency (anchor µs/req ÷ infergw µs/req) | target (req/s) |")
    print("|---|---:|---:|---:|---:|")
    for anchor, target in (("nghttpd", 1.0), ("h2o", 0.9)):
        p = paired(runs, "infergw", anchor)
        e = paired(runs, "infergw", anchor, "cpu_us_per_req", invert=True)
        rm = (rows["infergw"].get("rps") or 0) / rows[anchor]["rps"] \
            if rows.get(anchor, {}).get("rps") else None
        print("| infergw / %s | %s | %s | %s | >= %.1fx%s |" % (
            anchor,
            "-" if not p else "**%.2fx** (%.2f-%.2f, %d rounds)" % p,
            "-" if rm is None else "%.2fx" % rm,
            "-" if not e else "%.2fx (%.2f-%.2f)" % e[:3],
            target,
            "" if not p else (" (met)" if p[0] >= target else " (**not met**)")))


def infer(path, logdir):
    order, runs = load(path)
    table(order, runs, logdir)
    p = paired(runs, "infer", "health")
    c = paired(runs, "infer", "health", "cpu_us_per_req")
    print()
    line = []
    if p:
        line.append("infer / health req/s (same server, same run, median of per-round ratios): "
                    "**%.2fx** (range %.2f-%.2f, %d rounds)" % p)
    if c:
        line.append("server CPU per infer request = %.1fx a health request" % c[0])
    if line:
        print("; ".join(line) + ".")

if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or sys.argv[1] not in ("health", "infer"):
        sys.exit(__doc__)
    {"health": health, "infer": infer}[sys.argv[1]](sys.argv[2],
                                                    sys.argv[3] if len(sys.argv) == 4 else None)
