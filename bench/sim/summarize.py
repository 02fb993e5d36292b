#!/usr/bin/python3
"""summarize.py - markdown tables from the CSVs bench/sim/report.sh writes.

usage: /usr/bin/python3 bench/sim/summarize.py bench/sim/results > summary.md
"""
import csv
import os
import sys
from collections import defaultdict


def load(d, name):
    p = os.path.join(d, name)
    return list(csv.DictReader(open(p))) if os.path.exists(p) else []


def f(x, nd=3):
    try:
        v = float(x)
    except ValueError:
        return x
    if v != v:
        return "-"
    return "%.*f" % (nd, v)


def pct(x, nd=1):
    try:
        v = float(x)
    except ValueError:
        return x
    return "-" if v != v else "%.*f%%" % (nd, 100 * v)


def table(hdr, rows):
    out = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def sweep(rows):
    if not rows:
        return ""
    def key(r):
        return r["policy"] if r["variant"] == "gateway" else r["policy"] + "+" + r["variant"]

    by = {(r["arrival"], key(r), r["load"]): r for r in rows}
    loads = sorted({r["load"] for r in rows}, key=float)
    pols = ("slo", "least-queue", "round-robin", "slo+reroute-displaced", "slo+displace-last")
    out = []
    for arr in ("poisson", "onoff"):
        hdr = ["load"] + ["%s att / goodput" % p for p in pols] + ["slo: p1 / p2 / p3 att",
                                                                   "slo: 429 late/shed/displaced, 504 (+hopeless), late 200"]
        t = []
        for ld in loads:
            line = [ld]
            for p in pols:
                r = by.get((arr, p, ld))
                line.append("%s / %s" % (pct(r["slo_att"]), f(r["goodput_per_capacity"], 2)) if r else "")
            r = by.get((arr, "slo", ld))
            if r:
                line.append("%s / %s / %s" % (pct(r["att_p1"]), pct(r["att_p2"]), pct(r["att_p3"])))
                line.append("%s/%s/%s, %s (+%s), %s" % (r["rej_late"], r["rej_shed"], r["rej_displaced"],
                                                        r["expired_504"], r["hopeless_504"], r["late_done"]))
            t.append(line)
        out.append("Arrivals: %s (capacity %s req/s; goodput: requests within SLO per second / capacity)\n\n" % (arr, f(rows[0]["capacity_rps"], 0)) + table(hdr, t))
    k = ("poisson", "slo", "2.000")
    if k in by:
        out.append("Command of a point (load 2.0, slo, Poisson; the others differ in --load, --policy,"
                   " --arrival, --reroute-displaced, --displace-last): `%s`"
                   % by[k]["cmd"])
    return "\n\n".join(out)


def overload(rows):
    if not rows:
        return ""
    g = defaultdict(list)
    for r in rows:
        g[(r["scenario"], r["load"], r["arrival"], r["policy"], r["variant"])].append(r)
    hdr = ["scenario", "load", "arrival", "policy", "variant", "seeds", "goodput (x capacity) mean [min-max]",
           "rows goodput", "att all", "att p1", "att p2", "att p3",
           "429 late / shed / displaced", "504 (+hopeless)", "late 200", "command (seed 1)"]
    t = []
    for (sc, ld, arr, pol, var), rs in g.items():
        gp = [float(r["goodput_per_capacity"]) for r in rs]
        m = lambda k: sum(float(r[k]) for r in rs) / len(rs)  # noqa: E731
        t.append([sc, ld, arr, pol, var, len(rs), "%.3f [%.3f-%.3f]" % (sum(gp) / len(gp), min(gp), max(gp)),
                  "%.3f" % m("goodput_rows_per_capacity"),
                  pct(m("slo_att")), pct(m("att_p1")), pct(m("att_p2")), pct(m("att_p3")),
                  "%.0f / %.0f / %.0f" % (m("rej_late"), m("rej_shed"), m("rej_displaced")),
                  "%.0f (+%.0f)" % (m("expired_504"), m("hopeless_504")), "%.0f" % m("late_done"),
                  "`%s`" % rs[0]["cmd"]])
    return table(hdr, t)


def fill(rows):
    if not rows:
        return ""
    hdr = ["scenario", "arrival", "lp share", "shed_wait_fraction", "variant", "GPU throughput util",
           "GPU busy", "CPU / DPU throughput util", "hp att", "hp p99 ms", "lp goodput req/s", "lp att",
           "429 full / shed / late / displaced", "504 (+hopeless)", "late 200", "command"]
    t = []
    for r in rows:
        cmd = r["cmd"]
        lp = "0" if "lp=0 " in cmd + " " else ("0.2" if "lp=0.2" in cmd else "2.0")
        var = r["variant"]
        t.append([r["scenario"], r["arrival"], lp, r["shed_frac"] if lp != "0" else "-", var,
                  pct(r["tput_gpu"]), pct(r["util_gpu"]), "%s / %s" % (pct(r["tput_cpu"]), pct(r["tput_dpu"])),
                  pct(r["att_p1"], 2), f(r["p99_p1_ms"], 2), f(r["good_p3_rps"], 0), pct(r["att_p3"]),
                  "%s / %s / %s / %s" % (r["rej_full"], r["rej_shed"], r["rej_late"], r["rej_displaced"]),
                  "%s (+%s)" % (r["expired_504"], r["hopeless_504"]), r["late_done"],
                  "`%s`" % cmd])
    return table(hdr, t)


def scale(rows):
    if not rows:
        return ""
    hdr = ["scenario", "backends", "candidates", "variant", "load", "requests", "simulated s", "wall s",
           "simulated req/s (wall)", "events", "goodput (x cap): completed in window / arrival cohort", "att all",
           "att p1 / p2 / p3", "command"]
    t = [[r["scenario"], r["backends"], r["candidates"], r["variant"], r["load"], r["requests"], f(r["sim_s"], 3),
          f(r["wall_s"], 2),
          f(r["sim_req_per_s"], 0), r["events"],
          "%s / %s" % (f(r["goodput_per_capacity"], 3), f(float(r["goodput_cohort_rps"]) / float(r["capacity_rps"]), 3)),
          pct(r["slo_att"]), "%s / %s / %s" % (pct(r["att_p1"]), pct(r["att_p2"]), pct(r["att_p3"])),
          "`%s`" % r["cmd"]] for r in rows]
    return table(hdr, t)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    print("# bench/sim results (generated by bench/sim/report.sh)\n")
    print("## Load sweep (sweep.csv)\n")
    print(sweep(load(d, "sweep.csv")) + "\n")
    print("## Overload, 2x capacity (overload.csv)\n")
    print(overload(load(d, "overload.csv")) + "\n")
    print("## Filling idle GPU time (fill.csv)\n")
    print(fill(load(d, "fill.csv")) + "\n")
    print("## Scale (scale.csv)\n")
    print(scale(load(d, "scale.csv")) + "\n")


if __name__ == "__main__":
    main()
