"""Small checks several test modules share: the one-line error contract, objective margins, test presets."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

TEST_PRESETS = Path(__file__).resolve().parent / "presets"


def one_error_line(capsys) -> str:
    """The command's stderr, which must be exactly one line; returns it."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def worse_by(value: float, reference: float, mode: str) -> float:
    """How much worse ``value`` is than ``reference`` in direction ``mode``, positive when worse."""
    return value - reference if mode == "min" else reference - value


def wait_for(predicate, what: str, process: subprocess.Popen, timeout_s: float = 300.0, log: Path | None = None):
    """Poll ``predicate`` until it returns something true, which is returned; fail if ``process`` (a search
    being watched) ends first or the time runs out, with the tail of its ``log`` when there is one."""
    tail = lambda: f":\n{log.read_text()[-3000:]}" if log else ""  # noqa: E731
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        if process.poll() is not None:
            raise AssertionError(f"the search ended (exit {process.returncode}) before {what}{tail()}")
        time.sleep(0.25)  # polling files and a server another process writes
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}{tail()}")


BUNDLED_PRESETS = Path(__file__).resolve().parents[1] / "search_spaces" / "presets"


def bundled_preset(name: str, budget: dict, params: dict, **sections) -> dict:
    """A bundled preset as a user would copy and shrink it: its own YAML with ``budget`` and ``params``
    keys replaced and any other section (``scheduler``, ``resources`` ...) replaced whole.

    The preset's metric, searcher and floor stay its own, so a retuned preset is what the test runs."""
    import yaml

    preset = yaml.safe_load((BUNDLED_PRESETS / f"{name}.yaml").read_text())
    preset["budget"] = {**preset.get("budget", {}), **budget}
    preset["params"] = {**preset.get("params", {}), **params}
    preset.update(sections)
    return preset
