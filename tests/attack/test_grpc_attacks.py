"""Hostile gRPC callers (issue 16's codec on the shared HTTP/2 stack): a
length prefix that claims 4 GiB, a message split across many DATA frames
and never finished, two messages on a unary call, a compressed flag,
gzip bombs (unary and streaming), garbage protobuf, unfinished messages on
streaming calls, all while a well-behaved client is served with correct
values.  Every hostile call gets a trailers-only gRPC error (never a
crash, never memory sized by what the client claims).  Bounded: a few
hundred calls."""
import struct

import attacklib
from gwlib import H2Client

SVC = "/inference.GRPCInferenceService/"
GRPC = [("content-type", "application/grpc"), ("te", "trailers")]
INVALID_ARGUMENT, UNIMPLEMENTED, RESOURCE_EXHAUSTED, INTERNAL = "3", "12", "8", "13"
GZIP = [("grpc-encoding", "gzip")]


def prefixed(payload, length=None, flag=0):
    n = len(payload) if length is None else length
    return struct.pack(">BI", flag, n) + payload


def grpc_status(resp):
    """grpc-status of a finished call: trailers-only answers carry it in
    the headers, others in the trailers."""
    return resp.trailers.get("grpc-status", resp.headers.get("grpc-status"))


def test_hostile_grpc_calls_get_errors_not_memory(module_gw, model):
    g = module_gw("grpc", max_body_bytes=1 << 20)
    pid = g.proc.pid
    rss0 = attacklib.rss_kb(pid)
    import gzip
    bomb = prefixed(gzip.compress(b"\x1a" + b"\xff" * 8 + b"\x00" * (16 << 20), 9), flag=1)
    assert len(bomb) < 1 << 20
    bodies = [
        # claims 4 GiB, or more than max_body_bytes, and carries 8 bytes
        (prefixed(b"\x0a\x06digits", length=0xFFFFFFFF), INVALID_ARGUMENT),
        (prefixed(b"\x0a\x06digits", length=(1 << 20) + 1), INVALID_ARGUMENT),
        (prefixed(b"\x0a" * ((1 << 20) + 16)), RESOURCE_EXHAUSTED),  # really over the limit
        (prefixed(b"\x0a\x06digits", length=1000), INVALID_ARGUMENT),  # truncated message
        (prefixed(b"\x0a\x06digits") * 2, INVALID_ARGUMENT),  # two messages, unary call
        (prefixed(b"\x0a\x06digits", flag=1), INTERNAL),  # compressed, no grpc-encoding
        (prefixed(b"\xff" * 64), INVALID_ARGUMENT),  # not protobuf
        # small on the wire, large unpacked (each empty tensor a struct):
        # the message's arena grows past its first block (gateway/api/grpc.c)
        (prefixed(b"\x0a\x06digits" + b"\x2a\x00" * 20000), INVALID_ARGUMENT),
        (prefixed(b"\x0a\x06digits" + b"\x32\x00" * 20000), INVALID_ARGUMENT),
        (b"\x00\x00", INVALID_ARGUMENT),  # not even a prefix
    ]
    with attacklib.Bystander(g, model) as by:
        for _ in range(30):
            with H2Client(g.port, timeout=10) as c:
                sids = [(c.request("POST", SVC + "ModelInfer", body, GRPC), want)
                        for body, want in bodies]
                # 16 MiB of zeros in ~16 KiB: inflating stops at max_body_bytes
                sids.append((c.request("POST", SVC + "ModelInfer", bomb, GRPC + GZIP),
                             RESOURCE_EXHAUSTED))
                # on a stream: that message's error_message, then OK
                sids.append((c.request("POST", SVC + "ModelStreamInfer", bomb * 2, GRPC + GZIP),
                             "0"))
                got = c.wait([s for s, _ in sids])
            for (_, want), resp in zip(sids, got):
                assert resp.status == 200, (resp.status, resp.headers)
                assert grpc_status(resp) == want, (want, resp.headers, resp.trailers)
                if want == "0":
                    assert b"inflates past limits.max_body_bytes" in bytes(resp.body), resp
                else:
                    assert resp.trailers.get("grpc-message", resp.headers.get("grpc-message"))
        by.wait_for(5)
    by.assert_served()
    assert attacklib.rss_kb(pid) - rss0 < attacklib.RSS_SCALE * 64 * 1024, \
        "gRPC errors grew the gateway's memory"
    attacklib.assert_alive(g)


def test_unfinished_grpc_messages_hold_bounded_memory(module_gw, model):
    """Many streams (unary and ModelStreamInfer calls), each a prefix
    claiming 512 KiB and 200 bytes of it, never ended: what the gateway holds is what arrived, not what was
    claimed; closing the connection frees it; others are served."""
    g = module_gw("grpc", max_body_bytes=1 << 20)
    pid = g.proc.pid
    rss0 = attacklib.rss_kb(pid)
    with attacklib.Bystander(g, model) as by:
        conns = []
        for _ in range(4):
            c = H2Client(g.port, timeout=10)
            for i in range(64):
                sid = c.conn.get_next_available_stream_id()
                method = "ModelStreamInfer" if i % 2 else "ModelInfer"
                c.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                                          (":authority", "127.0.0.1"),
                                          (":path", SVC + method), *GRPC])
                c.conn.send_data(sid, prefixed(b"\x0a" * 200, length=512 << 10))
            c._flush()
            conns.append(c)
        by.wait_for(5)
        grown = attacklib.rss_kb(pid) - rss0
        for c in conns:
            c.close()
    by.assert_served()
    # 256 x 200 bytes arrived; 256 x 512 KiB (128 MiB) was claimed
    print(f"\nRSS growth with 256 unfinished gRPC messages: {grown} KiB")
    assert grown < attacklib.RSS_SCALE * 32 * 1024, f"{grown} KiB for 50 KiB sent"
    attacklib.assert_alive(g)


def test_stream_client_that_never_reads_answers_is_bounded(module_gw, model):
    """One ModelStreamInfer stream whose client sends requests as fast as
    its window allows and never acknowledges an answer (its receive window
    stays shut at 64 KiB): the gateway stops taking requests once 1 MiB of
    answers wait, stops reopening the client's window, and holds bounded
    memory; others are served meanwhile."""
    import socket
    import time
    g = module_gw("grpc", max_body_bytes=1 << 20)
    pid = g.proc.pid
    rss0 = attacklib.rss_kb(pid)
    # a 1-row digits ModelInferRequest, field by field (model_name=1,
    # inputs=5 {name=1, datatype=2, shape=3 packed}, raw_input_contents=7)
    tensor = b"\x0a\x05input\x12\x04FP32\x1a\x02\x01\x40"
    msg = prefixed(b"\x0a\x06digits" + b"\x2a" + bytes([len(tensor)]) + tensor +
                   b"\x3a\x80\x02" + b"\x00" * 256)
    sent, last_growth, t0 = 0, time.monotonic(), time.monotonic()
    with attacklib.Bystander(g, model) as by:
        c = H2Client(g.port, timeout=10)
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                                  (":authority", "127.0.0.1"),
                                  (":path", SVC + "ModelStreamInfer"), *GRPC])
        c._flush()
        c.sock.settimeout(0.05)
        while time.monotonic() - t0 < 8 and time.monotonic() - last_growth < 2:
            n = min(c.conn.local_flow_control_window(sid) // len(msg),
                    c.conn.max_outbound_frame_size // len(msg))
            if n:
                c.conn.send_data(sid, msg * n)
                c._flush()
                sent += n
                last_growth = time.monotonic()
                continue
            try:
                data = c.sock.recv(1 << 16)
            except socket.timeout:
                continue
            if not data:
                break
            c.conn.receive_data(data)  # WINDOW_UPDATEs; answers never acknowledged
            c._flush()
        grown = attacklib.rss_kb(pid) - rss0
        by.wait_for(3)
        c.close()
    by.assert_served()
    print(f"\nstream client that never reads: {sent} requests sent "
          f"({sent * len(msg) >> 10} KiB) before the gateway stopped taking more; "
          f"RSS +{grown} KiB")
    # answers of ~100 bytes: the 1 MiB output bound is ~10k of them, plus
    # the stream's window (1 MiB + 16 KiB here) of requests
    assert sent * len(msg) < 16 << 20, sent
    assert grown < attacklib.RSS_SCALE * 64 * 1024, f"{grown} KiB"
    attacklib.assert_alive(g)


def _varint(v, pad=0):
    """v as a protobuf varint (a negative one as its 64-bit two's
    complement: ten bytes); pad more bytes make it longer than it needs."""
    v &= (1 << 64) - 1
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    if not pad:
        return bytes(out + bytes([v]))
    return bytes(out + bytes([v | 0x80]) + b"\x80" * (pad - 1) + b"\x00")


def _field(num, value, pad=0):
    """A length-delimited protobuf field (bytes, string, message); pad:
    its length written pad bytes longer than it needs."""
    return _varint(num << 3 | 2) + _varint(len(value), pad) + value


def _fields(b):
    """The top-level fields of protobuf bytes b: {number: [values]}
    (length-delimited values as bytes, varints as ints)."""
    out, i = {}, 0

    def varint():
        nonlocal i
        v = s = 0
        while True:
            c = b[i]
            i += 1
            v |= (c & 0x7F) << s
            s += 7
            if c < 0x80:
                return v
    while i < len(b):
        tag = varint()
        if tag & 7 == 2:
            n = varint()
            val, i = b[i:i + n], i + n
        elif tag & 7 == 0:
            val = varint()
        else:
            raise AssertionError(f"wire type {tag & 7} in an answer")
        out.setdefault(tag >> 3, []).append(val)
    return out


def _infer_message(rid, x):
    """One framed ModelInferRequest for digits, x's rows as raw contents,
    the raw field between the header fields and the input (any order is
    protobuf's)."""
    shape = _varint(len(x)) + _varint(x.shape[1])
    tensor = _field(1, b"input") + _field(2, b"FP32") + _field(3, shape)
    msg = (_field(1, b"digits") + _field(3, rid.encode()) +
           _field(7, x.astype("<f4").tobytes()) + _field(5, tensor))
    return prefixed(msg)


def _stream_call(h, sid, model, rows, seed):
    """A ModelStreamInfer call on RawH2 h: messages of rows[i] rows (ids
    r0, r1, ...) in DATA frames cut so that prefixes and message ends fall
    inside frames and across them; every answer checked against model."""
    from attacklib import DATA, END_HEADERS, END_STREAM, HEADERS, frame, hpack_request
    import numpy as np
    rng = np.random.default_rng(seed)
    xs = {f"r{i}": rng.uniform(0, 16, (n, 64)).astype(np.float32) for i, n in enumerate(rows)}
    body = b"".join(_infer_message(rid, x) for rid, x in xs.items())
    wire = frame(HEADERS, END_HEADERS, sid, hpack_request("POST", SVC + "ModelStreamInfer",
                                                          extra=GRPC))
    off, k, cuts = 0, 0, (3, 4099, 2, 7777, 1, 16384)
    while off < len(body):
        piece = body[off:off + cuts[k % len(cuts)]]
        off, k = off + len(piece), k + 1
        wire += frame(DATA, END_STREAM if off >= len(body) else 0, sid, piece)
    h.send(wire)
    end = h.read_until(lambda f: f[2] == sid and f[0] == HEADERS and f[1] & END_STREAM,
                       timeout=20)
    assert end is not None, f"stream {sid} did not end"
    got = b"".join(f[3] for f in h.frames if f[0] == DATA and f[2] == sid)
    seen = 0
    while got:
        n = struct.unpack(">I", got[1:5])[0]
        resp = _fields(_fields(got[5:5 + n])[2][0])
        got = got[5 + n:]
        rid = resp[3][0].decode()
        out = np.frombuffer(resp[6][0], dtype="<f4").reshape(len(xs[rid]), 10)
        np.testing.assert_allclose(out, model.forward(xs[rid]), rtol=1e-5, atol=1e-6)
        seen += 1
    assert seen == len(rows), (seen, rows)


def test_stream_declared_messages_reserve_bounded(gw_factory, model):
    """A large ModelStreamInfer message gets a block of its own when its
    5-byte prefix arrives (read in place, no copy), counted against the
    connection's budget for declared bodies until it is filled: 100 streams
    each declaring an 8 MiB message and sending one byte of it must not
    make the gateway reserve 800 MiB (its address space, VmSize: room not
    written is not resident).  Real streams on the same connection - their
    prefixes and message ends cut across DATA frames, 16 KiB messages
    (a block each) among small ones - are answered right before the
    budget is taken and after (then without blocks)."""
    from attacklib import DATA, END_HEADERS, HEADERS, RawH2, crash_note, frame, hpack_request
    g = attacklib.start_gateway(gw_factory, "grpc-resv", max_body_bytes=32 << 20)
    try:
        with RawH2(g.port, settings={"s4": 1 << 30}, timeout=10) as h:
            _stream_call(h, 1, model, [64, 1, 64, 2, 64], seed=1)
            base = attacklib.vm_kb(g.proc.pid)
            enc = hpack_request("POST", SVC + "ModelStreamInfer", extra=GRPC)
            h.send(b"".join(frame(HEADERS, END_HEADERS, sid, enc) +
                            frame(DATA, 0, sid, prefixed(b"\x0a", length=8 << 20))
                            for sid in range(3, 203, 2)))
            assert h.ping_ack(timeout=10), f"no PING ACK after 100 declared messages{crash_note(g)}"
            grew = (attacklib.vm_kb(g.proc.pid) - base) / 1024
            assert grew < 128, (f"address space grew {grew:.0f} MiB for 100 declared 8 MiB "
                                f"messages of one byte each{crash_note(g)}")
            _stream_call(h, 203, model, [64, 1, 64], seed=2)
            assert h.ping_ack(timeout=5), f"the connection did not go on{crash_note(g)}"
    finally:
        g.kill()


# ---- the plain-request reader (grpccodec.c gc_infer_unpack) at its edges ----

def _infer_msg(name=b"digits", dims=(1, 64), n_inputs=1, twice=None, pad=0):
    import numpy as np
    shape = b"".join(_varint(d) for d in dims)
    tensor = _field(1, b"input") + _field(2, b"FP32") + _field(3, shape)
    msg = b""
    if twice:
        msg += _field(1, twice)  # protobuf: the last one counts
    msg += _field(1, name, pad) + _field(3, b"edge") + _field(5, tensor) * n_inputs
    msg += _field(7, attacklib.ROW.astype(np.float32).tobytes())
    return msg


def test_plain_reader_edges_answered_as_protobuf(module_gw, model):
    """ModelInfer calls shaped like the plain request but past what the
    gateway's own reader takes (a field twice, a length written long, more
    inputs or dimensions than it holds, a dimension as a 10-byte varint,
    a truncated field, field number 0) get protobuf-c's answer: served with
    the right probabilities, or INVALID_ARGUMENT naming the problem; never
    a crash, memory bounded, a bystander served throughout."""
    import numpy as np
    g = module_gw("grpc", max_body_bytes=1 << 20)
    pid = g.proc.pid
    rss0 = attacklib.rss_kb(pid)
    ok = _infer_msg()
    cases = [
        (ok, "0"),
        (_infer_msg(twice=b"nope"), "0"),                 # declined, protobuf-c: last wins
        (_infer_msg(name=b"nope", twice=b"digits"), "5"),  # NOT_FOUND: the last name counts
        (_infer_msg(pad=2), "0"),                          # a length in 3 bytes for 1
        (_infer_msg(n_inputs=5), INVALID_ARGUMENT),        # over the reader's 4 inputs
        (_infer_msg(dims=(1,) * 16 + (64,)), INVALID_ARGUMENT),  # 17 dimensions
        (_infer_msg(dims=(-1, 64)), INVALID_ARGUMENT),     # a 10-byte varint dimension
        (ok[:-10], INVALID_ARGUMENT),                      # the raw input cut short
        (b"\x02\x00" + ok, INVALID_ARGUMENT),              # field number 0
    ]
    with attacklib.Bystander(g, model) as by:
        for _ in range(20):
            with H2Client(g.port, timeout=10) as c:
                sids = [(c.request("POST", SVC + "ModelInfer", prefixed(m), GRPC), want)
                        for m, want in cases]
                got = c.wait([s for s, _ in sids])
            for (_, want), resp in zip(sids, got):
                assert resp.status == 200, (resp.status, resp.headers)
                assert grpc_status(resp) == want, (want, resp.headers, resp.trailers)
                if want != "0":
                    assert resp.trailers.get("grpc-message", resp.headers.get("grpc-message"))
                    continue
                fields = _fields(bytes(resp.body)[5:])
                assert fields.get(3) == [b"edge"], fields.get(3)
                raw = fields.get(6, [])
                assert len(raw) == 1, sorted(fields)
                probs = np.frombuffer(raw[0], dtype="<f4").astype(np.float64).reshape(1, 10)
                np.testing.assert_allclose(probs, model.forward(attacklib.ROW),
                                           rtol=1e-5, atol=1e-6)
        by.wait_for(5)
    by.assert_served()
    assert attacklib.rss_kb(pid) - rss0 < attacklib.RSS_SCALE * 64 * 1024, \
        "edge-shaped gRPC calls grew the gateway's memory"
    attacklib.assert_alive(g)
