"""What MLflow tracking costs a search, side by side: the same small search without and with it.

Both searches run the same preset with the same seed in one process; the tracked one logs to an
embedded sqlite store in its folder (or to ``--tracking-uri``). Then the best generator is
exported and loaded back, and those times are printed too.

    python bench/tracking.py --preset search_spaces/presets/grid25.yaml --num-samples 6
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pipelines.search.folder import SearchFolder
from pipelines.search.runner import SearchRun, run_search
from pipelines.tracking.target import TrackingTarget, credentials_to_env, embedded_target
from search_spaces.preset import load_preset, with_overrides


def timed_search(preset, storage: Path, name: str, tracking: TrackingTarget | None) -> float:
    folder = SearchFolder(str(storage), name)
    started = time.perf_counter()
    run_search(SearchRun(preset, folder, folder.default_study_url(), tracking=tracking))
    return time.perf_counter() - started


def export_times(target: TrackingTarget, storage: Path) -> tuple[float, float]:
    """Seconds to export the tracked search's best trial, and to load that export with torch alone."""
    from mlflow import MlflowClient
    from pipelines.registry.export_writer import write_export
    from pipelines.registry.model_source import record_from_run
    from pipelines.tracking.tags import TAG_ROLE
    from trainables.export_reader import load_exported

    client = MlflowClient(target.uri)
    experiment = client.get_experiment_by_name(target.experiment)
    parent = client.search_runs([experiment.experiment_id], f"tags.`{TAG_ROLE}` = 'search'")[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        out = write_export(record_from_run(client, parent.info.run_id, scratch), storage / "export")
    exported = time.perf_counter() - started
    started = time.perf_counter()
    load_exported(out).generate(64)
    return exported, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="search_spaces/presets/grid25.yaml")
    parser.add_argument("--num-samples", type=int, default=6)
    parser.add_argument("--max-steps", type=int, default=None, help="override budget.max_steps")
    parser.add_argument("--tracking-uri", help="an MLflow server (default: the embedded sqlite store)")
    args = parser.parse_args()
    preset = with_overrides(load_preset(args.preset), num_samples=args.num_samples)
    if args.max_steps:
        import dataclasses

        preset = dataclasses.replace(preset, budget=dataclasses.replace(preset.budget, max_steps=args.max_steps))
    with tempfile.TemporaryDirectory(prefix="gantune-bench-") as scratch:
        storage = Path(scratch)
        plain = timed_search(preset, storage, "plain", None)
        target = (TrackingTarget(credentials_to_env(args.tracking_uri), "bench-tracked") if args.tracking_uri
                  else embedded_target(str(storage / "tracked"), "bench-tracked"))
        tracked = timed_search(preset, storage, "tracked", target)
        exported, loaded = export_times(target, storage)
    print(f"search, {preset.budget.num_samples} trials x {preset.budget.max_steps} steps")
    print(f"{'untracked':>12} {'tracked':>10} {'ratio':>7}")
    print(f"{plain:11.1f}s {tracked:9.1f}s {tracked / plain:7.2f}")
    print(f"export of the best trial {exported:.2f}s; torch-only load + 64 samples {loaded:.2f}s")


if __name__ == "__main__":
    main()
