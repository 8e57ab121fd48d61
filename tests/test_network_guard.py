"""No test reaches past loopback: not this process (pytest-socket), not the Python processes it starts
(tests/netguard/sitecustomize.py). A hidden model download fails loudly instead of passing."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from pytest_socket import SocketConnectBlockedError

# TEST-NET-1 (RFC 5737): never routed, so nothing here depends on whether the machine has a network.
OUTSIDE = ("192.0.2.1", 80)


@pytest.fixture
def listener():
    """A loopback server socket; yields its address."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()


def connect_from_child(address) -> subprocess.CompletedProcess:
    code = f"import socket; socket.create_connection({address!r}, timeout=5).close(); print('connected')"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.mark.filterwarnings("ignore:A test tried to use socket.socket.connect")  # pytest-socket warns, then raises
@pytest.mark.parametrize("attempt", [1, 2])  # the guard holds for every test, not only the first
def test_a_connection_outside_loopback_is_refused_in_the_test_process(attempt, listener):
    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(OUTSIDE, timeout=5)
    socket.create_connection(listener, timeout=5).close()


def test_a_child_python_process_fails_loudly_when_it_connects_outside_loopback():
    run = connect_from_child(OUTSIDE)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.startswith("netguard: network access attempted in a test's child process: ('192.0.2.1', 80)\n")
    assert "RuntimeError" in run.stderr


def test_a_child_python_process_may_connect_to_loopback(listener):
    run = connect_from_child(listener)
    assert (run.returncode, run.stdout, run.stderr) == (0, "connected\n", "")
