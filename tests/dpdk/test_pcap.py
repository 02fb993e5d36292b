"""The fast path through net_pcap: a crafted capture (an ARP request, an
ICMP echo, valid requests of 1 to 3 rows, and malformed frames: bad IPv4
checksum, bad UDP checksum, truncated, not msgpack, unknown model, another
port) is fed to the port's RX; the TX capture is asserted frame by frame:
the ARP reply, the echo reply, the reference model's values for each
request, the error answers with their codes, and nothing for the frames
that must be dropped (each counted by its reason)."""
import time

import msgpack
import numpy as np
import pytest

import dplib
import gwlib

pytestmark = pytest.mark.skipif(bool(dplib.skip_reason()), reason=dplib.skip_reason() or "ok")


def test_pcap_frames(tmp_path):
    model = gwlib.RefModel.load()
    feats, _ = dplib.heldout()
    rows = {1: feats[0:1], 2: feats[10:12], 3: feats[20:23]}
    req = {i: msgpack.packb(dplib.request_map(i, r), use_bin_type=True) for i, r in rows.items()}
    frames = [
        dplib.arp_request(),
        dplib.icmp_echo(0x1234, 7, b"infergw-pcap-ping"),
        dplib.udp_frame(req[1], sport=40001),
        dplib.udp_frame(req[2], sport=40002),
        dplib.udp_frame(req[3], sport=40003),
        dplib.udp_frame(req[1], sport=40004, bad_csum=True),           # drop: ip_csum
        dplib.udp_frame(req[1], sport=40005, bad_udp_csum=True),       # drop: udp_csum
        dplib.udp_frame(req[2], sport=40006)[:60],                     # drop: truncated
        dplib.udp_frame(b"\xc1\xc1 not msgpack", sport=40007),         # 400, id 0
        dplib.udp_frame(msgpack.packb(dplib.request_map(9, rows[1], model="nope")),
                        sport=40008),                                  # 404
        dplib.udp_frame(req[1], sport=40009, dport=9999),              # drop: port
    ]
    rx, tx = tmp_path / "in.pcap", tmp_path / "out.pcap"
    dplib.pcap_write(rx, frames)
    text = dplib.config_text(["--no-huge", "--no-pci", "-m", "512", "--in-memory",
                              f"--vdev=net_pcap0,rx_pcap={rx},tx_pcap={tx}"],
                             admin_port=gwlib.free_port())
    g = dplib.DpGateway(tmp_path, "gw", text).start()
    try:
        want_out = 7  # arp, icmp, 3 answers, 2 errors
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = g.metrics()
            if gwlib.metric(m, "infergw_dpdk_packets_total", dir="out") >= want_out:
                break
            time.sleep(0.1)
    finally:
        rc = g.stop()
    assert rc == 0, g.log()[-3000:]
    assert gwlib.metric(m, "infergw_dpdk_packets_total", dir="in") == len(frames)
    assert gwlib.metric(m, "infergw_dpdk_packets_total", dir="out") == want_out
    for reason, n in (("ip_csum", 1), ("udp_csum", 1), ("ip_hdr", 1), ("port", 1)):
        assert gwlib.metric(m, "infergw_dpdk_drops_total", reason=reason) == n, (reason, m)
    assert gwlib.metric(m, "infergw_dpdk_requests_total", code="200") == 3
    assert gwlib.metric(m, "infergw_dpdk_requests_total", code="400") == 1
    assert gwlib.metric(m, "infergw_dpdk_requests_total", code="404") == 1

    out = [dplib.parse_reply(f) for f in dplib.pcap_read(tx)]
    assert len(out) == want_out, [o["kind"] for o in out]
    for o in out:  # every frame goes back to the peer, from us
        assert o["dst_mac"] == dplib.PEER_MAC and o["src_mac"] == dplib.PCAP_MAC, o
    arp = [o for o in out if o["kind"] == "arp"]
    assert len(arp) == 1 and arp[0]["op"] == 2
    assert arp[0]["sha"] == dplib.PCAP_MAC and arp[0]["spa"] == dplib.OUR_IP
    assert arp[0]["tha"] == dplib.PEER_MAC and arp[0]["tpa"] == dplib.PEER_IP
    icmp = [o for o in out if o["kind"] == "icmp"]
    assert len(icmp) == 1
    assert (icmp[0]["icmp_type"], icmp[0]["ident"], icmp[0]["seq"]) == (0, 0x1234, 7)
    assert icmp[0]["data"] == b"infergw-pcap-ping"
    assert icmp[0]["src_ip"] == dplib.OUR_IP and icmp[0]["dst_ip"] == dplib.PEER_IP
    udp = {o["dport"]: o for o in out if o["kind"] == "udp"}
    assert sorted(udp) == [40001, 40002, 40003, 40007, 40008], sorted(udp)
    for i in (1, 2, 3):
        o = udp[40000 + i]
        assert o["sport"] == 9200 and o["src_ip"] == dplib.OUR_IP and o["dst_ip"] == dplib.PEER_IP
        ans = o["msg"]
        assert ans["id"] == i and ans["model"] == "digits" and "error" not in ans, ans
        np.testing.assert_allclose(dplib.answer_values(ans), model.forward(rows[i]),
                                   rtol=1e-4, atol=1e-5)
    e = udp[40007]["msg"]
    assert e["code"] == 400 and e["id"] == 0 and e["error"], e
    e = udp[40008]["msg"]
    assert e["code"] == 404 and e["id"] == 9 and "nope" in e["error"], e
