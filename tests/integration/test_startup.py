"""A gateway that cannot start says why, exits 1 and frees what it made.

A port already in use is the usual case (another process, or a test's
port race): the loops created and the listeners bound before the failing
one must be freed, or a sanitizer build reports them as leaked at exit
(tests/run_all.sh counts any report as a failure).  The busy port is
held by this test's own socket, so the failure is certain.
"""
import socket
import subprocess

import pytest

import gwlib
from conftest import write_config


def _busy_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((gwlib.HOST, 0))
    s.listen(1)
    return s


@pytest.mark.parametrize("which", ["listen", "admin"])
def test_port_in_use_exits_1_and_says_which(tmp_path, which):
    """listen: the first loop's bind fails; admin: the last loop's, after
    two loops bound theirs (listen.threads 2)."""
    busy = _busy_socket()
    port = busy.getsockname()[1]
    try:
        main_port = port if which == "listen" else gwlib.free_port()
        cfg = write_config(tmp_path / "busy.yaml", threads=2,
                           admin_port=port if which == "admin" else gwlib.free_port())
        r = subprocess.run([str(gwlib.BINARY), "--config", str(cfg), "--port", str(main_port)],
                           capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    finally:
        busy.close()
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-3000:]
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in out, out[-3000:]
    assert 'msg="ready"' not in out
