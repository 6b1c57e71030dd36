"""Every ``torch.load`` in the tree refuses to unpickle code: a checkpoint or export a user did not
create must never run anything when it is read."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_FOLDERS = ("trainables", "search_spaces", "pipelines", "bench", "tests")


def _torch_loads(tree: ast.AST):
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
            yield node


def _weights_only(call: ast.Call) -> bool:
    return any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
               for k in call.keywords)


def test_every_torch_load_passes_weights_only_true():
    files = [path for folder in SOURCE_FOLDERS for path in sorted((ROOT / folder).rglob("*.py"))]
    calls = [(path, call) for path in files for call in _torch_loads(ast.parse(path.read_text(), str(path)))]
    assert calls, "the checkpoint reader's torch.load should be found"
    unsafe = [f"{path.relative_to(ROOT)}:{call.lineno}" for path, call in calls if not _weights_only(call)]
    assert not unsafe, f"torch.load without weights_only=True: {unsafe}"


def test_the_check_catches_a_load_without_weights_only():
    bad = ast.parse("import torch\nstate = torch.load('x.pt')\nsafe = torch.load('y.pt', weights_only=True)\n")
    assert [_weights_only(call) for call in _torch_loads(bad)] == [False, True]
