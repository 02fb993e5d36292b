#!/usr/bin/python3
"""Quick tests of tests/dpdk/pcaplib.py (no gateway, no DPDK): pcap round
trip, checksums against known values, frames parsed back, and
check_output against a Python stand-in for the gateway (right and wrong).

    /usr/bin/python3 -m pytest -q tests/dpdk/test_pcaplib.py
"""
import os
import struct
import sys

import msgpack
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcaplib as pl  # noqa: E402

GW_MAC = "02:70:63:61:70:00"


class FakeRef:
    """A stand-in for RefModel: softmax of a fixed linear map, 64 -> 10."""

    def __init__(self):
        self.w = np.random.default_rng(1).normal(size=(10, 64)) / 64

    def forward(self, x):
        h = np.asarray(x, dtype=np.float64).reshape(-1, 64) @ self.w.T
        e = np.exp(h - h.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def test_checksums_known():
    # RFC 1071 / Wikipedia's IPv4 header example
    assert pl.csum(bytes.fromhex("450000730000400040110000c0a80001c0a800c7")) == 0xb861
    assert pl.csum(b"\x01") == 0xfeff
    assert pl.csum(b"\xff\xff\x00\x01") == 0xfffe
    # the same frame as tests/unit/test_pkt.c: UDP 0x6fa9 (IPv4 id 0x1234 there)
    u = pl.udp("198.18.0.2", "198.18.0.1", 40000, 9200, b"hello")
    assert struct.unpack("!H", u[6:8])[0] == 0x6fa9


def test_pcap_round_trip(tmp_path):
    p = tmp_path / "x.pcap"
    frames = [b"\x01" * 60, b"\x02" * 1514, b""]
    pl.write_pcap(p, frames)
    raw = p.read_bytes()
    assert raw[:4] == struct.pack("<I", 0xa1b2c3d4) and len(raw) == 24 + 3 * 16 + 60 + 1514
    got = pl.read_pcap(p)
    assert [f for _, f in got] == frames
    assert got[1][0] - got[0][0] == pytest.approx(1e-3, abs=1e-6)
    # a big-endian nanosecond file written by someone else
    be = struct.pack(">IHHiIII", 0xa1b23c4d, 2, 4, 0, 0, 65535, 1) + \
        struct.pack(">IIII", 5, 500_000_000, 3, 3) + b"abc"
    (tmp_path / "be.pcap").write_bytes(be)
    assert pl.read_pcap(tmp_path / "be.pcap") == [(5.5, b"abc")]
    (tmp_path / "cut.pcap").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="cut"):
        pl.read_pcap(tmp_path / "cut.pcap")
    (tmp_path / "bad.pcap").write_bytes(b"\0" * 24)
    with pytest.raises(ValueError, match="not a pcap"):
        pl.read_pcap(tmp_path / "bad.pcap")


def test_frames_parse_back():
    f = pl.udp_frame(GW_MAC, pl.PEER_MAC, pl.PEER_IP, pl.GW_IP, 40000, 9200, b"payload")
    d = pl.parse_frame(f)
    assert d["ethertype"] == 0x0800 and d["dst_mac"] == GW_MAC
    assert d["ip"]["csum_ok"] and d["ip"]["len_ok"] and d["ip"]["dst"] == pl.GW_IP
    assert d["udp"]["csum_ok"] and d["udp"]["payload"] == b"payload" and d["udp"]["dport"] == 9200
    bad = pl.parse_frame(pl.udp_frame(GW_MAC, pl.PEER_MAC, pl.PEER_IP, pl.GW_IP, 1, 2, b"x",
                                      bad_ip_csum=True, bad_udp_csum=True))
    assert not bad["ip"]["csum_ok"] and not bad["udp"]["csum_ok"] and bad["udp"]["csum"] != 0
    none = pl.parse_frame(pl.udp_frame(GW_MAC, pl.PEER_MAC, pl.PEER_IP, pl.GW_IP, 1, 2, b"x",
                                       no_csum=True))
    assert none["udp"]["csum"] == 0 and none["udp"]["csum_ok"]
    a = pl.parse_frame(pl.arp_frame(pl.PEER_MAC, pl.PEER_IP, pl.GW_IP))["arp"]
    assert (a["oper"], a["sha"], a["spa"], a["tpa"]) == (1, pl.PEER_MAC, pl.PEER_IP, pl.GW_IP)
    e = pl.parse_frame(pl.icmp_echo_frame(GW_MAC, pl.PEER_MAC, pl.PEER_IP, pl.GW_IP, 7, 9, b"abc"))
    assert e["icmp"] == {"type": 8, "code": 0, "id": 7, "seq": 9, "csum_ok": True, "data": b"abc"}
    assert not pl.parse_frame(pl.icmp_echo_frame(GW_MAC, pl.PEER_MAC, pl.PEER_IP, pl.GW_IP, 7, 9,
                                                 b"abc", bad_csum=True))["icmp"]["csum_ok"]


def _first_id(payload):
    """The "id" of a msgpack map cut short, when it is the map's first key."""
    try:
        u = msgpack.Unpacker(raw=False)
        u.feed(payload)
        u.read_map_header()
        return u.unpack() == "id" and u.unpack() or 0
    except Exception:           # noqa: BLE001
        return 0


def fake_gateway(in_path, out_path, ref, *, wrong=None):
    """What the fast path should do with each input frame, in Python;
    wrong breaks one thing to see check_output notice."""
    out = []
    for _, f in pl.read_pcap(in_path):
        d = pl.parse_frame(f)
        if "arp" in d:
            if d["arp"]["oper"] == 1 and d["arp"]["tpa"] == pl.GW_IP:
                out.append(pl.arp_frame(GW_MAC, pl.GW_IP, d["arp"]["spa"], oper=2,
                                        dst_mac=d["src_mac"], target_mac=pl.mac(d["arp"]["sha"])))
            continue
        ipd = d.get("ip")
        if not ipd or not ipd["csum_ok"] or not ipd["len_ok"]:
            continue
        if "icmp" in d:
            ic = d["icmp"]
            out.append(pl.icmp_echo_frame(d["src_mac"], GW_MAC, pl.GW_IP, ipd["src"], ic["id"],
                                          ic["seq"], ic["data"], reply=True))
            continue
        u = d.get("udp")
        if ipd["flags"] & 0x1fff:       # a later fragment: dropped
            continue
        if ipd["flags"] & 0x2000:       # the first fragment: 413 to its sender
            if u and u["dport"] == 9200:
                ident = msgpack.Unpacker(raw=False)
                ident.feed(u["payload"])
                ans = {"id": 0, "error": "request does not fit one datagram; use HTTP/2",
                       "code": 413}
                try:                    # the id, when the fragment holds it (first key)
                    ans["id"] = next(iter(ident)).get("id", 0)
                except Exception:       # noqa: BLE001  (the map is cut: read its head)
                    ans["id"] = _first_id(u["payload"])
                out.append(pl.udp_frame(d["src_mac"], GW_MAC, pl.GW_IP, ipd["src"], 9200,
                                        u["sport"], msgpack.packb(ans)))
            continue
        if not u or not u["csum_ok"] or u["dport"] != 9200:
            continue
        try:
            m = msgpack.unpackb(u["payload"], raw=False)
            ident = m["id"]
        except Exception:       # noqa: BLE001
            ans = {"id": 0, "error": "request: malformed msgpack", "code": 400}
        else:
            inp = m["inputs"][0]
            x = np.frombuffer(inp["data"], dtype="<f4").reshape(-1, 64)
            if m["model"] != "digits":
                ans = {"id": ident, "error": "model: unknown", "code": 404}
            elif inp["datatype"] != "FP32" or inp["shape"][-1] != 64:
                ans = {"id": ident, "error": "inputs[0]: bad", "code": 400}
            elif pl.dg_answer_size(ident, "digits", len(x), 10) > pl.UDP_PAYLOAD_MAX:
                ans = {"id": ident, "error": "answer too large; use HTTP/2", "code": 413}
            else:
                y = ref.forward(x).astype("<f4")
                if wrong == "values" and ident == 1001:
                    y[0, 0] += 0.01
                ans = {"id": ident, "model": "digits", "model_version": "1",
                       "outputs": [{"name": "probabilities", "datatype": "FP32",
                                    "shape": list(y.shape), "data": y.tobytes()}]}
        if wrong == "drop_404" and ans.get("code") == 404:
            continue
        out.append(pl.udp_frame(d["src_mac"], GW_MAC, pl.GW_IP, ipd["src"], 9200, u["sport"],
                                msgpack.packb(ans, use_bin_type=True),
                                bad_udp_csum=(wrong == "csum" and ans.get("id") == 1000)))
    out.reverse()               # answers may come in any order
    pl.write_pcap(out_path, out)


def test_crafted_and_check(tmp_path):
    ref = FakeRef()
    exp = pl.write_crafted(tmp_path / "in.pcap", GW_MAC)
    names = [e["name"] for e in exp]
    for n in ("arp_request", "icmp_echo", "valid_1", "bad_ip_csum", "bad_udp_csum",
              "truncated_frame", "not_msgpack", "unknown_model", "too_large_answer"):
        assert n in names
    frames = pl.read_pcap(tmp_path / "in.pcap")
    assert len(frames) == len(exp)
    fake_gateway(tmp_path / "in.pcap", tmp_path / "out.pcap", ref)
    assert pl.check_output(tmp_path / "out.pcap", exp, ref, gw_mac=GW_MAC) == []
    for wrong, words in (("values", "valid_2: values differ"), ("drop_404", "unknown_model: no error"),
                         ("csum", "bad checksum")):
        fake_gateway(tmp_path / "in.pcap", tmp_path / "bad.pcap", ref, wrong=wrong)
        probs = pl.check_output(tmp_path / "bad.pcap", exp, ref, gw_mac=GW_MAC)
        assert any(words in p for p in probs), (wrong, probs)
    # frame_max leaves out the jumbo request of the too-large case
    exp2 = pl.write_crafted(tmp_path / "in2.pcap", GW_MAC, frame_max=1514)
    assert "too_large_answer" not in [e["name"] for e in exp2]
