"""admin.token_file: a bearer token for what changes or shows the
configuration (the /admin/ endpoints and the repository API on the admin
listener; repository load/unload on the inference port with
admin.repository_on_main), while /metrics and the health endpoints stay
open for Prometheus and the kubelet.  The token is read at every load, so a
reload takes a rotated one and a file that holds none fails the reload,
keeping the old.  docs/admin.md, docs/security.md.

Each test runs its own gateway on 127.0.0.1 (stopped by PID)."""
import json
import socket
import subprocess
import time

import gwlib
import slowmodel as sm
from gwlib import check_infer_response

TOKEN = "3f1b6c0e9a7d4e2b8c5a1f0d6e3b9c7a"
NEED = 'this endpoint needs "Authorization: Bearer <token>", the token in the file ' \
       'admin.token_file names'
WRONG = "authorization: wrong bearer token (not the one in admin.token_file)"
SCHEME = 'authorization: expected the Bearer scheme ("Bearer <token>")'
CHALLENGE = ("www-authenticate", 'Bearer realm="infergw-admin"')
UNLOAD = "/v2/repository/models/digits/unload"
INDEX = "/v2/repository/index"


def token_config(token_file, *, on_main=False, address="127.0.0.1"):
    text = sm.config_text([sm.model_yaml("digits", sm.DIGITS_DIR, max_batch=32)],
                          [sm.backend_yaml("cpu0", ["digits"])])
    extra = f"  token_file: {token_file}\n" if token_file else ""
    if on_main:
        extra += "  repository_on_main: true\n"
    text = text.replace("admin:\n  address: 127.0.0.1\n",
                        f"admin:\n  address: {address}\n{extra}")
    assert extra in text
    return text


def start(start_gw, tmp_path, name, token=TOKEN, **kw):
    tf = tmp_path / f"{name}.token"
    tf.write_text(token + "\n")
    g = start_gw(name, token_config(tf, **kw))
    g.admin_token = token
    return g, tf


def ask(port, method, path, auth=None, body=None):
    hdrs = [gwlib.JSON_CT] if body is not None else []
    if auth is not None:
        hdrs.append(("authorization", auth))
    return gwlib.h1_request(port, method, path, body, hdrs, timeout=30)


def refusals(g):
    return sum(v for (name, labels), v in g.metrics().items()
               if name == "infergw_http_responses_total" and ("code", "401") in labels)


def reloads(g, result="success"):
    return sum(v for (name, labels), v in g.metrics().items()
               if name == "infergw_config_reload_total" and ("result", result) in labels)


def wait_reloads(g, n, result="success", timeout=20.0):
    deadline = time.monotonic() + timeout
    while reloads(g, result) < n:
        assert time.monotonic() < deadline, f"no {result} reload #{n}: {g.log()[-2000:]}"
        time.sleep(0.02)


GUARDED = [("GET", "/admin/config", None), ("GET", "/admin/backends", None),
           ("POST", "/admin/reload", b""), ("POST", "/admin/backends/cpu0/drain", b""),
           ("POST", INDEX, b""), ("POST", UNLOAD, b"{}"), ("GET", "/no/such/route", None)]


def test_token_guards_admin_not_metrics(start_gw, tmp_path, model, heldout):
    """Every admin route but /metrics and health answers 401 (the message
    naming what is missing or wrong, WWW-Authenticate: Bearer) without the
    token, with a wrong one, a prefix or an extension of it, or another
    scheme; nothing it asked for happens; each refusal counts under code
    401, the log has one line however many come, and the token itself
    shows nowhere (neither /admin/config nor the log)."""
    x = heldout[0][:3]
    g, tf = start(start_gw, tmp_path, "guard")
    assert "auth=bearer" in g.log(), g.log()[-2000:]
    before = refusals(g)
    for path in ("/metrics", "/v2/health/live", "/v2/health/ready"):
        st, _, body = ask(g.admin_port, "GET", path)
        assert st == 200, (path, body[:200])
    n = 0
    for auth, want in ((None, NEED), ("Bearer nope", WRONG), (f"Bearer {TOKEN[:-1]}", WRONG),
                       (f"Bearer {TOKEN}0", WRONG), (f"Bearer {TOKEN.upper()}", WRONG),
                       (f"Basic {TOKEN}", SCHEME), (TOKEN, SCHEME), ("Bearer", SCHEME),
                       ("Bearer ", SCHEME)):  # the value trimmed: "Bearer"
        for method, path, body in GUARDED:
            st, h, raw = ask(g.admin_port, method, path, auth, body)
            gwlib.check_error_response((auth, path), st, h, raw, 401, [want], [CHALLENGE])
            assert json.loads(raw) == {"error": want}
            n += 1
    # over HTTP/2 too
    with gwlib.H2Client(g.admin_port) as c:
        r = c.get("/admin/config")
        assert r.status == 401 and r.json() == {"error": NEED}, r
        assert r.headers.get("www-authenticate") == CHALLENGE[1], r.headers
        n += 1
    # HTTP/1.1's status line names it
    with socket.create_connection((gwlib.HOST, g.admin_port), timeout=10) as s:
        s.sendall(b"GET /admin/config HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 401 Unauthorized\r\n"), head[:100]
    n += 1
    assert refusals(g) - before == n
    # nothing the refused requests asked for happened
    st, _, body = g.infer("digits", x)
    assert st == 200, body
    check_infer_response(body, model, x)
    cpu0 = [b for b in g.admin("GET", "/admin/backends")[2]["backends"] if b["name"] == "cpu0"]
    assert cpu0[0]["state"] == "up", cpu0
    assert "generation=2" not in g.log()
    # the token, any case of the scheme, spaces after it
    for auth in (f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER   {TOKEN}"):
        st, _, raw = ask(g.admin_port, "GET", "/admin/config", auth)
        assert st == 200, raw[:300]
        doc = json.loads(raw)
        assert doc["admin"]["token_file"] == str(tf), doc["admin"]
        assert TOKEN not in raw.decode()
    st, _, raw = ask(g.admin_port, "POST", INDEX, f"Bearer {TOKEN}", b"")
    assert st == 200 and json.loads(raw)[0]["state"] == "READY", raw
    lines = [ln for ln in g.log().splitlines() if "refused (401)" in ln]
    assert len(lines) == 1, lines
    assert "no authorization header" in lines[0] and "path=\"/admin/config\"" in lines[0], lines
    assert TOKEN not in g.log() and TOKEN[:-1] not in g.log()


def test_token_rotates_on_reload(start_gw, tmp_path):
    """A new token in the file applies at the next reload (SIGHUP or POST
    /admin/reload); while it holds two lines, either token is accepted; a
    file that no longer holds a token fails the reload,
    naming admin.token_file and why, and the token in force stays."""
    g, tf = start(start_gw, tmp_path, "rotate")
    new = "a" * 8 + "Z" * 8 + "-._~+/="  # token68's characters
    tf.write_text(new + "\r\n")
    g.sighup()
    wait_reloads(g, 1)
    st, _, raw = ask(g.admin_port, "GET", "/admin/config", f"Bearer {TOKEN}")
    assert st == 401 and json.loads(raw) == {"error": WRONG}, raw
    g.admin_token = new
    st, _, doc = g.admin("GET", "/admin/config")
    assert st == 200, doc
    # two lines while rotating: either token is accepted, a third is not
    third = "third-" + TOKEN
    tf.write_text(f"{new}\n{third}\n")
    st, _, doc = g.reload()
    assert st == 200, doc
    for tok, want in ((new, 200), (third, 200), (TOKEN, 401), (new + third, 401)):
        st, _, raw = ask(g.admin_port, "GET", "/admin/config", f"Bearer {tok}")
        assert st == want, (tok, raw)
    assert new not in g.log() and third not in g.log()

    tf.write_text("short\n")
    st, _, doc = g.reload()
    assert st == 400 and doc["result"] == "failure", doc
    assert "admin.token_file" in doc["error"] and \
        f"{tf}: holds fewer than 16 characters" in doc["error"], doc
    st, _, doc = g.admin("GET", "/admin/config")   # the new token still in force
    assert st == 200, doc
    st, _, raw = ask(g.admin_port, "GET", "/admin/config", "Bearer short")
    assert st == 401, raw


def test_token_for_load_unload_on_main(start_gw, tmp_path, model, heldout):
    """With admin.repository_on_main, load/unload on the inference port ask
    for the token too (Triton's clients pass it as a header); the index
    there stays open, as inference does."""
    x = heldout[0][:2]
    g, _ = start(start_gw, tmp_path, "main", on_main=True)
    st, h, raw = ask(g.port, "POST", UNLOAD, None, b"{}")
    gwlib.check_error_response("main", st, h, raw, 401, [NEED], [CHALLENGE])
    st, h, raw = ask(g.port, "POST", UNLOAD, "Bearer wrong-wrong-wrong-wrong", b"{}")
    gwlib.check_error_response("main", st, h, raw, 401, [WRONG], [CHALLENGE])
    st, _, body = g.infer("digits", x)
    assert st == 200, body
    check_infer_response(body, model, x)
    st, _, raw = ask(g.port, "POST", INDEX, None, b"")
    assert st == 200 and json.loads(raw)[0]["state"] == "READY", raw
    st, _, raw = ask(g.port, "POST", UNLOAD, f"Bearer {TOKEN}", b"{}")
    assert st == 200 and json.loads(raw)["result"] == "success", raw
    st, _, raw = ask(g.port, "POST", INDEX, None, b"")
    assert json.loads(raw)[0]["state"] == "UNAVAILABLE", raw


def test_off_loopback_without_token_warns(start_gw, tmp_path):
    """An admin listener off loopback without a token says so at start
    (with one, or on loopback, it does not)."""
    g = start_gw("open", token_config(None, address="0.0.0.0"))
    assert "auth=none" in g.log()
    assert "the admin listener is off loopback and admin.token_file is not set" in g.log()
    g2, _ = start(start_gw, tmp_path, "closed", address="0.0.0.0")
    assert "auth=bearer" in g2.log() and "off loopback" not in g2.log()


def check_config(path):
    return subprocess.run([str(sm.BINARY), "--check-config", str(path)], capture_output=True,
                          text=True, timeout=20)


def test_token_file_errors_name_the_key(tmp_path):
    """A token file that cannot serve is refused at load, naming the key,
    the file and why: missing, a directory, empty, too short, more than
    more than two lines or a space inside, more than 4096 bytes.  A token
    of 4096 characters and a CRLF is taken, and so are two (a rotation)."""
    cases = [("missing", None, "No such file or directory"),
             ("dir", "DIR", "not a regular file"),
             ("empty", "", "holds fewer than 16 characters"),
             ("short", "0123456789abcde\n", "holds fewer than 16 characters"),
             ("lines", "0123456789abcdef\n" * 3, "holds more than two lines"),
             ("space", "0123456789 abcdef", "not visible ASCII"),
             ("utf8", "0123456789abcdef\u00e9", "not visible ASCII"),
             ("long", "x" * 4097, "longer than 4096 bytes"),
             ("long2", "x" * 4096 + "\n" + "y" * 4097, "longer than 4096 bytes"),
             ("huge", "x" * 9000, "longer than two tokens of 4096 bytes")]
    for name, content, want in cases:
        tf = tmp_path / f"{name}.token"
        if content == "DIR":
            tf.mkdir()
        elif content is not None:
            tf.write_text(content)
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(token_config(tf))
        r = check_config(cfg)
        assert r.returncode != 0, (name, r.stdout)
        assert "admin.token_file" in r.stderr and str(tf) in r.stderr and want in r.stderr, \
            (name, r.stderr)
    cfg = tmp_path / "empty-name.yaml"
    cfg.write_text(token_config("''"))
    r = check_config(cfg)
    assert r.returncode != 0 and "admin.token_file" in r.stderr and \
        "expected a file name" in r.stderr, r.stderr
    for name, content in (("max", "x" * 4096 + "\r\n"),
                          ("max2", "x" * 4096 + "\r\n" + "y" * 4096 + "\r\n")):
        tf = tmp_path / f"{name}.token"
        tf.write_text(content)
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(token_config(tf))
        r = check_config(cfg)
        assert r.returncode == 0 and "ok:" in r.stdout, (name, r.stderr)
