"""Hostile clients on the TLS listener: handshakes that stall half way,
garbage and plain text instead of a ClientHello.  The gateway must survive,
keep memory bounded, close what never completes a handshake (the idle
timeout covers the handshake), and keep serving a well-behaved TLS client
meanwhile.  Bounded in connections and seconds; 127.0.0.1 only."""
import socket
import ssl
import time

import numpy as np
import pytest

import attacklib
import gwlib
import tlslib
from conftest import Gateway

ROW = attacklib.ROW
STALLS = 200
IDLE_MS = 3000


class TlsGateway(tlslib.TlsReady, Gateway):
    pass


def tls_bystander(g, model, max_requests=500):
    """attacklib.Bystander over TLS: a full handshake per request,
    alternating HTTP/1.1 (ALPN http/1.1) and HTTP/2 (ALPN h2)."""
    return attacklib.Bystander(g, model, max_requests=max_requests,
                               tls=(g.ssl_context(alpn=("http/1.1",)),
                                    g.ssl_context(alpn=("h2",))))


def client_hello():
    """The bytes of a real ClientHello (TLS 1.2-1.3, ALPN h2), from a
    memory-BIO handshake that goes no further."""
    c = ssl.create_default_context()
    c.set_alpn_protocols(["h2"])
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = c.wrap_bio(inc, out, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = out.read()
    assert hello[0] == 0x16 and len(hello) > 100, hello[:16]  # a handshake record
    return hello


def stall_payloads():
    """What each stalled connection sends, in turn: half a ClientHello; a
    record header announcing 16 KiB that never comes; a whole ClientHello
    and then silence (the server answered and waits for the client)."""
    hello = client_hello()
    return [hello[:len(hello) // 2], b"\x16\x03\x01\x40\x00", hello]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tlslib.make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_gw(tmp_path, pki):
    tlslib.install(pki, tmp_path)
    g = TlsGateway(tmp_path, "tlsatk", listen_extra=tlslib.tls_listen(),
                   idle_timeout_ms=IDLE_MS)
    g.pki = pki
    g.start()
    yield g
    g.kill()
    assert g.proc.returncode == 0, g.log()[-3000:]


def read_to_close(socks, deadline):
    """What each socket received until the server closed it, or None when
    one was still open at deadline."""
    got = []
    for s in socks:
        data = b""
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
        except (socket.timeout, TimeoutError):
            return None
        got.append(data)
    return got


def test_stalled_handshakes(tls_gw, model):
    """200 connections stall inside the handshake (three ways): a TLS
    client keeps getting 200s with the right values meanwhile, memory stays
    bounded, and the idle timeout closes every one of them."""
    g = tls_gw
    rss0 = attacklib.rss_kb(g.proc.pid)
    payloads = stall_payloads()
    socks = []
    try:
        with tls_bystander(g, model) as by:
            for i in range(STALLS):
                s = attacklib.raw_conn(g.port, timeout=10)
                s.sendall(payloads[i % len(payloads)])
                socks.append(s)
            opened = time.monotonic()
            time.sleep(1.0)  # all stalled, well inside the idle timeout
            rss = attacklib.rss_kb(g.proc.pid)
        by.assert_served(min_requests=5)
        # Generous: an accepted TLS connection costs tens of KiB, not MiB.
        assert rss - rss0 < 64 * 1024, f"RSS grew {rss - rss0} KiB for {STALLS} stalls"
        assert read_to_close(socks, opened + IDLE_MS / 1000 + 10) is not None, \
            "a stalled handshake outlived the idle timeout"
    finally:
        for s in socks:
            s.close()
    assert g.alive()
    st, _, _ = gwlib.h1_request(g.port, "GET", "/v2/health/live", ssl_context=g.ssl_context())
    assert st == 200


@pytest.mark.parametrize("kind", ["garbage", "plaintext-http1", "h2c-preface", "bad-record"])
def test_not_tls_is_closed(tls_gw, model, kind):
    """50 connections that send something other than a ClientHello are
    closed at once (well before the idle timeout), never answered in clear
    text, and the gateway goes on serving TLS."""
    g = tls_gw
    rng = np.random.default_rng(9)
    first = {
        "garbage": lambda: bytes(rng.integers(0, 256, 1024, dtype=np.uint8)),
        "plaintext-http1": lambda: b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n",
        "h2c-preface": lambda: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        # a handshake record whose body is not a handshake message a server
        # takes first: any type but client_hello (1; a random body of type 1
        # with a plausible length is a ClientHello still arriving, which
        # only the idle timeout closes: test_stalled_handshakes), seeded
        "bad-record": lambda: (b"\x16\x03\x01\x00\x08" + bytes([int(rng.integers(2, 256))])
                               + bytes(rng.integers(0, 256, 7, dtype=np.uint8))),
    }[kind]
    socks = []
    failed0 = attacklib.metric_value(g, "infergw_connections_closed_total",
                                     reason="tls_handshake")
    try:
        with tls_bystander(g, model, max_requests=20) as by:
            for _ in range(50):
                s = attacklib.raw_conn(g.port, timeout=10)
                try:
                    s.sendall(first())
                except (ConnectionResetError, BrokenPipeError):
                    pass
                socks.append(s)
            got = read_to_close(socks, time.monotonic() + IDLE_MS / 1000 * 0.8)
            assert got is not None, f"{kind}: a connection was left open"
            time.sleep(0.3)
        # At most a TLS alert record (type 21) comes back, never HTTP.
        for data in got:
            assert not data or (data[0] == 0x15 and len(data) < 64), data[:64]
        by.assert_served(min_requests=3)
        # each counted as a failed handshake; the bystander's handshakes not
        failed = attacklib.metric_value(g, "infergw_connections_closed_total",
                                        reason="tls_handshake") - failed0
        assert failed == 50, f"{kind}: {failed} closes counted as reason=tls_handshake, not 50"
    finally:
        for s in socks:
            s.close()
    assert g.alive()
