"""A datagram client for the tests (run inside the test's namespace):
sends the requests in REQS (a msgpack file: a list of request maps) to
HOST:PORT over an ordinary UDP socket, WINDOW at a time, matches the
answers by id, resends what is unanswered after a timeout (at most
RETRIES times), and writes the answers (a msgpack list, in request order;
None for a request never answered) to OUT.  Prints a JSON summary.

veth offloads the UDP checksum (the frame leaves with a partial sum that
af_packet hands to DPDK as is) and there may be no ethtool to turn that
off: the socket sends without a checksum (SO_NO_CHECK: 0, legal in IPv4)
unless --checksum is given."""
import argparse
import json
import socket
import sys
import time

import msgpack

SO_NO_CHECK = 11


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("reqs")
    ap.add_argument("out")
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--retries", type=int, default=3)
    ap.add_argument("--checksum", action="store_true")
    a = ap.parse_args()
    reqs = msgpack.unpackb(open(a.reqs, "rb").read(), raw=False)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if not a.checksum:
        s.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    s.settimeout(a.timeout)
    by_id = {r["id"]: i for i, r in enumerate(reqs)}
    answers = [None] * len(reqs)
    pending = list(range(len(reqs)))
    sent = 0
    for attempt in range(a.retries + 1):
        todo, pending = pending, []
        for k in range(0, len(todo), a.window):
            chunk = todo[k:k + a.window]
            waiting = set()
            for i in chunk:
                s.sendto(msgpack.packb(reqs[i], use_bin_type=True), (a.host, a.port))
                sent += 1
                waiting.add(i)
            deadline = time.monotonic() + a.timeout
            while waiting and time.monotonic() < deadline:
                try:
                    data, _ = s.recvfrom(65536)
                except socket.timeout:
                    break
                ans = msgpack.unpackb(data, raw=False)
                i = by_id.get(ans.get("id"))
                if i is not None and i in waiting:
                    answers[i] = ans
                    waiting.discard(i)
            pending.extend(sorted(waiting))
        if not pending:
            break
    open(a.out, "wb").write(msgpack.packb(answers, use_bin_type=True))
    json.dump({"sent": sent, "answered": sum(x is not None for x in answers),
               "unanswered": len(pending)}, sys.stdout)


if __name__ == "__main__":
    main()
