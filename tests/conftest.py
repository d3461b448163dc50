# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""pytest glue for every layer of gmemscope's tests.

Closes the run with the line CI reads: "N passed, N failed, N skipped". With GMEM_NO_SKIP=1
(CI on a machine that has /dev/kvm and BTF) a skipped test counts as failed: there, a skip
would hide a failure.
"""
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

_counts = {"passed": 0, "failed": 0, "skipped": 0}


@pytest.fixture
def loads():
    """gmem-load runs a test starts (append them); each is told to finish, or killed, after."""
    from gmemtest import finish_loads
    started = []
    yield started
    finish_loads(started)
_skips_failed = []


def pytest_runtest_logreport(report):
    if report.when == "call":
        if report.passed:
            _counts["passed"] += 1
        elif report.failed:
            _counts["failed"] += 1
        elif report.skipped:
            _count_skip(report)
    elif report.failed:  # setup or teardown error
        _counts["failed"] += 1
    elif report.skipped and report.when == "setup":
        _count_skip(report)


# A skip because the kernel under test truly lacks a feature (gmemtest.kernel_lacks, which
# checks the kernel rather than assuming): allowed even under GMEM_NO_SKIP, and still a skip.
_KERNEL_LACKS = re.compile(r"kernel \S+ lacks ")


def _count_skip(report):
    reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
    if os.environ.get("GMEM_NO_SKIP") == "1" and not _KERNEL_LACKS.search(reason):
        _counts["failed"] += 1
        _skips_failed.append(report.nodeid)
    else:
        _counts["skipped"] += 1


def pytest_sessionfinish(session, exitstatus):
    if _skips_failed and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_unconfigure(config):
    for nodeid in _skips_failed:
        print(f"SKIP COUNTED AS FAILURE (GMEM_NO_SKIP=1): {nodeid}")
    print(f"{_counts['passed']} passed, {_counts['failed']} failed, {_counts['skipped']} skipped")
