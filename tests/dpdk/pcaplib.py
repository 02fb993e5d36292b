"""pcaplib - classic pcap files and Ethernet/IPv4/UDP/ARP/ICMP frames by hand.

For the DPDK fast path's pcap test (net_pcap rx_pcap/tx_pcap): write the
crafted input (write_crafted) and check the gateway's output against what
each input frame should have produced (check_output).  Standard library,
numpy and python3-msgpack only.

pcap format (https://wiki.wireshark.org/Development/LibpcapFileFormat):
a 24-byte global header (magic 0xa1b2c3d4 for microsecond timestamps,
0xa1b23c4d for nanoseconds, in the writer's byte order; version 2.4;
snaplen; link type 1 = Ethernet), then per packet a 16-byte record
header (ts_sec, ts_frac, incl_len, orig_len) and incl_len bytes.
"""
import struct

import msgpack
import numpy as np

LINKTYPE_ETHERNET = 1
ETH_IPV4, ETH_ARP = 0x0800, 0x0806
PROTO_ICMP, PROTO_UDP = 1, 17
UDP_PAYLOAD_MAX = 1472          # 1500-byte MTU - 20 IPv4 - 8 UDP

# ---- pcap files ---------------------------------------------------------


def write_pcap(path, frames, snaplen=65535, t0=1_700_000_000.0):
    """Write frames (bytes, or (timestamp, bytes)) as a microsecond pcap."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))
        for i, fr in enumerate(frames):
            ts, data = fr if isinstance(fr, tuple) else (t0 + i * 1e-3, fr)
            sec, usec = int(ts), int(round((ts - int(ts)) * 1e6)) % 1_000_000
            incl = data[:snaplen]
            f.write(struct.pack("<IIII", sec, usec, len(incl), len(data)))
            f.write(incl)


def read_pcap(path):
    """[(timestamp, bytes)] of a classic pcap (either byte order, us or ns)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 24:
        raise ValueError(f"{path}: {len(raw)} bytes, shorter than a pcap header")
    for order in "<>":
        magic = struct.unpack(order + "I", raw[:4])[0]
        if magic in (0xa1b2c3d4, 0xa1b23c4d):
            break
    else:
        raise ValueError(f"{path}: not a pcap file (magic {raw[:4].hex()})")
    frac = 1e-9 if magic == 0xa1b23c4d else 1e-6
    _, _, _, _, _, link = struct.unpack(order + "HHiIII", raw[4:24])
    if link != LINKTYPE_ETHERNET:
        raise ValueError(f"{path}: link type {link}, expected 1 (Ethernet)")
    out, pos = [], 24
    while pos < len(raw):
        if pos + 16 > len(raw):
            raise ValueError(f"{path}: record header cut at byte {pos}")
        sec, fr, incl, _orig = struct.unpack(order + "IIII", raw[pos:pos + 16])
        pos += 16
        if pos + incl > len(raw):
            raise ValueError(f"{path}: record of {incl} bytes cut at byte {pos}")
        out.append((sec + fr * frac, raw[pos:pos + incl]))
        pos += incl
    return out


# ---- building frames ----------------------------------------------------


def mac(s):
    """'02:00:00:00:00:01' -> 6 bytes (bytes pass through)."""
    return s if isinstance(s, bytes) else bytes.fromhex(s.replace(":", ""))


def ip(s):
    """'198.18.0.1' -> 4 bytes (bytes pass through)."""
    return s if isinstance(s, bytes) else bytes(int(x) for x in s.split("."))


def csum(b):
    """RFC 1071 ones' complement checksum of b (odd length padded with 0)."""
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def eth(dst, src, ethertype, payload):
    return mac(dst) + mac(src) + struct.pack("!H", ethertype) + payload


def ipv4(src, dst, proto, payload, *, ttl=64, ident=1, flags=0x4000, bad_csum=False,
         total_len=None):
    """A 20-byte IPv4 header and payload; bad_csum flips the checksum,
    total_len overrides the length field (for inconsistent headers)."""
    tl = 20 + len(payload) if total_len is None else total_len
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, tl, ident, flags, ttl, proto, 0, ip(src), ip(dst))
    c = csum(h) ^ (0x0101 if bad_csum else 0)
    return h[:10] + struct.pack("!H", c) + h[12:] + payload


def udp(src, dst, sport, dport, payload, *, bad_csum=False, no_csum=False):
    """A UDP header and payload with the pseudo-header checksum (0 sent as
    0xffff); no_csum sends 0 (none), bad_csum a wrong non-zero one."""
    n = 8 + len(payload)
    u = struct.pack("!HHHH", sport, dport, n, 0) + payload
    c = csum(ip(src) + ip(dst) + struct.pack("!BBH", 0, PROTO_UDP, n) + u) or 0xffff
    if no_csum:
        c = 0
    elif bad_csum:
        c = (c ^ 0x00ff) or 0x1234
    return u[:6] + struct.pack("!H", c) + u[8:]


def udp_frame(dst_mac, src_mac, src, dst, sport, dport, payload, *, bad_ip_csum=False,
              bad_udp_csum=False, no_csum=False):
    return eth(dst_mac, src_mac, ETH_IPV4,
               ipv4(src, dst, PROTO_UDP,
                    udp(src, dst, sport, dport, payload, bad_csum=bad_udp_csum, no_csum=no_csum),
                    bad_csum=bad_ip_csum))


def icmp_echo_frame(dst_mac, src_mac, src, dst, ident, seq, data, *, reply=False, bad_csum=False):
    m = struct.pack("!BBHHH", 0 if reply else 8, 0, 0, ident, seq) + data
    c = csum(m) ^ (0x0101 if bad_csum else 0)
    return eth(dst_mac, src_mac, ETH_IPV4,
               ipv4(src, dst, PROTO_ICMP, m[:2] + struct.pack("!H", c) + m[4:]))


def arp_frame(src_mac, sender_ip, target_ip, *, oper=1, dst_mac="ff:ff:ff:ff:ff:ff",
              target_mac=b"\0" * 6):
    body = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, oper) + mac(src_mac) + ip(sender_ip) + \
        mac(target_mac) + ip(target_ip)
    return eth(dst_mac, src_mac, ETH_ARP, body)


# ---- parsing frames -----------------------------------------------------


def parse_frame(fr):
    """A dict describing fr: always dst/src MAC and ethertype; then "arp"
    (oper, sha, spa, tha, tpa), or "ip" (src, dst, proto, ttl, flags,
    csum_ok) with "udp" (sport, dport, len_ok, csum_ok, payload) or
    "icmp" (type, code, id, seq, csum_ok, data).  Addresses as strings."""
    d = {"len": len(fr)}
    if len(fr) < 14:
        d["error"] = "short"
        return d
    d["dst_mac"] = fr[0:6].hex(":")
    d["src_mac"] = fr[6:12].hex(":")
    d["ethertype"] = et = struct.unpack("!H", fr[12:14])[0]
    p = fr[14:]
    if et == ETH_ARP and len(p) >= 28:
        h, pt, hl, pl, oper = struct.unpack("!HHBBH", p[:8])
        d["arp"] = {"oper": oper, "htype": h, "ptype": pt, "hlen": hl, "plen": pl,
                    "sha": p[8:14].hex(":"), "spa": ".".join(map(str, p[14:18])),
                    "tha": p[18:24].hex(":"), "tpa": ".".join(map(str, p[24:28]))}
    elif et == ETH_IPV4 and len(p) >= 20:
        ihl = (p[0] & 15) * 4
        tl = struct.unpack("!H", p[2:4])[0]
        ipd = {"version": p[0] >> 4, "ihl": ihl, "total_len": tl, "ttl": p[8], "proto": p[9],
               "flags": struct.unpack("!H", p[6:8])[0],
               "src": ".".join(map(str, p[12:16])), "dst": ".".join(map(str, p[16:20])),
               "csum_ok": csum(p[:ihl]) == 0, "len_ok": ihl <= tl <= len(p)}
        d["ip"] = ipd
        body = p[ihl:tl]
        if ipd["proto"] == PROTO_UDP and len(body) >= 8:
            sport, dport, ulen, uc = struct.unpack("!HHHH", body[:8])
            ok = uc == 0 or csum(p[12:20] + struct.pack("!BBH", 0, PROTO_UDP, len(body)) + body) == 0
            d["udp"] = {"sport": sport, "dport": dport, "len": ulen, "len_ok": ulen == len(body),
                        "csum": uc, "csum_ok": ok, "payload": body[8:]}
        elif ipd["proto"] == PROTO_ICMP and len(body) >= 8:
            t, c, _, ident, seq = struct.unpack("!BBHHH", body[:8])
            d["icmp"] = {"type": t, "code": c, "id": ident, "seq": seq,
                         "csum_ok": csum(body) == 0, "data": body[8:]}
    return d


# ---- the datagram protocol ----------------------------------------------


def dg_request(ident, model, rows, *, name="input", datatype="FP32", shape=None, **extra):
    """The msgpack request map (docs/udp-protocol.md) for rows (2-D array)."""
    x = np.ascontiguousarray(rows, dtype="<f4")
    req = {"id": ident, "model": model,
           "inputs": [{"name": name, "datatype": datatype,
                       "shape": list(x.shape) if shape is None else list(shape),
                       "data": x.tobytes()}]}
    req.update(extra)
    return msgpack.packb(req, use_bin_type=True)


def dg_answer_size(ident, model, rows, out_dim, version="1", output="probabilities"):
    """Bytes of the gateway's answer map, to pick a request whose answer is too large."""
    return len(msgpack.packb({"id": ident, "model": model, "model_version": version,
                              "outputs": [{"name": output, "datatype": "FP32",
                                           "shape": [rows, out_dim],
                                           "data": b"\0" * (4 * rows * out_dim)}]},
                             use_bin_type=True))


# ---- the crafted input and its expectations ------------------------------

GW_IP, PEER_IP = "198.18.0.1", "198.18.0.2"
PEER_MAC = "02:00:00:00:00:02"
NET_PCAP_MAC = "02:70:63:61:70:00"  # net_pcap's MAC for its first port (DPDK 22.11)


def digits_rows(n, seed):
    """n rows of digit-like pixel intensities 0..16 (deterministic)."""
    return np.random.default_rng(seed).integers(0, 17, size=(n, 64)).astype(np.float32)


def write_crafted(path, gw_mac, *, gw_ip=GW_IP, gw_port=9200, peer_mac=PEER_MAC,
                  peer_ip=PEER_IP, model="digits", max_batch=64, answer_cap=UDP_PAYLOAD_MAX,
                  frame_max=None):
    """Write the issue's crafted input pcap; returns the expectations, one
    per input frame, in order: {"name", "kind", ...} where kind is
    "arp_reply", "echo_reply", "answer" (id, inputs), "error" (id, code)
    or "none" (dropped: no frame may answer it; reason is the gateway's
    infergw_dpdk_drops_total label for it).  gw_mac is the port's
    MAC (net_pcap's own).  frame_max (if set) skips the too-large case
    when its request frame would exceed it; answer_cap is the gateway's
    UDP payload room (pkt_udp_payload_max of its tx mbuf)."""
    frames, exp = [], []

    def add(name, frame, kind, **kw):
        frames.append(frame)
        exp.append(dict(name=name, kind=kind, **kw))

    def req(name, payload, kind, sport=40000, **kw):
        add(name, udp_frame(gw_mac, peer_mac, peer_ip, gw_ip, sport, gw_port, payload, **{
            k: kw.pop(k) for k in ("bad_ip_csum", "bad_udp_csum", "no_csum") if k in kw}),
            kind, sport=sport, **kw)

    add("arp_request", arp_frame(peer_mac, peer_ip, gw_ip), "arp_reply")
    add("arp_other", arp_frame(peer_mac, peer_ip, "198.18.0.77"), "none", reason="arp")
    add("icmp_echo", icmp_echo_frame(gw_mac, peer_mac, peer_ip, gw_ip, 0x4242, 1,
                                     b"infergw-ping-0123456789"), "echo_reply",
        ident=0x4242, seq=1, data=b"infergw-ping-0123456789")
    for i, n in enumerate((1, 2, 5)):
        x = digits_rows(n, seed=100 + i)
        req(f"valid_{n}", dg_request(1000 + i, model, x), "answer", id=1000 + i, inputs=x)
    x = digits_rows(3, seed=7)
    req("valid_rows_minus1", dg_request(1010, model, x, shape=[-1, 64]), "answer", id=1010, inputs=x)
    x = digits_rows(1, seed=8)
    req("valid_no_udp_csum", dg_request(1011, model, x), "answer", id=1011, inputs=x, no_csum=True)
    req("bad_ip_csum", dg_request(2000, model, digits_rows(1, 9)), "none",
        reason="ip_csum", bad_ip_csum=True)
    req("bad_udp_csum", dg_request(2001, model, digits_rows(1, 10)), "none",
        reason="udp_csum", bad_udp_csum=True)
    good = udp_frame(gw_mac, peer_mac, peer_ip, gw_ip, 40000, gw_port,
                     dg_request(2002, model, digits_rows(1, 11)))
    add("truncated_frame", good[:len(good) - 20], "none", reason="ip_hdr")
    req("truncated_msgpack", dg_request(2003, model, digits_rows(1, 12))[:-9], "error",
        id=None, code=400)
    req("not_msgpack", b'{"id": 2004, "model": "digits"}', "error", id=None, code=400)
    req("unknown_model", dg_request(2005, "no-such-model", digits_rows(1, 13)), "error",
        id=2005, code=404)
    req("bad_shape", dg_request(2006, model, digits_rows(1, 14), shape=[1, 63]), "error",
        id=2006, code=400)
    req("bad_datatype", dg_request(2007, model, digits_rows(1, 15), datatype="FP16"), "error",
        id=2007, code=400)
    req("other_port", dg_request(2008, model, digits_rows(1, 16)), "none", reason="port")
    frames[-1] = udp_frame(gw_mac, peer_mac, peer_ip, gw_ip, 40000, gw_port + 1,
                           dg_request(2008, model, digits_rows(1, 16)))
    # a request larger than one frame, sent as IPv4 fragments: the first
    # says who to answer (413 "use HTTP/2"); the second is dropped
    big = dg_request(2010, model, digits_rows(8, 18))
    u = udp(peer_ip, gw_ip, 40000, gw_port, big)
    cut = 1480 - (1480 % 8)		# fragment data: a multiple of 8 bytes
    add("fragmented_request_first",
        eth(gw_mac, peer_mac, ETH_IPV4, ipv4(peer_ip, gw_ip, PROTO_UDP, u[:cut], ident=77,
                                             flags=0x2000)), "error", id=2010, code=413)
    add("fragmented_request_rest",
        eth(gw_mac, peer_mac, ETH_IPV4, ipv4(peer_ip, gw_ip, PROTO_UDP, u[cut:], ident=77,
                                             flags=cut // 8)), "none", reason="fragment")
    # the smallest batch whose answer does not fit a datagram
    rows = next((r for r in range(1, max_batch + 1)
                 if dg_answer_size(2009, model, r, 10) > answer_cap), None)
    if rows is not None:
        payload = dg_request(2009, model, digits_rows(rows, 17))
        if frame_max is None or 42 + len(payload) <= frame_max:
            req("too_large_answer", payload, "error", id=2009, code=413)
    write_pcap(path, frames)
    return exp


def _decode_answer(payload):
    try:
        return msgpack.unpackb(payload, raw=False)
    except Exception as e:      # noqa: BLE001 - any failure is a finding
        return {"__undecodable__": str(e)}


def check_output(path, expectations, ref, *, gw_mac, gw_ip=GW_IP, gw_port=9200,
                 peer_mac=PEER_MAC, peer_ip=PEER_IP, model="digits", atol=1e-5, rtol=1e-4):
    """Check the gateway's output pcap against write_crafted's expectations.
    ref is a RefModel (tests/integration/gwlib.py) or anything with
    forward(rows) -> float64 probabilities.  Answers may come in any order
    (inference is asynchronous): UDP answers are matched by id (errors
    without a readable id by code), ARP and echo replies by kind.  Every
    output frame must be a valid, checksummed reply to the peer.  Returns
    a list of problems (empty: all good)."""
    problems = []
    out = [parse_frame(f) for _, f in read_pcap(path)]
    gw_mac = mac(gw_mac).hex(":")
    peer_mac = mac(peer_mac).hex(":")
    arp, echo, dgrams = [], [], []
    for i, d in enumerate(out):
        where = f"output frame {i}"
        if d.get("dst_mac") != peer_mac or d.get("src_mac") != gw_mac:
            problems.append(f"{where}: MACs {d.get('src_mac')} -> {d.get('dst_mac')}, "
                            f"expected {gw_mac} -> {peer_mac}")
        if "arp" in d:
            a = d["arp"]
            if (a["oper"], a["sha"], a["spa"], a["tha"], a["tpa"]) != (2, gw_mac, gw_ip, peer_mac, peer_ip):
                problems.append(f"{where}: ARP {a}, expected a reply {gw_ip} is-at {gw_mac}")
            arp.append(d)
        elif "icmp" in d:
            if not d["ip"]["csum_ok"] or not d["icmp"]["csum_ok"]:
                problems.append(f"{where}: echo reply with a bad checksum")
            echo.append(d)
        elif "udp" in d:
            u, ipd = d["udp"], d["ip"]
            if not ipd["csum_ok"] or not u["csum_ok"] or not u["len_ok"]:
                problems.append(f"{where}: UDP with a bad checksum or length")
            if (ipd["src"], ipd["dst"], u["sport"]) != (gw_ip, peer_ip, gw_port):
                problems.append(f"{where}: UDP {ipd['src']}:{u['sport']} -> {ipd['dst']}, "
                                f"expected from {gw_ip}:{gw_port} to {peer_ip}")
            dgrams.append((d, _decode_answer(u["payload"])))
        else:
            problems.append(f"{where}: unexpected frame {d}")

    want_arp = sum(e["kind"] == "arp_reply" for e in expectations)
    if len(arp) != want_arp:
        problems.append(f"{len(arp)} ARP replies, expected {want_arp}")
    echo_exp = [e for e in expectations if e["kind"] == "echo_reply"]
    if len(echo) != len(echo_exp):
        problems.append(f"{len(echo)} echo replies, expected {len(echo_exp)}")
    for e, d in zip(echo_exp, echo):
        ic = d["icmp"]
        if (ic["type"], ic["code"], ic["id"], ic["seq"], ic["data"]) != (0, 0, e["ident"], e["seq"], e["data"]):
            problems.append(f"{e['name']}: echo reply {ic}, expected id {e['ident']} seq {e['seq']}")

    by_id = {}
    anonymous = []
    for d, m in dgrams:
        if not isinstance(m, dict):
            problems.append(f"UDP answer is not a map: {m!r}")
            continue
        if m.get("id") is None or (m.get("id") == 0 and "error" in m):
            anonymous.append((d, m))
        elif m["id"] in by_id:
            problems.append(f"id {m['id']}: answered twice")
        else:
            by_id[m["id"]] = (d, m)
    for e in expectations:
        if e["kind"] == "answer":
            got = by_id.pop(e["id"], None)
            if got is None:
                problems.append(f"{e['name']}: no answer for id {e['id']}")
                continue
            d, m = got
            if d["udp"]["dport"] != e["sport"]:
                problems.append(f"{e['name']}: answered to port {d['udp']['dport']}, expected {e['sport']}")
            problems += _check_values(e, m, ref, model, atol, rtol)
        elif e["kind"] == "error":
            if e["id"] is not None:
                got = by_id.pop(e["id"], None)
            else:
                got = next((a for a in anonymous if a[1].get("code") == e["code"]), None)
                if got:
                    anonymous.remove(got)
            if got is None:
                problems.append(f"{e['name']}: no error answer (code {e['code']})")
                continue
            m = got[1]
            if m.get("code") != e["code"] or not isinstance(m.get("error"), str) or not m["error"]:
                problems.append(f"{e['name']}: {m}, expected an error with code {e['code']}")
    for i, (_, m) in by_id.items():
        problems.append(f"unexpected answer for id {i}: {m}")
    for _, m in anonymous:
        problems.append(f"unexpected error answer {m}")
    return problems


def _check_values(e, m, ref, model, atol, rtol):
    name, probs = e["name"], []
    if "error" in m:
        return [f"{name}: error {m.get('code')} {m['error']!r}, expected an answer"]
    if m.get("model") != model or not m.get("outputs"):
        return [f"{name}: answer {m}, expected outputs of model {model}"]
    o = m["outputs"][0]
    x = np.asarray(e["inputs"], dtype=np.float32)
    if o.get("datatype") != "FP32" or list(o.get("shape", [])) != [x.shape[0], 10]:
        return [f"{name}: output {o.get('datatype')} {o.get('shape')}, expected FP32 [{x.shape[0]}, 10]"]
    got = np.frombuffer(o["data"], dtype="<f4").reshape(x.shape[0], 10)
    want = ref.forward(x)
    if not np.allclose(got, want, atol=atol, rtol=rtol):
        probs.append(f"{name}: values differ from the reference by up to "
                     f"{np.abs(got - want).max():.3g}")
    return probs
