"""HTTP/2 responses larger than limits.output_buffer_bytes, made off the read
path (a worker's answer), to a client whose flow-control window is wide
(curl, h2load, most real clients): h2_send stops queueing at the cap and the
rest stays in nghttp2 until the output drains.  The write callback must pull
it then; before it did, such a response stalled at the cap for good (found
with mlp-large's 64-row answers, 256 KiB + 160 B, by bench/int8.sh)."""
import h2.settings
import numpy as np

from gwlib import INFER, H2Client, infer_body

WIDE = 1 << 30


def test_responses_over_the_output_cap_complete(gw_factory, heldout):
    g = gw_factory("h2out", limits={"output_buffer_bytes": 16384})
    x, _ = heldout
    rows = np.asarray(x[:64])
    with H2Client(g.port, timeout=15) as c:
        # open the windows wide, as curl and h2load do: nghttp2 then hands
        # over whole responses at once and only the output cap holds them
        c.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WIDE - 1})
        c.conn.increment_flow_control_window(WIDE - 1 - 65535)
        c._flush()
        sids = [c.request("POST", INFER, infer_body(rows, id=str(i)),
                          [("content-type", "application/json")]) for i in range(12)]
        rs = c.wait(sids, timeout=15)
    total = 0
    for i, r in enumerate(rs):
        assert r.status == 200, (i, r)
        doc = r.json()
        assert doc["id"] == str(i) and doc["outputs"][0]["shape"] == [64, 10], doc
        total += len(r.body)
    assert total > 4 * 16384, total     # the cap was exceeded several times over
