"""Design-space exploration (paper section 5): the metaparameter space, trials, one-parameter
sweeps, and searches by random, simulated-annealing, genetic and Bayesian strategies on a shared,
resumable Optuna study.

>>> from squeezenet.explore import load_space
>>> load_space().size()
8640
"""
from .space import Param, Space, load_space, parse_space
from .strategies import STRATEGIES, AnnealingSampler, Strategy, get_strategy
from .study import open_storage, pareto_front, search, trials_table
from .sweeps import sweep
from .report import report
from .trial import Budget, OverBudget, TrialResult, run_point, train_and_eval

__all__ = ["Param", "Space", "load_space", "parse_space", "STRATEGIES", "Strategy", "AnnealingSampler",
           "get_strategy", "open_storage", "search", "trials_table", "pareto_front", "sweep", "report",
           "Budget", "OverBudget", "TrialResult", "run_point", "train_and_eval"]
