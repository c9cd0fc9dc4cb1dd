"""The batch command on Ray: a pool of workers that each hold the models, fed one video at a time.

:func:`run_on_ray` starts Ray (or joins a cluster) through :mod:`realtime.core.ray_jobs`, starts N
:class:`realtime.batch.worker.VideoWorker` actors, hands them the jobs largest first with the shared
bounded job loop, retries a video whose worker died (up to :data:`MAX_ATTEMPTS` times), turns Ctrl-C or
SIGTERM into a clean stop between two waits, and shuts Ray down. A watchdog process ends this run's local
Ray session if the driver itself is killed outright.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from realtime.batch.report import BatchProgress
from realtime.batch.worker import BatchJob
from realtime.core.ray_jobs import BoundedJobs, import_ray, start_ray

MAX_ATTEMPTS = 3  # a video whose worker dies this many times is recorded as failed
OBJECT_STORE_BYTES = 256 * 1024 * 1024  # of a local instance: the model and the jobs' small dicts


class WorkerPool:
    """N actors, one video each at a time; a worker that dies is restarted by Ray (``max_restarts``) and its
    video retried (``max_task_retries``), then replaced, and the video recorded as failed after
    :data:`MAX_ATTEMPTS` deaths."""

    def __init__(self, ray, workers: int, model, device: str, threads: int) -> None:
        from realtime.batch.worker import VideoWorker

        self.ray = ray
        self.actor_class = ray.remote(num_cpus=1, max_restarts=MAX_ATTEMPTS, max_task_retries=MAX_ATTEMPTS)(VideoWorker)
        self.model = model  # [ObjectRef]: nested, so the worker fetches it (once) rather than Ray per call
        self.args = (device, threads)
        self.actors = [self._new() for _ in range(workers)]

    def _new(self):
        return self.actor_class.remote(*self.args)

    def ready(self) -> list[dict]:
        """Wait for every worker to have loaded its models (a model that fails to load fails here)."""
        return self.ray.get([actor.ready.remote(self.model) for actor in self.actors])

    def replace(self, slot: int) -> None:
        self.ray.kill(self.actors[slot], no_restart=True)
        self.actors[slot] = self._new()


def run_jobs(ray, pool: WorkerPool, jobs: list[BatchJob], on_done) -> None:
    """Feed the jobs to the pool (largest first) and call ``on_done(row)`` as each finishes; a stop signal
    (see :func:`on_stop_signal`) ends it with :class:`Terminated`."""
    from ray.exceptions import RayActorError, RayError

    def stop_if_asked() -> None:
        if _STOP:
            raise Terminated

    attempts: Counter = Counter()
    queue = BoundedJobs(
        ray,
        sorted(jobs, key=lambda j: -j.size),
        len(pool.actors),
        lambda job, slot: pool.actors[slot].process.remote(job, pool.model),
        poll_s=0.25,
        after_each_wait=stop_if_asked,
    )
    for finished in queue:
        job, slot = finished.job, finished.slot
        try:
            row = ray.get(finished.ref)
        except RayActorError as error:  # the worker died (and Ray's own retries ran out)
            attempts[job.input] += 1
            pool.replace(slot)
            if attempts[job.input] < MAX_ATTEMPTS:
                queue.retry(job)
                continue
            row = {"status": "failed", "reason": f"the worker died while processing it: {_first_line(error)}"}
        except RayError as error:
            row = {"status": "failed", "reason": f"worker error: {_first_line(error)}"}
        on_done(job.row(**row))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:200]


WATCHDOG = r"""
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
session, me = sys.argv[1], os.getpid()
if sys.stdin.readline().strip() == "done":
    sys.exit(0)
time.sleep(1.0)  # the driver died without shutting Ray down: let Ray's own fate sharing act first
for _ in range(5):
    victims = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == me:
            continue
        try:
            hit = session in open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="ignore")
            for fd in [] if hit else os.listdir(f"/proc/{pid}/fd"):
                try:
                    if session in os.readlink(f"/proc/{pid}/fd/{fd}"):
                        hit = True
                        break
                except OSError:
                    pass
        except OSError:
            continue
        if hit:
            victims.append(int(pid))
    if not victims:
        break
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.5)
"""


def _start_watchdog(ray):
    """A tiny process that outlives a driver killed outright (SIGKILL, the OOM killer) and then ends every
    process of this run's local Ray session (Ray's agents would otherwise linger). It waits on a pipe: the
    driver's death closes it; a clean end writes ``done``. Linux only; None elsewhere."""
    import subprocess

    try:
        session = ray._private.worker._global_node.get_session_dir_path()
    except Exception:
        return None
    if not session or not Path("/proc").is_dir():
        return None
    return subprocess.Popen(
        [sys.executable, "-c", WATCHDOG, session],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _stop_watchdog(watchdog) -> None:
    if watchdog is None:
        return
    try:
        watchdog.stdin.write("done\n")
        watchdog.stdin.close()
        watchdog.wait(timeout=5)
    except Exception:
        watchdog.kill()


class Terminated(Exception):
    """A stop signal (Ctrl-C, SIGTERM) arrived while the jobs ran."""


_STOP: list[int] = []


def on_stop_signal(signum, frame):
    # Ctrl-C, SIGTERM or SIGHUP: noted here and acted on between two waits (an exception raised inside Ray's wait
    # would surface as a SystemError); Ray is then shut down and the batch files written
    _STOP.append(signum)


@dataclass(frozen=True)
class RayRun:
    """What a run on Ray gave: a row per video that finished (in the order they did), the workers used and
    their hosts, the seconds each phase took, and whether a stop signal cut it short."""

    rows: list[dict]
    workers: int
    worker_hosts: list[str]
    timing: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False


def run_on_ray(
    jobs: list[BatchJob],
    model_path: Path,
    device: str,
    progress: BatchProgress,
    address: str | None = None,
    workers: int | None = None,
) -> RayRun:
    """Process ``jobs`` on ``workers`` Ray workers (default: this machine's cores, or one per CPU of the
    cluster at ``address``), never more than there are jobs; the classifier runs on ``device``."""
    workers = workers or (None if address else os.cpu_count() or 1)
    timing: dict[str, float] = {}
    rows: list[dict] = []
    interrupted = False
    t0 = time.perf_counter()
    ray = import_ray()
    started_here = start_ray(address, num_cpus=workers, num_gpus=0, object_store_bytes=OBJECT_STORE_BYTES)
    watchdog = _start_watchdog(ray) if started_here and not address else None
    try:
        if workers is None:  # a cluster without --workers: one per CPU
            workers = max(int(ray.cluster_resources().get("CPU", 1)), 1)
        workers = min(workers, len(jobs))
        threads = max((os.cpu_count() or 1) // workers, 1) if not address else 1
        timing["ray_start_s"] = time.perf_counter() - t0
        # the model travels in Ray's object store (cluster nodes need no copy of the file)
        model_ref = ray.put(model_path.read_bytes())
        pool = WorkerPool(ray, workers, [model_ref], device, threads)
        info = pool.ready()
        timing["workers_ready_s"] = time.perf_counter() - t0
        worker_hosts = sorted({i["worker"].split(":")[0] for i in info})
        progress.start(workers, address or "this machine", info[0]["provider"])

        def on_done(row: dict) -> None:
            rows.append(row)
            progress.done(row)

        _STOP.clear()
        previous = {s: signal.signal(s, on_stop_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        t1 = time.perf_counter()
        try:
            run_jobs(ray, pool, jobs, on_done)
        except (KeyboardInterrupt, Terminated):
            interrupted = True
        finally:
            # the first video handed out to the last result back: what the workers' videos took
            timing["processing_s"] = time.perf_counter() - t1
            for number, handler in previous.items():
                signal.signal(number, handler)
            progress.close()
    finally:
        t2 = time.perf_counter()
        if started_here:
            ray.shutdown()
        _stop_watchdog(watchdog)
        timing["ray_stop_s"] = time.perf_counter() - t2
    return RayRun(rows, workers, worker_hosts, timing, interrupted)
