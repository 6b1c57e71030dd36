"""An unwritable ``--storage`` stops ``gantune search`` with one line before Ray is even imported.

Tests run as root, which ignores permission bits, so the storage lies under ``/proc``, where no one
can create a folder. The command runs in a fresh interpreter with a private ``$RAY_TMPDIR``: Ray
never being imported there, and no Ray session folder appearing, show that nothing was started.
"""

from __future__ import annotations

import os
import subprocess
import sys

from checks import TEST_PRESETS

REPORT_RAY = "import sys; from pipelines.cli import main; code = main(sys.argv[1:]); print(code, 'ray' in sys.modules)"


def test_unwritable_storage_is_one_line_and_ray_is_never_imported(tmp_path):
    ray_temp = tmp_path / "ray-tmp"
    storage = "/proc/gantune-unwritable/runs"
    env = {**os.environ, "RAY_TMPDIR": str(ray_temp)}
    done = subprocess.run(
        [sys.executable, "-c", REPORT_RAY, "search", "--config", str(TEST_PRESETS / "fifo_grid25.yaml"),
         "--storage", storage],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )
    assert done.stdout.split() == ["2", "False"], done.stdout + done.stderr
    line, = done.stderr.splitlines()
    assert line.startswith(f"gantune search: --storage {storage} cannot be written: /proc is not a writable folder ")
    assert line.endswith("; give another --storage")
    assert not ray_temp.exists() and list(tmp_path.iterdir()) == []
