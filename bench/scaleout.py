#!/usr/bin/env python3
"""Throughput of 1, 2 and 3 `latchkey` nodes behind HAProxy: `python3 bench/scaleout.py`.

The layout of README's "Scaling out" section and of tests/scaleout.rs: nodes on one PostgreSQL
database and one Redis (tokens and rate limits), HAProxy with packaging/scaleout/haproxy.cfg
terminating TLS in front. For each node count, wrk drives the load balancer with two paths:
client credentials (a token written to Redis per request) and introspection (a token read from
Redis, the client from PostgreSQL). A direct row (one node, no load balancer) shows what the
proxy costs. Nothing is pinned to a core: nodes, HAProxy, wrk and the stores share the machine,
as they would share it on one host, and the figures say what this machine does, not what more
machines would.

Results go to bench/results/scaleout.{json,md}, and the table replaces the part of README.md
between the `scaleout results` markers.

Needs: a release build (`cargo build --release -p latchkey-server`, done here when missing),
wrk, haproxy, openssl, psql, redis-cli; PostgreSQL and Redis on 127.0.0.1 (a database
`latchkey_scaleout` is dropped and created; Redis keys go to database 14 under a prefix of
their own and are removed afterwards).
"""

import argparse
import base64
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUA = os.path.join(ROOT, "bench", "lua")
RESULTS = os.path.join(ROOT, "bench", "results")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BINARY = os.path.join(TARGET, "release", "latchkey")
HAPROXY_CFG = os.path.join(ROOT, "packaging", "scaleout", "haproxy.cfg")
PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
PG_DB = "postgres://postgres@127.0.0.1:5432/latchkey_scaleout"
REDIS_DB = 14
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
KEK = "q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0Vng="


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=30, context=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def node_env(prefix, issuer):
    """The README's settings, plus the limits a single load generator needs lifted."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATCHKEY_")}
    env.update({
        "LATCHKEY_ISSUER": issuer,
        "LATCHKEY_TRUSTED_PROXIES": "[127.0.0.1]",
        "LATCHKEY_STORE__URL": PG_DB,
        "LATCHKEY_STORE__TOKENS_URL": REDIS_URL,
        "LATCHKEY_STORE__KEY_PREFIX": prefix,
        "LATCHKEY_LIMITS__STORE": REDIS_URL,
        "LATCHKEY_KEYS__KEK": KEK,
        # One load generator, one address: the request rates would stop it at once.
        "LATCHKEY_LIMITS__PER_CLIENT": "0",
        "LATCHKEY_LIMITS__PER_IP": "0",
        "RUST_LOG": "warn",
    })
    return env


def cli(data_dir, env, *args):
    out = subprocess.run([BINARY, "--data-dir", data_dir, *args], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"latchkey {' '.join(args)} failed: {out.stderr}")
    return out.stdout


class Node:
    def __init__(self, data_dir, port, env):
        self.port = port
        self.log = open(os.path.join(data_dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [BINARY, "--data-dir", data_dir, "serve", "--listen", f"127.0.0.1:{port}"],
            env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        wait_http(f"http://127.0.0.1:{port}/readyz")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Haproxy:
    """HAProxy with the shipped configuration, cut down to the first `count` servers."""

    def __init__(self, workdir, port, cert, nodes):
        with open(HAPROXY_CFG) as f:
            text = f.read()
        keep = []
        for line in text.splitlines():
            m = re.match(r"\s+server node(\d+) ", line)
            if m and int(m.group(1)) > len(nodes):
                continue
            keep.append(line)
        self.cfg = os.path.join(workdir, f"haproxy-{len(nodes)}.cfg")
        with open(self.cfg, "w") as f:
            f.write("\n".join(keep) + "\n")
        env = dict(os.environ, LK_LB_BIND=f"127.0.0.1:{port}", LK_LB_CERT=cert)
        for i, node in enumerate(nodes, 1):
            env[f"LK_NODE{i}"] = f"127.0.0.1:{node.port}"
        self.log = open(os.path.join(workdir, "haproxy.log"), "ab")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.cfg], env=env,
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        self.base = f"https://127.0.0.1:{port}"
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        wait_http(self.base + "/healthz", context=ctx)
        # Every server passes its first health checks (rise 2, inter 1s) before the run.
        time.sleep(2.5)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


def parse_ms(text):
    m = re.match(r"([0-9.]+)(us|ms|s)$", text)
    if not m:
        return None
    value = float(m.group(1))
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def run_wrk(url, script, env, args):
    argv = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s",
            "--latency", "--timeout", "10s", "-s", os.path.join(LUA, script), url]
    out = subprocess.run(argv, env=dict(os.environ, **env), capture_output=True, text=True,
                         check=False)
    text = out.stdout
    res = {}
    m = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    res["rps"] = float(m.group(1)) if m else 0.0
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", text, re.M)
        res[f"p{pct}_ms"] = parse_ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", text)
    res["socket_errors"] = m.group(1).strip() if m else ""
    if out.returncode != 0 or not res["rps"]:
        raise SystemExit(f"wrk failed: {out.stderr or text}")
    return res


def token(base, basic, context=None):
    req = urllib.request.Request(
        base + "/token", data=b"grant_type=client_credentials",
        headers={"Authorization": "Basic " + basic,
                 "Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=10, context=context) as resp:
        return json.load(resp)["access_token"]


def psql(url, sql):
    subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


def clean_redis(prefix):
    keys = subprocess.run(["redis-cli", "-n", str(REDIS_DB), "--scan", "--pattern",
                           f"{prefix}:*"], capture_output=True, text=True, check=True)
    names = keys.stdout.split()
    for i in range(0, len(names), 500):
        subprocess.run(["redis-cli", "-n", str(REDIS_DB), "del", *names[i:i + 500]],
                       check=True, stdout=subprocess.DEVNULL)


def table(rows):
    lines = [
        "| setup | client credentials req/s | p50 ms | p99 ms | introspection req/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cc, intro = r["client_credentials"], r["introspect"]
        lines.append(
            f"| {r['setup']} | {cc['rps']:.0f} | {cc['p50_ms']:.1f} | {cc['p99_ms']:.1f} "
            f"| {intro['rps']:.0f} | {intro['p50_ms']:.1f} | {intro['p99_ms']:.1f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", default="1,2,3", help="node counts to measure")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--no-readme", action="store_true", help="do not update README.md")
    args = ap.parse_args()
    counts = [int(n) for n in args.nodes.split(",")]
    for tool in ("wrk", "haproxy", "openssl", "psql", "redis-cli"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed (apt-get install -y {tool})")
    if not os.path.exists(BINARY):
        log("building latchkey in release")
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "latchkey-server",
                        "--bin", "latchkey"], cwd=ROOT, check=True)

    workdir = tempfile.mkdtemp(prefix="latchkey-scaleout-")
    prefix = f"latchkey-scaleout-{os.getpid()}"
    psql(PG_ADMIN, "DROP DATABASE IF EXISTS latchkey_scaleout")
    psql(PG_ADMIN, "CREATE DATABASE latchkey_scaleout")
    cert = os.path.join(workdir, "lb.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", cert + ".key", "-out", cert + ".crt"], check=True,
                   capture_output=True)
    with open(cert, "w") as f:
        for part in (".crt", ".key"):
            with open(cert + part) as p:
                f.write(p.read())
    lb_port = free_port()
    env = node_env(prefix, f"https://127.0.0.1:{lb_port}")
    dirs = [os.path.join(workdir, f"node{i}") for i in range(1, max(counts) + 1)]
    for d in dirs:
        os.makedirs(d, mode=0o700)
    cli(dirs[0], env, "migrate")
    created = json.loads(cli(dirs[0], env, "client", "create", "--name", "scale-out bench",
                             "--grant-type", "client_credentials", "--json"))
    basic = base64.b64encode(
        f"{created['client_id']}:{created['client_secret']}".encode()).decode()
    ports = [free_port() for _ in dirs]

    rows = []
    try:
        first = Node(dirs[0], ports[0], env)
        for d in dirs[1:]:
            for name in ("session.key", "oauth1.key"):
                if os.path.exists(os.path.join(dirs[0], name)):
                    shutil.copy2(os.path.join(dirs[0], name), os.path.join(d, name))
        direct = f"http://127.0.0.1:{ports[0]}"
        wrk_env = {"BENCH_BASIC": basic, "BENCH_TOKEN": token(direct, basic)}
        log("one node, no load balancer")
        rows.append({
            "setup": "1 node, direct (no LB, no TLS)",
            "client_credentials": run_wrk(direct + "/token", "client_credentials.lua",
                                          wrk_env, args),
            "introspect": run_wrk(direct + "/introspect", "introspect.lua", wrk_env, args),
        })
        first.stop()
        for count in counts:
            nodes = [Node(dirs[i], ports[i], env) for i in range(count)]
            lb = Haproxy(workdir, lb_port, cert, nodes)
            try:
                log(f"{count} node(s) behind HAProxy")
                url = lb.base
                rows.append({
                    "setup": f"{count} node{'s' if count > 1 else ''} behind HAProxy (TLS)",
                    "client_credentials": run_wrk(url + "/token", "client_credentials.lua",
                                                  wrk_env, args),
                    "introspect": run_wrk(url + "/introspect", "introspect.lua", wrk_env,
                                          args),
                })
            finally:
                lb.stop()
                for node in nodes:
                    node.stop()
    finally:
        clean_redis(prefix)
        psql(PG_ADMIN, "DROP DATABASE IF EXISTS latchkey_scaleout")
        shutil.rmtree(workdir, ignore_errors=True)

    for r in rows:
        for path in ("client_credentials", "introspect"):
            if r[path]["non2xx"] or r[path]["socket_errors"]:
                raise SystemExit(f"{r['setup']} {path}: errors {r[path]}")
    md = table(rows)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "wrk": f"-t{args.threads} -c{args.connections} -d{args.duration}s",
    }
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "scaleout.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
    with open(os.path.join(RESULTS, "scaleout.md"), "w") as f:
        f.write(md + "\n")
    print(md)
    if not args.no_readme:
        readme = os.path.join(ROOT, "README.md")
        with open(readme) as f:
            text = f.read()
        start, end = "<!-- scaleout results -->\n", "<!-- /scaleout results -->"
        if start in text and end in text:
            head, rest = text.split(start, 1)
            _, tail = rest.split(end, 1)
            note = (f"Measured {meta['date'][:10]} on {meta['cpus']} cores shared by the nodes, "
                    f"HAProxy, PostgreSQL, Redis and wrk ({meta['wrk']}, HTTP/1.1 keep-alive).\n\n")
            with open(readme, "w") as f:
                f.write(head + start + note + md + "\n" + end + tail)


if __name__ == "__main__":
    main()
