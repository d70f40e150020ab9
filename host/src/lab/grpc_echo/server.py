#!/usr/bin/env python3
"""A real gRPC server (grpcio) for porin.test.Echo (tests/fixtures/grpc/echo.proto).

    server.py [PORT] [--calls-file PATH] [--deny-admin]

Listens on ADDRESS:PORT (--address, default 127.0.0.1), plaintext HTTP/2 (prior knowledge). PORT 0, the
default, picks a free port. Once serving it prints `listening on PORT` on
stdout (flushed): wait for that line before calling.

Every call that reaches the server, known method or not, is logged on stderr
(`call /porin.test.Echo/Say md=k=v,...`, then `serve Say
peer=ipv4:127.0.0.1:PORT` for a known method) and, with
--calls-file, its path is appended as one line to PATH (flushed at once), so
a test can assert that a denied call never got here. The peer's port tells
connections apart.

Methods: Say and Admin echo the text; Count replies "1".."N" for text "N";
Collect replies with the number of messages it received; Chat echoes each
message as it arrives. --deny-admin makes Admin fail with PERMISSION_DENIED
("admin denied by server"), as a proxy denial would. A method not in the
proto gets UNIMPLEMENTED (and is still logged).

Ends on SIGTERM or SIGINT.
"""

import argparse
import signal
import sys
import threading
from concurrent import futures

import grpc

sys.dont_write_bytecode = True  # no __pycache__ beside the tests
import echo_wire  # noqa: E402

# Bound on Count's N, so a typo cannot flood a test.
MAX_COUNT = 10_000


class CallLog:
    """Records each call's method path to stderr and, if asked, a file."""

    def __init__(self, calls_file):
        self._lock = threading.Lock()
        self._file = open(calls_file, "a", encoding="utf-8") if calls_file else None

    def record(self, details):
        md = ",".join(f"{k}={v}" for k, v in details.invocation_metadata
                      if not k.endswith("-bin"))
        with self._lock:
            print(f"call {details.method} md={md}", file=sys.stderr, flush=True)
            if self._file:
                self._file.write(details.method + "\n")
                self._file.flush()


class Echo:
    def __init__(self, deny_admin):
        self.deny_admin = deny_admin

    def Say(self, text, context):
        return text

    def Admin(self, text, context):
        if self.deny_admin:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "admin denied by server")
        return text

    def Count(self, text, context):
        try:
            n = int(text or "1")
        except ValueError:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Count wants a number, got {text!r}")
        if not 0 <= n <= MAX_COUNT:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Count wants 0..{MAX_COUNT}, got {n}")
        for i in range(1, n + 1):
            yield str(i)

    def Collect(self, texts, context):
        return str(sum(1 for _ in texts))

    def Chat(self, texts, context):
        for text in texts:
            yield text


def _logging_peer(name, method):
    """Wraps a method so that serving it logs which connection it came on."""

    def serve(request, context):
        print(f"serve {name} peer={context.peer()}", file=sys.stderr, flush=True)
        return method(request, context)

    return serve


class Handler(grpc.GenericRpcHandler):
    """Routes /porin.test.Echo/* to Echo, logging every call first."""

    def __init__(self, echo, log):
        self._log = log
        self._handlers = {}
        for name, (client_streams, server_streams) in echo_wire.METHODS.items():
            make = {
                (False, False): grpc.unary_unary_rpc_method_handler,
                (False, True): grpc.unary_stream_rpc_method_handler,
                (True, False): grpc.stream_unary_rpc_method_handler,
                (True, True): grpc.stream_stream_rpc_method_handler,
            }[(client_streams, server_streams)]
            self._handlers[echo_wire.path(name)] = make(
                _logging_peer(name, getattr(echo, name)),
                request_deserializer=echo_wire.decode,
                response_serializer=echo_wire.encode,
            )

    def service(self, handler_call_details):
        self._log.record(handler_call_details)
        return self._handlers.get(handler_call_details.method)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", nargs="?", type=int, default=0)
    parser.add_argument("--address", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("--calls-file", help="append each received method path to this file")
    parser.add_argument("--deny-admin", action="store_true",
                        help="fail Admin with PERMISSION_DENIED")
    args = parser.parse_args()

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=64),
        handlers=[Handler(Echo(args.deny_admin), CallLog(args.calls_file))],
        # grpcio sets SO_REUSEPORT by default: a second server on a taken
        # port would bind silently and share the traffic. Fail instead.
        options=[("grpc.so_reuseport", 0)],
    )
    try:
        port = server.add_insecure_port(f"{args.address}:{args.port}")
    except RuntimeError:  # newer grpcio raises, older returns 0
        port = 0
    if port == 0:
        sys.exit(f"server.py: cannot listen on {args.address}:{args.port}")
    server.start()
    print(f"listening on {port}", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1):
        pass
    server.stop(grace=0).wait(2)


if __name__ == "__main__":
    main()
