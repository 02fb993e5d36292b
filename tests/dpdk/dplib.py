"""Helpers for the DPDK fast-path tests: a gateway with a `dpdk:` section,
the held-out digits, and the checks that skip a test (with its reason)
where it cannot run.  Frames, pcap files and the datagram maps are
pcaplib's; the datagram client is tools/infergw-udp-client."""
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


def run(cmd, check=True):
    """A command with a 30 s bound: its CompletedProcess (text)."""
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=30)


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


def heldout():
    t = gwlib.read_safetensors(MODEL_DIR / "heldout.safetensors")
    return t["features"], t["labels"]
