"""Check a ``--address`` before anything starts: its form, then that something answers there.

Ray's own connection attempt to a wrong address retries for tens of seconds and then fails with
a long traceback; a plain TCP connection answers in milliseconds with a reason we can print.
"""

from __future__ import annotations

import os
import socket

from trainables.errors import Unreachable, UsageError

CLIENT_PREFIX = "ray://"
CONNECT_TIMEOUT_S = 3.0
_FORMS = "auto, HOST:PORT or ray://HOST:PORT"


def _split(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--address {address!r} is not of the form {_FORMS}")
    return host.strip("[]"), int(port)


def _auto_address() -> str:
    """What ``ray.init(address="auto")`` would pick: $RAY_ADDRESS, else the last ``ray start`` on this host."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    from ray._private.services import find_bootstrap_address

    found = find_bootstrap_address(None)
    if found is None:
        raise Unreachable(
            "--address auto: no running Ray cluster found on this host and RAY_ADDRESS is unset; "
            "start one with `ray start --head` or give HOST:PORT"
        )
    return found


def check_address(address: str) -> str:
    """Return the address to hand to ``ray.init``; raise UsageError if it is malformed, Unreachable if nothing answers."""
    target = _auto_address() if address == "auto" else address
    host, port = _split(target.removeprefix(CLIENT_PREFIX))
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise Unreachable(
            f"--address {address}: nothing answers at {host}:{port} ({reason}); "
            "start the cluster (`ray start --head`) or fix the address"
        ) from None
    return address
