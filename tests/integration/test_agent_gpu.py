"""infergw-agent --backend gpu (the GPU agents of deploy/k8s): where the
GPU cannot be opened the agent refuses to start, exit 1, with CUDA's own
error; where it can, a gateway gets correct values through it (the GPU
backend's tolerance, docs/gpu.md)."""
import re
import subprocess

from agentlib import AGENT_BIN, Agent
from agentproc import models_dir
from test_remote import _check_values, gw_config, remote_entry


def test_backend_gpu_starts_or_says_why(start_gw, tmp_path, model, heldout):
    d = models_dir(tmp_path)
    cmd = [str(AGENT_BIN), "--listen", "127.0.0.1:0", "--models", str(d), "--backend", "gpu",
           "--threads", "2"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        out = None  # running: this machine has a usable GPU
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if out is not None:
        has_cuda = "built without CUDA" not in out
        assert p.returncode in (1, 2), out
        if has_cuda:
            # the backend's open failed: CUDA's text and error name (then
            # what to do, gpu_open_hint), loaded from the GPU plugin; nothing served
            assert p.returncode == 1, out
            assert re.search(r'msg="cannot start: gpu: CUDA: .+\(cuda\w+\)(: [^"]+)?"', out), out
        else:
            assert "--backend gpu: this infergw-agent was built without CUDA" in out, out
        assert "infergw-agent ready" not in out, out
        return
    a = Agent(tmp_path, "gpu-agent", d, args=["--backend", "gpu", "--threads", "2"]).start()
    try:
        assert 'msg="GPU open"' in a.log(), a.log()
        g = start_gw("gw", gw_config(remote_entry("gpu0", a.port, cost=0.5)))
        _check_values(g, model, heldout, 60)
    finally:
        a.stop()
        a.kill()
