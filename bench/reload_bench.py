#!/usr/bin/python3
"""reload_bench.py - time POST /admin/reload on a running infergw.

usage: reload_bench.py ADMIN_PORT CONFIG BASE.yaml ALT.yaml [N]

1. "unchanged": N reloads of CONFIG = BASE.yaml as it is;
2. "model added" / "model removed": 2N reloads alternating ALT.yaml (BASE
   plus one more model) and BASE.yaml, each copied over CONFIG atomically
   (temp file + rename) before its reload.

For each reload: the server's duration_ms (build + validate + swap, from
the answer) and the client's round trip (request sent to answer read, one
keep-alive HTTP/1.1 connection to 127.0.0.1).  Prints p50 / p99 / max per
kind and what the answers said was carried, loaded and opened.
"""
import http.client
import json
import os
import shutil
import sys
import time

import rows


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))]


def main():
    if len(sys.argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    port, config, base, alt = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    n = int(sys.argv[5]) if len(sys.argv) > 5 else 50
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def put(src):
        tmp = config + ".tmp"
        shutil.copyfile(src, tmp)
        os.replace(tmp, config)

    def reload():
        t0 = time.perf_counter()
        conn.request("POST", "/admin/reload", body=b"")
        r = conn.getresponse()
        body = r.read()
        rtt = (time.perf_counter() - t0) * 1e3
        doc = json.loads(body)
        if r.status != 200 or doc.get("result") != "success":
            raise SystemExit(f"reload failed: {r.status} {body!r}")
        return doc, rtt

    runs = {"unchanged": [], "model added": [], "model removed": []}
    put(base)
    reload()
    for _ in range(n):
        runs["unchanged"].append(reload())
    for _ in range(n):
        put(alt)
        runs["model added"].append(reload())
        put(base)
        runs["model removed"].append(reload())
    conn.close()
    for kind, rs in runs.items():
        d = [doc["duration_ms"] for doc, _ in rs]
        rtt = [t for _, t in rs]
        last = rs[-1][0]
        print(f"{kind:14s} n={len(rs)}: duration_ms p50 {pct(d, 50):.3f} p99 {pct(d, 99):.3f} "
              f"max {max(d):.3f} | client round trip ms p50 {pct(rtt, 50):.3f} "
              f"p99 {pct(rtt, 99):.3f} max {max(rtt):.3f}")
        print(f"{'':14s} last answer: models_carried={last['models_carried']} "
              f"models_loaded={last['models_loaded']} "
              f"backends_carried={last['backends_carried']} "
              f"backends_opened={last['backends_opened']}")
        rows.emit("reload", kind.replace(" ", "_") + "_p50_ms", round(pct(d, 50), 3),
                  f"reload, {kind}: server duration p50 (p99 {pct(d, 99):.2f} ms)", unit="ms",
                  rounds=len(rs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
