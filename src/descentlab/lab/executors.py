"""Where a sweep's runs execute: this process, a local process pool, or a Ray cluster.

An executor only maps a function over items and hands back the results as
they finish; it never touches the store (the driver writes it alone). Every
worker trains with one torch thread: runs are the unit of parallelism, and
on shared cores torch's default of one thread per core made small models
up to a hundred times slower. It also makes results independent of the
machine's core count, so the same configuration gives the same record on
every executor.

A worker process that dies while running an item (killed by the kernel for
memory, a crash in native code) is that item's failure, not the sweep's:
with ``on_crash``, the executor yields ``on_crash(item, reason)`` for it and
goes on (without, it raises :class:`WorkerCrashed`).

Executors are context managers. Leaving the block normally waits for
running work; leaving it by an exception (Ctrl-C included) stops the
workers at once, since the driver will not store what they would return.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


class WorkerCrashed(RuntimeError):
    """The process running ``item`` died before returning a result."""

    def __init__(self, item: object, reason: str) -> None:
        super().__init__(reason)
        self.item = item
        self.reason = reason


class Executor(Protocol):
    """What :func:`~descentlab.lab.run_sweep` needs: results of ``fn`` over ``items``, in any order."""

    def map_unordered(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        on_crash: Callable[[T, str], R] | None = None,
    ) -> Iterator[R]:
        """Yield ``fn(item)`` for every item as each finishes; closing the iterator cancels the rest.

        For an item whose worker died, yield ``on_crash(item, reason)``, or
        raise :class:`WorkerCrashed` if it is None.
        """
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
    so its results equal the process pool's. (A crash here is this
    process's, so ``on_crash`` is never called.)
    """

    def map_unordered(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        on_crash: Callable[[T, str], R] | None = None,
    ) -> Iterator[R]:
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


@contextlib.contextmanager
def _sigint_ignored_by_children() -> Iterator[None]:
    """Start processes here that ignore Ctrl-C from their first instruction; this one's is kept.

    Ctrl-C reaches the whole process group, and a spawned worker spends its
    first second importing torch, before ``_serve`` can ignore SIGINT: each
    would print a KeyboardInterrupt traceback. An ignored signal stays ignored
    across fork and exec (and Python keeps it so), so SIGINT is ignored while
    the child is started. It is also blocked meanwhile: Linux keeps a blocked
    signal pending even while ignored, so a Ctrl-C in this window reaches the
    driver once its handler is back, instead of being lost. The child inherits
    the block too, and ``_serve`` lifts it once SIGINT is ignored there.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield  # signal handlers can only be changed by the main thread (and not at all on Windows)
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


class _Worker:
    """One pool process and the driver's end of its pipe."""

    def __init__(self, context: Any) -> None:
        self.conn, child = context.Pipe()
        # daemon: stopped by multiprocessing when the driver exits normally
        self.process = context.Process(target=_serve, args=(child,), daemon=True)
        with _sigint_ignored_by_children():
            self.process.start()
        child.close()

    def stop(self, *, kill: bool = False) -> None:
        if not kill:
            try:
                self.conn.send(None)  # asks it to exit once idle
                self.process.join(timeout=30)
            except OSError:
                pass
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=10)
        self.conn.close()

    def death(self) -> str:
        self.process.join(timeout=10)
        code = self.process.exitcode
        if code is not None and code < 0:
            try:
                return f"the worker process was killed by {signal.Signals(-code).name}"
            except ValueError:
                pass
        return f"the worker process exited with code {code}"


class LocalExecutor:
    """A pool of ``workers`` processes on this machine (default: one per core), one torch thread each.

    Workers are started with ``spawn`` (a fresh interpreter each, safe
    whatever threads the driver has; scripts that use it need the usual
    ``if __name__ == "__main__":`` guard) when first needed, and reused
    until :meth:`close`. A worker that dies is replaced; one whose driver
    dies, SIGKILL included, exits by itself instead of running on as an orphan.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = _check_workers(default_workers() if workers is None else workers)
        self._context = multiprocessing.get_context("spawn")
        self._idle: list[_Worker] = []

    def map_unordered(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        on_crash: Callable[[T, str], R] | None = None,
    ) -> Iterator[R]:
        """Yield ``fn(item)`` for each item as it finishes (``fn`` must be picklable: module-level).

        An exception raised by ``fn`` is raised here; closing the iterator
        early stops the workers still running (the pool starts new ones when needed).
        """
        waiting = collections.deque(items)
        busy: dict[_Worker, T] = {}
        try:
            while waiting or busy:
                while waiting and len(busy) < self.workers:
                    worker = self._idle.pop() if self._idle else _Worker(self._context)
                    item = waiting.popleft()
                    try:
                        worker.conn.send((fn, item))
                    except (BrokenPipeError, ConnectionResetError):  # it died while idle
                        worker.stop(kill=True)
                        waiting.appendleft(item)
                        continue
                    except BaseException:
                        # fn or item cannot be pickled (or Ctrl-C came mid-send): the worker is
                        # neither busy nor idle, so nothing else would ever stop it.
                        worker.stop(kill=True)
                        raise
                    busy[worker] = item
                ready = multiprocessing.connection.wait(
                    [w.conn for w in busy] + [w.process.sentinel for w in busy]
                )
                for worker in [w for w in busy if w.conn in ready or w.process.sentinel in ready]:
                    item = busy.pop(worker)
                    try:
                        status, value = worker.conn.recv()
                    except (EOFError, OSError):
                        reason = worker.death()
                        worker.stop(kill=True)
                        if on_crash is None:
                            raise WorkerCrashed(item, reason) from None
                        yield on_crash(item, reason)
                        continue
                    self._idle.append(worker)
                    if status == "error":
                        raise value
                    yield value
        finally:
            for worker in busy:  # the consumer stopped: what these run would be dropped
                worker.stop(kill=True)

    def close(self) -> None:
        """Stop the workers (between maps none is running)."""
        while self._idle:
            self._idle.pop().stop()

    def terminate(self) -> None:
        """Stop the workers now."""
        while self._idle:
            self._idle.pop().stop(kill=True)

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()


def _serve(conn: multiprocessing.connection.Connection) -> None:
    """A pool process: run ``(fn, item)`` tasks from the driver until it sends None or goes away."""
    # A pool process is ours: its global thread count is ours to set (see the module docstring).
    torch.set_num_threads(1)
    # Ctrl-C reaches the whole process group; the driver alone decides what stops. (It was
    # ignored and blocked from the start, see _sigint_ignored_by_children; once ignored
    # here, unblocking it discards a Ctrl-C that arrived meanwhile.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent.sentinel,), daemon=True).start()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        fn, item = task
        try:
            reply: tuple[str, Any] = ("ok", fn(item))
        except Exception as err:
            reply = ("error", err)
        try:
            conn.send(reply)
        except Exception as err:  # an unpicklable result or exception
            conn.send(("error", RuntimeError(f"cannot send the result back: {type(err).__name__}: {err}")))


def _exit_with_parent(sentinel: int) -> None:
    # The sentinel becomes ready when the driver is gone, however it died. Without this
    # a killed driver's worker would finish its run and then wait for work forever.
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Refuse a Ray address that takes no connection (``ray.init`` would retry it for minutes).

    ``auto`` and ``local`` are Ray's own words and pass, and so does another
    package's scheme (``anyscale://``), which Ray hands on; ``HOST:PORT`` (a
    head node's GCS, as Ray requires it) and ``ray://HOST[:PORT]`` (Ray Client,
    port 10001 by default) must accept a TCP connection within ``timeout``
    seconds. Raises ValueError for a plain address without a port and
    ConnectionError (an OSError) naming the address.
    """
    if address in ("auto", "local"):
        return
    scheme, sep, rest = address.partition("://")
    if sep and scheme != "ray":
        return
    host, colon, port = (rest if sep else address).rpartition(":")
    if sep and not (colon and host and port.isdigit()):
        host, port = rest, "10001"
    elif not (colon and host and port.isdigit()):
        raise ValueError(f"--address must be HOST:PORT, ray://HOST:PORT, auto or local; received {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ConnectionError(f"cannot reach a Ray cluster at {address!r}: {reason}") from None


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
        given = address if address is not None else os.environ.get("RAY_ADDRESS")
        if given and not ray.is_initialized():
            _check_reachable(given)
        if not ray.is_initialized():
            ray_init_kwargs.setdefault("include_dashboard", False)
            ray_init_kwargs.setdefault("log_to_driver", False)
            ray.init(address=address, **ray_init_kwargs)
            self._connected = True
        self._task = ray.remote(num_cpus=1)(_ray_task)

    def map_unordered(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        on_crash: Callable[[T, str], R] | None = None,
    ) -> Iterator[R]:
        """Yield ``fn(item)`` for each item as its task finishes.

        A task whose worker or node died (after Ray's own retries) is a crash;
        an exception raised by ``fn`` is raised here.
        """
        ray = self._ray
        fn_ref = ray.put(fn)
        pending = {self._task.remote(fn_ref, item): item for item in items}
        try:
            while pending:
                (done,), _ = ray.wait(list(pending), num_returns=1)
                item = pending.pop(done)
                try:
                    result = ray.get(done)
                except ray.exceptions.RayTaskError as err:
                    raise err.as_instanceof_cause() from None
                except ray.exceptions.RayError as err:
                    reason = f"{type(err).__name__}: {' '.join(str(err).split())}"
                    if on_crash is None:
                        raise WorkerCrashed(item, reason) from None
                    yield on_crash(item, reason)
                    continue
                yield result
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
