"""Ray for the project's two parallel commands (``python -m realtime.batch``, ``python -m training loso``).

:func:`start_ray` joins a running cluster or starts a private local instance, quietly (no dashboard, no
usage statistics, only errors logged), and turns a failure into one :class:`UserInputError` line.
:class:`BoundedJobs` is the job loop both commands share: at most ``slots`` jobs in flight, each finished
one handed back as soon as it is done, a job put back in front when the caller wants it retried.

Ray is imported only inside these functions, so importing this module costs nothing and never needs Ray.
Torch-free: ``realtime/`` may use it.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from realtime.core.errors import UserInputError

# Set before Ray is imported: no usage reporting or prompt, no import warning, every worker line kept.
QUIET_ENVIRONMENT = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_IMPORT_WARNING": "1", "RAY_DEDUP_LOGS": "0"}

Job = TypeVar("Job")


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask, which containers and ``taskset`` narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def import_ray():
    """``ray``, imported with the quiet environment (values the user set are kept)."""
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    import ray

    return ray


def start_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    object_store_bytes: int | None = None,
) -> bool:
    """Make sure this process is connected to Ray; True when this call connected (so it should shut down).

    Already connected (a caller that runs several commands, a test session): nothing is done. ``address``
    None starts a private local instance with ``num_cpus`` CPUs (default: all this process may use),
    ``num_gpus`` GPUs (default: detected) and an object store of ``object_store_bytes`` (default: Ray's);
    ``"auto"`` or ``HOST:PORT`` joins a running cluster, whose resources are its own.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    logging.getLogger("ray").setLevel(logging.ERROR)
    quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address is None:
            local: dict[str, Any] = {"num_cpus": num_cpus or available_cpus(), "include_dashboard": False}
            if num_gpus is not None:
                local["num_gpus"] = num_gpus
            if object_store_bytes is not None:
                local["object_store_memory"] = object_store_bytes
            ray.init(address="local", **local, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as error:
        text = str(error).strip()
        first = (text.splitlines()[0] if text else type(error).__name__)[:200]
        if address is None:
            raise UserInputError(f"cannot start a local Ray instance: {first}") from None
        raise UserInputError(
            f"cannot join the Ray cluster at {address}: {first} (start it with `ray start --head`, and on each "
            "other machine `ray start --address HEAD:6379`)"
        ) from None
    return True


@dataclass(frozen=True)
class Finished(Generic[Job]):
    """A job whose result is ready: ``ray.get(ref)`` gives it (or raises what the job raised); ``slot`` is the
    slot it ran in (the index of the actor it was given to, for an actor pool)."""

    job: Job
    slot: int
    ref: Any


class BoundedJobs(Generic[Job]):
    """Runs ``jobs`` in order with at most ``slots`` in flight: ``submit(job, slot)`` starts one and returns
    its Ray object ref; iterating yields each :class:`Finished` job as soon as Ray has its result, and its
    slot is free again. :meth:`retry` puts a job back in front of the queue (a worker that died).

    ``poll_s`` None waits for the next result however long it takes; a number wakes up that often and calls
    ``after_each_wait()`` (which may raise to stop the loop: a signal handler's flag, checked outside
    Ray's wait). Whatever is still running when the loop stops is in :meth:`running`: cancel it or shut
    Ray down.
    """

    def __init__(
        self,
        ray,
        jobs: Iterable[Job],
        slots: int,
        submit: Callable[[Job, int], Any],
        poll_s: float | None = None,
        after_each_wait: Callable[[], None] | None = None,
    ) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        self._ray = ray
        self._queue: deque[Job] = deque(jobs)
        self._free = list(range(slots))
        self._submit = submit
        self._poll_s = poll_s
        self._after_each_wait = after_each_wait
        self._running: dict[Any, tuple[Job, int]] = {}  # object ref → (job, slot)

    def retry(self, job: Job) -> None:
        """Run ``job`` again, before the others still waiting."""
        self._queue.appendleft(job)

    def running(self) -> list[Any]:
        """The object refs of the jobs in flight."""
        return list(self._running)

    def __iter__(self) -> Iterator[Finished[Job]]:
        while self._queue or self._running:
            while self._queue and self._free:
                slot, job = self._free.pop(0), self._queue.popleft()
                self._running[self._submit(job, slot)] = (job, slot)
            done, _ = self._ray.wait(list(self._running), num_returns=1, timeout=self._poll_s)
            if self._after_each_wait is not None:
                self._after_each_wait()
            for ref in done:
                job, slot = self._running.pop(ref)
                self._free.append(slot)
                yield Finished(job, slot, ref)
