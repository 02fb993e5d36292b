#!/usr/bin/python3
"""gpu_body.py - request bodies, answer checks and tables for bench/gpu.sh.

usage: gpu_body.py gen MODEL_DIR OUTDIR ROWS...
       gpu_body.py check HEADERS BODY EXPECT.npy
       gpu_body.py table RUNS.jsonl LOGDIR ROWS...

gen writes, per ROWS (a request of that many rows), OUTDIR/b{ROWS}.body
(Triton binary tensor extension: compact JSON header, raw little-endian
FP32, output binary_data true; header length in OUTDIR/b{ROWS}.hl) and
OUTDIR/b{ROWS}.npy, the float64 reference answer (payloads.forward).
Inputs are seeded uniform [-1, 1) numbers (seed ROWS).

check decodes one answer (curl -D HEADERS -o BODY) and compares it with the
reference: per row, ||got - want|| / ||want|| under 2e-3 (TF32 runs pass;
a wrong or missing row does not).  Prints one line; exit 1 on a mismatch.

table prints the markdown tables of bench/gpu.sh from parse_h2load.py lines
named "{gw}.b{ROWS}" (rounds pooled: median req/s, p50/p99 over every logged
request): throughput per batch size for each gateway, rows/s, GPU/CPU ratio,
graphs on vs off, and the seed's comparison (cpu vs cpu+gpu at one load).
"""
import json
import os
import statistics
import sys

import numpy as np

from payloads import forward, model_yaml, safetensors
from report import load, paired, pooled_percentiles
import rows


def gen(model_dir, outdir, rows_list):
    meta = model_yaml(os.path.join(model_dir, "model.yaml"))
    (in_name, width), (out_name, _) = meta["inputs"][0], meta["outputs"][0]
    w = safetensors(os.path.join(model_dir, meta.get("weights", "model.safetensors")))
    for n in rows_list:
        x = np.random.default_rng(n).uniform(-1, 1, (n, width)).astype("<f4")
        want = np.stack([forward(meta, w, x[i]) for i in range(n)])
        np.save(os.path.join(outdir, f"b{n}.npy"), want)
        hdr = json.dumps({"inputs": [{"name": in_name, "shape": [n, width], "datatype": "FP32",
                                      "parameters": {"binary_data_size": x.nbytes}}],
                          "outputs": [{"name": out_name, "parameters": {"binary_data": True}}]},
                         separators=(",", ":")).encode()
        with open(os.path.join(outdir, f"b{n}.body"), "wb") as f:
            f.write(hdr + x.tobytes())
        with open(os.path.join(outdir, f"b{n}.hl"), "w") as f:
            f.write(str(len(hdr)))


def check(hdr_path, body_path, expect_path):
    want = np.load(expect_path)
    heads = {}
    for line in open(hdr_path, errors="replace"):
        k, _, v = line.partition(":")
        heads[k.strip().lower()] = v.strip()
    raw = open(body_path, "rb").read()
    hl = int(heads.get("inference-header-content-length", len(raw)))
    got = np.frombuffer(raw[hl:], "<f4")
    if got.size != want.size:
        print(f"MISMATCH: {got.size} values, want {want.size} ({raw[:hl][:200]!r})")
        return 1
    got = got.reshape(want.shape).astype(np.float64)
    err = (np.linalg.norm(got - want, axis=1) / np.linalg.norm(want, axis=1)).max()
    print(f"{want.shape[0]} rows, worst row relative error {err:.3g}" +
          (" MISMATCH" if not err < 2e-3 else ""))
    return 0 if err < 2e-3 else 1


def table(runs_path, logdir, rows_list):
    order, runs = load(runs_path)

    def row(name):
        ok = [r for r in runs.get(name, []) if r.get("rps")]
        pp = pooled_percentiles(logdir, name) or {}
        bad = sum((r.get("failed") or 0) + (r.get("errored") or 0) + (r.get("s4xx") or 0) +
                  (r.get("s5xx") or 0) for r in runs.get(name, []))
        rps = statistics.median([r["rps"] for r in ok]) if ok else None
        return rps, pp.get("p50"), pp.get("p99"), bad

    def f(v, spec):
        return "n/a" if v is None else format(v, spec)

    gws = []
    for n in order:
        g = n.rsplit(".b", 1)[0]
        if g not in gws:
            gws.append(g)
    print("| gateway | rows/request | req/s (median) | rows/s | p50 ms | p99 ms | failed/4xx/5xx |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    R = {}
    for g in gws:
        for b in rows_list:
            name = f"{g}.b{b}"
            if name not in runs:
                continue
            rps, p50, p99, bad = R[name] = row(name)
            print(f"| {g} | {b} | {f(rps, '.0f')} | {f(rps and rps * b, '.0f')} | "
                  f"{f(p50, '.3f')} | {f(p99, '.3f')} | {bad} |")
    print()

    def ratio(a, b, bs, key):
        # median of per-round ratios, client-bound rounds left out
        p = paired(runs, f"{a}.b{bs}", f"{b}.b{bs}")
        if not p:
            return "n/a"
        rows.emit("gpu", f"{key}_b{bs}", round(p[0], 4), f"{label}, {bs} rows/request",
                  unit="x", lo=round(p[1], 4), hi=round(p[2], 4), rounds=p[3], dropped=p[4])
        return f"{p[0]:.2f} ({p[1]:.2f}-{p[2]:.2f})"

    pairs = [("gpu", "cpu", "GPU / CPU throughput", "gpu_over_cpu"),
             ("gpu", "gpu-nograph", "graphs on / off", "graphs_on_over_off"),
             ("cpu+gpu", "cpu", "CPU + GPU / CPU only (same -c/-m)", "cpugpu_over_cpu")]
    print("| ratio (median of per-round ratios, range) | "
          + " | ".join(f"{b} rows" for b in rows_list) + " |")
    print("|---|" + "---:|" * len(rows_list))
    for a, b, label, key in pairs:
        print(f"| {label} | " + " | ".join(ratio(a, b, bs, key) for bs in rows_list) + " |")


def main(argv):
    if len(argv) >= 4 and argv[1] == "gen":
        gen(argv[2], argv[3], [int(v) for v in argv[4:]])
        return 0
    if len(argv) == 5 and argv[1] == "check":
        return check(argv[2], argv[3], argv[4])
    if len(argv) >= 4 and argv[1] == "table":
        table(argv[2], argv[3], [int(v) for v in argv[4:]])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
