#!/usr/bin/python3
"""plot.py - SLO attainment (all priorities, priority 1) and goodput against
offered load, per routing policy, from bench/sim/results/sweep.csv (written
by bench/sim/report.sh).

usage: /usr/bin/python3 bench/sim/plot.py SWEEP.csv OUT.png
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"slo": "tab:blue", "least-queue": "tab:orange", "round-robin": "tab:green",
          "slo+reroute-displaced": "tab:brown", "slo+displace-last": "tab:red"}
LABELS = {"slo+reroute-displaced": "slo, what-if --reroute-displaced",
          "slo+displace-last": "slo, what-if --displace-last"}
STYLES = {"poisson": "-", "onoff": "--"}


def key(r):
    """policy, plus the what-if variant when the row has one"""
    return r["policy"] if r["variant"] == "gateway" else r["policy"] + "+" + r["variant"]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rows = [r for r in csv.DictReader(open(sys.argv[1]))]
    if not rows:
        sys.exit("plot.py: no rows in " + sys.argv[1])
    cap = float(rows[0]["capacity_rps"])
    fig, (ax1, ax3, ax2) = plt.subplots(1, 3, figsize=(16, 5))
    for pol in COLORS:
        # the two slo variants: Poisson only, to keep the plot readable
        for arr in ("poisson", "onoff") if "+" not in pol else ("poisson",):
            pts = sorted(
                (float(r["load"]), float(r["slo_att"]), float(r["att_p1"]),
                 float(r["goodput_rows_per_capacity"]))
                for r in rows
                if key(r) == pol and r["arrival"] == arr
            )
            if not pts:
                continue
            x = [p[0] for p in pts]
            label = "%s, %s" % (LABELS.get(pol, pol),
                                "Poisson" if arr == "poisson" else "bursty (20 ms at 3x / 80 ms at 0.5x)")
            kw = dict(color=COLORS[pol], linestyle=STYLES[arr], marker="o", markersize=3, label=label,
                      linewidth=1.0 if "+" in pol else 1.6)
            ax1.plot(x, [100 * p[1] for p in pts], **kw)
            ax3.plot(x, [100 * p[2] for p in pts], **kw)
            ax2.plot(x, [p[3] for p in pts], **kw)
    xmax = max(float(r["load"]) for r in rows)
    ax2.plot([0, 1, xmax], [0, 1, 1], color="grey", linewidth=0.8, linestyle=":")
    ax2.axhline(0.95, color="red", linewidth=0.6, linestyle=":")
    ax2.text(0.05, 0.96, "95% of capacity", color="red", fontsize=7, ha="left", va="bottom")
    ax1.set_ylabel("SLO attainment, all priorities (%)")
    ax1.set_ylim(0, 102)
    ax1.set_title("Requests answered within their SLO")
    ax3.set_ylabel("SLO attainment, priority 1 (%)")
    ax3.set_ylim(0, 102)
    ax3.set_title("Priority 1 (30 ms, 20% of requests)")
    ax2.set_ylabel("goodput (rows within SLO / row capacity)")
    ax2.set_ylim(0, 1.1)
    ax2.set_title("Goodput: rows answered within SLO per second")
    for ax in (ax1, ax3, ax2):
        ax.set_xlabel("offered load (x capacity)")
        ax.grid(True, linewidth=0.3)
        ax.set_xlim(0, xmax * 1.02)
    ax1.legend(fontsize=7, loc="lower left")
    n = rows[0]["requests"]
    fig.suptitle(
        "infergw simulator: %s fleet (%s backends: 8 CPU measured, 2 GPU + 4 DPU derived), "
        "capacity %.0f req/s, %s requests per point" % (rows[0]["scenario"], rows[0]["backends"], cap, n),
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
