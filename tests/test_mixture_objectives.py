"""The 2-D objectives rank known-bad samples below known-good ones, and the diagnostics show why
they are not objectives.

Three "generators" per mixture: one that covers every mode sharply (fresh samples of the
mixture itself), one collapsed onto a few modes (sharp, but 3 of the modes only), and one that
spreads its samples off the modes (most of its mass uniform over the square around the grid,
the blurry generator that won a search optimising ``kl_modes``).
"""

from __future__ import annotations

import pytest
import torch
from checks import worse_by

from trainables.data.datasets import DATASETS, load_dataset
from trainables.quality import metrics
from trainables.quality.objectives import MIXTURE_METRICS, MIXTURE_OBJECTIVES
from trainables.quality.scoring import build_quality

SAMPLES = 5000
KEPT_MODES = 3
OFF_MODE_SHARE = 0.7


def _generators(mixture, seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    faithful, modes = mixture.sample(SAMPLES, generator)
    noise = torch.randn(SAMPLES, 2, generator=generator) * mixture.std
    collapsed = mixture.centers[modes % KEPT_MODES] + noise
    extent = mixture.centers.abs().max() + 1.0
    spread = (torch.rand(SAMPLES, 2, generator=generator) * 2 - 1) * extent
    off_modes = int(OFF_MODE_SHARE * SAMPLES)
    blurry = torch.cat([spread[:off_modes], faithful[off_modes:]])
    return {"faithful": faithful, "collapsed": collapsed, "off_modes": blurry}


@pytest.fixture(scope="module", params=sorted(name for name, spec in DATASETS.items() if not spec.is_image))
def scored(request) -> dict[str, dict]:
    data = load_dataset(request.param)
    quality = build_quality(data, torch.device("cpu"))
    return {name: quality.evaluate(points) for name, points in _generators(data.spec.mixture).items()}



@pytest.mark.parametrize("objective", MIXTURE_OBJECTIVES)
@pytest.mark.parametrize("bad", ["collapsed", "off_modes"])
def test_objective_scores_collapse_and_off_mode_samples_clearly_worse(scored, objective, bad):
    mode = MIXTURE_METRICS[objective]
    good = scored["faithful"][objective]
    gap = worse_by(scored[bad][objective], good, mode)
    # "Clearly": by at least 0.2 on these scales (js_modes in [0, log 2], coverage in [0, 1]).
    assert gap > 0.2, f"{objective}: {bad} {scored[bad][objective]:.4f} vs faithful {good:.4f}"


def test_default_objective_is_near_zero_for_the_mixture_itself(scored):
    assert scored["faithful"]["js_modes"] < 0.02
    assert scored["collapsed"]["modes_covered"] == KEPT_MODES < scored["faithful"]["modes_covered"]


def test_diagnostics_each_miss_one_failure(scored):
    """Why kl_modes, high_quality and precision are not objectives: each ranks a bad generator
    as good as (or better than) the faithful one."""
    faithful, collapsed, blurry = scored["faithful"], scored["collapsed"], scored["off_modes"]
    # kl_modes looks only at the high-quality samples, so the blurry generator scores near perfect.
    assert blurry["kl_modes"] < faithful["kl_modes"] + 0.05
    # high_quality and precision do not see dropped modes.
    assert collapsed["high_quality"] >= faithful["high_quality"] - 0.01
    assert collapsed["precision"] >= faithful["precision"] - 0.02
    # recall does not see off-mode samples: spreading mass everywhere still reaches every mode.
    assert blurry["recall"] >= faithful["recall"] - 0.02


def test_js_modes_grows_with_the_off_mode_share():
    mixture = DATASETS["grid25"].mixture
    generator = torch.Generator().manual_seed(2)
    faithful, _ = mixture.sample(SAMPLES, generator)
    spread = (torch.rand(SAMPLES, 2, generator=generator) * 2 - 1) * 5.0
    values = []
    for share in (0.0, 0.2, 0.4, 0.6):
        cut = int(share * SAMPLES)
        values.append(metrics.mode_metrics(torch.cat([spread[:cut], faithful[cut:]]), mixture)["js_modes"])
    assert values == sorted(values) and values[-1] - values[0] > 0.1
