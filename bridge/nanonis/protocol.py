"""The binary messages of the Nanonis TCP programming interface (``bridge/NANONIS.md``).

A message is a 40-byte header (command name, body size, send-response flag) and a big-endian
body. A response body ends with the error section (status, description size, description); a
non-zero status becomes ``NanonisError``. ``BodyWriter`` and ``BodyReader`` encode and decode the
body's types; ``encode_message`` and ``decode_header`` the header. Sockets are elsewhere
(``client``, and the simulated controller's ``maed.bridge.simulated.nanonis_server``): this module only
turns values into bytes and back.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Callable, TypeVar

import numpy as np

HEADER_SIZE = 40
NAME_SIZE = 32
MAX_BODY = 1 << 28
"""Larger bodies are refused: a 4096 x 4096 float32 frame is 64 MiB, so this is a broken peer."""

_HEADER = struct.Struct(">32siH2x")

T = TypeVar("T")


class NanonisError(Exception):
    """The controller answered a command with an error (the response's error section)."""

    def __init__(self, command: str, status: int, description: str) -> None:
        super().__init__(f"Nanonis {command} failed: {description or f'error status {status}'}")
        self.command = command
        self.status = status
        self.description = description


_COMMAND_NAME = re.compile(rb"[A-Za-z0-9_.]*")
"""What a command name is made of (``Scan.BufferGet``, ``ZCtrl.Withdraw``); empty in some error replies."""


class NanonisProtocolError(Exception):
    """Bytes that do not follow the protocol (a truncated body, a response to another command)."""


@dataclass(frozen=True)
class Header:
    command: str
    body_size: int
    send_response: bool


def encode_message(command: str, body: bytes = b"", send_response: bool = True) -> bytes:
    """Header and body of one message; a response header has ``send_response`` False (not used)."""
    name = command.encode("ascii")
    if not 0 < len(name) <= NAME_SIZE:
        raise ValueError(f"a Nanonis command name has 1 to {NAME_SIZE} ASCII characters, got {command!r}")
    # struct's "32s" pads the name with zero bytes, as the protocol asks.
    return _HEADER.pack(name, len(body), int(send_response)) + body


def decode_header(data: bytes) -> Header:
    """The header's fields; raises ``NanonisProtocolError`` for a negative or oversized body size."""
    if len(data) != HEADER_SIZE:
        raise NanonisProtocolError(f"a header has {HEADER_SIZE} bytes, got {len(data)}")
    name, size, flag = _HEADER.unpack(data)
    name = name.rstrip(b"\0")
    if not _COMMAND_NAME.fullmatch(name):
        # Another server on the port (a web server, a proxy): its reply's first bytes say what it is.
        raise NanonisProtocolError(
            f"not a Nanonis reply: it begins {data[:NAME_SIZE]!r} (is the port the controller's TCP programming interface?)"
        )
    command = name.decode("ascii")
    if not 0 <= size <= MAX_BODY:
        raise NanonisProtocolError(f"{command or 'message'} announces a body of {size} bytes")
    return Header(command, size, flag != 0)


class BodyWriter:
    """Builds a big-endian body: numbers, strings (int32 size, then bytes), arrays, the error section."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def _pack(self, fmt: str, *values: object) -> "BodyWriter":
        self._parts.append(struct.pack(">" + fmt, *values))
        return self

    def u16(self, value: int) -> "BodyWriter":
        return self._pack("H", value)

    def u32(self, value: int) -> "BodyWriter":
        return self._pack("I", value)

    def i32(self, value: int) -> "BodyWriter":
        return self._pack("i", value)

    def f32(self, value: float) -> "BodyWriter":
        return self._pack("f", value)

    def string(self, value: str) -> "BodyWriter":
        raw = value.encode("utf-8")
        self.i32(len(raw))
        self._parts.append(raw)
        return self

    def i32_array(self, values: list[int] | tuple[int, ...]) -> "BodyWriter":
        """The elements only: the count is a field of its own, written before."""
        return self._pack(f"{len(values)}i", *values)

    def f32_2d(self, array: np.ndarray) -> "BodyWriter":
        """Rows and columns as int32, then the values row after row."""
        array = np.asarray(array)
        self.i32(array.shape[0]).i32(array.shape[1])
        self._parts.append(np.ascontiguousarray(array, dtype=">f4").tobytes())
        return self

    def error(self, status: int = 0, description: str = "") -> "BodyWriter":
        """The error section that ends every response; status 0 and no description for success."""
        return self.u32(status).string(description)

    def bytes(self) -> bytes:
        return b"".join(self._parts)


class BodyReader:
    """Reads a body in order; raises ``NanonisProtocolError`` when it runs out of bytes."""

    def __init__(self, body: bytes, command: str = "") -> None:
        self._body = memoryview(body)
        self._at = 0
        self._command = command

    def _take(self, size: int) -> memoryview:
        if size < 0 or self._at + size > len(self._body):
            raise NanonisProtocolError(
                f"{self._command or 'body'} is truncated: needs {size} bytes at offset {self._at} of {len(self._body)}"
            )
        chunk = self._body[self._at : self._at + size]
        self._at += size
        return chunk

    def _unpack(self, fmt: str) -> tuple:
        s = struct.Struct(">" + fmt)
        return s.unpack(self._take(s.size))

    def u16(self) -> int:
        return self._unpack("H")[0]

    def u32(self) -> int:
        return self._unpack("I")[0]

    def i32(self) -> int:
        return self._unpack("i")[0]

    def f32(self) -> float:
        return self._unpack("f")[0]

    def string(self) -> str:
        return bytes(self._take(self.i32())).decode("utf-8", errors="replace")

    def i32_array(self, count: int) -> tuple[int, ...]:
        return self._unpack(f"{count}i") if count > 0 else ()

    def f32_2d(self) -> np.ndarray:
        """A native float32 ``(rows, cols)`` array read from its rows, columns and values."""
        rows, cols = self.i32(), self.i32()
        if rows < 0 or cols < 0:
            raise NanonisProtocolError(f"{self._command} announces a {rows} x {cols} array")
        return np.frombuffer(self._take(4 * rows * cols), dtype=">f4").astype(np.float32).reshape(rows, cols)

    def error(self) -> tuple[int, str]:
        """The error section: status and description."""
        return self.u32(), self.string()

    def end(self) -> None:
        if self._at != len(self._body):
            raise NanonisProtocolError(f"{self._command or 'body'} has {len(self._body) - self._at} bytes too many")


def read_response(command: str, body: bytes, read_fields: Callable[["BodyReader"], T]) -> T:
    """Decode a response body: ``read_fields(reader)``, then the error section, which must end it.

    A controller that fails a command may answer with the error section alone (no fields), so a
    body the fields do not fit is read again as a bare error section before it counts as broken.
    Raises ``NanonisError`` for a non-zero status, ``NanonisProtocolError`` for broken bytes.
    """
    reader = BodyReader(body, command)
    try:
        fields = read_fields(reader)
        status, description = reader.error()
        reader.end()
    except NanonisProtocolError:
        bare = BodyReader(body, command)
        try:
            status, description = bare.error()
            bare.end()
        except NanonisProtocolError:
            status = 0
        if status == 0:
            raise
    if status != 0:
        raise NanonisError(command, status, description)
    return fields
