"""Design-space exploration (paper section 5): the metaparameter space, trials, one-parameter
sweeps, and searches by random, simulated-annealing, genetic and Bayesian strategies on a shared,
resumable Optuna study.

>>> from squeezenet.explore import load_space
>>> load_space().size()
8640
"""
from .space import Param, Space, load_space, parse_space
from .sweeps import sweep
from .report import report
from .trial import Budget, OverBudget, TrialResult, run_point, train_and_eval

# Searches and studies (and report() when called) need Optuna (``pip install "squeezenet[explore]"``): imported
# when first used, so that sweeps run without it and a missing one is one line naming the extra.
from ..errors import lazy_attributes

_LAZY = {"STRATEGIES": "strategies", "AnnealingSampler": "strategies", "Strategy": "strategies",
         "get_strategy": "strategies", "open_storage": "study", "pareto_front": "study", "search": "study",
         "trials_table": "study"}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = ["Param", "Space", "load_space", "parse_space", "STRATEGIES", "Strategy", "AnnealingSampler",
           "get_strategy", "open_storage", "search", "trials_table", "pareto_front", "sweep", "report",
           "Budget", "OverBudget", "TrialResult", "run_point", "train_and_eval"]
