"""Every ``torch.load`` in the tree refuses to unpickle code: a checkpoint or export a user did not
create must never run anything when it is read."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _repo_python_files() -> list[Path]:
    """Every .py file of the repository, tracked or new: what git does not ignore, so neither .venv
    nor the code copies that MLflow stores with models under a search folder."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / name for name in sorted(set(listed)) if (ROOT / name).is_file()]


def _torch_loads(tree: ast.AST):
    """The calls of ``torch.load`` in ``tree``, also through ``import torch as t`` or ``from torch import load``."""
    modules, functions = {"torch"}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.asname or alias.name for alias in node.names if alias.name == "torch"}
        elif isinstance(node, ast.ImportFrom) and node.module == "torch":
            functions |= {alias.asname or alias.name for alias in node.names if alias.name == "load"}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (isinstance(func, ast.Attribute) and func.attr == "load" and isinstance(func.value, ast.Name)
                and func.value.id in modules) or (isinstance(func, ast.Name) and func.id in functions):
            yield node


def _weights_only(call: ast.Call) -> bool:
    return any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
               for k in call.keywords)


def _unsafe_lines(source: str) -> list[int]:
    return sorted(call.lineno for call in _torch_loads(ast.parse(source)) if not _weights_only(call))


def test_the_scan_covers_the_whole_repository_and_nothing_else():
    files = {path.relative_to(ROOT).as_posix() for path in _repo_python_files()}
    for folder in ("pipelines", "trainables", "search_spaces", "bench", "tests"):
        assert any(name.startswith(f"{folder}/") for name in files), folder
    assert "tests/test_weights_only.py" in files
    assert not any(name.startswith((".venv/", "gantune-runs/")) for name in files)


def test_every_torch_load_passes_weights_only_true():
    calls = [(path, call) for path in _repo_python_files()
             for call in _torch_loads(ast.parse(path.read_text(), str(path)))]
    assert calls, "the checkpoint reader's torch.load should be found"
    unsafe = [f"{path.relative_to(ROOT)}:{call.lineno}" for path, call in calls if not _weights_only(call)]
    assert not unsafe, f"torch.load without weights_only=True: {unsafe}"


def test_the_check_catches_every_unsafe_form():
    source = """\
import torch
import torch as th
from torch import load, load as fetch
a = torch.load(f)
b = torch.load(f, weights_only=False)
c = torch.load(
    f,
    map_location="cpu",
)
d = th.load(f)
e = load(f)
g = fetch(f, **options)
ok = torch.load(
    f,
    weights_only=True,
)
ok = load(f, weights_only=True)
ok = json.load(f)
"""
    assert _unsafe_lines(source) == [4, 5, 6, 10, 11, 12]
