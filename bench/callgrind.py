#!/usr/bin/env python3
"""Instructions per request of `latchkey serve`, under callgrind: a repeatable measure of the
server's own (user-space) work on one path, whatever else the machine is doing.

    python3 bench/callgrind.py [--store memory|tokenlog|sqlite] [--path cc|introspect|guard] [--seconds 8]
                               [--rates] [--env NAME=VALUE ...]

(`tokenlog`: the embedded default, tokens in the token log; `sqlite`: the embedded store with
`store.tokens_url = durable:`, tokens in SQLite.)

It starts the release binary (build it first: `cargo build --release -p latchkey-server`; for
`--path guard`, `bench-guard` of `-p latchkey-bench`: the in-process bearer guard on a memory
store, `GET /api/whoami`) under
`valgrind --tool=callgrind`, creates a client through the admin API, warms the path up with
`wrk`, zeroes the counters (`callgrind_control -d`), drives the path again with 4 connections,
dumps, and prints instructions per request. Kernel work (TCP, wake-ups, page faults) is not
counted: compare CPU per request in `bench/run.py` for that. Then inspect the dump with
`callgrind_annotate --inclusive=yes <file>` or `--tree=calling`. Valgrind hides the CPU's SHA
extensions, so SHA-256 is overstated; `rep movsb` copies count one instruction per byte.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402  (the harness: server start-up, admin API, wrk)


def total_ir(path):
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", choices=("memory", "tokenlog", "sqlite"), default="memory")
    ap.add_argument("--path", choices=("cc", "introspect", "guard"), default="cc")
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--out", default=None, help="callgrind output file (default: a temp dir)")
    ap.add_argument("--rates", action="store_true",
                    help="request rates on (limits.per_client and per_ip counted, never reached)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="an extra environment variable of the server (repeatable)")
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="latchkey-callgrind-")
    out = args.out or os.path.join(workdir, "callgrind.out")
    cfg = types.SimpleNamespace(server_core=1, load_core=0, connections=4,
                                duration=args.seconds, workdir=workdir)
    extra = {"memory": {"LATCHKEY_STORE__URL": "memory:"},
             "sqlite": {"LATCHKEY_STORE__TOKENS_URL": "durable:"}}.get(args.store, {})
    if args.rates:
        extra.update({"LATCHKEY_LIMITS__PER_CLIENT": "1000000000",
                      "LATCHKEY_LIMITS__PER_IP": "1000000000"})
    extra.update(kv.split("=", 1) for kv in args.env)
    data = os.path.join(workdir, "data")
    os.makedirs(data)
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    if args.path == "guard":
        argv = valgrind + [os.path.join(R.RELEASE, "bench-guard"), "--listen", "127.0.0.1:0"]
        server = R.Server("callgrind", argv, {"TOKIO_WORKER_THREADS": "1"}, cfg.server_core,
                          r"listening on", workdir)
    else:
        argv = valgrind + [os.path.join(R.RELEASE, "latchkey"), "serve", "--listen",
                           "127.0.0.1:0", "--data-dir", data]
        server = R.Server("callgrind", argv, R.latchkey_env(data, extra), cfg.server_core,
                          r"latchkey listening on", workdir)
    try:
        if args.path == "guard":
            cid, secret = server.find(r"client_id=(\S+)"), server.find(r"client_secret=(\S+)")
            creds = {"basic": R.basic(cid, secret)}
        else:
            creds = R.setup_clients(server)
        env = {"BENCH_BASIC": creds["basic"]}
        url, script = server.base + "/token", "client_credentials.lua"
        if args.path == "guard":
            env["BENCH_TOKEN"] = R.token(server.base, creds["basic"],
                                         {"grant_type": "client_credentials"})[0]["access_token"]
            url, script = server.base + "/api/whoami", "guard.lua"
        elif args.path == "introspect":
            env["BENCH_TOKEN"] = R.token(server.base, creds["basic"],
                                         {"grant_type": "client_credentials"})[0]["access_token"]
            url, script = server.base + "/introspect", "introspect.lua"
        R.run_wrk(types.SimpleNamespace(**{**vars(cfg), "duration": 2}), server, url, script, env)
        # Each dump zeroes the counters: dump 1 is start-up and warm-up, dump 2 the measurement.
        subprocess.run(["callgrind_control", "-d", str(server.pid)], capture_output=True,
                       check=True)
        res = R.run_wrk(cfg, server, url, script, env)
        subprocess.run(["callgrind_control", "-d", str(server.pid)], capture_output=True,
                       check=True)
        time.sleep(1)
    finally:
        server.stop()
    measured = out + ".2"
    ir = total_ir(measured)
    requests = max(res["requests"], 1)
    store = "memory (bench-guard)" if args.path == "guard" else args.store
    print(f"{args.path} on {store}: {res['requests']} requests, {ir:,} instructions, "
          f"{ir / requests:,.0f} per request; profile: {measured}")


if __name__ == "__main__":
    main()
