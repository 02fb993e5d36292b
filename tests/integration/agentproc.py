"""Helpers of the remote-backend tests (the agent process itself is
agentlib.Agent): a --models directory of chosen bundled models, a TCP
probe, polling with a bound, and commands (ip, tc) with a timeout."""
import socket
import subprocess
import time
from pathlib import Path

import gwlib


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
