"""A hostile client and the gateway's HPACK encoder (gateway/net/hpack.c,
the native engine's dynamic table): the client changes
SETTINGS_HEADER_TABLE_SIZE between requests, to 0, to a size that holds
one entry, back up, many times.  Every answer must still decode, with one
decoder carried across the connection as the RFC has it, to the same
status, content-type and body; a block after the table went to 0 starts
with the size update (RFC 7541 §4.2); the gateway stays up, its memory flat,
and serves a bystander meanwhile.  The nghttp2 engine (h2alt) must pass the
same."""
import random
import struct

import hpack

from attacklib import (DATA, END_HEADERS, END_STREAM, HEADERS, SETTINGS, Bystander, RawH2,
                       RssPeak, assert_alive, frame, hpack_request)

ROUNDS = 300


def test_table_size_flipping(module_gw, model):
    g = module_gw("tblsize", threads=1)
    rng = random.Random(3)
    dec = hpack.Decoder()
    dec.max_allowed_table_size = 1 << 16
    rss = RssPeak(g.proc.pid)
    with Bystander(g, model) as by, RawH2(g.port, timeout=10) as h:
        sizes = {}
        for i in range(ROUNDS):
            sid = 1 + 2 * i
            size = rng.choice([0, 0, 50, 100, 4096, 65536])
            sizes[sid] = size
            h.send(frame(SETTINGS, 0, 0, struct.pack(">HI", 1, size)) +
                   frame(HEADERS, END_HEADERS | END_STREAM, sid,
                         hpack_request("GET", "/v2/health/live")))
            # read this answer whole before the next change
            assert h.read_until(lambda f, s=sid: f[0] == DATA and f[2] == s and f[1] & END_STREAM,
                                timeout=10), "no answer on stream %d" % sid
            if i % 50 == 0:
                rss.sample()
        heads = [(f[2], f[3]) for f in h.frames if f[0] == HEADERS]
        bodies = {f[2]: f[3] for f in h.frames if f[0] == DATA}
        assert len(heads) == ROUNDS
        prev = 4096
        for sid, block in heads:
            fields = dict(dec.decode(block))
            assert fields[":status"] == "200", (sid, fields)
            assert fields["content-type"] == "application/json", (sid, fields)
            assert fields["content-length"] == "13"
            assert bodies[sid] == b'{"live":true}'
            if sizes[sid] == 0 and prev != 0:
                assert block[0] & 0xe0 == 0x20, "no size update first on stream %d" % sid
            prev = sizes[sid]
        by.wait_for(3)
        by.assert_served()
    rss.sample()
    assert rss.growth_mib < 16, rss.growth_mib
    assert_alive(g)
