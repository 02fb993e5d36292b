"""reload.resolve_ms: agents behind a DNS name (a Kubernetes headless
Service) followed without a reload from outside: when the HPA adds an agent
pod, the name gets one more address and the gateway must start using it.

The gateway runs in a mount namespace of its own (unshare --mount) whose
/etc/hosts is a file of the test's (bind mount), so the test changes what
the name resolves to without touching the machine's.  Two agents listen
on the same port at 127.0.0.1 and 127.0.0.2, as two pods behind one
Service would.  Skipped where unshare/mount is not allowed."""
import shutil
import socket
import subprocess
import time

import pytest

import gwlib
import slowmodel as sm
from agentlib import Agent
from agentproc import models_dir, wait_for
from gwlib import check_infer_response, infer_body

NAME = "agents.infergw.test"


class NsGateway(sm.SlowGateway):
    """A SlowGateway whose /etc/hosts is `hosts` (a bind mount in a mount
    namespace of its own); same PID as the gateway (exec all the way)."""

    def __init__(self, workdir, name, text, hosts):
        super().__init__(workdir, name, text)
        self.hosts = hosts

    def popen(self, args, preexec_fn=None):
        wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" /etc/hosts && exec "$@"', str(self.hosts), *args]
        super().popen(wrap, preexec_fn)


def _ns_usable(tmp_path):
    if not shutil.which("unshare"):
        return "no unshare"
    h = tmp_path / "probe-hosts"
    h.write_text(f"127.0.0.1 {NAME}\n")
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        f'mount --bind "{h}" /etc/hosts && getent hosts {NAME}'],
                       capture_output=True, text=True, timeout=20)
    return None if r.returncode == 0 and "127.0.0.1" in r.stdout else \
        f"unshare --mount + mount --bind not usable here: {r.stderr.strip()[:200]}"


def _port_free_on_both():
    for _ in range(20):
        p = gwlib.free_port()
        try:
            s = socket.socket()
            s.bind(("127.0.0.2", p))
            s.close()
            return p
        except OSError:
            continue
    pytest.skip("no port free on both 127.0.0.1 and 127.0.0.2")


def _hosts(path, addrs):
    # rewritten in place: the bind mount holds this inode
    with open(path, "w") as f:
        f.write("127.0.0.1 localhost\n")
        for a in addrs:
            f.write(f"{a} {NAME}\n")


def _config(port):
    models = [sm.model_yaml("digits", gwlib.MODEL_DIR, max_batch=8)]
    be = (f"  - name: agents\n    kind: remote\n    address: {NAME}:{port}\n"
          f"    pool: dpu\n    timeout_ms: 2000\n    ping_ms: 200\n    reconnect_ms: 50\n"
          f"    reconnect_max_ms: 200\n    models: [digits]\n")
    return sm.config_text(models, [be], reload={"resolve_ms": 200})


def _backends(g):
    st, _, doc = g.admin("GET", "/admin/backends")
    assert st == 200, doc
    return {b["name"]: b["state"] for b in doc["backends"]}


def test_resolve_ms_follows_the_name(tmp_path, model, heldout):
    why = _ns_usable(tmp_path)
    if why:
        pytest.skip(why)
    x, _ = heldout
    port = _port_free_on_both()
    d = models_dir(tmp_path)
    agents = [Agent(tmp_path, f"agent{i}", d, args=["--threads", "1"], host=h, port=port).start()
              for i, h in enumerate(("127.0.0.1", "127.0.0.2"))]
    hosts = tmp_path / "hosts"
    _hosts(hosts, ["127.0.0.1"])
    g = NsGateway(tmp_path, "gw", _config(port), hosts)
    try:
        g.start()
        # one address: one backend, named as the entry
        wait_for(lambda: _backends(g) == {"agents": "up"}, 10, "agents up")
        # the Service gets a second pod: two backends, without a reload from outside
        _hosts(hosts, ["127.0.0.1", "127.0.0.2"])
        wait_for(lambda: _backends(g) == {"agents-1": "up", "agents-2": "up"}, 15,
                 "agents-1 and agents-2 up")
        assert "trigger=dns" in g.log()
        for i in range(6):
            rows = x[i * 3:i * 3 + 3]
            st, _, body = gwlib.h1_request(g.port, "POST", "/v2/models/digits/infer",
                                           infer_body(rows), [("content-type",
                                                               "application/json")])
            assert st == 200, body
            check_infer_response(body, model, rows)
        # both agents took batches (round trip through the second address)
        st, _, doc = g.admin("GET", "/admin/backends")
        addrs = sorted(b.get("address", "") for b in doc["backends"])
        assert addrs == [f"127.0.0.1:{port}", f"127.0.0.2:{port}"], doc
        # no change: no more reloads
        n = g.log().count("trigger=dns")
        time.sleep(1.0)  # 5 checks
        assert g.log().count("trigger=dns") == n
        # the pod goes: back to one
        _hosts(hosts, ["127.0.0.2"])
        wait_for(lambda: _backends(g) == {"agents": "up"}, 15, "one agent again")
    finally:
        g.kill()
        for a in agents:
            a.stop()
            a.kill()
    assert g.proc.returncode == 0, g.log()[-3000:]
