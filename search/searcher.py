"""Optuna inside Ray Tune, with two fixes to the stock ``OptunaSearch``.

1. A trial stopped early by ASHA reached Optuna as COMPLETE with its truncated
   score, so TPE learned from low-budget scores as if final. Here it is told as
   PRUNED; its intermediate values (reported at each rung, phase-2 probes included)
   stay on the Optuna trial, and TPE ranks pruned trials below completed ones by them.
2. Intermediate values are keyed by the trial's budget counter (``BUDGET_KEY``, the
   same one ASHA stops on), not Tune's ``training_iteration``, which restarts when a
   trial is resumed.

A trial is finished when its last report says ``finished``; anything else that
ends without an error was stopped early.
"""

from __future__ import annotations

import functools
import logging
import warnings
from typing import Any, Sequence

import optuna
from ray.tune.search import SearchGenerator, Searcher
from ray.tune.search.optuna import OptunaSearch

from spaces.objective import ACCURACY_KEY, BUDGET_KEY, DONE_KEY, OBJECTIVE_ECE, SCORE_KEY
from spaces.space import SpaceSpec, define_space
from spaces.sweep import SweepConfig, design_points

log = logging.getLogger(__name__)


class PruningOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that reports early-stopped trials to Optuna as pruned."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if isinstance(self.metric, list) or trial_id in self._completed_trials:
            return  # Optuna keeps no intermediate values for multi-objective studies
        value = result.get(self.metric)
        if value is None or BUDGET_KEY not in result:
            return
        step = int(result[BUDGET_KEY])
        seen = self.__dict__.setdefault("_reported_steps", {}).setdefault(trial_id, set())
        if step not in seen:  # a resumed trial repeats steps it already reported
            seen.add(step)
            self._ot_trials[trial_id].report(float(value), step)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        finished = bool(result and result.get(DONE_KEY))
        if error or finished:
            super().on_trial_complete(trial_id, result=result if finished else None, error=error)
            return
        # Stopped early (ASHA) or ended without its final report: not a final value.
        # Tune hands the stopping result to on_trial_complete only, so record it here.
        if result:
            self.on_trial_result(trial_id, result)
        self._ot_study.tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED)
        self._completed_trials.add(trial_id)

    @property
    def study(self) -> optuna.Study:
        return self._ot_study


#: the user attribute of an Optuna trial queued for a trial recorded after Tune's last
#: snapshot: that trial's Tune id
LOST_ATTR = "xstilts:recorded_as"


class BudgetedSearch(SearchGenerator):
    """Tune's ``SearchGenerator`` with a trial budget a resume may raise, and the trials
    Tune's last snapshot missed put first.

    Tune saves the generator's trial total with its state and puts it back on restore,
    so a restored sweep would stop at its old budget; here the restored total is raised
    to ``budget`` (``xstilts resume --trials``) and a finished generator is opened again.
    Everything else (the Optuna study, the trials counted so far) is restored as saved.

    A trial started and recorded after Tune's last snapshot (a driver killed between
    two) is in the sweep's results but neither in Tune's trials nor in the restored
    study. Its config is queued to be suggested first (``Study.enqueue_trial``): the trial
    drawn for it reports the recorded result and trains nothing
    (``search.tune_trials._answered``), takes the lost trial's place in the budget and
    its row (``search.results.ResultsWriter._redrawn``), and tells the study its value.
    The sampler is then reseeded: restored, it would draw those configs once more. A
    queued config carries the lost trial's id (``LOST_ATTR``), so a resume after another
    kill does not queue it again; one that a prior or a designed point had given is
    waiting in the restored study already and is not queued twice."""

    def __init__(self, searcher: Searcher, budget: int, sweep_path: str | None = None):
        super().__init__(searcher)
        self.budget = budget
        self.sweep_path = sweep_path

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        if self.budget > self._total_samples:
            self._total_samples = self.budget
            self._finished = False

    def restore_from_dir(self, dirpath: str) -> None:
        super().restore_from_dir(dirpath)
        inner = pruning_searcher(self)
        if inner is not None and self.sweep_path:
            trials = inner.study.get_trials(deepcopy=False)
            # a lost trial queued by an earlier resume (waiting, or drawn since) is known
            queued = {t.user_attrs.get(LOST_ATTR) for t in trials}
            lost = lost_trials(self.sweep_path, known=set(inner._ot_trials) | queued)
            # a designed point or prior a lost trial took is waiting again: it replays it
            waiting = [t.system_attrs.get("fixed_params") for t in trials
                       if t.state == optuna.trial.TrialState.WAITING]
            for trial_id, params in lost:
                if params in waiting:
                    waiting.remove(params)
                else:
                    inner.study.enqueue_trial(params, user_attrs={LOST_ATTR: trial_id},
                                              skip_if_exists=False)
            if lost:
                inner.study.sampler.reseed_rng()
                log.warning("%d trial(s) recorded after Tune's last snapshot go first: their "
                            "results are reported again, nothing is trained", len(lost))


def pruning_searcher(alg: Any) -> PruningOptunaSearch | None:
    """The ``PruningOptunaSearch`` inside Tune's search wrappers (each holds the next as
    ``searcher``), or None."""
    while alg is not None and not isinstance(alg, PruningOptunaSearch):
        alg = getattr(alg, "searcher", None)
    return alg


def lost_trials(sweep_path: str, *, known: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """The Tune trial ids and parameters of the trials the sweep recorded (finished or
    stopped, a duplicate of either too) whose ids are not in ``known``, in the order they
    were recorded."""
    from search.results import read_table
    from search.study import _rebuild, _sweep

    ids = read_table(sweep_path, "trials", columns=["trial_id"])
    if ids is None or set(ids["trial_id"].to_pylist()) <= known:
        return []  # the usual resume: Tune's snapshot holds every recorded trial
    _, _, frozen = _rebuild(_sweep(sweep_path))
    return [(t.user_attrs["trial_id"], t.params) for t in frozen
            if t.user_attrs["trial_id"] not in known and t.user_attrs["status"] != "error"]


def make_searcher(sweep: SweepConfig, objective_ece: str = "raw",
                  priors: list[dict[str, Any]] | None = None,
                  earlier: Sequence[optuna.trial.FrozenTrial] = ()) -> PruningOptunaSearch:
    """The seeded sampler and the define-by-run space of a sweep; a multi-objective one
    minimises the ECE ``objective_ece`` names (``spaces.objective.OBJECTIVE_ECE``).
    ``priors``: parameters of the first trials (``search.priors.prior_points``).
    ``earlier``: finished trials of earlier sweeps (``search.study.warm_start``), added to
    the study before its first suggestion: they count toward TPE's startup trials, and its
    first suggestions are drawn from a model of them."""
    if sweep.mode == "multi":
        metric: Any = [ACCURACY_KEY, OBJECTIVE_ECE[objective_ece]]
        mode: Any = ["max", "min"]
    else:
        metric, mode = SCORE_KEY, "max"
    if sweep.sampler == "random":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=sweep.seed)
    else:
        # multivariate + group: conditional parameters (weights of included tasks) are
        # modelled jointly; constant_liar keeps parallel workers from proposing the same point
        with warnings.catch_warnings():  # group= is experimental in Optuna: chosen, known
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=sweep.seed, n_startup_trials=sweep.startup_trials, multivariate=True,
                group=True, constant_liar=True)  # (no independent-sampling warning since 4.9)
    # a designed sweep's arms x seeds, enqueued in order (the sampler fills in nothing the
    # designed space leaves open)
    # (or the trials the similarity priors put first)
    points = design_points(sweep) if sweep.arms else priors or None
    searcher = PruningOptunaSearch(space=functools.partial(_space, spec=sweep.space),
                                   metric=metric, mode=mode, sampler=sampler,
                                   points_to_evaluate=points)
    if earlier:
        searcher.study.add_trials(earlier)
    return searcher


def _space(trial: Any, spec: SpaceSpec) -> None:
    # module-level so the searcher pickles into Tune's experiment state
    define_space(trial, spec)
