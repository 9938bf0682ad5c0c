#!/usr/bin/env python3
"""Latchkey benchmark harness: `python3 bench/run.py` (see BENCHMARKS.md).

Builds in release, then for each path starts a server on a fresh data directory pinned to
one core, drives it with `wrk` (one thread, 64 connections, Lua scripts in bench/lua) pinned
to another core, and prints requests/s, p50/p99 latency, server CPU per request (utime+stime
deltas from /proc/<pid>/stat), server RSS, and the ratio to a baseline: a bare axum handler
(bench-baseline) answering a JSON body of the size of a real token response, measured in the
same run. Then JWT access tokens (RFC 9068) per signing algorithm next to the opaque path: issue and
local verification in the guard over HTTP, and the CPU per ID-token signature, issue and guard
check, and the authorization-code grant with and without an ID token, in process (bench-jose). Then the growth runs (10^3, 10^5, 10^6 live tokens seeded directly into the store),
the durability crash test (SIGKILL under load, then every acknowledged token must be on
disk), the bounded-store check, and start-up time and idle RSS.

Results go to bench/results/latest.{json,md} and bench/results/chart.svg, and the tables
replace the part of BENCHMARKS.md between the `results` markers.

Needs: wrk (`apt-get install -y wrk`), taskset, sqlite3, psql, redis-cli; PostgreSQL and
Redis on 127.0.0.1 (a database `latchkey_bench` is dropped and created; Redis keys go to
database 15 under the prefix `latchkey-bench:` and are removed afterwards).
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUA = os.path.join(ROOT, "bench", "lua")
RESULTS = os.path.join(ROOT, "bench", "results")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
RELEASE = os.path.join(TARGET, "release")
CLK_TCK = os.sysconf("SC_CLK_TCK")
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef0123456789"
PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
PG_BENCH = "postgres://postgres@127.0.0.1:5432/latchkey_bench"
REDIS_URL = "redis://127.0.0.1:6379/15"
REDIS_PREFIX = "latchkey-bench"
USER, PASSWORD = "bench-user", "bench-password-123"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes and /proc


def cpu_ticks(pid):
    """utime + stime of the whole process (all threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_kib(pid, key="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def dir_bytes(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, name))
            except OSError:
                pass
    return total


class Server:
    """A server process pinned to the server core; `lines` are its stdout lines."""

    def __init__(self, name, argv, env, core, ready_pattern, workdir):
        self.name = name
        self.lines = []
        self.stderr_path = os.path.join(workdir, f"{name}.stderr")
        self.stderr = open(self.stderr_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env)
        started = time.monotonic()
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(core)] + argv,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=full_env,
            text=True,
        )
        self.pid = self.proc.pid
        ready = threading.Event()

        def reader():
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                if re.search(ready_pattern, line):
                    ready.set()
            ready.set()

        threading.Thread(target=reader, daemon=True).start()
        if not ready.wait(600) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"{name} did not start: {self.tail()}")
        self.startup_ms = (time.monotonic() - started) * 1000.0
        self.base = self.find(r"(http://[0-9.:]+)", ready_pattern)

    def find(self, regex, line_pattern=None):
        for line in self.lines:
            if line_pattern is None or re.search(line_pattern, line):
                m = re.search(regex, line)
                if m:
                    return m.group(1)
        return None

    def tail(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def tail_all(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def rss_mib(self):
        return rss_kib(self.pid) / 1024.0

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


# ---------------------------------------------------------------- HTTP helpers


def http(method, url, body=None, headers=None, timeout=30):
    data = None
    headers = dict(headers or {})
    if isinstance(body, dict):
        data = urllib.parse.urlencode(body).encode()
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif isinstance(body, (bytes, str)):
        data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def basic(client_id, secret):
    q = urllib.parse.quote
    raw = f"{q(client_id, safe='')}:{q(secret, safe='')}".encode()
    return base64.b64encode(raw).decode()


def admin_json(server, path, payload):
    admin = server.find(r"(http://[0-9.:]+)", "admin API on")
    status, body = http(
        "POST",
        admin + path,
        json.dumps(payload),
        {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    if status not in (200, 201):
        raise RuntimeError(f"admin {path}: {status} {body[:300]!r}")
    return json.loads(body) if body else {}


def token(base, b64, form):
    status, body = http("POST", base + "/token", form, {"Authorization": "Basic " + b64})
    if status != 200:
        raise RuntimeError(f"/token {form.get('grant_type')}: {status} {body[:300]!r}")
    return json.loads(body), len(body)


def wait_http(url, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http("GET", url, timeout=2)[0] == 200:
                return True
        except OSError:
            time.sleep(0.005)
    return False


# ---------------------------------------------------------------- load


def parse_duration_ms(text):
    m = re.match(r"([0-9.]+)(us|ms|s|m)", text)
    if not m:
        return None
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(cfg, server, url, script, env, connections=None):
    """Runs wrk against `url`; returns its figures plus the server's CPU and RSS."""
    connections = connections or cfg.connections
    full_env = dict(os.environ)
    full_env.update(env)
    argv = [
        "taskset", "-c", str(cfg.load_core), "wrk", "-t1", f"-c{connections}",
        f"-d{cfg.duration}s", "--latency", "--timeout", "10s",
        "-s", os.path.join(LUA, script), url,
    ]
    before = cpu_ticks(server.pid)
    written = write_bytes(server.pid)
    t0 = time.monotonic()
    out = subprocess.run(argv, env=full_env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    after = cpu_ticks(server.pid)
    written = write_bytes(server.pid) - written
    text = out.stdout
    res = {"connections": connections, "wall_s": round(wall, 2)}
    m = re.search(r"(\d+) requests in ([0-9.]+)(ms|s|m)", text)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    res["rps"] = float(m.group(1)) if m else 0.0
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", text, re.M)
        res[f"p{pct}_ms"] = parse_duration_ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", text)
    res["socket_errors"] = m.group(1).strip() if m else ""
    cpu_s = (after - before) / CLK_TCK
    res["cpu_s"] = cpu_s
    res["cpu_us_per_req"] = cpu_s * 1e6 / res["requests"] if res["requests"] else None
    res["rss_mib"] = round(server.rss_mib(), 1)
    # Bytes the server sent to storage (all files: database, WAL, token log, logs) per request.
    res["write_bytes_per_req"] = written / res["requests"] if res["requests"] else None
    if out.returncode != 0 or res["requests"] == 0:
        res["error"] = (out.stderr or text)[-500:]
    return res


# ---------------------------------------------------------------- servers


def latchkey_env(data_dir, extra=None):
    env = {
        "LATCHKEY_LIMITS__PER_CLIENT": "0",
        "LATCHKEY_LIMITS__PER_IP": "0",
        # The load generator is one address with more connections than the per-address cap.
        "LATCHKEY_HTTP__MAX_CONNECTIONS_PER_IP": "0",
        "LATCHKEY_ADMIN__LISTEN": "127.0.0.1:0",
        "LATCHKEY_ADMIN__TOKEN": ADMIN_TOKEN,
        "LATCHKEY_SCOPES__AVAILABLE": "[read, write]",
        "LATCHKEY_SCOPES__DEFAULT": "[read]",
        # The refresh paths get their tokens from the password grant, off by default.
        "LATCHKEY_GRANTS__PASSWORD": "true",
        # Every flow of bench-flow signs the one bench user in, many at once, and each password
        # check is reserved as a failure until it succeeds: the login backoff would throttle
        # correct logins (429). Off for the bench, as the request rates are.
        "LATCHKEY_LIMITS__LOGIN_SLOW_AFTER": "0",
        "LATCHKEY_LIMITS__LOGIN_MAX_FAILURES": "0",
        "LATCHKEY_LIMITS__LOGIN_MAX_FAILURES_PER_IP": "0",
        "TOKIO_WORKER_THREADS": "1",
    }
    env.update(extra or {})
    return env


def start_latchkey(cfg, name, data_dir, extra_env=None):
    os.makedirs(data_dir, exist_ok=True)
    argv = [os.path.join(RELEASE, "latchkey"), "serve", "--listen", "127.0.0.1:0",
            "--data-dir", data_dir]
    return Server(name, argv, latchkey_env(data_dir, extra_env), cfg.server_core,
                  r"latchkey listening on", cfg.workdir)


def setup_clients(server):
    """A confidential client for the token paths, a public one for the code flow, a user."""
    conf = admin_json(server, "/admin/clients", {
        "name": "bench", "grant_types": ["client_credentials", "refresh_token", "password"],
    })
    public = admin_json(server, "/admin/clients", {
        "name": "bench app", "public": True,
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": ["http://127.0.0.1/callback"],
    })
    admin_json(server, "/admin/users", {"username": USER, "password": PASSWORD})
    return {
        "client_id": conf["client_id"],
        "secret": conf["client_secret"],
        "basic": basic(conf["client_id"], conf["client_secret"]),
        "public_id": public["client_id"],
    }


def refresh_file(cfg, server, creds, count):
    """`count` refresh tokens from the password grant, one per line."""
    path = os.path.join(cfg.workdir, f"refresh-{server.name}.txt")
    with open(path, "w") as f:
        for _ in range(count):
            body, _ = token(server.base, creds["basic"], {
                "grant_type": "password", "username": USER, "password": PASSWORD,
            })
            f.write(body["refresh_token"] + "\n")
    return path


def start_baseline(cfg, size):
    argv = [os.path.join(RELEASE, "bench-baseline"), "--listen", "127.0.0.1:0",
            "--body-size", str(size)]
    return Server("baseline", argv, {"TOKIO_WORKER_THREADS": "1"}, cfg.server_core,
                  r"listening on", cfg.workdir)


def start_guard(cfg, seed, ttl=3600, alg=None):
    """bench-guard; with `alg`, its client gets JWT access tokens signed with `alg` and the
    guard verifies them locally."""
    argv = [os.path.join(RELEASE, "bench-guard"), "--listen", "127.0.0.1:0",
            "--seed", str(seed), "--access-ttl", str(ttl)]
    if alg:
        argv += ["--format", "jwt", "--alg", alg]
    s = Server(f"guard-{seed}-{alg or 'opaque'}", argv, {"TOKIO_WORKER_THREADS": "1"}, cfg.server_core,
               r"listening on", cfg.workdir)
    cid = s.find(r"client_id=(\S+)")
    secret = s.find(r"client_secret=(\S+)")
    s.creds = {"client_id": cid, "secret": secret, "basic": basic(cid, secret)}
    return s


# ---------------------------------------------------------------- seeding


SQLITE_TOKENS = {"LATCHKEY_STORE__TOKENS_URL": "durable:"}


def seed_sqlite(cfg, data_dir, n):
    """Runs `latchkey migrate`, then inserts `n` live access tokens in one transaction (tokens
    in SQLite: `store.tokens_url = durable:`)."""
    env = dict(os.environ)
    env.update(latchkey_env(data_dir, SQLITE_TOKENS))
    subprocess.run([os.path.join(RELEASE, "latchkey"), "migrate", "--create", "--data-dir", data_dir],
                   env=env, check=True, capture_output=True)
    db = os.path.join(data_dir, "latchkey.db")
    t0 = time.monotonic()
    sql = f"""
PRAGMA journal_mode=WAL;
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n})
INSERT INTO tokens (digest, kind, client_id, scope, grant_type, family, issued_at, expires_at)
SELECT randomblob(32), 'access_token', 'seeded-client', 'read', 'client_credentials',
       lower(hex(randomblob(16))), unixepoch(), unixepoch() + 86400 FROM c;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
"""
    subprocess.run(["sqlite3", db], input=sql, text=True, check=True, capture_output=True)
    return time.monotonic() - t0


def seed_tokenlog(data_dir, n):
    """Leaves a token log of `n` live access tokens in `data_dir/tokens` (the embedded
    default's layout), written through the log's own API by its bench example and closed
    cleanly (so it ends with a checkpoint, as after a clean shutdown); returns the seconds it
    took. The server makes its SQLite database at start."""
    tokens = os.path.join(data_dir, "tokens")
    shutil.rmtree(data_dir, ignore_errors=True)
    os.makedirs(data_dir)
    t0 = time.monotonic()
    subprocess.run([os.path.join(RELEASE, "examples", "tokenlog_bench"), "seed", tokens,
                    str(n), "64"], check=True, capture_output=True)
    return time.monotonic() - t0


def replay_ms(server):
    """The token log's open time the server logged at start (`token log open ... replay_ms`)."""
    m = re.search(r"replay_ms\W+(\d+)", server.tail_all())
    return int(m.group(1)) if m else None


def seed_pg(n):
    """Inserts `n` live access tokens into the benchmark database in one statement (the
    schema must exist: the server migrates at start)."""
    t0 = time.monotonic()
    psql(PG_BENCH, f"""
INSERT INTO tokens (digest, kind, client_id, scope, grant_type, family, issued_at, expires_at)
SELECT decode(md5(random()::text || i::text) || md5(i::text || random()::text), 'hex'),
       'access_token', 'seeded-client', 'read', 'client_credentials', md5(i::text),
       extract(epoch from now())::bigint, extract(epoch from now())::bigint + 86400
FROM generate_series(1, {n}) AS i""")
    psql(PG_BENCH, "VACUUM ANALYZE tokens")
    return time.monotonic() - t0


def psql(url, sql):
    out = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"psql: {out.stderr.strip()[:300]}")
    return out.stdout.strip()


def reset_pg():
    psql(PG_ADMIN, "DROP DATABASE IF EXISTS latchkey_bench WITH (FORCE)")
    psql(PG_ADMIN, "CREATE DATABASE latchkey_bench")


def clean_redis():
    keys = subprocess.run(["redis-cli", "-n", "15", "--scan", "--pattern", f"{REDIS_PREFIX}:*"],
                          capture_output=True, text=True, check=False).stdout.split()
    for i in range(0, len(keys), 1000):
        subprocess.run(["redis-cli", "-n", "15", "unlink"] + keys[i:i + 1000],
                       capture_output=True, check=False)


# ---------------------------------------------------------------- the runs


def write_bytes(pid):
    """The bytes `pid` caused to be written to storage so far (/proc/PID/io `write_bytes`)."""
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def log_digests(tokens_dir):
    """The digests of every token in a token log (`<data_dir>/tokens`), read from the `PUT`
    operations of its whole frames (see crates/latchkey-tokenlog/src/ops.rs)."""
    out = set()
    for name in sorted(os.listdir(tokens_dir)):
        if not name.endswith(".log"):
            continue
        with open(os.path.join(tokens_dir, name), "rb") as f:
            data = f.read()
        pos = 8
        while pos + 8 <= len(data):
            n = int.from_bytes(data[pos:pos + 4], "little")
            start = pos + 8
            if start + n > len(data):
                break  # an unfinished write, cut off at the next start
            payload, i = data[start:start + n], 0

            def s16(i):
                return i + 2 + int.from_bytes(payload[i:i + 2], "little")
            while i < len(payload):
                tag = payload[i]
                if tag == 1:
                    out.add(bytes(payload[i + 1:i + 33]))
                    i = s16(s16(i + 38))
                    if payload[i] == 1:
                        i = s16(i + 1)
                    else:
                        i += 1
                    i += 4 + int.from_bytes(payload[i:i + 4], "little")
                elif tag in (2, 3):
                    i += 33
                elif tag in (4, 5, 6):
                    i = s16(i + 1)
                elif tag == 7:
                    i = s16(s16(i + 1))
                else:
                    raise RuntimeError(f"token log {name}: unknown operation {tag}")
            pos = start + n
    return out


def row(path, store, res, note=""):
    r = dict(res)
    r.update({"path": path, "store": store, "note": note})
    log(f"  {path:<34} {store:<14} {r['rps']:>9.0f} req/s  p50 {fmt(r['p50_ms'])} ms"
        f"  p99 {fmt(r['p99_ms'])} ms  cpu {fmt(r['cpu_us_per_req'])} us/req"
        f"  rss {r['rss_mib']} MiB  written {fmt(r.get('write_bytes_per_req'), 0)} B/req"
        f"  non2xx {r['non2xx']} {r.get('error', '')}")
    return r


def fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def token_paths(cfg, store_label, extra_env, results, refresh=True, introspect=True,
                flow=False, audit_off=False):
    """client_credentials (and refresh, introspection, the code flow) on one store."""
    data_dir = os.path.join(cfg.workdir, f"data-{store_label}")
    s = start_latchkey(cfg, store_label, data_dir, extra_env)
    try:
        creds = setup_clients(s)
        body, size = token(s.base, creds["basic"], {"grant_type": "client_credentials"})
        env = {"BENCH_BASIC": creds["basic"], "BENCH_TOKEN": body["access_token"]}
        results.append(row("client_credentials", store_label,
                           run_wrk(cfg, s, s.base + "/token", "client_credentials.lua", env)))
        if audit_off:
            s.stop()
            off = dict(extra_env or {})
            off["LATCHKEY_LOG__FILTER"] = "info,latchkey::audit=warn"
            s = start_latchkey(cfg, store_label + "-quiet", data_dir + "-quiet", off)
            creds = setup_clients(s)
            env["BENCH_BASIC"] = creds["basic"]
            results.append(row("client_credentials, audit log off", store_label,
                               run_wrk(cfg, s, s.base + "/token", "client_credentials.lua", env)))
            s.stop()
            s = start_latchkey(cfg, store_label + "-2", data_dir + "-2", extra_env)
            creds = setup_clients(s)
            body, size = token(s.base, creds["basic"], {"grant_type": "client_credentials"})
            env = {"BENCH_BASIC": creds["basic"], "BENCH_TOKEN": body["access_token"]}
        if introspect:
            results.append(row("introspection", store_label,
                               run_wrk(cfg, s, s.base + "/introspect", "introspect.lua", env)))
        if refresh:
            env["BENCH_REFRESH_FILE"] = refresh_file(cfg, s, creds, cfg.connections + 8)
            results.append(row("refresh (rotating)", store_label,
                               run_wrk(cfg, s, s.base + "/token", "refresh.lua", env)))
        if flow:
            results.append(row("authorization code + PKCE flow", store_label,
                               run_flow(cfg, s, creds)))
        return size, s.rss_mib()
    finally:
        s.stop()
        for d in (data_dir, data_dir + "-quiet", data_dir + "-2"):
            shutil.rmtree(d, ignore_errors=True)


def dpop_paths(cfg, results):
    """client_credentials with a DPoP proof per request next to plain bearer, on the memory
    store: the proofs are signed before the run (bench-dpop-proofs), so the server CPU per
    token is verification, the jti replay check and binding only."""
    data_dir = os.path.join(cfg.workdir, "data-dpop")
    # Proofs are made before the run; they must stay inside the iat window until used.
    s = start_latchkey(cfg, "dpop", data_dir, {
        "LATCHKEY_STORE__URL": "memory:", "LATCHKEY_DPOP__PROOF_MAX_AGE": "600",
    })
    try:
        creds = setup_clients(s)
        env = {"BENCH_BASIC": creds["basic"]}
        plain = run_wrk(cfg, s, s.base + "/token", "client_credentials.lua", env)
        results.append(row("client_credentials, bearer", "memory", plain))
        # Enough proofs for the plain rate over the run, with room to spare: each is used once.
        count = int(max(plain["rps"], 1000) * cfg.duration * 1.5) + 1000
        path = os.path.join(cfg.workdir, "dpop-proofs.txt")
        with open(path, "w") as f:
            subprocess.run([os.path.join(RELEASE, "bench-dpop-proofs"), "--htu",
                            s.base + "/token", "--count", str(count)], stdout=f, check=True)
        env["BENCH_PROOF_FILE"] = path
        results.append(row("client_credentials, DPoP proof (ES256)", "memory",
                           run_wrk(cfg, s, s.base + "/token", "client_credentials_dpop.lua",
                                   env)))
    finally:
        s.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def run_flow(cfg, server, creds):
    argv = ["taskset", "-c", str(cfg.load_core), os.path.join(RELEASE, "bench-flow"),
            "--base", server.base, "--client-id", creds["public_id"], "--username", USER,
            "--password", PASSWORD, "--connections", str(cfg.flow_connections),
            "--duration", str(cfg.duration)]
    before = cpu_ticks(server.pid)
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    after = cpu_ticks(server.pid)
    try:
        data = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        data = {"flows": 0, "flows_per_sec": 0.0, "errors": -1, "last_error": out.stderr[-300:]}
    cpu_s = (after - before) / CLK_TCK
    res = {
        "connections": cfg.flow_connections, "requests": data["flows"],
        "rps": data["flows_per_sec"], "p50_ms": data.get("p50_ms"),
        "p99_ms": data.get("p99_ms"), "non2xx": data.get("errors", 0), "socket_errors": "",
        "cpu_s": cpu_s, "cpu_us_per_req": cpu_s * 1e6 / data["flows"] if data["flows"] else None,
        "rss_mib": round(server.rss_mib(), 1), "unit": "flows/s (5 requests each)",
    }
    if data.get("errors"):
        res["error"] = data.get("last_error", "")
    return res


def guard_paths(cfg, results, seed=1000, store_label="memory (in-process)"):
    s = start_guard(cfg, seed)
    try:
        creds = s.creds
        body, _ = token(s.base, creds["basic"], {"grant_type": "client_credentials"})
        env = {"BENCH_BASIC": creds["basic"], "BENCH_TOKEN": body["access_token"]}
        out = {}
        out["guard"] = row("bearer guard (in-process)", store_label,
                           run_wrk(cfg, s, s.base + "/api/whoami", "guard.lua", env))
        results.append(out["guard"])
        return s, env, out
    except Exception:
        s.stop()
        raise


JWT_ALGS = ("ES256", "RS256", "EdDSA")


def jwt_paths(cfg, results):
    """Signing on the token path: over HTTP (bench-guard, memory store), client_credentials
    issuing opaque then JWT access tokens per alg, and the guard checking an opaque token
    (store lookup) then a JWT (verified locally); in process (bench-jose), the CPU per
    ID-token signature, per issue, per guard check with the JWT cache off and on, and per
    authorization-code grant with openid (an ID token) and without."""
    label = "memory (in-process)"
    for alg in (None,) + JWT_ALGS:
        s = start_guard(cfg, 0, alg=alg)
        try:
            creds = s.creds
            body, _ = token(s.base, creds["basic"], {"grant_type": "client_credentials"})
            env = {"BENCH_BASIC": creds["basic"], "BENCH_TOKEN": body["access_token"]}
            kind = f"JWT {alg}" if alg else "opaque"
            results.append(row(f"client_credentials, {kind} access token", label,
                               run_wrk(cfg, s, s.base + "/token", "client_credentials.lua", env),
                               note=f"token {len(body['access_token'])} chars"))
            check = f"JWT {alg}, verified locally" if alg else "opaque, store lookup"
            results.append(row(f"bearer guard, {check}", label,
                               run_wrk(cfg, s, s.base + "/api/whoami", "guard.lua", env)))
        finally:
            s.stop()
    argv = ["taskset", "-c", str(cfg.server_core), os.path.join(RELEASE, "bench-jose"),
            "--iterations", "500"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    for r in rows:
        log(f"  {r['alg']:<6} ID token sign {r['id_token_sign_us']:.1f} us, issue JWT "
            f"{r['jwt_issue_us']:.1f} / opaque {r['opaque_issue_us']:.1f} us, guard JWT "
            f"{r['jwt_guard_uncached_us']:.1f} (cached {r['jwt_guard_us']:.1f}) / opaque "
            f"{r['opaque_guard_us']:.1f} us, code grant with openid {r['code_openid_us']:.1f} / "
            f"without {r['code_plain_us']:.1f} us")
    return rows


def jose_table(rows):
    lines = [
        "| alg | JWT length | ID token: sign µs | issue: JWT µs | issue: opaque µs "
        "| guard: JWT µs (verify) | guard: JWT µs (cached) | guard: opaque µs (store) "
        "| code grant + ID token µs | code grant, no openid µs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['alg']} | {r['jwt_len']} | {r['id_token_sign_us']:.1f} | "
            f"{r['jwt_issue_us']:.1f} | {r['opaque_issue_us']:.1f} | "
            f"{r['jwt_guard_uncached_us']:.1f} | {r['jwt_guard_us']:.1f} | "
            f"{r['opaque_guard_us']:.1f} | {r['code_openid_us']:.1f} | "
            f"{r['code_plain_us']:.1f} |")
    return "\n".join(lines)


def crash_test(cfg, extra_env=None, label="crash"):
    """SIGKILLs the embedded-store server under client_credentials load; every token wrk
    received must be stored afterwards (in the token log, or in SQLite with
    `store.tokens_url = durable:`)."""
    data_dir = os.path.join(cfg.workdir, f"data-{label}")
    s = start_latchkey(cfg, label, data_dir, extra_env)
    creds = setup_clients(s)
    ack = os.path.join(cfg.workdir, "acked.txt")
    open(ack, "w").close()
    env = dict(os.environ)
    env.update({"BENCH_BASIC": creds["basic"], "BENCH_ACK_FILE": ack})
    load = subprocess.Popen(
        ["taskset", "-c", str(cfg.load_core), "wrk", "-t1", f"-c{cfg.connections}",
         "-d4s", "--timeout", "10s", "-s", os.path.join(LUA, "crash.lua"), s.base + "/token"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    os.kill(s.pid, signal.SIGKILL)
    s.proc.wait()
    s.stderr.close()
    load.communicate()
    with open(ack) as f:
        acked = [line.strip() for line in f if line.strip()]
    tokens_dir = os.path.join(data_dir, "tokens")
    if os.path.isdir(tokens_dir):
        stored = log_digests(tokens_dir)
    else:
        # Open the database as the next start would (recovering the WAL), read-only otherwise.
        db = sqlite3.connect(os.path.join(data_dir, "latchkey.db"))
        stored = {bytes(r[0]) for r in db.execute("SELECT digest FROM tokens")}
        db.close()
    missing = [t for t in acked if hashlib.sha256(t.encode()).digest() not in stored]
    # And the server starts again on the same directory, with an acknowledged token working.
    s2 = start_latchkey(cfg, label + "-restart", data_dir, extra_env)
    try:
        status, body = http("POST", s2.base + "/introspect", {"token": acked[-1]} if acked else {},
                            {"Authorization": "Basic " + creds["basic"]})
        active = status == 200 and json.loads(body).get("active") is True
    finally:
        s2.stop()
    res = {"acknowledged": len(acked), "stored_rows": len(stored), "missing": len(missing),
           "last_acked_active_after_restart": active}
    log(f"  crash test: {res}")
    return res


def bounded_test(cfg):
    """Constant client_credentials load with a 2 s access-token TTL: the store must stop
    growing once tokens expire as fast as they are issued."""
    out = {}
    short = {"LATCHKEY_TOKENS__ACCESS_TTL": "2"}
    for label, extra in (("embedded (token log)", {}),
                         ("embedded (SQLite)", {"LATCHKEY_STORE__TOKENS_URL": "durable:"}),
                         ("memory", {"LATCHKEY_STORE__URL": "memory:"})):
        env_extra = dict(short)
        env_extra.update(extra)
        data_dir = os.path.join(cfg.workdir, f"data-bounded-{len(out)}")
        s = start_latchkey(cfg, f"bounded-{len(out)}", data_dir, env_extra)
        try:
            creds = setup_clients(s)
            samples = []
            for _ in range(cfg.bounded_rounds):
                r = run_wrk(cfg, s, s.base + "/token", "client_credentials.lua",
                            {"BENCH_BASIC": creds["basic"]})
                sample = {"issued": r["requests"], "rss_mib": s.rss_mib(),
                          "disk_mib": dir_bytes(data_dir) / 2**20}
                if "SQLite" in label:
                    db = sqlite3.connect(os.path.join(data_dir, "latchkey.db"))
                    sample["rows"] = db.execute("SELECT count(*) FROM tokens").fetchone()[0]
                    db.close()
                samples.append(sample)
            out[label] = samples
            log(f"  bounded {label}: {samples}")
        finally:
            s.stop()
    return out


def growth(cfg, sizes, results):
    """The token paths with 10^3..10^6 live tokens seeded directly into the store."""
    out = []
    for n in sizes:
        # Embedded store, tokens in the token log (the default): seeded through the log's API
        # before the server starts, which loads it (checkpoint, then the log after it).
        data_dir = os.path.join(cfg.workdir, f"data-growth-log-{n}")
        seed_s = seed_tokenlog(data_dir, n)
        disk = dir_bytes(data_dir)
        s = start_latchkey(cfg, f"growth-log-{n}", data_dir)
        try:
            start_ms, open_ms = s.startup_ms, replay_ms(s)
            creds = setup_clients(s)
            body, _ = token(s.base, creds["basic"], {"grant_type": "client_credentials"})
            env = {"BENCH_BASIC": creds["basic"], "BENCH_TOKEN": body["access_token"]}
            idle = s.rss_mib()
            cc = run_wrk(cfg, s, s.base + "/token", "client_credentials.lua", env)
            intro = run_wrk(cfg, s, s.base + "/introspect", "introspect.lua", env)
        finally:
            s.stop()
            shutil.rmtree(data_dir, ignore_errors=True)
        out.append({"store": "embedded (token log)", "tokens": n, "seed_s": round(seed_s, 2),
                    "disk_mib": disk / 2**20, "idle_rss_mib": idle,
                    "start_ms": round(start_ms, 1), "log_open_ms": open_ms,
                    "client_credentials": cc, "introspection": intro})
        log(f"  growth token log {n}: cc {cc['rps']:.0f}/s {fmt(cc['cpu_us_per_req'])} us, "
            f"introspect {intro['rps']:.0f}/s {fmt(intro['cpu_us_per_req'])} us, "
            f"disk {disk / 2**20:.1f} MiB, rss {idle:.1f} MiB, start {start_ms:.0f} ms "
            f"(log open {open_ms} ms), seeded in {seed_s:.1f} s")
        # Embedded store, tokens in SQLite: seeded with SQL before the server starts.
        data_dir = os.path.join(cfg.workdir, f"data-growth-{n}")
        seed_s = seed_sqlite(cfg, data_dir, n)
        disk = dir_bytes(data_dir)
        s = start_latchkey(cfg, f"growth-sqlite-{n}", data_dir, SQLITE_TOKENS)
        try:
            creds = setup_clients(s)
            body, _ = token(s.base, creds["basic"], {"grant_type": "client_credentials"})
            env = {"BENCH_BASIC": creds["basic"], "BENCH_TOKEN": body["access_token"]}
            idle = s.rss_mib()
            cc = run_wrk(cfg, s, s.base + "/token", "client_credentials.lua", env)
            intro = run_wrk(cfg, s, s.base + "/introspect", "introspect.lua", env)
        finally:
            s.stop()
            shutil.rmtree(data_dir, ignore_errors=True)
        out.append({"store": "embedded (SQLite)", "tokens": n, "seed_s": round(seed_s, 2),
                    "disk_mib": disk / 2**20, "idle_rss_mib": idle,
                    "client_credentials": cc, "introspection": intro})
        log(f"  growth sqlite {n}: cc {cc['rps']:.0f}/s {fmt(cc['cpu_us_per_req'])} us, "
            f"introspect {intro['rps']:.0f}/s, disk {disk / 2**20:.1f} MiB")
        if cfg.pg_growth:
            # PostgreSQL: a fresh database, migrated by a first start, then seeded with SQL.
            reset_pg()
            pg_env = {"LATCHKEY_STORE__URL": PG_BENCH}
            s = start_latchkey(cfg, f"growth-pg-init-{n}", data_dir + "-pg", pg_env)
            s.stop()
            seed_s = seed_pg(n)
            disk = int(psql(PG_BENCH, "SELECT pg_total_relation_size('tokens')"))
            s = start_latchkey(cfg, f"growth-pg-{n}", data_dir + "-pg", pg_env)
            try:
                creds = setup_clients(s)
                body, _ = token(s.base, creds["basic"], {"grant_type": "client_credentials"})
                env = {"BENCH_BASIC": creds["basic"], "BENCH_TOKEN": body["access_token"]}
                idle = s.rss_mib()
                cc = run_wrk(cfg, s, s.base + "/token", "client_credentials.lua", env)
                intro = run_wrk(cfg, s, s.base + "/introspect", "introspect.lua", env)
            finally:
                s.stop()
                shutil.rmtree(data_dir + "-pg", ignore_errors=True)
            out.append({"store": "PostgreSQL", "tokens": n, "seed_s": round(seed_s, 2),
                        "disk_mib": disk / 2**20, "idle_rss_mib": idle,
                        "client_credentials": cc, "introspection": intro})
            log(f"  growth pg {n}: cc {cc['rps']:.0f}/s {fmt(cc['cpu_us_per_req'])} us, "
                f"introspect {intro['rps']:.0f}/s, table {disk / 2**20:.1f} MiB, "
                f"seeded in {seed_s:.1f} s")
        # Memory store: seeded in-process by bench-guard.
        t0 = time.monotonic()
        g = start_guard(cfg, n)
        seed_g = time.monotonic() - t0
        try:
            body, _ = token(g.base, g.creds["basic"], {"grant_type": "client_credentials"})
            env = {"BENCH_BASIC": g.creds["basic"], "BENCH_TOKEN": body["access_token"]}
            idle = g.rss_mib()
            guard = run_wrk(cfg, g, g.base + "/api/whoami", "guard.lua", env)
            intro = run_wrk(cfg, g, g.base + "/introspect", "introspect.lua", env)
            cc = run_wrk(cfg, g, g.base + "/token", "client_credentials.lua", env)
        finally:
            g.stop()
        out.append({"store": "memory (in-process)", "tokens": n, "seed_s": round(seed_g, 2),
                    "idle_rss_mib": idle, "guard": guard, "introspection": intro,
                    "client_credentials": cc})
        log(f"  growth memory {n}: guard {guard['rps']:.0f}/s {fmt(guard['cpu_us_per_req'])} us "
            f"(non-2xx {guard['non2xx']}), introspect {intro['rps']:.0f}/s "
            f"{fmt(intro['cpu_us_per_req'])} us, cc {cc['rps']:.0f}/s "
            f"{fmt(cc['cpu_us_per_req'])} us, rss {idle:.1f} MiB")
    return out


# Where a profile's samples go, by the first pattern a symbol (or its shared object) matches.
CATEGORIES = [
    ("kernel: scheduling, wake-ups, thread hand-offs", r"finish_task_switch|schedule|futex|"
     r"try_to_wake|raw_spin_unlock_irq|__switch_to|enqueue_|dequeue_|pick_next|wake_up"),
    ("kernel: network (TCP, loopback, epoll)", r"\btcp_|sock|skb|epoll|\bnet_|\bip_|"
     r"__dev_|loopback|napi|inet|\bsk_|sendto|recvfrom|softirq"),
    ("kernel: page faults (zeroing new pages)", r"clear_page|folio_zero|page_fault|"
     r"handle_mm_fault|huge_pmd|do_anonymous"),
    ("kernel: file writes and fsync (WAL, log)", r"copy_folio|ext4|filemap|vfs_write|fsync|"
     r"pwrite|generic_perform_write|block_write|mark_buffer"),
    ("kernel: other (syscall entry, getrandom)", r"\[k\]"),
    ("allocation (mimalloc, memmove)", r"malloc|free|_int_|realloc|memmove|memcpy|memset|"
     r"unlink_chunk|consolidate|__rust_alloc|__rust_dealloc|raw_vec|\bmi_|_mi_"),
    ("formatting and logging (tracing, JSON lines)", r"tracing|fmt::|serde_json::ser|"
     r"Write>::write|write_str|format_escaped|WriteAdaptor"),
    ("SQLite (rusqlite, libsqlite3)", r"sqlite|rusqlite|Vdbe|Btree|pcache|wal|pager|"
     r"Pager|Wal"),
    ("hashing and randomness (sha2, base64, getrandom)", r"sha2|Sha256|base64|getrandom|"
     r"compress256|chacha"),
    ("HTTP (hyper, axum, tower, http)", r"hyper|axum|tower|http::|httparse|h1::"),
    ("async runtime (tokio)", r"tokio"),
    ("latchkey code and its maps (core, stores, adapter, server)", r"latchkey|btree|hashbrown"),
    ("other", r"."),
]


def categorize(perf_data):
    """Sums a perf profile's samples by CATEGORIES; returns (category, percent) pairs."""
    rep = subprocess.run(["perf", "report", "-i", perf_data, "--stdio", "--no-children",
                          "--sort", "dso,symbol", "--percent-limit", "0"],
                         capture_output=True, text=True, check=False).stdout
    sums = {name: 0.0 for name, _ in CATEGORIES}
    for line in rep.splitlines():
        m = re.match(r"\s*([0-9.]+)%\s+(.*)", line)
        if not m:
            continue
        pct, rest = float(m.group(1)), m.group(2)
        for name, pattern in CATEGORIES:
            if re.search(pattern, rest):
                sums[name] += pct
                break
    return sorted(((n, p) for n, p in sums.items() if p >= 0.05), key=lambda x: -x[1])


def profile(cfg):
    """A flat `perf` profile (by thread, by category, by shared object, by symbol) of the
    server during client_credentials: `latchkey serve` on the memory and on the embedded
    store, and the library alone (bench-guard). Written to bench/results/profile-*.txt."""
    out = {}
    for label, extra in (("memory", {"LATCHKEY_STORE__URL": "memory:"}), ("sqlite", {}),
                         ("library", None)):
        data_dir = os.path.join(cfg.workdir, f"data-profile-{label}")
        if extra is None:
            s = start_guard(cfg, 0)
            creds = s.creds
        else:
            s = start_latchkey(cfg, f"profile-{label}", data_dir, extra)
        perf_data = os.path.join(cfg.workdir, f"perf-{label}.data")
        try:
            if extra is not None:
                creds = setup_clients(s)
            rec = subprocess.Popen(["perf", "record", "-F", "1999", "-o", perf_data, "-p",
                                    str(s.pid), "--", "sleep", str(cfg.duration)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            res = run_wrk(cfg, s, s.base + "/token", "client_credentials.lua",
                          {"BENCH_BASIC": creds["basic"]})
            rec.wait(60)
        finally:
            s.stop()
        cats = categorize(perf_data)
        text = []
        for sort in ("comm", "dso", "symbol"):
            rep = subprocess.run(["perf", "report", "-i", perf_data, "--stdio", "--no-children",
                                  "--sort", sort, "--percent-limit", "0.7"],
                                 capture_output=True, text=True, check=False).stdout
            text.append("\n".join(re.sub(r"\s+-\s+-\s*$", "", l).rstrip()
                                   for l in rep.splitlines() if l and not l.startswith("#")))
        cpu = res.get("cpu_us_per_req") or 0.0
        by_cat = "\n".join(f"    {p:5.1f}%  {p * cpu / 100:5.1f} µs  {n}" for n, p in cats)
        path = os.path.join(cfg.out_dir, f"profile-{label}.txt")
        os.makedirs(cfg.out_dir, exist_ok=True)
        with open(path, "w") as f:
            f.write(f"perf, client_credentials on {label} ({res['rps']:.0f} req/s, "
                    f"{cpu:.1f} µs server CPU per request)\n\nby category:\n{by_cat}\n\n"
                    f"by thread:\n{text[0]}\n\nby shared object:\n{text[1]}\n\n"
                    f"by symbol:\n{text[2]}\n")
        out[label] = {"file": os.path.relpath(path, ROOT), "cpu_us_per_req": cpu,
                      "categories": cats}
        log(f"  profile {label}: {path}")
    return out


def startup(cfg):
    """Start-up time (spawn to `/healthz` answering) and idle RSS, fresh and existing dir."""
    out = {}
    data_dir = os.path.join(cfg.workdir, "data-startup")
    for label in ("fresh data dir (creates and migrates the database)", "existing data dir"):
        times = []
        for i in range(3 if label.startswith("existing") else 1):
            t0 = time.monotonic()
            s = start_latchkey(cfg, f"startup-{len(out)}-{i}", data_dir)
            ok = wait_http(s.base + "/healthz")
            times.append((time.monotonic() - t0) * 1000.0)
            time.sleep(0.5)
            rss = s.rss_mib()
            anon = rss_kib(s.pid, "RssAnon") / 1024.0
            s.stop()
            if not ok:
                raise RuntimeError("healthz never answered")
        out[label] = {"startup_ms": round(min(times), 1), "idle_rss_mib": round(rss, 1),
                      "idle_anon_mib": round(anon, 1)}
    log(f"  start-up: {out}")
    return out


# ---------------------------------------------------------------- report


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    kernel = platform.release()
    return f"{cpu}, {os.cpu_count()} cores, {mem} MiB RAM, Linux {kernel}"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def table(results, baseline_rps):
    lines = [
        "| path | store | requests/s | ratio to baseline | p50 ms | p99 ms | server CPU µs/req "
        "| server RSS MiB | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r["path"] == "baseline":
            ratio = "100%"
        elif baseline_rps:
            ratio = f"{r['rps'] / baseline_rps * 100:.0f}%"
        else:
            ratio = "-"
        rps = f"{r['rps']:,.0f}" if r["rps"] >= 100 else f"{r['rps']:.1f}"
        if r.get("unit"):
            rps += " flows"
            ratio = "n/a"
        errors = r["non2xx"] + (1 if r.get("error") else 0)
        lines.append(
            f"| {r['path']} | {r['store']} | {rps} | {ratio} | {fmt(r['p50_ms'])} | "
            f"{fmt(r['p99_ms'])} | {fmt(r['cpu_us_per_req'], 1)} | {r['rss_mib']} | {errors} |")
    return "\n".join(lines)


def growth_table(rows):
    lines = [
        "| store | live tokens | path | requests/s | p99 ms | server CPU µs/req | RSS MiB after | disk MiB |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for g in rows:
        for path in ("client_credentials", "introspection", "guard"):
            if path not in g:
                continue
            r = g[path]
            disk = f"{g['disk_mib']:.1f}" if "disk_mib" in g else "-"
            lines.append(
                f"| {g['store']} | {g['tokens']:,} | {path} | {r['rps']:,.0f} | {fmt(r['p99_ms'])} | "
                f"{fmt(r['cpu_us_per_req'], 1)} | {r['rss_mib']} | {disk} |")
    return "\n".join(lines)


def per_million(rows):
    """RSS and disk per million live tokens, from the smallest and largest growth runs."""
    lines, seen = [], set()
    for store, key, what in (("memory (in-process)", "idle_rss_mib", "RSS"),
                             ("embedded (token log)", "disk_mib",
                              "disk (segments, checkpoint, database)"),
                             ("embedded (token log)", "idle_rss_mib", "RSS"),
                             ("embedded (SQLite)", "disk_mib", "disk (database + WAL)"),
                             ("PostgreSQL", "disk_mib", "disk (tokens table with indexes)"),
                             ("embedded (SQLite)", "idle_rss_mib", "RSS")):
        runs = sorted((g for g in rows if g["store"] == store and key in g),
                      key=lambda g: g["tokens"])
        if len(runs) < 2 or runs[-1]["tokens"] == runs[0]["tokens"]:
            continue
        lo, hi = runs[0], runs[-1]
        per = (hi[key] - lo[key]) / (hi["tokens"] - lo["tokens"]) * 1e6
        lines.append(f"- {store}, {what}: {per:.0f} MiB per million live tokens "
                     f"({lo[key]:.1f} MiB at {lo['tokens']:,}, {hi[key]:.1f} MiB at "
                     f"{hi['tokens']:,}), {per * 2**20 / 1e6:.0f} bytes per token")
        if store in seen:
            continue
        seen.add(store)
        for path in ("client_credentials", "introspection", "guard"):
            if path in lo and path in hi and lo[path]["rps"]:
                lines.append(f"  - {path}: {hi[path]['rps'] / lo[path]['rps'] * 100:.0f}% of the "
                             f"requests/s at {lo['tokens']:,}; CPU/req "
                             f"{fmt(lo[path]['cpu_us_per_req'], 1)} -> "
                             f"{fmt(hi[path]['cpu_us_per_req'], 1)} µs")
        if "start_ms" in lo and "start_ms" in hi:
            lines.append(f"  - start (spawn to listening): {lo['start_ms']:.0f} ms at "
                         f"{lo['tokens']:,}, {hi['start_ms']:.0f} ms at {hi['tokens']:,} "
                         f"(token log open: {lo.get('log_open_ms')} -> {hi.get('log_open_ms')} ms)")
    return lines + [""] if lines else []


def svg_chart(results, baseline_rps, path):
    """A horizontal bar chart of requests/s per path, with the baseline as a line."""
    bars = [r for r in results if not r.get("unit")]
    width, left, bar_h, gap, top = 980, 410, 20, 8, 40
    height = top + len(bars) * (bar_h + gap) + 40
    peak = max([r["rps"] for r in bars] + [baseline_rps, 1.0])
    scale = (width - left - 120) / peak
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="22" font-size="15" font-weight="bold">Latchkey requests/s per path '
        f'(64 connections; dashed line: baseline axum handler)</text>',
    ]
    for i, r in enumerate(bars):
        y = top + i * (bar_h + gap)
        w = max(r["rps"] * scale, 1)
        colour = "#888" if r["path"].startswith("baseline") else "#2f6db3"
        label = f"{r['path']} · {r['store']}"
        ratio = f" ({r['rps'] / baseline_rps * 100:.0f}%)" if baseline_rps and r["path"] != "baseline" else ""
        out.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{esc(label)}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}"/>')
        out.append(f'<text x="{left + w + 4:.1f}" y="{y + 14}">{r["rps"]:,.0f}{ratio}</text>')
    bx = left + baseline_rps * scale
    out.append(f'<line x1="{bx:.1f}" y1="{top - 6}" x2="{bx:.1f}" y2="{height - 30}" '
               f'stroke="#c33" stroke-dasharray="4 3"/>')
    out.append(f'<text x="{bx:.1f}" y="{height - 14}" text-anchor="middle" fill="#c33">'
               f'baseline {baseline_rps:,.0f}/s</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def report_md(data):
    b = data.get("baseline_rps", 0.0)
    parts = [
        f"Measured {data['date']} on {data['machine']}; load average at start "
        f"{data['load_before']}, at end {data['load_after']}. wrk {data['wrk']}: one thread "
        f"on core {data['load_core']}, {data['connections']} connections, {data['duration']} s "
        f"per path; each server alone on core {data['server_core']} with one tokio worker. "
        f"Token response: {data.get('token_size', '?')} bytes (the baseline answers the same size).",
        "",
        table(data["results"], b),
        "",
    ]
    if data.get("errors"):
        parts.append("Parts that failed in this run: " + "; ".join(data["errors"]))
        parts.append("")
    if data.get("jose"):
        parts.append("Signing on the token path, in process (`bench-jose`, memory store, no "
                     "HTTP): CPU per operation. Issue is a whole client_credentials request; the "
                     "guard check with the JWT cache off verifies the signature every time.")
        parts.append("")
        parts.append(jose_table(data["jose"]))
        parts.append("")
    if data.get("startup"):
        parts.append("Start-up (spawn until `/healthz` answers) and idle RSS of `latchkey serve`:")
        parts.append("")
        for k, v in data["startup"].items():
            parts.append(f"- {k}: {v['startup_ms']} ms; RSS {v['idle_rss_mib']} MiB, of which "
                         f"{v.get('idle_anon_mib', '?')} MiB private (RssAnon), the rest "
                         f"file-backed pages of the executable")
        parts.append("")
    if data.get("crash"):
        c = data["crash"]
        parts.append(
            f"Crash test (embedded store, SIGKILL after 2 s of client_credentials load): "
            f"{c['acknowledged']} tokens acknowledged, {c['missing']} missing from the "
            f"database after the kill, {c['stored_rows']} rows stored; the last acknowledged "
            f"token active after restart: {c['last_acked_active_after_restart']}.")
        parts.append("")
    if data.get("profiles"):
        parts.append("Where the server's CPU goes during client_credentials (perf, flat profile "
                     "by category; µs are shares of the CPU per request; full profiles in "
                     "`bench/results/profile-*.txt`):")
        parts.append("")
        labels = list(data["profiles"])
        names = [n for n, _ in CATEGORIES]
        head = " | ".join(f"{l} ({data['profiles'][l]['cpu_us_per_req']:.0f} µs/req)"
                          for l in labels)
        parts.append(f"| category | {head} |")
        parts.append("|---|" + "---:|" * len(labels))
        for n in names:
            cells = []
            for l in labels:
                p = dict(data["profiles"][l]["categories"]).get(n, 0.0)
                cells.append(f"{p:.0f}% ({p * data['profiles'][l]['cpu_us_per_req'] / 100:.1f})")
            parts.append(f"| {n} | " + " | ".join(cells) + " |")
        parts.append("")
    if data.get("growth"):
        parts.append("Growth (live tokens seeded directly into the store before the run):")
        parts.append("")
        parts.append(growth_table(data["growth"]))
        parts.append("")
        parts.extend(per_million(data["growth"]))
    if data.get("bounded"):
        parts.append(f"Bounded by expiry (access-token TTL 2 s, {data['bounded_rounds']} rounds "
                     f"of {data['duration']} s of client_credentials load):")
        parts.append("")
        for label, samples in data["bounded"].items():
            desc = "; ".join(
                f"after round {i + 1}: {s['issued']} issued, RSS {s['rss_mib']:.1f} MiB, disk "
                f"{s['disk_mib']:.1f} MiB" + (f", {s['rows']} rows" if "rows" in s else "")
                for i, s in enumerate(samples))
            parts.append(f"- {label}: {desc}")
        parts.append("")
    return "\n".join(parts)


def update_doc(md):
    doc = os.path.join(ROOT, "BENCHMARKS.md")
    if not os.path.exists(doc):
        return
    with open(doc) as f:
        text = f.read()
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        with open(doc, "w") as f:
            f.write(f"{head}{start}\n{md}\n{end}{tail}")


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=5, help="seconds per path (default 5)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--flow-connections", type=int, default=8)
    ap.add_argument("--growth", default="1000,100000,1000000",
                    help="live-token counts for the growth runs ('' to skip)")
    ap.add_argument("--bounded-rounds", type=int, default=3)
    ap.add_argument("--skip", default="", help="comma list of parts to leave out: build,memory,baseline,tokenlog,"
                    "guard,jwt,dpop,sqlite,flow,pg,redis,startup,crash,bounded,growth")
    ap.add_argument("--no-pg-growth", dest="pg_growth", action="store_false",
                    help="leave PostgreSQL out of the growth runs")
    ap.add_argument("--profile", action="store_true",
                    help="also record perf profiles of client_credentials (needs perf)")
    ap.add_argument("--no-doc", action="store_true",
                    help="a trial run: results go to bench/results/trial/, BENCHMARKS.md and "
                         "the published results are left alone")
    cfg = ap.parse_args()
    skip = set(filter(None, cfg.skip.split(",")))
    # A partial or trial run (--no-doc) must not replace the published results.
    cfg.out_dir = os.path.join(RESULTS, "trial") if cfg.no_doc else RESULTS
    cores = os.cpu_count() or 1
    cfg.server_core, cfg.load_core = (1, 0) if cores >= 2 else (0, 0)
    for tool in ("wrk", "taskset", "sqlite3", "psql", "redis-cli"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing (apt-get install -y wrk sqlite3 "
                     f"postgresql-client redis-tools)")
    if "build" not in skip:
        log("== cargo build --release")
        subprocess.run(["cargo", "build", "--release", "-p", "latchkey-server",
                        "-p", "latchkey-bench", "--bins"], cwd=ROOT, check=True)
        # The token log's bench example seeds the growth runs.
        subprocess.run(["cargo", "build", "--release", "-p", "latchkey-tokenlog",
                        "--example", "tokenlog_bench"], cwd=ROOT, check=True)
    cfg.workdir = tempfile.mkdtemp(prefix="latchkey-bench-")
    data = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "load_before": loadavg(),
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[1]
        if subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout else "?",
        "connections": cfg.connections, "duration": cfg.duration,
        "server_core": cfg.server_core, "load_core": cfg.load_core,
        "bounded_rounds": cfg.bounded_rounds,
    }
    results = []
    data["results"] = results
    data["errors"] = []

    def section(name, fn):
        """Runs one part; a failure is reported and recorded, and the other parts still run."""
        log(f"== {name}")
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - one broken part must not lose the others
            log(f"  FAILED: {e!r}")
            data["errors"].append(f"{name}: {e!r}")
            return None

    def memory():
        size, _ = token_paths(cfg, "memory", {"LATCHKEY_STORE__URL": "memory:"}, results,
                              audit_off=True)
        data["token_size"] = size

    def baseline(again=False):
        b = start_baseline(cfg, data.get("token_size", 120))
        try:
            res = run_wrk(cfg, b, b.base + "/token", "client_credentials.lua",
                          {"BENCH_BASIC": basic("x", "y")})
            if again:
                # The same baseline after the store runs: how much the machine drifted.
                results.append(row("baseline, again after the stores", "none (bare axum handler)",
                                   res))
            else:
                results.insert(0, row("baseline", "none (bare axum handler)", res))
                data["baseline_rps"] = res["rps"]
        finally:
            b.stop()

    def guard():
        g, _, _ = guard_paths(cfg, results)
        g.stop()

    def postgres():
        reset_pg()
        token_paths(cfg, "PostgreSQL", {"LATCHKEY_STORE__URL": PG_BENCH}, results)

    def redis():
        clean_redis()
        try:
            token_paths(cfg, "Redis + SQLite", {
                "LATCHKEY_STORE__TOKENS_URL": REDIS_URL,
                "LATCHKEY_STORE__KEY_PREFIX": REDIS_PREFIX,
                "LATCHKEY_TOKENS__ACCESS_TTL": "300",
            }, results)
        finally:
            clean_redis()

    try:
        if "memory" not in skip:
            section("memory store (latchkey serve, store.url = memory:)", memory)
        if "baseline" not in skip:
            section("baseline (bench-baseline)", baseline)
        if "guard" not in skip:
            section("in-process bearer guard (bench-guard, memory store)", guard)
        if "jwt" not in skip:
            data["jose"] = section("JWT access tokens and signing (bench-guard --format jwt, "
                                   "bench-jose)", lambda: jwt_paths(cfg, results))
        if "dpop" not in skip:
            section("DPoP proofs on client_credentials (memory store, proofs pre-signed)",
                    lambda: dpop_paths(cfg, results))
        if "tokenlog" not in skip:
            section("embedded store (latchkey serve, tokens in the token log, durable)",
                    lambda: token_paths(cfg, "embedded (token log)", {}, results,
                                        flow="flow" not in skip, audit_off=True))
        if "sqlite" not in skip:
            section("embedded store, tokens in SQLite (store.tokens_url = durable:)",
                    lambda: token_paths(cfg, "embedded (SQLite)", SQLITE_TOKENS, results,
                                        flow="flow" not in skip, audit_off=True))
        if "pg" not in skip:
            section("PostgreSQL", postgres)
        if "redis" not in skip:
            section("Redis (tokens in Redis, clients in SQLite)", redis)
        if "baseline" not in skip:
            section("baseline again (drift)", lambda: baseline(again=True))
        if "startup" not in skip:
            data["startup"] = section("start-up and idle RSS", lambda: startup(cfg))
        if "crash" not in skip:
            data["crash"] = section("crash test (token log)", lambda: crash_test(cfg))
            data["crash_sqlite"] = section(
                "crash test (tokens in SQLite)",
                lambda: crash_test(cfg, SQLITE_TOKENS, "crash-sqlite"))
        if "bounded" not in skip and cfg.bounded_rounds > 0:
            data["bounded"] = section("bounded by expiry", lambda: bounded_test(cfg))
        if cfg.profile:
            data["profiles"] = section("perf profiles", lambda: profile(cfg))
        sizes = [int(x) for x in cfg.growth.split(",") if x.strip()]
        if sizes and "growth" not in skip:
            data["growth"] = section("growth", lambda: growth(cfg, sizes, results))
    finally:
        data["load_after"] = loadavg()
        shutil.rmtree(cfg.workdir, ignore_errors=True)
        if "pg" not in skip or cfg.pg_growth:
            try:  # the seeded database holds up to a million rows: do not leave it behind
                psql(PG_ADMIN, "DROP DATABASE IF EXISTS latchkey_bench WITH (FORCE)")
            except (OSError, RuntimeError) as e:
                log(f"  could not drop latchkey_bench: {e}")
    out_dir = cfg.out_dir
    os.makedirs(out_dir, exist_ok=True)
    md = report_md(data)
    with open(os.path.join(out_dir, "latest.json"), "w") as f:
        json.dump(data, f, indent=1)
    with open(os.path.join(out_dir, "latest.md"), "w") as f:
        f.write(md + "\n")
    svg_chart(results, data.get("baseline_rps", 0.0), os.path.join(out_dir, "chart.svg"))
    log(f"results in {os.path.relpath(out_dir, ROOT)}/")
    if not cfg.no_doc:
        update_doc(md)
    print(md)


if __name__ == "__main__":
    main()
