"""Search strategies: one small interface over Optuna samplers.

A :class:`Strategy` turns a :class:`~squeezenet.explore.space.Space` into an Optuna sampler.
``random``, ``genetic`` and ``bayes`` are Optuna's RandomSampler (made to skip points the study
already holds), NSGAIISampler and TPESampler; ``anneal`` is :class:`AnnealingSampler`, a
simulated-annealing sampler written here because Optuna has none.

>>> from squeezenet.explore import load_space
>>> sorted(STRATEGIES)
['anneal', 'bayes', 'genetic', 'random']
>>> sampler = get_strategy("anneal").sampler(load_space(), seed=0, multi_objective=False)
>>> type(sampler).__name__
'AnnealingSampler'
"""
from __future__ import annotations

import difflib
import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ..errors import require

optuna = require("optuna")   # the explore extra: one line naming it when missing
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,  # noqa: E402
                                  IntDistribution)
from optuna.trial import FrozenTrial, TrialState  # noqa: E402

from ..errors import SqueezeNetError

# ---------------------------------------------------------------------------------------------
# grid <-> Optuna distributions, shared by the objective and the samplers (they must agree)


def distributions(space) -> dict[str, BaseDistribution]:
    """The Optuna distribution of every parameter of ``space`` (a grid with a step -> int/float
    with that step, so TPE sees its order; an explicit value list -> categorical)."""
    out: dict[str, BaseDistribution] = {}
    for name, p in space.params.items():
        if p.step is not None and isinstance(p.values[0], int):
            out[name] = IntDistribution(p.values[0], p.values[-1], step=int(p.step))
        elif p.step is not None:
            out[name] = FloatDistribution(p.values[0], p.values[-1], step=float(p.step))
        else:
            out[name] = CategoricalDistribution(list(p.values))
    return out


def suggest_point(trial, space) -> dict[str, Any]:
    """Ask ``trial`` for one point of ``space`` (the distributions the samplers expect)."""
    params = {}
    for name, d in distributions(space).items():
        if isinstance(d, CategoricalDistribution):
            params[name] = trial.suggest_categorical(name, d.choices)
        elif isinstance(d, IntDistribution):
            params[name] = trial.suggest_int(name, d.low, d.high, step=d.step)
        else:
            params[name] = trial.suggest_float(name, d.low, d.high, step=d.step)
    return params


def point_key(params: dict[str, Any]) -> tuple:
    """A hashable key for a point (floats rounded so 0.1+0.2 == 0.3 on the grid)."""
    return tuple(sorted((k, round(v, 9) if isinstance(v, float) else v) for k, v in params.items()))


def occupied(trials: list[FrozenTrial]) -> set[tuple]:
    """Points the study already holds: running, complete, or pruned for a reason other than
    duplication. Failed trials (e.g. a killed worker) do not count, so they are retried."""
    seen = set()
    for t in trials:
        if t.state in (TrialState.RUNNING, TrialState.COMPLETE) or (
                t.state == TrialState.PRUNED and "duplicate_of" not in t.user_attrs):
            if t.params:
                seen.add(point_key(t.params))
    return seen


def energy(t: FrozenTrial, size_weight: float = 1.0) -> float:
    """What annealing minimises: -top-1 in points; for Pareto studies, plus ``size_weight``
    points per doubling of the model size (a fixed scalarisation of the two objectives)."""
    if t.state != TrialState.COMPLETE or not t.values:
        return math.inf
    e = -100.0 * t.values[0]
    if len(t.values) > 1:
        e += size_weight * math.log2(max(1.0, t.values[1]))
    return e


def _rng(seed: int | None, number: int, salt: int) -> np.random.Generator:
    # Per-trial RNG: workers that rebuild the same history make the same decisions.
    return np.random.default_rng([seed or 0, number, salt])


def _random_unseen(space, rng, seen: set[tuple], tries: int = 200) -> dict[str, Any] | None:
    names = space.names()
    for _ in range(tries):
        p = {n: space.params[n].values[int(rng.integers(len(space.params[n].values)))] for n in names}
        if point_key(p) not in seen:
            return p
    if space.size() <= 100_000:  # small grid nearly full: enumerate what is left
        import itertools
        left = [dict(zip(names, vs)) for vs in itertools.product(*(space.params[n].values for n in names))
                if point_key(dict(zip(names, vs))) not in seen]
        if left:
            return left[int(rng.integers(len(left)))]
    return None


def _native(v):
    return v.item() if isinstance(v, np.generic) else v


class _GridSampler:
    """Mixin: relative sampling of whole grid points, falling back to random independent."""

    space = None

    def infer_relative_search_space(self, study, trial):
        return distributions(self.space)

    def _trials(self, study):
        return study.get_trials(deepcopy=False)


class UniqueRandomSampler(_GridSampler, optuna.samplers.RandomSampler):
    """Optuna's RandomSampler that draws uniformly among grid points the study does not yet hold,
    so workers sharing a study never evaluate one point twice."""

    def __init__(self, space, seed: int | None = None):
        super().__init__(seed=seed)
        self.space, self.seed = space, seed

    def sample_relative(self, study, trial, search_space):
        if not search_space:
            return {}
        p = _random_unseen(self.space, _rng(self.seed, trial.number, 1),
                           occupied([t for t in self._trials(study) if t.number != trial.number]))
        return {k: _native(v) for k, v in (p or {}).items()}


class AnnealingSampler(_GridSampler, optuna.samplers.BaseSampler):
    """Simulated annealing on the discrete grid.

    The walk's state is rebuilt from the study's history on every trial, so any number of
    workers share one walk: trials in number order are the proposals; a complete trial is
    accepted if it lowers the energy (:func:`energy`) or with probability ``exp(-dE / T)``,
    ``T = t0 * cooling ** k`` after ``k`` proposals; pruned ones (invalid, over budget) are
    rejected. The next proposal moves ``1 + extra`` parameters of the current point one grid
    step (ordered grids) or to another choice (bypass), skipping points already held.
    """

    def __init__(self, space, seed: int | None = None, t0: float = 2.0, cooling: float = 0.9,
                 size_weight: float = 1.0):
        self.space, self.seed = space, seed
        self.t0, self.cooling, self.size_weight = t0, cooling, size_weight
        self._random = optuna.samplers.RandomSampler(seed=seed)

    def temperature(self, k: int) -> float:
        return self.t0 * self.cooling ** k

    def state(self, trials: list[FrozenTrial]) -> tuple[dict | None, float]:
        """(current point, its energy) after replaying the finished proposals in order."""
        current, e_cur, k = None, math.inf, 0
        for t in sorted(trials, key=lambda t: t.number):
            if t.state not in (TrialState.COMPLETE, TrialState.PRUNED) or "duplicate_of" in t.user_attrs:
                continue
            e = energy(t, self.size_weight)
            if current is None:
                if math.isfinite(e):
                    current, e_cur = t.params, e
                continue
            if math.isfinite(e):
                u = _rng(self.seed, t.number, 2).random()
                if e <= e_cur or u < math.exp(-(e - e_cur) / max(self.temperature(k), 1e-12)):
                    current, e_cur = t.params, e
            k += 1
        return current, e_cur

    def neighbour(self, point: dict[str, Any], rng, moves: int = 1) -> dict[str, Any]:
        p = dict(point)
        movable = [n for n in self.space.names() if len(self.space.params[n].values) > 1]
        for n in rng.choice(movable, size=min(moves, len(movable)), replace=False):
            grid = self.space.params[n]
            i = grid.index(p[n])
            if grid.ordered:
                j = i + (1 if rng.random() < 0.5 else -1)
                if not 0 <= j < len(grid.values):
                    j = i - (j - i)  # reflect at the grid's ends
            else:
                j = int(rng.choice([k for k in range(len(grid.values)) if k != i]))
            p[n] = grid.values[j]
        return p

    def sample_relative(self, study, trial, search_space):
        if not search_space:
            return {}
        trials = [t for t in self._trials(study) if t.number != trial.number]
        seen = occupied(trials)
        rng = _rng(self.seed, trial.number, 3)
        current, _ = self.state(trials)
        p = None
        if current is not None and set(current) == set(self.space.names()):
            for attempt in range(60):
                cand = self.neighbour(current, rng, moves=1 + attempt // 20)
                if point_key(cand) not in seen:
                    p = cand
                    break
        if p is None:  # no history yet, or the neighbourhood is used up: jump
            p = _random_unseen(self.space, rng, seen)
        return {k: _native(v) for k, v in (p or {}).items()}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._random.sample_independent(study, trial, param_name, param_distribution)


# ---------------------------------------------------------------------------------------------
# the strategy interface


class Strategy(ABC):
    """A search strategy: builds the Optuna sampler that proposes points of a space."""

    name: str = ""

    @abstractmethod
    def sampler(self, space, seed: int | None, multi_objective: bool) -> optuna.samplers.BaseSampler:
        """The sampler for ``space``; ``multi_objective`` says whether the study is Pareto."""


class RandomStrategy(Strategy):
    name = "random"

    def sampler(self, space, seed, multi_objective):
        return UniqueRandomSampler(space, seed=seed)


class AnnealStrategy(Strategy):
    name = "anneal"

    def sampler(self, space, seed, multi_objective):
        return AnnealingSampler(space, seed=seed)


class GeneticStrategy(Strategy):
    """NSGA-II: population, uniform crossover, mutation, non-dominated sorting selection."""

    name = "genetic"

    def __init__(self, population_size: int = 8):
        self.population_size = population_size

    def sampler(self, space, seed, multi_objective):
        return optuna.samplers.NSGAIISampler(population_size=self.population_size, seed=seed)


class BayesStrategy(Strategy):
    """Tree-structured Parzen estimator (multivariate) after a few random trials."""

    name = "bayes"

    def __init__(self, n_startup_trials: int = 5):
        self.n_startup_trials = n_startup_trials

    def sampler(self, space, seed, multi_objective):
        import warnings
        with warnings.catch_warnings():  # multivariate TPE is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(n_startup_trials=self.n_startup_trials, seed=seed,
                                              multivariate=True)


STRATEGIES: dict[str, type[Strategy]] = {c.name: c for c in
                                          (RandomStrategy, AnnealStrategy, GeneticStrategy, BayesStrategy)}


def get_strategy(name: str, **kwargs) -> Strategy:
    """The strategy called ``name``; a one-line error with close matches otherwise."""
    if name not in STRATEGIES:
        close = difflib.get_close_matches(name, list(STRATEGIES), n=2, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise SqueezeNetError(f"unknown strategy {name!r} (choose from {', '.join(STRATEGIES)}){hint}")
    return STRATEGIES[name](**kwargs)
