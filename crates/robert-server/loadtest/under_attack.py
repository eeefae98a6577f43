#!/usr/bin/env python3
"""Bounded loopback measurements of `robert serve` under connection-level
attacks (issue 11, items 3 and 4; attacks D3, D4, D5 and D7 of
reports/attacks-and-faults.md). Standard library only.

    python3 crates/robert-server/loadtest/under_attack.py target/release/robert [--runs 3] [--slow-upload]

Each run starts fresh servers on 127.0.0.1 (a throw-away data directory,
`codes.check_token = false`, default limits otherwise) and measures:

  slow50     50 slow clients hold connections (25 never finish their headers,
             25 trickle a /report body at 5 bytes/s); then 10 normal reports
             one after the other: their latency.
  fd1100     the server started under `prlimit --nofile=1024:1024` (systemd's
             default soft limit, and here the hard one too); 1,100
             connections that never finish their headers; then 10
             GET /api/v6/clock: their latency and status.
  sigterm    20 connections with unfinished headers, 1 silent; SIGTERM: time
             to exit.
  oversize   POST /api/v6/report with Content-Length 200,000,000: status and
             time to the answer.
  upload     (--slow-upload, 48 s per run) a 3.8 MB report uploaded at
             80 kB/s: status and time.

It prints one line per run and a summary (min / median / max). Every wait
is bounded; the whole default run (3 runs) takes about a minute.
"""

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def raise_own_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 8192):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))


class Server:
    def __init__(self, binary, prefix=None, env=None):
        self.dir = tempfile.mkdtemp(prefix="robert-attack-")
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("ROBERT_") or k == "RUST_LOG":
                del e[k]
        e.update({
            "ROBERT_LOG__FORMAT": "json",
            "ROBERT_CODES__CHECK_TOKEN": "false",
            "ROBERT_KEYS__ARGON2_MEMORY_KIB": "64",
            "ROBERT_KEYS__ARGON2_ITERATIONS": "1",
        })
        e.update(env or {})
        cmd = (prefix or []) + [binary, "serve", "--bind", "127.0.0.1:0",
                                      "--internal-bind", "127.0.0.1:0", "--data-dir", self.dir]
        self.proc = subprocess.Popen(cmd, env=e, stderr=subprocess.PIPE, text=True)
        self.addr = None
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if v.get("fields", {}).get("message") == "ROBERT server listening":
                host, port = v["fields"]["address"].rsplit(":", 1)
                self.addr = (host, int(port))
                break
        if self.addr is None:
            self.proc.kill()
            raise SystemExit("the server did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def stop(self, timeout=10.0):
        """SIGTERM; returns the seconds to exit (None if killed after timeout)."""
        t = time.time()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
            took = time.time() - t
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            took = None
        shutil.rmtree(self.dir, ignore_errors=True)
        return took


def request(addr, raw, timeout=10.0):
    """Sends `raw`, returns (status, seconds); status 0 on timeout or error."""
    t = time.time()
    try:
        with socket.create_connection(addr, timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(raw)
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            status = int(data[9:12]) if len(data) >= 12 else 0
    except OSError:
        status = 0
    return status, time.time() - t


def post(path, body, extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n" + extra
            + b"\r\n" + body)


REPORT = post(b"/api/v6/report", b'{"token":"ABCDEF","contacts":[]}')
CLOCK = b"GET /api/v6/clock HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
HALF = b"GET /api/v6/clock HTTP/1.1\r\nHost: x\r\n"


def hold(addr, n, head, trickle=None, stop=None):
    """Opens n connections sending `head`; with `trickle`, one byte every
    `trickle` seconds from a thread until `stop` is set."""
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection(addr, timeout=5)
            s.sendall(head)
            socks.append(s)
        except OSError:
            break
    if trickle:
        def run():
            while not stop.is_set():
                time.sleep(trickle)
                for s in list(socks):
                    try:
                        s.sendall(b"A")
                    except OSError:
                        socks.remove(s)
        threading.Thread(target=run, daemon=True).start()
    return socks


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def slow50(binary):
    srv = Server(binary)
    stop = threading.Event()
    a = hold(srv.addr, 25, HALF)
    b = hold(srv.addr, 25, b"POST /api/v6/report HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: 10000000\r\n\r\n{\"token\":\"", trickle=0.2, stop=stop)
    time.sleep(1.0)
    lat, statuses = [], []
    for _ in range(10):
        st, dt = request(srv.addr, REPORT, timeout=35)
        statuses.append(st)
        lat.append(dt)
    stop.set()
    close_all(a + b)
    srv.stop()
    return {"report_max_s": max(lat), "report_median_s": statistics.median(lat),
            "statuses": sorted(set(statuses))}


def fd1100(binary):
    srv = Server(binary, prefix=["prlimit", "--nofile=1024:1024"])
    held = hold(srv.addr, 1100, HALF)
    time.sleep(1.0)
    lat, statuses = [], []
    for _ in range(10):
        st, dt = request(srv.addr, CLOCK, timeout=10)
        statuses.append(st)
        lat.append(dt)
    close_all(held)
    srv.stop()
    return {"held": len(held), "clock_max_s": max(lat), "clock_median_s": statistics.median(lat),
            "statuses": sorted(set(statuses))}


def sigterm(binary):
    srv = Server(binary)
    held = hold(srv.addr, 20, HALF) + hold(srv.addr, 1, b"")
    time.sleep(0.5)
    took = srv.stop(timeout=30)
    close_all(held)
    return {"exit_s": took}


def oversize(binary):
    srv = Server(binary)
    raw = (b"POST /api/v6/report HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: 200000000\r\n\r\n{")
    st, dt = request(srv.addr, raw, timeout=35)
    srv.stop()
    return {"status": st, "answer_s": dt}


def upload(binary):
    srv = Server(binary)
    body = b'{"token":"ABCDEF","contacts":[]' + b" " * 3_800_000 + b"}"
    head = post(b"/api/v6/report", body)[: -len(body)]
    t = time.time()
    status = 0
    try:
        with socket.create_connection(srv.addr, timeout=120) as s:
            s.sendall(head)
            step = 8_000  # 80 kB/s in 0.1 s steps
            for i in range(0, len(body), step):
                s.sendall(body[i:i + step])
                time.sleep(0.1)
            data = s.recv(4096)
            status = int(data[9:12]) if len(data) >= 12 else 0
    except OSError:
        pass
    took = time.time() - t
    srv.stop()
    return {"status": status, "total_s": took}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--slow-upload", action="store_true")
    args = ap.parse_args()
    raise_own_fd_limit()
    scenarios = [slow50, fd1100, sigterm, oversize] + ([upload] if args.slow_upload else [])
    results = {f.__name__: [] for f in scenarios}
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}  {args.binary}  runs={args.runs}")
    for run in range(args.runs):
        for f in scenarios:
            r = f(args.binary)
            results[f.__name__].append(r)
            print(f"run {run + 1} {f.__name__}: {json.dumps(r)}", flush=True)
    print("# summary (min / median / max)")
    for name, rs in results.items():
        keys = [k for k in rs[0] if isinstance(rs[0][k], (int, float))]
        parts = []
        for k in keys:
            vals = [r[k] for r in rs if r[k] is not None]
            if not vals:
                parts.append(f"{k}: none")
                continue
            parts.append(f"{k}: {min(vals):.3f} / {statistics.median(vals):.3f} / {max(vals):.3f}")
        missing = sum(1 for r in rs for k in keys if r[k] is None)
        statuses = sorted({s for r in rs for s in r.get("statuses", [r.get("status")]) if s is not None})
        print(f"{name}: " + "; ".join(parts) + (f"; statuses {statuses}" if statuses else "")
              + (f"; {missing} timed out" if missing else ""))


if __name__ == "__main__":
    sys.exit(main())
