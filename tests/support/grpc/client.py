#!/usr/bin/env python3
"""A real gRPC client (grpcio) for porin.test.Echo, for the proxy's end-to-end tests.

    client.py HOST:PORT [--metadata K=V]... [--deadline S] CALL...

Makes the CALLs in order on ONE channel, so on one HTTP/2 connection unless
something closes it. A CALL is:

    Say[:TEXT]    Admin[:TEXT]    unary, TEXT defaults to "hi"
    Count:N       server streaming: asks for N replies
    Collect:N     client streaming: sends N messages, gets one reply
    Chat:N        bidi, ping-pong: sends a message, waits for its echo, N times
                  (a proxy that buffers a whole request stream makes it time out)
    /pkg.Svc/M[:TEXT]   any other path, called as unary with Msg{TEXT}

Prints one JSON object on stdout:

    {"target": "127.0.0.1:8080",
     "calls": [{"method": "Say", "code": "OK", "replies": 1, "texts": ["hi"], "ms": 3},
               {"method": "Admin", "code": "PERMISSION_DENIED", "details": "...",
                "replies": 0, "texts": [], "ms": 2}, ...],
     "connections": 1, "local_ports": [51234]}

`code` is a grpc.StatusCode name; `details` is there when it is not OK.
`replies` counts the messages received, even those before an error.
`connections` counts the distinct TCP connections from this process to
HOST:PORT seen open after each call (read from /proc), so a proxy that
closes the connection on a denial shows up as 2 or more; `local_ports` lists
their local ports, and each call also notes `ports`, those open after it.

Each call has a deadline (--deadline, 5 s by default). Exits 0 whatever the
status codes; non-zero only if the client itself fails. Metadata keys are
lower-cased, as gRPC requires. Proxies from the environment (http_proxy,
grpc_proxy) are ignored, and grpcio's retries are off: one call, one stream.
"""

import argparse
import json
import os
import queue
import sys
import time
from pathlib import Path

import grpc

sys.dont_write_bytecode = True  # no __pycache__ beside the tests
# Msg's encoding lives with the lab's gRPC echo app.
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "host" / "src" / "lab" / "grpc_echo"))
import echo_wire  # noqa: E402

DEFAULT_TEXT = "hi"

CHANNEL_OPTIONS = [
    # grpcio honours grpc_proxy/https_proxy/http_proxy; tests go direct.
    ("grpc.enable_http_proxy", 0),
    # One attempt per call, so "the server never saw it" means what it says.
    ("grpc.enable_retries", 0),
    # Reconnect quickly if the connection is closed under us.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def parse_call(spec):
    """CALL -> (label, path, kind, arg)."""
    name, _, arg = spec.partition(":")
    if name.startswith("/"):
        return name, name, (False, False), arg or DEFAULT_TEXT
    if name not in echo_wire.METHODS:
        raise SystemExit(f"client.py: unknown method {name!r} "
                         f"(one of {', '.join(echo_wire.METHODS)}, or a /pkg.Svc/Method path)")
    kind = echo_wire.METHODS[name]
    if kind == (False, False):
        return name, echo_wire.path(name), kind, arg or DEFAULT_TEXT
    try:
        n = int(arg or "1")
    except ValueError:
        raise SystemExit(f"client.py: {name} wants a count, as in {name}:3, not {spec!r}")
    return name, echo_wire.path(name), kind, n


def ping_pong(n, replies, deadline):
    """Request stream for Chat: each message waits for the echo of the previous."""
    for i in range(1, n + 1):
        yield str(i)
        try:
            replies.get(timeout=deadline)
        except queue.Empty:
            return


def run_call(channel, path, kind, arg, metadata, deadline):
    """Makes one call; returns (code name, details or None, reply texts)."""
    opts = dict(request_serializer=echo_wire.encode,
                response_deserializer=echo_wire.decode)
    texts = []
    try:
        if kind == (False, False):
            texts.append(channel.unary_unary(path, **opts)(
                arg, timeout=deadline, metadata=metadata))
        elif kind == (False, True):
            for text in channel.unary_stream(path, **opts)(
                    str(arg), timeout=deadline, metadata=metadata):
                texts.append(text)
        elif kind == (True, False):
            texts.append(channel.stream_unary(path, **opts)(
                iter([str(i) for i in range(1, arg + 1)]),
                timeout=deadline, metadata=metadata))
        else:
            echoed = queue.Queue()
            for text in channel.stream_stream(path, **opts)(
                    ping_pong(arg, echoed, deadline), timeout=deadline, metadata=metadata):
                texts.append(text)
                echoed.put(text)
    except grpc.RpcError as err:
        return err.code().name, err.details(), texts
    return "OK", None, texts


def open_connections(host, port):
    """Local ports of this process's TCP connections to host:port (Linux /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    want_port = f"{port:04X}"
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.readlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            local, remote, state, inode = cols[1], cols[2], cols[3], cols[9]
            # 01 = ESTABLISHED; the remote host is checked by port only, as the
            # target is a 127.0.0.1 address in every test.
            if inode in inodes and state == "01" and remote.endswith(":" + want_port):
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return sorted(ports)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("target", help="HOST:PORT")
    parser.add_argument("calls", nargs="+", metavar="CALL")
    parser.add_argument("--metadata", action="append", default=[], metavar="K=V",
                        help="extra metadata sent with every call (repeatable)")
    parser.add_argument("--deadline", type=float, default=5.0,
                        help="seconds allowed for each call (default 5)")
    args = parser.parse_intermixed_args()

    metadata = []
    for item in args.metadata:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"client.py: --metadata wants K=V, not {item!r}")
        metadata.append((key.lower(), value))
    calls = [parse_call(spec) for spec in args.calls]
    host, _, port = args.target.rpartition(":")

    out = {"target": args.target, "calls": []}
    seen = set()
    with grpc.insecure_channel(args.target, options=CHANNEL_OPTIONS) as channel:
        for label, path, kind, arg in calls:
            start = time.monotonic()
            code, details, texts = run_call(channel, path, kind, arg, metadata, args.deadline)
            ms = round((time.monotonic() - start) * 1000)
            entry = {"method": label, "code": code}
            if details is not None:
                entry["details"] = details
            ports = open_connections(host, int(port))
            seen.update(ports)
            entry.update(replies=len(texts), texts=texts,
                         ms=ms, ports=ports)
            out["calls"].append(entry)
    out["connections"] = len(seen)
    out["local_ports"] = sorted(seen)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
