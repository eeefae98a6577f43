#!/usr/bin/env python3
"""Helper of status-scale.sh.

    status_scale.py register URL PUBLIC_KEY N STATE_FILE
        registers N apps through the API (captcha accept-any) and saves their
        keys and EBID tuples to STATE_FILE
    status_scale.py bodies STATE_FILE OUT_FILE
        writes one /status body per line, MACs made now (valid for the
        server's 60 s time tolerance), for wrk (deploy/status.lua)
"""

import base64
import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import robert_api as api  # noqa: E402


def register(url, pk, n, out):
    regs, lock = [], threading.Lock()

    def work(count, k):
        h = api.Http(url)
        for i in range(count):
            h.forwarded_for = f"10.{k}.{i // 250}.{i % 250 + 1}"
            s, reg, d = api.register(h, pk)
            if s != 201:
                raise SystemExit(f"register answered {s}: {d!r}")
            with lock:
                regs.append(reg)
        h.close()

    workers = 8
    ts = [threading.Thread(target=work, args=(n // workers + (k < n % workers), k)) for k in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    with open(out, "w") as f:
        for r in regs:
            f.write(
                json.dumps(
                    {
                        "k_a": base64.b64encode(r.k_a).decode(),
                        "time_start": r.time_start,
                        "tuples": {str(e): base64.b64encode(eb + ec).decode() for e, (eb, ec) in r.tuples.items()},
                    }
                )
                + "\n"
            )
    print(len(regs))


def bodies(state, out):
    with open(state) as f, open(out, "w") as o:
        for line in f:
            j = json.loads(line)
            r = api.Registration.__new__(api.Registration)
            r.k_a = base64.b64decode(j["k_a"])
            r.time_start = j["time_start"]
            r.tuples = {}
            for e, v in j["tuples"].items():
                raw = base64.b64decode(v)
                r.tuples[int(e)] = (raw[:8], raw[8:])
            o.write(json.dumps(r.auth_body(0x02), separators=(",", ":")) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "register":
        register(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif sys.argv[1] == "bodies":
        bodies(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)
