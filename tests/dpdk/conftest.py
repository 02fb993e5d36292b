"""The DPDK fast-path suite (tests/dpdk): run by `make test` (suite `dpdk`
of tests/run_all.sh); every test skips, with the reason, where the binary
lacks DPDK or the host lacks what a test needs."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import dplib  # noqa: E402
import gwlib  # noqa: E402

IFACE, PEER = "infergw-dp0", "infergw-dp1"
run = dplib.run


@pytest.fixture
def netns():
    """A namespace with 198.18.0.2/24 on PEER, the other end of a veth pair
    whose IFACE end DPDK takes (net_af_packet); removed by name after."""
    ns = f"igwdp{os.getpid() % 100000}"
    run(["ip", "link", "del", IFACE], check=False)  # a previous run's, by name
    run(["ip", "netns", "add", ns])
    try:
        run(["ip", "link", "add", IFACE, "type", "veth", "peer", "name", PEER])
        run(["ip", "link", "set", PEER, "netns", ns])
        run(["sysctl", "-qw", f"net.ipv6.conf.{IFACE}.disable_ipv6=1"], check=False)
        run(["ip", "link", "set", IFACE, "up"])
        pre = ["ip", "netns", "exec", ns]
        run(pre + ["ip", "addr", "add", "198.18.0.2/24", "dev", PEER])
        run(pre + ["ip", "link", "set", PEER, "up"])
        run(pre + ["ip", "link", "set", "lo", "up"])
        yield ns
    finally:
        run(["ip", "link", "del", IFACE], check=False)
        run(["ip", "netns", "del", ns], check=False)


@pytest.fixture
def gateway(netns, tmp_path):
    """A gateway whose fast path serves 198.18.0.1:9200 on IFACE."""
    text = dplib.config_text(["--no-huge", "--no-pci", "-m", "512",
                              f"--vdev=net_af_packet0,iface={IFACE}"],
                             admin_port=gwlib.free_port())
    g = dplib.DpGateway(tmp_path, "gw", text).start()
    yield g
    rc = g.stop()
    assert rc == 0, f"gateway exited {rc}\n{g.log()[-3000:]}"
