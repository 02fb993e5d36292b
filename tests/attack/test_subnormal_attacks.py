"""Subnormal inputs (|x| < 2^-126) from a hostile client.

On an x86 core an arithmetic instruction that reads or makes a subnormal
float can take a microcode assist (~100+ cycles); one client sending rows of
values like 1e-39 made every batch it shared with honest clients several times slower
(digits, one loop capped at 0.35 CPU: 25 us of server CPU a request for
such rows, 10 us flushed, 2.3 us for a normal row).  The CPU
backend computes with subnormals flushed to zero (backends/cpu/cpu.c
be_cpu_flush_enter), on the worker, its OpenMP team and the loop that runs
small batches inline.  Speed is not asserted here (that is bench/infer.sh's
"subnormal" round); what the flush does to values is: through an amplifier
layer (weights ~1e30, no bias) a row of subnormals must answer exact zeros
(unflushed each output would be ~1e-8), while honest rows sent at the same
time, in the same batches, answer the float64 reference.  JSON and binary
bodies, a team of one and of two.  Bounded: 8 clients x 25 requests per
model."""
import json
import threading

import numpy as np

import attacklib
import gwlib
import slowmodel as sm

WIDTH, OUT = 16, 256
SUB = (1e-39 + np.arange(WIDTH) * 6e-40).astype("<f4")     # every one subnormal


def write_amplifier(out, seed=11):
    """16 -> 256 dense, no bias, weights uniform in [0.5e30, 1.5e30)."""
    gen = sm._gen_mlp()
    out.mkdir(parents=True, exist_ok=True)
    w = np.random.default_rng(seed).uniform(0.5e30, 1.5e30, (OUT, WIDTH)).astype("<f4")
    gen.write_safetensors(str(out / "model.safetensors"), [("w", w)],
                          {"source": "tests/attack/test_subnormal_attacks.py"})
    (out / "model.yaml").write_text(
        "name: amp\nplatform: infergw-mlp\nversion: 1\nmax_batch_size: 8\n"
        "weights: model.safetensors\n"
        f"inputs: [{{name: input, datatype: FP32, shape: [-1, {WIDTH}]}}]\n"
        f"outputs: [{{name: y, datatype: FP32, shape: [-1, {OUT}]}}]\n"
        "layers: [{type: dense, weight: w, activation: none}]\n")
    return w.astype(np.float64)


def json_body(row):
    return json.dumps({"inputs": [{"name": "input", "shape": [1, WIDTH], "datatype": "FP32",
                                   "data": [float(v) for v in row]}]}).encode()


def binary_body(row):
    raw = np.asarray(row, dtype="<f4").tobytes()
    head = json.dumps({"inputs": [{"name": "input", "shape": [1, WIDTH], "datatype": "FP32",
                                   "parameters": {"binary_data_size": len(raw)}}]}).encode()
    return head + raw, [("content-type", "application/octet-stream"),
                        ("inference-header-content-length", str(len(head)))]


def infer(port, model, row, binary):
    """POST one row; the answer's OUT values (float32 as sent)."""
    if binary:
        body, headers = binary_body(row)
    else:
        body, headers = json_body(row), [gwlib.JSON_CT]
    st, _, raw = gwlib.h1_request(port, "POST", f"/v2/models/{model}/infer", body, headers,
                                  timeout=30)
    assert st == 200, (model, st, raw[:300])
    out = json.loads(raw)["outputs"][0]
    assert out["shape"] == [1, OUT], out
    return np.asarray(out["data"], dtype=np.float32)


def test_subnormal_rows_flushed_beside_honest_ones(start_gw, tmp_path):
    w = write_amplifier(tmp_path / "amp")
    models = [sm.model_yaml("amp", tmp_path / "amp", max_batch=8, max_queue_delay_us=2000),
              sm.model_yaml("amp2", tmp_path / "amp", max_batch=8, max_queue_delay_us=2000)]
    text = sm.config_text(models, [sm.backend_yaml("cpu0", ["amp"]),
                                   sm.backend_yaml("cpu1", ["amp2"], threads=2)])
    # amp2's model name in its own model.yaml is amp: the config's name wins
    g = start_gw("subnormal", text)
    rng = np.random.default_rng(3)
    honest = rng.uniform(0.01, 1.0, (8, WIDTH)).astype("<f4")
    errors, counts = [], {"sub": 0, "honest": 0}
    lock = threading.Lock()

    def client(k, model):
        try:
            for i in range(25):
                binary = (i + k) % 2 == 1
                if k % 2 == 0:          # the attacker: rows of subnormals
                    y = infer(g.port, model, SUB, binary)
                    bad = np.flatnonzero(y != 0)
                    assert bad.size == 0, \
                        f"{model}: subnormal row answered {y[bad[:4]]} at {bad[:4]}, want 0"
                    key = "sub"
                else:                   # honest rows, in the same batches
                    row = honest[(i + k) % 8]
                    y = infer(g.port, model, row, binary)
                    np.testing.assert_allclose(y, w @ row.astype(np.float64), rtol=1e-5)
                    key = "honest"
                with lock:
                    counts[key] += 1
        except Exception as e:          # noqa: BLE001 - reported below
            with lock:
                errors.append(f"{model} client {k}: {e!r}"[:600])

    for model in ("amp", "amp2"):
        ts = [threading.Thread(target=client, args=(k, model)) for k in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in ts), f"{model}: a client hung"
    assert not errors, "\n".join(errors[:5])
    assert counts == {"sub": 200, "honest": 200}, counts
    attacklib.assert_alive(g)
    ms = gwlib.read_metrics(g.admin_port)
    for model, be in (("amp", "cpu0"), ("amp2", "cpu1")):
        assert gwlib.metric(ms, "infergw_requests_total", backend=be, model=model,
                            outcome="success") == 200, model


# JSON text a hostile client writes by hand (not Python's repr): exponents far
# outside a double's fast range, tokens under every float, and the one just
# above 2^-150 that rounds to zero only through a double (jansson's reading).
TINY_TEXT = ["1e-100000", "-9e-67", "0." + "0" * 68 + "1", "7.006492321624086e-46",
             "1.02e-39", "-2.2e-39", "18446744073709551615e-66", "1e-45",
             "1.401298464324817e-45", "5e-324", "-0.0", "1e-60", "123e-70", "4e-67",
             "1.1754942e-38", "-1.17549e-38"]
# normal floats by far exponents (10^-30 .. 10^-40 apart from the mantissa):
# through the amplifier (weights ~1e30) they answer values of order 1
NORMAL_TEXT = ["1.5e-30", "123e-32", "4.2e-31", "-7e-30", "0.000000001e-21", "98765e-35",
               "3.3333333333333333e-30", "1e-30", "2e-30", "-5.5e-31", "6.02214076e-30",
               "9.999999e-31", "1.2e-29", "8e-31", "7.1e-30", "1.17549436e-30"]


def _text_body(tokens):
    return ('{"inputs":[{"name":"input","shape":[1,%d],"datatype":"FP32","data":[%s]}]}'
            % (len(tokens), ",".join(tokens))).encode()


def test_tiny_and_far_exponent_text(start_gw, tmp_path):
    """The JSON reader's own rounding of such tokens (jsonfast.c
    jf_quick_float, no strtod) over HTTP: tokens under FLT_MIN answer exact
    zeros (read as zero or as a subnormal, then flushed), far-exponent
    normal ones the float64 reference of jansson's reading ((float) of the
    double), and 1e39 (Inf as a float) a 400 naming the field; the gateway
    serves on."""
    w = write_amplifier(tmp_path / "amp")
    g = start_gw("tinytext", sm.config_text([sm.model_yaml("amp", tmp_path / "amp",
                                                           max_batch=8)],
                                            [sm.backend_yaml("cpu0", ["amp"])]))
    assert len(TINY_TEXT) == WIDTH and len(NORMAL_TEXT) == WIDTH
    url = "/v2/models/amp/infer"
    for _ in range(3):
        st, _, raw = gwlib.h1_request(g.port, "POST", url, _text_body(TINY_TEXT),
                                      [gwlib.JSON_CT], timeout=30)
        assert st == 200, raw[:300]
        y = np.asarray(json.loads(raw)["outputs"][0]["data"], dtype=np.float32)
        assert y.shape == (OUT,) and not np.any(y), y[np.flatnonzero(y)[:4]]
        st, _, raw = gwlib.h1_request(g.port, "POST", url, _text_body(NORMAL_TEXT),
                                      [gwlib.JSON_CT], timeout=30)
        assert st == 200, raw[:300]
        row = np.asarray([np.float32(float(t)) for t in NORMAL_TEXT], dtype=np.float64)
        y = np.asarray(json.loads(raw)["outputs"][0]["data"], dtype=np.float32)
        np.testing.assert_allclose(y, w @ row, rtol=1e-5)
    st, _, raw = gwlib.h1_request(g.port, "POST", url,
                                  _text_body(NORMAL_TEXT[:-1] + ["1e39"]), [gwlib.JSON_CT])
    assert st == 400 and b"inputs[0].data" in raw, (st, raw[:300])
    print(f"\n1e39: {st} {raw[:200]!r}")
    attacklib.assert_alive(g)
