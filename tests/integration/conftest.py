"""Shared fixtures for the infergw integration suite.

One gateway (``gw``) serves the whole session; tests that need their own
process (shutdown, queue limits) use ``gw_factory``, and those that need
their own config text (SLO, reload) ``start_gw``.  Every process started
here is stopped by PID in the fixture's teardown.  Everything talks to
127.0.0.1 only.
"""
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import gwlib  # noqa: E402  (helpers shared by the test modules)
import slowmodel  # noqa: E402  (SlowGateway, for start_gw)

REPO = gwlib.REPO
BINARY = gwlib.BINARY
MODEL_DIR = gwlib.MODEL_DIR

MAIN_MAX_BODY = 65536


def write_config(path, *, max_body_bytes=MAIN_MAX_BODY, max_batch=64,
                 max_queue_delay_us=0, max_queue=1024, shutdown_grace_ms=10000,
                 idle_timeout_ms=60000, max_concurrent_streams=128, threads=2,
                 workers=1, access=False, admin_port=None, limits=None, listen_extra="", extra="",
                 admin_extra=""):
    """limits: more `limits:` keys ({name: value}); listen_extra: YAML lines
    indented two spaces, added under `listen:` (a tls section); admin_extra:
    the same under `admin:` (with admin_port); extra: YAML text appended at
    the top level."""
    more_limits = "".join(f"  {k}: {v}\n" for k, v in (limits or {}).items())
    admin = "" if admin_port is None else f"""
admin:
  address: 127.0.0.1
  port: {admin_port}
{admin_extra}"""
    text = f"""\
# written by tests/integration/conftest.py
listen:
  address: 127.0.0.1
  port: 8000
  threads: {threads}
{listen_extra}{admin}
limits:
  max_body_bytes: {max_body_bytes}
  max_header_bytes: 16384
  max_concurrent_streams: {max_concurrent_streams}
  idle_timeout_ms: {idle_timeout_ms}
  shutdown_grace_ms: {shutdown_grace_ms}
{more_limits}
log:
  level: info
  access: {"true" if access else "false"}

models:
  - name: digits
    path: {MODEL_DIR}
    max_batch: {max_batch}
    max_queue_delay_us: {max_queue_delay_us}
    max_queue: {max_queue}

backends:
  - name: cpu0
    kind: cpu
    workers: {workers}
    threads_per_worker: 1
    cost: 1.0
    models: [digits]
{extra}"""
    Path(path).write_text(text)
    return Path(path)


class Gateway(gwlib.GatewayProcess):
    """One infergw process on the digits config (write_config with **conf).
    ``port`` is known once ``start`` returns."""

    # Gateways that know the `admin` config section serve /metrics on a
    # separate admin listener; False once this binary rejected the section.
    admin_supported = None

    def __init__(self, workdir, name="gw", **conf):
        super().__init__(workdir, name)
        self.conf = conf

    @property
    def metrics_port(self):
        """Where GET /metrics is served: the admin listener when there is one."""
        return self.admin_port if self.admin_port is not None else self.port

    # -- lifecycle ---------------------------------------------------------
    def start(self, port=None, timeout=20.0):
        if not BINARY.exists():
            pytest.fail(f"{BINARY} does not exist: run `make` first")
        attempts = 3 if port is None else 1
        last = ""
        for _ in range(attempts):
            want = gwlib.free_port() if port is None else port
            use_admin = Gateway.admin_supported is not False
            write_config(self.config, admin_port=gwlib.free_port() if use_admin else None,
                         **self.conf)
            mark = len(self.log())
            self._spawn(want)
            ok, last = self._wait_ready(want, timeout, mark)
            if ok:
                if use_admin:
                    Gateway.admin_supported = True
                return self
            self.kill()
            err = self.log()[mark:]
            if use_admin and re.search(r"\badmin\b", err) and "unknown" in err.lower():
                Gateway.admin_supported = False  # an older binary: no admin listener
                continue
            if "cannot listen" not in err:  # otherwise only retry a lost port race
                break
        pytest.fail(f"gateway {self.name} did not become ready: {last}\n"
                    f"--- stderr ---\n{self.log()[-4000:]}")

    def _spawn(self, port):
        self.popen([str(BINARY), "--config", str(self.config), "--port", str(port)])

    def _wait_ready(self, port, timeout, mark=0):
        deadline = time.monotonic() + timeout
        last = "no listen= line yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False, f"exited with {self.proc.returncode}"
            log = self.log()[mark:]  # this attempt's lines only
            m = gwlib.LISTEN_RE.search(log)
            a = gwlib.ADMIN_RE.search(log)
            self.admin_port = int(a.group(2)) if a else None
            if m:
                self.port = int(m.group(2))
                if self.port != port:
                    return False, f"listen= says port {self.port}, asked for {port}"
                last = self._ready_error(port)
                if not last:
                    return True, ""
            time.sleep(0.05)
        return False, "timeout: " + last

    def _ready_error(self, port):
        """What keeps this gateway from being ready ("" when it is)."""
        return gwlib.ready_error(port)

    def terminate(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout):
        return self.proc.wait(timeout=timeout)

    # -- convenience -------------------------------------------------------
    def metrics(self, via="h1"):
        return gwlib.read_metrics(self.metrics_port, via)


@pytest.fixture(scope="session")
def gw(tmp_path_factory):
    g = Gateway(tmp_path_factory.mktemp("gw-main"), "main")
    g.start()
    yield g
    g.kill()
    assert g.proc.returncode == 0, (
        f"main gateway exited {g.proc.returncode} on SIGTERM\n{g.log()[-3000:]}")


@pytest.fixture
def gw_factory(tmp_path):
    started = []

    def make(name="extra", start=True, **conf):
        g = Gateway(tmp_path, f"{name}{len(started)}", **conf)
        if not start:
            write_config(g.config, admin_port=None if Gateway.admin_supported is False
                         else gwlib.free_port(), **conf)
        started.append(g)
        if start:
            g.start()
        return g

    yield make
    for g in started:
        g.kill()


@pytest.fixture
def start_gw(tmp_path):
    """start(name, text, **kw): a slowmodel.SlowGateway on config text,
    started with kw (see SlowGateway.start).  Each is stopped at teardown
    and must have exited 0."""
    started = []

    def start(name, text, **kw):
        g = slowmodel.SlowGateway(tmp_path, name, text)
        started.append(g)
        return g.start(**kw)

    yield start
    for g in started:
        g.kill()
        assert g.proc.returncode == 0, f"{g.name} exited {g.proc.returncode}\n" \
                                       f"{g.log()[-3000:]}"


@pytest.fixture(scope="session")
def model():
    return gwlib.RefModel.load()


@pytest.fixture(scope="session")
def heldout():
    t = gwlib.read_safetensors(MODEL_DIR / "heldout.safetensors")
    return t["features"], t["labels"]


@pytest.fixture(scope="module")
def h2client(gw):
    """httpx over HTTP/2 (h2c with prior knowledge) to the session gateway."""
    import httpx

    with httpx.Client(http1=False, http2=True, base_url=gw.base, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def h1client(gw):
    """httpx over HTTP/1.1 to the session gateway."""
    import httpx

    with httpx.Client(http1=True, http2=False, base_url=gw.base, timeout=10) as c:
        yield c
