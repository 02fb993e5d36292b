#!/usr/bin/python3
"""int8_digits.py - digits held-out accuracy, FP32 vs INT8, through a running
gateway, for bench/int8.sh.

usage: int8_digits.py PORT FP32_NAME INT8_NAME INT8_DIR

Sends every row of config/models/digits/heldout.safetensors (the split the
integration tests use: tests/integration/conftest.py `heldout`) to both
models over HTTP/2, 64 rows per request, with the helpers of
tests/integration/test_int8.py (imported, not copied, so the bench and the
test measure the same way): each answer is checked against its float64
reference first (FP32: rtol 1e-4; INT8: the numpy INT8 reference of
INT8_DIR, 1e-3), then top-1 accuracy of each and their top-1 agreement.
Prints one markdown line and hands rows digits_acc_fp32, digits_acc_int8,
digits_agree (percent) to the summary (bench/rows.py); exit 1 when an
answer is wrong.
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
import rows  # noqa: E402
import gwlib  # noqa: E402
from test_int8 import Ref, check_int8_answers, infer_all  # noqa: E402


def main(argv):
    if len(argv) != 5:
        sys.exit(__doc__)
    port, m32, m8, dir8 = int(argv[1]), argv[2], argv[3], argv[4]
    t = gwlib.read_safetensors(gwlib.MODEL_DIR / "heldout.safetensors")
    x, y = np.asarray(t["features"], dtype=np.float32), t["labels"]
    o32 = infer_all(port, m32, x, 64)
    o8 = infer_all(port, m8, x, 64)
    try:
        np.testing.assert_allclose(o32, Ref(gwlib.MODEL_DIR).forward(x), rtol=1e-4, atol=1e-5)
        check_int8_answers(o8, Ref(dir8).forward(x), x, m8)
    except AssertionError as e:
        print("int8_digits.py: wrong answer: %s" % str(e)[:500], file=sys.stderr)
        return 1
    k32, k8 = o32.argmax(axis=1), o8.argmax(axis=1)
    acc32, acc8 = 100.0 * (k32 == y).mean(), 100.0 * (k8 == y).mean()
    agree = 100.0 * (k32 == k8).mean()
    n = len(x)
    rows.emit("int8", "digits_acc_fp32", round(acc32, 2),
              "digits held-out top-1 accuracy, FP32 (%d rows, via HTTP/2)" % n, unit="%", n=n)
    rows.emit("int8", "digits_acc_int8", round(acc8, 2),
              "digits held-out top-1 accuracy, INT8 (%d rows, via HTTP/2)" % n, unit="%", n=n,
              note="%+.2f points vs FP32" % (acc8 - acc32))
    rows.emit("int8", "digits_agree", round(agree, 2),
              "digits held-out top-1 agreement INT8 vs FP32", unit="%", n=n)
    print("- digits held-out split (%d rows, through the gateway, JSON, 64 rows per request; "
          "every answer checked against its float64 reference): accuracy FP32 **%.2f%%**, "
          "INT8 **%.2f%%** (%+.2f points), top-1 agreement **%.2f%%**" % (
              n, acc32, acc8, acc8 - acc32, agree))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
