"""The container test's machinery (tests/deploy/test_compose.py): Debian's
podman and docker-compose installed when missing, podman configured in a
folder of the test's own (never /etc), a debian:bookworm-slim base image made
offline with debootstrap from the mirror apt already uses, the image built
from deploy/Dockerfile, podman's Docker API service for docker-compose, and
cleanup of what the run made (by project label, by PID).

Everything lives under DEPLOY_DIR (build/deploy-test, INFERGW_DEPLOY_DIR to
move it): the podman storage (kept between runs: the base image and the
build's layers are the cache), the base image's tarball
(cache/bookworm-minbase-DATE-MIRRORHASH.tar), the configuration files, the
API socket, logs."""
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOY_DIR = Path(os.environ.get("INFERGW_DEPLOY_DIR", str(REPO / "build" / "deploy-test")))
BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
IMAGE = "localhost/infergw:deploy-test"
PROJECT_PREFIX = "infergwtest"
# on containers the test starts itself, outside compose: value = project
TEST_LABEL = "infergw-deploy-test"

# Debian packages the test needs.  runc, not crun (hybrid cgroups here);
# netavark + aardvark-dns: service names resolve on compose networks;
# iptables: netavark's NAT and published ports.
PACKAGES = ["podman", "runc", "netavark", "aardvark-dns", "iptables", "debootstrap",
            "docker-compose"]

# phase -> seconds (or a string), printed by report()
TIMINGS = {}


def say(msg):
    print(f"deploy: {msg}", flush=True)


class Skip(Exception):
    """The machine cannot run podman (not root, packages not installable)."""


def run(args, *, timeout, env=None, check=True, log=None, input=None):
    """subprocess.run with a bound; output captured (or appended to log).
    With check, a non-zero exit raises AssertionError carrying the tail."""
    if log is not None:
        with open(log, "ab") as f:
            f.write(f"\n$ {' '.join(map(str, args))}\n".encode())
            f.flush()
            p = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, timeout=timeout,
                               env=env, input=input)
        out = ""
        if check and p.returncode:
            out = Path(log).read_text(errors="replace")[-4000:]
    else:
        p = subprocess.run(args, capture_output=True, timeout=timeout, env=env, input=input)
        out = (p.stdout + p.stderr).decode(errors="replace")
    if check and p.returncode:
        raise AssertionError(f"{' '.join(map(str, args))} exited {p.returncode}:\n{out[-4000:]}")
    p.text = out if log is None else ""
    return p


class Timer:
    """with Timer("build"): ... records the phase's seconds in TIMINGS."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        TIMINGS[self.name] = round(time.monotonic() - self.t0, 1)


def report():
    """One line per phase, then the summary line run_all.sh shows."""
    for k, v in TIMINGS.items():
        say(f"timing: {k}: {v}{'s' if isinstance(v, float) else ''}")


# --------------------------------------------------------------- packages ----

def missing_packages():
    out = []
    for p in PACKAGES:
        q = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True)
        if b"install ok installed" not in q.stdout:
            out.append(p)
    return out


def ensure_packages():
    """Install what is missing, as `make deps` does (root).  Raises Skip
    when that cannot be done: not root, apt failing, or a plan that would
    remove a package (never done: other builds depend on what is here)."""
    if os.geteuid() != 0:
        raise Skip("not root: rootful podman and its Debian packages need root")
    if not shutil.which("apt-get") or not shutil.which("dpkg-query"):
        raise Skip("no apt-get/dpkg: podman cannot be installed from Debian here")
    missing = missing_packages()
    if not missing:
        TIMINGS["packages"] = "already installed"
        return
    say(f"installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    with Timer("packages"):
        try:
            run(["apt-get", "update", "-q"], timeout=300, env=env)
            sim = run(["apt-get", "install", "-s", "-q", "--no-install-recommends", *missing],
                      timeout=120, env=env)
            removed = re.findall(r"^Remv (\S+)", sim.text, re.M)
            if removed:
                raise Skip(f"installing {' '.join(missing)} would remove {' '.join(removed)}: "
                           "not done")
            run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                timeout=600, env=env)
        except (AssertionError, subprocess.TimeoutExpired) as e:
            raise Skip(f"podman's packages cannot be installed: {str(e)[-600:]}")


# ------------------------------------------------------------------ mirror ----

def apt_config(key):
    """The value apt-config gives KEY, or None."""
    p = subprocess.run(["apt-config", "dump", key], capture_output=True, text=True)
    for line in p.stdout.splitlines():
        m = re.match(rf'^{re.escape(key)} "(.*)";$', line)
        if m:
            return m.group(1)
    return None


def debian_mirror():
    """The URI apt uses for bookworm main (sources.list or deb822 .sources);
    http://deb.debian.org/debian when none is found."""
    files = [Path("/etc/apt/sources.list")] + sorted(Path("/etc/apt/sources.list.d").glob("*"))
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            for block in re.split(r"\n\s*\n", text):
                fields = {}
                for line in block.splitlines():
                    m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
                    if m:
                        fields[m.group(1).lower()] = m.group(2).split()
                if "deb" in fields.get("types", []) and "bookworm" in fields.get("suites", []) \
                        and fields.get("enabled", ["yes"])[0] != "no" and fields.get("uris"):
                    return fields["uris"][0].rstrip("/")
        elif f.name == "sources.list" or f.suffix == ".list":
            for line in text.splitlines():
                m = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s", line)
                if m:
                    return m.group(1).rstrip("/")
    return "http://deb.debian.org/debian"


def mirror_settings():
    """{mirror, proxy, apt_opts, resolved}: how this host reaches Debian,
    passed to debootstrap and the image build (which runs on the host's
    network, so it resolves and routes as apt does here)."""
    mirror = debian_mirror()
    proxy = apt_config("Acquire::http::Proxy") or os.environ.get("http_proxy") or ""
    if proxy.upper() in ("DIRECT", "FALSE"):     # apt's words for "no proxy"
        proxy = ""
    opts = []
    if apt_config("Acquire::Check-Valid-Until") == "false":
        opts.append("-o Acquire::Check-Valid-Until=false")
    host = urllib.parse.urlparse(mirror).hostname or "?"
    try:
        resolved = sorted({a[4][0] for a in socket.getaddrinfo(host, 80, proto=socket.IPPROTO_TCP)})
    except OSError as e:
        resolved = [f"unresolved ({e})"]
    return {"mirror": mirror, "proxy": proxy, "apt_opts": " ".join(opts),
            "resolved": f"{host} -> {', '.join(resolved)}"}


# ------------------------------------------------------------------ podman ----

def ulimit_values():
    """default_ulimits for containers.conf: runc cannot raise a limit past
    the host's hard one (no CAP_SYS_RESOURCE in these VMs), and a nofile of
    the host's whole 20000 was refused in practice: stay under both."""
    import resource
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    cap = lambda hard, want: want if hard == resource.RLIM_INFINITY else min(want, hard)
    return cap(nofile, 16384), cap(nproc, 16384)


def podman_env():
    """Write podman's configuration under DEPLOY_DIR; the environment that
    makes podman (and docker-compose through DOCKER_HOST) use it."""
    d = DEPLOY_DIR
    for sub in ("storage", "run", "tmp", "networks", "xdg/run", "xdg/config", "xdg/data", "cache"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(d / "xdg/run", 0o700)
    nofile, nproc = ulimit_values()
    (d / "containers.conf").write_text(f"""# written by tests/deploy/deploylib.py
[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
log_driver = "k8s-file"

[network]
network_backend = "netavark"
network_config_dir = "{d}/networks"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
tmp_dir = "{d}/tmp"
static_dir = "{d}/storage/libpod"
volume_path = "{d}/storage/volumes"
""")
    (d / "storage.conf").write_text(f"""# written by tests/deploy/deploylib.py
[storage]
driver = "overlay"
graphroot = "{d}/storage"
runroot = "{d}/run"
""")
    # No registry is searched: every image the test uses is local.
    (d / "registries.conf").write_text('unqualified-search-registries = []\n'
                                       'short-name-mode = "permissive"\n')
    env = dict(os.environ)
    env.update(CONTAINERS_CONF=str(d / "containers.conf"),
               CONTAINERS_STORAGE_CONF=str(d / "storage.conf"),
               CONTAINERS_REGISTRIES_CONF=str(d / "registries.conf"),
               XDG_RUNTIME_DIR=str(d / "xdg/run"), XDG_CONFIG_HOME=str(d / "xdg/config"),
               XDG_DATA_HOME=str(d / "xdg/data"),
               DOCKER_HOST=f"unix://{d}/podman.sock")
    env.pop("DOCKER_CONTEXT", None)
    return env


def podman(env, *args, timeout=120, check=True, log=None):
    return run(["podman", *args], env=env, timeout=timeout, check=check, log=log)


def podman_json(env, *args, timeout=60):
    return json.loads(podman(env, *args, timeout=timeout).stdout)


# -------------------------------------------------------------- base image ----

def base_image(env, ms):
    """debian:bookworm-slim from `debootstrap --variant=minbase`, imported
    into podman as docker.io/library/debian:bookworm-slim (what FROM asks
    for).  The tarball is cached by UTC date and mirror; the import by a
    stamp naming that tarball."""
    key = f"{datetime.datetime.utcnow():%Y%m%d}-{hashlib.sha1(ms['mirror'].encode()).hexdigest()[:8]}"
    cache = DEPLOY_DIR / "cache"
    tar = cache / f"bookworm-minbase-{key}.tar"
    stamp = cache / "base.imported"
    if not tar.exists():
        for old in cache.glob("bookworm-minbase-*.tar"):
            old.unlink()
        root = cache / "rootfs"
        shutil.rmtree(root, ignore_errors=True)
        env2 = dict(env)
        if ms["proxy"]:
            env2["http_proxy"] = ms["proxy"]
        say(f"debootstrap --variant=minbase bookworm from {ms['mirror']}")
        with Timer("debootstrap"):
            run(["debootstrap", "--variant=minbase", "bookworm", str(root), ms["mirror"]],
                env=env2, timeout=900, log=DEPLOY_DIR / "debootstrap.log")
        # what a slim image leaves out: downloaded .debs and package lists
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for f in (root / sub).glob("*"):
                if f.is_file():
                    f.unlink()
        run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tar) + ".part", "."],
            timeout=300)
        os.replace(str(tar) + ".part", tar)
        shutil.rmtree(root, ignore_errors=True)
    else:
        TIMINGS["debootstrap"] = f"cached ({tar.name})"
    exists = podman(env, "image", "exists", BASE_IMAGE, check=False).returncode == 0
    if exists and stamp.exists() and stamp.read_text() == tar.name:
        TIMINGS["base import"] = "cached"
        return
    with Timer("base import"):
        podman(env, "import", "--change", 'CMD ["bash"]', str(tar), BASE_IMAGE, timeout=300)
    stamp.write_text(tar.name)


def version():
    p = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                       capture_output=True, text=True)
    return p.stdout.strip() or "unknown"


def build_image(env, ms):
    """podman build of deploy/Dockerfile (Docker format: HEALTHCHECK is not
    in OCI's), on the host's network, never pulling."""
    args = ["build", "--format", "docker", "--network", "host", "--pull=never",
            "-f", str(REPO / "deploy/Dockerfile"), "-t", IMAGE,
            "--build-arg", f"APT_MIRROR={ms['mirror']}",
            "--build-arg", f"APT_OPTS={ms['apt_opts']}",
            "--build-arg", f"VERSION={version()}"]
    if ms["proxy"]:
        args += ["--build-arg", f"http_proxy={ms['proxy']}"]
    say(f"podman build -t {IMAGE} (log: {DEPLOY_DIR / 'build.log'})")
    (DEPLOY_DIR / "build.log").write_text("")
    with Timer("image build"):
        podman(env, *args, str(REPO), timeout=1200, log=DEPLOY_DIR / "build.log")
    # Bound the storage: earlier builds' untagged stages go after a while
    # (the newest build's layers stay: they are the cache of the next run).
    podman(env, "image", "prune", "-f", "--filter", "until=6h", check=False, timeout=300)
    size = podman_json(env, "image", "inspect", IMAGE)[0]["Size"]
    TIMINGS["image size"] = f"{size / 1e6:.0f} MB"
    return size


# ------------------------------------------------------ API service, compose ----

LOCK = Path("/run/lock/infergw-deploy-test.lock")


def machine_lock(timeout=1500):
    """One deploy run per machine at a time: podman configurations in
    different folders do not see each other's networks, and two would
    take the same bridge name and subnet in the one kernel.  An open file
    holding the flock (closed: released), or AssertionError after timeout."""
    import fcntl
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    f = open(LOCK, "a+")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            if time.monotonic() > deadline:
                f.close()
                raise AssertionError(f"{LOCK} held by another deploy run for {timeout}s")
            time.sleep(1)

class Service:
    """`podman system service` on DEPLOY_DIR/podman.sock: the Docker API
    docker-compose talks to.  Stopped by its PID."""

    def __init__(self, env):
        self.sock = DEPLOY_DIR / "podman.sock"
        self.pidfile = DEPLOY_DIR / "service.pid"
        stop_stale_service(self.pidfile)
        if self.sock.exists():
            self.sock.unlink()
        self.log = open(DEPLOY_DIR / "service.log", "ab")
        self.proc = subprocess.Popen(["podman", "system", "service", "--time=0",
                                      f"unix://{self.sock}"], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.pidfile.write_text(str(self.proc.pid))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.ping():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"podman system service did not answer /_ping (see {DEPLOY_DIR}/service.log)")

    def ping(self):
        try:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(2)
            s.connect(str(self.sock))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
            data = s.recv(4096)
            s.close()
            return b" 200 " in data
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.pidfile.unlink(missing_ok=True)
        self.log.close()


def stop_stale_service(pidfile):
    """A service a killed run left: stopped when its PID is still our
    `podman system service` on this folder's socket."""
    try:
        pid = int(pidfile.read_text())
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    if b"service" in cmd and any(str(DEPLOY_DIR).encode() in c for c in cmd):
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)


def project_containers(env, project):
    """IDs of the containers of PROJECT: compose's and the test's own."""
    ids = []
    for label in ("com.docker.compose.project", TEST_LABEL):
        ids += podman(env, "ps", "-aq", "--filter", f"label={label}={project}",
                      check=False).stdout.decode().split()
    return ids


def remove_project(env, project):
    """Every container and network of compose project PROJECT, by label and
    name; what is left is returned (empty when clean)."""
    ids = project_containers(env, project)
    if ids:
        podman(env, "rm", "-f", "-t", "0", *ids, check=False)
    nets = [n["name"] for n in podman_json(env, "network", "ls", "--format", "json")
            if n["name"].startswith(project + "_")]
    for n in nets:
        podman(env, "network", "rm", "-f", n, check=False)
    left = project_containers(env, project)
    left_nets = [n["name"] for n in podman_json(env, "network", "ls", "--format", "json")
                 if n["name"].startswith(project + "_")]
    return left + left_nets


def remove_stale_projects(env):
    """Projects of earlier runs whose test process is gone (a run killed
    by its timeout never reached its own cleanup)."""
    out = podman(env, "ps", "-a", "--format", "json", check=False).stdout
    try:
        ctrs = json.loads(out or b"[]")
    except ValueError:
        return
    projects = set()
    for c in ctrs:
        labels = c.get("Labels") or {}
        projects |= {labels.get("com.docker.compose.project", ""), labels.get(TEST_LABEL, "")}
    for p in projects:
        m = re.fullmatch(PROJECT_PREFIX + r"(\d+)", p or "")
        if m and not Path(f"/proc/{m.group(1)}").exists():
            say(f"removing stale project {p}")
            remove_project(env, p)
