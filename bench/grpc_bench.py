#!/usr/bin/python3
"""grpc_bench.py - bodies, answer checks and the table for bench/grpc.sh.

usage: grpc_bench.py gen MODEL_DIR OUTDIR ROWS SEED
       grpc_bench.py check OUTDIR PORT MODEL
       grpc_bench.py table RUNS.jsonl [CMD]

gen writes the same ROWS-row input (seeded uniform [0, 1) floats, or the
first ROWS rows of heldout.safetensors when the model has one) three ways:
OUTDIR/json.body (KServe v2 JSON), OUTDIR/bin.body + bin.hl (Triton's
binary tensor extension, binary output), OUTDIR/grpc.body (one framed
inference.ModelInferRequest with raw_input_contents, what h2load posts with
content-type application/grpc); OUTDIR/expect.npy is the float64 reference
(payloads.py's forward).  Python stubs for the gRPC check are compiled into
OUTDIR from proto/grpc_service.proto.

check sends one request of each kind (httpx over h2c for JSON and binary,
grpcio for gRPC) and compares every answer with the reference; it prints
one line and exits 1 on a mismatch.

table prints the markdown table from parse_h2load.py JSON lines named
PART.FORMAT (rounds interleaved): req/s and server CPU per request (median
round), each format's ratio to JSON of the same part.
"""
import importlib
import json
import os
import statistics
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import payloads  # noqa: E402  (safetensors, forward)
import rows  # noqa: E402  (the summary's rows: bench/rows.py)


def stubs(outdir):
    from grpc_tools import protoc
    proto = os.path.join(HERE, "..", "proto")
    if not os.path.exists(os.path.join(outdir, "grpc_service_pb2_grpc.py")):
        assert protoc.main(["protoc", f"-I{proto}", f"--python_out={outdir}",
                            f"--grpc_python_out={outdir}",
                            os.path.join(proto, "grpc_service.proto")]) == 0
    sys.path.insert(0, outdir)
    return (importlib.import_module("grpc_service_pb2"),
            importlib.import_module("grpc_service_pb2_grpc"))


def model_yaml(path):
    """model.yaml as payloads.forward wants it (PyYAML: flow mappings may
    span lines, as digits' outputs do)."""
    import yaml
    meta = yaml.safe_load(open(path))
    meta["inputs"] = [(t["name"], int(t["shape"][-1])) for t in meta["inputs"]]
    meta["outputs"] = [(t["name"], int(t["shape"][-1])) for t in meta["outputs"]]
    return meta


def gen(model_dir, outdir, rows, seed):
    pb, _ = stubs(outdir)
    meta = model_yaml(os.path.join(model_dir, "model.yaml"))
    (in_name, width), (out_name, _) = meta["inputs"][0], meta["outputs"][0]
    held = os.path.join(model_dir, "heldout.safetensors")
    if os.path.exists(held):
        x = payloads.safetensors(held)["features"][:rows].astype("<f4")
        src = f"rows 0..{rows - 1} of heldout.safetensors"
    else:
        x = np.random.default_rng(seed).random((rows, width), dtype=np.float32).astype("<f4")
        src = f"{rows} x {width} seeded uniform [0, 1) floats (seed {seed})"
    w = payloads.safetensors(os.path.join(model_dir, meta.get("weights", "model.safetensors")))
    np.save(os.path.join(outdir, "expect.npy"),
            np.stack([payloads.forward(meta, w, r) for r in x]))
    payloads.write_http_bodies(outdir, in_name, out_name, x)
    req = pb.ModelInferRequest(model_name=meta["name"])
    req.inputs.add(name=in_name, datatype="FP32", shape=[rows, width])
    req.raw_input_contents.append(x.tobytes())
    msg = req.SerializeToString()
    with open(os.path.join(outdir, "grpc.body"), "wb") as f:
        f.write(struct.pack(">BI", 0, len(msg)) + msg)
    print(src)


def check(outdir, port, model):
    import grpc
    import httpx
    pb, svc = stubs(outdir)
    want = np.load(os.path.join(outdir, "expect.npy"))
    got = {}
    url = f"http://127.0.0.1:{port}/v2/models/{model}/infer"
    with httpx.Client(http1=False, http2=True, timeout=60) as c:
        r = c.post(url, content=open(os.path.join(outdir, "json.body"), "rb").read(),
                   headers={"content-type": "application/json"})
        r.raise_for_status()
        got["json"] = np.asarray(r.json()["outputs"][0]["data"], dtype=np.float64)
        hl = open(os.path.join(outdir, "bin.hl")).read().strip()
        r = c.post(url, content=open(os.path.join(outdir, "bin.body"), "rb").read(),
                   headers={"inference-header-content-length": hl})
        r.raise_for_status()
        n = int(r.headers["inference-header-content-length"])
        got["bin"] = np.frombuffer(r.content[n:], dtype="<f4").astype(np.float64)
    body = open(os.path.join(outdir, "grpc.body"), "rb").read()
    req = pb.ModelInferRequest.FromString(body[5:])
    ch = grpc.insecure_channel(f"127.0.0.1:{port}",
                               options=[("grpc.max_receive_message_length", 64 << 20)])
    stub = svc.GRPCInferenceServiceStub(ch)
    resp = stub.ModelInfer(req, timeout=60)
    got["grpc"] = np.frombuffer(resp.raw_output_contents[0], dtype="<f4").astype(np.float64)
    k = int(os.environ.get("STREAM_MSGS", "4"))
    answers = [r.infer_response for r in stub.ModelStreamInfer(iter([req] * k), timeout=60)]
    assert len(answers) == k, f"{len(answers)} stream answers for {k} messages"
    got[f"grpc stream x{k}"] = np.concatenate(
        [np.frombuffer(a.raw_output_contents[0], dtype="<f4") for a in answers]).astype(np.float64)
    want_of = {f"grpc stream x{k}": np.tile(want.reshape(-1), k)}
    ch.close()
    line = []
    for k, v in got.items():
        w = want_of.get(k, want.reshape(-1))
        ok = v.size == w.size and np.allclose(v, w, rtol=1e-4, atol=1e-5)
        err = float(np.max(np.abs(v - w))) if v.size == w.size else float("inf")
        line.append(f"{k}: {v.size} values, max |diff| {err:.2e}{'' if ok else ' MISMATCH'}")
        if not ok:
            print("; ".join(line))
            sys.exit(1)
    print("; ".join(line))


def table(runs_path, cmd=""):
    """The markdown table of runs_path's rounds, and the summary's rows:
    gRPC and binary against JSON per part (a part without JSON rounds:
    gRPC against binary), req/s and server CPU/request (cmd, the digits
    gRPC command, goes with the digits gRPC row only),
    each the median of per-round ratios (rows.paired: round i of a format
    beside round i of JSON; client-bound rounds left out: h2load, not the
    server, set their pace)."""
    runs = {}
    for line in open(runs_path):
        if line.strip():
            r = json.loads(line)
            runs.setdefault(r["name"], []).append(r)
    note = os.environ.get("BENCH_CPU_NOTE") or None
    print("| part | format | rounds (client-bound) | req/s (median) | server CPU µs/req (median) "
          "| req/s vs JSON (wide: vs binary) | CPU/req vs JSON (wide: vs binary) |")
    print("|---|---|---|---|---|---|---|")
    k = int(os.environ.get("STREAM_MSGS", "4"))
    for name, rs in runs.items():
        part, fmt = name.split(".", 1)
        ok = [r for r in rs if r.get("rps") and not r.get("client_bound")]
        rps = statistics.median(r["rps"] for r in ok) if ok else 0
        cpu = statistics.median(r.get("cpu_us_per_req") or 0 for r in ok) if ok else 0
        bound = sum(1 for r in rs if r.get("client_bound"))
        base = runs.get(f"{part}.json")
        binary = runs.get(f"{part}.bin")
        if fmt == "grpcs":  # per message, against unary gRPC
            stream_rows(part, runs.get(f"{part}.grpc"), rs, k, rps, cpu, bound)
            continue
        ref = base or (binary if fmt == "grpc" else None)  # wide: no JSON rounds
        per, cpus, dropped = rows.paired(ref, rs) if ref and fmt != "json" else ([], [], 0)
        print(f"| {part} | {fmt} | {len(rs)} ({bound}) | {rps:.0f} | {cpu:.1f} | "
              f"{rows.ratio_cell(per) if ref and fmt != 'json' else '-'} | "
              f"{rows.ratio_cell(cpus) if ref and fmt != 'json' else '-'} |")
        what = "gRPC" if fmt == "grpc" else "binary"
        part_note = {"digits": note, "large": "unthrottled (compute-bound)",
                     "wide": "unthrottled (payload-bound)"}.get(part)
        if fmt != "json" and base:
            rows.emit_ratios("grpc", f"{part}_{fmt}_rps", per, f"{part}: {what} / JSON, req/s",
                             dropped=dropped, note=part_note,
                             cmd=cmd if fmt == "grpc" and part == "digits" else None)
            rows.emit_ratios("grpc", f"{part}_{fmt}_cpu", cpus,
                             f"{part}: {what} / JSON, server CPU per request", dropped=dropped,
                             note=part_note)
        if fmt == "grpc" and binary and not base:
            rows.emit_ratios("grpc", f"{part}_grpc_over_bin_rps", per,
                             f"{part}: gRPC / binary, req/s", dropped=dropped, note=part_note)
            rows.emit_ratios("grpc", f"{part}_grpc_over_bin_cpu", cpus,
                             f"{part}: gRPC / binary, server CPU per request", dropped=dropped,
                             note=part_note)


def stream_rows(part, unary, rs, k, rps, cpu, bound):
    """The table line and rows of a part's ModelStreamInfer rounds (k
    messages a call): per message, against unary gRPC's rounds."""
    per, cpus, dropped = rows.paired(unary, rs) if unary else ([], [], 0)
    per = [x * k for x in per]
    cpus = [x / k for x in cpus]
    print(f"| {part} | gRPC stream, per message ({k} a call) | {len(rs)} ({bound}) | {rps * k:.0f} "
          f"| {cpu / k:.1f} | {rows.ratio_cell(per) if unary else '-'} (vs unary gRPC) | "
          f"{rows.ratio_cell(cpus) if unary else '-'} (vs unary gRPC) |")
    if not unary:
        return
    note = "unthrottled (payload-bound)"
    rows.emit_ratios("grpc", f"{part}_stream_over_unary_rps", per,
                     f"{part}: gRPC stream ({k} messages a call) / unary, messages/s",
                     dropped=dropped, note=note)
    rows.emit_ratios("grpc", f"{part}_stream_over_unary_cpu", cpus,
                     f"{part}: gRPC stream / unary, server CPU per message", dropped=dropped,
                     note=note)


def main(argv):
    if argv[1:2] == ["gen"] and len(argv) == 6:
        gen(argv[2], argv[3], int(argv[4]), int(argv[5]))
    elif argv[1:2] == ["check"] and len(argv) == 5:
        check(argv[2], int(argv[3]), argv[4])
    elif argv[1:2] == ["table"] and len(argv) in (3, 4):
        table(argv[2], argv[3] if len(argv) == 4 else "")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
