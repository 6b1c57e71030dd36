"""Check a ``--address`` before anything starts: its form, then that something answers there.

Ray's own connection attempt to a wrong address retries for tens of seconds and then fails with
a long traceback; a plain TCP connection answers in milliseconds with a reason we can print.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from trainables.errors import Unreachable, UsageError

CLIENT_PREFIX = "ray://"
CONNECT_TIMEOUT_S = 3.0
ADDRESS_FILE = "ray_current_cluster"
_FORMS = "auto, HOST:PORT or ray://HOST:PORT"


def _split(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--address {address!r} is not of the form {_FORMS}")
    return host.strip("[]"), int(port)


def _ray_temp_dir() -> Path:
    """The folder where ``ray start`` records its address: $RAY_TMPDIR, else $TMPDIR on Linux, else /tmp."""
    base = os.environ.get("RAY_TMPDIR") or (os.environ.get("TMPDIR") if sys.platform.startswith("linux") else None)
    return Path(base or "/tmp") / "ray"


def _auto_address() -> str:
    """What ``ray.init(address="auto")`` picks, as its documentation states: $RAY_ADDRESS, else the
    address the latest ``ray start`` on this host wrote to ``ray_current_cluster`` in Ray's temp folder.

    Read here rather than by calling ``ray.init``, which would join the cluster (seconds, and a
    driver to shut down) and, finding no file, fall back to any Ray process it sees on the host.
    """
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    record = _ray_temp_dir() / ADDRESS_FILE
    found = record.read_text().strip() if record.is_file() else ""
    if not found:
        raise Unreachable(
            f"--address auto: no running Ray cluster found on this host (no address in {record}) "
            "and RAY_ADDRESS is unset; start one with `ray start --head` or give HOST:PORT"
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
