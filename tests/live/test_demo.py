# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""LIVE or LAB: README's first command, scripts/demo, shows real guest_memfd VMs.

On a kernel whose KVM has guest_memfd the demo runs here (LIVE). On one without it (this
host's kernel has been both) it says so and runs the same demo inside the kernel lab, Debian's
7.2 under QEMU (LAB). Either way its dashboard must show the three VMs it starts, with their
files and sizes and the churning VMs' rates: never an empty table.
"""
import fcntl
import os
import re
import subprocess

import pytest

from gmemtest import ROOT, require_live
from tui import table

DEMO = os.path.join(ROOT, "scripts", "demo")


def has_guest_memfd():
    kvm = os.open("/dev/kvm", os.O_RDWR)
    try:
        return fcntl.ioctl(kvm, 0xAE03, 234) > 0  # KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD
    finally:
        os.close(kvm)


def last_table(text):
    """The last batch snapshot's rows: [{column: cell}], with NAME (tui.table's parse)."""
    lines = text.splitlines()
    heads = [i for i, l in enumerate(lines) if re.match(r"^\s+PID NAME\s", l)]
    assert heads, "no gmemtop table in the demo's output:\n" + text[-3000:]
    rows, _ = table("\n".join(lines[heads[-1]:]))
    return list(rows.values())


def rate(cell):
    """A rate cell: "869", "12.3k", "-" (none yet) -> a number."""
    if cell == "-":
        return 0.0
    mult = {"k": 1e3, "M": 1e6}.get(cell[-1], 1)
    return float(cell.rstrip("kM")) * mult


def run_demo(count, **env):
    return subprocess.run([DEMO, str(count)], capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL, env={**os.environ, **env})


def test_demo_shows_real_guest_memfd_vms():
    """LIVE where this kernel has guest_memfd, LAB where it does not: four one-second
    snapshots, the last of which shows the demo's three gmem-load VMs: two churning (one file
    of 2M each, pages allocated by host and guest faults every second) and one holding three
    64M files with populated pages. Without guest_memfd the demo says why and where it runs
    instead, and GMEM_DEMO_LAB=0 makes that an error rather than a fallback."""
    require_live()
    native = has_guest_memfd()
    if not native and os.environ.get("GMEM_LAB") == "0":
        pytest.skip(f"kernel {os.uname().release} lacks guest_memfd, and the lab the demo "
                    f"would fall back to is left out (GMEM_LAB=0)")
    if os.environ.get("GMEM_LAB"):
        pytest.skip("already inside the lab")
    p = run_demo(4)
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-2000:])
    fell_back = "running it inside the kernel lab instead" in p.stderr
    assert fell_back == (not native), p.stderr
    if fell_back:
        assert "KVM_CAP_GUEST_MEMFD is 0" in p.stderr, p.stderr
        assert "lab: guest ready:" in p.stdout and "/dev/kvm present" in p.stdout, p.stdout
    rows = last_table(p.stdout)
    assert len(rows) == 3 and all(r["NAME"] == "gmem-load" for r in rows), rows
    holder = [r for r in rows if r["FILES"] == "3"]
    churn = [r for r in rows if r["FILES"] == "1"]
    assert len(holder) == 1 and len(churn) == 2, rows
    assert holder[0]["GMEM"] == "192M" and holder[0]["POPUL"] not in ("0", "-"), holder
    for r in churn:
        assert r["GMEM"] == "2M", r
        assert rate(r["UFLT/s"]) > 0 and rate(r["GFLT/s"]) > 0, r
    print(f"{'LAB' if fell_back else 'LIVE'}: demo rows {rows}")

    if fell_back:
        p = run_demo(1, GMEM_DEMO_LAB="0")
        assert p.returncode == 1, p.stderr
        assert "GMEM_DEMO_LAB=0: not falling back to the kernel lab" in p.stderr, p.stderr


def test_benches_that_need_guest_memfd_say_so():
    """LIVE: bench/needs-guest-memfd, which the gmem benches run first, answers 0 where this
    kernel runs gmem-load's VMs, and otherwise exits 77 (make bench: skipped, not failed)
    saying why and how to run the bench in the lab; bench/run then stops there too."""
    require_live()
    env = {**os.environ, "GMEM_BUILD": os.environ.get("GMEM_BUILD", os.path.join(ROOT, "build"))}
    p = subprocess.run([os.path.join(ROOT, "bench", "needs-guest-memfd"), "bench/x"],
                       capture_output=True, text=True, timeout=60, env=env)
    if has_guest_memfd():
        assert p.returncode == 0 and not p.stderr, p.stderr
        return
    assert p.returncode == 77, p.stderr
    assert "bench/x: skipped: this kernel" in p.stderr and "KVM_CAP_GUEST_MEMFD is 0" in p.stderr
    assert 'tests/lab/lab.py shell 7.2.13+deb14 "cd ' in p.stderr, p.stderr
    p = subprocess.run([os.path.join(ROOT, "bench", "run")], capture_output=True, text=True,
                       timeout=60, env={**env, "WORKLOAD": "host"})
    assert p.returncode == 77 and "WORKLOAD=host bench/run: skipped" in p.stderr, p.stderr
