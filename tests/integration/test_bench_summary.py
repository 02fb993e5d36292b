"""The bench harness's generator on canned h2load outputs (no servers run).

parse_h2load.py -> report.py (rows) -> summary.py (bench/RESULTS.md): a
round where h2load used more than 90% of its core is marked client-bound
and left out of the server ratio (and counted as dropped); the ratio is the
median of the remaining per-round ratios, the spread their min and max; the
summary carries them into the issue 18 targets table and stays under 150
lines however many parts report.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench")
PY = sys.executable

H2LOAD_OUT = """starting benchmark...
spawning thread #0: 32 total client(s). 100000 total requests
Application protocol: h2c
progress: 10% done

finished in {secs:.2f}s, {rps:.2f} req/s, 3.21MB/s
requests: 100000 total, 100000 started, 100000 done, 100000 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 100000 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 3.21MB (3366000) total, 1.14MB (1200000) headers (space savings 90.00%), 1.24MB (1300000) data
                     min         max         mean         sd        +/- sd
time for request:      123us      4.56ms       789us       123us    90.00%
"""

# (server, round) -> (req/s, h2load user s, system s, wall s)
ROUNDS = {
    ("infergw", 1): (120000.0, 0.50, 0.20, 0.84),   # h2load 83%: fine
    ("nghttpd", 1): (100000.0, 0.60, 0.20, 1.00),   # 80%
    ("h2o", 1): (100000.0, 0.60, 0.20, 1.00),
    ("infergw", 2): (240000.0, 0.35, 0.05, 0.42),   # 95%: client-bound
    ("nghttpd", 2): (100000.0, 0.60, 0.20, 1.00),
    ("h2o", 2): (200000.0, 0.40, 0.05, 0.50),       # 90% exactly: not above the bound
    ("infergw", 3): (90000.0, 0.60, 0.20, 1.11),    # 72%
    ("nghttpd", 3): (100000.0, 0.60, 0.20, 1.00),
    ("h2o", 3): (100000.0, 0.60, 0.20, 1.00),
}


def run(argv, env=None, **kw):
    e = dict(os.environ)
    e.pop("BENCH_ROWS", None)
    e.update(env or {})
    return subprocess.run([PY] + argv, capture_output=True, text=True, env=e, check=True,
                          timeout=60, **kw)


@pytest.fixture
def canned(tmp_path):
    runs = tmp_path / "runs.jsonl"
    for server in ("infergw", "nghttpd", "h2o"):
        for r in (1, 2, 3):
            rps, u, s, wall = ROUNDS[(server, r)]
            out = tmp_path / ("%s.%d.out" % (server, r))
            out.write_text(H2LOAD_OUT.format(secs=100000 / rps, rps=rps))
            (tmp_path / ("%s.%d.out.time" % (server, r))).write_text("%.2f %.2f %.2f\n" % (u, s, wall))
            p = run([os.path.join(BENCH, "parse_h2load.py"), server, str(out), "--ticks", "50",
                     "--client-time", str(out) + ".time"])
            with open(runs, "a") as f:
                f.write(p.stdout)
    return tmp_path, runs


def test_parse_marks_client_bound(canned):
    _, runs = canned
    rs = [json.loads(l) for l in runs.read_text().splitlines()]
    bound = {(r["name"], i % 3 + 1): r["client_bound"] for i, r in enumerate(rs)}
    assert bound[("infergw", 2)] is True
    assert bound[("h2o", 2)] is False          # exactly 0.90 is not above the bound
    assert sum(bound.values()) == 1
    util = [r["client_util"] for r in rs if r["name"] == "infergw"]
    assert util[0] == pytest.approx(0.70 / 0.84)
    assert rs[0]["rps"] == 120000.0 and rs[0]["done"] == 100000
    assert rs[0]["client_us_per_req"] == pytest.approx(0.70 * 1e6 / 100000)


def test_report_ratio_spread_and_dropped(canned):
    tmp, runs = canned
    rows_file = tmp / "rows.jsonl"
    p = run([os.path.join(BENCH, "report.py"), "health", str(runs)],
            env={"BENCH_ROWS": str(rows_file)})
    rows = {r["key"]: r for r in map(json.loads, rows_file.read_text().splitlines())}
    # infergw / h2o: round 2 dropped (infergw client-bound); rounds 1 and 3: 1.2, 0.9
    h2o = rows["vs_h2o"]
    assert h2o["dropped"] == 1 and h2o["rounds"] == 2
    assert h2o["value"] == pytest.approx(1.05)     # median of 1.2 and 0.9
    assert (h2o["lo"], h2o["hi"]) == (pytest.approx(0.9), pytest.approx(1.2))
    ngh = rows["vs_nghttpd"]
    assert ngh["value"] == pytest.approx(1.05) and ngh["dropped"] == 1
    assert "h1_vs_h2o" not in rows                   # no HTTP/1.1 rounds in the canned run
    assert "1 client-bound dropped" in p.stdout
    # the table says how many rounds were client-bound per run
    assert "| infergw | 120,000 | 90,000-240,000 | 3 (1) |" in p.stdout


def test_summary_targets_and_length(canned, tmp_path):
    tmp, runs = canned
    rows_file = tmp / "rows.jsonl"
    run([os.path.join(BENCH, "report.py"), "health", str(runs)], env={"BENCH_ROWS": str(rows_file)})
    # a part that plugs in with rows alone, and one that was skipped
    run([os.path.join(BENCH, "rows.py"), "grpc", "grpc_over_json", "1.7", "gRPC / JSON req/s",
         "unit=x", "lo=1.5", "hi=1.9", "rounds=3"], env={"BENCH_ROWS": str(rows_file)})
    run([os.path.join(BENCH, "rows.py"), "gpu", "skipped", "-", "GPU", "note=not measured: no device"],
        env={"BENCH_ROWS": str(rows_file)})
    run([os.path.join(BENCH, "rows.py"), "sim", "scale", "41.5", "10M requests at 10,000 backends",
         "unit=s", "backends=10000"], env={"BENCH_ROWS": str(rows_file)})
    # a part that ran and handed no figures (run.sh's _ran row only)
    run([os.path.join(BENCH, "rows.py"), "newpart", "_ran", "-", "bench/newpart.sh"],
        env={"BENCH_ROWS": str(rows_file)})
    out = tmp / "RESULTS.md"
    run([os.path.join(BENCH, "summary.py"), "write", str(rows_file), str(out), "--stamp", "test"])
    text = out.read_text()
    lines = text.splitlines()
    assert len(lines) < 150
    target = [l for l in lines if l.startswith("| HTTP/2 health, 1 loop thread, vs h2o")][0]
    assert "**1.05x**" in target and "0.90-1.20x" in target and "client-bound dropped" in target
    # 1.05 >= 1.05, but the two rounds (0.9, 1.2) cannot tell: their
    # interval straddles the target
    assert "0.90-1.20x (50%)" in target and target.rstrip().endswith("| not settled |")
    ngh = [l for l in lines if l.startswith("| HTTP/2 health vs nghttpd")][0]
    assert ngh.rstrip().endswith("| no |")            # 0.9 and 1.2, both < 1.3
    h1 = [l for l in lines if l.startswith("| HTTP/1.1 health")][0]
    assert "not run" in h1
    sim = [l for l in lines if l.startswith("| simulator")][0]
    assert "**41.5 s**" in sim and sim.rstrip().endswith("| yes |")
    assert "2 dropped in this run" in text            # vs_nghttpd and vs_h2o each drop one
    assert "### gRPC (bench/grpc.sh)" in text and "**1.70x**" in text
    assert "not measured: no device" in text
    assert "- newpart: ran; it hands no figures to this summary" in text
    assert "- DPDK (bench/dpdk.sh): not run in this run" in text
    assert "## Machine" in text


def test_summary_stays_short_with_many_rows(tmp_path):
    rows_file = tmp_path / "rows.jsonl"
    with open(rows_file, "w") as f:
        for part in ("h2", "infer", "kernel", "payloads", "grpc", "overload", "reload", "remote",
                     "int8", "dpdk", "gpu", "sim", "newpart1", "newpart2"):
            for k in range(12):
                f.write(json.dumps({"part": part, "key": "k%d" % k, "label": "figure %d" % k,
                                    "value": 1.0 + k / 10, "unit": "x", "lo": 0.9, "hi": 2.0,
                                    "rounds": 5, "cmd": "h2load -n 1 URL%d\nh2load -n 2 URL" % k})
                        + "\n")
    out = tmp_path / "RESULTS.md"
    run([os.path.join(BENCH, "summary.py"), "write", str(rows_file), str(out)])
    lines = out.read_text().splitlines()
    assert len(lines) < 150
    assert "## Targets (issue 18)" in lines and "## Machine" in lines
    assert any(l.startswith("### newpart2") for l in lines)


def int8_rows(gw_b64):
    """The rows bench/int8.sh hands over (issue 15's report), gw_b64 given."""
    rs = [{"key": "size_digits", "value": 69.9, "unit": "%", "fp32": 19624, "int8": 5904},
          {"key": "size_mlp_large", "value": 74.9, "unit": "%", "fp32": 100700736,
           "int8": 25240384},
          {"key": "digits_acc_fp32", "value": 97.21, "unit": "%"},
          {"key": "digits_acc_int8", "value": 96.94, "unit": "%"},
          {"key": "digits_agree", "value": 99.72, "unit": "%"},
          {"key": "claim", "value": None, "note": "published claim", "size": 75, "speed": 3.2,
           "acc_loss": 1.5, "raw": 3.9}]
    for b, large, static, digits, raw in ((1, 4.7, 5.2, 0.96, 5.8), (8, 3.2, 4.3, 0.98, 5.7),
                                          (64, gw_b64, 6.5, 1.1, 2.9)):
        rs += [{"key": "gw_b%d" % b, "value": large, "unit": "x", "lo": large - 0.2,
                "hi": large + 0.1, "rounds": 2, "fp32": 100, "int8": 100 * large,
                "cmd": "build/bench/int8 -t 2 MLP" if b == 64 else None},
               {"key": "gw_static_b%d" % b, "value": static, "unit": "x", "rounds": 2},
               {"key": "digits_gw_b%d" % b, "value": digits, "unit": "x", "rounds": 2},
               {"key": "backend_b%d" % b, "value": large + 1, "unit": "x"},
               {"key": "raw_b%d" % b, "value": raw, "unit": "x"},
               {"key": "digits_backend_b%d" % b, "value": 1.0, "unit": "x"},
               {"key": "digits_raw_b%d" % b, "value": 1.2, "unit": "x"}]
    return [dict({k: v for k, v in r.items() if v is not None}, part="int8") for r in rs]


@pytest.mark.parametrize("gw_b64, met", [(3.79, "yes"), (1.63, "no")])
def test_summary_int8_table_and_target(tmp_path, gw_b64, met):
    """int8.sh's rows become one table (model by row: sizes, digits accuracy,
    gateway and raw ratios per batch size, the published claim) and the
    issue 15 target is marked in the targets table and the section; with
    every other part reporting 12 figures the summary stays under 150 lines."""
    rows_file = tmp_path / "rows.jsonl"
    with open(rows_file, "w") as f:
        for part in ("h2", "infer", "kernel", "payloads", "grpc", "overload", "reload", "remote",
                     "dpdk", "gpu", "sim", "newpart1"):
            for k in range(12):
                f.write(json.dumps({"part": part, "key": "k%d" % k, "label": "figure %d" % k,
                                    "value": 1.0 + k / 10, "unit": "x", "rounds": 5}) + "\n")
        for r in int8_rows(gw_b64):
            f.write(json.dumps(r) + "\n")
    out = tmp_path / "RESULTS.md"
    run([os.path.join(BENCH, "summary.py"), "write", str(rows_file), str(out)])
    lines = out.read_text().splitlines()
    assert len(lines) < 150
    target = [l for l in lines if l.startswith("| (issue 15) mlp-large INT8 / FP32")][0]
    assert "**%.2fx**" % gw_b64 in target and target.rstrip().endswith("| %s |" % met)
    i = lines.index("### INT8 (bench/int8.sh)")
    sec = lines[i:i + 12]
    assert "batch 1 / 8 / 64" in sec[2]
    digits = [l for l in sec if l.startswith("| digits (dynamic)")][0]
    assert "19.6 kB -> 5.9 kB (-70%)" in digits
    assert "97.21% / 96.94% (99.72%)" in digits
    assert "0.96x / 0.98x / 1.10x" in digits and "1.20x / 1.20x / 1.20x" in digits
    large = [l for l in sec if l.startswith("| mlp-large (dynamic)")][0]
    assert "100.7 MB -> 25.2 MB (-75%)" in large
    assert "4.70x / 3.20x / %.2fx" % gw_b64 in large and "5.80x / 5.70x / 2.90x" in large
    assert [l for l in sec if l.startswith("| mlp-large (calibrated)")][0].count("6.50x") == 1
    claim = [l for l in sec if l.startswith("| published claim")][0]
    assert "-75%" in claim and "< 1.5% lost" in claim and "3.2x" in claim and "3.9x" in claim
    text = [l for l in sec if l.startswith("CPU backend alone")][0]
    assert "mlp-large 5.70x / 4.20x / %.2fx" % (gw_b64 + 1) in text
    assert ("**%s**" % ("met" if met == "yes" else "not met")) in text


def summary_module():
    sys.path.insert(0, BENCH)
    try:
        import summary
    finally:
        sys.path.remove(BENCH)
    return summary


@pytest.mark.parametrize("n, j, cover", [(2, 1, 0.5), (5, 1, 0.9375), (6, 1, 0.96875),
                                         (9, 2, 0.9609375), (15, 4, 0.96484375)])
def test_median_ci_order_statistics(n, j, cover):
    """The median's interval is (x_(j), x_(n+1-j)) of the sorted per-round
    values with the largest j whose binomial coverage is >= 95%."""
    s = summary_module()
    xs = [float(10 * i) for i in range(n, 0, -1)]     # unsorted on purpose
    lo, hi, c = s.median_ci(xs)
    assert (lo, hi) == (10.0 * j, 10.0 * (n + 1 - j))
    assert c == pytest.approx(cover)
    assert s.median_ci([1.0]) is None


def test_targets_judged_on_the_interval(tmp_path):
    """met? says yes only when the whole interval meets the target, no when
    none of it does, not settled otherwise; the interval is shown."""
    rows_file = tmp_path / "rows.jsonl"
    per = {"vs_h2o": [1.1, 1.2, 1.3, 1.1, 1.2, 1.15, 1.25, 1.3, 1.06],        # all >= 1.05
           "vs_nghttpd": [1.0, 1.1, 1.2, 1.25, 1.0, 1.1, 1.2, 1.29, 1.28],     # all < 1.3
           "h1_vs_h2o": [0.65, 1.4, 1.0, 1.2, 0.9, 1.1, 1.3, 1.15, 1.05]}     # median 1.1
    with open(rows_file, "w") as f:
        for key, xs in per.items():
            f.write(json.dumps({"part": "h2", "key": key, "value": sorted(xs)[4], "unit": "x",
                                "lo": min(xs), "hi": max(xs), "rounds": 9, "per": xs}) + "\n")
    out = tmp_path / "RESULTS.md"
    run([os.path.join(BENCH, "summary.py"), "write", str(rows_file), str(out)])
    lines = out.read_text().splitlines()

    def line(prefix):
        return [l for l in lines if l.startswith(prefix)][0].rstrip()

    assert line("| HTTP/2 health, 1 loop thread, vs h2o").endswith("| yes |")
    assert "1.10-1.30x (96%)" in line("| HTTP/2 health, 1 loop thread, vs h2o")
    assert line("| HTTP/2 health vs nghttpd").endswith("| no |")
    h1 = line("| HTTP/1.1 health")
    assert "**1.10x**" in h1 and "0.90-1.30x (96%)" in h1 and h1.endswith("| not settled |")


def test_parse_cpu_ns_is_exact(tmp_path):
    """--cpu-ns (schedstat nanoseconds) gives the server's CPU per request
    to the nanosecond; --ticks only in 10 ms steps."""
    out = tmp_path / "r.out"
    out.write_text(H2LOAD_OUT.format(secs=1.0, rps=100000.0))
    ns = run([os.path.join(BENCH, "parse_h2load.py"), "x", str(out), "--cpu-ns", "345678901"])
    r = json.loads(ns.stdout)
    assert r["cpu_us_per_req"] == pytest.approx(345678901 / 1e3 / 100000)   # 3.45678901 us
    assert r["cpu_util"] == pytest.approx(0.345678901)
    hz = os.sysconf("SC_CLK_TCK")
    t = json.loads(run([os.path.join(BENCH, "parse_h2load.py"), "x", str(out), "--ticks",
                        "35"]).stdout)
    assert t["cpu_us_per_req"] == pytest.approx(35 / hz * 1e6 / 100000)


def test_lib_cpu_ns_reads_every_thread():
    """bench_cpu_ns PID sums the threads' schedstat run times: a process
    whose two threads have each burnt 0.15 s of CPU (and stay alive) has
    used at least 0.3 s, said in ns, close to what its ticks say."""
    burn = subprocess.Popen([PY, "-c", """
import threading, time, sys
hold = threading.Event()
def spin():
    t = time.thread_time()
    while time.thread_time() - t < 0.15:
        pass
    hold.wait()
ts = [threading.Thread(target=spin, daemon=True) for _ in range(2)]
[t.start() for t in ts]
while sum(1 for t in ts if t.is_alive()) and time.process_time() < 0.3:
    time.sleep(0.01)
print("done", flush=True)
sys.stdin.read()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert burn.stdout.readline().strip() == "done"
        sh = subprocess.run(["bash", "-c", '. "$1/lib.sh" && bench_cpu_ns "$2" && '
                             'bench_cpu_ticks "$2"', "_", BENCH, str(burn.pid)],
                            capture_output=True, text=True, timeout=30)
        ns, ticks = (int(x) for x in sh.stdout.split()[-2:])
        assert ns >= 0.3e9, sh.stdout + sh.stderr
        assert abs(ns / 1e9 - ticks / os.sysconf("SC_CLK_TCK")) < 0.1
    finally:
        burn.kill()
        burn.wait()


def test_paired_ratios_skip_client_bound():
    """rows.paired: round i beside round i; a round client-bound on either
    side is left out of both ratios and counted; CPU ratios from
    cpu_us_per_req."""
    sys.path.insert(0, BENCH)
    import rows
    base = [{"rps": 100.0, "cpu_us_per_req": 4.0}, {"rps": 100.0, "cpu_us_per_req": 4.0,
                                                      "client_bound": True},
            {"rps": 200.0, "cpu_us_per_req": 2.0}]
    cur = [{"rps": 50.0, "cpu_us_per_req": 8.0}, {"rps": 80.0, "cpu_us_per_req": 5.0},
           {"rps": 300.0, "cpu_us_per_req": 1.0}]
    rps, cpu, dropped = rows.paired(base, cur)
    assert rps == [0.5, 1.5] and cpu == [2.0, 0.5] and dropped == 1
    assert rows.ratio_cell(rps) == "1.00 (0.50-1.50)" and rows.ratio_cell([]) == "-"


def test_target_notes_are_footnotes(tmp_path):
    """A note on a target row is a numbered footnote under the table, each
    distinct note once (the CPU cap is the same for most rows), not text
    repeated in every row's value cell."""
    rows_file = tmp_path / "rows.jsonl"
    cap = "each server capped at 0.35 CPU"
    with open(rows_file, "w") as f:
        for key, v, note in (("vs_h2o", 1.9, cap), ("vs_nghttpd", 3.8, cap),
                             ("h1_vs_h2o", 1.12, "h2o at 1 thread")):
            f.write(json.dumps({"part": "h2", "key": key, "value": v, "unit": "x",
                                "note": note}) + "\n")
    out = tmp_path / "RESULTS.md"
    run([os.path.join(BENCH, "summary.py"), "write", str(rows_file), str(out)])
    text = out.read_text()
    lines = text.splitlines()

    def line(prefix):
        return [l for l in lines if l.startswith(prefix)][0]

    assert "**1.90x** [1] |" in line("| HTTP/2 health, 1 loop thread, vs h2o")
    assert "**3.80x** [1] |" in line("| HTTP/2 health vs nghttpd")
    assert "**1.12x** [2] |" in line("| HTTP/1.1 health")
    assert "- [1] %s" % cap in lines and "- [2] h2o at 1 thread" in lines
    assert text.split("## Areas")[0].count(cap) == 1   # the targets part
