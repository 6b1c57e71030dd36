"""Tune's Optuna searcher, made safe to resume after the driver was killed.

Imported only where a search is built or checked: it loads Ray Tune and Optuna at import time.
"""

from __future__ import annotations

from importlib.metadata import version

from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from trainables.errors import UnsupportedVersion

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# OptunaSearch's own state that the resume fix reads and updates; Ray has no public API for it.
RELIED_ON = ("_ot_study", "_completed_trials", "_ot_trials")
TESTED_RAY = "2.60"


class ResumableOptunaSearch(OptunaSearch):
    """OptunaSearch that, on restore, treats trials the Optuna study already finished as finished.

    The study lives in an RDB file that is written the moment a trial ends, while the searcher's
    own state is only pickled with Tune's periodic experiment snapshot. A driver killed between
    the two leaves a snapshot in which that trial still runs: the resumed Tune reruns it, and
    telling Optuna about it again fails (``Trial.report`` raises ``UpdateFinishedTrialError`` and
    kills the driver; ``Study.tell`` is refused). Marking such trials completed on restore makes
    OptunaSearch drop the rerun's results and completion, so the study keeps the first outcome.
    """

    def restore(self, checkpoint_path: str):
        super().restore(checkpoint_path)
        finished = {trial.number for trial in self._ot_study.get_trials(deepcopy=False, states=FINISHED_STATES)}
        self._completed_trials.update(
            trial_id for trial_id, ot_trial in self._ot_trials.items() if ot_trial.number in finished
        )


def check_resumable(searcher_class: type = ResumableOptunaSearch) -> None:
    """Refuse to start a search whose resume would break: the installed Ray's OptunaSearch must still
    hold the attributes ``restore`` above relies on.

    A fresh searcher (no space, so no study and no Ray) is inspected, so a Ray upgrade that renames
    them stops the search with one line before anything runs, not with a traceback on its resume.
    """
    searcher = searcher_class()
    missing = [name for name in RELIED_ON if not hasattr(searcher, name)]
    if missing:
        raise UnsupportedVersion(
            f"ray {version('ray')}'s OptunaSearch no longer has {', '.join(missing)}, which gantune's resume "
            f"relies on; install a ray version gantune supports (tested: {TESTED_RAY})"
        )
