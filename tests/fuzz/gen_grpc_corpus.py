#!/usr/bin/python3
"""Regenerate tests/fuzz/corpus/grpc/ (committed; run by hand): framed
protobuf requests for fuzz_grpc.c, from stubs compiled here out of the
repo's proto/grpc_service.proto (python3-grpc-tools)."""
import importlib
import os
import struct
import sys
import tempfile

import numpy as np
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "..", "..", "proto")


def main():
    out = tempfile.mkdtemp()
    assert protoc.main(["protoc", f"-I{PROTO}", f"--python_out={out}",
                        os.path.join(PROTO, "grpc_service.proto")]) == 0
    sys.path.insert(0, out)
    pb = importlib.import_module("grpc_service_pb2")

    def fr(m, flag=0):
        b = m if isinstance(m, bytes) else m.SerializeToString()
        return struct.pack(">BI", flag, len(b)) + b

    def req(rows, raw=True, **kw):  # the fuzz model: input [-1, 4] FP32
        r = pb.ModelInferRequest(model_name="digits", **kw)
        t = r.inputs.add(name="input", datatype="FP32", shape=[rows, 4])
        x = np.arange(rows * 4, dtype="<f4")
        if raw:
            r.raw_input_contents.append(x.tobytes())
        else:
            t.contents.fp32_contents.extend(x.tolist())
        return r

    # byte 0: the other request type (index into fz_others), 0x80 = a
    # grpc-timeout string follows up to a NUL; then frames
    seeds = {"raw": b"\x00" + fr(req(2, id="a")), "typed": b"\x01" + fr(req(3, raw=False))}
    r = req(8)
    r.parameters["priority"].int64_param = 5
    r.parameters["timeout"].uint64_param = 1000
    r.outputs.add(name="probabilities")
    seeds["params"] = b"\x02" + fr(r)
    r = req(1)
    r.parameters["sequence_id"].int64_param = 3
    seeds["refused"] = b"\x03" + fr(r)
    seeds["stream"] = (b"\x04" + fr(req(1, id="x")) + fr(req(2, id="y")) + fr(b"\xff\xff") +
                       fr(req(9)))
    seeds["timeout"] = b"\x85" + b"250m\x00" + fr(req(1))
    seeds["timeout_bad"] = b"\x80" + b"123456789S\x00" + fr(req(1))
    seeds["config_req"] = b"\x05" + fr(pb.ModelConfigRequest(name="digits", version="1"))
    lr = pb.RepositoryModelLoadRequest(model_name="digits")
    lr.parameters["config"].string_param = "{}"
    seeds["load"] = b"\x08" + fr(lr)
    seeds["gzip_flag"] = b"\x00" + fr(b"\x1f\x8b\x08\x00", flag=1)
    seeds["bad_flag"] = b"\x00" + struct.pack(">BI", 7, 3) + b"abc"
    seeds["huge_len"] = b"\x00" + struct.pack(">BI", 0, 0xFFFFFFFF) + b"abc"
    d = os.path.join(HERE, "corpus", "grpc")
    os.makedirs(d, exist_ok=True)
    for k, v in seeds.items():
        with open(os.path.join(d, k), "wb") as f:
            f.write(v)


if __name__ == "__main__":
    main()
