# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""LAB: the live suites on Debian's kernels under QEMU, on both tiers (see tests/lab/lab.py).

One boot per kernel runs LAB_TESTS inside the guest twice: with the best tier gmemd finds
(fentry, on these kernels) and with --no-fentry. Each (kernel, tier, test) is reported here as
its own test, with the guest's outcome and message; a kernel that truly lacks a feature (6.12
has no guest_memfd mmap) skips there and says so. build/lab/matrix.md is written at the end.

Needs root, qemu-system-x86_64, busybox-static and Debian's registry (make deps installs the
first two); GMEM_LAB_KERNELS="V ..." narrows the kernels, GMEM_LAB=0 leaves the lab out.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402

LAB_TESTS = lab.LAB_TESTS
KERNELS = os.environ.get("GMEM_LAB_KERNELS", " ".join(lab.KERNELS)).split()
_results = {}


def _run(kernel):
    """Boot kernel once (per session) and run LAB_TESTS on both tiers."""
    if kernel not in _results:
        _results[kernel] = lab.run_suite(kernel, LAB_TESTS)
    return _results[kernel]


def _lab_available():
    if os.environ.get("GMEM_LAB") == "0":
        pytest.skip("lab left out (GMEM_LAB=0)")
    if os.environ.get("GMEM_LAB"):
        pytest.skip("already inside the lab")
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (QEMU reads the host root to share it)")


@pytest.mark.parametrize("test", LAB_TESTS, ids=lambda t: t.split("::")[-1])
@pytest.mark.parametrize("tier", lab.TIERS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_lab(kernel, tier, test):
    _lab_available()
    res = _run(kernel)
    assert not res["error"], f"LAB {kernel}: {res['error']}"
    got = {n: o for n, o in res[tier].items() if n == test or n.startswith(test + "[")}
    assert got, (f"LAB {kernel} {tier}: {test} did not run in the guest; console:\n"
                 + lab.console_tail(res["out"]))
    failed = {n: m for n, (o, m) in got.items() if o == "failed"}
    assert not failed, f"LAB {kernel} {tier}: " + "; ".join(f"{n}: {m}" for n, m in failed.items())
    skipped = {n: m for n, (o, m) in got.items() if o == "skipped"}
    unexplained = {n: m for n, m in skipped.items() if not lab.KERNEL_LACKS.search(m)}
    assert not unexplained, (f"LAB {kernel} {tier}: skipped in the guest without a missing "
                             f"kernel feature: {unexplained}")
    if skipped and len(skipped) == len(got):
        pytest.skip("; ".join(skipped.values()))


def test_lab_matrix_written():
    """LAB: the matrix of what ran where (kernel x tier x test) for README."""
    _lab_available()
    for k in KERNELS:
        _run(k)
    done = {k: {t: _results[k].get(t, {}) for t in lab.TIERS} for k in KERNELS}
    path = lab.write_matrix(done, os.path.join(lab.LAB, "matrix.md"),
                            {k: _results[k].get("reboots", []) for k in KERNELS})
    with open(path) as f:
        text = f.read()
    assert all(k in text for k in KERNELS), text
