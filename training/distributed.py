"""LOSO folds as Ray tasks, on this machine or on a Ray cluster.

:class:`RayFoldRunner` is a :data:`training.loso.FoldRunner`: :func:`training.loso.run_loso` hands it the
folds still to train and writes each record it yields into ``folds/<subject>.json``, then the report, exactly
as for the in-process runner. Each task runs :func:`training.loso.train_fold`, the one fold implementation,
on the whole crop set (which it splits: the held-out subject's images reach only the final prediction), so
a fold gives the same record whichever way it ran, and a run started one way resumes the other way.

Where things live. The driver (the machine running ``python -m training loso``) reads the data set, aligns
the crops (cache), reads the initial weights and writes every file of the run folder. The crops and the
initial weights travel to the tasks through Ray's object store, once per run, and records come back the
same way: worker nodes need this package and its pinned dependencies installed, but neither the data root
nor the run folder.

Resources. A fold task asks for ``cpus_per_fold`` CPUs (default: the cluster's CPUs / ``workers``, at most
one node's) and uses that many torch threads, and for ``gpus_per_fold`` GPUs where the cluster has GPUs
(default 1; a fraction such as 0.5 lets two small folds share one GPU). At most ``workers`` folds are in
flight at once. Note that on the CPU, floating-point results depend on the number of threads (the order of
reductions), so probabilities agree bit for bit with an in-process run only at the same thread count.

Ray is started and the folds fed to it by :mod:`realtime.core.ray_jobs` (the batch command's too). Ray is imported
only when a runner is used: without ``--workers``/``--address`` the command never imports it.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from realtime.core.errors import UserInputError
from realtime.core.ray_jobs import BoundedJobs, import_ray, start_ray

if TYPE_CHECKING:
    import torch

    from training.config import TrainConfig
    from training.preprocess import CropSet


@dataclass(frozen=True)
class FoldPlan:
    """How the folds of one run are laid on the cluster."""

    workers: int  # folds in flight at once
    cpus_per_fold: int  # Ray CPUs a fold task holds = its torch threads
    gpus_per_fold: float  # 0 on the CPU

    def describe(self, n_folds: int, where: str) -> str:
        per_fold = f"{self.cpus_per_fold} CPU" + (f", {self.gpus_per_fold:g} GPU" if self.gpus_per_fold else "")
        return f"Ray: {n_folds} folds, up to {self.workers} at once ({per_fold} each) on {where}"


def plan_folds(
    n_folds: int,
    device: str,
    cluster: Mapping[str, float],
    nodes: Sequence[Mapping[str, float]],
    workers: int | None = None,
    cpus_per_fold: int | None = None,
    gpus_per_fold: float | None = None,
) -> FoldPlan:
    """Choose the resources of a fold task from the cluster's (``cluster``: total resources, ``nodes``: each
    live node's), the training ``device`` setting and what the user asked for; refuse what can never be
    scheduled (a task that fits on no node would wait forever)."""
    total_gpus = float(cluster.get("GPU", 0))
    total_cpus = int(cluster.get("CPU", 0))
    node_cpus = max((int(node.get("CPU", 0)) for node in nodes), default=total_cpus)
    node_gpus = max((float(node.get("GPU", 0)) for node in nodes), default=total_gpus)
    default_gpus = 1.0 if device != "cpu" and total_gpus > 0 else 0.0
    gpus = default_gpus if gpus_per_fold is None else float(gpus_per_fold)
    if device == "cpu" and gpus > 0:
        raise UserInputError("--gpus-per-fold was given with --device cpu; leave one of them out")
    if gpus > 0 and gpus > node_gpus:
        raise UserInputError(
            f"a fold asks for {gpus:g} GPU but no node of the Ray cluster has that many ({node_gpus:g} at most)"
        )
    if device == "cuda" and gpus == 0:
        raise UserInputError("--device cuda was asked for, but the Ray cluster has no GPU; use --device cpu")
    if workers is None:  # as many folds at once as there are GPU slots, else one per node
        workers = int(total_gpus // gpus) if gpus else max(1, len(nodes))
    workers = max(1, min(int(workers), n_folds))
    if cpus_per_fold is None:
        cpus_per_fold = max(1, min(total_cpus // workers, node_cpus))
    if cpus_per_fold > max(node_cpus, 1):
        raise UserInputError(
            f"a fold asks for {cpus_per_fold} CPUs but no node of the Ray cluster has that many ({node_cpus} at most)"
        )
    return FoldPlan(workers=workers, cpus_per_fold=int(cpus_per_fold), gpus_per_fold=gpus)


def run_fold_task(
    data: CropSet,
    subject: str,
    config: TrainConfig,
    initial_state: Mapping[str, torch.Tensor] | None,
    threads: int,
) -> dict[str, Any]:
    """One fold inside a Ray worker: :func:`training.loso.train_fold` with ``threads`` torch threads, on the
    GPU Ray assigned to this task where it assigned one (``config.device`` auto or cuda), else the CPU."""
    import torch

    from training.batches import images_to_tensor
    from training.loso import train_fold
    from training.runtime import resolve_device

    torch.set_num_threads(max(1, int(threads)))
    device = resolve_device(config.device)
    images = images_to_tensor(data.images, device, config.image_size, config.channels_last)
    record = train_fold(data, images, subject, config, initial_state, progress=False)
    record["worker"] = {"host": socket.gethostname(), "threads": torch.get_num_threads(), "runner": "ray"}
    return record


@dataclass(frozen=True)
class RayFoldRunner:
    """Runs LOSO folds as Ray tasks (see the module's docstring); a :data:`training.loso.FoldRunner`.

    ``address`` None starts a local Ray instance for the run (and stops it afterwards) unless this process
    is already connected; ``"auto"`` or ``HOST:PORT`` joins a running cluster. ``workers``: folds at once
    (default: one per GPU slot, else one per node); ``cpus_per_fold`` (torch threads) and ``gpus_per_fold``
    as in :func:`plan_folds`.
    """

    workers: int | None = None
    address: str | None = None
    gpus_per_fold: float | None = None
    cpus_per_fold: int | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise UserInputError(f"--workers must be at least 1, got {self.workers}")
        if self.cpus_per_fold is not None and self.cpus_per_fold < 1:
            raise UserInputError(f"--cpus-per-fold must be at least 1, got {self.cpus_per_fold}")
        gpus = self.gpus_per_fold
        if gpus is not None and (gpus < 0 or (gpus > 1 and gpus != int(gpus))):
            raise UserInputError(f"--gpus-per-fold must be a fraction in (0, 1] or a whole number, got {gpus:g}")

    def __call__(
        self,
        data: CropSet,
        subjects: Sequence[str],
        config: TrainConfig,
        initial_state: Mapping[str, torch.Tensor] | None = None,
        progress: bool = True,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        from tqdm import tqdm

        ray = import_ray()
        started_here = start_ray(self.address)
        jobs: BoundedJobs[str] | None = None
        try:
            nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
            plan = plan_folds(
                len(subjects),
                config.device,
                ray.cluster_resources(),
                nodes,
                workers=self.workers,
                cpus_per_fold=self.cpus_per_fold,
                gpus_per_fold=self.gpus_per_fold,
            )
            where = "a local Ray instance" if self.address is None else f"the Ray cluster at {self.address}"
            print(plan.describe(len(subjects), where), file=sys.stderr)
            task = ray.remote(run_fold_task).options(
                num_cpus=plan.cpus_per_fold, num_gpus=plan.gpus_per_fold, name="loso-fold"
            )
            data_ref = ray.put(data)
            state_ref = ray.put(dict(initial_state) if initial_state is not None else None)
            jobs = BoundedJobs(
                ray,
                subjects,
                plan.workers,
                lambda subject, _slot: task.remote(data_ref, subject, config, state_ref, plan.cpus_per_fold),
            )
            bar = tqdm(total=len(subjects), desc="LOSO (Ray)", unit="fold", disable=not progress)
            with bar:
                for finished in jobs:
                    record = _result(ray, finished.ref)
                    bar.set_postfix(subject=finished.job, refresh=False)
                    bar.update()
                    yield finished.job, record
        finally:
            for ref in jobs.running() if jobs is not None else ():  # interrupted or failed: of no use now
                ray.cancel(ref, force=True)
            if started_here:
                ray.shutdown()


def _result(ray, ref) -> dict[str, Any]:
    """A fold task's record; its exception is raised here, in the driver (a user error as one line)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, UserInputError):
            raise UserInputError(str(exc.cause)) from None
        raise
