# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""LIVE: KVM's binary stats (KVM_GET_STATS_FD) beside guest_memfd, without debugfs.

KVM refuses KVM_GET_STATS_FD to any process but the VM's creator, so gmemd reads the stats fds
a VMM holds (QEMU holds one per vCPU). gmem-load --stats-fds holds them as QEMU does and, once
its work is done and its vCPU stopped, reads them itself: those values are the truth gmemd's
copies must equal. No value is assumed: on this PVM host io_exits stays 0 while IO exits reach
user space, and pages_4k stays 0; KVM's own counters decide.
"""
import os
import subprocess

import pytest

from gmemtest import GMEMD, Gmemd, Load, require_live, wait_until


@pytest.fixture
def gmemd():
    require_live()
    d = Gmemd()
    yield d
    assert d.stop() == 0, d.output()


def held_stats_fds(pid):
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if "kvm-vm-stats" in link or "kvm-vcpu-stats" in link:
            out.append(link)
    return out


def test_kvm_stats_equal_what_the_vm_reads_itself(gmemd):
    load = Load("--vms", "2", "--stats-fds", "--user-touch", "8", "--guest-touch", "16",
                "--linger", "30")
    try:
        vms = load.wait_phase("done")["vms"]
        for v in vms:
            truth = v["kvm_stats"]
            pid = v["pid"]
            assert truth["exits"] >= 1 and truth["halt_exits"] >= 1, truth  # the guest's hlt

            def same():
                m = gmemd.metrics()
                got = {k: m.get(f"gmem_kvm_{k}_total", vm=pid)
                       for k in ("exits", "halt_exits", "io_exits")}
                got.update({k: m.get(f"gmem_kvm_{k}", vm=pid)
                            for k in ("pages_4k", "pages_2m", "pages_1g")})
                return got == truth and m.has("gmem_kvm_exits_total", vm=pid) and m
            try:
                m = wait_until(same, timeout=10, what=f"vm {pid} KVM stats")
            except AssertionError:
                m = gmemd.metrics()
                raise AssertionError((pid, truth, {n: val for (n, ls), val in m.samples.items()
                                                   if n.startswith("gmem_kvm_")
                                                   and dict(ls).get("vm") == str(pid)}))
            assert m.types["gmem_kvm_exits_total"] == "counter"
            assert m.types["gmem_kvm_pages_4k"] == "gauge"
        snap = gmemd.call({"cmd": "snapshot"})
        by_vm = {k["vm"]: k for k in snap["kvm_stats"]}
        for v in vms:
            k = by_vm[v["pid"]]
            assert [c["vcpu"] for c in k["vcpus"]] == [0]
            assert k["vcpus"][0]["stats"]["exits"] == v["kvm_stats"]["exits"]
            assert k["vm_stats"]["pages_4k"] == v["kvm_stats"]["pages_4k"]
            # the schema is the kernel's: histograms come through as bucket arrays
            assert any(isinstance(x, list) for x in k["vcpus"][0]["stats"].values())
        assert len(held_stats_fds(gmemd.proc.pid)) == 2 * len(vms)
        assert gmemd.metrics().get("gmemscope_kvm_stats_errors_total") == 0
        load.resume()
        load.finish()

        def let_go():
            gmemd.scan()
            m = gmemd.metrics()
            return (not any(m.has("gmem_kvm_exits_total", vm=v["pid"]) for v in vms)
                    and not held_stats_fds(gmemd.proc.pid))
        wait_until(let_go, timeout=15, what="the exited VMs' stats fds let go")
    finally:
        if load.proc.poll() is None:
            load.proc.kill()


def test_a_vm_without_stats_fds_has_no_kvm_series(gmemd):
    load = Load("--vms", "1", "--user-touch", "4", "--linger", "30")
    try:
        v = load.wait_phase("done")["vms"][0]
        assert "kvm_stats" not in v
        wait_until(lambda: gmemd.metrics().has("gmem_files_created_total", vm=v["pid"]),
                   what="the VM seen")
        gmemd.call({"cmd": "snapshot"})
        m = gmemd.metrics()
        assert not m.has("gmem_kvm_exits_total", vm=v["pid"])
        assert m.get("gmemscope_kvm_stats_errors_total") == 0
        load.resume()
        load.finish()
    finally:
        if load.proc.poll() is None:
            load.proc.kill()


@pytest.mark.parametrize("select", ["all", "none", "halt_exits,pf_taken"])
def test_kvm_stats_selection(select):
    require_live()
    d = Gmemd("--kvm-stats", select)
    load = Load("--vms", "1", "--stats-fds", "--guest-touch", "4", "--linger", "30")
    try:
        v = load.wait_phase("done")["vms"][0]
        pid = str(v["pid"])

        def families():
            m = d.metrics()
            fams = {n for (n, ls) in m.samples if n.startswith("gmem_kvm_")
                    and dict(ls).get("vm") == pid}
            return (fams or select == "none") and fams
        if select == "none":
            wait_until(lambda: d.metrics().has("gmem_files_created_total", vm=pid),
                       what="the VM seen")
            import time
            time.sleep(1.5)
            assert not families()
            assert "capabilities kept: CAP_BPF, CAP_PERFMON\n" in d.output(), \
                "without KVM stats gmemd keeps no ptrace access"
        elif select == "all":
            fams = wait_until(families, what="all families")
            # ns stats become seconds, cumulative ones counters
            assert "gmem_kvm_halt_wait_seconds_total" in fams, sorted(fams)
            assert "gmem_kvm_exits_total" in fams and "gmem_kvm_mmu_cache_miss_total" in fams
        else:
            fams = wait_until(families, what="listed families")
            assert fams == {"gmem_kvm_halt_exits_total", "gmem_kvm_pf_taken_total"}, fams
        load.resume()
        load.finish()
    finally:
        if load.proc.poll() is None:
            load.proc.kill()
        assert d.stop() == 0, d.output()


def test_bad_kvm_stats_selection_is_a_usage_error():
    p = subprocess.run([GMEMD, "--kvm-stats", "Exits!", "--probe"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 64, p  # argp's EX_USAGE, as for every bad flag
    assert "--kvm-stats: 'Exits!' is not a stat name" in p.stderr, p.stderr
