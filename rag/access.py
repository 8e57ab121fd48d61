"""Who may use a front end: the key or token it asks for, how strong that must be, and a brake on guessing.

Every front end that listens (the web UI, `rag serve`, a future `rag mcp` over HTTP) uses the same rules:

- A secret (an API key, a UI token) has at least `MIN_SECRET_CHARS` characters; a shorter one is
  refused at start with a one-line error (`check_secret`).
- A server asks for a key by default, on loopback too: any local user or process can reach 127.0.0.1.
  `server_key` takes it from the environment, or makes one for the run and writes it to a file only
  the owner can read; `--no-auth` opts out, on loopback only.
- `BearerGuard` checks `Authorization: Bearer <key>` in constant time, and `FailureThrottle` slows a
  client down after repeated wrong keys, tokens or passwords (`LoginThrottle` watches a login form).
"""

from __future__ import annotations

import hmac
import math
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import Response

from .errors import BadInput
from .webguard import is_loopback

MIN_SECRET_CHARS = 32
KEY_FILE_NAME = "api-key"

# What a refused request gets: (status, message, code) to a response (see rag.webguard.Refusal).
Refusal = Callable[[int, str, str], Response]


def check_secret(value: str, name: str) -> str:
    """`value` when it is long enough to be a secret; BadInput naming `name` otherwise.

    >>> check_secret("x" * 32, "RAG_API_KEY") == "x" * 32
    True
    """
    if len(value) < MIN_SECRET_CHARS:
        raise BadInput(f"{name} is {len(value)} characters long; a key or token needs at least {MIN_SECRET_CHARS} "
                       "(for example: python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return value


def new_secret() -> str:
    """A fresh random key or token (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def write_secret(path: Path, secret: str) -> Path:
    """Write `secret` to `path`, readable by its owner alone (0600), replacing any older one atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (secret + "\n").encode())
    finally:
        os.close(fd)
    os.replace(partial, path)
    return path


@dataclass(frozen=True)
class ServerKey:
    """The key a server asks for ("" when it asks for none) and where it came from (shown at start)."""

    key: str
    source: str

    def describe(self) -> str:
        """One line for the start-up message."""
        if not self.key:
            return "no API key required (--no-auth): any local user or process can use it"
        if self.source.startswith("$"):
            return f"API key required: the one in {self.source}"
        return f"API key required: {self.key} (also in {self.source}, readable by you alone)"


def server_key(host: str, key_file: Path, no_auth: bool = False, env_name: str = "RAG_API_KEY",
               environ=os.environ) -> ServerKey:
    """The key a server on `host` asks for: `$env_name`, else one made for this run and written to `key_file`.

    With `no_auth`, none (on loopback only). BadInput off loopback without `$env_name`, and for a key
    shorter than MIN_SECRET_CHARS.
    """
    given = environ.get(env_name, "")
    if no_auth:
        if not is_loopback(host):
            raise BadInput(f"--no-auth is for loopback only: --host {host} can be reached from other machines")
        return ServerKey("", "--no-auth")
    if given:
        return ServerKey(check_secret(given, env_name), f"${env_name}")
    if not is_loopback(host):
        raise BadInput(f"--host {host} can be reached from other machines; set {env_name} to the key "
                       "clients must send as `Authorization: Bearer <key>`")
    key = new_secret()
    try:
        write_secret(key_file, key)
    except OSError as exc:
        raise BadInput(f"cannot write the API key to {key_file}: {exc.strerror or exc}") from None
    return ServerKey(key, str(key_file))


def client_of(scope) -> str:
    """The address a request came from ("" when the server does not know it)."""
    client = scope.get("client")
    return str(client[0]) if client else ""


class FailureThrottle:
    """Slows down a client that keeps failing to authenticate.

    The first `free` failures within `window` seconds cost nothing; after that the client waits
    1 s, then 2, 4, ... up to `max_wait` before an attempt is even looked at (answered 429
    meanwhile, whether or not it holds the right key). A success forgets the client's failures.
    At most `max_clients` are remembered, the least recently failing forgotten first.
    """

    def __init__(self, free: int = 5, window: float = 60.0, max_wait: float = 30.0, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.free, self.window, self.max_wait, self.max_clients, self.clock = free, window, max_wait, max_clients, clock
        # client -> (failures, time of the last failure, time until which it waits)
        self._clients: OrderedDict[str, tuple[int, float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, client: str) -> float:
        """Seconds `client` must wait before its next attempt counts (0 when it may try now)."""
        with self._lock:
            entry = self._clients.get(client)
            return max(0.0, entry[2] - self.clock()) if entry else 0.0

    def failed(self, client: str) -> None:
        """Count a failed attempt."""
        now = self.clock()
        with self._lock:
            failures, last, _ = self._clients.pop(client, (0, now, 0.0))
            failures = 1 if now - last > self.window else failures + 1
            extra = failures - self.free
            until = now + min(self.max_wait, 2.0 ** (extra - 1)) if extra > 0 else 0.0
            self._clients[client] = (failures, now, until)
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)

    def succeeded(self, client: str) -> None:
        """Forget the client's failures."""
        with self._lock:
            self._clients.pop(client, None)

    def refusal(self, client: str, refuse: Refusal) -> Response | None:
        """A 429 response for a client that must wait, with Retry-After; None when it may try."""
        wait = self.wait(client)
        if not wait:
            return None
        seconds = math.ceil(wait)
        response = refuse(429, f"Too many failed attempts from this address; try again in {seconds} s.",
                          "too_many_attempts")
        response.headers["Retry-After"] = str(seconds)
        return response


class BearerGuard:
    """ASGI middleware: with a key, every request must carry `Authorization: Bearer <key>` (constant-time).

    A client that keeps sending wrong keys is throttled; one that sends none gets 401 and is not counted.
    """

    def __init__(self, app, key: str, refuse: Refusal, throttle: FailureThrottle | None = None):
        self.app, self.key, self.refuse = app, key.encode(), refuse
        self.throttle = throttle or FailureThrottle()

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and self.key:
            client = client_of(scope)
            refused = self.throttle.refusal(client, self.refuse)
            if refused is not None:
                await refused(scope, receive, send)
                return
            scheme, _, given = Headers(scope=scope).get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.key):
                if given.strip():
                    self.throttle.failed(client)
                await self.refuse(401, "Incorrect API key provided: send it as `Authorization: Bearer <key>`",
                                  "invalid_api_key")(scope, receive, send)
                return
            self.throttle.succeeded(client)
        await self.app(scope, receive, send)


class LoginThrottle:
    """ASGI middleware around a login form (a POST to a path ending in `/login`): a client whose
    logins keep failing (an answer of 400, 401 or 403) waits before its next one is looked at."""

    def __init__(self, app, refuse: Refusal, throttle: FailureThrottle | None = None):
        self.app, self.refuse = app, refuse
        self.throttle = throttle or FailureThrottle()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/login"):
            await self.app(scope, receive, send)
            return
        client = client_of(scope)
        refused = self.throttle.refusal(client, self.refuse)
        if refused is not None:
            await refused(scope, receive, send)
            return

        async def watched_send(message):
            if message["type"] == "http.response.start":
                if message["status"] in (400, 401, 403):
                    self.throttle.failed(client)
                elif message["status"] < 400:
                    self.throttle.succeeded(client)
            await send(message)

        await self.app(scope, receive, watched_send)
