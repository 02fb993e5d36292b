"""The dpdk section is restart-only (docs/config.md): a reload that changes
it succeeds and applies the rest of the file, reports restart_required naming the
old and new dpdk settings (answer and log line), and the running fast path
keeps the old ones: net_pcap replays requests to UDP port 9200 forever
(fake backend), the reloaded file says 9201, and after the reload 9200 is
still answered while nothing is dropped for its port.  A reload of the
same file requires no restart."""
import json
import time

import pytest

import dplib
import gwlib
import pcaplib as pl

pytestmark = pytest.mark.skipif(bool(dplib.skip_reason()), reason=dplib.skip_reason() or "ok")


def reload(g):
    st, _, body = gwlib.h1_request(g.admin_port, "POST", "/admin/reload", b"")
    return st, json.loads(body)


def answered(g):
    return g.dp("infergw_dpdk_requests_total", code="200")


def wait_more(g, than, timeout=10.0):
    """The 200 count once it exceeds than (the lcore is still serving)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = answered(g)
        if n > than:
            return n
        time.sleep(0.05)
    raise AssertionError(f"no request answered beyond {than} in {timeout}s:\n{g.log()[-2000:]}")


def test_dpdk_change_requires_restart(tmp_path):
    cap = tmp_path / "req.pcap"
    pl.write_pcap(cap, [pl.udp_frame(pl.NET_PCAP_MAC, pl.PEER_MAC, pl.PEER_IP, pl.GW_IP,
                                     40000 + i, 9200,
                                     pl.dg_request(i + 1, "digits", pl.digits_rows(1, i)))
                        for i in range(8)])
    admin = gwlib.free_port()

    def text(udp_port, max_queue):
        return dplib.config_text(["--no-huge", "--no-pci", "-m", "512",
                                  f"--vdev=net_pcap0,rx_pcap={cap},infinite_rx=1"],
                                 udp_port=udp_port, admin_port=admin, model_kind="fake",
                                 max_queue=max_queue)

    g = dplib.DpGateway(tmp_path, "gw", text(9200, 1024)).start()
    try:
        wait_more(g, 0)
        st, doc = reload(g)
        assert st == 200 and doc["result"] == "success", doc
        assert doc["restart_required"] is None, doc

        g.config.write_text(text(9201, 512))
        st, doc = reload(g)
        assert st == 200 and doc["result"] == "success", doc
        r = doc["restart_required"]
        assert r and r.startswith("dpdk: ") and "udp_port=9200" in r and "udp_port=9201" in r, doc
        assert r.index("udp_port=9200") < r.index("->") < r.index("udp_port=9201"), r
        assert 'restart_required="dpdk: ' in g.log()
        assert g.log().count('msg="dpdk fast path serving"') == 1, "the fast path restarted"
        st, _, body = gwlib.h1_request(g.admin_port, "GET", "/admin/config")
        assert st == 200 and json.loads(body)["models"][0]["max_queue"] == 512, body

        # the old port is still the one served
        n = wait_more(g, answered(g))
        wait_more(g, n)
        assert g.dp("infergw_dpdk_drops_total", reason="port") == 0
    finally:
        rc = g.stop()
    assert rc == 0, g.log()[-3000:]
