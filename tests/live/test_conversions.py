# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""LAB (or LIVE on a kernel with CONFIG_KVM_SW_PROTECTED_VM): real private memory and real
conversions, counted and timed by gmemd, against gmem-load's ground truth, exactly.

Debian's kernels lack KVM_SW_PROTECTED_VM; the lab boots 7.2 with kvm.ko and kvm-amd.ko rebuilt
from Debian's source with it (tests/lab/kvmbuild.py). There gmem-load runs a software-protected
VM whose guest asks for its own conversions (KVM_HC_MAP_GPA_RANGE hypercall exits, answered
with KVM_SET_MEMORY_ATTRIBUTES and, going shared, a punch of the private page) and whose private
accesses to a memslot without guest_memfd exit with KVM_EXIT_MEMORY_FAULT (answered with a
conversion to shared). The kernel's own selftests guest_memfd_test and
private_mem_conversions_test, built from the same source, run under gmemd as peer workloads.
Everywhere else these tests skip: the kernel lacks the VM type.
"""
import fcntl
import os
import subprocess

import pytest

from gmemtest import (Gmemd, Load, kernel_lacks, require_live, run_load, truth_counters,
                      wait_until, where)
from test_gmemtrace import pmc_expected
from test_spine import check_mapping_invalidations, wait_match

PAGE = 4096
KVM_CHECK_EXTENSION = 0xAE03
KVM_CAP_MEMORY_ATTRIBUTES = 233
KVM_CAP_VM_TYPES = 235
KVM_X86_SW_PROTECTED_VM = 1
KVM_MEMORY_ATTRIBUTE_PRIVATE = 1 << 3
TRACING = "/sys/kernel/tracing"
ATTR_EVENT = os.path.join(TRACING, "events/kvm/kvm_vm_set_mem_attributes")


def require_sw_protected():
    """Skip unless KVM offers KVM_X86_SW_PROTECTED_VM with private memory attributes."""
    require_live()
    fd = os.open("/dev/kvm", os.O_RDWR)
    try:
        types = fcntl.ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES)
        attrs = fcntl.ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES)
    finally:
        os.close(fd)
    if not types & (1 << KVM_X86_SW_PROTECTED_VM):
        kernel_lacks(f"KVM_SW_PROTECTED_VM (KVM_CAP_VM_TYPES = {types}; Debian builds kvm "
                     f"without it, the lab's rebuilt kvm has it)")
    assert attrs & KVM_MEMORY_ATTRIBUTE_PRIVATE, (where(), "SW_PROTECTED VM type without "
                                                  f"private attributes: {attrs}")


@pytest.fixture
def gmemd():
    require_sw_protected()
    d = Gmemd()
    yield d
    rc = d.stop()
    assert rc == 0, f"gmemd exited {rc} on SIGTERM: {d.output()}"


@pytest.fixture
def attr_trace():
    """kvm:kvm_vm_set_mem_attributes on, the trace buffer empty; lines by task after."""
    if not os.path.isdir(ATTR_EVENT):
        os.system(f"mount -t tracefs tracefs {TRACING} 2>/dev/null")
    if not os.path.isdir(ATTR_EVENT):
        kernel_lacks("the tracepoint kvm:kvm_vm_set_mem_attributes")

    def write(path, s):
        with open(path, "w") as f:
            f.write(s)
    write(os.path.join(TRACING, "trace"), "")
    write(os.path.join(ATTR_EVENT, "enable"), "1")

    def lines(pid):
        with open(os.path.join(TRACING, "trace")) as f:
            return [l for l in f if f"-{pid} " in l and "kvm_vm_set_mem_attributes:" in l]
    yield lines
    write(os.path.join(ATTR_EVENT, "enable"), "0")


def load_of(*args):
    return Load(*(str(a) for a in args))


def histo(m, name, vm, to):
    """A histogram's count, sum and cumulative buckets for one VM and direction."""
    buckets = sorted(((float(dict(ls)["le"]), v) for (n, ls), v in m.samples.items()
                      if n == name + "_bucket" and dict(ls).get("vm") == str(vm)
                      and dict(ls).get("to") == to), key=lambda b: b[0])
    return (m.get(name + "_count", vm=vm, to=to), m.get(name + "_sum", vm=vm, to=to), buckets)


def check_histo(m, name, vm, to, want):
    count, total, buckets = histo(m, name, vm, to)
    assert count == want, f"{where()}: {name}{{vm={vm},to={to}}} count {count}, truth {want}"
    assert buckets and buckets[-1] == (float("inf"), count), (name, to, buckets[-3:])
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), (name, to, buckets)
    assert (total > 0) == (want > 0), (name, to, total)
    return total


def test_real_conversions_counted_and_timed(gmemd, attr_trace):
    """LAB: a software-protected VM converts 24 pages private and back through hypercall exits
    (each private write a guest fault into guest_memfd, each way back to shared a punch), takes
    6 memory-fault exits on private pages without guest_memfd, and converts 4 more times from
    the host: gmem_conversions_total, both latency histograms (the kernel part: every call;
    exit to next entry: every exit answered by a conversion), the invalidations and every
    other counter equal gmem-load's counts; kvm:kvm_vm_set_mem_attributes fired once per
    call."""
    nconv, nmf, nhost, npunch = 24, 6, 4, 2
    load = load_of("--vm-type", "sw-protected", "--guest-convert", nconv, "--mem-faults", nmf,
                   "--convert", nhost, "--fallocate", 8, "--punch", npunch, "--linger", 30)
    done = load.wait_phase("done")
    vm = done["vms"][0]
    pid = vm["pid"]
    # The ground truth is what the kernel did, not what was meant: check it is the real thing.
    assert vm["vcpu_exits"] == {"hlt": 1, "io": 0, "hypercall": 2 * nconv,
                                "memory_fault": nmf, "other": 0}, vm["vcpu_exits"]
    assert vm["conversion_requests"] == {"private": nconv + nmf, "shared": nconv}
    assert vm["conversions_on_exit"] == {"private": nconv, "shared": nconv + nmf}
    assert vm["conversions"] == {"private": {"ok": nconv + 1 + nhost // 2, "error": 0},
                                 "shared": {"ok": nconv + nmf + nhost // 2, "error": 0}}
    assert vm["pages_allocated"]["guest_fault"] == nconv, "each private write is a gmem fault"
    assert vm["invalidated_bytes"] == (nconv + npunch) * PAGE

    wait_match(gmemd, pid, truth_counters(vm))
    m = gmemd.metrics()
    # 7.3: each punch on the way to shared takes the private frame out of the VM's mappings
    inv = check_mapping_invalidations(gmemd, m, vm)
    if inv:
        print(f"{where()}: mapping invalidations {inv}")
    for to in ("private", "shared"):
        kernel = check_histo(m, "gmem_conversion_seconds", pid, to, vm["conversions"][to]["ok"])
        e2e = check_histo(m, "gmem_conversion_exit_to_entry_seconds", pid, to,
                          vm["conversions_on_exit"][to])
        print(f"{where()}: to={to}: kernel part {kernel * 1e6:.0f} us over "
              f"{vm['conversions'][to]['ok']} calls, exit to entry {e2e * 1e6:.0f} us over "
              f"{vm['conversions_on_exit'][to]} exits")
    snap = gmemd.call({"cmd": "snapshot"})
    mvm = [v for v in snap["model"]["vms"] if v["vm"] == pid]
    assert mvm, f"vm {pid} not in the snapshot"
    req = mvm[0]["conversion_requests"]
    asked = sum(vm["conversion_requests"].values())
    answered = sum(vm["conversions_on_exit"].values())
    ok = sum(vm["conversions"][to]["ok"] for to in ("private", "shared"))
    assert (req["requests"], req["completed"], req["abandoned"], req["superseded"],
            req["evicted"], req["unmatched_resume"], req["pending"]) == \
        (asked, answered, 0, 0, 0, 0, 0), req
    # The host's own calls (--convert, and the --mem-faults slot made private) answer no exit.
    assert req["unmatched_attr"] == ok - answered, req

    traced = attr_trace(pid)
    assert len(traced) == ok, (f"{where()}: kvm_vm_set_mem_attributes fired {len(traced)} "
                               f"times for {ok} calls", traced[:4])

    load.resume()
    final = load.finish()
    vm = final["vms"][0]
    want = truth_counters(vm)
    assert want["files_released"] == 1
    wait_match(gmemd, pid, want)
    m = gmemd.metrics()
    assert m.get("gmem_files", vm=pid) == 0
    assert not m.has("gmem_events_dropped_total", vm=pid), "nothing of this VM dropped"


def test_private_files_and_gauges(gmemd):
    """LAB: a software-protected VM's files (flags 0: no host mapping) with private pages
    fallocated and held: per-file size and populated gauges equal gmem-load's; the guest's
    conversions leave no page behind (each is punched on its way to shared)."""
    load = load_of("--vm-type", "sw-protected", "--files", 2, "--file-size", "1M",
                   "--guest-convert", 8, "--fallocate", 16, "--linger", 30)
    vm = load.wait_phase("done")["vms"][0]
    pid = vm["pid"]
    assert all(f["flags"] == 0 for f in vm["files"]), vm["files"]
    assert [f["populated_pages"] for f in vm["files"]] == [16, 16]

    def gauges():
        gmemd.scan()
        m = gmemd.metrics()
        got = {}
        for (name, labels), v in m.samples.items():
            d = dict(labels)
            if d.get("vm") == str(pid) and name in ("gmem_file_size_bytes",
                                                    "gmem_populated_bytes"):
                got.setdefault(int(d["gmem"]), {})[name] = v
        want = {f["ino"]: {"gmem_file_size_bytes": f["size"],
                           "gmem_populated_bytes": f["populated_pages"] * PAGE}
                for f in vm["files"]}
        return got == want or (got, want)
    assert wait_until(lambda: gauges() is True, timeout=15, what="per-file gauges")
    wait_match(gmemd, pid, truth_counters(vm))
    load.resume()
    vm = load.finish()["vms"][0]
    wait_match(gmemd, pid, truth_counters(vm))


def _selftest(name):
    d = os.environ.get("GMEM_LAB_SELFTESTS", "")
    path = os.path.join(d, name)
    if not d or not os.access(path, os.X_OK):
        pytest.fail(f"{where()}: KVM has KVM_SW_PROTECTED_VM but the kernel's selftest {name} "
                    f"is not here (GMEM_LAB_SELFTESTS={d!r}; tests/lab/kvmbuild.py builds it)")
    return path


def _run_selftest(path, *args):
    p = subprocess.Popen([path, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    out, _ = p.communicate(timeout=300)
    # 4 is kselftest's skip: with this kvm nothing these selftests need is missing.
    assert p.returncode == 0, f"{where()}: {os.path.basename(path)} exited {p.returncode}:\n" \
        + out[-2000:]
    return p.pid


def test_kernel_selftests_as_peer_workloads(gmemd):
    """LAB: the kernel's guest_memfd_test (53 guest_memfd files over its VMs) and
    private_mem_conversions_test on 2 vCPUs, built from Debian's linux-source-7.2, run under
    gmemd. Every file created is released and every page allocated is freed, nothing dropped;
    and private_mem_conversions_test's numbers equal, exactly, the ones its CONSTRUCTED
    scenario (tests/scenarios, test_gmemtrace.pmc_expected) derives from its source: hypercall
    exits, conversions by direction, both latency histograms' counts, guest faults,
    fallocates, punch holes, invalidated bytes, frees."""
    gmt = _run_selftest(_selftest("guest_memfd_test"))
    pmc = _run_selftest(_selftest("private_mem_conversions_test"), "-n", "2")
    x = pmc_expected(2)

    seen = {}

    def balanced():
        gmemd.scan()
        m = seen["m"] = gmemd.metrics()
        got = seen["got"] = {}
        for pid in (gmt, pmc):
            got[pid] = (m.get("gmem_files_created_total", vm=pid),
                        m.get("gmem_files_released_total", vm=pid),
                        sum(m.get("gmem_pages_allocated_total", vm=pid, source=s)
                            for s in ("user_fault", "guest_fault", "fallocate", "populate",
                                      "other")),
                        m.get("gmem_pages_freed_total", vm=pid), m.get("gmem_files", vm=pid))
        return all(c == r > 0 and a == f > 0 and n == 0 for c, r, a, f, n in got.values())
    try:
        wait_until(balanced, timeout=20, what="created = released, allocated = freed")
    except AssertionError:
        raise AssertionError(f"{where()}: (created, released, allocated, freed, open files) "
                             f"by vm: {seen['got']}") from None
    m = seen["m"]
    print(f"{where()}: guest_memfd_test (vm {gmt}): "
          f"{m.get('gmem_files_created_total', vm=gmt):.0f} files created and released")
    # nothing of either peer's dropped (per VM: the host-wide total is any workload's)
    assert not [v for v in (gmt, pmc) if m.has("gmem_events_dropped_total", vm=v)]

    pid = pmc
    assert m.get("gmem_files_created_total", vm=pid) == 1
    assert m.get("gmem_memslot_binds_total", vm=pid) == 1
    got = {"guest_fault": m.get("gmem_pages_allocated_total", vm=pid, source="guest_fault"),
           "fallocate": m.get("gmem_pages_allocated_total", vm=pid, source="fallocate"),
           "freed": m.get("gmem_pages_freed_total", vm=pid),
           "punch_holes": m.get("gmem_punch_holes_total", vm=pid),
           "invalidated": m.get("gmem_invalidated_bytes_total", vm=pid)}
    assert got == {k: x[k] for k in got}, (where(), got)
    for to in ("private", "shared"):
        assert m.get("gmem_conversions_total", vm=pid, to=to, result="ok") == \
            len(x["attr"][to])
        assert m.get("gmem_conversions_total", vm=pid, to=to, result="error") == 0
        check_histo(m, "gmem_conversion_seconds", pid, to, len(x["attr"][to]))
        check_histo(m, "gmem_conversion_exit_to_entry_seconds", pid, to, len(x["e2e"][to]))
    snap = gmemd.call({"cmd": "snapshot"})
    v = [v for v in snap["model"]["vms"] if v["vm"] == pid][0]
    assert v["fallocates"] == x["fallocates"]
    cr = v["conversion_requests"]
    assert (cr["requests"], cr["completed"], cr["abandoned"], cr["pending"]) == \
        (x["requests"], x["completed"], x["abandoned"], 0), cr


def test_in_place_conversion_requests_decoded():
    """LIVE: KVM_SET_MEMORY_ATTRIBUTES2 on a guest_memfd fd (in-place conversion, queued
    upstream) is decoded from the ioctl tracepoints the tracepoint tier attaches anyway. A
    kernel without it answers ENOTTY (every kernel here does): each call is a failed conversion
    of its direction, in gmem_conversions_total beside the VM fd's calls and in
    gmem_conversions_in_place_total alone, both equal to what gmem-load did. Where the
    conversion row is on the fentry tier the ioctl hooks may be gone: then the in-place series
    are absent, never partial."""
    require_live()
    d = Gmemd()
    try:
        rows = {r["event"]: r for r in d.call({"cmd": "probe"})["probe"]["events"]}
        out = run_load("--vms", "1", "--no-vcpu", "--user-touch", "2", "--convert", "2",
                       "--convert-in-place", "5")
        v = out["exit"]["vms"][0]
        pid = v["pid"]
        assert sum(r for to in v["conversions_in_place"].values() for r in to.values()) == 5
        want = {(to, res): n for to, rs in v["conversions_in_place"].items()
                for res, n in rs.items()}
        got = {}

        def seen():
            nonlocal got
            d.scan()
            m = d.metrics()
            got = {k: m.get("gmem_conversions_in_place_total", vm=pid, to=k[0], result=k[1])
                   for k in want}
            return got == want and m
        if rows["conversion"]["tier"] != "tracepoint":
            d.scan()
            if not d.metrics().has("gmem_conversions_in_place_total", vm=pid):
                return  # the fentry tier without the ioctl hooks: absent, not partial
        m = wait_until(seen, timeout=10, what=f"the in-place calls counted (got {got})")
        for to, rs in v["conversions"].items():
            for res, n in rs.items():
                assert m.get("gmem_conversions_total", vm=pid, to=to, result=res) == n, \
                    (where(), to, res)
        snap = [x for x in d.call({"cmd": "snapshot"})["model"]["vms"] if x["vm"] == pid][0]
        assert snap["conversions_in_place"] == v["conversions_in_place"]
        print(f"{where()}: in-place conversion answered {v['conversion_in_place_errno']}")
    finally:
        assert d.stop() == 0, d.output()
