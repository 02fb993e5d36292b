"""The data-centre simulator (bench/sim) as a regression test of routing.

bench/sim/build/sim compiles the gateway's real policy.c, router.c,
squeue.c, batcher.c and svctime.c and calls them for every decision
(pol_prepare, pol_view, router_pick, pol_admit, pol_expire, pol_cut,
pol_take, pol_learn), keeping only time, events and counts itself.  These tests run small deterministic
simulations (fixed seed, 200,000 requests each, about 0.1 s apiece) and
check values that depend on that logic: SLO attainment below capacity,
goodput and 429s in overload, the slo policy against the other two, and
filling idle GPU time with sheddable work without costing high priority.
Numbers and commands behind the thresholds: docs/bench-history.md, "Simulator".

No gateway process is started; only the build tools (make, a C compiler)
are needed.
"""
import csv
import functools
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SIM_DIR = REPO / "bench" / "sim"
SIM = SIM_DIR / "build" / "sim"
SC = SIM_DIR / "scenarios"
N = 200000


@pytest.fixture(scope="module", autouse=True)
def sim_built():
    missing = [t for t in ("make", "cc") if shutil.which(t) is None]
    if missing:
        pytest.skip("build tools missing (%s): cannot build bench/sim" % ", ".join(missing))
    p = subprocess.run(["make", "-s", "-C", str(SIM_DIR)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, "make -C bench/sim failed:\n%s%s" % (p.stdout, p.stderr)
    assert SIM.exists()


@functools.lru_cache(maxsize=None)
def run(scenario, *args):
    """One simulation; its CSV line as a dict of column name -> str."""
    cmd = [str(SIM), "--scenario", str(SC / (scenario + ".ini")), "--requests", str(N),
           "--seed", "1", "--header", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, "%s\n%s" % (" ".join(cmd), p.stderr)
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert len(rows) == 1, p.stdout
    row = rows[0]
    row["cmd"] = " ".join(cmd)
    return row


def val(row, key):
    return float(row[key])


def rejected_429(row):
    return sum(int(row[k]) for k in ("rej_late", "rej_full", "rej_shed", "rej_displaced"))


def test_output_is_deterministic_and_complete():
    a = run("hetero", "--load", "0.5")
    p = subprocess.run(a["cmd"].split(), capture_output=True, text=True, timeout=60)
    b = next(csv.DictReader(io.StringIO(p.stdout)))
    for k in b:
        if k not in ("wall_s", "sim_req_per_s"):
            assert a[k] == b[k], "column %s differs between two runs: %r %r" % (k, a[k], b[k])
    assert a["variant"] == "gateway" and a["candidates"] == "all"
    assert int(a["backends"]) == 14
    assert val(a, "capacity_rps") == pytest.approx(170085.2, rel=1e-3)


def test_half_load_meets_every_objective():
    r = run("hetero", "--load", "0.5", "--policy", "slo")
    assert val(r, "slo_att") >= 0.99, r["cmd"]
    for p in ("att_p1", "att_p2", "att_p3"):
        assert val(r, p) >= 0.99, (p, r[p], r["cmd"])
    assert rejected_429(r) == 0, r["cmd"]
    # the offered load is carried: goodput ~ 0.5x capacity
    assert val(r, "goodput_per_capacity") == pytest.approx(0.5, abs=0.02)


def test_twice_capacity_keeps_goodput_and_rejects_the_excess():
    r = run("hetero", "--load", "2.0", "--policy", "slo")
    assert val(r, "goodput_per_capacity") >= 0.95, (r["goodput_per_capacity"], r["cmd"])
    assert val(r, "goodput_rows_per_capacity") >= 0.95, r["cmd"]
    # the excess is refused up front (429), not run late
    assert rejected_429(r) > 0.3 * int(r["requests"]), r["cmd"]
    assert int(r["late_done"]) < 0.01 * int(r["requests"]), r["cmd"]
    # priority 1 keeps its objective under 2x overload (it displaces and
    # outbids the lower levels; 44.8% before bcff583)
    assert val(r, "att_p1") >= 0.95, (r["att_p1"], r["cmd"])


def test_slo_policy_beats_least_queue_and_round_robin_at_0_9():
    slo = run("hetero", "--load", "0.9", "--policy", "slo")
    lq = run("hetero", "--load", "0.9", "--policy", "least-queue")
    rr = run("hetero", "--load", "0.9", "--policy", "round-robin")
    a_slo, a_lq, a_rr = (val(r, "slo_att") for r in (slo, lq, rr))
    assert a_slo > a_rr, (a_slo, a_rr, slo["cmd"])
    assert a_slo >= a_lq, (
        "slo attainment %.4f < least-queue %.4f at load 0.9 (priority 3: %s, %s displaced by "
        "higher priorities; see docs/bench-history.md, Simulator, remaining finding 1)"
        % (a_slo, a_lq, slo["att_p3"], slo["rej_displaced"]))


def test_slo_policy_keeps_priorities_1_and_2_at_0_9():
    # Holds today even where the overall comparison above does not: the
    # loss at 0.9 is priority 3's.
    r = run("hetero", "--load", "0.9", "--policy", "slo")
    assert val(r, "att_p1") >= 0.99, r["cmd"]
    assert val(r, "att_p2") >= 0.99, r["cmd"]


def test_low_priority_flood_fills_gpus_without_hurting_high_priority():
    alone = run("gpu_fill", "--share", "lp=0")
    flood = run("gpu_fill")  # lp flood at 2x capacity, shed_wait_fraction 0.5 (default)
    assert val(alone, "att_p1") >= 0.99, alone["cmd"]
    assert val(flood, "att_p1") >= 0.99, (flood["att_p1"], flood["cmd"])
    # busy time is ~100% in both (a GPU runs whatever waits); rows executed
    # out of rows possible at full batches is what the flood raises
    assert val(flood, "tput_gpu") > val(alone, "tput_gpu") + 0.2, (
        alone["tput_gpu"], flood["tput_gpu"])
    assert val(flood, "good_p3_rps") > 0.1 * val(flood, "capacity_rps")


def test_gpu_fill_exercises_displacement():
    # Guards the scenario: the check above needs displacement (before
    # bcff583, when a full queue was full to every priority, priority 1
    # kept 37.81% here: docs/bench-history.md, Simulator).
    flood = run("gpu_fill")
    assert int(flood["rej_displaced"]) > 0, flood["cmd"]
    assert int(flood["rej_full"]) == 0, flood["cmd"]


def test_sheddable_work_spills_to_cpus_and_dpus():
    # Mixed fleet, lp flood, tight shed threshold: a sheddable request skips
    # the saturated GPUs and fills the CPUs and DPUs instead of being shed.
    r = run("hetero_fill", "--shed-frac", "0.01")
    assert val(r, "att_p1") >= 0.99, r["cmd"]
    assert val(r, "tput_cpu") >= 0.8, (r["tput_cpu"], r["cmd"])
    assert val(r, "tput_dpu") >= 0.8, (r["tput_dpu"], r["cmd"])
    # without the flood the GPUs take all of the hp traffic: the CPU and
    # DPU rows above are the flood's (router_pick before efa0c5d shed at
    # the policy's GPU pick and left them idle: docs/bench-history.md)
    alone = run("hetero_fill", "--share", "lp=0")
    assert val(alone, "tput_cpu") < 0.1 and val(alone, "tput_dpu") < 0.1, alone["cmd"]
    assert val(r, "good_p3_rps") > 0.5 * val(r, "capacity_rps"), r["cmd"]


def test_sim_links_the_gateway_policy_without_copies():
    # the simulator's binary holds the gateway's policy functions, and
    # sim.c makes none of the decisions itself
    nm = subprocess.run(["nm", str(SIM)], capture_output=True, text=True, timeout=30)
    if nm.returncode != 0:
        pytest.skip("nm unavailable")
    syms = {line.split()[-1] for line in nm.stdout.splitlines() if " T " in line}
    for fn in ("pol_view", "pol_admit", "pol_expire", "pol_cut", "pol_take", "pol_learn",
               "pol_prepare", "router_pick", "svc_predict", "batch_decide", "sq_take"):
        assert fn in syms, fn
    src = (SIM_DIR / "sim.c").read_text()
    for call in ("sq_push(", "sq_displace(", "sq_expire(", "sq_take(", "svc_observe(",
                 "svc_wait_observe(", "svc_wait_missed(", "svc_wait_adjust(", "batch_decide(",
                 "batch_adapt_observe(", "batch_place("):
        assert call not in src, "bench/sim/sim.c calls %s itself" % call


def test_legacy_modes_are_gone():
    p = subprocess.run([str(SIM), "--scenario", str(SC / "hetero.ini"), "--requests", "10",
                        "--legacy", "all"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p.stdout
    assert "usage" in p.stderr


def route_cost(*args):
    """sim --route-cost: the counters line as a dict, and the CSV row."""
    cmd = [str(SIM), "--scenario", str(SC / "remote64.ini"), "--requests", "20000", "--seed", "1",
           "--load", "0.8", "--route-cost", "--header", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    line = next(ln for ln in p.stderr.splitlines() if ln.startswith("route_cost "))
    rc = dict(kv.split("=") for kv in line.split()[1:])
    return rc, next(csv.DictReader(io.StringIO(p.stdout)))


def test_routing_cost_per_request_with_64_remote_backends():
    # Candidate views per routing decision, counted inside the simulator:
    # the gateway's candidate set (a full scan, or the router's power-of-d
    # sample once router.c has one) and the simulator's sample of 2.
    # Instructions per decision: bench/sim/route_cost.sh, docs/bench-history.md.
    for n in (4, 16, 64):
        rc, row = route_cost("--count", str(n))
        assert int(rc["backends"]) == n == int(row["backends"])
        assert int(rc["decisions"]) >= 20000
        assert float(rc["picks_per_decision"]) == 1.0
        assert val(row, "slo_att") >= 0.99, (n, row["slo_att"])
        if rc["sampling"] == "full-scan":
            assert float(rc["views_per_decision"]) == n
        else:
            # sampled: a few views, plus every backend when a sample is widened
            widened = int(rc["widened"]) / int(rc["decisions"])
            # (up to 16 backends the gateway scans them all: ROUTER_SCAN_ALL)
            seen = n if n <= 16 else 8
            assert float(rc["views_per_decision"]) <= seen + widened * n + 1e-9, rc
        rc, row = route_cost("--count", str(n), "--candidates", "sample", "--sample", "2")
        assert float(rc["views_per_decision"]) == 2.0, rc
        assert val(row, "slo_att") >= 0.99, (n, row["slo_att"])


def test_widened_samples_stay_flat_at_2000_backends():
    # At 2000 backends a 30 ms class sampled onto two slow CPUs admits
    # nothing now and then: rt_route widens to ROUTER_WIDEN_D (32) random
    # backends first, and only when those admit nothing to all of them
    # (bench/sim/scale.sh: 10,000 backends x 10M requests).  Counts, not time.
    cmd = [str(SIM), "--scenario", str(SC / "dc2000.ini"), "--requests", str(N), "--seed", "1",
           "--load", "0.8", "--route-cost", "--header"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    line = next(ln for ln in p.stderr.splitlines() if ln.startswith("route_cost "))
    rc = dict(kv.split("=") for kv in line.split()[1:])
    row = next(csv.DictReader(io.StringIO(p.stdout)))
    d, w, full = int(rc["decisions"]), int(rc["widened"]), int(rc["full_scans"])
    assert int(rc["sample_d"]) == 2 and int(rc["widen_d"]) == 32
    assert w > 0, rc                                  # the case happens at this load
    assert int(rc["widened_ok"]) + full >= w          # a widened sample that fails goes on
    assert full <= w - int(rc["widened_ok"])
    # views: 2 per decision, 32 more per widened one, 2000 per full scan
    assert float(rc["views_per_decision"]) <= 2 + (32 * w + 2000 * full) / d + 1e-9, rc
    assert float(rc["views_per_decision"]) < 3, rc    # flat, not O(backends)
    assert val(row, "slo_att") >= 0.98, row["slo_att"]


def test_scale_script_reports_backends_requests_and_its_row(tmp_path):
    # bench/sim/scale.sh (part `sim` of make bench) on a short run: its
    # table and the row the summary's target line reads.
    rows_file = tmp_path / "rows.jsonl"
    out = tmp_path / "scale.md"
    env = dict(os.environ, REQUESTS="30000", BENCH_ROWS=str(rows_file))
    env.pop("SIM_QUICK", None)
    p = subprocess.run(["bash", str(SIM_DIR / "scale.sh"), str(out)], capture_output=True,
                       text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    assert "| 10,000 | 30,000 |" in text, text
    assert "scaled from 30,000 requests" in text
    rows = {r["key"]: r for r in map(json.loads, rows_file.read_text().splitlines())}
    scale = rows["scale"]
    assert scale["part"] == "sim" and scale["backends"] == 10000 and scale["requests"] == 30000
    assert scale["value"] > 0 and scale["unit"] == "s"
    assert rows["events_per_s"]["value"] > 0
    assert 2.0 <= rows["views_per_decision"]["value"] < 3.0
