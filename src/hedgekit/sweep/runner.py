"""Where trials run: on Ray (a local Ray by default, a cluster with ``address``), or in this
process (``LocalExecutor``, for a quick look and for tests).

On Ray the loaded data sets (candles and funding, numpy arrays) are put in the object store
once; one actor per CPU receives them at start-up (read-only views of the shared memory, no
copy) and keeps them for every trial it runs, so a trial sends only its config and gets back
one row of metrics (and its ``TrialStat``). Trials go dearest first, so the actors finish
together. A cluster's nodes need hedgekit installed (the same version).
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from hedgekit.core.errors import HedgekitError
from hedgekit.engine.session import LoadedData
from hedgekit.sweep.trial import Task, dearest_first, run_task

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "TrialStat", "make_executor"]

Result = tuple[Task, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class TrialStat:
    """How one task ran on its worker, kept beside the rows (never in them): what splits a
    sweep's time into trials and the rest, and shows a worker's memory across trials."""

    worker: int  # process id
    seconds: float  # wall time of the trial in the worker
    cpu_seconds: float  # the worker's CPU time over the trial
    rss_mb: float  # the worker's resident memory after the trial
    peak_rss_mb: float  # the worker's peak resident memory so far
    finished: float  # time.time() at the end of the trial


def _rss_mb() -> float:
    """Resident memory now (Linux /proc; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def measured_task(task: Task, datasets: list[LoadedData]) -> tuple[dict[str, Any], TrialStat]:
    t0, c0 = time.perf_counter(), time.process_time()
    row = run_task(task, datasets)
    stat = TrialStat(os.getpid(), time.perf_counter() - t0, time.process_time() - c0, _rss_mb(),
                     _peak_rss_mb(), time.time())
    return row, stat


def _quiet_logs() -> None:
    """Trials repeat the same strategy warnings thousands of times: a worker logs errors only."""
    import sys

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="ERROR")


class Executor:
    """Runs tasks and yields ``(task, row)`` as they finish (not in submission order); each
    task's ``TrialStat`` is appended to ``stats``."""

    parallel = 1
    description = ""
    stats: list[TrialStat]

    def run(self, tasks: Iterable[Task]) -> Iterator[Result]:
        raise NotImplementedError

    def stream(self, tasks: Iterable[Task]) -> Iterator[Result]:
        """Like ``run``, but ``tasks`` is drawn lazily, in its order, a task each time a worker
        frees up, after the previous result was yielded (an optimizer asks for its next point
        knowing every result so far, and no worker waits for a batch to finish)."""
        return self.run(tasks)

    def close(self) -> None:
        pass

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalExecutor(Executor):
    """Every trial in this process, one after another (no Ray)."""

    description = "this process (no Ray)"

    def __init__(self, datasets: list[LoadedData]) -> None:
        self.datasets = datasets
        self.stats = []

    def run(self, tasks: Iterable[Task]) -> Iterator[Result]:
        from loguru import logger

        logger.disable("hedgekit")
        try:
            for task in tasks:
                row, stat = measured_task(task, self.datasets)
                self.stats.append(stat)
                yield task, row
        finally:
            logger.enable("hedgekit")


class _Worker:
    """A Ray actor: the data sets arrive once (zero-copy from the object store) and stay."""

    def __init__(self, *datasets: LoadedData) -> None:
        _quiet_logs()
        self.datasets = list(datasets)

    def run(self, task: Task) -> tuple[dict[str, Any], TrialStat]:
        return measured_task(task, self.datasets)

    def pid(self) -> int:
        return os.getpid()

    def zero_copy(self) -> bool:
        """True when every array of every data set is a view of the object store's shared
        memory (not a private copy in this worker)."""
        arrays = []
        for d in self.datasets:
            c = d.candles
            arrays += [c.ts, c.open, c.high, c.low, c.close]
        return all(not a.flags.owndata and not a.flags.writeable for a in arrays)


class RayExecutor(Executor):
    """Trials on Ray actors, one per CPU (``cpus``; default every CPU Ray has)."""

    def __init__(self, datasets: list[LoadedData], *, address: str | None = None, cpus: int | None = None) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            import ray
        except ImportError:
            raise HedgekitError(
                "Ray is not installed: pip install 'hedgekit[sweep]' (or run with --no-ray)") from None
        self._ray = ray
        self._datasets = datasets
        self._started = False
        self.stats = []
        self.timings: dict[str, float] = {}  # start-up steps (s): "ray.init", "workers"
        t0 = time.perf_counter()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "logging_level": "ERROR"}
            if address:
                kwargs["address"] = address
            else:  # "local": a new Ray on this machine, never a cluster found by chance
                kwargs.update(address="local", num_cpus=cpus or os.cpu_count() or 1)
            try:
                ray.init(**kwargs)
            except ConnectionError as err:
                raise HedgekitError(f"--address {address}: cannot connect to a Ray cluster there ({err}); "
                                    "start one with `ray start --head` or leave --address out for a local Ray") from None
            self._started = True
        self.timings["ray.init"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        total = int(ray.cluster_resources().get("CPU", 1))
        n = max(1, min(cpus or total, total))
        self.parallel = n
        where = f"Ray cluster {address}" if address else "local Ray"
        self.description = f"{where}, {n} worker(s)"
        refs = [ray.put(d) for d in datasets]  # once: every actor maps the same buffers
        actor = ray.remote(num_cpus=1)(_Worker)
        self._actors: list[Any] = [actor.remote(*refs) for _ in range(n)]  # Ray actor handles
        shared = all(ray.get([a.zero_copy.remote() for a in self._actors]))
        self.description += ", data shared zero-copy" if shared else ", data copied into each worker"
        self.timings["workers"] = time.perf_counter() - t0  # data in the store, actors up

    def run(self, tasks: Iterable[Task]) -> Iterator[Result]:
        return self._dispatch(iter(dearest_first(list(tasks), self._datasets)), lazy=False)

    def stream(self, tasks: Iterable[Task]) -> Iterator[Result]:
        return self._dispatch(iter(tasks), lazy=True)

    def _dispatch(self, pending: Iterator[Task], *, lazy: bool) -> Iterator[Result]:
        """``lazy``: the freed actor's next task is drawn after the result is yielded."""
        ray = self._ray
        inflight: dict[Any, tuple[Any, Task]] = {}

        def feed(actor) -> bool:
            task = next(pending, None)
            if task is None:
                return False
            inflight[actor.run.remote(task)] = (actor, task)
            return True

        for actor in self._actors:  # two in flight per actor: no idle gap between trials
            feed(actor)
            feed(actor)
        while inflight:
            done, _ = ray.wait(list(inflight), num_returns=1)
            actor, task = inflight.pop(done[0])
            row, stat = ray.get(done[0])
            self.stats.append(stat)
            if lazy:
                yield task, row
                feed(actor)
            else:
                feed(actor)
                yield task, row

    def worker_pids(self) -> list[int]:
        return self._ray.get([a.pid.remote() for a in self._actors])

    def close(self) -> None:
        for a in getattr(self, "_actors", []):
            self._ray.kill(a)
        self._actors = []
        if self._started:
            self._ray.shutdown()


def make_executor(datasets: list[LoadedData], *, use_ray: bool = True, address: str | None = None,
                  cpus: int | None = None) -> Executor:
    if not use_ray:
        if address:
            raise HedgekitError("--address needs Ray: drop --no-ray")
        return LocalExecutor(datasets)
    return RayExecutor(datasets, address=address, cpus=cpus)
