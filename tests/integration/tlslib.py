"""TLS helpers for the integration and attack suites: a throw-away PKI made
with the openssl CLI, client contexts, and a readiness check over TLS for
conftest.Gateway (mix TlsReady in before Gateway).  Only 127.0.0.1 is ever
contacted."""
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from types import SimpleNamespace

import gwlib

HOST = gwlib.HOST


def _openssl(cwd, *args):
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=60)
    assert out.returncode == 0, f"openssl {' '.join(args)}: {out.stderr.decode()}"


def _key(d, name):
    _openssl(d, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", f"{name}.key")


def _root(d, name, cn):
    _key(d, name)
    _openssl(d, "req", "-x509", "-new", "-key", f"{name}.key", "-out", f"{name}.pem",
             "-days", "2", "-subj", f"/CN={cn}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def _signed(d, name, cn, ca, serial, ext):
    """name.pem/name.key signed by ca (a name in d) with the extensions ext."""
    _key(d, name)
    _openssl(d, "req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={cn}")
    (Path(d) / f"{name}.ext").write_text("\n".join(ext) + "\n")
    _openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
             f"{ca}.key", "-set_serial", str(serial), "-days", "2", "-extfile",
             f"{name}.ext", "-out", f"{name}.pem")


SERVER_EXT = ["subjectAltName=IP:127.0.0.1", "extendedKeyUsage=serverAuth",
              "basicConstraints=CA:FALSE"]
CLIENT_EXT = ["extendedKeyUsage=clientAuth", "basicConstraints=CA:FALSE"]


def make_pki(d):
    """In directory d: ca (root), inter (an intermediate CA under ca),
    server1 (serial 1001, signed by ca), server2 (serial 1002, signed by
    inter; server2-chain.pem holds it and inter), client (signed by ca),
    rogue-client (signed by rogue, another root).  Returns the paths."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    _root(d, "ca", "infergw test CA")
    _root(d, "rogue", "infergw rogue CA")
    _signed(d, "inter", "infergw test intermediate", "ca", 900,
            ["basicConstraints=critical,CA:TRUE",
             "keyUsage=critical,keyCertSign,cRLSign"])
    _signed(d, "server1", "infergw test server 1", "ca", 1001, SERVER_EXT)
    _signed(d, "server2", "infergw test server 2", "inter", 1002, SERVER_EXT)
    (d / "server2-chain.pem").write_bytes((d / "server2.pem").read_bytes() +
                                          (d / "inter.pem").read_bytes())
    _signed(d, "client", "infergw test client", "ca", 2001, CLIENT_EXT)
    _signed(d, "rogue-client", "infergw rogue client", "rogue", 2002, CLIENT_EXT)
    return SimpleNamespace(dir=d, ca=d / "ca.pem", server1=d / "server1.pem",
                           server1_key=d / "server1.key", server2_chain=d / "server2-chain.pem",
                           server2_key=d / "server2.key", client=d / "client.pem",
                           client_key=d / "client.key", rogue_client=d / "rogue-client.pem",
                           rogue_client_key=d / "rogue-client.key")


def install(pki, workdir, cert="server1", key="server1"):
    """Copy a server certificate and key to WORKDIR/tls/server.pem and
    server.key (what tls_listen names, relative to the config file), plus
    ca.pem for client_ca."""
    t = Path(workdir) / "tls"
    t.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pki.dir / f"{cert}.pem", t / "server.pem.new")
    shutil.copyfile(pki.dir / f"{key}.key", t / "server.key.new")
    shutil.copyfile(pki.ca, t / "ca.pem")
    (t / "server.pem.new").replace(t / "server.pem")
    (t / "server.key.new").replace(t / "server.key")
    return t


def tls_listen(client_ca=False, min_version=None):
    """conftest.write_config listen_extra: TLS with the files install()
    puts beside the config (relative paths)."""
    text = "  tls:\n    certificate: tls/server.pem\n    key: tls/server.key\n"
    if client_ca:
        text += "    client_ca: tls/ca.pem\n"
    if min_version:
        text += f'    min_version: "{min_version}"\n'
    return text


def client_context(pki, alpn=("h2", "http/1.1"), cert=None, minimum=None, maximum=None):
    """A verifying client context trusting pki.ca; cert: "client" or
    "rogue_client" to present that certificate."""
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if cert:
        ctx.load_cert_chain(str(getattr(pki, cert)), str(getattr(pki, cert + "_key")))
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    return ctx


def connect(port, ctx, timeout=10.0):
    """A TLS socket to 127.0.0.1:port, handshake done."""
    raw = socket.create_connection((HOST, port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=HOST)
    except BaseException:
        raw.close()
        raise


def peer_serial(sock):
    """The serial number of the certificate the server presented (int)."""
    return int(sock.getpeercert()["serialNumber"], 16)


class TlsReady:
    """Mixin for conftest.Gateway: ready when GET /v2/health/ready answers
    200 over TLS (with a client certificate, for mTLS gateways).  Set
    .pki before start()."""

    pki = None

    def ssl_context(self, **kw):
        """A client context for this gateway: ALPN http/1.1 and the client
        certificate unless kw says otherwise."""
        kw.setdefault("cert", "client")
        kw.setdefault("alpn", ("http/1.1",))
        return client_context(self.pki, **kw)

    def _ready_error(self, port):
        return gwlib.ready_error(port, ssl_context=self.ssl_context())

    @property
    def base(self):
        return f"https://{HOST}:{self.port}"
