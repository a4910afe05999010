"""ZeroMQ CURVE keys of the bridge: key files, the allow-list, and applying them to sockets.

A key pair is two files written by ``maed keys NAME``: ``NAME.key`` (the public key) and
``NAME.key_secret`` (public and secret key), both in ZeroMQ's certificate format, so that
``zmq.auth`` and libzmq's tools read them, and both mode 0600. The bridge holds a secret key
(``ServerKeys``) and an allow-list of client public keys; a client holds its own secret key and
the bridge's public key (``ClientKeys``). Clients are checked by pyzmq's ``ThreadAuthenticator``
(ZAP), never by code of ours. The bridge's own public key is always allowed: its in-process
clients (the preview, the simulated and Nanonis sources) connect with the bridge's key pair.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.auth import load_certificate
from zmq.auth.thread import ThreadAuthenticator

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
_BANNER = "#   ZeroMQ CURVE {what} certificate of MAED-RT, written by maed keys\n{warning}\nmetadata\ncurve\n"


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def _write_new(path: Path, text: str, mode: int) -> None:
    # O_EXCL: never overwrite a key; the mode is set at creation so a secret is never readable by others.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise ValueError(f"{path} exists; remove it or choose another name") from None
    except OSError as exc:
        raise ValueError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)


def write_key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """Write ``folder/NAME.key`` (readable by others, as the umask allows: it is handed to them) and
    ``folder/NAME.key_secret`` (mode 0600); returns their paths."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"key name must be a plain file name, got {name!r}")
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot make the folder {folder}: {exc.strerror}") from None
    public, secret = zmq.curve_keypair()
    public_path, secret_path = folder / f"{name}{PUBLIC_SUFFIX}", folder / f"{name}{SECRET_SUFFIX}"
    if secret_path.exists():  # checked before the public file is written: a refusal writes nothing
        raise ValueError(f"{secret_path} exists; remove it or choose another name")
    _write_new(
        public_path,
        _BANNER.format(what="public", warning="#   Give this file to the other side.") + f'    public-key = "{public.decode()}"\n',
        0o644,
    )
    _write_new(
        secret_path,
        _BANNER.format(what="secret", warning="#   Keep this file to yourself.")
        + f'    public-key = "{public.decode()}"\n    secret-key = "{secret.decode()}"\n',
        0o600,
    )
    return public_path, secret_path


def _read(path: Path, what: str) -> tuple[bytes, bytes | None]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {path} is not a file")
    try:
        public, secret = load_certificate(path)
    except (OSError, ValueError):
        raise ValueError(f"{what} {path} is not a key file of maed keys (no public-key line)") from None
    for key in (public, secret):
        if key is not None and len(key) != 40:
            raise ValueError(f"{what} {path} holds a malformed key (a CURVE key is 40 Z85 characters)")
    return public, secret


def read_public_key(path: Path) -> bytes:
    """The public key in a key file (``NAME.key``; a ``NAME.key_secret`` holds it too)."""
    return _read(path, "public key file")[0]


def read_secret_key(path: Path) -> tuple[bytes, bytes]:
    """The (public, secret) keys in ``NAME.key_secret``."""
    public, secret = _read(path, "secret key file")
    if secret is None:
        raise ValueError(f"secret key file {path} holds no secret key (give the NAME.key_secret of maed keys)")
    return public, secret


def read_allow_list(path: Path) -> frozenset[bytes]:
    """Client public keys: every ``*.key`` file in the folder ``path``, or the one key file ``path``."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob(f"*{PUBLIC_SUFFIX}"))
        if not files:
            raise ValueError(f"client keys folder {path} holds no *{PUBLIC_SUFFIX} file")
        return frozenset(read_public_key(f) for f in files)
    if not path.exists():
        raise ValueError(f"client keys {path} do not exist")
    return frozenset({read_public_key(path)})


@dataclass(frozen=True)
class ClientKeys:
    """A client's side: its own key pair and the public key of the bridge it connects to."""

    server: bytes
    public: bytes
    secret: bytes

    @classmethod
    def load(cls, secret_key: Path | None, server_key: Path | None) -> "ClientKeys | None":
        """From ``--secret-key`` and ``--server-key``; None when neither is given (no CURVE)."""
        if secret_key is None and server_key is None:
            return None
        if secret_key is None or server_key is None:
            raise ValueError("CURVE needs both --secret-key (yours) and --server-key (the bridge's public key)")
        return cls(read_public_key(server_key), *read_secret_key(secret_key))

    def apply(self, socket: zmq.Socket) -> None:
        """Make ``socket`` a CURVE client; before ``connect``."""
        socket.curve_serverkey = self.server
        socket.curve_publickey = self.public
        socket.curve_secretkey = self.secret


@dataclass(frozen=True)
class ServerKeys:
    """The bridge's key pair and the public keys of the clients it lets in."""

    public: bytes
    secret: bytes
    clients: frozenset[bytes]

    @classmethod
    def load(cls, secret_key: Path | None, client_keys: Path | None) -> "ServerKeys | None":
        """From ``--secret-key`` and ``--client-keys``; None when neither is given (no CURVE)."""
        if secret_key is None and client_keys is None:
            return None
        if secret_key is None or client_keys is None:
            raise ValueError("CURVE needs both --secret-key (the bridge's) and --client-keys (the allow-list)")
        return cls(*read_secret_key(secret_key), read_allow_list(client_keys))

    def as_client(self) -> ClientKeys:
        """Keys for the bridge's own in-process clients (its public key is always allowed)."""
        return ClientKeys(self.public, self.public, self.secret)

    def allows(self, public: bytes) -> bool:
        return public == self.public or public in self.clients

    def apply(self, socket: zmq.Socket) -> None:
        """Make ``socket`` a CURVE server; before ``bind``."""
        socket.curve_secretkey = self.secret
        socket.curve_publickey = self.public
        socket.curve_server = True

    def authenticator(self, context: zmq.Context) -> ThreadAuthenticator:
        """A started ZAP authenticator on ``context`` that admits allow-listed keys only."""
        auth = ThreadAuthenticator(context)
        auth.start()
        auth.configure_curve_callback("*", credentials_provider=_AllowList(self))
        return auth


class _AllowList:
    """The credentials provider ``zmq.auth`` asks about each connecting client key."""

    def __init__(self, keys: ServerKeys) -> None:
        self._keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        return self._keys.allows(key)
