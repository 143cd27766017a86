"""How a sweep runs and what it leaves: Tune + Optuna, Parquet results, queries, CLI."""

from search.query import Sweep, best, load_sweep, pareto

__all__ = ["Sweep", "best", "load_sweep", "pareto"]
