"""`listen.threads: 0` starts one event loop per CPU the process may use: its
affinity mask capped by its cgroup's CPU limit, not the machine's core count
(a pod limited to 2 CPUs on a 64-core node must not start 64 loops).  Checked
with `--check-config`, whose summary names the count and what decided it,
and with a real start's listen= line."""
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import gwlib
from conftest import BINARY, write_config

SUMMARY_RE = re.compile(r"(\d+) thread\(s\) \(([a-z-]+)\)")


def _check(cfg, prefix=()):
    out = subprocess.run([*prefix, str(BINARY), "--check-config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    m = SUMMARY_RE.search(out.stdout + out.stderr)
    assert m, f"no thread count in: {out.stdout}{out.stderr}"
    return int(m.group(1)), m.group(2)


def test_explicit_threads_kept(tmp_path):
    cfg = write_config(tmp_path / "gw.yaml", threads=3)
    assert _check(cfg) == (3, "config")


def test_auto_follows_affinity(tmp_path):
    if not shutil.which("taskset"):
        pytest.skip("taskset (util-linux) is not installed")
    cfg = write_config(tmp_path / "gw.yaml", threads=0)
    n, why = _check(cfg)
    assert n == len(os.sched_getaffinity(0)) or why == "cgroup-quota"
    assert _check(cfg, ("taskset", "-c", "0")) == (1, "affinity")


def _make_cgroup(name, quota_us, period_us=100000):
    """A child cgroup with a CPU limit (v1 cpu controller or v2 cpu.max);
    its directory, or None where this machine gives us none."""
    v1 = Path("/sys/fs/cgroup/cpu")
    if (v1 / "cpu.cfs_quota_us").exists() and os.access(v1, os.W_OK):
        d = v1 / name
        try:
            d.mkdir()
            (d / "cpu.cfs_period_us").write_text(str(period_us))
            (d / "cpu.cfs_quota_us").write_text(str(quota_us))
            return d
        except OSError:
            shutil.rmtree(d, ignore_errors=True)
            return None
    v2 = Path("/sys/fs/cgroup")
    if "cpu" in (v2 / "cgroup.controllers").read_text().split() \
            if (v2 / "cgroup.controllers").exists() else False:
        d = v2 / name
        try:
            d.mkdir()
            (d / "cpu.max").write_text(f"{quota_us} {period_us}")
            return d
        except OSError:
            try:
                d.rmdir()
            except OSError:
                pass
    return None


@pytest.fixture
def half_cpu_cgroup():
    d = _make_cgroup(f"infergw-test-cpus.{os.getpid()}", 50000)
    if d is None:
        pytest.skip("no writable cgroup cpu controller (needs root with cgroup v1 cpu "
                    "or v2 cpu.max)")
    yield d
    for _ in range(50):  # the processes in it are gone once they exited
        try:
            d.rmdir()
            return
        except OSError:
            time.sleep(0.1)


def _in_cgroup(d):
    # The shell joins the cgroup, then becomes the command (exec).
    return ("sh", "-c", f'echo $$ > "{d}/cgroup.procs" && exec "$0" "$@"')


def test_auto_follows_cgroup_quota(tmp_path, half_cpu_cgroup):
    cfg = write_config(tmp_path / "gw.yaml", threads=0)
    assert _check(cfg, _in_cgroup(half_cpu_cgroup)) == (1, "cgroup-quota")


def test_started_gateway_says_why(tmp_path, half_cpu_cgroup):
    cfg = write_config(tmp_path / "gw.yaml", threads=0)
    log = tmp_path / "gw.log"
    port = gwlib.free_port()
    with open(log, "w") as f:
        p = subprocess.Popen([*_in_cgroup(half_cpu_cgroup), str(BINARY), "--config", str(cfg),
                              "--port", str(port), "--admin-port", "-1"],
                             stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "listen=" not in log.read_text():
            assert p.poll() is None, log.read_text()
            time.sleep(0.05)
        line = next(x for x in log.read_text().splitlines() if "listen=" in x)
        assert "threads=1 " in line and "threads_from=cgroup-quota" in line, line
    finally:
        p.terminate()
        assert p.wait(timeout=30) == 0, log.read_text()[-2000:]
