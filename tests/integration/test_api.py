"""Health and metadata endpoints over HTTP/2 (httpx, h2c prior knowledge) and
HTTP/1.1 (httpx and curl): exact bodies."""
import json
import subprocess

import httpx
import pytest

import gwlib


def expected_bodies(model):
    meta = {"name": "digits", "versions": ["1"], "platform": "infergw-mlp",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
            "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
            "max_batch_size": model.max_batch_size}
    return {
        "/v2/health/live": {"live": True},
        "/v2/health/ready": {"ready": True},
        "/v2/models/digits": meta,
        "/v2/models/digits/ready": {"name": "digits", "ready": True},
        "/v2/models/digits/versions/1": meta,
        "/v2/models/digits/versions/1/ready": {"name": "digits", "ready": True},
    }


PATHS = ["/v2/health/live", "/v2/health/ready", "/v2/models/digits",
         "/v2/models/digits/ready", "/v2/models/digits/versions/1",
         "/v2/models/digits/versions/1/ready"]

NOT_FOUND = [
    ("/v2/models/digits/versions/2", "2"),
    ("/v2/models/digits/versions/2/ready", "2"),
    ("/v2/models/nope", 'unknown model "nope"'),
    ("/v2/models/nope/ready", 'unknown model "nope"'),
    ("/foo", "no route for GET /foo"),
]


def _server_version():
    """What `infergw --version` says, used to check GET /v2."""
    from conftest import BINARY
    out = subprocess.run([str(BINARY), "--version"], capture_output=True, text=True,
                         timeout=10)
    return (out.stdout + out.stderr).strip()


def _check_server_meta(doc):
    assert set(doc) == {"name", "version", "extensions"}, doc
    assert doc["name"] == "infergw"
    # the list grows as extensions land (binary_tensor_data, ...): strings, no repeats
    ext = doc["extensions"]
    assert isinstance(ext, list) and all(isinstance(e, str) and e for e in ext), ext
    assert len(set(ext)) == len(ext), ext
    assert isinstance(doc["version"], str) and doc["version"], doc
    cli = _server_version()
    assert doc["version"] in cli, (
        f"GET /v2 says version {doc['version']!r} but `infergw --version` says {cli!r}: the "
        "binary carries two versions (objects compiled at different INFERGW_VERSION values; "
        "the Makefile does not rebuild objects when `git describe` changes)")


def _check_metadata(r, http_version, model, path):
    """r (an httpx response to GET path) is 200 over http_version with the
    exact JSON body expected for path."""
    assert r.http_version == http_version
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == expected_bodies(model)[path]


@pytest.mark.parametrize("path", PATHS)
def test_metadata_http2(h2client, model, path):
    _check_metadata(h2client.get(path), "HTTP/2", model, path)


@pytest.mark.parametrize("path", PATHS)
def test_metadata_http1_httpx(h1client, model, path):
    r = h1client.get(path)
    _check_metadata(r, "HTTP/1.1", model, path)
    assert int(r.headers["content-length"]) == len(r.content)


def test_metadata_http1_curl(gw, model):
    exp = expected_bodies(model)
    for path in PATHS:
        code, ver, body, err = gwlib.curl("--http1.1", gw.base + path, max_time=10, timeout=20)
        assert (code, ver) == (200, "1.1"), (path, body, err)
        assert json.loads(body) == exp[path], path


def test_server_metadata(gw, h1client, h2client):
    for c, ver in ((h2client, "HTTP/2"), (h1client, "HTTP/1.1")):
        r = c.get("/v2")
        assert r.http_version == ver
        assert r.status_code == 200
        _check_server_meta(r.json())


@pytest.mark.parametrize("path,msg", NOT_FOUND)
def test_not_found(h1client, h2client, path, msg):
    for c in (h2client, h1client):
        r = c.get(path)
        assert r.status_code == 404, (path, r.text)
        assert r.headers["content-type"].startswith("application/json")
        err = r.json()["error"]
        assert msg in err, (path, err)


def test_metrics_exposes_backend_and_protocols(gw, h1client, h2client):
    h1client.get("/v2/health/live")
    h2client.get("/v2/health/live")
    r = httpx.get(f"http://127.0.0.1:{gw.metrics_port}/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    ms = gwlib.parse_metrics(r.text)
    assert gwlib.metric(ms, "infergw_backend_up", backend="cpu0") == 1
    assert gwlib.metric(ms, "infergw_http_responses_total", proto="h2", code="200") >= 1
    assert gwlib.metric(ms, "infergw_http_responses_total", proto="http/1.1", code="200") >= 1
    names = {k[0] for k in ms}
    assert {"infergw_backend_batches_total", "infergw_backend_rows_total"} <= names, names


def test_port_zero_picks_a_free_port(gw_factory):
    """`--port 0` must bind an ephemeral port and log it as listen=ADDR:PORT."""
    import re
    import time
    g = gw_factory("port0", start=False)
    g._spawn(0)
    deadline = time.monotonic() + 15
    m = None
    while time.monotonic() < deadline and g.alive():
        m = re.search(r"listen=127\.0\.0\.1:(\d+)\b", g.log())
        if m:
            break
        time.sleep(0.05)
    assert m is not None, ("--port 0: no listen=127.0.0.1:PORT log line; the gateway "
                           f"exited {g.proc.poll()}; stderr:\n{g.log()[-2000:]}")
    port = int(m.group(1))
    assert port != 0
    for _ in range(100):
        try:
            st, _, body = gwlib.h1_request(port, "GET", "/v2/health/ready", timeout=2)
            break
        except OSError:
            time.sleep(0.05)
    assert (st, json.loads(body)) == (200, {"ready": True})


def test_head_has_headers_but_no_body(h1client, h2client):
    """HEAD answers like GET (status, content-length) without a body, on both protocols."""
    for client in (h1client, h2client):
        r = client.head("/v2/health/live")
        assert r.status_code == 200
        assert r.headers["content-length"] == str(len('{"live":true}'))
        assert r.content == b""
        # and the connection still serves
        assert client.get("/v2/health/live").json() == {"live": True}
