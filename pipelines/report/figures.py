"""The figures of a search report, drawn headless with matplotlib; each function writes one PNG.

Importances and the metric against each param use Optuna's own matplotlib plots of the rebuilt
study, so they read like the ones an Optuna user knows. Optuna switches pyplot's style globally
when it draws, so its plots run inside an ``rc_context`` that restores the style afterwards.
The real-data picture is drawn by the project's own sample writers, so it looks exactly like
the trials' sample pictures beside it.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: a search driver or a server has no display

import matplotlib.image
from matplotlib import pyplot as plt
from matplotlib.ticker import MaxNLocator

from pipelines.report.stats import ALL_TRIALS, Curve, StatusRow
from trainables.core.train_config import TrainConfig

DPI = 100
REAL_IMAGES = 64  # an 8x8 grid, the size of a trial's sample grid
STATUS_COLOURS = {"completed": "tab:green", "early_stopped": "tab:blue", "diverged": "tab:red", "errored": "tab:gray"}


def _save(figure, path: Path) -> Path:
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return path


def draw_progress(curves: Sequence[Curve], metric: str, mode: str, path: Path) -> Path:
    """Best-so-far against trials and against cumulative trial-seconds, one line per loss."""
    figure, (by_trials, by_seconds) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for curve in curves:
        # The all-trials line runs under the per-loss lines it shares segments with.
        style = {"color": "0.4", "linestyle": "--", "zorder": 1} if curve.label == ALL_TRIALS else {}
        best = [math.nan if value is None else value for value in curve.best]
        by_trials.plot(curve.trials, best, drawstyle="steps-post", marker=".", label=curve.label, **style)
        by_seconds.plot(curve.seconds, best, drawstyle="steps-post", marker=".", label=curve.label, **style)
    by_trials.set_xlabel("trials")
    by_trials.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_seconds.set_xlabel("cumulative trial-seconds")
    by_trials.set_ylabel(f"best {metric} so far ({'lower' if mode == 'min' else 'higher'} is better)")
    by_trials.legend(title="loss")
    for axes in (by_trials, by_seconds):
        axes.grid(alpha=0.3)
    figure.suptitle(f"Best {metric} against budget, per loss")
    return _save(figure, path)


def draw_status(rows: Sequence[StatusRow], saved: float | None, path: Path) -> Path:
    """Trials and trial-seconds per status; the title says what early stopping saved."""
    figure, (counts, seconds) = plt.subplots(1, 2, figsize=(10, 3.5))
    names = [row.status for row in rows]
    colours = [STATUS_COLOURS.get(name, "tab:purple") for name in names]
    counts.bar(names, [row.count for row in rows], color=colours)
    seconds.bar(names, [row.seconds for row in rows], color=colours)
    counts.set_ylabel("trials")
    counts.yaxis.set_major_locator(MaxNLocator(integer=True))
    seconds.set_ylabel("trial-seconds")
    for axes in (counts, seconds):
        axes.tick_params(axis="x", labelrotation=20)
        axes.grid(axis="y", alpha=0.3)
    title = "Trials by how they ended"
    if saved:
        title += f"; early stopping saved about {saved:,.0f} trial-seconds"
    figure.suptitle(title)
    return _save(figure, path)


def _optuna_figure(draw):
    """Run an Optuna matplotlib plot without letting its style leak; returns its figure."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", ExperimentalWarning)
        drawn = draw()
    return (drawn.flat[0] if hasattr(drawn, "flat") else drawn).figure


def draw_importances(study, evaluator, metric: str, path: Path) -> Path:
    from optuna.visualization.matplotlib import plot_param_importances

    figure = _optuna_figure(lambda: plot_param_importances(study, evaluator=evaluator, target_name=metric))
    return _save(figure, path)


def draw_slices(study, params: Sequence[str], metric: str, path: Path) -> Path:
    """The trials' values against each of ``params``, one panel each."""
    from optuna.visualization.matplotlib import plot_slice

    figure = _optuna_figure(lambda: plot_slice(study, params=list(params), target_name=f"best {metric}"))
    return _save(figure, path)


def write_real_picture(data: TrainConfig, path: Path) -> Path:
    """Real data drawn as a trial's samples are: the true mixture's scatter, or a grid of training images.

    ``data``: a config of the search's data (``SearchPreset.data_config``)."""
    import torch

    from trainables.core.pictures import SCATTER_POINTS, write_picture
    from trainables.data.datasets import load_data, spec_of
    from trainables.data.records import as_samples

    spec = spec_of(data)
    generator = torch.Generator().manual_seed(0)
    if spec.is_image:
        images = load_data(data).train_x
        real = as_samples(images[torch.randperm(images.shape[0], generator=generator)[:REAL_IMAGES]])
    else:
        real, _ = spec.mixture.sample(SCATTER_POINTS, generator)
    write_picture(path, real, spec)
    return path


def draw_samples(panels: Sequence[tuple[str, Path]], path: Path) -> Path:
    """Pictures side by side, each under its title (real data first, then the top trials)."""
    figure, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.2), squeeze=False)
    for (title, picture), box in zip(panels, axes[0]):
        box.imshow(matplotlib.image.imread(picture))
        box.set_title(title, fontsize=9)
        box.axis("off")
    return _save(figure, path)
