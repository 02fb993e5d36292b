"""infergw-agent processes for tests: started on a free loopback port (or
inside a network namespace the test made), stopped by PID.  A test that
SIGKILLs or SIGSTOPs an agent on purpose says so (``killed``), so its log
does not get gwlib's unclean-exit line."""
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import gwlib

AGENT = Path(os.environ.get("INFERGW_AGENT_BIN", gwlib.REPO / "build" / "infergw-agent"))


def models_dir(tmp_path, names=("digits",)):
    """A --models directory holding only the named bundled models (links)."""
    d = Path(tmp_path) / "agent-models"
    d.mkdir(exist_ok=True)
    for n in names:
        link = d / n
        if not link.exists():
            link.symlink_to(gwlib.MODEL_DIR.parent / n)
    return d


def tcp_ready(host, port, timeout=0.2):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Agent(gwlib.GatewayProcess):
    """One build/infergw-agent serving models on host:port; prefix: a
    command prefix (``ip netns exec NS``) to run it elsewhere."""

    def __init__(self, workdir, name, models, host="127.0.0.1", port=None, threads=1,
                 extra=(), prefix=()):
        super().__init__(workdir, name)
        self.host = host
        self.port = port or gwlib.free_port()
        self.models = models
        self.threads = threads
        self.extra = list(extra)
        self.prefix = list(prefix)
        self.killed = False

    def args(self):
        return [*self.prefix, str(AGENT), "--listen", f"{self.host}:{self.port}",
                "--models", str(self.models), "--threads", str(self.threads), *self.extra]

    def start(self, timeout=20.0, probe=None):
        """Start and wait until it accepts; probe(host, port) -> bool
        replaces the TCP probe (an agent in a namespace)."""
        if not AGENT.exists():
            raise AssertionError(f"{AGENT} does not exist: run `make` first")
        self.killed = False
        self.popen(self.args())
        probe = probe or tcp_ready
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"agent {self.name} exited {self.proc.returncode}\n"
                                     f"{self.log()[-3000:]}")
            if probe(self.host, self.port):
                return self
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"agent {self.name} not accepting on {self.host}:{self.port}\n"
                             f"{self.log()[-3000:]}")

    def sigkill(self):
        """Kill it on purpose (the test's failure injection)."""
        self.killed = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        self.proc.send_signal(signal.SIGSTOP)

    def cont(self):
        self.proc.send_signal(signal.SIGCONT)

    def kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.cont()
        if self.killed and self.proc.poll() is not None:
            return
        super().kill()


def wait_for(pred, timeout, what, step=0.05):
    """Poll pred() until it returns a true value (returned) or fail naming what."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def run(cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=30)
