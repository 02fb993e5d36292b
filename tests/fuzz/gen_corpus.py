#!/usr/bin/python3
"""Regenerate the seed corpora in tests/fuzz/corpus/ (committed; run by hand).

msgpack and safetensors are written by hand; Ethernet frames come from
tests/dpdk/pcaplib.py (the pcap test's builders).
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "dpdk"))
import pcaplib as pl  # noqa: E402


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- kserve: byte 0 = 0 (no binary section) or 1 + binary length ---------
INP = '{"name":"input","datatype":"FP32"'
json_bodies = {
    "flat": '{"id":"r1","inputs":[' + INP + ',"shape":[2,4],"data":[1,2,3,4,5,6,7,8.5]}]}',
    "nested": '{"inputs":[' + INP + ',"shape":[2,4],"data":[[1,2,3,4],[5,6,7,-8e-1]]}],'
              '"outputs":[{"name":"probabilities"}],"parameters":{"priority":2,"timeout":5000}}',
    "max_batch": '{"inputs":[' + INP + ',"shape":[8,4],"data":[' + ",".join(["0.5"] * 32) + ']}],'
                 '"parameters":{"binary_data_output":true}}',
    "trunc": '{"inputs":[',
    "list": '[1,2]',
    "empty_inputs": '{"inputs":[]}',
    "bad_name": '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}',
    "bad_dtype": '{"inputs":[{"name":"input","datatype":"INT32","shape":[1,4],"data":[1,2,3,4]}]}',
    "bad_shape": '{"inputs":[' + INP + ',"shape":[2,3],"data":[1,2,3,4,5,6]}]}',
    "bad_value": '{"inputs":[' + INP + ',"shape":[1,4],"data":[1,2,"x",4]}]}',
    "escapes": '{"id":"q\\"1\\u00e9\\ud83d\\ude00","inputs":[' + INP +
               ',"shape":[1,4],"data":[1e38,-1e-45,0,3.4028235e38]}]}',
    # issue 9: a "data" outside inputs[0], FP32 overflow, a timeout that wrapped
    "decoy_data": '{"inputs":[' + INP + ',"shape":[1,4],"d\\u0061ta":[]}],'
                  '"x":{"data":[1,2,3,4]}}',
    "overflow": '{"inputs":[' + INP + ',"shape":[1,4],"data":[1,2,1e39,4]}]}',
    "huge_timeout": '{"parameters":{"timeout":9223372036854775807},"inputs":[' + INP +
                    ',"shape":[1,4],"data":[1,2,3,4]}]}',
    # issue 18: bodies the one-walk reader (jfast_read) takes, and a shape
    # value of 19 digits it leaves to jansson
    "plain": '{"id":"p","inputs":[' + INP + ',"shape":[1,4],"data":[0.0,12.5,-3,1e-2]}],'
             '"parameters":{"priority":1,"variant":"fp32"},'
             '"outputs":[{"name":"probabilities","parameters":{"binary_data":false}}]}',
    "plain-shape-19-digits": '{"inputs":[' + INP + ',"shape":[1000000000000000001,4],'
                             '"data":[1,2,3,4]}]}',
    # the data list's word readers: "d.d," and "dd.d," by masks, short
    # shapes, fractions of one word, two words and past 15/16/19 digits
    "numbers-short": '{"inputs":[' + INP + ',"shape":[2,4],"data":[0.0,12.5,-3.0,7,'
                     '255.0,9.9,-0.0,10]}]}',
    "numbers-long": '{"inputs":[' + INP + ',"shape":[2,4],"data":[0.10000000149011612,'
                    '-2.2420195516347885,0.123456789012345,1234567.5,9.007199254740993,'
                    '0.0470588244497776,103347.59765625001,0.30000001192092896]}]}',
    "numbers-odd": '{"inputs":[' + INP + ',"shape":[1,4],"data":[1.:,01.5,1.5e3,4:.5]}]}',
}
for name, body in json_bodies.items():
    put("kserve", name, b"\x00" + body.encode())
bin_hdr = ('{"inputs":[' + INP + ',"shape":[2,4],"parameters":{"binary_data_size":32}}],'
           '"outputs":[{"name":"probabilities","parameters":{"binary_data":true}}]}')
vals = struct.pack("<8f", 1, 2, 3, 4, 5, 6, 7, -8)
put("kserve", "binary", bytes([1 + 32]) + bin_hdr.encode() + vals)
put("kserve", "binary_trailing", bytes([1 + 36]) + bin_hdr.encode() + vals + b"\0\0\0\0")
put("kserve", "binary_short", bytes([1 + 16]) + bin_hdr.encode() + vals[:16])
put("kserve", "binary_none", b"\x00" + bin_hdr.encode())


# --- msgpack ---------------------------------------------------------------
def mp(o):
    if o is None:
        return b"\xc0"
    if o is True:
        return b"\xc3"
    if o is False:
        return b"\xc2"
    if isinstance(o, int):
        if 0 <= o < 128:
            return bytes([o])
        if -32 <= o < 0:
            return struct.pack("b", o)
        return b"\xd3" + struct.pack(">q", o)
    if isinstance(o, float):
        return b"\xca" + struct.pack(">f", o)
    if isinstance(o, str):
        b = o.encode()
        return (bytes([0xa0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])) + b
    if isinstance(o, bytes):
        return b"\xc4" + bytes([len(o)]) + o
    if isinstance(o, list):
        return bytes([0x90 | len(o)]) + b"".join(mp(x) for x in o) if len(o) < 16 else \
            b"\xdc" + struct.pack(">H", len(o)) + b"".join(mp(x) for x in o)
    if isinstance(o, dict):
        return bytes([0x80 | len(o)]) + b"".join(mp(k) + mp(v) for k, v in o.items())
    raise TypeError(o)


def req(data, name="input", dtype="FP32", shape=(2, 4), **extra):
    r = {"model_name": "digits", "id": "m1", "parameters": {"priority": 2, "timeout": 1000},
         "inputs": [{"name": name, "datatype": dtype, "shape": list(shape), "data": data}]}
    r.update(extra)
    return r


fl = [i * 0.5 for i in range(8)]
put("mpcodec", "bin", mp(req(struct.pack("<8f", *fl))))
put("mpcodec", "array", mp(req(fl, outputs=[{"name": "probabilities"}])))
put("mpcodec", "ints", mp(req([1, 2, 3, 4], shape=(1, 4))))
put("mpcodec", "bad_name", mp(req(fl, name="x")))
put("mpcodec", "bad_dtype", mp(req(fl, dtype="INT32")))
put("mpcodec", "short_bin", mp(req(struct.pack("<7f", *fl[:7]))))
put("mpcodec", "bad_value", mp(req([1.0, 2.0, "oops", 4.0], shape=(1, 4))))
put("mpcodec", "truncated", mp(req(struct.pack("<8f", *fl)))[:-5])
put("mpcodec", "not_map", mp([1, 2, 3]))
put("mpcodec", "peek_only", mp({"model_name": "digits"}))
put("mpcodec", "inf_bin", mp(req(struct.pack("<8f", *fl[:7], float("inf")))))
put("mpcodec", "huge_timeout", mp(req(fl)).replace(mp(1000), b"\xcf" + b"\xff" * 8))

# --- safetensors -----------------------------------------------------------
def st(header, data):
    h = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + data


w = struct.pack("<6f", 1.5, -2.0, 3.25, 0.0, 1e-3, -7.0)
put("safetensors", "valid", st({"__metadata__": {"format": "pt"},
                                 "fc.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
                                 "fc.bias": {"dtype": "F32", "shape": [2], "data_offsets": [24, 32]}},
                                w + struct.pack("<2f", 0.5, -0.5)))
put("safetensors", "dtypes", st({"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
                                 "b": {"dtype": "I64", "shape": [1], "data_offsets": [4, 12]},
                                 "c": {"dtype": "U8", "shape": [0], "data_offsets": [12, 12]}},
                                b"\0" * 12))
put("safetensors", "overlap", st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                  "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
                                 b"\0" * 12))
put("safetensors", "past_end", st({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8))
put("safetensors", "bad_dtype", st({"a": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8))
put("safetensors", "bad_json", struct.pack("<Q", 5) + b'{"a":')
put("safetensors", "huge_len", struct.pack("<Q", 1 << 62) + b"{}")

# --- config ----------------------------------------------------------------
put("config", "minimal", "models:\n  - name: m\n    path: /x/m\nbackends:\n  - kind: cpu\n")
with open(os.path.join(HERE, "..", "..", "config", "gateway.yaml"), "rb") as f:
    put("config", "gateway", f.read())
put("config", "full", """listen: {address: 127.0.0.1, port: 8080, threads: 2}
limits: {max_body_bytes: 65536, max_header_bytes: 4096, max_concurrent_streams: 16,
         idle_timeout_ms: 1000, shutdown_grace_ms: 0}
routing: {policy: slo, margin_us: 100, priority_levels: 4, sheddable_levels: 1,
          drop_hopeless: true, shed_wait_fraction: 0.5}
admin: {address: 127.0.0.1, port: -1}
reload: {watch: true, debounce_ms: 50}
log: {level: debug, access: true}
models:
  - name: a
    path: models/a
    max_batch: 8
    max_queue_delay_us: 500
    max_queue: 16
    slo_ms: 20
    priority: 2
    preferred_batch_sizes: [2, 4, 8]
    adaptive_batching: true
    service_time_us: {base: 100.5, per_row: 2}
  - name: b
    path: &p /abs/b
backends:
  - name: c0
    kind: cpu
    workers: 2
    threads_per_worker: 1
    cost: 0.5
    models: [a, b]
  - name: r0
    kind: remote
    address: 10.0.0.1:9000
    models: [a]
  - name: g0
    kind: gpu
    device: 0
""")
put("config", "bad_indent", "models:\n - name: m\n  path: x\n")
put("config", "alias", "x: &a [1, 2]\nmodels: *a\n")
put("config", "bad_type", "listen:\n  port: [1]\nmodels: []\n")
put("config", "policy_rr", "routing: {policy: round-robin}\nmodels: [{name: m, path: p}]\nbackends: [{kind: cpu, models: [m, m]}]\n")
put("config", "tags", "!!map {models: !!seq [], backends: !!str x}\n")

# --- agentframe: streams of 4-byte big-endian length + msgpack map -------
def frame(o):
    p = o if isinstance(o, bytes) else mp(o)
    return struct.pack(">I", len(p)) + p


LOAD = {"q": 2, "qc": 1, "svc_us": 850}
MODEL = {"name": "digits", "version": 1, "in_dim": 4, "out_dim": 3, "max_batch": 8, "dtype": "FP32"}
hello_req = {"t": "hello", "v": 1, "sw": "infergw 0.9"}
hello = dict({"t": "hello", "v": 1, "sw": "infergw-agent 1.0", "window": 4, "threads": 2,
              "models": [MODEL, dict(MODEL, name="mlp", in_dim=2, out_dim=2)]}, **LOAD)
infer = {"t": "infer", "id": 7, "model": "digits",
         "slices": [{"rows": 2, "timeout_us": 5000}, {"rows": 1, "timeout_us": 0}],
         "input": struct.pack("<12f", *range(12))}
result = dict({"t": "result", "id": 7, "status": 0, "queue_us": 120, "exec_us": 300,
               "slices": [{"rows": 2, "status": 0}, {"rows": 1, "status": 504}],
               "output": struct.pack("<9f", *[0.5] * 6, 0, 0, 0)}, **LOAD)
failed = dict({"t": "result", "id": 8, "status": 503, "msg": "model not loaded", "queue_us": 0,
               "exec_us": 0, "slices": [{"rows": 1, "status": 0}], "output": b""}, **LOAD)
small = [{"t": "ping", "id": 9}, dict({"t": "pong", "id": 9}, **LOAD), {"t": "cancel", "id": 7},
         {"t": "error", "id": 0, "status": 400, "msg": "not a msgpack map"}]
put("agentframe", "hello_req", frame(hello_req))
put("agentframe", "hello", frame(hello))
put("agentframe", "hello_v2", frame({"t": "hello", "v": 2, "sw": "gw 2", "caps": ["x"]}))
put("agentframe", "infer", frame(infer))
put("agentframe", "result", frame(result))
put("agentframe", "result_failed", frame(failed))
for o in small:
    put("agentframe", o["t"], frame(o))
put("agentframe", "session_gw", frame(hello_req) + frame(infer) + frame(small[0]) + frame(small[2]))
put("agentframe", "session_agent", frame(hello) + frame(result) + frame(small[1]) + frame(failed))
put("agentframe", "extra_keys", frame(dict(infer, pad="  ", future={"a": [1, None, 1.5]})))
put("agentframe", "bad_rows", frame(dict(infer, slices=[{"rows": "2"}, {"rows": -1}])))
put("agentframe", "unknown_type", frame({"t": "foo", "id": 3}))
put("agentframe", "not_map", frame([1, 2, 3]))
put("agentframe", "truncated", frame(infer)[:-7])
put("agentframe", "huge_len", struct.pack(">I", 0xFFFFFFFF) + mp(small[0]))

# --- dgram: one UDP payload, the datagram request map ----------------------
def dg(data, shape=(2, 4), **extra):
    r = {"id": 42, "model": "digits",
         "inputs": [{"name": "input", "datatype": "FP32", "shape": list(shape), "data": data}]}
    r.update(extra)
    return r


f8 = struct.pack("<8f", *fl)
put("dgram", "valid", mp(dg(f8, priority=3, timeout_us=2000)))
put("dgram", "rows_minus1", mp(dg(f8, shape=(-1, 4))))
put("dgram", "one_row", mp(dg(f8[:16], shape=(1, 4))))
put("dgram", "extra_keys", mp(dg(f8, comment={"a": [1, None, 1.5]})))
put("dgram", "two_inputs", mp(dict(dg(f8), inputs=dg(f8)["inputs"] * 2)))
put("dgram", "bad_name", mp(dict(dg(f8), inputs=[dict(dg(f8)["inputs"][0], name="x")])))
put("dgram", "bad_dtype", mp(dict(dg(f8), inputs=[dict(dg(f8)["inputs"][0], datatype="INT32")])))
put("dgram", "short_bin", mp(dg(f8[:28])))
put("dgram", "inf", mp(dg(struct.pack("<8f", *fl[:7], float("inf")))))
put("dgram", "id_str", mp(dict(dg(f8), id="42")))
put("dgram", "no_model", mp({"id": 1, "inputs": []}))
put("dgram", "truncated", mp(dg(f8))[:-5])
put("dgram", "trailing", mp(dg(f8)) + b"\xc0")
put("dgram", "not_map", mp([1, 2, 3]))
put("dgram", "huge_timeout", mp(dg(f8, timeout_us=1)).replace(b"\xaatimeout_us\x01", b"\xaatimeout_us\xcf" + b"\xff" * 8))
put("dgram", "huge_array", b"\x81\xa6inputs\xdd\xff\xff\xff\xff")


# --- pkt: one Ethernet frame (built by tests/dpdk/pcaplib.py) ------------
US_MAC, PEER_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
US_IP, PEER_IP = "198.18.0.1", "198.18.0.2"


def ipv4(proto, payload, flags=0x4000):
    return pl.eth(US_MAC, PEER_MAC, pl.ETH_IPV4,
                  pl.ipv4(PEER_IP, US_IP, proto, payload, flags=flags))


def udp(payload, sport=40000, dport=9200):
    return pl.udp_frame(US_MAC, PEER_MAC, PEER_IP, US_IP, sport, dport, payload)


def icmp(data, typ=8):
    return pl.icmp_echo_frame(US_MAC, PEER_MAC, PEER_IP, US_IP, 0x77, 3, data, reply=typ == 0)


def arp(target=US_IP, oper=1):
    return pl.arp_frame(PEER_MAC, PEER_IP, target, oper=oper)


put("pkt", "udp", udp(mp(dg(f8))))
put("pkt", "udp_nocsum", udp(b"hello")[:40] + b"\0\0" + b"hello")
put("pkt", "udp_padded", udp(b"x") + b"\0" * 17)
put("pkt", "udp_port", udp(b"x", dport=53))
put("pkt", "udp_bad_csum", udp(b"hello")[:-1] + b"H")
put("pkt", "icmp", icmp(b"abcdefgh" * 4))
put("pkt", "icmp_reply", icmp(b"abcd", typ=0))
put("pkt", "arp", arp())
put("pkt", "arp_other", arp(target="198.18.0.9"))
put("pkt", "arp_reply", arp(oper=2))
put("pkt", "fragment", ipv4(17, b"\0" * 16, flags=0x2000))
put("pkt", "tcp", ipv4(6, b"\0" * 20))
put("pkt", "ipv6", pl.eth(US_MAC, PEER_MAC, 0x86dd, b"\x60" + b"\0" * 39))
put("pkt", "vlan", pl.eth(US_MAC, PEER_MAC, 0x8100, b"\x00\x01" + udp(b"x")[12:]))
put("pkt", "short", udp(b"hello")[:30])


# --- hpack: byte 0 = table limit (low 4 bits x 32, 15 = 4096) | stop field
# (high 4 bits); then blocks, each a length byte and its bytes.  The blocks
# are RFC 7541 Appendix C's, in order through one decoder.
def hp(first, *blocks):
    out = bytes([first])
    for b in blocks:
        b = bytes.fromhex(b)
        out += bytes([len(b)]) + b
    return out


HP_C2 = ["400a637573746f6d2d6b65790d637573746f6d2d686561646572", "040c2f73616d706c652f70617468",
         "100870617373776f726406736563726574", "82"]
HP_C3 = ["828684410f7777772e6578616d706c652e636f6d", "828684be58086e6f2d6361636865",
         "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"]
HP_C4 = ["828684418cf1e3c2e5f23a6ba0ab90f4ff", "828684be5886a8eb10649cbf",
         "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"]
HP_C5 = ["4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d"
         "546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
         "4803333037c1c0bf",
         "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f"
         "6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b"
         "2076657273696f6e3d31"]
HP_C6 = ["488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c7"
         "8f0b97c8e9ae82ae43d3",
         "4883640effc1c0bf",
         "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335"
         "dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007"]
put("hpack", "c2", hp(0x0f, *HP_C2))
put("hpack", "c3", hp(0x0f, *HP_C3))
put("hpack", "c4_stop2", hp(0x2f, *HP_C4))
put("hpack", "c5", hp(0x08, *HP_C5))
put("hpack", "c6_stop3", hp(0x38, *HP_C6))
put("hpack", "c3_limit64", hp(0x02, *HP_C3))
put("hpack", "size_updates", hp(0x0f, "3fe11f20" + HP_C3[0], HP_C3[1], "3fe11f" + HP_C3[2]))
put("hpack", "index0", hp(0x0f, HP_C3[0], "80"))
put("hpack", "huffman_eos", hp(0x0f, "000178" + "84ffffffff"))
# integers at their longest: five continuation bytes (one more is an error)
put("hpack", "long_integers", hp(0x0f, "3f8180808000" + "82" + "0f8080808000" + "0161", "ff8080808000"))
