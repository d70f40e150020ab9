#!/usr/bin/env python3
"""Datapath scaling benchmark: pod-to-pod traffic through a node with no
policy program, with iptables rule chains, and with porin's datapath, as the
number of policy entries grows from 0 to 50,000.

What it measures
----------------
Everything runs in network namespaces this script creates (never the
machine's own namespace, never another host): a node namespace, where
iptables rules or the porin agent live, and two pod namespaces, ``client``
(10.244.1.10) and ``server`` (10.244.1.20), each joined to the node by a veth
pair and routed by a /32 on the node, as Calico and Cilium route pods (the
same layout as ``tests/support/netns.rs``). The server pod runs nginx (a
128-byte static file) and an iperf3 server; the client pod runs the load.

For each configuration, ``--runs`` times (default 3; the table shows the
median):

  keep-alive      wrk -t2 -c64, HTTP/1.1 keep-alive (``--duration`` s each):
                  mostly the established-connection path
  new-conn        wrk -t2 -c32 with ``Connection: close``: one TCP connection
                  per request, so every request's SYN walks the whole policy
                  (where a rule chain's length shows)
  throughput      iperf3 -t 5, one TCP stream, Gbit/s

Configurations:

  none            no program, no rule: the baseline
  iptables N      iptables (iptables-nft) in the node's FORWARD chain, for
                  N = 0, 1000, 10000, 50000: ``-m conntrack --ctstate
                  RELATED,ESTABLISHED -j ACCEPT`` first (where NetworkPolicy
                  controllers such as Calico and kube-router put it), then N
                  ``-s <ip>/32 -d <server>/32 -p tcp --dport <port> -j ACCEPT``
                  rules that never match the test traffic, then the rules
                  allowing client -> server on 80 and 5201, then DROP. This is
                  a linear chain, one rule per (peer, port): the worst case of
                  iptables; controllers that group peers into ipsets (Calico,
                  kube-router) walk fewer rules. Loaded with iptables-restore.
  porin N         ``porin agent`` in the node namespace, with manifests: the
                  pods (Namespace and Pod objects with labels and
                  status.podIP) and N/50 CiliumNetworkPolicies selecting the
                  server, each allowing 50 distinct /32s (``fromCIDR``) on a
                  distinct port, plus one allowing the client on 80 and 5201:
                  the same (peer, port) pairs as the iptables rows. The
                  entries column is the number of policy entries the agent
                  reports writing to the datapath (``porin policy compile``
                  counts them first; a difference is reported).

Before measuring, each row is checked: the client gets the file (200), and a
connection to a port nothing allows (8081) is dropped (timeout) where a policy
is in force, or refused where none is; a row that does not enforce is marked
INVALID. The goal printed at the end: porin stays flat (within 5%) from 0 to
50,000 entries on every metric, while the iptables chain degrades.

With keep-alive, iptables accepts established packets with the first rule,
so it barely degrades there; the new-connection rate is the honest measure
of the rule chain's cost. On a 2-core machine the load generator, the server
and the kernel's packet processing share the cores: expect 5-10% noise
between runs, compare rows of one run, and use ``--runs 3`` or more.

How to run
----------
    make bench-datapath         # or: python3 tests/bench/datapath.py
    python3 tests/bench/datapath.py --only none,iptables --entries 0,10000

It needs root (namespaces, veth, iptables, BPF). It installs what is missing
(apt: iperf3, wrk, nginx-light, iptables, curl), builds porin
(``cargo build --release -p porin``; with ``--no-build`` it uses the binary
there), and skips the porin rows, saying why, when ``porin agent`` is not
available. It is not part of the test suite. Everything it creates (its
namespaces ``porin-bd-<pid>-*``, with their veths, routes and rules, the
processes it starts, the agent's pins under ``/sys/fs/bpf/porin-bench-<pid>``)
is removed when it ends, also on Ctrl-C; namespaces left by an earlier run
that was killed are removed when the next one starts.
"""

from __future__ import annotations

import argparse
import atexit
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
from benchlib import (  # noqa: E402
    Processes,
    QuietWait,
    Result,
    StartError,
    build_porin,
    find_tools,
    fmt_ratio,
    log_tail,
    parse_wrk,
    print_table,
    say,
    say_notes,
    say_versions,
    which,
)

NETNS_PREFIX = "porin-bd-"
PIN_DIR = Path(f"/sys/fs/bpf/porin-bench-{os.getpid()}")
TMP_PREFIX = "porin-bench-datapath-"
GATEWAY = "169.254.1.1"
NAMESPACE = "bench"
CLIENT_IP = "10.244.1.10"
SERVER_IP = "10.244.1.20"
HTTP_PORT = 80
IPERF_PORT = 5201
CLOSED_PORT = 8081  # nothing listens, nothing allows it
FILE_NAME = "small.txt"
PEERS_PER_POLICY = 50
FIRST_PEER = ipaddress.IPv4Address("172.16.0.1")  # rule peers: never the client
FIRST_PORT = 10000

TOOLS = ["wrk", "nginx", "iperf3", "iptables", "iptables-restore", "curl"]


# --------------------------------------------------------------------------
# The node: network namespaces


def run(argv: list[str], check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and done.returncode != 0:
        raise StartError(f"{' '.join(argv[:8])}{' ...' if len(argv) > 8 else ''} failed ({done.returncode}): "
                         f"{(done.stderr or done.stdout).strip()[-800:]}")
    return done


def list_netns() -> list[str]:
    done = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def netns_pids(netns: str) -> list[int]:
    done = run(["ip", "netns", "pids", netns], check=False)
    return [int(pid) for pid in done.stdout.split() if pid.isdigit()]


def delete_netns(netns: str) -> None:
    """Stops what still runs in `netns` (only processes this script started
    there), by PID, then deletes it: its veths, routes and rules go with it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = netns_pids(netns)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 3
        while netns_pids(netns) and time.monotonic() < deadline:
            time.sleep(0.05)
    run(["ip", "netns", "delete", netns], check=False)


def remove_stale(porin: str | None) -> None:
    """Namespaces `porin-bd-<pid>-*`, pin directories `porin-bench-<pid>` and
    scratch directories of a run whose process is gone (killed before it
    could clean up)."""
    for netns in list_netns():
        if not netns.startswith(NETNS_PREFIX):
            continue
        pid = netns[len(NETNS_PREFIX):].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            say(f"removing {netns}, left by an earlier run (pid {pid} is gone)")
            delete_netns(netns)
    for pins in PIN_DIR.parent.glob("porin-bench-*"):
        pid = pins.name.removeprefix("porin-bench-")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            say(f"removing {pins}, left by an earlier run (pid {pid} is gone)")
            if porin:
                run([porin, "agent", "uninstall", "--pin-dir", str(pins)], check=False)
            shutil.rmtree(pins, ignore_errors=True)
    for scratch in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):
        pid = scratch.name.removeprefix(TMP_PREFIX).split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists() and scratch.is_dir():
            shutil.rmtree(scratch, ignore_errors=True)


class Node:
    """A node namespace with pods, routed like tests/support/netns.rs."""

    def __init__(self):
        self.name = f"{NETNS_PREFIX}{os.getpid()}-node"
        self.created: list[str] = []
        self.host_ifs: dict[str, str] = {}
        self._add_netns(self.name)
        self.run(["ip", "link", "set", "lo", "up"])
        for key in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"):
            self.run(["sysctl", "-q", "-w", key])

    def _add_netns(self, name: str) -> None:
        self.created.append(name)
        run(["ip", "netns", "add", name])

    def pod_netns(self, pod: str) -> str:
        return f"{NETNS_PREFIX}{os.getpid()}-{pod}"

    def add_pod(self, pod: str, ip: str) -> None:
        netns = self.pod_netns(pod)
        self._add_netns(netns)
        host_if = f"lxc{pod[:12]}"
        self.host_ifs[pod] = host_if
        self.run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", netns])
        for argv in (
            ["link", "set", "lo", "up"],
            ["addr", "add", f"{ip}/32", "dev", "eth0"],
            ["link", "set", "eth0", "up"],
            ["route", "add", GATEWAY, "dev", "eth0", "scope", "link"],
            ["route", "add", "default", "via", GATEWAY, "dev", "eth0"],
        ):
            run(["ip", "-n", netns, *argv])
        self.run(["ip", "addr", "add", f"{GATEWAY}/32", "dev", host_if])
        self.run(["ip", "link", "set", host_if, "up"])
        self.run(["ip", "route", "add", f"{ip}/32", "dev", host_if])

    def argv(self, netns: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", netns, *argv]

    def run(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        return run(self.argv(self.name, argv), **kw)

    def in_pod(self, pod: str, argv: list[str], **kw) -> subprocess.CompletedProcess:
        return run(self.argv(self.pod_netns(pod), argv), **kw)

    def keeping_mounts(self, argv: list[str]) -> list[str]:
        """`argv` in the node's network namespace with the machine's mounts:
        `ip netns exec` remounts /sys, which hides the bpffs at /sys/fs/bpf
        the agent pins to."""
        return ["nsenter", f"--net=/run/netns/{self.name}", "--", *argv]

    def destroy(self) -> None:
        for netns in reversed(self.created):
            delete_netns(netns)
        self.created.clear()


# --------------------------------------------------------------------------
# Policy: iptables rules and porin manifests, the same (peer, port) pairs


def peers(entries: int) -> list[tuple[str, int]]:
    """`entries` (peer /32, port) pairs that never match the test traffic:
    PEERS_PER_POLICY peers per port, as the porin policies group them."""
    return [(str(FIRST_PEER + i), FIRST_PORT + i // PEERS_PER_POLICY) for i in range(entries)]


def iptables_rules(entries: int) -> tuple[str, int]:
    """An iptables-restore file for the filter table, and its rule count."""
    rules = [
        "-A FORWARD -j PORIN-BENCH",
        "-A PORIN-BENCH -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ]
    rules += [f"-A PORIN-BENCH -s {ip}/32 -d {SERVER_IP}/32 -p tcp -m tcp --dport {port} -j ACCEPT"
              for ip, port in peers(entries)]
    rules += [f"-A PORIN-BENCH -s {CLIENT_IP}/32 -d {SERVER_IP}/32 -p tcp -m tcp --dport {port} -j ACCEPT"
              for port in (HTTP_PORT, IPERF_PORT)]
    rules.append("-A PORIN-BENCH -j DROP")
    text = "\n".join(
        ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":PORIN-BENCH - [0:0]",
         *rules, "COMMIT", ""]
    )
    return text, len(rules)


def pod_manifests() -> str:
    docs = [f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n"]
    for pod, ip in (("client", CLIENT_IP), ("server", SERVER_IP)):
        docs.append(
            f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\n  namespace: {NAMESPACE}\n"
            f"  labels:\n    app: {pod}\nspec:\n  containers:\n    - name: main\n      image: bench-{pod}\n"
            f"status:\n  phase: Running\n  podIP: \"{ip}\"\n  podIPs:\n    - ip: \"{ip}\"\n"
        )
    return "---\n".join(docs)


def policy_manifests(entries: int) -> str:
    docs = [
        f"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: allow-client\n  namespace: {NAMESPACE}\n"
        f"spec:\n  endpointSelector:\n    matchLabels:\n      app: server\n  ingress:\n"
        f"    - fromEndpoints:\n        - matchLabels:\n            app: client\n"
        f"      toPorts:\n        - ports:\n"
        f"            - port: \"{HTTP_PORT}\"\n              protocol: TCP\n"
        f"            - port: \"{IPERF_PORT}\"\n              protocol: TCP\n"
    ]
    pairs = peers(entries)
    for start in range(0, len(pairs), PEERS_PER_POLICY):
        group = pairs[start:start + PEERS_PER_POLICY]
        cidrs = "".join(f"        - {ip}/32\n" for ip, _ in group)
        docs.append(
            f"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n"
            f"  name: cidr-{start // PEERS_PER_POLICY:05d}\n  namespace: {NAMESPACE}\n"
            f"spec:\n  endpointSelector:\n    matchLabels:\n      app: server\n  ingress:\n"
            f"    - fromCIDR:\n{cidrs}"
            f"      toPorts:\n        - ports:\n            - port: \"{group[0][1]}\"\n              protocol: TCP\n"
        )
    return "---\n".join(docs)


def write_manifests(directory: Path, entries: int) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    (directory / "pods.yaml").write_text(pod_manifests())
    (directory / "policies.yaml").write_text(policy_manifests(entries))


def count_entries(porin: str, directory: Path) -> tuple[int | None, str]:
    """The policy entries `porin policy compile` makes of `directory` (all
    endpoints, both directions), and a note."""
    try:
        done = run([porin, "policy", "compile", "-o", "json", "-f", str(directory)], check=False, timeout=600)
    except subprocess.TimeoutExpired:
        return None, "porin policy compile took over 600 s"
    if done.returncode != 0:
        return None, f"porin policy compile failed: {done.stderr.strip()[-300:]}"
    try:
        compiled = json.loads(done.stdout)
        total = sum(len(e["policy"][d]["entries"]) for e in compiled["endpoints"] for d in ("ingress", "egress"))
    except (ValueError, KeyError, TypeError) as err:
        return None, f"could not count entries in porin policy compile's JSON ({err})"
    return total, ""


# --------------------------------------------------------------------------
# Servers and load


def nginx_config(tmp: Path) -> Path:
    prefix = tmp / "nginx"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    (prefix / "html").mkdir(exist_ok=True)
    (prefix / "html" / FILE_NAME).write_text("x" * 127 + "\n")
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""daemon off;
master_process on;
worker_processes 1;
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
    open_file_cache max=16;
    default_type text/plain;
    server {{
        listen {SERVER_IP}:{HTTP_PORT} backlog=4096;
        root {prefix}/html;
    }}
}}
"""
    )
    return conf


def curl_status(node: Node, port: int, timeout: float = 2) -> tuple[int, str]:
    """(curl exit code, HTTP status) of a GET from the client pod."""
    done = node.in_pod(
        "client",
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--connect-timeout", str(timeout),
         "--max-time", str(timeout + 2), f"http://{SERVER_IP}:{port}/{FILE_NAME}"],
        check=False,
    )
    return done.returncode, done.stdout.strip()


def sanity(node: Node, expect_policy: bool) -> tuple[str, str | None]:
    """Checks the allowed request succeeds and, where a policy is in force,
    that other traffic is dropped. Returns (description, invalid reason)."""
    code, status = 0, ""
    for _ in range(50):
        code, status = curl_status(node, HTTP_PORT)
        if status == "200":
            break
        time.sleep(0.2)
    if status != "200":
        raise StartError(f"client -> server:{HTTP_PORT} failed: curl exit {code}, HTTP {status or '-'}")
    code, _ = curl_status(node, CLOSED_PORT, timeout=1)
    closed = {7: "refused", 28: "dropped (timeout)"}.get(code, f"curl exit {code}")
    text = f"GET :{HTTP_PORT} -> 200, connect :{CLOSED_PORT} -> {closed}"
    if expect_policy and code != 28:
        return text, f"port {CLOSED_PORT} was {closed}, not dropped: the policy is not enforced"
    if not expect_policy and code != 7:
        return text, f"port {CLOSED_PORT} was {closed} without any policy: something else filters"
    return text, None


def run_wrk(args, node: Node, seconds: float, close: bool) -> dict:
    argv = [args.wrk, f"-t{args.threads}", f"-c{args.new_conn_connections if close else args.connections}",
            f"-d{seconds}s", "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(f"http://{SERVER_IP}:{HTTP_PORT}/{FILE_NAME}")
    done = node.in_pod("client", argv, check=False, timeout=seconds + 60)
    if done.returncode != 0:
        raise StartError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    result = parse_wrk(done.stdout)
    if result["rps"] is None:
        raise StartError("could not parse wrk's output:\n" + done.stdout)
    return result


def run_iperf(args, node: Node) -> float:
    done = node.in_pod(
        "client",
        [args.iperf3, "-c", SERVER_IP, "-p", str(IPERF_PORT), "-t", str(args.iperf_duration), "-J"],
        check=False,
        timeout=args.iperf_duration + 60,
    )
    try:
        report = json.loads(done.stdout)
        return report["end"]["sum_received"]["bits_per_second"] / 1e9
    except (ValueError, KeyError, TypeError):
        raise StartError(f"iperf3 failed ({done.returncode}): {(done.stdout + done.stderr).strip()[-500:]}")


# --------------------------------------------------------------------------
# Configurations


@dataclass
class Row(Result):
    """A configuration: its `name` is the kind (none | iptables | porin)."""

    nominal: int = 0
    entries: int | None = None
    entries_note: str = ""
    setup_seconds: float | None = None

    @classmethod
    def of(cls, kind: str, nominal: int) -> Row:
        return cls(kind, "no program" if kind == "none" else f"{kind} {nominal:,}", nominal=nominal)


class Porin:
    """`porin agent` in the node namespace, stopped by PID."""

    def __init__(self, binary: str, node: Node, procs: Processes):
        self.binary, self.node, self.procs = binary, node, procs
        self.proc = None

    def start(self, manifests: Path, timeout: float) -> str:
        """Starts the agent and waits for `datapath ready`; returns what it
        printed meanwhile."""
        argv = self.node.keeping_mounts([self.binary, "agent", "-f", str(manifests), "--pin-dir", str(PIN_DIR)])
        log = self.procs.tmp / "porin-agent.log"
        offset = log.stat().st_size if log.exists() else 0  # the log of earlier rows comes first
        self.proc = self.procs.start("porin-agent", argv)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = log.read_bytes()[offset:].decode(errors="replace")
            if "datapath ready" in text:
                return text
            if self.proc.popen.poll() is not None:
                raise StartError(f"porin agent exited with {self.proc.popen.returncode}:\n{log_tail(self.proc)}")
            time.sleep(0.1)
        raise StartError(f"porin agent did not print 'datapath ready' within {timeout:.0f}s:\n{log_tail(self.proc)}")

    def stop(self) -> None:
        if self.proc:
            self.procs.stop(self.proc)
            self.proc = None
        uninstall_porin(self.binary, self.node)


def uninstall_porin(binary: str | None, node: Node | None) -> None:
    """`porin agent uninstall` (its pins and links), then whatever is left
    of the pin directory (ours: it carries this process's PID)."""
    if binary and node and node.created and PIN_DIR.exists():
        try:
            done = run(node.keeping_mounts([binary, "agent", "uninstall", "--pin-dir", str(PIN_DIR)]), check=False)
            if done.returncode != 0:
                say(f"  warning: porin agent uninstall failed: {done.stderr.strip()[-300:]}")
        except (OSError, subprocess.TimeoutExpired) as err:
            say(f"  warning: porin agent uninstall: {err}")
    if PIN_DIR.exists():
        shutil.rmtree(PIN_DIR, ignore_errors=True)


def porin_agent_missing(porin: str | None, why: dict) -> str | None:
    if not porin:
        return why.get("porin", "no porin binary")
    try:
        done = run([porin, "agent", "--help"], check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"porin agent --help: {err}"
    if done.returncode != 0:
        first = ((done.stderr or done.stdout).strip().splitlines() or ["failed"])[0]
        return f"`porin agent` is not available in {porin} yet (rebuild it when it is): porin agent --help: {first}"
    return None


def measure(args, node: Node, row: Row) -> None:
    for i in range(args.runs):
        args.wait_quiet()
        ka = run_wrk(args, node, args.duration, close=False)
        new = run_wrk(args, node, args.duration, close=True)
        gbps = run_iperf(args, node)
        result = {"ka": ka["rps"], "new": new["rps"], "gbps": gbps, "ka_p99": ka["p99"], "new_p99": new["p99"]}
        for name, r in (("keep-alive", ka), ("new-conn", new)):
            if r["non2xx"]:
                row.invalid = f"{name}: {r['non2xx']} non-2xx responses"
            if r["socket_errors"]:
                say(f"  wrk {name} socket errors: {r['socket_errors']}")
        row.runs.append(result)
        say(f"  run {i + 1}/{args.runs}: keep-alive {ka['rps']:.0f} req/s, new-conn {new['rps']:.0f} req/s, "
            f"{gbps:.2f} Gbit/s")


def bench(args, tools: dict, why: dict, procs: Processes, tmp: Path, state: dict) -> list[Row]:
    rows: list[Row] = []
    if "none" in args.only:
        rows.append(Row.of("none", 0))
    for kind in ("iptables", "porin"):
        if kind in args.only:
            rows += [Row.of(kind, n) for n in args.entries]

    for name in ("wrk", "nginx", "iperf3", "curl"):
        if name not in tools:
            for row in rows:
                row.skipped = f"{name}: {why.get(name, 'missing')}"
            return rows
    for row in rows:
        if row.name == "iptables" and "iptables-restore" not in tools:
            row.skipped = f"iptables-restore: {why.get('iptables-restore', 'missing')}"
    agent_missing = porin_agent_missing(tools.get("porin"), why) if "porin" in args.only else None
    for row in rows:
        if row.name == "porin" and agent_missing:
            row.skipped = agent_missing
    if agent_missing:
        say(f"porin rows skipped: {agent_missing}")

    # Entry counts first (the agent's own count replaces them when it reports one).
    if tools.get("porin"):
        for row in rows:
            if row.name == "porin" and not row.skipped:
                directory = tmp / f"manifests-{row.nominal}"
                write_manifests(directory, row.nominal)
                started = time.monotonic()
                row.entries, row.entries_note = count_entries(tools["porin"], directory)
                say(f"porin {row.nominal:,}: porin policy compile counts "
                    f"{row.entries if row.entries is not None else '?'} entries "
                    f"({time.monotonic() - started:.1f}s) {row.entries_note}".rstrip())
    for row in rows:
        if row.name == "iptables":
            row.entries = iptables_rules(row.nominal)[1]
        elif row.name == "none":
            row.entries = 0

    remove_stale(tools.get("porin") if not agent_missing else None)
    node = Node()
    state["node"] = node
    node.add_pod("client", CLIENT_IP)
    node.add_pod("server", SERVER_IP)
    server = node.pod_netns("server")
    nginx = procs.start("nginx", node.argv(server, [tools["nginx"], "-p", str(tmp / "nginx"), "-e",
                                                    str(tmp / "nginx" / "logs" / "error.log"),
                                                    "-c", str(nginx_config(tmp))]))
    iperf = procs.start("iperf3", node.argv(server, [tools["iperf3"], "-s", "-B", SERVER_IP, "-p", str(IPERF_PORT)]))
    time.sleep(0.5)
    for proc in (nginx, iperf):
        if proc.popen.poll() is not None:
            raise StartError(f"{proc.name} exited with {proc.popen.returncode}:\n{log_tail(proc)}")

    for row in rows:
        if row.skipped:
            continue
        say(f"[{row.label}]")
        agent = None
        try:
            started = time.monotonic()
            if row.name == "iptables":
                rules, _ = iptables_rules(row.nominal)
                node.run([tools["iptables-restore"]], input=rules, timeout=600)
                listed = node.run([tools["iptables"], "-S", "PORIN-BENCH"], timeout=600).stdout
                row.entries = sum(1 for line in listed.splitlines() if line.startswith("-A ")) + 1  # + the jump
            elif row.name == "porin":
                agent = Porin(tools["porin"], node, procs)
                state["agent"] = agent
                printed = agent.start(tmp / f"manifests-{row.nominal}", args.agent_timeout)
                reported = re.findall(r"(\d+) policy entries", printed)
                if reported:  # what the agent wrote to the datapath's maps
                    compiled, row.entries = row.entries, int(reported[-1])
                    if compiled is not None and compiled != row.entries:
                        row.entries_note = f"porin policy compile counts {compiled}, the agent reports {row.entries}"
            row.setup_seconds = time.monotonic() - started
            if row.name != "none":
                say(f"  set up in {row.setup_seconds:.1f}s")
            row.sanity, row.invalid = sanity(node, expect_policy=row.name != "none")
            say(f"  sanity: {row.sanity}" + (f"  INVALID: {row.invalid}" if row.invalid else ""))
            run_wrk(args, node, args.warmup, close=False)
            measure(args, node, row)
        except (StartError, OSError, subprocess.TimeoutExpired) as err:
            row.skipped = f"failed: {err}"
            say(f"  skipped: {row.skipped}")
        finally:
            if row.name == "iptables":
                node.run([tools["iptables-restore"]],
                         input="*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
                         check=False, timeout=600)
            if agent:
                agent.stop()
                state.pop("agent", None)
    return rows


def report(rows: list[Row], args) -> None:
    base = next((r for r in rows if r.name == "none" and r.usable()), None)
    table = []
    for r in rows:
        entries = "-" if r.entries is None else f"{r.entries:,}"
        if r.skipped or not r.runs:
            table.append([r.label, entries, "-", "skipped", "-", "-", "-", "-", "-"])
            continue
        setup = "-" if r.setup_seconds is None or r.name == "none" else f"{r.setup_seconds:.1f}"
        cells = [r.label + (" [INVALID]" if r.invalid else ""), entries, setup]
        for key, fmt in (("ka", "{:.0f}"), ("new", "{:.0f}"), ("gbps", "{:.2f}")):
            cells.append(fmt.format(r.metric(key)) + r.spread(key, fmt))
        for key in ("ka", "new", "gbps"):
            cells.append(fmt_ratio(r.metric(key), base.metric(key) if base else None))
        table.append(cells)
    say("")
    say(
        f"Pod-to-pod through one node (netns + veth), client {CLIENT_IP} -> server {SERVER_IP}; "
        f"keep-alive: wrk -t{args.threads} -c{args.connections} -d{args.duration}s; new-conn: wrk -t{args.threads} "
        f"-c{args.new_conn_connections} -d{args.duration}s -H 'Connection: close'; iperf3 -t {args.iperf_duration}, "
        f"1 stream; " + (f"median of {args.runs} runs (min-max)" if args.runs > 1 else "1 run")
    )
    print_table(["configuration", "entries", "setup s", "req/s keep-alive", "req/s new-conn", "Gbit/s",
                 "ka vs none", "new vs none", "Gbit/s vs none"], table)
    say_notes(rows)
    for r in rows:
        if r.entries_note:
            say(f"  {r.label}: entries: {r.entries_note}")
    say("  entries: iptables = rules walked in FORWARD (the jump, the conntrack accept, the N non-matching rules, "
        "the 2 allows, the DROP); porin = the policy entries the agent reports writing for both pods "
        "(else the count of `porin policy compile`)")
    say("  setup s: from loading the rules (iptables-restore) or starting the agent to the datapath enforcing")

    say("")
    say("goal: porin stays flat (within 5%) from 0 to 50,000 entries, while iptables degrades")

    def flat(kind: str) -> None:
        usable = [r for r in rows if r.name == kind and r.usable()]
        if len(usable) < 2:
            mark = "n/a "
            say(f"  {mark}  {kind}: fewer than two measured rows")
            return
        low, high = usable[0], usable[-1]
        for key, name in (("ka", "keep-alive req/s"), ("new", "new-conn req/s"), ("gbps", "throughput")):
            ratio = high.metric(key) / low.metric(key)
            if kind == "porin":
                mark = "PASS" if ratio >= 0.95 else "FAIL"
            else:
                mark = "info"
            lows, highs = [x[key] for x in low.runs], [x[key] for x in high.runs]
            overlap = max(min(lows), min(highs)) <= min(max(lows), max(highs))
            noise = "  (the runs' ranges overlap: within this machine's noise)" if overlap and len(low.runs) > 1 else ""
            say(f"  {mark}  {kind} {name} at {high.nominal:,} vs {low.nominal:,}: {ratio:.2f}{noise}")

    flat("porin")
    flat("iptables")


# --------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds of each wrk run (default 5)")
    parser.add_argument("--iperf-duration", type=int, default=5, help="seconds of each iperf3 run (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk warm-up per configuration (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration; the table shows medians (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=64, help="wrk keep-alive connections (default 64)")
    parser.add_argument("--new-conn-connections", type=int, default=32,
                        help="wrk connections for the connection-per-request run (default 32)")
    parser.add_argument("--entries", default="0,1000,10000,50000",
                        help="policy sizes for the iptables and porin rows (default 0,1000,10000,50000)")
    parser.add_argument("--only", default="none,iptables,porin",
                        help="comma-separated configurations: none, iptables, porin (default all)")
    parser.add_argument("--agent-timeout", type=float, default=300,
                        help="seconds to wait for the agent's 'datapath ready' (default 300)")
    parser.add_argument("--quiet-wait", type=float, default=60,
                        help="seconds in all to wait for an idle machine before runs (default 60)")
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install what is missing")
    parser.add_argument("--no-build", action="store_true", help="use the porin binary already built")
    parser.add_argument("--porin", help="porin binary to use (default: target/release/porin, built first)")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (manifests, logs)")
    args = parser.parse_args()
    args.entries = [int(x.replace("_", "")) for x in args.entries.split(",") if x.strip()]
    args.only = {x.strip() for x in args.only.split(",") if x.strip()}
    if unknown := args.only - {"none", "iptables", "porin"}:
        parser.error(f"unknown configuration(s) in --only: {', '.join(sorted(unknown))}")

    if os.geteuid() != 0:
        say("datapath.py needs root: it creates network namespaces, veths, iptables rules and BPF programs")
        return 1
    for tool in ("ip", "nsenter"):
        if not which(tool):
            say(f"{tool} is required (iproute2, util-linux)")
            return 1

    why: dict[str, str] = {}
    tools = find_tools(TOOLS, args, why)
    if "porin" in args.only:
        porin = build_porin(args, why)
        if porin:
            tools["porin"] = porin
    args.wrk, args.iperf3 = tools.get("wrk"), tools.get("iperf3")
    args.wait_quiet = QuietWait(args.quiet_wait)

    probes = {
        "porin": (["--version"], r"\d+\.\d+\.\d+\S*"),
        "wrk": (["-v"], r"\d+\.\d+\.\d+\S*"),
        "nginx": (["-v"], r"nginx/\S+"),
        "iperf3": (["--version"], r"iperf \S+"),
        "iptables": (["--version"], r"v\S+ \(\w+\)"),
    }
    if "porin" not in args.only:
        del probes["porin"]
    say_versions(probes, tools, why, more=(f"kernel   {os.uname().release}",))

    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-"))
    tmp.chmod(0o755)  # nginx's workers (www-data) read the file from here
    procs = Processes(tmp)
    state: dict = {}
    cleaned = False

    def cleanup() -> None:
        nonlocal cleaned
        if cleaned:
            return
        cleaned = True
        procs.stop_all()
        uninstall_porin(tools.get("porin"), state.get("node"))
        if state.get("node"):
            state["node"].destroy()
        if args.keep_tmp:
            say(f"manifests and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    atexit.register(cleanup)

    def terminated(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminated)
    signal.signal(signal.SIGHUP, terminated)

    rows: list[Row] = []
    interrupted = False
    try:
        rows = bench(args, tools, why, procs, tmp, state)
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: removing what was created")
    except StartError as err:
        say(f"setup failed: {err}")
        return 1
    finally:
        cleanup()
    if interrupted:
        return 130
    report(rows, args)
    say("")
    say("Numbers from one machine, with the load generator, the server and the packet processing sharing its cores:")
    say("noisy; compare rows of the same run, and use --runs 3 or more before drawing conclusions.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
