"""The wire protocol of the control plane: frames, mutual authentication, messages.

Every frame is a 4-byte big-endian length followed by that many bytes. A connection starts with a
mutual HMAC-SHA256 challenge-response over a per-run random secret; only raw bytes of known, tiny
sizes cross the wire until both sides have proved they hold the secret. Only then does either side
build a :class:`Channel`, the one object that (un)pickles messages. An unauthenticated peer can
therefore never make this process deserialize anything. Both sides then derive a session key from the
secret and both nonces, and every later frame carries an HMAC of its role, sequence number and bytes
(see :class:`Channel`), so that nobody on the network can inject, alter or replay a frame either.

Handshake (server = driver, client = worker)::

    server -> client   nonce_s                                  (32 bytes)
    client -> server   HMAC(secret, b"client" + nonce_s) + nonce_c  (64 bytes)
    server -> client   HMAC(secret, b"server" + nonce_c)        (32 bytes; an empty frame = refused)
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import pickle
import secrets
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

from cerebro_spark.backend.base import TaskRequest, TaskResult
from cerebro_spark.errors import AuthenticationError, BackendError, InvalidParamError

logger = logging.getLogger(__name__)

MAX_FRAME_BYTES = 1 << 30
"""The largest frame either side sends or accepts (1 GiB)."""

HANDSHAKE_TIMEOUT_S = 10.0
"""How long a peer has to complete the whole handshake."""

SECRET_BYTES = 32
NONCE_BYTES = 32
_MAC_BYTES = hashlib.sha256().digest_size
_HEADER = struct.Struct(">I")
_PICKLE_PROTOCOL = 5
_SMALL_FRAME = 64 * 1024  # below this, header and payload go out in one send
_PIECE = 1 << 20  # a large frame is sent (and hashed) in pieces of this size
_OUT_OF_BAND_BYTES = 64 * 1024
"""A ``bytes`` or ``bytearray`` value at least this large (a model's state) travels in a frame of its own, after the
pickle, instead of being copied into the pickle and out of it again."""


class _Pickler(pickle.Pickler):
    """The channel's pickler: large ``bytes`` (and ``bytearray``) values go to ``buffers``; the pickle
    holds their index."""

    def __init__(self, file: io.BytesIO, buffers: list[bytes | bytearray]) -> None:
        super().__init__(file, protocol=_PICKLE_PROTOCOL)
        self._buffers = buffers

    def persistent_id(self, obj: object) -> int | None:
        large = isinstance(obj, (bytes, bytearray)) and len(obj) >= _OUT_OF_BAND_BYTES
        if not large or type(obj) not in (bytes, bytearray):  # (subclasses pickle as usual)
            return None
        self._buffers.append(obj)  # type: ignore[arg-type]  # (bytes or bytearray, checked above)
        return len(self._buffers) - 1


class _Unpickler(pickle.Unpickler):
    """The receiving side of :class:`_Pickler`: an index becomes the frame that buffer arrived in.

    The value is a ``bytearray`` (the frame itself, not a copy): equal to the ``bytes`` sent, and
    accepted wherever a bytes-like value is (``memoryview``, ``numpy.frombuffer``, file writes).
    """

    def __init__(self, data: memoryview, buffers: list[bytearray]) -> None:
        super().__init__(io.BytesIO(data))
        self._buffers = buffers

    def persistent_load(self, pid: object) -> bytearray:
        if type(pid) is not int or not 0 <= pid < len(self._buffers):
            raise pickle.UnpicklingError(f"Unknown out-of-band buffer {pid!r}.")
        return self._buffers[pid]


class _Missing:
    """Whatever :class:`_IdReader` cannot or need not rebuild (a value of a request or result)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass


_ENVELOPES = frozenset((c.__module__, c.__qualname__) for c in (TaskRequest, TaskResult))


class _IdReader(_Unpickler):
    """Reads only the envelope of a message that failed to unpickle: a TaskRequest or TaskResult with
    every value that is not a plain builtin replaced by :class:`_Missing`, for its ``task_id``."""

    _KEEP = frozenset(
        {
            ("copyreg", "__newobj__"),
            ("copyreg", "_reconstructor"),
            ("builtins", "object"),
            ("builtins", "set"),
            ("builtins", "frozenset"),
            ("builtins", "bytearray"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._KEEP or (module, name) in _ENVELOPES:
            return super().find_class(module, name)
        return _Missing


def _task_id_of(data: memoryview, buffers: list[bytearray]) -> int | None:
    try:
        message = _IdReader(data, buffers).load()
    except Exception:
        return None
    return message.task_id if isinstance(message, (TaskRequest, TaskResult)) else None


class UndecodableMessage(BackendError):
    """A whole message arrived but cannot be unpickled here (e.g. a value of a class that this process
    cannot import). ``task_id`` is the request's or result's id when that much could be read, so that
    the task can fail alone instead of the connection."""

    def __init__(self, message: str, task_id: int | None) -> None:
        super().__init__(message)
        self.task_id = task_id


@dataclass(frozen=True, slots=True)
class Hello:
    """First message of a worker after authentication: who it is and where it runs."""

    worker_id: int
    pid: int
    host: str
    cores: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Sent by a worker every few seconds, also while a task runs (``t`` is its ``time.time()``)."""

    worker_id: int
    t: float


@dataclass(frozen=True, slots=True)
class Welcome:
    """The driver's answer to an admitted Hello: the worker's id (the one it asked for, or one the driver
    gave a worker that asked for any, :data:`ANY_WORKER`), how many workers there are, and, when the
    driver decides them, the heartbeat period and the warm-up task (see ``Backend.set_warm_up``)."""

    worker_id: int
    num_workers: int
    heartbeat_s: float | None = None
    warm_up: str | None = None


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Sent by the driver: finish the current task, then return."""


#: The worker id of a Hello from a worker started by hand, which takes any free id the driver gives it.
ANY_WORKER = -1

Message = Hello | Heartbeat | Welcome | Shutdown | TaskRequest | TaskResult
_ROLES = {"driver": b"D", "worker": b"W"}
_MESSAGE_TYPES = (Hello, Heartbeat, Welcome, Shutdown, TaskRequest, TaskResult)


def new_secret() -> bytes:
    """A fresh random secret for one run of the control plane."""
    return secrets.token_bytes(SECRET_BYTES)


def send_frame(
    sock: socket.socket, payload: bytes | bytearray | memoryview, mac: hmac.HMAC | None = None
) -> None:
    """Send one frame. Raises BackendError if ``payload`` is larger than :data:`MAX_FRAME_BYTES`.

    With ``mac``, the payload is also fed to it, piece by piece as it is sent (so that hashing a large
    frame overlaps with the peer receiving and hashing the pieces before it).
    """
    size = len(payload)
    if size > MAX_FRAME_BYTES:
        raise BackendError(
            f"A control-plane message must be at most {MAX_FRAME_BYTES} bytes. Received: {size} bytes. "
            "Pass large data through the Store, not in task arguments or results."
        )
    if size < _SMALL_FRAME:
        if mac is not None:
            mac.update(payload)
        sock.sendall(_HEADER.pack(size) + bytes(payload))
        return
    sock.sendall(_HEADER.pack(size))
    view = memoryview(payload).cast("B")
    for start in range(0, size, _PIECE):
        piece = view[start : start + _PIECE]
        if mac is not None:
            mac.update(piece)
        sock.sendall(piece)


def recv_frame(
    sock: socket.socket,
    max_bytes: int = MAX_FRAME_BYTES,
    deadline: float | None = None,
    mac: hmac.HMAC | None = None,
) -> bytearray:
    """Receive one frame; partial reads are handled (and fed to ``mac`` as they arrive, if given).

    Raises ConnectionError at end of stream, TimeoutError past ``deadline`` (a ``time.monotonic()``
    value) and BackendError if the announced size exceeds ``max_bytes``.
    """
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size, deadline))
    if size > max_bytes:
        raise BackendError(f"Refused a frame of {size} bytes: at most {max_bytes} bytes are allowed here.")
    return _recv_exact(sock, size, deadline, mac)


def _recv_exact(
    sock: socket.socket, size: int, deadline: float | None, mac: hmac.HMAC | None = None
) -> bytearray:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out")
            sock.settimeout(remaining)
        n = sock.recv_into(view[got:])
        if n == 0:
            raise ConnectionError(f"Connection closed by the peer after {got} of {size} bytes.")
        if mac is not None:
            mac.update(view[got : got + n])
        got += n
    return buf


def _mac(secret: bytes, tag: bytes, nonce: bytes | bytearray) -> bytes:
    return hmac.new(secret, tag + bytes(nonce), hashlib.sha256).digest()


def _peer(sock: socket.socket) -> str:
    try:
        return str(sock.getpeername())
    except OSError:
        return "<unknown peer>"


def server_handshake(sock: socket.socket, secret: bytes, timeout_s: float = HANDSHAKE_TIMEOUT_S) -> Channel:
    """Authenticate the client on ``sock`` (driver side) and return the :class:`Channel`.

    Raises AuthenticationError (and closes ``sock``) if the client does not prove that it holds
    ``secret`` within ``timeout_s`` seconds; the refused peer is logged at WARNING.
    """
    peer = _peer(sock)
    deadline = time.monotonic() + timeout_s
    try:
        nonce = secrets.token_bytes(NONCE_BYTES)
        send_frame(sock, nonce)
        answer = recv_frame(sock, _MAC_BYTES + NONCE_BYTES, deadline)
        if len(answer) != _MAC_BYTES + NONCE_BYTES or not hmac.compare_digest(
            answer[:_MAC_BYTES], _mac(secret, b"client", nonce)
        ):
            _send_quietly(sock, b"")  # tell the client it was refused
            raise AuthenticationError(
                f"Peer {peer} failed the challenge: it does not hold this run's secret."
            )
        send_frame(sock, _mac(secret, b"server", answer[_MAC_BYTES:]))
        key = _session_key(secret, nonce, answer[_MAC_BYTES:])
    except AuthenticationError as exc:
        _refuse(sock, peer, str(exc))
        raise
    except (OSError, BackendError) as exc:
        reason = "handshake timed out" if isinstance(exc, TimeoutError) else f"handshake failed: {exc}"
        _refuse(sock, peer, reason)
        raise AuthenticationError(f"Peer {peer} was refused: {reason} (limit {timeout_s:g} s).") from exc
    sock.settimeout(None)
    return Channel(sock, key, "driver")


def client_handshake(sock: socket.socket, secret: bytes, timeout_s: float = HANDSHAKE_TIMEOUT_S) -> Channel:
    """Authenticate with the server on ``sock`` (worker side) and return the :class:`Channel`.

    Raises AuthenticationError (and closes ``sock``) if the server refuses this client or fails
    to prove that it holds ``secret`` itself, and ConnectionError if the connection ends before either.
    """
    deadline = time.monotonic() + timeout_s
    try:
        challenge = recv_frame(sock, NONCE_BYTES, deadline)
        if len(challenge) != NONCE_BYTES:
            raise AuthenticationError(f"The server sent a malformed challenge ({len(challenge)} bytes).")
        nonce = secrets.token_bytes(NONCE_BYTES)
        send_frame(sock, _mac(secret, b"client", challenge) + nonce)
        proof = recv_frame(sock, _MAC_BYTES, deadline)
        if not proof:
            raise AuthenticationError("The driver refused this worker: the secret does not match this run's.")
        if not hmac.compare_digest(proof, _mac(secret, b"server", nonce)):
            raise AuthenticationError("The server failed to prove that it holds this run's secret.")
        key = _session_key(secret, bytes(challenge), nonce)
    except AuthenticationError:
        _close_quietly(sock)
        raise
    except (OSError, BackendError) as exc:  # cut off (a driver stopping): not a refusal, try again later
        _close_quietly(sock)
        raise ConnectionError(f"The handshake with the driver was cut off: {exc!r}.") from exc
    sock.settimeout(None)
    return Channel(sock, key, "worker")


def _session_key(secret: bytes, server_nonce: bytes | bytearray, client_nonce: bytes | bytearray) -> bytes:
    """The key of one connection's frame MACs: both nonces, so that no two connections share one."""
    return _mac(secret, b"session", bytes(server_nonce) + bytes(client_nonce))


def _refuse(sock: socket.socket, peer: str, reason: str) -> None:
    logger.warning("control plane refused connection from %s: %s", peer, reason)
    _close_quietly(sock)


def _send_quietly(sock: socket.socket, payload: bytes) -> None:
    try:
        send_frame(sock, payload)
    except OSError:
        pass


def _close_quietly(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class Channel:
    """An authenticated connection that sends and receives pickled :data:`Message` values.

    Only :func:`server_handshake` and :func:`client_handshake` create channels. :meth:`send` is
    thread-safe (a lock serializes whole frames); :meth:`recv` must be called by one thread only.

    Every frame is followed by its tag, HMAC-SHA256 under the connection's session key of the sender's
    role, the frame's sequence number in its direction and its bytes. A frame whose tag does not match
    (altered, injected, replayed, reordered or reflected back) is refused before anything is unpickled,
    with :class:`~cerebro_spark.errors.AuthenticationError`, and the connection is then unusable. The
    frames are not encrypted.

    Parameters
    ----------
    sock : socket.socket
        A connected socket whose peer has been authenticated.
    key : bytes
        The session key both sides derived in the handshake.
    role : {"driver", "worker"}
        This end's role: each side tags with its own and checks the other's.
    """

    def __init__(self, sock: socket.socket, key: bytes, role: str) -> None:
        if role not in _ROLES:
            raise InvalidParamError(f"role must be 'driver' or 'worker'. Received: {role!r}")
        self._sock = sock
        self._key = key
        self._mine, self._theirs = _ROLES[role], _ROLES["worker" if role == "driver" else "driver"]
        self._sent = self._received = 0
        self._send_lock = threading.Lock()
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        except OSError:  # not TCP (e.g. a Unix socketpair in tests)
            pass

    @property
    def sock(self) -> socket.socket:
        """The underlying socket."""
        return self._sock

    def send(self, message: Message) -> None:
        """Pickle ``message`` and send it: one frame of the buffer count and the pickle, then one frame
        per out-of-band buffer (large ``bytes`` values, see :data:`_OUT_OF_BAND_BYTES`).

        Raises InvalidParamError (and sends nothing) if ``message`` cannot be pickled or is too large.
        """
        buffers: list[bytes | bytearray] = []
        out = io.BytesIO()
        out.write(_HEADER.pack(0))  # the buffer count, filled in below
        try:
            _Pickler(out, buffers).dump(message)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise InvalidParamError(
                f"A {type(message).__name__} cannot cross the control plane: {type(exc).__name__}: {exc}. "
                "Task arguments and return values must be plain picklable values (numbers, strings, "
                "lists, dicts, dataclasses of those, numpy arrays); pass anything else by reference."
            ) from exc
        payload = out.getbuffer()
        payload[: _HEADER.size] = _HEADER.pack(len(buffers))
        largest = max([len(payload), *map(len, buffers)])
        if largest > MAX_FRAME_BYTES:  # refused before a byte is sent: the channel stays in step
            raise InvalidParamError(
                f"A {type(message).__name__} cannot cross the control plane: it holds {largest} bytes in one "
                f"piece, and a frame is at most {MAX_FRAME_BYTES} bytes. Pass large data through the Store."
            )
        with self._send_lock:
            for frame in (payload, *buffers):
                self._send_tagged(frame)

    def _mac(self, role: bytes, number: int) -> hmac.HMAC:
        return hmac.new(self._key, role + number.to_bytes(8, "big"), hashlib.sha256)

    def _send_tagged(self, data: bytes | bytearray | memoryview) -> None:
        mac = self._mac(self._mine, self._sent)
        self._sent += 1
        send_frame(self._sock, data, mac)
        send_frame(self._sock, mac.digest())

    def _recv_tagged(self, deadline: float | None) -> bytearray:
        mac = self._mac(self._theirs, self._received)
        data = recv_frame(self._sock, deadline=deadline, mac=mac)
        tag = recv_frame(self._sock, _MAC_BYTES, deadline)
        if not hmac.compare_digest(tag, mac.digest()):
            raise AuthenticationError(
                f"Frame {self._received} from {_peer(self._sock)} failed its integrity check (altered, "
                "injected, replayed or out of order): nothing of it was unpickled; the connection is dropped."
            )
        self._received += 1
        return data

    def recv(self, deadline: float | None = None) -> Message:
        """Receive the next message. Raises ConnectionError at end of stream and
        :class:`UndecodableMessage` for a message that arrived whole but cannot be unpickled (the
        channel can go on)."""
        frame = self._recv_tagged(deadline)
        (count,) = _HEADER.unpack_from(frame)
        buffers = [self._recv_tagged(deadline) for _ in range(count)]
        data = memoryview(frame)[_HEADER.size :]
        try:
            message = _Unpickler(data, buffers).load()
        except Exception as exc:  # whatever a value's unpickling raises: the stream itself is intact
            raise UndecodableMessage(f"{type(exc).__name__}: {exc}", _task_id_of(data, buffers)) from exc
        if deadline is not None:
            self._sock.settimeout(None)
        if not isinstance(message, _MESSAGE_TYPES):
            raise BackendError(f"Unexpected control-plane message of type {type(message).__name__}.")
        return message

    def close(self) -> None:
        """Shut the connection down (waking a thread blocked in :meth:`recv`) and close it."""
        _close_quietly(self._sock)
