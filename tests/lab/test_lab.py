# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""LAB: the live suites on Debian's kernels under QEMU, on both tiers (see tests/lab/lab.py).

One boot per kernel runs LAB_TESTS inside the guest twice: with the best tier gmemd finds
(fentry, on these kernels) and with --no-fentry. Each (kernel, tier, test) is reported here as
its own test, with the guest's outcome and message; a kernel that truly lacks a feature (6.12
has no guest_memfd mmap) skips there and says so. Kernels in lab.KVM_SUITES boot once more
with kvm.ko and kvm-amd.ko rebuilt with KVM_SW_PROTECTED_VM (tests/lab/kvmbuild.py) and run
lab.KVM_TESTS, real conversions, where nothing may skip. build/lab/matrix.md is written at the
end.

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


KVM_RUNS = [(k, v) for k, v in lab.KVM_SUITES.items() if k in KERNELS]


def _run(kernel, kvm=None):
    """Boot kernel once (per session, per kvm variant) and run its tests on both tiers."""
    key = lab.kvm_label(kernel, kvm) if kvm else kernel
    if key not in _results:
        _results[key] = lab.run_suite(kernel, lab.KVM_TESTS if kvm else LAB_TESTS, kvm=kvm)
    return _results[key]


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
    _check(kernel, tier, test, _run(kernel))


@pytest.mark.parametrize("test", lab.KVM_TESTS, ids=lambda t: t.split("::")[-1])
@pytest.mark.parametrize("tier", lab.TIERS)
@pytest.mark.parametrize("kernel,kvm", KVM_RUNS, ids=[lab.kvm_label(k, v) for k, v in KVM_RUNS])
def test_lab_kvm(kernel, kvm, tier, test):
    """LAB: kernel booted with kvm.ko and kvm-amd.ko rebuilt from Debian's source with
    CONFIG_KVM_SW_PROTECTED_VM=y (tests/lab/kvmbuild.py): real private memory and conversions.
    Nothing may skip here: the rebuilt kvm has every feature these tests need."""
    _lab_available()
    _check(lab.kvm_label(kernel, kvm), tier, test, _run(kernel, kvm), skip_ok=False)


def _check(kernel, tier, test, res, skip_ok=True):
    assert not res["error"], f"LAB {kernel}: {res['error']}"
    got = {n: o for n, o in res[tier].items() if n == test or n.startswith(test + "[")}
    assert got, (f"LAB {kernel} {tier}: {test} did not run in the guest; console:\n"
                 + lab.console_tail(res["out"]))
    failed = {n: m for n, (o, m) in got.items() if o == "failed"}
    assert not failed, f"LAB {kernel} {tier}: " + "; ".join(f"{n}: {m}" for n, m in failed.items())
    skipped = {n: m for n, (o, m) in got.items() if o == "skipped"}
    unexplained = {n: m for n, m in skipped.items()
                   if not skip_ok or not lab.KERNEL_LACKS.search(m)}
    assert not unexplained, (f"LAB {kernel} {tier}: skipped in the guest without a missing "
                             f"kernel feature: {unexplained}")
    if skipped and len(skipped) == len(got):
        pytest.skip("; ".join(skipped.values()))


def test_lab_matrix_written():
    """LAB: the matrix of what ran where (kernel x tier x test) for README."""
    _lab_available()
    keys = []
    for k in KERNELS:
        _run(k)
        keys.append(k)
        if k in lab.KVM_SUITES:
            _run(k, lab.KVM_SUITES[k])
            keys.append(lab.kvm_label(k, lab.KVM_SUITES[k]))
    done = {k: {t: _results[k].get(t, {}) for t in lab.TIERS} for k in keys}
    path = lab.write_matrix(done, os.path.join(lab.LAB, "matrix.md"),
                            {k: _results[k].get("reboots", []) for k in keys})
    with open(path) as f:
        text = f.read()
    assert all(k in text for k in KERNELS), text
