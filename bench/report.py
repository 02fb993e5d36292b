#!/usr/bin/python3
"""report.py - markdown tables from parse_h2load.py JSON lines.

usage: report.py health RUNS.jsonl [LOGDIR]   infergw vs nghttpd vs h2o
                                              (and infergw-h1 vs h2o-h1)
       report.py infer  RUNS.jsonl [LOGDIR]   infer vs health on one infergw

RUNS.jsonl holds throughput rounds (bench_round: h2load without
--log-file); lines with the same name are rounds of the same run.  A row
shows the median req/s over its rounds, the range, h2load's own CPU share
and how many rounds were client-bound (h2load above BENCH_CLIENT_BOUND of
its core), and latency percentiles over every request of the separate
latency rounds (LOGDIR/NAME.log, bench_latency_round's pooled --log-file
lines).  Ratios are the median of per-round ratios: each round runs the
servers back to back, so a round's ratio compares runs that saw the same
neighbours on a shared machine; a round where either side was client-bound
is dropped from the ratio (the table says how many).  Each ratio is also
handed to the summary as a row (bench/rows.py).
"""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rows  # noqa: E402


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
    cu = [r["client_util"] for r in ok if r.get("client_util") is not None]
    s["client_util"] = statistics.median(cu) if cu else None
    s["client_bound"] = sum(1 for r in ok if r.get("client_bound"))
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
    print("| run | req/s (median) | req/s range | rounds (client-bound) | p50 ms | p90 ms "
          "| p99 ms | max ms | server CPU µs/req | server CPU util | server syscalls/req "
          "| h2load CPU µs/req | h2load CPU util | non-2xx/failed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in order:
        s = rows[n]
        if "rps" not in s:
            print("| %s | FAILED: %s | | | | | | | | | | | | |" % (
                n, str(s.get("error")).replace("|", "/")))
            continue
        print("| %s | %s | %s-%s | %d (%d) | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
            n, fmt_rps(s["rps"]), fmt_rps(s["rps_lo"]), fmt_rps(s["rps_hi"]),
            s["ok_rounds"], s["client_bound"],
            ms(s.get("p50")), ms(s.get("p90")), ms(s.get("p99")), ms(s.get("max")),
            "-" if s.get("cpu") is None else "%.2f" % s["cpu"],
            "-" if s.get("util") is None else "%.0f%%" % (100 * s["util"]),
            "-" if s.get("syscalls_per_req") is None else "%.3f" % s["syscalls_per_req"],
            "-" if s.get("client_us_per_req") is None else "%.2f" % s["client_us_per_req"],
            "-" if s.get("client_util") is None else "%.0f%%" % (100 * s["client_util"]),
            s["bad"]))
    return rows


def paired(runs, a, b, key="rps", invert=False):
    """Median over rounds of a/b (b/a when invert) for `key`, from the
    rounds where neither side was client-bound: (median, min, max, rounds
    used, rounds dropped, the per-round ratios), or None when no round is
    usable."""
    q, dropped = [], 0
    for ra, rb in zip(runs.get(a, []), runs.get(b, [])):
        x, y = ra.get(key), rb.get(key)
        if not (x and y):
            continue
        if ra.get("client_bound") or rb.get("client_bound"):
            dropped += 1
            continue
        q.append(y / x if invert else x / y)
    return (statistics.median(q), min(q), max(q), len(q), dropped, q) if q else None


def dropped_of(runs, a, b):
    """Rounds of a and b with a result where either side was client-bound."""
    return sum(1 for ra, rb in zip(runs.get(a, []), runs.get(b, []))
               if ra.get("rps") and rb.get("rps")
               and (ra.get("client_bound") or rb.get("client_bound")))


def ratio_cell(p, dropped):
    if not p:
        return "- (%d rounds client-bound)" % dropped if dropped else "-"
    return "**%.2fx** (%.2f-%.2f, %d rounds%s)" % (
        p[0], p[1], p[2], p[3], ", %d client-bound dropped" % p[4] if p[4] else "")


def budget_note():
    """The servers' CPU budget (bench/lib.sh sets $BENCH_CPU_NOTE), or None."""
    return os.environ.get("BENCH_CPU_NOTE") or None


def emit_ratio(part, key, label, p, dropped, target=None, cmd=None):
    """The ratio as a summary row (value None when every round was dropped);
    the servers' CPU budget, if any, as its note."""
    if p:
        return rows.emit(part, key, round(p[0], 4), label, unit="x", lo=round(p[1], 4),
                         hi=round(p[2], 4), rounds=p[3], dropped=p[4], target=target, cmd=cmd,
                         per=[round(x, 4) for x in p[5]], note=budget_note())
    why = "no usable round (client-bound or failed)"
    if budget_note():
        why += "; " + budget_note()
    return rows.emit(part, key, None, label, unit="x", dropped=dropped, target=target, cmd=cmd,
                     note=why)


# (protocol, infergw's run, anchor's run, target of issue 18, row key)
HEALTH_PAIRS = (
    ("HTTP/2", "infergw", "nghttpd", 1.3, "vs_nghttpd"),
    ("HTTP/2", "infergw", "h2o", 1.05, "vs_h2o"),
    ("HTTP/1.1", "infergw-h1", "h2o-h1", 1.1, "h1_vs_h2o"),
)


def health(path, logdir):
    order, runs = load(path)
    summ = table(order, runs, logdir)
    print()
    print("| anchor ratio | req/s: median of per-round ratios (range; rounds) | req/s: ratio "
          "of medians | CPU efficiency (anchor µs/req ÷ infergw µs/req) | target (req/s) |")
    print("|---|---:|---:|---:|---:|")
    cpu_rows = []
    for proto, mine, anchor, target, key in HEALTH_PAIRS:
        if mine not in runs or anchor not in runs:
            continue
        p = paired(runs, mine, anchor)
        d = dropped_of(runs, mine, anchor)
        e = paired(runs, mine, anchor, "cpu_us_per_req", invert=True)
        rm = (summ[mine].get("rps") or 0) / summ[anchor]["rps"] \
            if summ.get(anchor, {}).get("rps") else None
        print("| %s %s / %s | %s | %s | %s | >= %.2fx%s |" % (
            proto, mine, anchor, ratio_cell(p, d),
            "-" if rm is None else "%.2fx" % rm,
            "-" if not e else "%.2fx (%.2f-%.2f)" % e[:3],
            target,
            "" if not p else (" (met)" if p[0] >= target else " (**not met**)")))
        emit_ratio("h2", key, "%s health req/s, %s / %s" % (proto, mine, anchor), p, d,
                   target=">= %.2fx" % target)
        if e:
            cpu_rows.append(("h2", key + "_cpu", round(e[0], 4),
                             "%s health CPU efficiency, %s µs/req / %s µs/req" % (
                                 proto, anchor, mine), e))
    # the req/s ratios first (the summary shows the first rows of a part)
    for part, key, v, label, e in cpu_rows:
        rows.emit(part, key, v, label, unit="x", lo=round(e[1], 4), hi=round(e[2], 4),
                  rounds=e[3], note=budget_note())


def infer(path, logdir):
    order, runs = load(path)
    table(order, runs, logdir)
    p = paired(runs, "infer", "health")
    d = dropped_of(runs, "infer", "health")
    c = paired(runs, "infer", "health", "cpu_us_per_req")
    print()
    line = []
    line.append("infer / health req/s (same server, same run, median of per-round ratios): "
                + ratio_cell(p, d))
    if c:
        line.append("server CPU per infer request = %.1fx a health request" % c[0])
    print("; ".join(line) + ".")
    emit_ratio("infer", "over_health", "digits infer (1 row, JSON) / health req/s, same server",
               p, d, target=">= 0.50x")
    if c:
        rows.emit("infer", "cpu_over_health", round(c[0], 3),
                  "server CPU per infer request / per health request", unit="x",
                  lo=round(c[1], 3), hi=round(c[2], 3), rounds=c[3], note=budget_note())
    if "subnormal" in runs:
        s = paired(runs, "subnormal", "infer")
        print()
        print("subnormal / infer req/s (the same request with its 64 values subnormal, "
              "1e-39 .. 2.3e-39; median of per-round ratios): " +
              ratio_cell(s, dropped_of(runs, "subnormal", "infer")) +
              ". Computed flushed to zero (cpu.c be_cpu_flush_enter); "
              "the rest of the gap is parsing (1e-39 takes the general float path).")
        emit_ratio("infer", "subnormal_over_infer",
                   "digits infer, 64 subnormal values / the normal row, req/s", s,
                   dropped_of(runs, "subnormal", "infer"))
    if "digits17" in runs:
        s = paired(runs, "digits17", "infer")
        print()
        print("17-digit / infer req/s (the row's 64 values as a Python client prints float32 "
              "data, json.dumps of the doubles: 17 significant digits; median of per-round "
              "ratios): " + ratio_cell(s, dropped_of(runs, "digits17", "infer")) + ".")
        emit_ratio("infer", "digits17_over_infer",
                   "digits infer, 64 values of 17 digits (a Python client's float32) / "
                   "the short row, req/s", s, dropped_of(runs, "digits17", "infer"))

if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or sys.argv[1] not in ("health", "infer"):
        sys.exit(__doc__)
    {"health": health, "infer": infer}[sys.argv[1]](sys.argv[2],
                                                    sys.argv[3] if len(sys.argv) == 4 else None)
