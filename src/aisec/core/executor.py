"""Executors: where independent pieces of work (shadow-model trainings) run.

An :class:`Executor` maps a picklable, module-level function over a list of items and returns
the results in order. Three implementations:

``local``
    In this process, one item after another.
``process``
    A pool of worker processes on this machine (:class:`concurrent.futures.ProcessPoolExecutor`,
    ``spawn`` start method by default, so no forked copy of a threaded parent). Each worker runs
    torch with one intra-op thread: ``n`` workers use ``n`` cores without oversubscribing them.
``ray``
    A Ray cluster (extra ``ray``, imported only when used): an existing one at ``address``
    (``"auto"`` or ``"ray://host:10001"``), or a local one started with ``workers`` CPUs and shut
    down again by :meth:`Executor.close`. Each task asks Ray for one CPU and runs torch with one
    thread.

Work is split so that the result does not depend on the executor: shadow training seeds every
model on its own (see :mod:`aisec.attacks.privacy.shadows`), so ``local``, ``process`` and
``ray`` return the same models for the same seed.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, ClassVar, TypeVar

from aisec.core.configurable import check_choice
from aisec.errors import AisecError, ConfigError, MissingDependencyError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "process", "ray")


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _call(fn: Callable[[T], R], item: T, threads: int | None) -> R:
    """Run ``fn(item)`` with ``threads`` torch threads (in a worker process or a Ray task)."""
    _set_threads(threads)
    return fn(item)


def _check_workers(workers: int | None, what: str) -> None:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"{what}.workers: expected an integer >= 1, got {workers!r}")


class Executor(ABC):
    """Maps a function over items, somewhere; results come back in the items' order.

    ``fn`` and the items must be picklable (a module-level function, arrays rather than open
    handles) for every executor but ``local``. An executor is a context manager; :meth:`close`
    frees its workers.
    """

    name: ClassVar[str]

    @property
    @abstractmethod
    def workers(self) -> int:
        """How many items run at the same time."""

    @abstractmethod
    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(item) for item in items]``, run by this executor."""

    def close(self) -> None:  # noqa: B027  (a no-op for executors that hold nothing)
        """Free workers; the executor may not be used afterwards."""

    def describe(self) -> dict[str, Any]:
        """Name and size, for findings and run records."""
        return {"executor": self.name, "workers": self.workers}

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """In this process, one item after another (the default)."""

    name = "local"

    @property
    def workers(self) -> int:
        return 1

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        return [fn(item) for item in items]


class ProcessExecutor(Executor):
    """A pool of ``workers`` processes on this machine, each with ``threads_per_worker`` torch threads.

    The pool starts on the first :meth:`map` and is reused until :meth:`close`.
    """

    name = "process"

    def __init__(self, workers: int | None = None, *, threads_per_worker: int = 1, start_method: str = "spawn") -> None:
        _check_workers(workers, "process")
        check_choice("process.start_method", start_method, ("spawn", "forkserver"))
        self._workers = workers or max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
        self.threads_per_worker = threads_per_worker
        self.start_method = start_method
        self._pool: ProcessPoolExecutor | None = None

    @property
    def workers(self) -> int:
        return self._workers

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=mp.get_context(self.start_method),
                initializer=_set_threads,
                initargs=(self.threads_per_worker,),
            )
        return list(self._pool.map(fn, items))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"threads_per_worker": self.threads_per_worker}


class RayExecutor(Executor):
    """Tasks on a Ray cluster: one CPU and ``threads_per_worker`` torch threads each.

    Parameters
    ----------
    workers:
        CPUs of the local cluster to start when none is running and no ``address`` is given;
        otherwise ignored (the cluster's CPU count is used).
    address:
        An existing cluster (``"auto"``, ``"host:6379"`` or ``"ray://host:10001"``).
    """

    name = "ray"

    def __init__(self, workers: int | None = None, *, address: str | None = None, threads_per_worker: int = 1) -> None:
        _check_workers(workers, "ray")
        try:
            import ray
        except ImportError:
            raise MissingDependencyError("ray", "ray") from None
        self._ray = ray
        self.address = address
        self.threads_per_worker = threads_per_worker
        self._owns = False
        if not ray.is_initialized():
            if address:
                ray.init(address=address, logging_level=logging.WARNING)
            else:
                ray.init(
                    num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, logging_level=logging.WARNING
                )
                self._owns = True
        self._remote: Any = None

    @property
    def workers(self) -> int:
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if self._remote is None:
            self._remote = self._ray.remote(num_cpus=1)(_call)
        refs = [self._remote.remote(fn, item, self.threads_per_worker) for item in items]
        try:
            return list(self._ray.get(refs))
        except self._ray.exceptions.RayTaskError as err:
            # Ray wraps a task's error with the remote traceback; aisec's own errors are one line
            if isinstance(err.cause, AisecError):
                raise err.cause from err
            raise

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns = False

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"threads_per_worker": self.threads_per_worker, "address": self.address}


def make_executor(kind: str = "local", *, workers: int | None = None, address: str | None = None) -> Executor:
    """The executor named ``kind`` (``local``, ``process`` or ``ray``).

    ``workers`` sizes the process pool or the local Ray cluster; ``address`` connects Ray to an
    existing cluster. Raises :class:`~aisec.errors.ConfigError` for an unknown kind and
    :class:`~aisec.errors.MissingDependencyError` when Ray is asked for but not installed.
    """
    check_choice("executor", kind, EXECUTORS)
    if kind == "local":
        return LocalExecutor()
    if kind == "process":
        return ProcessExecutor(workers)
    return RayExecutor(workers, address=address)


__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "ProcessExecutor", "RayExecutor", "make_executor"]
