#!/usr/bin/python3
"""tools/infergw-udp-client against a Python stand-in server on loopback
(answers with the digits reference; id 5 gets a 429, id 6 no answer)."""
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import msgpack
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import gwlib  # noqa: E402


def serve(sock, ref, stop):
    while not stop.is_set():
        try:
            buf, peer = sock.recvfrom(65536)
        except socket.timeout:
            continue
        m = msgpack.unpackb(buf, raw=False)
        if m["id"] == 6:
            continue
        if m["id"] == 5:
            ans = {"id": 5, "error": "admission: late", "code": 429}
        else:
            t = m["inputs"][0]
            x = np.frombuffer(t["data"], dtype="<f4").reshape(t["shape"])
            y = ref.forward(x).astype("<f4")
            ans = {"id": m["id"], "model": m["model"], "model_version": "1",
                   "outputs": [{"name": "probabilities", "datatype": "FP32",
                                "shape": list(y.shape), "data": y.tobytes()}]}
        sock.sendto(msgpack.packb(ans, use_bin_type=True), peer)


def run_client(port, *args):
    p = subprocess.run([sys.executable, str(REPO / "tools" / "infergw-udp-client"),
                        "--server", f"127.0.0.1:{port}", "--json", *args],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, json.loads(p.stdout)


def test_client_counts_and_checks():
    ref = gwlib.RefModel.load()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()
    th = threading.Thread(target=serve, args=(sock, ref, stop), daemon=True)
    th.start()
    try:
        port = sock.getsockname()[1]
        rc, rep = run_client(port, "-n", "4", "--rows", "3", "--concurrency", "2",
                             "--check", str(gwlib.MODEL_DIR))
        assert rc == 0 and rep["answered"] == 4 and rep["codes"] == {"200": 4}, rep
        assert rep["p50_us"] > 0
        # checksum 0 (SO_NO_CHECK) is still a datagram loopback delivers
        rc, rep = run_client(port, "-n", "2", "--no-udp-checksum", "--check", str(gwlib.MODEL_DIR))
        assert rc == 0 and rep["codes"] == {"200": 2}, rep
        rc, rep = run_client(port, "-n", "8", "--concurrency", "4", "--wait", "0.3")
        assert rc == 1
        assert rep["codes"] == {"200": 6, "429": 1, "lost": 1}, rep
        assert rep["answered"] == 7
    finally:
        stop.set()
        th.join()
        sock.close()
