#!/usr/bin/env python3
"""The wire form of porin.test.Echo (tests/fixtures/grpc/echo.proto), by hand.

server.py and client.py share this module, so neither needs generated stubs
or protoc at run time: `Msg { string text = 1; }` is one length-delimited
field. The decoder skips unknown fields as protobuf does.

    echo_wire.py frame TEXT > FILE
        writes one gRPC message frame (1-byte compressed flag 0, 4-byte
        big-endian length, then Msg{text: TEXT}): the request body that
        h2load sends (tests/fixtures/grpc/say.bin is `frame hi`).
"""

import sys

SERVICE = "porin.test.Echo"

# Method name -> (client streams, server streams), as in echo.proto.
METHODS = {
    "Say": (False, False),
    "Admin": (False, False),
    "Count": (False, True),
    "Collect": (True, False),
    "Chat": (True, True),
}


def path(method):
    """The HTTP/2 :path of a method of the Echo service."""
    return f"/{SERVICE}/{method}"


def _varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise ValueError("varint too long")


def encode(text):
    """Msg{text} as protobuf bytes (proto3: an empty text is not sent)."""
    data = text.encode("utf-8")
    if not data:
        return b""
    return b"\x0a" + _varint(len(data)) + data


def decode(buf):
    """The text of a protobuf-encoded Msg; raises ValueError if malformed."""
    buf = bytes(buf)
    text = ""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("field number 0")
        if wire == 0:
            _, pos = _read_varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            size, pos = _read_varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("truncated field")
            if field == 1:
                text = buf[pos:pos + size].decode("utf-8")
            pos += size
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated field")
    return text


def frame(text):
    """One uncompressed gRPC length-prefixed message holding Msg{text}."""
    body = encode(text)
    return b"\x00" + len(body).to_bytes(4, "big") + body


def main(argv):
    if len(argv) == 3 and argv[1] == "frame":
        sys.stdout.buffer.write(frame(argv[2]))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
