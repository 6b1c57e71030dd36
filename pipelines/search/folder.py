"""Where one search keeps everything: ``STORAGE/NAME`` on a local or shared folder, or a URI.

Inside the folder: ``tune/`` (Tune's experiment: trial results and checkpoints, what ``--resume``
restores), ``optuna.db`` (the study, for optuna-dashboard), ``search.yaml`` (the resolved preset,
the record of what was searched) and ``best.json`` (written when the search ends).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipelines.output_folder import check_writable
from trainables.atomic import write_atomically
from trainables.errors import UsageError

EXPERIMENT = "tune"
SEARCH_FILE = "search.yaml"
BEST_FILE = "best.json"
STUDY_FILE = "optuna.db"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def is_uri(storage: str) -> bool:
    return "://" in storage and not storage.startswith("file://")


@dataclass(frozen=True)
class SearchFolder:
    storage: str  # an absolute local path or a pyarrow-supported URI
    name: str

    @property
    def path(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.name}"

    @property
    def experiment(self) -> str:
        return f"{self.path}/{EXPERIMENT}"

    @property
    def is_local(self) -> bool:
        return not is_uri(self.storage)

    def default_study_url(self) -> str:
        return f"sqlite:///{self.path}/{STUDY_FILE}"

    def _filesystem(self):
        import pyarrow.fs

        return pyarrow.fs.FileSystem.from_uri(self.path)

    def exists(self) -> bool:
        if self.is_local:
            return Path(self.experiment).exists()
        import pyarrow.fs

        try:
            filesystem, root = pyarrow.fs.FileSystem.from_uri(self.experiment)
            return filesystem.get_file_info(root).type != pyarrow.fs.FileType.NotFound
        except (OSError, ValueError) as err:
            reason = str(err).splitlines()[0]
            raise UsageError(f"--storage {self.storage}: cannot be read ({reason}); check the URI and credentials") from None

    def write_text(self, filename: str, text: str) -> str:
        """Write one file into the folder (created if needed); returns its location."""
        if self.is_local:
            target = Path(self.path) / filename
            write_atomically(target, lambda temporary: temporary.write_text(text))
            return str(target)
        filesystem, root = self._filesystem()
        filesystem.create_dir(root, recursive=True)
        with filesystem.open_output_stream(f"{root}/{filename}") as stream:
            stream.write(text.encode())
        return f"{self.path}/{filename}"

    def read_text(self, filename: str) -> str:
        if self.is_local:
            return (Path(self.path) / filename).read_text()
        filesystem, root = self._filesystem()
        with filesystem.open_input_stream(f"{root}/{filename}") as stream:
            return stream.read().decode()

    def write_search(self, preset: dict[str, Any]) -> str:
        return self.write_text(SEARCH_FILE, yaml.safe_dump(preset, sort_keys=False))

    def write_best(self, best: dict[str, Any]) -> str:
        return self.write_text(BEST_FILE, json.dumps(best, indent=2) + "\n")


def resolve_storage(storage: str) -> str:
    """A URI as given; a local path made absolute (Ray workers run in other folders) once it is known
    that the folder can be made and written, so that an unwritable one fails before Ray starts."""
    if is_uri(storage):
        return storage
    path = Path(storage.removeprefix("file://")).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--storage {storage!r} is a file; give a folder (created if missing) or a URI")
    check_writable("--storage", storage, path)
    return str(path)


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise UsageError(f"--name {name!r} must be letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name
