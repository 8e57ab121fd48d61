"""Who may reach the web UI: requests that name this server, from its own pages, with its token.

A page the user visits elsewhere can send requests to 127.0.0.1, and by pointing its own name at
127.0.0.1 (DNS rebinding) it can read the replies too. So, as Jupyter does, a request must name
this server in its `Host` header, must not come from another site's page (`Origin`), and, when
the UI has no login, must carry the token printed at start-up: in the URL once (a cookie keeps
it), or as `Authorization: Bearer <token>` from a program.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse, RedirectResponse, Response

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# A Host header: a DNS name or IPv4 address, or a bracketed IPv6 address, and an optional port.
_HOST_HEADER = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                          r"\.?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
# Sent with every response: no other site may frame the app, and no response is sniffed into another type.
SECURITY_HEADERS = ((b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'"),
                    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))

# What a refused request gets: (status, message, code) to a response. The UI answers in plain text,
# `rag serve` with an OpenAI error object.
Refusal = Callable[[int, str, str], Response]


def plain_refusal(status: int, message: str, code: str) -> Response:
    """A refusal as plain text."""
    return PlainTextResponse(message, status)


def allowed_hosts(bind: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The names a request's `Host` may give: the loopback names, the bound address and `extra`.

    Bound to every address (0.0.0.0 or ::), the server has as many names as the machine, so any
    is allowed unless `extra` lists them; such a server requires a login (see app.py).
    """
    if is_wildcard(bind) and not extra:
        return ["*"]
    names = [*LOOPBACK_NAMES, *([] if is_wildcard(bind) else [bracketed(bind)]), *map(bracketed, extra)]
    return list(dict.fromkeys(n.lower() for n in names))


def is_wildcard(host: str) -> bool:
    """True for an address that binds every interface."""
    return host in ("0.0.0.0", "::", "")


def bracketed(host: str) -> str:
    """An IPv6 address as a `Host` header writes it ("[::1]"); any other name as it is."""
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


class SameOriginGuard:
    """ASGI middleware refusing requests under a name that is not this server's, from another site's
    page, and, with a token, without it.

    `hosts` are the names `Host` may give (see `allowed_hosts`; None or "*" allows any).
    `origin_hosts` are the other names a page of this app may be served under (a reverse proxy's
    public name, when the proxy rewrites `Host`). `refuse` builds the refusals.
    """

    def __init__(self, app, token: str = "", cookie: str = "rag-token", origin_hosts: tuple[str, ...] = (),
                 hosts: list[str] | None = None, refuse: Refusal = plain_refusal, throttle=None):
        self.app = app
        # A rag.access.FailureThrottle: a client that keeps presenting wrong tokens waits.
        self.throttle = throttle
        self.token = token
        self.cookie = cookie
        self.origin_hosts = {bracketed(h).lower() for h in origin_hosts}
        self.hosts = None if hosts is None or "*" in hosts else {h.lower() for h in hosts}
        self.refuse = refuse

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not self.host_allowed(headers.get("host", "")):
            await self.refuse(400, "Invalid Host header: this server does not go by that name.",
                              "invalid_host")(scope, receive, send)
            return
        if not self.same_origin(headers.get("origin"), headers.get("host", "")):
            await self.refuse(403, "Requests from another site's page are refused.",
                              "cross_origin")(scope, receive, send)
            return
        client = str((scope.get("client") or ("",))[0])
        # Checked before the token: while a client waits, not even a right guess gets an answer.
        refused = self.throttle.refusal(client, self.refuse) if self.token and self.throttle else None
        if refused is not None:
            await refused(scope, receive, send)
            return
        if self.token and not self.holds_token(HTTPConnection(scope)):
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
            if not self.matches(dict(query).get("token", "")):
                if self.throttle and self.presents_token(HTTPConnection(scope), dict(query)):
                    self.throttle.failed(client)
                await self.refuse(403, "Open the address the server printed at start-up: it holds the token "
                                  "this server asks for.", "missing_token")(scope, receive, send)
                return
            if scope["type"] == "http" and scope["method"] == "GET":
                # The printed address: keep the token in a cookie, and take it out of the address bar.
                # One leading slash: "//evil.example/" would send the browser to another site.
                rest = urlencode([(k, v) for k, v in query if k != "token"])
                path = "/" + scope["path"].lstrip("/\\")
                response = RedirectResponse(path + (f"?{rest}" if rest else ""), status_code=303)
                response.set_cookie(self.cookie, self.token, httponly=True, samesite="strict")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def host_allowed(self, host: str) -> bool:
        """True when the `Host` header ("name" or "name:port") names this server (DNS rebinding).

        Anything but a name, an IPv4 or bracketed IPv6 address and a port is refused first: a URL
        parser reads "evil.example\\@localhost" as localhost.
        """
        if self.hosts is None:
            return True
        if not _HOST_HEADER.fullmatch(host):
            return False
        name = urlsplit(f"//{host}").hostname
        return bool(name) and bracketed(name) in self.hosts

    def same_origin(self, origin: str | None, host: str) -> bool:
        """True for a request from a page of this server, or without `Origin`: browsers send one with
        every POST, and with every request to another site whose reply the page may read."""
        if origin is None:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https"):
            return False  # "null": a sandboxed frame or a local file
        return parts.netloc.lower() == host.lower() or bracketed(parts.hostname or "") in self.origin_hosts

    def holds_token(self, request) -> bool:
        """True when the token comes in this server's cookie or as `Authorization: Bearer`."""
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        return self.matches(request.cookies.get(self.cookie, "")) or (
            scheme.lower() == "bearer" and self.matches(credentials.strip()))

    def presents_token(self, request, query: dict) -> bool:
        """True when the request offers a token at all (a wrong one is a guess; none is a first visit)."""
        return bool(query.get("token") or request.cookies.get(self.cookie)
                    or request.headers.get("authorization", "").strip())

    def matches(self, candidate: str) -> bool:
        """True when `candidate` is the token (compared in constant time)."""
        return bool(candidate) and hmac.compare_digest(candidate.encode(), self.token.encode())


class SecurityHeaders:
    """ASGI middleware adding SECURITY_HEADERS to every HTTP response (a header the app set is kept)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message):
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


def is_loopback(host: str) -> bool:
    """True when only this machine can reach `host` (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
