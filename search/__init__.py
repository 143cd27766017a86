"""How a sweep runs and what it leaves: Tune + Optuna, Parquet results, queries, CLI."""

from search.query import SweepResults, best, load_sweep, pareto
from search.report import (arm_differences, arm_trials, cost, domain_shift, export_optuna,
                           importances, language_groups, language_view, progress, reliability,
                           statuses, study_from_sweep, task_effects)

__all__ = ["SweepResults", "arm_differences", "arm_trials", "best", "cost", "domain_shift",
           "export_optuna", "importances", "language_groups", "language_view", "load_sweep",
           "pareto", "progress", "reliability", "statuses", "study_from_sweep", "task_effects"]
