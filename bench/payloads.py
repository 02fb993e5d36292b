#!/usr/bin/python3
"""payloads.py - request bodies, answer checks and the table for bench/payloads.sh.

usage: payloads.py gen MODEL_DIR OUTDIR [--random SEED]
       payloads.py check KIND HEADERS BODY EXPECT.npy
       payloads.py table RUNS.jsonl LOGDIR NAME=BODYFILE...

gen writes three bodies for the same input, one row of the model's input
width: OUTDIR/json.body (KServe v2 JSON, JSON answer), OUTDIR/bin.body
(Triton binary tensor extension as tritonclient.http builds it: compact JSON
header, raw little-endian FP32, output binary_data true; the header's length
in OUTDIR/bin.hl), OUTDIR/mp.body (msgpack, data as bin), and
OUTDIR/expect.npy, the float64 reference answer (model.yaml's layers over
model.safetensors).  The row is row 0 of heldout.safetensors when the model
has one, else seeded uniform [0, 1) numbers (--random).

check reads one answer (curl -D HEADERS -o BODY) of KIND json|bin|mp, decodes
it and prints one line: values vs the reference, ending in MISMATCH when they
differ (exit 1).

table prints a markdown table from parse_h2load.py JSON lines (rounds of the
same NAME; req/s = median round; p50/p99 over every request of every round
from LOGDIR/NAME.log, h2load --log-file lines) and, for each NAME ending in
.bin or .mp, the median per-round req/s ratio against the NAME.json of the
same prefix.
"""
import json
import os
import re
import statistics
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rows  # noqa: E402

ST = {"F32": "<f4", "I64": "<i8", "I32": "<i4", "F64": "<f8"}


def safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    hdr = json.loads(raw[8:8 + n])
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + a:8 + n + b], ST[v["dtype"]]).reshape(v["shape"])
    return out


def model_yaml(path):
    """The keys payloads.py needs: top-level scalars, inputs/outputs
    [(name, width)], layers [{type, weight, bias, activation}]."""
    meta, layers, io, section = {}, [], {"inputs": [], "outputs": []}, None
    lines, pending = [], None
    for line in open(path):
        line = line.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        # a flow mapping may go on over several lines ("labels: [...]" below)
        if pending is not None:
            pending += " " + line.strip()
            if pending.count("{") <= pending.count("}"):
                lines.append(pending)
                pending = None
            continue
        if re.match(r"\s*-\s*\{", line) and line.count("{") > line.count("}"):
            pending = line
            continue
        lines.append(line)
    for line in lines:
        if not line.startswith(" ") and not line.startswith("-"):
            k, _, v = line.partition(":")
            section = k.strip()
            if v.strip():
                meta[section] = v.strip()
            continue
        m = re.match(r"\s*-\s*\{(.*)\}\s*$", line)
        if not m:
            continue
        d = {}
        for kv in re.findall(r"(\w+):\s*(\[[^\]]*\]|[^,]+)", m.group(1)):
            d[kv[0]] = kv[1].strip()
        if section == "layers":
            layers.append(d)
        elif section in io:
            io[section].append((d["name"], int(d["shape"].strip("[]").split(",")[-1])))
    meta["layers"], meta["inputs"], meta["outputs"] = layers, io["inputs"], io["outputs"]
    return meta


def forward(meta, w, x):
    h = np.asarray(x, np.float64).reshape(1, -1)
    for ly in meta["layers"]:
        if ly["type"] == "dense":
            h = h @ w[ly["weight"]].astype(np.float64).T
            if ly.get("bias"):
                h = h + w[ly["bias"]]
            if ly.get("activation") == "relu":
                h = np.maximum(h, 0)
        elif ly["type"] == "softmax":
            e = np.exp(h - h.max(axis=1, keepdims=True))
            h = e / e.sum(axis=1, keepdims=True)
        else:
            sys.exit(f"payloads.py: unknown layer type {ly['type']}")
    return h[0]


def write_http_bodies(outdir, in_name, out_name, x):
    """The KServe v2 bodies of one request with input x (rows x width FP32)
    in outdir: json.body (JSON data), bin.body (Triton's binary tensor
    extension, answer asked binary too) and bin.hl (its JSON header's
    length, for inference-header-content-length).  Returns the input's
    {name, shape, datatype} for other codecs."""
    inp = {"name": in_name, "shape": list(x.shape), "datatype": "FP32"}
    with open(os.path.join(outdir, "json.body"), "w") as f:
        f.write(json.dumps({"inputs": [dict(inp, data=[float(v) for v in x.reshape(-1)])]},
                           separators=(",", ":")))
    hdr = json.dumps({"inputs": [dict(inp, parameters={"binary_data_size": x.nbytes})],
                      "outputs": [{"name": out_name, "parameters": {"binary_data": True}}]},
                     separators=(",", ":")).encode()
    with open(os.path.join(outdir, "bin.body"), "wb") as f:
        f.write(hdr + x.tobytes())
    with open(os.path.join(outdir, "bin.hl"), "w") as f:
        f.write(str(len(hdr)))
    return inp


def gen(model_dir, outdir, seed):
    import msgpack
    meta = model_yaml(os.path.join(model_dir, "model.yaml"))
    (in_name, width), (out_name, _) = meta["inputs"][0], meta["outputs"][0]
    held = os.path.join(model_dir, "heldout.safetensors")
    if seed is None and os.path.exists(held):
        x = safetensors(held)["features"][0].astype("<f4")
        src = "row 0 of heldout.safetensors"
    else:
        x = np.random.default_rng(seed or 0).random(width, dtype=np.float32).astype("<f4")
        src = f"{width} seeded uniform [0, 1) floats (seed {seed or 0})"
    w = safetensors(os.path.join(model_dir, meta.get("weights", "model.safetensors")))
    np.save(os.path.join(outdir, "expect.npy"), forward(meta, w, x))
    inp = write_http_bodies(outdir, in_name, out_name, x.reshape(1, width))
    mp = {"inputs": [dict(inp, data=x.tobytes())], "outputs": [{"name": out_name}]}
    with open(os.path.join(outdir, "mp.body"), "wb") as f:
        f.write(msgpack.packb(mp, use_bin_type=True))
    print(src)


def check(kind, hdr_path, body_path, expect_path):
    import msgpack
    want = np.load(expect_path)
    heads = {}
    for line in open(hdr_path, errors="replace"):
        if ":" in line:
            k, v = line.split(":", 1)
            heads[k.strip().lower()] = v.strip()
    body = open(body_path, "rb").read()
    try:
        if kind == "json":
            got = np.asarray(json.loads(body)["outputs"][0]["data"], np.float64)
        elif kind == "bin":
            hl = int(heads["inference-header-content-length"])
            meta = json.loads(body[:hl])["outputs"][0]
            assert meta["parameters"]["binary_data_size"] == len(body) - hl
            got = np.frombuffer(body[hl:], "<f4").astype(np.float64)
        else:
            got = np.frombuffer(msgpack.unpackb(body)["outputs"][0]["data"], "<f4")
            got = got.astype(np.float64)
    except (ValueError, KeyError, IndexError, TypeError, AssertionError) as e:
        print(f"{kind}: unreadable answer ({e!r}; content-type "
              f"{heads.get('content-type')}, {len(body)} bytes) MISMATCH")
        return 1
    ok = got.shape == want.shape and int(got.argmax()) == int(want.argmax()) and \
        float(np.max(np.abs(got - want))) < 1e-4
    diff = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("nan")
    print(f"{kind}: {got.size} values, {len(body)} bytes ({heads.get('content-type')}), "
          f"argmax {int(got.argmax())} (reference {int(want.argmax())}), "
          f"max |p - p_ref| {diff:.2g}{'' if ok else ' MISMATCH'}")
    return 0 if ok else 1


def pooled(logdir, name):
    durs = []
    path = os.path.join(logdir, name + ".log")
    if os.path.exists(path):
        for line in open(path, errors="replace"):
            p = line.split()
            if len(p) >= 3 and p[1].isdigit():
                durs.append(int(p[2]) / 1e3)
    durs.sort()
    n = len(durs)

    def q(p):
        return durs[min(n - 1, max(0, -(-p * n // 100) - 1))] if n else None
    return n, q(50), q(99)


def table(runs_path, logdir, specs):
    names = [s.split("=", 1)[0] for s in specs]
    sizes = {s.split("=", 1)[0]: os.path.getsize(s.split("=", 1)[1]) for s in specs}
    runs = {}
    for line in open(runs_path):
        if line.strip():
            r = json.loads(line)
            runs.setdefault(r["name"], []).append(r)

    def f(v, fmt):
        return format(v, fmt) if v is not None else "-"

    print("| run | body bytes | req/s (median) | range | p50 ms | p99 ms | server CPU µs/req "
          "| non-2xx/errors | requests |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    summ = {}
    for name in names:
        rs = runs.get(name, [])
        ok = [r for r in rs if r.get("rps")]
        bad = sum((r.get(k) or 0) for r in rs for k in
                  ("failed", "errored", "timeout", "s3xx", "s4xx", "s5xx"))
        n, p50, p99 = pooled(logdir, name)
        rps = statistics.median([r["rps"] for r in ok]) if ok else None
        cpu = [r["cpu_us_per_req"] for r in ok if r.get("cpu_us_per_req")]
        size = sizes.get(name)
        lo = min((r["rps"] for r in ok), default=None)
        hi = max((r["rps"] for r in ok), default=None)
        summ[name] = {"p99": p99, "runs": rs}
        print(f"| {name} | {size if size is not None else '-'} | {f(rps, '.0f')} | "
              f"{f(lo, '.0f')}-{f(hi, '.0f')} | {f(p50, '.3f')} | {f(p99, '.3f')} | "
              f"{f(statistics.median(cpu) if cpu else None, '.1f')} | {bad} | {n} |")
    print()
    print("| ratio | req/s (median of per-round ratios) | server CPU per request "
          "(median of per-round ratios) | p99 |")
    print("|---|---:|---:|---:|")
    note = os.environ.get("BENCH_CPU_NOTE") or None
    for name in names:
        m = re.match(r"(.*)\.(bin|mp)$", name)
        if not m or m.group(1) + ".json" not in summ:
            continue
        base, cur = summ[m.group(1) + ".json"], summ[name]
        per, cpu, dropped = rows.paired(base["runs"], cur["runs"])
        pr = cur["p99"] / base["p99"] if cur["p99"] and base["p99"] else None
        label = {"bin": "binary", "mp": "msgpack"}[m.group(2)]
        drop = f", {dropped} client-bound dropped" if dropped else ""
        print(f"| {m.group(1)}: {label} / JSON | {rows.ratio_cell(per)}{drop} | "
              f"{rows.ratio_cell(cpu)} | {f(pr, '.2f')} |")
        part_note = note if m.group(1) == "digits" else "unthrottled (compute-bound)"
        rows.emit_ratios("payloads", f"{m.group(1)}_{m.group(2)}_over_json", per,
                         f"{m.group(1)}: {label} / JSON req/s", dropped=dropped, note=part_note)
        rows.emit_ratios("payloads", f"{m.group(1)}_{m.group(2)}_cpu_over_json", cpu,
                         f"{m.group(1)}: {label} / JSON server CPU per request",
                         dropped=dropped, note=part_note)


def main(argv):
    if argv[:1] == ["gen"] and len(argv) in (3, 5) and (len(argv) == 3 or argv[3] == "--random"):
        gen(argv[1], argv[2], int(argv[4]) if len(argv) == 5 else None)
        return 0
    if len(argv) == 5 and argv[0] == "check":
        return check(*argv[1:])
    if len(argv) >= 4 and argv[0] == "table":
        table(argv[1], argv[2], argv[3:])
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
