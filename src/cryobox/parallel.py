"""One executor interface for work units: in-process, local processes, or a Dask cluster.

``run_tasks(fn, tasks, workers=..., scheduler=...)`` yields ``(task, result)`` as units finish.
At most ``2 x workers`` units are in flight (on a Dask cluster, 2 per worker thread), so memory
does not grow with the number of tasks.
Worker processes run FFTs single-threaded (the parallelism is across units). Exceptions raised by
a unit are returned as the result (an ``Exception`` instance), so a caller can keep going.
"""

from __future__ import annotations

import itertools
import os
import signal
from typing import Any, Callable, Iterable, Iterator

from cryobox.core import fourier
from cryobox.errors import InputError

__all__ = ["default_workers", "die_with_parent", "run_tasks", "tune_for_batch_work"]


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover
        return max(1, os.cpu_count() or 1)


def tune_for_batch_work(*, single_threaded: bool) -> None:
    """Process settings for big array work, applied when a job starts (never at import).

    - ``single_threaded``: FFTs and BLAS on one thread (worker processes already use every core;
      nested threads oversubscribe the CPU);
    - glibc malloc keeps freed big blocks instead of returning them to the OS, so the next
      same-sized batch reuses memory that is already mapped (on this kind of work, page faults
      otherwise cost as much system time as the arithmetic). No effect on other C libraries.
    """

    if single_threaded:
        fourier.set_fft_workers(1)
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(1)
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            pass
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: serve big blocks from the heap
        libc.mallopt(-1, 1 << 32)  # M_TRIM_THRESHOLD: do not give freed memory back at once
    except (OSError, AttributeError):  # not glibc
        pass


def _init_worker() -> None:

    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a worker told to stop just stops (no traceback)
    die_with_parent()
    tune_for_batch_work(single_threaded=True)


def die_with_parent() -> None:
    """Linux: the kernel sends this worker SIGTERM when its parent dies, even by SIGKILL, so no
    worker goes on writing for a job that is gone."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux / not glibc
        pass


def _call(fn: Callable, task: Any):
    try:
        return fn(task)
    except Exception as exc:  # returned, not raised: the caller decides (keep going or stop)
        return exc


def _call_in_worker(fn: Callable, task: Any):
    # a Dask worker runs tasks in threads of its own process: tune it, leave its signals alone
    tune_for_batch_work(single_threaded=True)
    return _call(fn, task)


def run_tasks(
    fn: Callable[[Any], Any], tasks: Iterable[Any], *, workers: int | None = None, scheduler: str | None = None
) -> Iterator[tuple[Any, Any]]:
    """Run ``fn`` on every task; yield (task, result or exception) in completion order."""
    tasks = list(tasks)
    if scheduler:
        yield from _run_dask(fn, tasks, scheduler)
        return
    workers = default_workers() if workers is None else max(1, int(workers))
    if workers == 1 or len(tasks) <= 1:
        tune_for_batch_work(single_threaded=False)
        for t in tasks:
            yield t, _call(fn, t)
        return
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker)
    try:
        pending = {}
        it = iter(tasks)
        for t in it:
            pending[pool.submit(_call, fn, t)] = t
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                t = pending.pop(fut)
                yield t, fut.result()
                nxt = next(it, None)
                if nxt is not None:
                    pending[pool.submit(_call, fn, nxt)] = nxt
    except BaseException:
        # interrupted (Ctrl-C, SIGTERM, an error): the workers stop now instead of finishing
        # their units, and nothing queued starts
        procs = list(getattr(pool, "_processes", {}).values())
        for proc in procs:
            proc.terminate()
        for proc in procs:  # gone before the caller cleans up what they were writing
            proc.join(timeout=5)
        pool.shutdown(wait=False, cancel_futures=True)
        # let the pool's manager thread see its workers gone and end now: left running, it races
        # the interpreter's exit and prints "Exception ignored ... Bad file descriptor" after our
        # one-sentence error (Python 3.11's ProcessPoolExecutor)
        manager = getattr(pool, "_executor_manager_thread", None)
        if manager is not None:
            manager.join(timeout=10)
        raise
    pool.shutdown(wait=True)


def _run_dask(fn: Callable, tasks: list, address: str) -> Iterator[tuple[Any, Any]]:
    """The same contract on a Dask cluster: at most 2 units per worker thread are submitted at a time."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise InputError(
            f"a Dask scheduler ({address}) needs Dask: pip install 'cryobox[dask]' (dask and distributed)."
        ) from None
    with Client(address) as client:
        limit = 2 * max(1, sum(client.nthreads().values()))
        queue = iter(tasks)
        futures = {client.submit(_call_in_worker, fn, t, pure=False): t for t in itertools.islice(queue, limit)}
        running = as_completed(list(futures))
        for fut in running:
            task = futures.pop(fut)
            result = fut.result()
            for nxt in itertools.islice(queue, 1):
                new = client.submit(_call_in_worker, fn, nxt, pure=False)
                futures[new] = nxt
                running.add(new)
            yield task, result
