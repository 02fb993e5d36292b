"""Helpers for the DPDK fast-path tests: a gateway with a `dpdk:` section,
the datagram request/answer maps (docs/udp-protocol.md), and the checks
that skip a test (with its reason) where it cannot run."""
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

import gwlib  # noqa: E402

REPO = gwlib.REPO
BINARY = gwlib.BINARY
MODEL_DIR = gwlib.MODEL_DIR
READY_RE = re.compile(r'msg="dpdk fast path serving"')


def skip_reason():
    """Why the DPDK tests cannot run here ("" when they can)."""
    if not BINARY.exists():
        return f"{BINARY} does not exist: run `make` first"
    out = subprocess.run([str(BINARY), "--version"], capture_output=True, text=True).stdout
    if " dpdk" not in out:
        return "this infergw was built without DPDK (apt-get install libdpdk-dev; make)"
    return ""


def netns_skip_reason():
    r = skip_reason()
    if r:
        return r
    if os.geteuid() != 0:
        return "needs root (network namespaces, af_packet)"
    if not shutil.which("ip"):
        return "needs iproute2 (`ip`)"
    return ""


def config_text(eal, *, address="198.18.0.1", udp_port=9200, lcores=1, queues=None,
                model_kind="cpu", admin_port, max_queue=1024, extra_dpdk=""):
    """A digits config with a dpdk section; eal is a list of strings."""
    eal_yaml = ", ".join(f'"{a}"' for a in eal)
    q = f"\n  queues: {queues}" if queues else ""
    backend = ("    kind: cpu\n    workers: 1\n    threads_per_worker: 1\n"
               if model_kind == "cpu" else f"    kind: {model_kind}\n")
    return f"""\
# written by tests/dpdk/dplib.py
listen:
  address: 127.0.0.1
  port: 0
  threads: 1
admin:
  address: 127.0.0.1
  port: {admin_port}
limits:
  shutdown_grace_ms: 3000
models:
  - name: digits
    path: {MODEL_DIR}
    max_batch: 64
    max_queue_delay_us: 0
    max_queue: {max_queue}
backends:
  - name: be0
{backend}    models: [digits]
dpdk:
  eal: [{eal_yaml}]
  address: {address}
  udp_port: {udp_port}
  lcores: {lcores}{q}
{extra_dpdk}"""


class DpGateway(gwlib.GatewayProcess):
    """infergw with a dpdk section; ready once the fast path serves."""

    def __init__(self, workdir, name, text):
        super().__init__(workdir, name)
        self.config.write_text(text)

    def start(self, timeout=30.0, prefix=()):
        self.popen([*prefix, str(BINARY), "--config", str(self.config)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited {self.proc.returncode}:\n"
                                     f"{self.log()[-4000:]}")
            log = self.log()
            a = gwlib.ADMIN_RE.search(log)
            if a and READY_RE.search(log):
                self.admin_port = int(a.group(2))
                return self
            time.sleep(0.05)
        raise AssertionError(f"gateway not ready in {timeout}s:\n{self.log()[-4000:]}")

    def metrics(self):
        return gwlib.read_metrics(self.admin_port)

    def dp(self, name, **labels):
        return gwlib.metric(self.metrics(), name, **labels)

    def stop(self, timeout=20):
        """SIGTERM and wait: the exit status (the gateway must exit 0)."""
        self.kill()
        return self.proc.returncode


def request_map(rid, rows, *, model="digits", name="input"):
    import numpy as np

    x = np.asarray(rows, dtype="<f4").reshape(-1, 64)
    return {"id": rid, "model": model,
            "inputs": [{"name": name, "datatype": "FP32", "shape": [int(x.shape[0]), 64],
                        "data": x.tobytes()}]}


def answer_values(ans):
    """The (rows, 10) probabilities of an answer map."""
    import numpy as np

    out = ans["outputs"][0]
    return np.frombuffer(out["data"], dtype="<f4").reshape(out["shape"])


def heldout():
    t = gwlib.read_safetensors(MODEL_DIR / "heldout.safetensors")
    return t["features"], t["labels"]


# ---- frames and pcap files (the pcap test) ----
import struct  # noqa: E402

PEER_MAC = bytes.fromhex("020000000002")
PEER_IP = bytes([198, 18, 0, 2])
OUR_IP = bytes([198, 18, 0, 1])
PCAP_MAC = bytes.fromhex("027063617000")  # net_pcap's MAC for port 0 (DPDK 22.11)
BCAST = b"\xff" * 6


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def arp_request(target=OUR_IP):
    return (BCAST + PEER_MAC + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) +
            PEER_MAC + PEER_IP + b"\0" * 6 + target)


def ipv4(proto, payload, *, dst_mac=PCAP_MAC, bad_csum=False, total=None):
    n = 20 + len(payload) if total is None else total
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, n, 1, 0x4000, 64, proto, 0, PEER_IP, OUR_IP)
    c = csum(h) ^ (0x5555 if bad_csum else 0)
    return dst_mac + PEER_MAC + b"\x08\x00" + h[:10] + struct.pack("!H", c) + h[12:] + payload


def icmp_echo(ident, seq, data, **kw):
    b = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + data
    return ipv4(1, b[:2] + struct.pack("!H", csum(b)) + b[4:], **kw)


def udp_frame(payload, *, sport=40000, dport=9200, bad_udp_csum=False, **kw):
    u = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = csum(PEER_IP + OUR_IP + struct.pack("!BBH", 0, 17, len(u)) + u) or 0xFFFF
    if bad_udp_csum:
        c ^= 0x00F0
    return ipv4(17, u[:6] + struct.pack("!H", c) + u[8:], **kw)


def pcap_write(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, p in enumerate(frames):
            f.write(struct.pack("<IIII", 1, i, len(p), len(p)) + p)


def pcap_read(path):
    b = Path(path).read_bytes()
    assert struct.unpack("<I", b[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D), "not a pcap file"
    o, out = 24, []
    while o + 16 <= len(b):
        _, _, cl, _ = struct.unpack("<IIII", b[o:o + 16])
        out.append(b[o + 16:o + 16 + cl])
        o += 16 + cl
    return out


def parse_reply(f):
    """A sent frame as a dict: kind (arp, icmp, udp) and its fields; checks
    the checksums on the way."""
    d = {"dst_mac": f[0:6], "src_mac": f[6:12], "type": f[12:14]}
    if d["type"] == b"\x08\x06":
        htype, ptype, hl, pl, op = struct.unpack("!HHBBH", f[14:22])
        d.update(kind="arp", op=op, sha=f[22:28], spa=f[28:32], tha=f[32:38], tpa=f[38:42])
        return d
    assert d["type"] == b"\x08\x00", f.hex()
    ih = (f[14] & 15) * 4
    ip = f[14:14 + ih]
    tot = struct.unpack("!H", ip[2:4])[0]
    assert csum(ip) == 0, "IPv4 header checksum"
    d.update(src_ip=ip[12:16], dst_ip=ip[16:20], ttl=ip[8])
    body = f[14 + ih:14 + tot]
    if ip[9] == 1:
        assert csum(body) == 0, "ICMP checksum"
        t, c, _, ident, seq = struct.unpack("!BBHHH", body[:8])
        d.update(kind="icmp", icmp_type=t, ident=ident, seq=seq, data=body[8:])
        return d
    assert ip[9] == 17
    sport, dport, ulen, uc = struct.unpack("!HHHH", body[:8])
    assert ulen == len(body)
    if uc:
        assert csum(d["src_ip"] + d["dst_ip"] + struct.pack("!BBH", 0, 17, ulen) + body) == 0, \
            "UDP checksum"
    import msgpack

    d.update(kind="udp", sport=sport, dport=dport, msg=msgpack.unpackb(body[8:], raw=False))
    return d
