#!/usr/bin/python3
"""rows.py - how a bench part hands its figures to the summary.

Every part of `make bench` (bench/run.sh) reports what belongs in
bench/RESULTS.md as rows: one JSON object per line, appended to the file
named by $BENCH_ROWS (run.sh sets it; when it is unset the rows go to
stderr, so a part run alone still shows them).  bench/summary.py reads the
rows of a run and writes RESULTS.md from them; the part's own markdown
section (its full tables) goes into the run's full report unchanged.

A row:

    {"part": "h2",              which section of RESULTS.md (summary.AREAS)
     "key": "vs_h2o",           unique within the part; the targets table
                                looks rows up by "part.key"
     "label": "HTTP/2 health, infergw / h2o",
     "value": 0.80,             the figure (a same-run ratio where possible),
                                or null with a "note" (skipped, failed)
     "unit": "x",               "x" (ratio), "req/s", "ms", "s", ... or ""
     "lo": 0.76, "hi": 0.90,    spread: min and max over the rounds used
     "rounds": 6,               rounds the value is the median of
     "per": [0.78, 0.80, ...],  the per-round values (optional): the summary
                                computes the median's confidence interval
                                from them and judges a target on it
     "dropped": 1,              rounds left out (client-bound h2load)
     "cmd": "h2load ...",       the exact command (shown under the section)
     "note": "..."}             anything a reader needs next to the number

Only part, key and value are required.

From a shell script (bench/lib.sh):

    bench_row PART KEY VALUE LABEL [key=value ...]
    bench_row h2 vs_h2o 0.80 "HTTP/2 health, infergw / h2o" lo=0.76 hi=0.90 rounds=6

From Python:

    import rows
    rows.emit("h2", "vs_h2o", 0.80, label="...", lo=0.76, hi=0.90, rounds=6)

From the command line: rows.py PART KEY VALUE LABEL [key=value ...]
(VALUE "-" or "null": no value; any field but label, unit, cmd, note and
target that reads as a number is stored as one).
"""
import json
import os
import statistics
import sys

TEXT = ("label", "unit", "cmd", "note", "target")     # never read as numbers


def emit(part, key, value, label="", **extra):
    """Append one row to $BENCH_ROWS (stderr when unset); returns the row."""
    row = {"part": part, "key": key, "label": label or key, "value": value}
    row.update({k: v for k, v in extra.items() if v is not None})
    line = json.dumps(row)
    path = os.environ.get("BENCH_ROWS")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")
    else:
        print("row: " + line, file=sys.stderr)
    return row


def paired(base, cur):
    """Per-round ratios cur / base of req/s and of server CPU per request
    (bench_round's "rps" and "cpu_us_per_req"), base and cur being the
    run records of two variants in round order (round i of one beside
    round i of the other), over the rounds where both ran and h2load was
    the bottleneck of neither (a client-bound round says nothing of the
    server).  Returns (rps ratios, cpu ratios, rounds left out as
    client-bound)."""
    rps, cpu, dropped = [], [], 0
    for b, c in zip(base, cur):
        if not (b.get("rps") and c.get("rps")):
            continue
        if b.get("client_bound") or c.get("client_bound"):
            dropped += 1
            continue
        rps.append(c["rps"] / b["rps"])
        if b.get("cpu_us_per_req") and c.get("cpu_us_per_req"):
            cpu.append(c["cpu_us_per_req"] / b["cpu_us_per_req"])
    return rps, cpu, dropped


def emit_ratios(part, key, xs, label, **extra):
    """emit() a ratio row from per-round ratios xs: their median (None when
    there are none), spread and the rounds themselves ("per")."""
    return emit(part, key, round(statistics.median(xs), 4) if xs else None, label, unit="x",
                lo=round(min(xs), 4) if xs else None, hi=round(max(xs), 4) if xs else None,
                rounds=len(xs), per=[round(x, 4) for x in xs] or None, **extra)


def ratio_cell(xs):
    """Per-round ratios as a table cell: median (min-max), or "-"."""
    if not xs:
        return "-"
    return "%.2f (%.2f-%.2f)" % (statistics.median(xs), min(xs), max(xs))


def load(path):
    """Rows of a run, in the order written; a later row with the same
    part.key replaces an earlier one (a part run again)."""
    rows = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                if isinstance(r, dict) and "part" in r and "key" in r:
                    rows[(r["part"], r["key"])] = r
    except OSError:
        pass
    return list(rows.values())


def _num(v):
    if v in ("-", "null", "", "nan", "None"):
        return None
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    part, key, value, label = argv[:4]
    extra = {}
    for kv in argv[4:]:
        k, sep, v = kv.partition("=")
        if not sep:
            sys.exit("rows.py: '%s' is not key=value" % kv)
        extra[k] = v if k in TEXT else _num(v)
    emit(part, key, _num(value), label, **extra)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
