"""Attacks through the admin listener (issue 9 #13, #14, #17): a config
file that takes seconds to parse must not stall inference (nor the admin
listener itself), names in repository answers are escaped whatever their
bytes, and a full admin job queue answers 503 with Retry-After.  Bounded:
a config of 14.6 MB (240,000 YAML nodes of 60 bytes: just inside the file
limits of docs/config.md, the slowest file they allow, 0.3 s to parse, 1.6 s
under ASan), at most a few hundred requests."""
import json
import os
import threading
import time

import attacklib
import gwlib

INDEX = "/v2/repository/index"


def strict_json(raw):
    def bad(tok):
        raise AssertionError(f"not JSON: {tok} in {raw[:200]!r}")
    return json.loads(raw, parse_constant=bad)


def make_config_slow(g):
    """The slowest file the YAML limits allow (attacklib.append_slow_yaml)."""
    attacklib.append_slow_yaml(g.config)


def replace_file(path, text):
    """Swap path's content by rename (a parse in progress keeps the old file)."""
    tmp = f"{path}.new"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class TimedBystander(attacklib.Bystander):
    """A Bystander that also records (start, end, status) of each request."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.spans = []

    def _one(self, i):
        t0 = time.monotonic()
        st = super()._one(i)
        self.spans.append((t0, time.monotonic(), st))
        return st

    def served_within(self, t0, t1):
        return sum(1 for a, b, st in self.spans if a >= t0 and b <= t1 and st == 200)


def admin_probe(g, stop, spans):
    """GET /v2/health/live on the admin port in a loop: (start, end, status)."""
    while not stop.is_set() and len(spans) < 2000:
        t0 = time.monotonic()
        try:
            st, _, _ = gwlib.h1_request(g.admin_port, "GET", "/v2/health/live", timeout=60)
        except OSError:
            st = None
        spans.append((t0, time.monotonic(), st))
        time.sleep(0.005)


def test_huge_config_index_and_reload_do_not_stall_inference(gw_factory, model):
    """POST /v2/repository/index used to parse the config file on event
    loop 0, which also served inference: while a slow file was parsed, no
    request on that loop was answered.  With one data loop, a bystander on
    the main port (and a health probe on the admin port) must keep being
    answered while the index, then a reload, parse the file."""
    g = gw_factory("bigidx", threads=1)
    make_config_slow(g)
    for path, want_status, want_msg in ((INDEX, 500, "cannot read the repository"),
                                        ("/admin/reload", 400, "unknown key \"bulk\"")):
        stop, admin_spans = threading.Event(), []
        probe = threading.Thread(target=admin_probe, args=(g, stop, admin_spans), daemon=True)
        with TimedBystander(g, model, max_requests=1500, pause=0.005, timeout=60) as b:
            while len(b.spans) < 2:
                time.sleep(0.01)
            probe.start()
            t0 = time.monotonic()
            st, _, raw = gwlib.h1_request(g.admin_port, "POST", path, b"", timeout=120)
            t1 = time.monotonic()
            stop.set()
            probe.join(timeout=60)
        assert st == want_status, (path, st, raw[:300])
        doc = strict_json(raw)
        assert want_msg in doc["error"], (path, doc)
        assert 'unknown key "bulk"' in doc["error"], (path, doc)
        # Served while the file was being parsed (t1 - t0 is about 0.3 s; the
        # old gateway served none on the blocked loop).
        during = b.served_within(t0, t1)
        assert during >= 5, (path, f"{during} bystander answers during {t1 - t0:.2f} s")
        admin_during = sum(1 for a, e, s in admin_spans if a >= t0 and e <= t1 and s == 200)
        assert admin_during >= 2, (path, f"{admin_during} admin answers during {t1 - t0:.2f} s")
        b.assert_served()
    attacklib.assert_alive(g)


def repo_request(port, method, path_bytes):
    """One raw HTTP/1.1 request (path as bytes): (status line, body)."""
    with attacklib.raw_conn(port) as s:
        s.sendall(method + b" " + path_bytes + b" HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        resp, _ = attacklib.read_until_eof(s, timeout=10)
    head, _, body = resp.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


def test_repository_names_are_escaped(gw_factory):
    """POST /v2/repository/models/a"b/load answered a 404 whose body was
    not JSON; control characters and bytes that are not UTF-8 likewise."""
    g = gw_factory("repo")
    st, h, raw = gwlib.h1_request(g.admin_port, "POST", '/v2/repository/models/a"b/load', b"")
    gwlib.check_error_response("quote", st, h, raw, 404,
                               ['model "a"b" is not in the model repository',
                                f"(the models of {g.config})"])
    assert b'model \\"a\\"b\\" is' in raw, raw       # escaped on the wire
    for name in (b'a\\"b', b"a\x01b", b"a\xffb", b"a\xc3", b"a%22b\x7f", b"\xed\xa0\x80"):
        for action in (b"load", b"unload"):
            line, body = repo_request(g.admin_port, b"POST",
                                      b"/v2/repository/models/" + name + b"/" + action)
            assert line.startswith(b"HTTP/1.1 4"), (name, line, body)
            doc = strict_json(body.decode("utf-8"))  # strict UTF-8, strict JSON
            assert set(doc) == {"error"}, doc
    # the backend drain route echoes its name too (a raw 0xff in a request
    # target is not HTTP: the parser answers 400 before any route sees it)
    line, body = repo_request(g.admin_port, b"POST", b"/admin/backends/x\"y/drain")
    assert line.startswith(b"HTTP/1.1 404"), line
    assert "unknown backend" in strict_json(body.decode("utf-8"))["error"]
    line, body = repo_request(g.admin_port, b"POST", b"/admin/backends/x\"\xff/drain")
    assert line.startswith(b"HTTP/1.1 400"), line
    assert "request line" in strict_json(body.decode("utf-8"))["error"]
    # nothing was unloaded by any of this
    st, _, raw = gwlib.h1_request(g.admin_port, "POST", INDEX, b"")
    assert st == 200 and strict_json(raw)[0]["state"] == "READY", raw
    attacklib.assert_alive(g)


def test_full_admin_queue_is_503_with_retry_after(gw_factory):
    """With the control thread busy on a slow reload, 70 more admin jobs:
    64 wait, the rest are answered 503 at once, with Retry-After."""
    g = gw_factory("jobs")
    small = g.config.read_text()
    make_config_slow(g)
    conns, answers = [], []
    req = gwlib.H1Conn.build("POST", "/v2/repository/models/nope/load", b"", (), g.admin_port)
    slow = attacklib.raw_conn(g.admin_port, timeout=120)
    try:
        for _ in range(70):                 # all but the last byte, ahead of time
            c = gwlib.H1Conn(g.admin_port, 120)
            c.send(req[:-1])
            conns.append(c)
        slow.sendall(b"POST /admin/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        time.sleep(0.1)                     # the reload is parsing the big file
        replace_file(g.config, small)       # the jobs behind it parse the small one
        for c in conns:                     # 70 jobs within a few ms
            c.send(req[-1:])
        for c in conns:
            answers.append(c.read_response())
    finally:
        for c in conns:
            c.close()
        slow.close()
    codes = [st for st, _, _ in answers]
    busy = [(h, body) for st, h, body in answers if st == 503]
    assert busy, f"no 503 among {sorted(set(codes))}"
    assert set(codes) <= {404, 503}, codes
    for h, body in busy:
        assert h.get("retry-after") == "1", h
        assert "too many admin jobs pending" in strict_json(body)["error"]
    attacklib.assert_alive(g)


def test_token_guessing_is_refused_and_quiet(gw_factory, model, tmp_path):
    """admin.token_file set by a reload, then 2,400 guesses (wrong tokens of
    every length 1..300, a prefix and an extension of the right one, other
    schemes) on the admin listener over HTTP/2 (pipelined, 100 streams at a
    time) and HTTP/1.1 keep-alive, while a bystander infers on the main
    port: every guess is a 401, the bystander is served, the log holds one
    refusal line per 10 s (not one per guess), none of the guessed tokens
    and not the token, and the token still works after.  An Authorization
    header past limits.max_header_bytes is a 431, not a comparison."""
    import random
    token = "".join(random.Random(7).choice("0123456789abcdef") for _ in range(64))
    (tmp_path / "admin.token").write_text(token + "\n")
    g = gw_factory("guess")
    g.config.write_text(g.config.read_text().replace(
        "\nadmin:\n", f"\nadmin:\n  token_file: {tmp_path / 'admin.token'}\n", 1))
    st, _, raw = gwlib.h1_request(g.admin_port, "POST", "/admin/reload", b"", timeout=20)
    assert st == 200, raw[:300]
    rng = random.Random(11)
    guesses = [f"Bearer {rng.randbytes(rng.randint(1, 150)).hex()}" for _ in range(2000)]
    guesses += [f"Bearer {token[:-1]}", f"Bearer {token}0", f"Basic {token}", token] * 100
    t0 = time.monotonic()
    with attacklib.Bystander(g, model, max_requests=400, pause=0.01, timeout=30) as b:
        codes = []
        for c0 in range(0, 2000, 500):
            with gwlib.H2Client(g.admin_port, timeout=60) as c:
                for i in range(c0, c0 + 500, 100):
                    sids = [c.request("GET", "/admin/config",
                                      headers=[("authorization", a)], flush=False)
                            for a in guesses[i:i + 100]]
                    c._flush()
                    codes += [r.status for r in c.wait(sids)]
        conn = gwlib.H1Conn(g.admin_port, 30.0, None)
        try:
            for a in guesses[2000:]:
                st, _, raw = conn.request("POST", "/admin/reload", b"",
                                          [("authorization", a)])
                codes.append(st)
        finally:
            conn.close()
    took = time.monotonic() - t0
    assert codes == [401] * len(guesses), sorted(set(codes))
    b.assert_served()
    log = g.log()
    lines = [ln for ln in log.splitlines() if "refused (401)" in ln]
    assert 1 <= len(lines) <= 1 + took / 10, (len(lines), took)
    assert token not in log and token[:-1] not in log
    assert not any(a.split()[-1] in log for a in guesses[:2000:97])
    st, _, raw = gwlib.h1_request(g.admin_port, "GET", "/admin/config",
                                  headers=[("authorization", "Bearer " + "x" * 20000)])
    assert st == 431, (st, raw[:200])
    st, _, raw = gwlib.h1_request(g.admin_port, "GET", "/admin/config",
                                  headers=[("authorization", f"Bearer {token}")])
    assert st == 200 and json.loads(raw)["admin"]["token_file"].endswith("admin.token"), raw[:300]
    attacklib.assert_alive(g)
