"""When the pool replaces a worker (RecyclePolicy), how sizes are read, and what a worker measures of itself."""

from __future__ import annotations

import os

import pytest

from compressflow.errors import UsageError
from compressflow.executor.worker_memory import RecyclePolicy, WorkerMemory, measure, parse_size

MB = 2**20


def memory(rss_mb: float, peak_mb: float, tensorflow: bool = True) -> WorkerMemory:
    return WorkerMemory(pid=1, rss=int(rss_mb * MB), peak=int(peak_mb * MB), tensorflow=tensorflow)


def test_the_first_stage_with_tensorflow_sets_the_baseline_and_growth_is_measured_from_it():
    policy = RecyclePolicy(growth=0.15)

    retire, baseline = policy.retire(memory(800, 1500), None)
    assert (retire, baseline) == (False, 800 * MB)
    # 15% of a 1500 MB peak is 225 MB of growth allowed
    assert policy.retire(memory(1020, 1500), baseline) == (False, baseline)
    assert policy.retire(memory(1030, 1500), baseline) == (True, baseline)


def test_a_stage_without_tensorflow_sets_no_baseline_so_the_import_is_not_growth():
    policy = RecyclePolicy()

    retire, baseline = policy.retire(memory(90, 95, tensorflow=False), None)
    assert (retire, baseline) == (False, None)
    retire, baseline = policy.retire(memory(700, 900), baseline)
    assert (retire, baseline) == (False, 700 * MB)


def test_a_limit_replaces_a_worker_that_holds_more_whatever_its_growth():
    policy = RecyclePolicy(limit=600 * MB)

    assert policy.retire(memory(700, 900), None)[0] is True
    assert policy.retire(memory(500, 900), None)[0] is False


def test_without_figures_a_worker_is_never_replaced():
    unknown = WorkerMemory(pid=1, rss=None, peak=None, tensorflow=True)

    assert RecyclePolicy(limit=1).retire(unknown, 5) == (False, 5)


@pytest.mark.parametrize("text, size", [("1500M", 1500 * MB), ("2G", 2 * 2**30), ("2gb", 2 * 2**30),
                                        ("1.5GiB", int(1.5 * 2**30)), ("4096", 4096), ("64k", 64 * 1024)])
def test_sizes(text: str, size: int):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "-1G", "0", "2 G B", ""])
def test_a_size_that_is_not_one_says_what_to_give(text: str):
    with pytest.raises(UsageError, match="give a size such as 1500M|more than 0"):
        parse_size(text)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")
def test_a_process_measures_its_resident_and_peak_memory():
    here = measure()

    assert here.pid == os.getpid()
    assert 0 < here.rss <= here.peak
