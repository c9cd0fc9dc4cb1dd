"""realtime.core.ray_jobs.BoundedJobs: the job loop of the batch command and of LOSO on Ray, with a stand-in for
Ray's ``wait`` (the loop itself needs no cluster; tests/realtime/batch/test_batch.py runs it on real Ray)."""

from __future__ import annotations

import pytest

from realtime.core.ray_jobs import BoundedJobs


class FakeRay:
    """``wait`` returns the oldest ref in flight as done, and records how many were in flight."""

    def __init__(self) -> None:
        self.in_flight: list[int] = []

    def wait(self, refs, num_returns=1, timeout=None):
        self.in_flight.append(len(refs))
        return refs[:num_returns], refs[num_returns:]


@pytest.mark.parametrize("slots", [1, 2, 5])
def test_every_job_runs_once_with_never_more_than_slots_in_flight(slots):
    ray, submitted = FakeRay(), []

    def submit(job, slot):
        submitted.append((job, slot))
        return f"ref-{job}"

    finished = [(f.job, f.ref) for f in BoundedJobs(ray, "abcd", slots, submit)]
    assert sorted(finished) == [(job, f"ref-{job}") for job in "abcd"]
    assert [job for job, _ in submitted] == list("abcd")
    assert max(ray.in_flight) == min(slots, 4)
    assert {slot for _, slot in submitted} == set(range(min(slots, 4)))


def test_a_retried_job_runs_again_before_the_others_in_its_freed_slot():
    ray, submitted = FakeRay(), []
    jobs = BoundedJobs(ray, ["x", "y"], 1, lambda job, slot: submitted.append((job, slot)) or len(submitted))
    seen = []
    for finished in jobs:
        seen.append(finished.job)
        if seen == ["x"]:
            jobs.retry("x")
    assert seen == ["x", "x", "y"] and submitted == [("x", 0), ("x", 0), ("y", 0)]


def test_the_hook_after_each_wait_can_stop_the_loop_and_the_running_jobs_are_known():
    class Stop(Exception):
        pass

    def stop():
        raise Stop

    jobs = BoundedJobs(FakeRay(), range(5), 2, lambda job, slot: job, poll_s=0.25, after_each_wait=stop)
    with pytest.raises(Stop):
        list(jobs)
    assert jobs.running() == [0, 1]


def test_slots_must_be_at_least_one():
    with pytest.raises(ValueError, match="slots"):
        BoundedJobs(FakeRay(), [], 0, lambda job, slot: job)
