"""Where a sweep's runs execute: this process, a local process pool, or a Ray cluster.

An executor only maps a function over items and hands back the results as
they finish; it never touches the store (the driver writes it alone). Every
worker trains with one torch thread: runs are the unit of parallelism, and
on shared cores torch's default of one thread per core made small models
up to a hundred times slower. It also makes results independent of the
machine's core count, so the same configuration gives the same record on
every executor.

Executors are context managers. Leaving the block normally waits for
running work; leaving it by an exception (Ctrl-C included) stops the
workers at once, since the driver will not store what they would return.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """What :func:`~descentlab.lab.run_sweep` needs: results of ``fn`` over ``items``, in any order."""

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for every item as each finishes; closing the iterator cancels the rest."""
        ...


def default_workers() -> int:
    """The number of cores this process may run on (its CPU affinity where the platform tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _check_workers(workers: object) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer; received workers={workers!r}")
    return workers


class SerialExecutor:
    """Runs everything in this process, one item at a time: for tiny sweeps, debugging and doctests.

    torch's thread count is set to one while it works and restored after,
    so its results equal the process pool's.
    """

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for each item, in order."""
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for item in items:
                yield fn(item)
        finally:
            torch.set_num_threads(before)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor:
    """A pool of ``workers`` processes on this machine (default: one per core), one torch thread each.

    Workers are started with ``spawn`` (a fresh interpreter each, safe
    whatever threads the driver has; scripts that use it need the usual
    ``if __name__ == "__main__":`` guard) when first needed, and reused
    until :meth:`close`. A worker whose driver dies, SIGKILL included, exits
    by itself instead of running on as an orphan.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = _check_workers(default_workers() if workers is None else workers)
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def _start(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
            )
        return self._pool

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for each item as it finishes (``fn`` must be picklable: module-level)."""
        pool = self._start()
        futures = [pool.submit(fn, item) for item in items]
        try:
            for future in concurrent.futures.as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        """Wait for running work, then stop the workers."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def terminate(self) -> None:
        """Stop the workers now; what they were running is lost."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        stop = getattr(pool, "terminate_workers", None)  # Python >= 3.14
        if stop is not None:
            stop()
            return
        # Shut down first, so that the pool's manager drops the cancelled work before it
        # sees its workers die (Python <= 3.11 raises InvalidStateError in its thread otherwise).
        pool.shutdown(wait=False, cancel_futures=True)
        # Before 3.14 the pool's processes are reachable only through this private attribute.
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        pool.shutdown(wait=True)

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()


def _init_worker() -> None:
    # A pool process is ours: its global thread count is ours to set (see the module docstring).
    torch.set_num_threads(1)
    # Ctrl-C reaches the whole process group; the driver alone decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent.sentinel,), daemon=True).start()


def _exit_with_parent(sentinel: int) -> None:
    # The sentinel becomes ready when the driver is gone, however it died. Without this
    # a killed driver's workers would finish their run and then wait for work forever.
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


class RayExecutor:
    """Ray tasks, one core and one torch thread each, on a Ray cluster or a local Ray instance.

    ``address=None`` joins the Ray instance this process is already
    connected to, or one that ``ray start`` runs on this machine, or starts
    a local one; ``address="ray://host:10001"`` or ``"host:6379"`` joins a
    cluster. Other keyword arguments go to ``ray.init`` (``num_cpus``,
    ``runtime_env``, ...). A Ray instance this executor connected to is
    shut down by :meth:`close`. Every node needs descentlab installed, with
    the same torch, for runs to be comparable.
    """

    def __init__(self, address: str | None = None, **ray_init_kwargs: Any) -> None:
        try:
            import ray
        except ImportError:
            raise ImportError(
                "the Ray executor needs Ray: pip install 'descentlab[ray]' (or pip install ray)"
            ) from None
        self._ray = ray
        self._connected = False
        if not ray.is_initialized():
            ray_init_kwargs.setdefault("include_dashboard", False)
            ray_init_kwargs.setdefault("log_to_driver", False)
            ray.init(address=address, **ray_init_kwargs)
            self._connected = True
        self._task = ray.remote(num_cpus=1)(_ray_task)

    def map_unordered(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for each item as its task finishes."""
        ray = self._ray
        fn_ref = ray.put(fn)
        pending = [self._task.remote(fn_ref, item) for item in items]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield ray.get(done[0])
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        """Disconnect, shutting Ray down if this executor started or joined it."""
        if self._connected:
            self._ray.shutdown()
            self._connected = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ray_task(fn: Callable[[T], R], item: T) -> R:
    # Ray's worker processes are Ray's pool, dedicated to tasks like this one.
    torch.set_num_threads(1)
    return fn(item)
