#!/usr/bin/python3
"""summary.py - bench/RESULTS.md from one run's rows (`make bench`).

usage: summary.py write ROWS.jsonl OUT.md [--report PATH] [--stamp TEXT] [--quick]
       summary.py machine            rows describing this machine (JSON lines)

ROWS.jsonl is what the parts of a run handed over (bench/rows.py documents
the format; bench/run.sh collects them in bench/results/raw/rows.jsonl).
OUT.md gets a summary under 150 lines: the issue 18 targets with this run's
ratios and their spread (min-max of the rounds used), how many rounds were
dropped as client-bound, one short section per area (its rows as a table,
its commands), and the machine.  --report names the run's full report
(every part's own tables), linked from the summary.  A part with no rows
says "not run"; a row with no value shows its note (skipped, failed).
Parts this file does not know (a new bench/*.sh) get a section of their own
under their part name, so a new part plugs in by emitting rows alone.
"""
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rows as rowlib  # noqa: E402

MAX_LINES = 150
MAX_ROWS_PER_AREA = 8

# (part, section title, what the part is; shown when it did not run)
AREAS = (
    ("h2", "HTTP/2 and HTTP/1.1 wire (bench/h2_health.sh)",
     "GET /v2/health/live, infergw vs nghttpd vs h2o, one server thread each"),
    ("infer", "Inference (bench/infer.sh)", "digits, 1 row of KServe v2 JSON, vs health"),
    ("kernel", "CPU kernels and the gateway at batch 64 (bench/kernel.sh)",
     "mlp-large through the CPU backend and through HTTP/2, vs raw oneDNN"),
    ("payloads", "Payload codecs (bench/payloads.sh)", "JSON vs Triton binary vs msgpack"),
    ("grpc", "gRPC (bench/grpc.sh)", "gRPC vs JSON vs binary"),
    ("overload", "Overload (bench/overload.sh)", "goodput at 2x capacity, 429 latency"),
    ("reload", "Reloads (bench/reload.sh)", "POST /admin/reload duration"),
    ("remote", "Remote agents (bench/remote.sh)", "gateway -> infergw-agent vs in-process CPU"),
    ("int8", "INT8 (bench/int8.sh)", "digits and mlp-large INT8 vs FP32: size, accuracy, speed"),
    ("dpdk", "DPDK (bench/dpdk.sh)", "UDP fast path vs HTTP/2 (root and a DPDK build)"),
    ("gpu", "GPU (bench/gpu.sh)", "gpu0 vs cpu0 through the gateway (needs a device)"),
    ("sim", "Simulator (bench/sim/scale.sh)",
     "backends x requests per wall second with the gateway's policy code"),
    ("instr", "Instructions per request, callgrind (bench/instr.sh)",
     "infergw vs h2o vs nghttpd on health, infergw's infer: counts neighbours do not move"),
    ("counters", "Request accounting on several cores (bench/counters.sh)",
     "a request's metrics and response counters, every CPU at once vs one"),
)

# Issue 18's targets: (row "part.key", measure, the issue's "now", target text,
# met(value, row) -> bool)
TARGETS = (
    ("h2.vs_h2o", "HTTP/2 health, 1 loop thread, vs h2o (1 thread)", "0.80x", ">= 1.05x",
     lambda v, r: v >= 1.05),
    ("h2.vs_nghttpd", "HTTP/2 health vs nghttpd", "1.12x", ">= 1.3x", lambda v, r: v >= 1.3),
    ("h2.h1_vs_h2o", "HTTP/1.1 health, keep-alive, no pipelining, vs h2o", "0.97x", ">= 1.1x",
     lambda v, r: v >= 1.1),
    ("infer.over_health", "digits infer (1 row, JSON) / health, same server", "0.32x",
     ">= 0.5x", lambda v, r: v >= 0.5),
    ("kernel.gw_b64_over_raw",
     "mlp-large batch 64 through HTTP/2 (binary) vs raw oneDNN, same threads", "0.83x",
     ">= 0.95x", lambda v, r: v >= 0.95),
    ("sim.scale", "simulator: 10,000 backends x 10M requests, wall seconds", "not measured",
     "<= 60 s", lambda v, r: v <= 60 and (r.get("backends") or 0) >= 10000),
    ("int8.gw_b64", "(issue 15) mlp-large INT8 / FP32 at batch 64 through the gateway",
     "-", ">= 3.5x", lambda v, r: v >= 3.5),
)


def fnum(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if unit == "x":
        return "%.2fx" % v
    a = abs(v)
    s = ("{:,.0f}".format(v) if a >= 1000 else "%.1f" % v if a >= 10 else
         "%.2f" % v if a >= 0.1 else "%.3g" % v)
    return s + (" " + unit if unit else "")


def spread(r):
    lo, hi, u = r.get("lo"), r.get("hi"), r.get("unit", "")
    if lo is None or hi is None:
        return ""
    return "%s-%s" % (fnum(lo, u).rstrip("x"), fnum(hi, u))


def rounds_cell(r):
    n, d = r.get("rounds"), r.get("dropped")
    if n is None and not d:
        return ""
    s = "%s" % ("-" if n is None else n)
    if d:
        s += " (+%d client-bound dropped)" % d
    return s


def median_ci(xs, level=0.95):
    """Distribution-free confidence interval of the median of xs (the
    per-round values): (x_(j), x_(n+1-j)) of the sorted values, with the
    largest j whose coverage 1 - 2 P(Bin(n, 1/2) <= j - 1) is >= level
    (j = 1, the whole range, when even it is below).  Returns (lo, hi,
    coverage), or None for fewer than 2 values."""
    xs = sorted(xs)
    n = len(xs)
    if n < 2:
        return None

    def cover(j):
        return 1 - 2 * sum(math.comb(n, i) for i in range(j)) / 2 ** n

    j = 1
    while j + 1 <= (n + 1) // 2 and cover(j + 1) >= level:
        j += 1
    return xs[j - 1], xs[n - j], cover(j)


def verdict(met, v, r):
    """'yes' / 'no' when the target is met / missed over the whole 95%
    confidence interval of the median (row field "per": the per-round
    values), 'not settled' when the interval straddles it; without per-round
    values, by the value alone."""
    ci = median_ci(r.get("per") or [])
    if not ci:
        return "yes" if met(v, r) else "no"
    a, b = met(ci[0], r), met(ci[1], r)
    return "yes" if a and b else "no" if not (a or b) else "not settled"


def ci_cell(r):
    ci = median_ci(r.get("per") or [])
    if not ci:
        return ""
    u = r.get("unit", "")
    return "%s-%s (%.0f%%)" % (fnum(ci[0], u).rstrip("x"), fnum(ci[1], u), 100 * ci[2])


def cell(text):
    return str(text).replace("|", "/").replace("\n", " ")


def targets_table(by_key):
    """The targets table; each distinct note once, as a numbered footnote
    under it (the CPU cap note is the same for most rows)."""
    out = ["| measure | issue 18 | this run | spread (min-max) | median's 95% CI (coverage) "
           "| rounds | target | met? |",
           "|---|---:|---:|---:|---:|---:|---:|:---:|"]
    notes = []

    def mark(note):
        if note not in notes:
            notes.append(note)
        return " [%d]" % (notes.index(note) + 1)

    for key, label, before, target, met in TARGETS:
        r = by_key.get(key)
        if r is None:
            out.append("| %s | %s | not run | | | | %s | |" % (label, before, target))
            continue
        v = r.get("value")
        if v is None:
            out.append("| %s | %s | %s | | | %s | %s | no |" % (
                label, before, cell(r.get("note", "no value")), rounds_cell(r), target))
            continue
        note = mark(cell(r["note"])) if r.get("note") else ""
        out.append("| %s | %s | **%s**%s | %s | %s | %s | %s | %s |" % (
            label, before, fnum(v, r.get("unit", "")), note, spread(r), ci_cell(r),
            rounds_cell(r), target, verdict(met, v, r)))
    if notes:
        out.append("")
        out.extend("- [%d] %s" % (i + 1, n) for i, n in enumerate(notes))
    return out


def area_lines(title, rs, max_rows=MAX_ROWS_PER_AREA, max_cmds=2):
    """One area: its rows as a table, then one line with its commands."""
    out = ["### " + title, ""]
    vals = [r for r in rs if not r["key"].startswith("_")]
    cmds = []
    for r in rs:
        for line in (r.get("cmd") or "").splitlines():
            if line.strip() and line not in cmds:
                cmds.append(line)
    out.append("| figure | value | spread | rounds | note |")
    out.append("|---|---:|---:|---:|---|")
    for r in vals[:max_rows]:
        v = r.get("value")
        out.append("| %s | %s | %s | %s | %s |" % (
            cell(r.get("label", r["key"])),
            "**" + fnum(v, r.get("unit", "")) + "**" if v is not None else "-",
            spread(r), rounds_cell(r), cell(r.get("note", ""))))
    tail = []
    if cmds and max_cmds:
        tail.append("Command%s: %s%s." % (
            "s" if len(cmds) > 1 else "", "; ".join("`%s`" % c.replace("`", "'")
                                                     for c in cmds[:max_cmds]),
            " (+%d)" % (len(cmds) - max_cmds) if len(cmds) > max_cmds else ""))
    if len(vals) > max_rows:
        tail.append("%d more figure%s in the full report." % (
            len(vals) - max_rows, "s" if len(vals) - max_rows > 1 else ""))
    if tail:
        out.extend(["", " ".join(tail)])
    out.append("")
    return out


def fbytes(n):
    for unit, k in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= k:
            return "%.1f %s" % (n / k, unit)
    return "%d B" % n


def int8_lines(title, rs, max_cmds=2):
    """The INT8 part (bench/int8.sh) as one table, model by row: file sizes,
    digits accuracy, gateway and raw oneDNN INT8 / FP32 per batch size, and
    the published claim beside them; then the backend ratios and the issue 15
    target, met or not.  None when the rows are not int8.sh's (the generic
    table then)."""
    by = {r["key"]: r for r in rs}
    batches = sorted(int(k[4:]) for k in by if re.fullmatch(r"gw_b\d+", k))
    if not batches:
        return None

    def v(key, unit="x"):
        r = by.get(key)
        return fnum(r.get("value"), unit) if r and r.get("value") is not None else "-"

    def per_batch(fmt):
        return " / ".join(v(fmt % b) for b in batches)

    def size(key):
        r = by.get(key)
        if not r or r.get("fp32") is None or r.get("int8") is None:
            return "-"
        return "%s -> %s (-%.0f%%)" % (fbytes(r["fp32"]), fbytes(r["int8"]),
                                      100.0 * (1 - r["int8"] / r["fp32"]))

    acc = "-"
    if "digits_acc_fp32" in by and "digits_acc_int8" in by:
        acc = " / ".join("%.2f%%" % (by[k].get("value") or 0)
                         for k in ("digits_acc_fp32", "digits_acc_int8"))
        if by.get("digits_agree"):
            acc += " (%.2f%%)" % (by["digits_agree"].get("value") or 0)
    bs = " / ".join(str(b) for b in batches)
    claim = by.get("claim") or {}
    out = ["### " + title, "",
           "| model (INT8 variant) | size FP32 -> INT8 | digits held-out accuracy FP32 / INT8 "
           "(agreement) | gateway INT8 / FP32, batch %s | raw oneDNN INT8 / f32 (the backend's "
           "types and faster weight layout), batch %s |" % (bs, bs),
           "|---|---:|---:|---:|---:|",
           "| digits (dynamic) | %s | %s | %s | %s |" % (
               size("size_digits"), acc, per_batch("digits_gw_b%d"), per_batch("digits_raw_b%d")),
           "| mlp-large (dynamic) | %s | - (random weights) | %s | %s |" % (
               size("size_mlp_large"), per_batch("gw_b%d"), per_batch("raw_b%d")),
           "| mlp-large (calibrated) | same | - | %s | |" % per_batch("gw_static_b%d"),
           "| published claim | -%s%% | < %s%% lost | %sx | about %sx at batch >= 8 |" % (
               claim.get("size", 75), claim.get("acc_loss", 1.5), claim.get("speed", 3.2),
               claim.get("raw", 3.9)),
           ""]
    text = ["CPU backend alone (be_cpu_ops, no HTTP) INT8 / FP32 at batch %s: digits %s, "
            "mlp-large %s." % (bs, per_batch("digits_backend_b%d"), per_batch("backend_b%d"))]
    t = [x for x in TARGETS if x[0] == "int8.gw_b64"]
    r = by.get("gw_b64")
    if t and r and r.get("value") is not None:
        text.append("Target (issue 15, %s): %s, %s%s: **%s**." % (
            t[0][3], fnum(r["value"], "x"),
            ("spread %s, " % spread(r)) if spread(r) else "", "rounds %s" % rounds_cell(r),
            {"yes": "met", "no": "not met"}.get(verdict(t[0][4], r["value"], r),
                                                 "not settled (the median's 95% CI straddles it)")))
    cmds = [c for c in (by.get("gw_b64") or {}).get("cmd", "").splitlines() if c.strip()]
    if cmds and max_cmds:
        text.append("Command: `%s` (full report: every table)." % cmds[0].replace("`", "'"))
    out.extend([" ".join(text), ""])
    return out


def run_cmd(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def simd():
    """The widest vector extension and whether INT8 has VNNI (bench/lib.sh
    bench_simd says the same in each section)."""
    try:
        flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "").split()
    except OSError:
        return "unknown"
    wide = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "below AVX2"
    vnni = "avx512_vnni" in flags or "avx_vnni" in flags
    return wide + (", VNNI" if vnni else ", no VNNI (INT8 without it: docs/int8.md)")


def machine():
    """Rows (part "machine") describing this machine and the tools."""
    model = re.search(r"^Model name:\s*(.*)$", run_cmd(["lscpu"]), re.M)
    items = [
        ("cpu", "CPU", "%s, %d CPUs" % (model.group(1).strip() if model else "unknown",
                                        os.cpu_count() or 0)),
        ("kernel", "kernel", platform.release()),
        ("simd", "SIMD (oneDNN's kernels; INT8 gains need VNNI)", simd()),
    ]
    for key, label, argv in (("h2load", "h2load", ["h2load", "--version"]),
                             ("nghttpd", "nghttpd", ["nghttpd", "--version"]),
                             ("h2o", "h2o", ["h2o", "--version"]),
                             ("gcc", "gcc", ["gcc", "--version"])):
        if shutil.which(argv[0]):
            first = run_cmd(argv).strip().splitlines()
            items.append((key, label, first[0] if first else "?"))
    try:
        v = open("/usr/include/oneapi/dnnl/dnnl_version.h").read()
        items.append(("onednn", "oneDNN", ".".join(re.findall(
            r"#define DNNL_VERSION_(?:MAJOR|MINOR|PATCH) (\d+)", v))))
    except OSError:
        pass
    try:
        items.append(("load", "load average at the start (1/5/15 min; shared machine)",
                      " ".join(open("/proc/loadavg").read().split()[:3])))
    except OSError:
        pass
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    git = run_cmd(["git", "-C", root, "describe", "--always", "--dirty"]).strip()
    items.append(("git", "git", git or "?"))
    return [{"part": "machine", "key": k, "label": l, "value": v} for k, l, v in items]


def write(rows_path, out_path, report=None, stamp=None, quick=False):
    rs = rowlib.load(rows_path)
    by_key = {"%s.%s" % (r["part"], r["key"]): r for r in rs}
    parts = {}
    for r in rs:
        parts.setdefault(r["part"], []).append(r)
    dropped = sum(r.get("dropped") or 0 for r in rs if r["part"] != "machine")
    used = sum(r.get("rounds") or 0 for r in rs
               if r["part"] != "machine" and r.get("unit") == "x")
    out = ["# infergw benchmark results", ""]
    out.append("Generated by %s from the run of %s; do not edit by hand (bench/summary.py)." % (
        "`make bench-quick` (fewer rounds: provisional)" if quick else "`make bench`",
        stamp or "?"))
    if report:
        out.append("Full report of this run (every part's tables): `%s`." % report)
    out.append("History and findings that are not results: docs/bench-history.md.")
    out.append("")
    out.append("Every figure is a same-run ratio: the median of per-round ratios of interleaved "
               "rounds (order rotating), server and h2load pinned to separate cores. Spread = "
               "min-max of the rounds used. Throughput rounds run h2load without --log-file; a "
               "round where h2load used > 90%% of its core is client-bound and dropped from the "
               "ratios: %d dropped in this run (%d paired rounds used). Latency percentiles "
               "come from separate rounds. A target is met (\"yes\") only when it holds over the whole "
               "distribution-free 95%% confidence interval of the median (order statistics of the "
               "per-round ratios; with few rounds its coverage is shown), missed (\"no\") when it "
               "fails over all of it, else \"not settled\": this machine's noise cannot tell." % (dropped, used))
    out.append("")
    out.append("## Targets (issue 18)")
    out.append("")
    out.extend(targets_table(by_key))
    out.append("")
    head = out
    mrows = parts.get("machine") or machine()
    tail = ["## Machine", ""] + ["- %s: %s" % (r.get("label", r["key"]), cell(r.get("value")))
                                 for r in mrows]
    ran, not_run = [], []
    for part, title, what in AREAS:
        if [r for r in parts.get(part, []) if not r["key"].startswith("_")]:
            ran.append((title, parts[part]))
        elif parts.get(part):
            not_run.append("- %s: ran; it hands no figures to this summary (see the full "
                           "report)." % title)
        else:
            not_run.append("- %s: not run in this run (%s)." % (title, what))
    known = {a[0] for a in AREAS} | {"machine"}
    for part in parts:
        if part not in known:
            if [r for r in parts[part] if not r["key"].startswith("_")]:
                ran.append((part, parts[part]))
            else:
                not_run.append("- %s: ran; it hands no figures to this summary (see the full "
                               "report)." % part)
    # as much detail per area as fits in MAX_LINES
    for max_rows, max_cmds in ((8, 2), (7, 2), (6, 2), (5, 2), (5, 1), (4, 1), (3, 1), (2, 1),
                               (2, 0), (1, 0)):
        body = ["## Areas", ""]
        for title, prs in ran:
            lines = int8_lines(title, prs, max_cmds) if prs[0]["part"] == "int8" else None
            body.extend(lines or area_lines(title, prs, max_rows, max_cmds))
        if not_run:
            body.extend(["### Not run, or no figures", ""] + not_run + [""])
        out = head + body + tail
        if len(out) < MAX_LINES:
            break
    if len(out) >= MAX_LINES:
        # still too long (very many parts): cut the areas, keep the machine
        out = out[:MAX_LINES - 1 - len(tail) - 3] + ["", "(cut: see the full report)", ""] + tail
    with open(out_path, "w") as f:
        f.write("\n".join(out) + "\n")
    return len(out)


def main(argv):
    if argv[:1] == ["machine"]:
        for r in machine():
            print(json.dumps(r))
        return 0
    if len(argv) >= 3 and argv[0] == "write":
        report = stamp = None
        quick = False
        rest = argv[3:]
        while rest:
            a = rest.pop(0)
            if a == "--report" and rest:
                report = rest.pop(0)
            elif a == "--stamp" and rest:
                stamp = rest.pop(0)
            elif a == "--quick":
                quick = True
            else:
                sys.exit(__doc__)
        n = write(argv[1], argv[2], report, stamp, quick)
        print("summary.py: wrote %s (%d lines)" % (argv[2], n), file=sys.stderr)
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
