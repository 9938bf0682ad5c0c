#!/usr/bin/env python3
"""Load-independent counts per client_credentials token over HTTP, for a token store:
syscalls (by name), context switches (per thread), fsyncs and bytes written per token.

    python3 bench/tokenlog_counts.py [--store tokenlog|sqlite|memory] [--duration 5]

Starts `latchkey serve` as bench/run.py does (pinned to one core, one tokio worker), drives it
with wrk (64 connections) on the other core, and counts with `perf stat` (syscall tracepoints,
context switches) and /proc/PID/task/*/status and /proc/PID/io deltas. These counts do not
depend on the machine's load the way requests/s and CPU time do (group sizes still do, a little:
a slower fsync gathers more tokens per group).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402

STORES = {
    "tokenlog": {},
    "sqlite": {"LATCHKEY_STORE__TOKENS_URL": "durable:"},
    "memory": {"LATCHKEY_STORE__URL": "memory:"},
}

EVENTS = [
    "raw_syscalls:sys_enter",
    "syscalls:sys_enter_fdatasync",
    "syscalls:sys_enter_fsync",
    "syscalls:sys_enter_pwrite64",
    "syscalls:sys_enter_futex",
    "syscalls:sys_enter_write",
    "syscalls:sys_enter_writev",
    "syscalls:sys_enter_epoll_wait",
    "syscalls:sys_enter_sched_yield",
    "context-switches",
    "cpu-migrations",
]


def threads(pid):
    """Per-thread (name, voluntary, nonvoluntary) context switches of `pid`."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                text = f.read()
        except OSError:
            continue
        name = re.search(r"^Name:\s*(.*)$", text, re.M).group(1)
        vol = int(re.search(r"^voluntary_ctxt_switches:\s*(\d+)", text, re.M).group(1))
        inv = int(re.search(r"^nonvoluntary_ctxt_switches:\s*(\d+)", text, re.M).group(1))
        out[tid] = (name, vol, inv)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", default="tokenlog", choices=sorted(STORES))
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--strace", action="store_true",
                    help="also count every syscall by name with `strace -c -f` (slows the server, "
                         "so groups grow: names, not rates)")
    cfg = ap.parse_args()
    cores = os.cpu_count() or 1
    cfg.server_core, cfg.load_core = (1, 0) if cores >= 2 else (0, 0)
    cfg.workdir = tempfile.mkdtemp(prefix="latchkey-counts-")
    data_dir = os.path.join(cfg.workdir, "data")
    s = run.start_latchkey(cfg, cfg.store, data_dir, STORES[cfg.store])
    try:
        creds = run.setup_clients(s)
        run.token(s.base, creds["basic"], {"grant_type": "client_credentials"})
        env = {"BENCH_BASIC": creds["basic"]}
        before_t = threads(s.pid)
        perf_out = os.path.join(cfg.workdir, "perf.txt")
        perf = subprocess.Popen(
            ["perf", "stat", "-x", ",", "-o", perf_out, "-p", str(s.pid)]
            + sum((["-e", e] for e in EVENTS), []))
        strace = None
        if cfg.strace:
            strace_out = os.path.join(cfg.workdir, "strace.txt")
            strace = subprocess.Popen(["strace", "-c", "-f", "-o", strace_out, "-p", str(s.pid)])
        time.sleep(0.3)
        res = run.run_wrk(cfg, s, s.base + "/token", "client_credentials.lua", env,
                          cfg.connections)
        perf.send_signal(2)
        perf.wait()
        if strace:
            strace.send_signal(2)
            strace.wait()
        after_t = threads(s.pid)
        n = res["requests"]
        print(f"store={cfg.store} requests={n} rps={res['rps']:.0f} "
              f"cpu_us_per_req={res['cpu_us_per_req']:.1f} "
              f"write_bytes_per_req={res['write_bytes_per_req']:.0f} "
              f"load={os.getloadavg()[0]:.2f} non2xx={res['non2xx']}")
        with open(perf_out) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) < 3 or not parts[0].replace(".", "").isdigit():
                    continue
                print(f"  {parts[2]:<34} {int(float(parts[0])) / n:8.3f} per token")
        if strace:
            with open(strace_out) as f:
                for line in f:
                    m = re.match(r"\s*[0-9.]+\s+[0-9.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
                    if m:
                        print(f"  strace {m.group(2):<27} {int(m.group(1)) / n:8.3f} per token")
        print("  context switches per token, by thread (voluntary / involuntary):")
        by_name = {}
        for tid, (name, vol, inv) in after_t.items():
            b = before_t.get(tid, (name, 0, 0))
            v, i = by_name.get(name, (0, 0))
            by_name[name] = (v + vol - b[1], i + inv - b[2])
        for name, (v, i) in sorted(by_name.items()):
            if v or i:
                print(f"    {name:<24} {v / n:7.3f} / {i / n:7.3f}")
    finally:
        s.stop()
        shutil.rmtree(cfg.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
