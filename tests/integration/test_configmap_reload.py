"""The gateway's config as a Kubernetes ConfigMap volume (deploy/k8s): the
file watcher must see the kubelet's update, which never touches the file
the gateway was started on.

The kubelet's layout (its AtomicWriter) in the mounted directory DIR:

    DIR/..2026_12_02_16_40_00.000000001/gateway.yaml   the data, one dir per version
    DIR/..data -> ..2026_12_02_16_40_00.000000001     the current version
    DIR/gateway.yaml -> ..data/gateway.yaml            one link per key, made once

An update writes the new version's dir, makes a symlink ..data_tmp to it,
renames ..data_tmp over ..data (the atomic switch), then removes the old
version's dir.  The gateway runs on DIR/gateway.yaml, whose link never
changes: only the rename of ..data in DIR says that something did.

Each test runs its own gateway on 127.0.0.1 (stopped by PID)."""
import os
import shutil
import time

import gwlib
import slowmodel as sm
from gwlib import check_infer_response, infer_body, metric

WATCH = {"watch": "true", "debounce_ms": 100}


def config(slo_ms, max_batch=32):
    models = [sm.model_yaml("digits", sm.DIGITS_DIR, max_batch=max_batch, slo_ms=slo_ms)]
    return sm.config_text(models, [sm.backend_yaml("cpu0", ["digits"])], reload=WATCH)


class ConfigMapDir:
    """A directory laid out and updated the way the kubelet does it."""

    def __init__(self, path, files):
        self.dir = path
        self.dir.mkdir()
        self.n = 0
        self.current = None
        self.update(files)

    def _version_dir(self):
        self.n += 1
        t = time.gmtime()
        return self.dir / (time.strftime("..%Y_%m_%d_%H_%M_%S", t) + f".{self.n:09d}")

    def update(self, files):
        """files: {key: text}.  New version dir, ..data_tmp -> it, renamed
        over ..data, a link for each key not linked yet, old dir removed."""
        new = self._version_dir()
        new.mkdir()
        for key, text in files.items():
            (new / key).write_text(text)
        tmp = self.dir / "..data_tmp"
        os.symlink(new.name, tmp)
        os.rename(tmp, self.dir / "..data")
        for key in files:
            link = self.dir / key
            if not link.is_symlink():
                os.symlink(f"..data/{key}", link)
        if self.current is not None:
            shutil.rmtree(self.current)
        self.current = new


def reloads(g, result):
    return metric(g.metrics(), "infergw_config_reload_total", result=result)


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def infer_ok(g, model, rows):
    st, _, body = gwlib.h1_request(g.port, "POST", "/v2/models/digits/infer", infer_body(rows),
                                   [("content-type", "application/json")])
    assert st == 200, body
    check_infer_response(body, model, rows)


def test_configmap_update_applied_broken_one_rejected(start_gw, tmp_path, model, heldout):
    x, _ = heldout
    cm = ConfigMapDir(tmp_path / "configmap", {"gateway.yaml": config(100)})
    assert os.readlink(cm.dir / "gateway.yaml") == "..data/gateway.yaml"
    g = start_gw("cm", None, config=cm.dir / "gateway.yaml")
    assert 'msg="watching the configuration for changes"' in g.log()
    assert g.effective_config()["models"][0]["slo_ms"] == 100
    infer_ok(g, model, x[:3])
    ok0, err0 = reloads(g, "success"), reloads(g, "failure")

    # 1: an update (with a second key, as a ConfigMap edit may add) is applied.
    cm.update({"gateway.yaml": config(250, max_batch=16), "README": "notes\n"})
    assert wait_for(lambda: g.effective_config()["models"][0]["slo_ms"] == 250), g.log()[-2000:]
    eff = g.effective_config()["models"][0]
    assert eff["slo_ms"] == 250 and eff["max_batch"] == 16, eff
    assert 'trigger=file-watch' in g.log()
    assert reloads(g, "success") == ok0 + 1
    infer_ok(g, model, x[3:8])

    # 2: a config that does not load is rejected; the running one stays.
    cm.update({"gateway.yaml": config(250).replace("max_batch: 32", "max_batch: many"),
               "README": "notes\n"})
    assert wait_for(lambda: reloads(g, "failure") == err0 + 1), g.log()[-2000:]
    eff = g.effective_config()["models"][0]
    assert eff["slo_ms"] == 250 and eff["max_batch"] == 16, eff
    assert "max_batch" in g.log()[-4000:]
    infer_ok(g, model, x[8:12])

    # 3: the next good version (the broken one's dir removed) is applied.
    cm.update({"gateway.yaml": config(300), "README": "notes\n"})
    assert wait_for(lambda: g.effective_config()["models"][0]["slo_ms"] == 300), g.log()[-2000:]
    assert g.effective_config()["models"][0]["max_batch"] == 32
    assert reloads(g, "success") == ok0 + 2 and reloads(g, "failure") == err0 + 1
    infer_ok(g, model, x[12:20])
    # exactly the kubelet's state: one version dir, ..data, the key links
    names = sorted(p.name for p in cm.dir.iterdir())
    assert names == sorted([cm.current.name, "..data", "gateway.yaml", "README"]), names


def test_configmap_unrelated_change_no_reload(start_gw, tmp_path):
    """Removing an old version's dir or touching another file of the
    directory is not a change of the config: no reload."""
    cm = ConfigMapDir(tmp_path / "configmap", {"gateway.yaml": config(100)})
    g = start_gw("cm2", None, config=cm.dir / "gateway.yaml")
    ok0 = reloads(g, "success")
    stale = cm.dir / "..2000_01_01_00_00_00.000000000"
    stale.mkdir()
    (stale / "gateway.yaml").write_text("not: [yaml")
    shutil.rmtree(stale)
    (cm.dir / "other.txt").write_text("x")
    time.sleep(0.6)  # 6 debounce periods
    assert reloads(g, "success") == ok0
    assert g.effective_config()["models"][0]["slo_ms"] == 100
