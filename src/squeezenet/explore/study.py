"""The study runner: many ``explore search`` workers share one Optuna RDB study.

Storage is Optuna's own: a SQLite file (default) or a PostgreSQL URL for many machines.
Each trial's params are written when suggested, so workers see each other's running trials and
skip those points; a heartbeat marks the running trial of a killed worker failed, and the study
resumes with the next worker.

A smoke run (one training step per network; a real budget trains for epochs):

>>> import tempfile, os
>>> from squeezenet.explore import Budget, search
>>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "s.db")
>>> tiny = {"version": 1, "params": {"base_e": {"values": [8, 16]}, "incr_e": {"values": [0]}}}
>>> cheap = Budget("digits", max_steps=1, batch_size=32, test_subset=64)
>>> study = search("demo", url, "random", trials=2, budget=cheap, space=tiny)
>>> [t.state.name for t in study.trials], sorted(study.trials[0].params)
(['COMPLETE', 'COMPLETE'], ['base_e', 'incr_e'])
"""
from __future__ import annotations

import logging
import os
import re
import socket
import time
import warnings
from typing import Any

from ..errors import ConfigError, SqueezeNetError, first_line
from .space import Space, load_space, parse_space
from .strategies import get_strategy, occupied, point_key, suggest_point
from .trial import Budget, OverBudget, run_point

OBJECTIVES = ("pareto", "accuracy")


def redact(url: str) -> str:
    """``url`` without its password."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def storage_url(value: str) -> str:
    """A storage URL; a plain path means a SQLite file."""
    if "://" not in value:
        from pathlib import Path
        return "sqlite:///" + str(Path(value).resolve())
    return value


def open_storage(url: str, heartbeat: float | None = 30.0):
    """Optuna RDB storage at ``url``; a one-line SqueezeNetError if it cannot be reached."""
    from ..errors import require
    optuna = require("optuna")
    url = storage_url(url)
    scheme = url.split("://", 1)[0].split("+", 1)[0]
    if scheme not in ("sqlite", "postgresql", "postgres", "mysql"):
        raise SqueezeNetError(f"storage {redact(url)}: unsupported scheme {scheme!r} "
                              "(use sqlite:///FILE or postgresql://USER@HOST:PORT/DB)")
    if scheme == "sqlite":
        db = url.split("://", 1)[1][1:] if url.split("://", 1)[1].startswith("/") else ""
        if db.split("?", 1)[0] in ("", ":memory:") or db.startswith("file::memory:"):
            raise SqueezeNetError(f"storage {url}: no database file (an in-memory SQLite database "
                                  f"would lose every trial when the process ends); use sqlite:///FILE "
                                  f"or a file path")
    if scheme == "postgres":  # SQLAlchemy only knows the long name
        url = "postgresql" + url[len("postgres"):]
    if url.startswith("postgresql://"):
        # SQLAlchemy 2.1 defaults to psycopg 3; use psycopg2 (our dependency) unless 3 is there
        import importlib.util
        if importlib.util.find_spec("psycopg") is None:
            from ..errors import require
            require("psycopg2")   # the postgres extra: one line naming it when missing
            url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    engine_kwargs: dict[str, Any] = {}
    if scheme == "sqlite":
        # many worker processes on one file: wait for the lock instead of failing at once
        engine_kwargs = {"connect_args": {"timeout": 60}}
    elif scheme == "postgresql":
        engine_kwargs = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    kw: dict[str, Any] = {}
    if heartbeat:
        kw = {"heartbeat_interval": int(max(1, heartbeat)), "grace_period": int(max(2, 2 * heartbeat))}
    for attempt in range(6):
        try:
            with warnings.catch_warnings():  # heartbeat is marked experimental; we rely on it
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kw)
        except Exception as e:  # SQLAlchemy/driver errors: many types, one user-facing message
            first = re.sub(r"^\(\S+\) ", "", first_line(e))
            # workers starting together race to create the schema: the loser retries
            if attempt < 5 and re.search(r"UNIQUE constraint|already exists|duplicate key|locked", first):
                time.sleep(0.5 + attempt)
                continue
            raise SqueezeNetError(f"cannot open storage {redact(url)}: {first}") from None


def _check_attrs(study, want: dict[str, Any]) -> None:
    have = study.user_attrs
    for k, v in want.items():
        if k in have and have[k] != v:
            if isinstance(v, dict) and isinstance(have[k], dict):
                d = sorted(x for x in set(v) | set(have[k]) if v.get(x) != have[k].get(x))
                k, have, v = f"{k}.{d[0]}", {f"{k}.{d[0]}": have[k].get(d[0])}, v.get(d[0])
            raise SqueezeNetError(f"study {study.study_name!r} was created with {k}={have[k]!r}, "
                                  f"this worker has {v!r}; use the same settings or another --study")
    for k, v in want.items():
        if k not in have:
            study.set_user_attr(k, v)


def open_study(storage, name: str, objective: str, space: Space, budget: Budget,
               size_budget: int | None, sampler=None, create: bool = True):
    """Create or join study ``name``; refuses to join one made with other settings."""
    import optuna
    if objective not in OBJECTIVES:
        raise SqueezeNetError(f"unknown objective {objective!r} (choose from {', '.join(OBJECTIVES)})")
    directions = ["maximize", "minimize"] if objective == "pareto" else ["maximize"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(storage=storage, study_name=name, directions=directions,
                                    sampler=sampler, load_if_exists=True)
    except ValueError as e:  # e.g. directions differ from the stored study
        raise SqueezeNetError(f"study {name!r}: {first_line(e)}") from None
    if [d.name.lower() for d in study.directions] != directions:
        raise SqueezeNetError(f"study {name!r} has objectives {[d.name.lower() for d in study.directions]}, "
                              f"not {objective!r}; use another --study")
    _check_attrs(study, {"objective": objective, "space": space.fingerprint(), "model": space.model,
                         "budget": budget.to_dict(), "size_budget": size_budget})
    if "space_def" not in study.user_attrs:  # lets `explore report` name the parameters
        study.set_user_attr("space_def", space.to_dict())
    return study


def load_existing_study(storage, name: str):
    import optuna
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if name not in names:
        raise SqueezeNetError(f"no study {name!r} in the storage (studies: {', '.join(names) or 'none'})")
    return optuna.load_study(study_name=name, storage=storage)


def make_objective(space: Space, budget: Budget, objective: str, size_budget: int | None,
                   strategy: str, log=None, storage=None, progress: bool = False):
    """The Optuna objective: suggest a point, skip duplicates, prune invalid/over-budget
    networks before training, train, and record top1/params/size/MACs/seconds.

    With a heartbeat ``storage``, the trial's first heartbeat is written before its point:
    Optuna writes it from a thread that races the objective, and a worker killed before that
    write would leave a RUNNING trial holding its point that no heartbeat check ever fails."""
    import optuna
    from optuna.trial import TrialState

    from ..evaluate import NonFiniteOutput
    from ..train.trainer import TrainingDiverged
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def run(trial):
        if storage is not None and storage.get_heartbeat_interval():
            study_id = storage.get_study_id_from_name(trial.study.study_name)
            storage.record_heartbeat(storage.get_trial_id_from_study_id_trial_number(study_id, trial.number))
        params = suggest_point(trial, space)
        trial.set_user_attr("strategy", strategy)
        trial.set_user_attr("worker", worker)
        # a point an earlier trial holds (finished or running elsewhere) is never trained twice
        others = [t for t in trial.study.get_trials(deepcopy=False, states=(
            TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)) if t.number < trial.number]
        key = point_key(params)
        for t in others:
            if point_key(t.params) == key and key in occupied([t]):
                trial.set_user_attr("duplicate_of", t.number)
                raise optuna.TrialPruned(f"duplicate of trial {t.number}")
        try:
            res = run_point(space, params, budget, size_budget, progress=progress,
                            on_measured=lambda m: [trial.set_user_attr(k, v) for k, v in m.items()])
        except ConfigError as e:
            trial.set_user_attr("invalid", str(e))
            raise optuna.TrialPruned(str(e))
        except OverBudget as e:
            trial.set_user_attr("over_budget", str(e))
            raise optuna.TrialPruned(str(e))
        except (TrainingDiverged, NonFiniteOutput) as e:   # a property of the point: no figure, no crash
            trial.set_user_attr("diverged", first_line(e, 300))
            raise optuna.TrialPruned(first_line(e, 300))
        for k, v in res.to_attrs().items():
            trial.set_user_attr(k, v)
        if log:
            log(f"trial {trial.number}: top1 {res.top1:.4f} size {res.size_bytes:,} B "
                f"({res.seconds:.1f} s) {params}")
        return (res.top1, float(res.size_bytes)) if objective == "pareto" else res.top1
    return run


def search(study_name: str, storage: str, strategy: str = "random", trials: int = 10,
           budget: Budget = Budget(), space: Space | dict | str | None = None,
           objective: str | None = None, size_budget: int | None = None, seed: int | None = None,
           heartbeat: float | None = 30.0, log=None, progress: bool = False):
    """Run (or join) a search until the study holds ``trials`` complete trials.

    Several processes may call this on one study at once; they share the count, e.g.
    ``search("s", "sqlite:///s.db", "anneal", trials=20, size_budget=500_000)``.
    ``progress``: each trial's training shows a bar (steps, time left) on stderr.
    """
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState
    if not isinstance(space, Space):
        space = parse_space(space) if isinstance(space, dict) else load_space(space)
    strat = get_strategy(strategy)
    objective = objective or ("accuracy" if size_budget is not None else "pareto")
    if trials < 1:
        raise SqueezeNetError(f"--trials {trials}: must be >= 1")
    st = open_storage(storage, heartbeat)
    sampler = strat.sampler(space, seed, objective == "pareto")
    study = open_study(st, study_name, objective, space, budget, size_budget, sampler)
    _fail_stale(study)
    idle = {"n": 0}

    def guard(study, t):
        # stop when the grid is used up or this worker only finds held points
        idle["n"] = 0 if t.state == TrialState.COMPLETE else idle["n"] + 1
        held = occupied(study.get_trials(deepcopy=False))
        if len(held) >= space.size() or idle["n"] >= 100:
            study.stop()

    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if done < trials:
        with warnings.catch_warnings():  # the heartbeat is marked experimental; we rely on it
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            quiet = _QuietInterrupt()    # Ctrl-C in a trial: the CLI's one line, not optuna's traceback
            handlers = list(logging.getLogger("optuna").handlers)   # its modules' records end there
            for h in handlers:
                h.addFilter(quiet)
            try:
                study.optimize(make_objective(space, budget, objective, size_budget, strategy, log, st, progress),
                               n_trials=None, catch=(), gc_after_trial=False,
                               callbacks=[MaxTrialsCallback(trials, states=(TrialState.COMPLETE,)), guard])
            finally:
                for h in handlers:
                    h.removeFilter(quiet)
    _fail_stale(study)
    return study


class _QuietInterrupt:
    """A logging filter dropping optuna's report of a trial stopped by Ctrl-C (a warning with
    the KeyboardInterrupt's traceback, then its value): the interrupt itself reaches the
    CLI, which prints one line."""

    def __init__(self) -> None:
        self.interrupted = False

    def filter(self, record) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, KeyboardInterrupt):
            self.interrupted = True
            return False
        return not (self.interrupted and "failed with value" in record.getMessage())


def _fail_stale(study) -> None:
    """Mark trials whose worker stopped sending heartbeats as failed (their points get retried)."""
    import optuna
    from optuna.storages import fail_stale_trials
    with warnings.catch_warnings():  # a no-op on storages without a heartbeat
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fail_stale_trials(study)


def trials_table(study) -> list[dict[str, Any]]:
    """One row per finished or running trial: number, state, params and recorded attrs."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        rows.append({"number": t.number, "state": t.state.name, **t.params,
                     **{k: a.get(k) for k in ("top1", "params", "size_bytes", "macs", "seconds")},
                     "note": a.get("invalid") or a.get("over_budget") or a.get("diverged") or (
                         f"duplicate of {a['duplicate_of']}" if "duplicate_of" in a else "")})
    return rows


def pareto_front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Complete trials no other trial beats on both top-1 (higher) and size (smaller)."""
    done = [r for r in rows if r["state"] == "COMPLETE" and r.get("top1") is not None]
    front = [r for r in done if not any(
        (o["top1"] >= r["top1"] and o["size_bytes"] <= r["size_bytes"]) and
        (o["top1"] > r["top1"] or o["size_bytes"] < r["size_bytes"]) for o in done)]
    return sorted(front, key=lambda r: (r["size_bytes"], -r["top1"]))
