"""Helpers for attack tests: process memory, a bystander that checks other
clients are still served, raw sockets.  Everything talks to 127.0.0.1."""
import socket
import threading
import time

import numpy as np

import gwlib

HOST = gwlib.HOST
ROW = np.linspace(0.0, 16.0, 64).reshape(1, 64)


def rss_kb(pid):
    """Resident set size of pid in KiB, from /proc/PID/status (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def assert_alive(g):
    """The gateway process is still running and answers /v2/health/live."""
    assert g.alive(), f"gateway died (exit {g.proc.returncode})\n{g.log()[-3000:]}"
    st, _, body = gwlib.h1_request(g.port, "GET", "/v2/health/live", timeout=5)
    assert st == 200, (st, body)


class Bystander:
    """A well-behaved client on its own connections, sending one digits
    inference at a time (alternating HTTP/1.1 and HTTP/2) while an attack
    runs.  After stop(): .codes lists every status it got (None for a
    failure to connect or a timeout) and .values_ok tells whether every 200
    carried the reference probabilities.  Bounded by max_requests."""

    def __init__(self, g, model, max_requests=2000, pause=0.02, timeout=5.0):
        self.g, self.model = g, model
        self.max_requests, self.pause, self.timeout = max_requests, pause, timeout
        self.codes, self.latencies, self.values_ok = [], [], True
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self.stop()

    def stop(self):
        self._stop.set()
        self._t.join(timeout=30)

    def _one(self, i):
        body = gwlib.infer_body(ROW)
        t0 = time.monotonic()
        if i % 2 == 0:
            st, _, data = gwlib.h1_request(self.g.port, "POST", gwlib.INFER, body,
                                           [gwlib.JSON_CT], timeout=self.timeout)
        else:
            with gwlib.H2Client(self.g.port, timeout=self.timeout) as c:
                r = c.post(gwlib.INFER, body)
                st, data = r.status, bytes(r.body)
        self.latencies.append(time.monotonic() - t0)
        if st == 200:
            try:
                gwlib.check_infer_response(data, self.model, ROW)
            except AssertionError:
                self.values_ok = False
        return st

    def _run(self):
        for i in range(self.max_requests):
            if self._stop.is_set():
                break
            try:
                self.codes.append(self._one(i))
            except (OSError, ConnectionError, AssertionError, TimeoutError):
                self.codes.append(None)
            time.sleep(self.pause)

    def assert_served(self, min_requests=3):
        """Every request the bystander made was a 200 with the right values."""
        assert len(self.codes) >= min_requests, f"bystander made only {len(self.codes)} requests"
        bad = [c for c in self.codes if c != 200]
        assert not bad, f"bystander got {bad[:20]} of {len(self.codes)}"
        assert self.values_ok, "bystander got wrong probabilities"


def raw_conn(port, timeout=10.0):
    """A plain TCP socket to the gateway."""
    return socket.create_connection((HOST, port), timeout=timeout)


def metric_value(g, name, **labels):
    """The value of one metric series from the gateway's /metrics (0 if absent)."""
    return gwlib.metric(gwlib.read_metrics(g.metrics_port), name, **labels)
