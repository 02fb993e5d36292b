"""TLS on the main listener (listen.tls): ALPN picks HTTP/2 or HTTP/1.1,
TLS 1.2 and 1.3 only, client certificates (mTLS), certificates reloaded
with the configuration, errors that name the key.  The certificates are
made here with the openssl CLI; every connection is to 127.0.0.1."""
import json
import signal
import socket
import ssl
import subprocess
import time
import warnings

import h2.config
import h2.connection
import h2.events
import numpy as np
import pytest

import gwlib
import tlslib
from conftest import BINARY, Gateway, write_config
from gwlib import INFER, JSON_CT, H1Conn, H2Client, check_infer_response, infer_body

ROWS = np.linspace(0.0, 16.0, 3 * 64).reshape(3, 64)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class TlsGateway(tlslib.TlsReady, Gateway):
    pass


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tlslib.make_pki(tmp_path_factory.mktemp("pki"))


def start_tls(tmp_path_factory, pki, name, **tls):
    d = tmp_path_factory.mktemp(name)
    tlslib.install(pki, d)
    g = TlsGateway(d, name, listen_extra=tlslib.tls_listen(**tls))
    g.pki = pki
    return g.start()


@pytest.fixture(scope="module")
def tgw(tmp_path_factory, pki):
    """TLS, no client certificates, TLS 1.2 and 1.3."""
    g = start_tls(tmp_path_factory, pki, "tls")
    yield g
    g.kill()
    assert g.proc.returncode == 0, g.log()[-3000:]


@pytest.fixture(scope="module")
def mgw(tmp_path_factory, pki):
    """mTLS (client_ca) and TLS 1.3 only."""
    g = start_tls(tmp_path_factory, pki, "mtls", client_ca=True, min_version="1.3")
    yield g
    g.kill()
    assert g.proc.returncode == 0, g.log()[-3000:]


def ctx(pki, **kw):
    return tlslib.client_context(pki, **kw)


# ------------------------------------------------------------ curl ----

def test_curl_http2_over_https(tgw, pki, model):
    """curl --http2 https:// negotiates h2 (ALPN) and gets the right values."""
    code, ver, body, err = gwlib.curl("--http2", "--cacert", str(pki.ca),
                                      "-H", "content-type: application/json",
                                      "--data-binary", infer_body(ROWS), tgw.base + INFER)
    assert (code, ver) == (200, "2"), (code, ver, body, err)
    check_infer_response(body, model, ROWS)


def test_curl_http11_over_https(tgw, pki, model):
    code, ver, body, err = gwlib.curl("--http1.1", "--cacert", str(pki.ca),
                                      "-H", "content-type: application/json",
                                      "--data-binary", infer_body(ROWS), tgw.base + INFER)
    assert (code, ver) == (200, "1.1"), (code, ver, body, err)
    check_infer_response(body, model, ROWS)


def test_curl_refuses_an_untrusted_server(tgw):
    """Without --cacert the test CA is unknown: curl fails the handshake
    (exit 60), so the tests above did verify the certificate chain."""
    out = subprocess.run(["curl", "-s", "--max-time", "10", tgw.base + "/v2/health/live"],
                         capture_output=True, timeout=30)
    assert out.returncode == 60, out


# ------------------------------------------------------ python ssl ----

def test_python_h2_alpn_concurrent_streams(tgw, pki, model):
    """python ssl + h2: ALPN h2, four inference streams on one connection."""
    with H2Client(tgw.port, ssl_context=ctx(pki, alpn=("h2",))) as c:
        assert c.sock.selected_alpn_protocol() == "h2"
        sids = [c.infer(ROWS[:i + 1]) for i in range(3)] + [c.request("GET", "/v2/health/live")]
        rs = c.wait(sids)
    for i, r in enumerate(rs[:3]):
        assert r.status == 200, r
        check_infer_response(bytes(r.body), model, ROWS[:i + 1])
    assert rs[3].status == 200 and rs[3].json() == {"live": True}


def test_python_http11_keepalive(tgw, pki, model):
    """ALPN http/1.1: several requests on one kept-alive connection."""
    with H1Conn(tgw.port, ssl_context=ctx(pki, alpn=("http/1.1",))) as c:
        assert c.sock.selected_alpn_protocol() == "http/1.1"
        for i in range(3):
            st, h, body = c.request("POST", INFER, infer_body(ROWS[:i + 1]), [JSON_CT])
            assert st == 200, body
            check_infer_response(body, model, ROWS[:i + 1])


def test_http11_pipelined_then_read_late(tgw, pki, model):
    """100 pipelined requests in one write, read only after a pause (the
    answers queue up in TLS records): every response whole and in order."""
    with H1Conn(tgw.port, ssl_context=ctx(pki, alpn=("http/1.1",))) as c:
        n = 100
        c.send(b"".join(H1Conn.build("POST", INFER, infer_body(ROWS[i % 3:i % 3 + 1], id=str(i)),
                                     [JSON_CT], tgw.port) for i in range(n)))
        time.sleep(0.5)
        for i in range(n):
            st, _, body = c.read_response()
            assert st == 200, (i, body)
            check_infer_response(body, model, ROWS[i % 3:i % 3 + 1], id=str(i))


def test_no_alpn_sniffs_the_first_bytes(tgw, pki, model):
    """A client without ALPN: HTTP/1.1, or h2 with prior knowledge."""
    c0 = ctx(pki, alpn=None)
    with H1Conn(tgw.port, ssl_context=c0) as c:
        assert c.sock.selected_alpn_protocol() is None
        st, _, body = c.request("POST", INFER, infer_body(ROWS), [JSON_CT])
        assert st == 200, body
        check_infer_response(body, model, ROWS)
    with H2Client(tgw.port, ssl_context=c0) as c:
        assert c.sock.selected_alpn_protocol() is None
        r = c.post(INFER, infer_body(ROWS))
        assert r.status == 200, r
        check_infer_response(bytes(r.body), model, ROWS)


@pytest.mark.parametrize("offer,chosen", [(("http/1.1", "h2"), "h2"),
                                          (("spdy/3.1", "http/1.1"), "http/1.1"),
                                          (("spdy/3.1",), None)],
                         ids=["h2-preferred", "http11", "unknown-only"])
def test_alpn_choice(tgw, pki, offer, chosen):
    """The server prefers h2 whatever the client's order; a client offering
    nothing the server speaks gets no ALPN (not a handshake failure) and is
    then served by its first bytes."""
    with H1Conn(tgw.port, ssl_context=ctx(pki, alpn=offer)) as c:
        assert c.sock.selected_alpn_protocol() == chosen
        if chosen != "h2":
            st, _, body = c.request("GET", "/v2/health/live")
            assert (st, body) == (200, b'{"live":true}')


def test_alpn_http11_is_never_h2(tgw, pki):
    """Negotiated http/1.1, then the h2 preface: answered as HTTP/1.1 (an
    error status line), never with HTTP/2 frames."""
    with tlslib.connect(tgw.port, ctx(pki, alpn=("http/1.1",))) as s:
        s.sendall(PREFACE)
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionError, ssl.SSLError):
            pass
    assert data.startswith(b"HTTP/1.1 4") or data.startswith(b"HTTP/1.1 5"), data[:80]


def read_h2_events(sock, conn, until, timeout=5.0):
    """Feed what sock receives to the python-h2 connection until an event of
    type until arrives (or EOF); every event seen, in order."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        if not data:
            return seen
        evs = conn.receive_data(data)
        seen += evs
        sock.sendall(conn.data_to_send())
        if any(isinstance(e, until) for e in evs):
            return seen
    raise AssertionError(f"no {until.__name__} within {timeout}s; saw {seen}")


def read_to_close(s):
    """Everything s delivers until the server closes it (5 s at most)."""
    raw = b""
    s.settimeout(5)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass
    return raw


def assert_goaway_protocol_error(raw):
    """raw is HTTP/2 frames ending in GOAWAY(PROTOCOL_ERROR), no HTTP/1.1 answer."""
    assert b"HTTP/1.1" not in raw, raw[:100]
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    evs = conn.receive_data(raw)
    goaway = [e for e in evs if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaway and goaway[0].error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR, evs


@pytest.mark.parametrize("first", [b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n",
                                   b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"],
                         ids=["http1-request", "near-preface"])
def test_alpn_h2_bad_preface_gets_goaway(tgw, pki, first):
    """Negotiated h2, then not the client preface: SETTINGS and
    GOAWAY(PROTOCOL_ERROR) (RFC 9113 3.4), never an HTTP/1.1 answer; then
    the server closes."""
    with tlslib.connect(tgw.port, ctx(pki, alpn=("h2",))) as s:
        assert s.selected_alpn_protocol() == "h2"
        s.sendall(first)
        raw = read_to_close(s)
    assert_goaway_protocol_error(raw)


@pytest.mark.parametrize("transport", ["tls-no-alpn", "h2c"])
def test_wrong_preface_after_pri_gets_goaway(request, pki, transport):
    """No ALPN (TLS without it, or plain h2c): a connection that starts
    "PRI * HTTP/2.0" but whose preface is wrong is HTTP/2 gone wrong, not
    an HTTP/1.1 request: SETTINGS and GOAWAY(PROTOCOL_ERROR), then close."""
    if transport == "h2c":
        g = request.getfixturevalue("gw")
        s = socket.create_connection((gwlib.HOST, g.port), timeout=5)
    else:
        g = request.getfixturevalue("tgw")
        s = tlslib.connect(g.port, ctx(pki, alpn=None))
    with s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
        raw = read_to_close(s)
    assert_goaway_protocol_error(raw)


def test_h2_conformance_over_tls(tgw, pki):
    """A few RFC 9113 points over TLS: the server's SETTINGS come first, it
    acknowledges ours (6.5.3), answers PING with an ACK carrying the same
    opaque data (6.7), and serves a request on the same connection."""
    with tlslib.connect(tgw.port, ctx(pki, alpn=("h2",))) as s:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.update_settings({h2.settings.SettingCodes.MAX_FRAME_SIZE: 32768})
        s.sendall(conn.data_to_send())
        evs = read_h2_events(s, conn, h2.events.SettingsAcknowledged)
        kinds = [type(e) for e in evs]
        assert kinds[0] is h2.events.RemoteSettingsChanged, kinds
        assert h2.events.SettingsAcknowledged in kinds, kinds
        conn.ping(b"infergw!")
        s.sendall(conn.data_to_send())
        evs = read_h2_events(s, conn, h2.events.PingAckReceived)
        ack = [e for e in evs if isinstance(e, h2.events.PingAckReceived)]
        assert ack and ack[0].ping_data == b"infergw!", evs
        conn.send_headers(1, [(":method", "GET"), (":scheme", "https"),
                              (":authority", "127.0.0.1"), (":path", "/v2/health/live")],
                          end_stream=True)
        s.sendall(conn.data_to_send())
        evs = read_h2_events(s, conn, h2.events.StreamEnded)
        resp = [e for e in evs if isinstance(e, h2.events.ResponseReceived)]
        data = b"".join(e.data for e in evs if isinstance(e, h2.events.DataReceived))
        assert resp and dict(resp[0].headers)[b":status"] == b"200", evs
        assert json.loads(data) == {"live": True}


# ------------------------------------------------------------ versions ----

def test_tls13_and_tls12_handshake(tgw, pki):
    for ver, name in ((ssl.TLSVersion.TLSv1_3, "TLSv1.3"), (ssl.TLSVersion.TLSv1_2, "TLSv1.2")):
        with tlslib.connect(tgw.port, ctx(pki, minimum=ver, maximum=ver)) as s:
            assert s.version() == name
            assert s.selected_alpn_protocol() == "h2"
            if name == "TLSv1.2":  # forward secrecy and AEAD only
                cipher = s.cipher()[0]
                assert cipher.startswith("ECDHE-") and ("GCM" in cipher or "CHACHA" in cipher), \
                    cipher
        st, _, body = gwlib.h1_request(tgw.port, "GET", "/v2/health/live",
                                       ssl_context=ctx(pki, alpn=("http/1.1",), minimum=ver,
                                                       maximum=ver))
        assert st == 200, body


def old_tls_context(pki, version):
    """A client that offers only version (allowed by SECLEVEL=0 on this side,
    so a failure comes from the server)."""
    c = ctx(pki)
    c.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        c.minimum_version = version
        c.maximum_version = version
    return c


def test_tls11_refused(tgw, pki):
    with pytest.raises(ssl.SSLError) as e:
        tlslib.connect(tgw.port, old_tls_context(pki, ssl.TLSVersion.TLSv1_1)).close()
    assert "PROTOCOL_VERSION" in str(e.value).upper(), e.value  # the server's alert
    assert tgw.alive()


def test_min_version_13_refuses_tls12(mgw, pki):
    with pytest.raises(ssl.SSLError) as e:
        tlslib.connect(mgw.port, ctx(pki, cert="client", maximum=ssl.TLSVersion.TLSv1_2))
    assert "PROTOCOL_VERSION" in str(e.value).upper(), e.value


# ---------------------------------------------------------------- mTLS ----

def mtls_refusal(port, c):
    """Handshake with context c (TLS 1.3: it completes on the client's
    side), then read: the server's alert, as the SSLError it raises."""
    with tlslib.connect(port, c) as s:
        with pytest.raises(ssl.SSLError) as e:
            s.recv(1)
    return str(e.value).upper()


def test_mtls_requires_a_client_certificate(mgw, pki):
    assert "CERTIFICATE_REQUIRED" in mtls_refusal(mgw.port, ctx(pki))
    assert mgw.alive()


def test_mtls_rejects_a_certificate_from_another_ca(mgw, pki):
    assert "UNKNOWN_CA" in mtls_refusal(mgw.port, ctx(pki, cert="rogue_client"))


def test_mtls_with_a_client_certificate(mgw, pki, model):
    st, _, _ = gwlib.h1_request(mgw.port, "GET", "/v2/health/live",
                                ssl_context=ctx(pki, alpn=("http/1.1",), cert="client"))
    assert st == 200
    with H2Client(mgw.port, ssl_context=ctx(pki, alpn=("h2",), cert="client")) as c:
        assert c.sock.version() == "TLSv1.3"
        r = c.post(INFER, infer_body(ROWS))
    assert r.status == 200, r
    check_infer_response(bytes(r.body), model, ROWS)


# -------------------------------------------------------- the listener ----

@pytest.mark.parametrize("first", [b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n", PREFACE],
                         ids=["http1", "h2c"])
def test_plaintext_client_gets_a_closed_connection(tgw, first):
    """Plain HTTP/1.1 or h2c on the TLS port: closed, never answered in
    clear text; the gateway goes on serving."""
    with socket.create_connection((gwlib.HOST, tgw.port), timeout=5) as s:
        s.sendall(first)
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    assert b"HTTP/" not in data and b"live" not in data, data
    assert len(data) < 64, data  # at most a TLS alert
    assert tgw.alive()
    st, _, _ = gwlib.h1_request(tgw.port, "GET", "/v2/health/live",
                                ssl_context=tgw.ssl_context())
    assert st == 200


def test_admin_listener_stays_plain_and_shows_tls(tgw):
    st, _, body = gwlib.h1_request(tgw.admin_port, "GET", "/admin/config")
    assert st == 200, body
    tls = json.loads(body)["listen"]["tls"]
    assert tls == {"certificate": str(tgw.workdir / "tls" / "server.pem"),
                   "key": str(tgw.workdir / "tls" / "server.key"),
                   "client_ca": None, "min_version": "1.2"}, tls


# -------------------------------------------------------------- reload ----

def reload(g):
    st, _, body = gwlib.h1_request(g.admin_port, "POST", "/admin/reload", timeout=30)
    return st, json.loads(body)


def new_conn_serial(g, pki):
    with tlslib.connect(g.port, ctx(pki)) as s:
        return tlslib.peer_serial(s)


def test_reload_swaps_the_certificate(tmp_path_factory, pki, model):
    """A reload with a new certificate: new connections get it (here a
    chain through an intermediate: the server sends the chain), an open
    connection keeps its own and keeps working; a broken certificate or
    key is refused with a message naming listen.tls and the old one keeps
    serving; SIGHUP reloads too; turning TLS off takes a restart."""
    g = start_tls(tmp_path_factory, pki, "reload")
    try:
        old = H2Client(g.port, ssl_context=ctx(pki, alpn=("h2",)))
        assert tlslib.peer_serial(old.sock) == 1001
        assert old.post(INFER, infer_body(ROWS)).status == 200

        tlslib.install(pki, g.workdir, cert="server2-chain", key="server2")
        st, out = reload(g)
        assert st == 200 and out["result"] == "success", out
        assert out["restart_required"] is None, out
        assert new_conn_serial(g, pki) == 1002
        r = old.post(INFER, infer_body(ROWS))  # the open connection goes on
        assert r.status == 200, r
        check_infer_response(bytes(r.body), model, ROWS)
        assert tlslib.peer_serial(old.sock) == 1001

        # Broken files: refused, naming the key and the file; still serving 1002.
        cert = g.workdir / "tls" / "server.pem"
        good = cert.read_bytes()
        cert.write_text("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
        st, out = reload(g)
        assert st == 400 and out["result"] == "failure", out
        line, col = line_col(g.config, "certificate: |tls/server.pem")
        assert out["error"].startswith(
            f"{g.config}:{line}:{col}: listen.tls.certificate: no usable PEM certificate in "
            f"{cert}"), out
        cert.write_bytes(good)
        (g.workdir / "tls" / "server.key").write_bytes(pki.server1_key.read_bytes())
        st, out = reload(g)
        assert st == 400, out
        assert "listen.tls.key: does not match listen.tls.certificate" in out["error"], out
        assert new_conn_serial(g, pki) == 1002
        assert old.post(INFER, infer_body(ROWS)).status == 200

        # SIGHUP: back to server1.
        tlslib.install(pki, g.workdir, cert="server1", key="server1")
        mark = g.log().count('msg="configuration reloaded"')
        g.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while g.log().count('msg="configuration reloaded"') == mark:
            assert time.monotonic() < deadline, g.log()[-2000:]
            time.sleep(0.05)
        assert new_conn_serial(g, pki) == 1001

        # No listen.tls: a restart is required; TLS (server1) goes on.
        write_config(g.config, admin_port=g.admin_port)
        st, out = reload(g)
        assert st == 200, out
        assert "listen.tls: on -> off" in out["restart_required"], out
        assert new_conn_serial(g, pki) == 1001
        old.close()
    finally:
        g.kill()
    assert g.proc.returncode == 0, g.log()[-3000:]


def test_sigterm_sends_goaway_over_tls(tmp_path_factory, pki, model):
    """SIGTERM with an idle h2 connection and a kept-alive HTTP/1.1 one
    over TLS: the h2 client gets GOAWAY(NO_ERROR) through TLS, the HTTP/1.1
    one a closed connection, and the process exits 0."""
    g = start_tls(tmp_path_factory, pki, "term")
    try:
        c2 = H2Client(g.port, ssl_context=ctx(pki, alpn=("h2",)))
        assert c2.post(INFER, infer_body(ROWS)).status == 200
        c1 = H1Conn(g.port, ssl_context=ctx(pki, alpn=("http/1.1",)))
        assert c1.request("GET", "/v2/health/live")[0] == 200
        g.terminate()
        c2.wait_eof(timeout=10)
        assert c2.goaway is not None and c2.goaway.error_code == 0, c2.goaway
        assert c1.at_eof(timeout=10)
        c1.close()
        c2.close()
        assert g.wait(timeout=15) == 0, g.log()[-2000:]
    finally:
        g.kill()


def test_reload_cannot_turn_tls_on(tmp_path_factory, pki):
    """Started plain: adding listen.tls is validated, reported as
    restart_required, and the listener stays plain."""
    d = tmp_path_factory.mktemp("plain")
    tlslib.install(pki, d)
    g = Gateway(d, "plain").start()
    try:
        write_config(g.config, admin_port=g.admin_port, listen_extra=tlslib.tls_listen())
        st, out = reload(g)
        assert st == 200, out
        assert "listen.tls: off -> on" in out["restart_required"], out
        st, _, _ = gwlib.h1_request(g.port, "GET", "/v2/health/live")
        assert st == 200
        (d / "tls" / "server.key").write_text("not a key\n")
        st, out = reload(g)
        assert st == 400 and "listen.tls.key: no usable PEM private key" in out["error"], out
    finally:
        g.kill()


# -------------------------------------------------------- config errors ----

def check_config(path):
    out = subprocess.run([str(BINARY), "--check-config", str(path)], capture_output=True,
                         timeout=60)
    return out.returncode, out.stderr.decode().strip()


def line_col(path, at):
    """1-based line and column of the "|" in at, a piece of one line of the
    file with "|" where an error should point."""
    text = at.replace("|", "")
    for i, line in enumerate(path.read_text().splitlines()):
        if text in line:
            return i + 1, line.index(text) + at.index("|") + 1
    raise AssertionError(f"{text!r} not in {path}")


@pytest.mark.parametrize("extra,at,message", [
    ("  tls:\n    certificate: tls/server.pem\n    key: tls/missing.key\n",
     "key: |tls/missing.key",
     "listen.tls.key: cannot read {d}/tls/missing.key: No such file or directory"),
    ("  tls:\n    certificate: /nonexistent/cert.pem\n    key: tls/server.key\n",
     "|/nonexistent/cert.pem",
     "listen.tls.certificate: cannot read /nonexistent/cert.pem: No such file or directory"),
    ("  tls:\n    certificate: tls/server.key\n    key: tls/server.key\n",
     "certificate: |tls/server.key",
     "listen.tls.certificate: no usable PEM certificate in {d}/tls/server.key"),
    ("  tls:\n    certificate: tls/server.pem\n    key: tls/other.key\n",
     "key: |tls/other.key",
     "listen.tls.key: does not match listen.tls.certificate ({d}/tls/server.pem)"),
    ("  tls:\n    certificate: tls/server.pem\n    key: tls/server.key\n"
     "    client_ca: tls/server.key\n",
     "client_ca: |tls/server.key",
     "listen.tls.client_ca: no usable PEM CA certificate in {d}/tls/server.key"),
    ("  tls:\n    certificate: tls/server.pem\n    key: tls/server.key\n"
     "    min_version: \"1.1\"\n",
     "min_version: |\"1.1\"", 'listen.tls.min_version: expected "1.2" or "1.3", got "1.1"'),
    ("  tls:\n    key: tls/server.key\n",
     "|key: tls/server.key", 'listen.tls: missing key "certificate" (a PEM file)'),
    ("  tls:\n    certificate: tls/server.pem\n    key: tls/server.key\n    ciphers: x\n",
     "|ciphers", 'listen.tls: unknown key "ciphers"'),
], ids=["missing-key-file", "missing-cert-file", "cert-not-pem", "key-mismatch",
        "client-ca-not-pem", "min-version", "no-certificate", "unknown-key"])
def test_config_errors_name_file_line_key(tmp_path, pki, extra, at, message):
    tlslib.install(pki, tmp_path)
    (tmp_path / "tls" / "other.key").write_bytes(pki.client_key.read_bytes())
    cfg = write_config(tmp_path / "gw.yaml", listen_extra=extra)
    rc, err = check_config(cfg)
    assert rc == 1, err
    line, col = line_col(cfg, at)
    assert err.startswith(f"{cfg}:{line}:{col}: "), (err, line, col)
    assert message.format(d=tmp_path) in err, err


def test_example_config_as_documented(tmp_path):
    """config/examples/tls.yaml with the certificate its comment makes (the
    openssl command is run as written there) passes --check-config."""
    example = gwlib.REPO / "config" / "examples" / "tls.yaml"
    text = example.read_text()
    lines = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("#")]
    start = next(i for i, ln in enumerate(lines) if ln.startswith("openssl req"))
    cmd = ""
    for ln in lines[start:]:
        cmd += ln.rstrip("\\") + " "
        if not ln.endswith("\\"):
            break
    (tmp_path / "config" / "examples" / "tls").mkdir(parents=True)
    (tmp_path / "config" / "models").mkdir()
    (tmp_path / "config" / "models" / "digits").symlink_to(gwlib.MODEL_DIR)
    (tmp_path / "config" / "examples" / "tls.yaml").write_text(text)
    out = subprocess.run(cmd, shell=True, cwd=tmp_path, capture_output=True, timeout=60)
    assert out.returncode == 0, (cmd, out.stderr)
    rc, err = check_config(tmp_path / "config" / "examples" / "tls.yaml")
    assert rc == 0, err


def test_encrypted_key_is_refused_not_prompted(tmp_path, pki):
    """A passphrase-protected key is an error (no prompt, even with a
    terminal): infergw never reads passphrases."""
    t = tlslib.install(pki, tmp_path)
    out = subprocess.run(["openssl", "pkey", "-in", str(t / "server.key"), "-aes256",
                          "-passout", "pass:secret", "-out", str(t / "enc.key")],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    (t / "enc.key").replace(t / "server.key")
    assert b"ENCRYPTED" in (t / "server.key").read_bytes()
    cfg = write_config(tmp_path / "gw.yaml", listen_extra=tlslib.tls_listen())
    rc, err = check_config(cfg)
    assert rc == 1, err
    line, col = line_col(cfg, "key: |tls/server.key")
    assert err.startswith(f"{cfg}:{line}:{col}: listen.tls.key: no usable PEM private key "
                          f"(unencrypted) in {t / 'server.key'}"), err


# ------------------------------------------------------------ admin.tls ----

class AdminTlsGateway(TlsGateway):
    """admin.tls: the admin listener speaks TLS too; metrics come over it."""

    def metrics(self, via="h1"):
        st, _, body = gwlib.h1_request(self.admin_port, "GET", "/metrics",
                                       ssl_context=self.ssl_context())
        assert st == 200, body
        return gwlib.parse_metrics(body.decode())


def test_admin_tls_with_token(tmp_path, pki):
    """admin.tls: the admin listener serves the main listener's certificate
    (ALPN h2 and http/1.1), so the bearer token of admin.token_file is not
    sent in the clear; plain HTTP there gets a closed connection, no
    answer.  /metrics stays open (over TLS); turning it off is a restart
    (restart_required names admin.tls); admin.tls without listen.tls is
    refused at load, naming the key."""
    token = "5f4e3d2c1b0a99887766554433221100"
    tlslib.install(pki, tmp_path)
    (tmp_path / "admin.token").write_text(token + "\n")
    g = AdminTlsGateway(tmp_path, "admintls", listen_extra=tlslib.tls_listen(),
                        admin_extra="  tls: true\n  token_file: admin.token\n")
    g.pki = pki
    g.start()
    try:
        assert "auth=bearer tls=on" in g.log(), g.log()[-2000:]
        auth = [("authorization", f"Bearer {token}")]
        st, _, body = gwlib.h1_request(g.admin_port, "GET", "/admin/config", headers=auth,
                                       ssl_context=g.ssl_context())
        assert st == 200, body
        doc = json.loads(body)
        assert doc["admin"]["tls"] is True and doc["admin"]["token_file"].endswith("admin.token")
        with H2Client(g.admin_port, ssl_context=ctx(pki, alpn=("h2",))) as c:
            r = c.request("GET", "/admin/backends", headers=auth)
            (r,) = c.wait([r])
            assert r.status == 200 and r.json()["backends"][0]["name"] == "cpu0", r
            r = c.get("/admin/backends")
            assert r.status == 401, r
        assert ("infergw_http_responses_total",
                frozenset({("proto", "h2"), ("code", "401")})) in g.metrics()
        with socket.create_connection((gwlib.HOST, g.admin_port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            try:
                while chunk := s.recv(4096):
                    data += chunk
            except ConnectionResetError:
                pass
        assert b"HTTP/" not in data and len(data) < 64, data
        # off by a reload: a restart's business
        g.config.write_text(g.config.read_text().replace("  tls: true\n", "  tls: false\n"))
        st, _, body = gwlib.h1_request(g.admin_port, "POST", "/admin/reload", b"",
                                       headers=auth, ssl_context=g.ssl_context(), timeout=30)
        out = json.loads(body)
        assert st == 200 and "admin.tls: on -> off" in (out["restart_required"] or ""), out
        st, _, _ = gwlib.h1_request(g.admin_port, "GET", "/v2/health/live",
                                    ssl_context=g.ssl_context())
        assert st == 200
    finally:
        g.kill()
    assert g.proc.returncode == 0, g.log()[-3000:]
    plain = tmp_path / "plain.yaml"
    write_config(plain, admin_port=gwlib.free_port(), admin_extra="  tls: true\n")
    r = subprocess.run([str(BINARY), "--check-config", str(plain)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0 and "admin.tls: needs listen.tls" in r.stderr, r.stderr
