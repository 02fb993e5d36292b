#!/usr/bin/python3
"""overload_stats.py - summarize an h2load --log-file of an overload run.

usage: overload_stats.py LOG SLO_MS [CAPACITY_RPS]
       overload_stats.py --reject METRICS_BEFORE METRICS_AFTER

The log has one line per request: start (us since the epoch), HTTP status,
microseconds until the end of the response.  Prints one JSON object:
counts by status, the run's span, goodput (200 answered within SLO_MS per
second of span), goodput / capacity when given, and p50/p99/max latency of
the 200 and the 429 answers and of every answer (client side, in ms).

With --reject: from two /metrics scrapes, the server-side latency of the
429s answered in between (infergw_reject_seconds, all series summed): the
count, the share answered within 1 ms, and the bucket bound p99 falls in.
"""
import json
import sys


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[k]


def reject_buckets(path):
    """{le: cumulative count} of infergw_reject_seconds_bucket, all series."""
    out = {}
    with open(path) as f:
        for line in f:
            if not line.startswith("infergw_reject_seconds_bucket{"):
                continue
            labels, value = line.rsplit(" ", 1)
            le = labels.split('le="', 1)[1].split('"', 1)[0]
            le = float("inf") if le == "+Inf" else float(le)
            out[le] = out.get(le, 0) + float(value)
    return out


def reject_main(before, after):
    b, a = reject_buckets(before), reject_buckets(after)
    cum = sorted((le, a[le] - b.get(le, 0)) for le in a)
    n = cum[-1][1] if cum else 0
    within = next((c for le, c in cum if le == 1e-3), 0)
    p99 = next((le for le, c in cum if n and c >= 0.99 * n), None)
    print(json.dumps({"count": int(n), "within_1ms": round(within / n, 4) if n else None,
                      "p99_le_ms": p99 * 1e3 if p99 not in (None, float("inf")) else p99}))
    return 0


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--reject":
        return reject_main(sys.argv[2], sys.argv[3])
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    log, slo_us = sys.argv[1], float(sys.argv[2]) * 1000
    cap = float(sys.argv[3]) if len(sys.argv) > 3 else None
    rows = []
    with open(log) as f:
        for line in f:
            p = line.split("\t")
            if len(p) >= 3:
                rows.append((int(p[0]), int(p[1]), int(p[2])))
    if not rows:
        print(json.dumps({"error": "empty log"}))
        return 1
    t0 = min(r[0] for r in rows)
    t1 = max(r[0] + r[2] for r in rows)
    span = (t1 - t0) / 1e6
    status = {}
    for _, st, _ in rows:
        status[str(st)] = status.get(str(st), 0) + 1
    ok = [d for _, st, d in rows if st == 200]
    good = sum(1 for d in ok if d <= slo_us)
    rej = [d for _, st, d in rows if st == 429]
    out = {
        "requests": len(rows), "status": status, "span_s": round(span, 3),
        "offered_rps": round(len(rows) / span, 1),
        "goodput_rps": round(good / span, 1),
        "ok_within_slo": good, "ok_late": len(ok) - good,
        "ok_ms": {"p50": pct(ok, 50) and pct(ok, 50) / 1e3, "p99": pct(ok, 99) and
                  pct(ok, 99) / 1e3, "max": ok and max(ok) / 1e3},
        "r429_ms": {"p50": rej and pct(rej, 50) / 1e3, "p99": rej and pct(rej, 99) / 1e3,
                    "max": rej and max(rej) / 1e3},
        "all_ms": {"p50": pct([r[2] for r in rows], 50) / 1e3,
                   "p99": pct([r[2] for r in rows], 99) / 1e3,
                   "max": max(r[2] for r in rows) / 1e3},
    }
    if cap:
        out["goodput_over_capacity"] = round(good / span / cap, 3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
