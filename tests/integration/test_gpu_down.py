"""A gateway with cpu0 + gpu0 (kind gpu) serving digits.

Without a usable device (this machine: CUDA built in, no GPU) gpu0 stays
down with the CUDA error's text as its reason (/admin/backends, log) and
infergw_backend_state says so; the router uses cpu0, /v2/health/ready is
200, and answers carry the reference values.  Without CUDA built in the
reason says the kind is not built in.  Where a device exists (tests/gpu's
machines) gpu0 is up and serves: the "down" assertions are skipped then."""
import json
import shutil
import subprocess

import gwlib
import slowmodel as sm
from gwlib import MODEL_DIR, metric

GPU = ("  - name: gpu0\n"
       "    kind: gpu\n"
       "    streams: 2\n"
       "    models: [digits]\n")


def _cuda_built():
    out = subprocess.run([str(gwlib.BINARY), "--version"], capture_output=True, text=True,
                         timeout=10).stdout
    return " cuda" in out


def _backends(g):
    st, _, body = gwlib.h1_request(g.admin_port, "GET", "/admin/backends")
    assert st == 200, body
    return {b["name"]: b for b in json.loads(body)["backends"]}


def _rows(n, k):
    return ((gwlib.np.arange(n * 64, dtype=gwlib.np.float64).reshape(n, 64) * (k + 3)) % 17
            - 8.0) / 16.0


def test_gpu_down_or_serving(start_gw, model):
    text = sm.config_text([sm.model_yaml("digits", MODEL_DIR, max_batch=8,
                                         extra="    service_time_us: {base: 300, per_row: 1}\n")],
                          [sm.backend_yaml("cpu0", ["digits"]), GPU],
                          routing={"policy": "round-robin"})
    g = start_gw("gpudown", text)
    bes = _backends(g)
    assert set(bes) >= {"cpu0", "gpu0"}
    assert bes["cpu0"]["state"] == "up"
    gpu_up = bes["gpu0"]["state"] == "up"
    ms = gwlib.read_metrics(g.admin_port)
    if not gpu_up:
        reason = bes["gpu0"]["reason"] or ""
        assert bes["gpu0"]["state"] == "down", bes["gpu0"]
        if _cuda_built():
            assert reason.startswith("gpu: CUDA: "), reason
            assert len(reason) > len("gpu: CUDA: ") + 3, reason
            assert reason in g.log(), "the reason is in the log too"
        else:
            assert "not built into this binary" in reason, reason
        assert metric(ms, "infergw_backend_state", backend="gpu0", state="down") == 1
        assert metric(ms, "infergw_backend_state", backend="gpu0", state="up") == 0
    else:
        assert _cuda_built()
        assert metric(ms, "infergw_backend_state", backend="gpu0", state="up") == 1
    assert metric(ms, "infergw_backend_state", backend="cpu0", state="up") == 1

    # ready: every model has an up backend
    st, _, body = gwlib.h1_request(g.port, "GET", "/v2/health/ready")
    assert st == 200, body

    # answers with the reference values, whoever serves them
    for k in range(12):
        rows = _rows(1 + k % 4, k)
        st, _, body = gwlib.h1_request(g.port, "POST", gwlib.INFER, gwlib.infer_body(rows),
                                       [gwlib.JSON_CT])
        assert st == 200, body
        gwlib.check_infer_response(body, model, rows)
    ms = gwlib.read_metrics(g.admin_port)
    cpu_rows = metric(ms, "infergw_backend_rows_total", backend="cpu0") or 0
    gpu_rows = metric(ms, "infergw_backend_rows_total", backend="gpu0") or 0
    if gpu_up:
        assert gpu_rows > 0, "round-robin gives the up GPU its share"
    else:
        assert gpu_rows == 0
        assert cpu_rows >= sum(1 + k % 4 for k in range(12))


def _maps(g):
    return open(f"/proc/{g.proc.pid}/maps").read()


def _gpu_config(backends):
    return sm.config_text([sm.model_yaml("digits", MODEL_DIR, max_batch=8)], backends)


def test_cuda_only_with_a_gpu_backend(start_gw, model):
    """The CUDA libraries live in the GPU plugin (infergw-gpu.so), loaded
    when a gpu backend opens: a gateway without one maps none of them (they
    cost ~150 MB resident and ~80 ms at exec); with one, the plugin and
    cuBLASLt are mapped (built with CUDA), and the backend's reason is
    CUDA's own (the plugin ran) or it is up."""
    g = start_gw("cpuonly", _gpu_config([sm.backend_yaml("cpu0", ["digits"])]))
    maps = _maps(g)
    for lib in ("libcudart", "libcublas", "infergw-gpu.so"):
        assert lib not in maps, f"{lib} mapped by a gateway without a gpu backend"
    st, _, body = gwlib.h1_request(g.port, "POST", gwlib.INFER, gwlib.infer_body(_rows(2, 1)),
                                   [gwlib.JSON_CT])
    assert st == 200, body
    gwlib.check_infer_response(body, model, _rows(2, 1))
    if not _cuda_built():
        return
    g2 = start_gw("withgpu", _gpu_config([sm.backend_yaml("cpu0", ["digits"]), GPU]))
    maps = _maps(g2)
    assert "infergw-gpu.so" in maps and "libcublasLt" in maps, "the plugin was not loaded"
    gpu = _backends(g2)["gpu0"]
    assert gpu["state"] == "up" or (gpu["reason"] or "").startswith("gpu: CUDA: "), gpu


def _foreign_plugin(tmp_path, name, stamp):
    """A shared object exporting be_gpu_ops {"gpu", NULL...} and, unless stamp
    is None, be_gpu_stamp = stamp (C initializer of {layout, version})."""
    src = tmp_path / f"{name}.c"
    src.write_text("struct ops { const char *kind; void *fn[64]; };\n"
                   "const struct ops be_gpu_ops = { \"gpu\" };\n" +
                   ("" if stamp is None else
                    "struct stamp { unsigned long long layout; const char *version; };\n"
                    f"const struct stamp be_gpu_stamp = {stamp};\n"))
    so = tmp_path / f"{name}.so"
    r = subprocess.run(["cc", "-shared", "-fPIC", "-o", str(so), str(src)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return so


def test_gpu_plugin_missing_or_broken(start_gw, model, tmp_path, monkeypatch):
    """INFERGW_GPU_PLUGIN names the plugin: a path with nothing there, a
    file that is no shared object, a plugin of another build or one without
    a build stamp leaves gpu0 down with a reason naming the path and the
    loader's error or both builds; cpu0 serves the reference values.  The
    plugin installed there afterwards is taken at the next reload that
    opens gpu0 again."""
    if not _cuda_built():
        import pytest
        pytest.skip("built without CUDA: there is no GPU plugin to look for")
    bad = tmp_path / "not-a-plugin.so"
    bad.write_text("not an ELF file\n")
    version = subprocess.run([str(gwlib.BINARY), "--version"], capture_output=True, text=True,
                             timeout=10).stdout.split()[1]
    cases = [(tmp_path / "nope" / "infergw-gpu.so", "gpu: the GPU plugin {} is missing "
              "(install it next to the program, or set INFERGW_GPU_PLUGIN)"),
             (bad, "gpu: cannot load the GPU plugin: {}: "),
             # shared objects that dlopen takes, with be_gpu_ops of kind gpu
             # whose functions are all NULL: called, they would crash
             (_foreign_plugin(tmp_path, "stale", '{ 0x1234, "0.0.0-stale" }'),
              "gpu: {} is from another build (infergw 0.0.0-stale, layout 1234); this "
              f"program is infergw {version} (layout "),
             (_foreign_plugin(tmp_path, "stampless", None),
              "gpu: {} carries no build stamp (be_gpu_stamp): a plugin older than this "
              f"program's check, or not an infergw GPU plugin; install the infergw-gpu.so "
              f"built with infergw {version}")]
    for i, (path, want) in enumerate(cases):
        monkeypatch.setenv("INFERGW_GPU_PLUGIN", str(path))
        g = start_gw(f"plugin{i}", _gpu_config([sm.backend_yaml("cpu0", ["digits"]), GPU]))
        gpu = _backends(g)["gpu0"]
        assert gpu["state"] == "down", gpu
        assert gpu["reason"].startswith(want.format(path)), gpu["reason"]
        assert gpu["reason"] in g.log()
        assert "libcublas" not in _maps(g)
        st, _, body = gwlib.h1_request(g.port, "POST", gwlib.INFER,
                                       gwlib.infer_body(_rows(3, i)), [gwlib.JSON_CT])
        assert st == 200, body
        gwlib.check_infer_response(body, model, _rows(3, i))
        if i == 0:
            missing, first = path, g
    # installed afterwards: a reload that changes gpu0 opens it from there
    missing.parent.mkdir()
    shutil.copy(gwlib.BINARY.parent / "infergw-gpu.so", missing)
    first.config.write_text(_gpu_config([sm.backend_yaml("cpu0", ["digits"]),
                                         GPU.replace("streams: 2", "streams: 3")]))
    st, _, doc = first.reload()
    assert st == 200, doc
    gpu = _backends(first)["gpu0"]
    assert gpu["state"] == "up" or gpu["reason"].startswith("gpu: CUDA: "), gpu
    assert "infergw-gpu.so" in _maps(first)
