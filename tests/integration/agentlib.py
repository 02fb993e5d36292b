"""A tiny client of the agent protocol (backends/remote/proto.h,
docs/agent-protocol.md) and a launcher for build/infergw-agent, for the
agent's own tests and for the gateway's remote-backend tests.

Frames: a 4-byte big-endian payload length, then one msgpack map with "t"
(hello, infer, result, ping, pong, cancel, error) and "id".

Everything talks to 127.0.0.1; every process started here is stopped by
PID (Agent.stop / Agent.kill).  The binary is $INFERGW_AGENT_BIN, or
build/infergw-agent.
"""
import os
import re
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import msgpack
import numpy as np

import gwlib

REPO = Path(__file__).resolve().parents[2]
AGENT_BIN = Path(os.environ.get("INFERGW_AGENT_BIN", REPO / "build" / "infergw-agent"))
MODELS_DIR = REPO / "config" / "models"
HOST = "127.0.0.1"
VERSION = 1


# ------------------------------------------------------------ frames ----

def frame(obj):
    """One frame: the 4-byte big-endian length and the msgpack payload of obj
    (bytes are sent as bin)."""
    payload = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(payload)) + payload


def hello_msg(v=VERSION, sw="agentlib 1"):
    return {"t": "hello", "v": v, "sw": sw}


def infer_msg(id, model, slices, timeouts=None):
    """An infer of slices (a list of 2-D float arrays, one per slice) with
    timeouts (µs per slice, 0 = none)."""
    slices = [np.asarray(s, dtype="<f4").reshape(len(s), -1) for s in slices]
    timeouts = timeouts or [0] * len(slices)
    return {"t": "infer", "id": id, "model": model,
            "slices": [{"rows": int(s.shape[0]), "timeout_us": int(t)}
                       for s, t in zip(slices, timeouts)],
            "input": b"".join(s.tobytes() for s in slices)}


def ping_msg(id):
    return {"t": "ping", "id": id}


def cancel_msg(id):
    return {"t": "cancel", "id": id}


def slice_statuses(result):
    """The per-slice statuses of a result (slices as maps or as plain ints)."""
    out = []
    for s in result.get("slices", []):
        out.append(s.get("status", 0) if isinstance(s, dict) else int(s))
    return out


def output(result, out_dim):
    """A result's output bin as a float32 array of (rows, out_dim)."""
    data = result.get("output") or b""
    return np.frombuffer(data, dtype="<f4").reshape(-1, out_dim)


class Conn(gwlib.SockConn):
    """One TCP connection to an agent, blocking, with a read timeout."""

    def __init__(self, port, timeout=10.0, host=HOST):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""
        self.pending = {}  # id -> messages that came while waiting for others

    def send(self, *objs):
        """Send objs as frames in one write (pipelined)."""
        self.sock.sendall(b"".join(frame(o) for o in objs))

    def send_raw(self, data):
        self.sock.sendall(data)

    def _read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("agent closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def recv(self, timeout=None):
        """The next message (a dict with str keys); EOFError when closed,
        socket.timeout when none came in time."""
        self.sock.settimeout(timeout or self.timeout)
        n = struct.unpack(">I", self._read_exact(4))[0]
        payload = self._read_exact(n)
        return msgpack.unpackb(payload, raw=False)

    def recv_id(self, id, timeout=None):
        """The next message for id (others are kept for later calls)."""
        if self.pending.get(id):
            return self.pending[id].pop(0)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"no answer for id {id}")
            m = self.recv(left)
            if m.get("id") == id:
                return m
            self.pending.setdefault(m.get("id"), []).append(m)

    def hello(self, v=VERSION, sw="agentlib 1"):
        """Send hello and return the agent's answer."""
        self.send(hello_msg(v, sw))
        return self.recv()

    def infer(self, id, model, slices, timeouts=None):
        """One infer, waiting for its result."""
        self.send(infer_msg(id, model, slices, timeouts))
        return self.recv_id(id)

    def ping(self, id):
        self.send(ping_msg(id))
        return self.recv_id(id)

    def closed_within(self, seconds):
        """True when the agent closes this connection within seconds
        (frames it sends first are read and dropped)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True
        return False


# ----------------------------------------------------------- process ----

class Agent:
    """build/infergw-agent on 127.0.0.1, port picked by the kernel (read
    back from the startup line), stderr to workdir/NAME.log."""

    def __init__(self, workdir, name="agent", models=MODELS_DIR, args=(), binary=None,
                 host=HOST, port=0, prefix=()):
        """host, port: where it listens (port 0: the kernel's pick); prefix:
        a command prefix to run it elsewhere (``ip netns exec NS``)."""
        self.workdir = Path(workdir)
        self.name = name
        self.models = Path(models)
        self.args = list(args)
        self.binary = Path(binary or AGENT_BIN)
        self.log_path = self.workdir / f"{name}.log"
        self.proc = None
        self.host = host
        self.port = port or None
        self.prefix = list(prefix)

    def start(self, timeout=30.0):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self._mark = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [*self.prefix, str(self.binary), "--listen", f"{self.host}:{self.port or 0}",
             "--models", str(self.models)] + self.args,
            stdout=self._log, stderr=subprocess.STDOUT, cwd=str(REPO))
        deadline = time.monotonic() + timeout
        ready = re.compile(r"listen=" + re.escape(self.host) + r":(\d+) .*infergw-agent ready")
        while time.monotonic() < deadline:
            m = ready.search(self.log())
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"agent not ready in {timeout}s:\n{self.log()}")

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(getattr(self, "_mark", 0))
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def conn(self, timeout=10.0, hello=True):
        """A connection; with hello, the handshake is done and the agent's
        hello is in .hello_reply."""
        c = Conn(self.port, timeout)
        if hello:
            c.hello_reply = c.hello()
            assert c.hello_reply.get("t") == "hello", c.hello_reply
        return c

    def stop(self, timeout=20.0):
        """SIGTERM and wait; returns the exit status (None if it had to be
        killed)."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def stop_clean(self, timeout=20.0):
        """SIGTERM; assert the agent exited 0 by itself with no sanitizer
        report in its log (under ASan its leak check runs at that exit)."""
        rc = self.stop(timeout)
        log = self.log()
        self.kill()
        assert rc == 0, f"agent exit status {rc}\n{log[-3000:]}"
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert bad not in log, log[-6000:]

    def sigkill(self):
        """Kill it on purpose (a test's failure injection): no exit path runs."""
        self.proc.kill()
        self.proc.wait(10)

    def pause(self):
        """SIGSTOP: the agent hangs with its connections open."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def kill(self):
        if self.alive():
            self.resume()
            self.proc.kill()
            self.proc.wait(10)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
