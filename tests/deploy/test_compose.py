"""docker-compose.yml and deploy/Dockerfile for real (issue 17): Debian's
podman, a debian:bookworm-slim made with debootstrap from the mirror apt
uses, the image built, the gateway and two agents brought `up` by
docker-compose through podman's Docker API, then: the image's metadata,
the image alone with its default configuration, the monitoring profile
left out of a plain `up`, values through the published port checked
against the numpy reference, the image's
HEALTHCHECK driven by hand (no systemd here to schedule it), every metric
the Grafana dashboard queries present in a live scrape, a SIGHUP reload
through compose (and a broken file rejected), an agent container killed
while requests run (every answer checked), SIGTERM drain to exit 0, `down`.

Skipped, with the reason, only where podman cannot be installed or run
(not root, apt failing).  Phase timings are printed as "deploy: timing:"
lines.  Everything is under build/deploy-test (deploylib.py)."""
import json
import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import deploylib as dl  # noqa: E402
from gwlib import (H1Conn, H2Client, INFER, JSON_CT, RefModel, check_infer_response,  # noqa: E402
                   free_port, h1_request, infer_body, metric, parse_metrics)

COMPOSE_FILE = dl.REPO / "docker-compose.yml"
DASHBOARD = dl.REPO / "deploy/grafana/dashboards/infergw.json"


class Stack:
    """The compose project of this run: its environment, ports, names."""

    def __init__(self, env, http_port, admin_port, config_dir):
        self.project = f"{dl.PROJECT_PREFIX}{os.getpid()}"
        self.env = dict(env, INFERGW_IMAGE=dl.IMAGE, INFERGW_HTTP_PORT=str(http_port),
                        INFERGW_ADMIN_PORT=str(admin_port), INFERGW_CONFIG_DIR=str(config_dir),
                        COMPOSE_PROJECT_NAME=self.project)
        self.http = http_port
        self.admin = admin_port
        self.config = config_dir / "gateway.yaml"
        self.model = RefModel.load()

    def compose(self, *args, timeout=120, check=True):
        return dl.run(["docker-compose", "-f", str(COMPOSE_FILE), "-p", self.project, *args],
                      env=self.env, timeout=timeout, check=check,
                      log=dl.DEPLOY_DIR / "compose.log")

    def compose_out(self, *args):
        """compose's stdout (config, ps) as text."""
        p = dl.run(["docker-compose", "-f", str(COMPOSE_FILE), "-p", self.project, *args],
                   env=self.env, timeout=60)
        return p.stdout.decode()

    def container(self, service):
        return f"{self.project}_{service}_1"

    def inspect(self, service):
        return dl.podman_json(self.env, "inspect", self.container(service))[0]

    def metrics(self):
        st, _, body = h1_request(self.admin, "GET", "/metrics")
        assert st == 200, body
        return body.decode()

    def admin_json(self, path):
        st, _, body = h1_request(self.admin, "GET", path)
        assert st == 200, body
        return json.loads(body)

    def infer_ok(self, conn, rows):
        infer_ok(conn, self.model, rows)


def infer_ok(conn, model, rows):
    """One infer over H1Conn conn; its values against the reference."""
    st, _, body = conn.request("POST", INFER, infer_body(rows), [JSON_CT])
    assert st == 200, (st, body[:300])
    check_infer_response(body, model, rows)


def rows_of(rng, n):
    return rng.integers(0, 17, size=(n, 64)).astype(np.float64)


def first_answer(port, model, deadline_s=90):
    """Wait for an infer through published PORT that answers with the
    reference's values (the gateway and agents start, the port forwards)."""
    t0 = time.monotonic()
    rows = rows_of(np.random.default_rng(1), 2)
    last = None
    while time.monotonic() - t0 < deadline_s:
        try:
            with H1Conn(port, timeout=5) as c:
                infer_ok(c, model, rows)
            return
        except (OSError, AssertionError, ConnectionError) as e:
            last = e
            time.sleep(0.25)
    raise AssertionError(f"no correct answer through :{port} within {deadline_s}s: {last!r}")


@pytest.fixture(scope="module")
def stack():
    try:
        dl.ensure_packages()
    except dl.Skip as e:
        pytest.skip(f"deploy: skipped: {e}")
    lock = dl.machine_lock()
    env = dl.podman_env()
    info = dl.podman(env, "info", "--format", "json", check=False, timeout=60)
    if info.returncode:
        lock.close()
        pytest.skip(f"deploy: skipped: podman cannot run here: {info.text[-400:]}")
    try:
        yield from run_stack(env)
    finally:
        lock.close()


def run_stack(env):
    ms = dl.mirror_settings()
    dl.say(f"mirror {ms['mirror']} ({ms['resolved']}), proxy {ms['proxy'] or 'none'}, "
           f"apt options '{ms['apt_opts']}', build network: host")
    dl.remove_stale_projects(env)
    dl.base_image(env, ms)
    dl.build_image(env, ms)
    svc = dl.Service(env)
    config_dir = dl.DEPLOY_DIR / "config"
    shutil.rmtree(config_dir, ignore_errors=True)
    shutil.copytree(dl.REPO / "deploy/compose", config_dir)
    st = Stack(env, free_port(), free_port(), config_dir)
    try:
        t0 = time.monotonic()
        with dl.Timer("compose up -d"):
            st.compose("up", "-d", "--no-build")
        try:
            first_answer(st.http, st.model)
        except AssertionError:
            st.compose("logs", "--no-color", "--tail", "30", check=False)
            dl.say(f"compose logs: {dl.DEPLOY_DIR / 'compose.log'}")
            raise
        dl.TIMINGS["up to first answer"] = round(time.monotonic() - t0, 1)
        yield st
    finally:
        with dl.Timer("down and cleanup"):
            st.compose("down", "--remove-orphans", "-t", "20", check=False, timeout=120)
            left = dl.remove_project(env, st.project)
            svc.stop()
        dl.report()
        assert not left, f"left after down: {left}"


def test_image(stack):
    """Non-root, SIGTERM, the HEALTHCHECK, both ports, labels, one image
    for both programs."""
    img = dl.podman_json(stack.env, "image", "inspect", dl.IMAGE)[0]
    cfg = img["Config"]
    assert cfg["User"].split(":")[0] == "infergw", cfg["User"]
    assert cfg["StopSignal"] == "SIGTERM", cfg
    assert set(cfg["ExposedPorts"]) == {"8000/tcp", "8002/tcp"}, cfg["ExposedPorts"]
    assert cfg["Entrypoint"] == ["/usr/local/bin/infergw-entrypoint"], cfg
    hc = img.get("Healthcheck") or img.get("HealthCheck") or cfg.get("Healthcheck")
    assert hc and hc["Test"][-1] == "health", img.keys()
    labels = cfg["Labels"]
    assert labels["org.opencontainers.image.title"] == "infergw", labels
    assert labels["org.opencontainers.image.version"] == dl.version(), labels
    out = dl.podman(stack.env, "run", "--rm", "--network", "none", dl.IMAGE, "id", "-u").stdout
    assert out.split()[-1] == b"10001", out
    for args in (["--version"], ["agent", "--version"]):
        out = dl.podman(stack.env, "run", "--rm", "--network", "none", dl.IMAGE, *args).stdout
        assert dl.version().encode() in out, (args, out)


def test_image_default_config(stack):
    """The image alone (no compose): `gateway` with the image's own
    /etc/infergw/gateway.yaml serves correct values on 8000; its admin
    listener stays on the container's loopback, so 8002 published is
    unreachable."""
    http, admin = free_port(), free_port()
    name = f"{stack.project}_alone"
    dl.podman(stack.env, "run", "-d", "--name", name, "--label", f"{dl.TEST_LABEL}={stack.project}",
              "-p", f"127.0.0.1:{http}:8000", "-p", f"127.0.0.1:{admin}:8002", dl.IMAGE)
    try:
        first_answer(http, stack.model, deadline_s=60)
        with pytest.raises((OSError, ConnectionError)):
            h1_request(admin, "GET", "/metrics", timeout=3)
        p = dl.podman(stack.env, "exec", name, "/usr/local/bin/infergw-entrypoint", "health",
                      check=False)
        assert p.returncode == 0, p.text
    finally:
        dl.podman(stack.env, "rm", "-f", "-t", "0", name, check=False)


def test_compose_file(stack):
    """The monitoring services are a profile: `up` without it started only
    the gateway and the agents (nothing pulled from a registry); with it,
    the file still validates, Prometheus and Grafana included."""
    ctrs = dl.podman_json(stack.env, "ps", "-a", "--format", "json", "--filter",
                          f"label=com.docker.compose.project={stack.project}")
    services = sorted(c["Labels"]["com.docker.compose.service"] for c in ctrs)
    assert services == ["agent1", "agent2", "gateway"], services
    mon = stack.compose_out("--profile", "monitoring", "config")
    for svc in ("prometheus:", "grafana:", "profiles:"):
        assert svc in mon, (svc, mon)
    _, exprs = dashboard_exprs()
    for e in exprs:
        assert e.count("(") == e.count(")") and e.count("{") == e.count("}"), e


def test_infer_values(stack):
    """Batches of 1, 7 and 32 rows over HTTP/1.1 and HTTP/2 through the
    published port: the reference's values."""
    rng = np.random.default_rng(7)
    with H1Conn(stack.http) as c:
        for n in (1, 7, 32):
            stack.infer_ok(c, rows_of(rng, n))
    with H2Client(stack.http) as c:
        batches = [rows_of(rng, n) for n in (1, 7, 32)]
        sids = [c.infer(rows) for rows in batches]
        for resp, rows in zip(c.wait(sids), batches):
            assert resp.status == 200, resp
            check_infer_response(bytes(resp.body), stack.model, rows)
    st, _, body = h1_request(stack.http, "GET", "/v2/health/ready")
    assert st == 200, body


def test_healthchecks(stack):
    """The image's HEALTHCHECK, run as the runtime would (podman schedules
    it with systemd timers, absent here): gateway and both agents healthy."""
    for svc in ("gateway", "agent1", "agent2"):
        p = dl.podman(stack.env, "healthcheck", "run", stack.container(svc), check=False)
        assert p.returncode == 0, (svc, p.text)
        assert stack.inspect(svc)["State"]["Health"]["Status"] == "healthy", svc


def dashboard_exprs():
    d = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        exprs.append(q["query"] if isinstance(q, dict) else q or "")
    return d, exprs


def test_dashboard_metrics_exist(stack):
    """Every metric name a dashboard query uses is in a live scrape of the
    compose gateway (the port Prometheus scrapes on the compose network);
    the datasource and scrape target are the compose ones."""
    d, exprs = dashboard_exprs()
    names = set()
    for e in exprs:
        names |= set(re.findall(r"\binfergw_[a-z0-9_]+", e))
    assert len(names) >= 10, names
    live = {k[0] for k in parse_metrics(stack.metrics())}
    missing = sorted(names - live)
    assert not missing, f"dashboard queries metrics the gateway does not export: {missing}"
    titles = " ".join(p["title"].lower() for p in d["panels"])
    for topic in ("outcome", "p50", "p99", "queue depth", "batch", "slo", "backend states"):
        assert topic in titles, (topic, titles)
    ds_uid = {p["datasource"]["uid"] for p in d["panels"]}
    prov = (dl.REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    assert ds_uid == {"infergw-prometheus"} and "uid: infergw-prometheus" in prov, ds_uid
    prom = (dl.REPO / "deploy/prometheus/prometheus.yml").read_text()
    assert '"gateway:8002"' in prom, prom


def reload_counts(stack):
    ms = parse_metrics(stack.metrics())
    return (metric(ms, "infergw_config_reload_total", result="success"),
            metric(ms, "infergw_config_reload_total", result="failure"))


def hup_and_wait(stack, want, timeout=20):
    """`docker-compose kill -s HUP gateway`, then the reload counters
    reaching want (success, failure)."""
    with dl.Timer("reload (HUP through compose)"):
        stack.compose("kill", "-s", "HUP", "gateway")
        deadline = time.monotonic() + timeout
        while reload_counts(stack) != want:
            assert time.monotonic() < deadline, (reload_counts(stack), want)
            time.sleep(0.2)


def test_reload_through_compose(stack):
    """Edit the mounted file, SIGHUP through compose: the new objective and
    cost are what /admin says; a broken file is rejected and the gateway
    keeps serving; the fixed file loads again."""
    good = stack.config.read_text()
    assert "slo_ms: 100 " in good and "cost: 1.0" in good
    ok0, bad0 = reload_counts(stack)
    new = good.replace("slo_ms: 100 ", "slo_ms: 250 ").replace("cost: 1.0", "cost: 3.0")
    stack.config.write_text(new)
    hup_and_wait(stack, (ok0 + 1, bad0))
    cfg = stack.admin_json("/admin/config")
    assert cfg["models"][0]["slo_ms"] == 250, cfg["models"]
    cpu = [b for b in stack.admin_json("/admin/backends")["backends"] if b["name"] == "cpu0"]
    assert cpu and cpu[0]["cost"] == 3.0, cpu

    stack.config.write_text(new.replace("max_batch: 32", "max_batch: -5"))
    hup_and_wait(stack, (ok0 + 1, bad0 + 1))
    assert stack.admin_json("/admin/config")["models"][0]["slo_ms"] == 250
    with H1Conn(stack.http) as c:
        stack.infer_ok(c, rows_of(np.random.default_rng(3), 4))
    logs = dl.podman(stack.env, "logs", stack.container("gateway")).text
    assert "max_batch" in logs, logs[-2000:]

    stack.config.write_text(new)
    hup_and_wait(stack, (ok0 + 2, bad0 + 1))


def served(stack):
    ms = parse_metrics(stack.metrics())
    return {b: metric(ms, "infergw_requests_total", backend=b, model="digits", outcome="success")
            for b in ("cpu0", "agent1", "agent2")}


def test_agent_killed(stack):
    """SIGKILL to an agent container (docker-compose kill agent1) while two
    clients send requests (HTTP/1.1 keep-alive, 1..8 rows each) and agent1
    takes them: every answer is 200 with the reference's values, the
    agent's backend leaves `up`, the others take its share."""
    rng = np.random.default_rng(11)
    with H1Conn(stack.http) as c:
        for _ in range(20):
            stack.infer_ok(c, rows_of(rng, 2))
    before = served(stack)
    assert before["agent1"] + before["agent2"] > 0, f"the cheaper agents were never used: {before}"

    # Two clients send until told to stop: the kill lands while they run,
    # and each sends at least AFTER more requests once the kill returned.
    AFTER, CAP = 100, 20000
    errors, counts, stop = [], [0, 0], threading.Event()

    def client(k, seed):
        r = np.random.default_rng(seed)
        try:
            with H1Conn(stack.http, timeout=15) as c:
                while not stop.is_set() and counts[k] < CAP:
                    stack.infer_ok(c, rows_of(r, 1 + counts[k] % 8))
                    counts[k] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e)[:500])

    def wait_counts(target, timeout=120):
        deadline = time.monotonic() + timeout
        while min(counts) < target and not errors and time.monotonic() < deadline:
            time.sleep(0.01)

    with dl.Timer("agent kill under load (checked requests)"):
        threads = [threading.Thread(target=client, args=(k, s)) for k, s in ((0, 21), (1, 22))]
        for t in threads:
            t.start()
        wait_counts(40)
        mid = served(stack)
        stack.compose("kill", "agent1")
        at_kill = min(counts)
        wait_counts(at_kill + AFTER)
        stop.set()
        for t in threads:
            t.join(60)
    dl.say(f"agent kill: {sum(counts)} requests checked, {at_kill} per client before the kill returned")
    assert not errors, errors
    assert min(counts) >= at_kill + AFTER, counts
    assert mid["agent1"] > before["agent1"], f"agent1 took none of the load before the kill: {before} {mid}"
    state = stack.inspect("agent1")["State"]
    assert not state["Running"] and state["ExitCode"] == 137, state
    b1 = [b for b in stack.admin_json("/admin/backends")["backends"] if b["name"] == "agent1"]
    assert b1 and b1[0]["state"] != "up", b1
    after = served(stack)
    others = (after["agent2"] - before["agent2"]) + (after["cpu0"] - before["cpu0"])
    assert others > 0, (before, after)
    with H1Conn(stack.http) as c:
        for _ in range(20):
            stack.infer_ok(c, rows_of(rng, 3))
    final = served(stack)
    assert final["agent1"] == after["agent1"], (after, final)


def test_stop_drains(stack):
    """`docker-compose stop gateway`: SIGTERM (STOPSIGNAL), the gateway
    drains and exits 0 by itself well inside stop_grace_period."""
    with dl.Timer("stop gateway (SIGTERM drain)"):
        stack.compose("stop", "-t", "20", "gateway")
    state = stack.inspect("gateway")["State"]
    assert state["ExitCode"] == 0, state
    logs = dl.podman(stack.env, "logs", stack.container("gateway")).text
    assert 'msg="stopped"' in logs, logs[-2000:]
