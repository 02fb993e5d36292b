"""Config files past the YAML limits (issue 11, docs/config.md): a reload
of a file with millions of tiny nodes, or nested thousands deep, is refused
with the limit named, before the document is built: the gateway's peak
memory (VmHWM) barely moves, where the old parse took hundreds of MB (8
million nodes: 650 MB) and a deep file 17 s.  Bounded: two 8 MB files."""
import json

import pytest

import attacklib
import gwlib

# Peak RSS growth allowed for refusing the file (the file itself is read
# into memory once: 8 MB); sanitizer builds scale it (attacklib.RSS_SCALE).
HWM_BOUND_MIB = 48


def _hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // attacklib.RSS_SCALE
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("kind", ["nodes", "depth"])
def test_reload_of_oversized_yaml_refused_cheaply(gw_factory, kind):
    g = gw_factory("cfglim")
    base = g.config.read_text()
    if kind == "nodes":
        bulk = "\nbulk: [" + "0," * 4_000_000 + "0]\n"
        want = "more than 250000 nodes (the limit for a YAML file, see docs/config.md)"
    else:
        bulk = "\nbulk: " + "[" * 4_000_000 + "]" * 4_000_000 + "\n"
        want = "nested more than 64 levels deep (the limit for a YAML file"
    g.config.write_text(base + bulk)
    pid = g.proc.pid
    hwm0 = _hwm_kb(pid)
    st, _, raw = gwlib.h1_request(g.admin_port, "POST", "/admin/reload", b"", timeout=120)
    grown = (_hwm_kb(pid) - hwm0) / 1024
    doc = json.loads(raw)
    assert st == 400, (st, raw[:300])
    assert doc["result"] == "failure" and want in doc["error"], doc
    assert doc["error"].startswith(f"{g.config}:"), doc["error"]
    print(f"\n{kind}: peak RSS grew {grown:.1f} MiB")
    assert grown < HWM_BOUND_MIB, f"refusing the file raised peak RSS by {grown:.1f} MiB"
    # Still serving the previous configuration.
    g.config.write_text(base)
    st, _, raw = gwlib.h1_request(g.admin_port, "POST", "/admin/reload", b"", timeout=60)
    assert st == 200, raw[:300]
    attacklib.assert_alive(g)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "sparse-1g"])
def test_token_file_that_never_ends_refused(gw_factory, tmp_path, kind):
    """admin.token_file pointed at a FIFO nobody writes (a blocking read
    would hang the control thread, and with it every reload), at /dev/zero
    (an endless read) or at a 1 GiB sparse file: the reload is refused at
    once, naming the key and why, the gateway serves on, and the admin
    listener still answers without a token (the old configuration had
    none)."""
    import os
    g = gw_factory("tokfile")
    base = g.config.read_text()
    if kind == "fifo":
        path = tmp_path / "token.fifo"
        os.mkfifo(path)
        want = "not a regular file"
    elif kind == "dev-zero":
        path = "/dev/zero"
        want = "not a regular file"
    else:
        path = tmp_path / "token.sparse"
        with open(path, "wb") as f:
            f.truncate(1 << 30)
        want = "longer than two tokens of 4096 bytes"
    assert "\nadmin:\n" in base, base
    g.config.write_text(base.replace("\nadmin:\n", f"\nadmin:\n  token_file: {path}\n", 1))
    st, _, raw = gwlib.h1_request(g.admin_port, "POST", "/admin/reload", b"", timeout=20)
    doc = json.loads(raw)
    assert st == 400 and doc["result"] == "failure", (st, raw[:300])
    assert f"admin.token_file: {path}: {want}" in doc["error"], doc["error"]
    st, _, raw = gwlib.h1_request(g.admin_port, "GET", "/admin/config")
    assert st == 200 and json.loads(raw)["admin"]["token_file"] is None, raw[:300]
    attacklib.assert_alive(g)
