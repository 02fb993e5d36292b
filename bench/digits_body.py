#!/usr/bin/python3
"""digits_body.py - the infer benchmark's request body and its expected answer.

usage: digits_body.py MODEL_DIR BODY.json EXPECT.json [ROW]
       digits_body.py --check EXPECT.json < RESPONSE.json
       digits_body.py --udp MODEL_DIR REQUEST.msgpack EXPECT.f32 [ROW]

Writes a KServe v2 JSON request for row ROW (default 0) of
MODEL_DIR/heldout.safetensors, and EXPECT.json with the label and the
float64 reference probabilities (dense/relu/dense/softmax, as
model_forward_ref computes them).  Row 0 happens to be one of the few
held-out rows the model gets wrong (label 5, predicted 9): the check compares
against the reference, not the label.  --check prints one line comparing a
response with EXPECT.json (ends in MISMATCH when they differ).  --udp writes
the same row as a datagram-protocol request (docs/udp-protocol.md) whose
first key "id" is a uint64 for bench/udpload to fill in, and the reference
probabilities as little-endian FP32 (udpload -e).
"""
import json
import struct
import sys

import numpy as np


def load(path):
    buf = open(path, "rb").read()
    n = struct.unpack("<Q", buf[:8])[0]
    hdr = json.loads(buf[8:8 + n])
    data = buf[8 + n:]
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        dt = {"F32": np.float32, "I64": np.int64}[v["dtype"]]
        out[k] = np.frombuffer(data[b:e], dt).reshape(v["shape"])
    return out


def reference(model_dir, row):
    """(row's features, label, float64 reference probabilities)."""
    h = load(model_dir + "/heldout.safetensors")
    w = load(model_dir + "/model.safetensors")
    x = h["features"][row]
    a = np.maximum(w["fc1.weight"].astype(np.float64) @ x + w["fc1.bias"], 0)
    z = w["fc2.weight"].astype(np.float64) @ a + w["fc2.bias"]
    p = np.exp(z - z.max())
    p /= p.sum()
    return x, int(h["labels"][row]), p


def make_udp(model_dir, req_path, expect_path, row=0):
    import msgpack
    x, _, p = reference(model_dir, row)
    req = {"id": 2 ** 63, "model": "digits",   # 2**63: packed as 0xcf + 8 bytes
           "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, int(x.shape[0])],
                       "data": np.asarray(x, "<f4").tobytes()}]}
    b = msgpack.packb(req, use_bin_type=True)
    assert b[1:5] == b"\xa2id\xcf", b[:8]
    open(req_path, "wb").write(b)
    open(expect_path, "wb").write(np.asarray(p, "<f4").tobytes())


def make(model_dir, body_path, expect_path, row=0):
    x, label, p = reference(model_dir, row)
    body = {"inputs": [{"name": "input", "shape": [1, int(x.shape[0])], "datatype": "FP32",
                        "data": [float(v) for v in x]}]}
    with open(body_path, "w") as f:
        f.write(json.dumps(body, separators=(",", ":")))
    with open(expect_path, "w") as f:
        json.dump({"row": row, "label": label, "probs": p.tolist()}, f)


def check(expect_path):
    e = json.load(open(expect_path))
    try:
        d = json.load(sys.stdin)["outputs"][0]["data"]
    except (ValueError, KeyError, IndexError, TypeError) as ex:
        print("unreadable response (%s) MISMATCH" % ex)
        return
    am = int(np.argmax(d))
    ref = int(np.argmax(e["probs"]))
    diff = float(np.max(np.abs(np.asarray(d) - np.asarray(e["probs"]))))
    ok = am == ref and diff < 1e-4
    print("argmax %d (float64 reference %d, label %d), max |p - p_ref| %.2g%s" % (
        am, ref, e["label"], diff, "" if ok else " MISMATCH"))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        check(sys.argv[2])
    elif len(sys.argv) in (5, 6) and sys.argv[1] == "--udp":
        make_udp(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]) if len(sys.argv) == 6 else 0)
    elif len(sys.argv) in (4, 5):
        make(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) == 5 else 0)
    else:
        sys.exit(__doc__)
