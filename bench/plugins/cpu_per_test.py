"""A pytest plugin for bench/suite.py: each test's CPU seconds, as JSON lines appended to $BENCH_TEST_CPU_LOG.

A test's figure is the CPU that its worker process used during its setup, call and teardown (moto's server
threads included), with every descendant process: those it waited for (jobs, ranks, CLI runs, synths) and,
read from /proc, those that live on across tests (the Spark drivers' JVMs, jsii's kernel), for the part
they used while the test ran.
"""

from __future__ import annotations

import json
import os
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest

# Read once: some tests remove variables from the environment for as long as their fixtures live.
LOG = os.environ["BENCH_TEST_CPU_LOG"]
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return (
        own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + _live_descendants(os.getpid())
    )


def _live_descendants(pid: int) -> float:
    """The CPU seconds of `pid`'s running descendants and of the children they waited for."""
    total = 0.0
    for child in _children(pid):
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
        except OSError:  # it has just exited
            continue
        utime, stime, cutime, cstime = stat[stat.rindex(")") + 2 :].split()[11:15]
        total += (int(utime) + int(stime) + int(cutime) + int(cstime)) / TICK + _live_descendants(child)
    return total


def _children(pid: int) -> list[int]:
    found = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:  # it has just exited
        return found
    for thread in threads:
        try:
            found += [int(c) for c in Path(f"/proc/{pid}/task/{thread}/children").read_text().split()]
        except OSError:  # the thread has just ended
            continue
    return found


_started: dict[str, float] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    # Runs in the process that runs the test (an xdist worker), not in the one that reports it.
    _started[item.nodeid] = _cpu_seconds()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    # The worker's last test also ends the session's fixtures, and a long-lived process that exits unreaped
    # then (a Spark host's JVM) takes its CPU out of the sum: no test's cost, so that test stops before.
    if nextitem is None:
        _record(item)
    yield
    if nextitem is not None:
        _record(item)


def _record(item: pytest.Item) -> None:
    marker = item.get_closest_marker("xdist_group")
    record = {
        "test": item.nodeid,
        "group": marker.args[0] if marker else None,
        "cpu": _cpu_seconds() - _started.pop(item.nodeid),
    }
    with open(LOG, "a") as log:
        log.write(json.dumps(record) + "\n")
