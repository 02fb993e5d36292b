"""The model repository extension where Triton's clients send it (issue 10
items 3 and 8): the index on the inference port always, load/unload there
only with admin.repository_on_main (else 403 naming the admin listener),
a load's Triton config applied as an override of the batching keys (kept
across reloads) or refused by name, and the admin listener's default port
8002 (Triton's metrics port).

Request bodies are what tritonclient.http sends: get_model_repository_index
posts an empty body; load_model json.dumps {"parameters": {"config": str,
"file:<path>": base64}} (or {} with neither); unload_model json.dumps
{"parameters": {"unload_dependents": bool}}.

Each test runs its own gateway on 127.0.0.1 (stopped by PID)."""
import base64
import json
import subprocess

import gwlib
import slowmodel as sm
from gwlib import check_infer_response, infer_body

DIGITS = sm.DIGITS_DIR
INDEX = "/v2/repository/index"
LOAD = "/v2/repository/models/digits/load"
UNLOAD = "/v2/repository/models/digits/unload"
READY_DIGITS = [{"name": "digits", "version": "1", "state": "READY", "reason": ""}]
UNLOADED_DIGITS = [{"name": "digits", "version": "", "state": "UNAVAILABLE",
                    "reason": "unloaded"}]


def repo_config(*, on_main=None, spare=False):
    """digits on cpu0 (max_batch 32); spare: a second model on cpu1.
    on_main: the value written for admin.repository_on_main (None: absent)."""
    models = [sm.model_yaml("digits", DIGITS, max_batch=32)]
    bes = [sm.backend_yaml("cpu0", ["digits"])]
    if spare:
        models.append(sm.model_yaml("spare", DIGITS, max_batch=8))
        bes.append(sm.backend_yaml("cpu1", ["spare"]))
    text = sm.config_text(models, bes)
    if on_main is not None:
        text = text.replace("admin:\n  address: 127.0.0.1\n",
                            f"admin:\n  address: 127.0.0.1\n  repository_on_main: {on_main}\n")
        assert "repository_on_main" in text
    return text


def post(port, path, body=b""):
    """One POST as tritonclient sends it: (status, headers, parsed JSON)."""
    st, h, raw = gwlib.h1_request(port, "POST", path, body, [gwlib.JSON_CT], timeout=30)
    return st, h, json.loads(raw)


def load_body(config=None, files=None):
    """tritonclient.http load_model's body, byte for byte."""
    req = {}
    if config is not None:
        req.setdefault("parameters", {})["config"] = config
    for path, content in (files or {}).items():
        req.setdefault("parameters", {})[path] = base64.b64encode(content).decode()
    return json.dumps(req).encode()


def unload_body(dependents=False):
    return json.dumps({"parameters": {"unload_dependents": dependents}}).encode()


def infer(g, rows, model="digits"):
    return gwlib.h1_request(g.port, "POST", f"/v2/models/{model}/infer", infer_body(rows),
                            [gwlib.JSON_CT])


def digits_conf(g):
    doc = g.effective_config()
    return next(m for m in doc["models"] if m["name"] == "digits")


def digits_queue(g):
    st, _, be = g.admin("GET", "/admin/backends")
    assert st == 200, be
    return next(m for b in be["backends"] for m in b["models"] if m["model"] == "digits")


# ------------------------------------------------------------- ports ----

def test_admin_default_port_is_8002(tmp_path):
    """Triton serves metrics on 8002 (and gRPC on 8001): a config without
    an admin section puts the admin listener on 127.0.0.1:8002."""
    binary = str(sm.BINARY)
    cfg = tmp_path / "noadmin.yaml"
    text = repo_config().replace("admin:\n  address: 127.0.0.1\n  port: 8002\n", "")
    assert "admin:" not in text
    cfg.write_text(text)
    out = subprocess.run([binary, "--check-config", str(cfg)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "listen 127.0.0.1:8000, admin 127.0.0.1:8002," in out.stdout, out.stdout
    # the shipped config says so too
    out = subprocess.run([binary, "--check-config", str(gwlib.REPO / "config/gateway.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "admin 127.0.0.1:8002," in out.stdout, out.stdout
    # a bad value names the key
    cfg.write_text(repo_config(on_main="maybe"))
    out = subprocess.run([binary, "--check-config", str(cfg)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0
    assert "admin.repository_on_main" in out.stderr, out.stderr


# ------------------------------------------------------------- index ----

def test_index_on_the_inference_port(start_gw):
    g = start_gw("idx", repo_config())
    for port in (g.port, g.admin_port):
        st, h, idx = post(port, INDEX)                     # tritonclient: empty body
        assert st == 200 and h["content-type"] == "application/json", (port, st, idx)
        assert idx == READY_DIGITS, (port, idx)
        st, _, idx = post(port, INDEX, b'{"ready": true}')
        assert st == 200 and idx == READY_DIGITS, (port, idx)
        st, _, doc = post(port, INDEX, b'{"ready": "yes"}')
        assert st == 400 and doc == {"error": "index: ready: expected true or false"}, doc
    with gwlib.H2Client(g.port) as c:                      # answered on an h2 loop too
        r = c.post(INDEX, b"")
        assert r.status == 200 and r.json() == READY_DIGITS, r
    st, h, _ = gwlib.h1_request(g.port, "GET", INDEX)
    assert st == 405 and h.get("allow") == "POST", h
    # unloaded models are listed as such; {"ready": true} leaves them out
    st, _, doc = g.admin("POST", UNLOAD, b"")
    assert st == 200, doc
    st, _, idx = post(g.port, INDEX)
    assert st == 200 and idx == UNLOADED_DIGITS, idx
    st, _, idx = post(g.port, INDEX, b'{"ready":true}')
    assert st == 200 and idx == [], idx
    st, _, idx = post(g.port, INDEX, b'{"ready":false}')
    assert st == 200 and idx == UNLOADED_DIGITS, idx


# ---------------------------------------------------- load / unload ----

def test_load_unload_on_main_forbidden_by_default(start_gw, model, heldout):
    g = start_gw("forbid", repo_config())
    want = (f"model load/unload is served on the admin listener 127.0.0.1:{g.admin_port}; "
            "set admin.repository_on_main: true to allow it here")
    for path, body in ((UNLOAD, unload_body()), (LOAD, load_body()),
                       ("/v2/repository/models/nope/load", b"")):
        st, h, raw = gwlib.h1_request(g.port, "POST", path, body, [gwlib.JSON_CT])
        gwlib.check_error_response(path, st, h, raw, 403, [want])
        assert json.loads(raw) == {"error": want}
    with gwlib.H2Client(g.port) as c:
        r = c.post(UNLOAD, unload_body())
        assert r.status == 403 and r.json() == {"error": want}, r
    assert g.effective_config()["admin"]["repository_on_main"] is False
    # nothing was unloaded
    st, _, body = infer(g, heldout[0][:2])
    assert st == 200, body
    check_infer_response(body, model, heldout[0][:2])
    st, _, idx = post(g.port, INDEX)
    assert idx == READY_DIGITS, idx


def test_load_unload_403_when_admin_listener_disabled(start_gw):
    g = start_gw("noadm", repo_config(), admin_port=-1)
    st, h, raw = gwlib.h1_request(g.port, "POST", UNLOAD, unload_body(), [gwlib.JSON_CT])
    gwlib.check_error_response("noadmin", st, h, raw, 403,
                               ["served on the admin listener, which is disabled "
                                "(admin.port: -1); set admin.repository_on_main: true"])
    st, _, idx = post(g.port, INDEX)
    assert st == 200 and idx == READY_DIGITS, idx


def test_load_unload_on_main_when_enabled(start_gw, model, heldout):
    x, _ = heldout
    g = start_gw("onmain", repo_config(on_main="true"))
    assert g.effective_config()["admin"]["repository_on_main"] is True
    st, _, body = infer(g, x[:3])
    assert st == 200, body
    check_infer_response(body, model, x[:3])

    st, _, doc = post(g.port, UNLOAD, unload_body(True))
    assert st == 200 and doc["result"] == "success", doc
    st, _, body = infer(g, x[:1])
    gwlib.assert_error(st, body, 404, 'unknown model "digits"')
    st, _, body = gwlib.h1_request(g.port, "GET", "/v2/models/digits/ready")
    assert st == 404, body
    st, _, idx = post(g.port, INDEX)
    assert idx == UNLOADED_DIGITS, idx

    st, _, doc = post(g.port, LOAD, load_body())            # tritonclient: b"{}"
    assert st == 200 and doc["result"] == "success", doc
    assert doc["models_loaded"] == ["digits"] and "config_applied" not in doc, doc
    st, _, body = infer(g, x[:5])
    assert st == 200, body
    check_infer_response(body, model, x[:5])
    st, _, idx = post(g.port, INDEX)
    assert idx == READY_DIGITS, idx
    st, _, doc = post(g.port, "/v2/repository/models/nope/load", load_body())
    assert st == 404 and "is not in the model repository" in doc["error"], doc


def test_load_with_config_applies_batching_keys(start_gw, model, heldout):
    """load_model(config=...) sets the batching keys (64-bit integers as
    strings, as protobuf's JSON writes them, or as numbers); the override
    shows in /admin/config and in the running queue, survives a reload, and
    a load without config goes back to the file's settings."""
    x, _ = heldout
    g = start_gw("cfg", repo_config(on_main="true"))
    file_conf = digits_conf(g)
    assert (file_conf["max_batch"], file_conf["max_queue_delay_us"], file_conf["max_queue"],
            file_conf["slo_ms"], file_conf["preferred_batch_sizes"]) == (32, 0, 1024, 0, [])
    triton = {"name": "digits", "max_batch_size": 4,
              "dynamic_batching": {"max_queue_delay_microseconds": "1500",
                                   "preferred_batch_size": [4, 2],
                                   "default_priority_level": 2, "priority_levels": "3",
                                   "default_queue_policy": {
                                       "default_timeout_microseconds": "30000",
                                       "max_queue_size": 100, "timeout_action": "REJECT",
                                       "allow_timeout_override": True}}}
    st, _, doc = post(g.port, LOAD, load_body(config=json.dumps(triton)))
    assert st == 200 and doc["result"] == "success", doc
    applied = {"max_batch": 4, "max_queue_delay_us": 1500, "preferred_batch_sizes": [2, 4],
               "priority": 2, "slo_ms": 30, "max_queue": 100}
    assert doc["config_applied"] == applied, doc
    for when in ("after load", "after reload"):
        conf = digits_conf(g)
        for k, v in applied.items():
            assert conf[k] == v, (when, k, conf)
        q = digits_queue(g)
        assert q["max_batch"] == 4, (when, q)             # live in the scheduler
        st, _, body = infer(g, x[:3])
        assert st == 200, body
        check_infer_response(body, model, x[:3])
        st, _, doc = g.reload()
        assert st == 200, doc
    # A load without config: the file's settings again.
    st, _, doc = post(g.port, LOAD, b"")
    assert st == 200 and "config_applied" not in doc, doc
    assert digits_conf(g) == file_conf
    assert digits_queue(g)["max_batch"] == 32


def test_load_refuses_what_it_cannot_apply(start_gw, heldout):
    """Files, descriptive config keys and values the gateway cannot honour
    get 400 naming them; nothing of such a load is applied (not even the
    keys it could), and an unloaded model stays unloaded."""
    x, _ = heldout
    g = start_gw("refuse", repo_config(on_main="true"))
    before = g.effective_config()
    cases = [
        (load_body(config="{}", files={"file:1/model.onnx": b"\x08\x01onnx"}), 400,
         'load: model files cannot be uploaded to infergw (it loads models[].path of its '
         'configuration): "file:1/model.onnx"'),
        (load_body(files={"file:config.pbtxt": b"x", "file:1/model.plan": b"y"}), 400,
         '"file:config.pbtxt", "file:1/model.plan"'),
        (load_body(config=json.dumps({"max_queue_delay_microseconds": 5, "input": [],
                                      "instance_group": [{"kind": "KIND_CPU"}],
                                      "dynamic_batching": {"max_queue_delay_microseconds": 9,
                                                           "preserve_ordering": True}})), 400,
         'load: config keys not supported by infergw: "max_queue_delay_microseconds", '
         '"input", "instance_group", "dynamic_batching.preserve_ordering"'),
        (load_body(config=json.dumps({"name": "other"})), 400,
         'load: config.name: expected "digits"'),
        (load_body(config="not json"), 400, "load: parameters.config: not JSON"),
        (b'{"parameters": {"config": "{}", "priority": 1}}', 400,
         'load: parameters not supported by infergw: "priority"'),
        (load_body(config=json.dumps({"dynamic_batching": {"priority_levels": 5,
                                                           "max_queue_delay_microseconds": 9}})),
         400, "config.dynamic_batching.priority_levels: 5, but priority levels are "
              "gateway-wide: routing.priority_levels is 3"),
    ]
    for body, want_st, want in cases:
        st, _, doc = post(g.port, LOAD, body)
        assert st == want_st and want in doc["error"], (body[:80], st, doc)
        assert g.effective_config() == before, body[:80]
    st, _, body = infer(g, x[:1])
    assert st == 200, body

    # unloaded, then a load that fails: still unloaded, also after a reload
    st, _, doc = post(g.port, UNLOAD, unload_body())
    assert st == 200, doc
    st, _, doc = post(g.port, LOAD, cases[-1][0])
    assert st == 400 and doc["result"] == "failure", doc
    for _ in range(2):
        st, _, idx = post(g.port, INDEX)
        assert idx == UNLOADED_DIGITS, idx
        st, _, body = infer(g, x[:1])
        assert st == 404, body
        st, _, doc = g.reload()
        assert st == 200, doc
