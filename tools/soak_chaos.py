#!/usr/bin/python3
"""soak_chaos.py - a hostile client for tools/soak.sh, for DURATION seconds.

usage: soak_chaos.py PORT DURATION SEED JSON_BODY GRPC_BODY WIDE_GRPC_BODY

Each round opens a connection and misbehaves at random (seeded): HTTP/2
connections with up to 20 requests (KServe JSON, gRPC ModelInfer, gRPC
ModelStreamInfer with several messages), each body sent in DATA frames of
1 to 16,384 bytes, half of them cut at a random byte, some reset with
RST_STREAM (CANCEL), the connection dropped after a short read; or an
HTTP/1.1 request cut at a random byte.  Answers are not checked (the
loads beside it check theirs).  Prints one line "chaos SEED: ..." and exits
1 when the gateway stops accepting connections."""
import os
import random
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "tests", "attack"),
                os.path.join(HERE, "..", "tests", "integration")]
from attacklib import RawH2, frame, hpack_request, raw_conn  # noqa: E402

HEADERS, DATA, RST_STREAM, END_STREAM, END_HEADERS, CANCEL = 1, 0, 3, 1, 4, 8
GRPC = [("content-type", "application/grpc"), ("te", "trailers")]
SVC = "/inference.GRPCInferenceService/"


def h1_round(port, rng, body):
    req = (b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: soak\r\n"
           b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    s = raw_conn(port, 5)
    try:
        s.sendall(req[:rng.randrange(len(req) + 1)])
        if rng.random() < 0.5:
            s.settimeout(0.2)
            try:
                s.recv(4096)
            except OSError:
                pass
    finally:
        s.close()


def send_body(c, rng, sid, body):
    cut = rng.randrange(len(body) + 1) if rng.random() < 0.5 else len(body)
    pos = 0
    while pos < cut:
        k = min(cut - pos, rng.choice([1, 7, 100, 5000, 16384]))
        last = pos + k >= len(body)
        c.send(frame(DATA, END_STREAM if last else 0, sid, body[pos:pos + k]))
        pos += k
        if pos > 60000 and rng.random() < 0.3:
            c.pump(0.01)  # let window updates in


def h2_round(port, rng, bodies):
    json_body, grpc_body, wide_body = bodies
    with RawH2(port, timeout=5) as c:
        sid = 1
        for _ in range(rng.randrange(1, 20)):
            kind = rng.randrange(3)
            if kind == 0:
                hb = hpack_request("POST", "/v2/models/digits/infer",
                                   extra=[("content-type", "application/json")])
                body = json_body
            elif kind == 1:
                hb = hpack_request("POST", SVC + "ModelStreamInfer", extra=GRPC)
                body = (grpc_body + wide_body) * rng.randrange(1, 3)
            else:
                hb = hpack_request("POST", SVC + "ModelInfer", extra=GRPC)
                body = wide_body if rng.random() < 0.5 else grpc_body
            c.send(frame(HEADERS, END_HEADERS, sid, hb))
            send_body(c, rng, sid, body)
            if rng.random() < 0.3:
                c.send(frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL)))
            sid += 2
        c.pump(rng.choice([0.001, 0.05, 0.3]))


def main(argv):
    port, secs, seed = int(argv[1]), float(argv[2]), int(argv[3])
    bodies = [open(p, "rb").read() for p in argv[4:7]]
    rng = random.Random(seed)
    rounds = dropped = 0
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            if rng.randrange(6) == 5:
                h1_round(port, rng, bodies[0])
            else:
                h2_round(port, rng, bodies)
        except ConnectionRefusedError:
            print(f"chaos {seed}: the gateway refused a connection after {rounds} rounds")
            return 1
        except OSError:
            dropped += 1  # the gateway may close a connection we left broken
        rounds += 1
    print(f"chaos {seed}: {rounds} connections, {dropped} ended by the gateway early")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
