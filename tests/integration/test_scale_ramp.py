"""bench/sim/scale_ramp: the autoscaling signal (the gateway's scale.c,
sampled like scrapes) against a rising load, in virtual time.  Fixed
seeds, about a second per run; the thresholds follow from the model
(docs/deploy.md, "Does the signal lead the SLO misses?"), not from speed.

No gateway process is started; only make and a C compiler are needed."""
import csv
import functools
import io
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SIM_DIR = REPO / "bench" / "sim"
BIN = SIM_DIR / "build" / "scale_ramp"


@functools.lru_cache(maxsize=None)
def build():
    subprocess.run(["make", "-s", "-C", str(SIM_DIR), "build/scale_ramp"], check=True,
                   timeout=300)
    return BIN


def run(*args):
    out = subprocess.run([str(build()), *args], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    lines = [ln for ln in out.splitlines() if not ln.startswith("#")]
    rows = list(csv.DictReader(io.StringIO("\n".join(ln for ln in lines if "=" not in ln))))
    tail = dict(re.findall(r"(\w+)=([-\d.n/a]+)", lines[-1]))
    return rows, tail


def test_signal_leads_misses_on_a_slow_ramp():
    rows, tail = run()
    assert float(tail["lead_s"]) > 0, tail
    # the signal asks for more than the 4 replicas below capacity (0.8 headroom)
    first = next(r for r in rows if int(r["desired"]) > 4)
    assert float(first["offered_rps"]) < 25600, first
    # no misses while the load is below 0.9 x capacity
    for r in rows:
        if float(r["offered_rps"]) < 0.9 * 25600:
            assert float(r["miss_frac"]) <= 0.01, r
    # the planned batch is the largest whose time fits half the objective:
    # t(32) = 10 ms <= 25 ms
    assert {r["batch_rows"] for r in rows[1:]} == {"32"}, rows[:3]
    # the signal follows the load: at the end it asks for more than at the start
    assert int(rows[-1]["desired"]) > int(rows[2]["desired"])


def test_tighter_objective_plans_smaller_batches_and_leads_more():
    rows, tail = run("--slo-ms", "12")
    base_rows, base = run()
    # t(16) = 6 ms <= 6 ms, t(32) = 10 ms > 6 ms
    assert {r["batch_rows"] for r in rows[1:]} == {"16"}, rows[:3]
    assert float(tail["signal_first_s"]) < float(base["signal_first_s"]), (tail, base)


def test_zero_load_settles_at_one():
    rows, tail = run("--from", "0", "--to", "0", "--ramp-s", "120")
    assert all(int(r["desired"]) in (1, 4) for r in rows), rows  # 4 = held before a rate
    assert int(rows[-1]["desired"]) == 1
    assert tail["miss_first_s"] in ("-1",), tail
