#!/usr/bin/python3
"""report.py - markdown tables from parse_h2load.py JSON lines.

usage: report.py health RUNS.jsonl     infergw vs nghttpd vs h2o
       report.py infer  RUNS.jsonl     infer vs health on the same infergw

Rows with the same name are rounds of the same run; the row shown is the
median round by req/s (its latencies come with it), and the req/s range over
all rounds is shown beside it.
"""
import json
import sys


def load(path):
    runs = {}
    order = []
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


def median_round(rounds):
    ok = [r for r in rounds if r.get("rps")]
    if not ok:
        return rounds[0]
    ok.sort(key=lambda r: r["rps"])
    m = dict(ok[(len(ok) - 1) // 2])  # lower median for an even count
    m["rps_lo"] = ok[0]["rps"]
    m["rps_hi"] = ok[-1]["rps"]
    m["rounds"] = len(ok)
    m["bad"] = sum(bad(r) for r in rounds)
    return m


def bad(r):
    n = 0
    for k in ("failed", "errored", "timeout", "s3xx", "s4xx", "s5xx"):
        n += r.get(k) or 0
    return n


def ms(v):
    return "-" if v is None else ("%.3f" % v if v < 10 else "%.1f" % v)


def rps(v):
    return "-" if v is None else "{:,.0f}".format(v)


def ratio(a, b):
    if not a or not b:
        return None
    return a / b


def table(order, runs):
    rows = {n: median_round(runs[n]) for n in order}
    print("| run | req/s (median) | req/s range | p50 ms | p90 ms | p99 ms | mean ms | max ms "
          "| non-2xx/failed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in order:
        r = rows[n]
        if r.get("error") and not r.get("rps"):
            print("| %s | FAILED: %s | | | | | | | |" % (n, r["error"].replace("|", "/")))
            continue
        print("| %s | %s | %s-%s | %s | %s | %s | %s | %s | %d |" % (
            n, rps(r["rps"]), rps(r.get("rps_lo")), rps(r.get("rps_hi")),
            ms(r.get("p50")), ms(r.get("p90")), ms(r.get("p99")),
            ms(r.get("mean")), ms(r.get("max")), r.get("bad", bad(r))))
    return rows


def health(path):
    order, runs = load(path)
    rows = table(order, runs)
    ig = rows.get("infergw", {})
    print()
    print("| ratio (median req/s) | value | target |")
    print("|---|---:|---:|")
    for anchor, target in (("nghttpd", 1.0), ("h2o", 0.9)):
        a = rows.get(anchor, {})
        q = ratio(ig.get("rps"), a.get("rps"))
        if q is None:
            print("| infergw / %s | - | >= %.1fx |" % (anchor, target))
        else:
            print("| infergw / %s | %.2fx %s | >= %.1fx |" % (
                anchor, q, "(meets)" if q >= target else "(BELOW target)", target))
    # Per-round ratios show how much of the spread is the machine.
    per = []
    for i in range(min(len(runs.get(n, [])) for n in ("infergw", "nghttpd", "h2o"))):
        r = [runs[n][i].get("rps") for n in ("infergw", "nghttpd", "h2o")]
        if all(r):
            per.append("round %d: %.2fx / %.2fx" % (i + 1, r[0] / r[1], r[0] / r[2]))
    if per:
        print()
        print("Per-round infergw/nghttpd / infergw/h2o: " + "; ".join(per) + ".")


def infer(path):
    order, runs = load(path)
    rows = table(order, runs)
    h = rows.get("health", {})
    i = rows.get("infer", {})
    q = ratio(i.get("rps"), h.get("rps"))
    print()
    if q is None:
        print("infer / health req/s: -")
    else:
        print("infer / health req/s (same server, same run): **%.2fx**" % q)
    for n in order:
        ex = rows[n].get("extra")
        if ex:
            print()
            print("%s: %s" % (n, ex))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("health", "infer"):
        sys.exit(__doc__)
    {"health": health, "infer": infer}[sys.argv[1]](sys.argv[2])
