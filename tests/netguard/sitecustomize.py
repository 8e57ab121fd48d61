"""Imported at start-up by every Python process the tests start (tests/conftest.py puts this folder on
their PYTHONPATH): a connection to anything but loopback raises, so a child process such as
`python -m llama_cpp.server` or a `rag` command cannot download a model or phone home unnoticed.

The error is a RuntimeError, not an OSError, so no library mistakes it for a network that is down
and falls back quietly; it is also printed to standard error, where the test shows it.
"""

import ipaddress
import socket
import sys

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def _loopback(address) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name: only "localhost" is known to stay on this machine


def _check(sock, address) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address):
        message = f"network access attempted in a test's child process: {address!r}"
        print(f"netguard: {message}", file=sys.stderr, flush=True)
        raise RuntimeError(message)


def _guarded_connect(self, address):
    _check(self, address)
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    _check(self, address)
    return _connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
