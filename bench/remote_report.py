#!/usr/bin/python3
"""remote_report.py - the tables of bench/remote.sh.

usage: remote_report.py RUNS.jsonl LOGDIR AGENTS.jsonl SLO_MS

RUNS.jsonl: parse_h2load.py lines (rounds of the same name pooled: median
req/s, percentiles over every logged request).  AGENTS.jsonl: per round of
an agentsK/inproc run, the CPU clock ticks the agents used, so CPU per
request covers gateway and agents together.
"""
import json
import os
import statistics
import sys

from report import load, paired, pooled_percentiles
import rows


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def fmt(v, spec=".0f"):
    return "n/a" if v is None else format(v, spec)


def main():
    runs_path, logdir, agents_path, slo_ms = sys.argv[1:5]
    order, runs = load(runs_path)
    hz = os.sysconf("SC_CLK_TCK")
    agent_ticks = {}
    with open(agents_path) as f:
        for line in f:
            if line.strip():
                a = json.loads(line)
                agent_ticks.setdefault(a["name"], []).append(a["agent_ticks"])

    def row(name):
        rs = runs.get(name, [])
        ok = [r for r in rs if r.get("rps")]
        pp = pooled_percentiles(logdir, name) or {}
        done = sum(r.get("done") or 0 for r in ok)
        s2 = sum(r.get("s2xx") or 0 for r in ok)
        gw_cpu = med([r.get("cpu_us_per_req") for r in ok])
        ag = agent_ticks.get(name)
        ag_cpu = (sum(ag) / hz * 1e6 / done) if ag and done else None
        return {"rps": med([r["rps"] for r in ok]), "p50": pp.get("p50"), "p99": pp.get("p99"),
                "mean": med([r.get("mean") for r in ok]), "gw_cpu": gw_cpu, "ag_cpu": ag_cpu,
                "ok": s2 / done if done else None, "rounds": len(ok),
                "bad": sum((r.get("failed") or 0) + (r.get("errored") or 0) +
                           (r.get("s5xx") or 0) for r in rs)}

    R = {n: row(n) for n in order}
    print("| run | req/s (median) | p50 ms | p99 ms | gateway CPU µs/req | agents CPU µs/req "
          "| 200s | failed/5xx |")
    print("|---|---|---|---|---|---|---|---|")
    for n in order:
        r = R[n]
        print(f"| {n} | {fmt(r['rps'])} | {fmt(r['p50'], '.3f')} | {fmt(r['p99'], '.3f')} | "
              f"{fmt(r['gw_cpu'], '.1f')} | {fmt(r['ag_cpu'], '.1f')} | "
              f"{fmt(r['ok'] and 100 * r['ok'], '.1f')}% | {r['bad']} |")
    print()
    for k in ("agents1", "agents2", "agents4"):
        p = paired(runs, k, "inproc")
        if p:
            drop = f", {p[4]} client-bound dropped" if p[4] else ""
            print(f"- {k} / inproc throughput (same run, median of per-round ratios): "
                  f"{p[0]:.2f} ({p[1]:.2f}-{p[2]:.2f}, {p[3]} rounds{drop})")
            rows.emit("remote", f"{k}_over_inproc", round(p[0], 4),
                      f"digits req/s, {k[-1]} remote agent(s) / in-process CPU", unit="x",
                      lo=round(p[1], 4), hi=round(p[2], 4), rounds=p[3], dropped=p[4])
    li, la = R.get("lat-inproc", {}), R.get("lat-agents1", {})
    if li.get("mean") is not None and la.get("mean") is not None:
        print(f"- RPC overhead per request (one at a time, mean latency agents1 - inproc): "
              f"{(la['mean'] - li['mean']) * 1e3:.0f} µs "
              f"(p50: {fmt(la['p50'] and li['p50'] and (la['p50'] - li['p50']) * 1e3)} µs)")
        rows.emit("remote", "rpc_overhead_us", round((la["mean"] - li["mean"]) * 1e3, 1),
                  "RPC overhead per request (mean latency, agents1 - inproc, one at a time)",
                  unit="µs")
    sc, sa = R.get("slo-cpu", {}), R.get("slo-cpu+agents", {})
    if sc.get("rps") and sa.get("rps"):
        g1, g2 = sc["rps"] * (sc["ok"] or 0), sa["rps"] * (sa["ok"] or 0)
        print(f"- same objective ({slo_ms} ms): goodput (200s/s) CPU only {g1:.0f}, "
              f"CPU + 2 agents {g2:.0f} (ratio {g2 / g1 if g1 else float('nan'):.2f}); "
              f"p99 {fmt(sc['p99'], '.2f')} ms vs {fmt(sa['p99'], '.2f')} ms")
        if g1:
            rows.emit("remote", "slo_goodput_gain", round(g2 / g1, 4),
                      f"goodput at one objective ({slo_ms} ms), CPU + 2 agents / CPU only",
                      unit="x")


if __name__ == "__main__":
    main()
