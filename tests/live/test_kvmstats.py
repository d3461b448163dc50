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

from gmemtest import GMEMD, Gmemd, Load, require_live, subscribe, wait_until, where


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
        # gmemtop's batch JSON carries them per VM and per vCPU
        top = subprocess.run([os.path.join(os.path.dirname(GMEMD), "gmemtop"), "-b", "-j",
                              "-n", "1", "--socket", gmemd.socket], capture_output=True,
                             text=True, timeout=30)
        assert top.returncode == 0, top.stderr
        import json
        rows = {r["pid"]: r for r in json.loads(top.stdout.splitlines()[-1])["vms"]}
        for v in vms:
            kv = rows[v["pid"]]["kvm"]
            assert kv["vcpus"][0]["exits"] == v["kvm_stats"]["exits"]
            assert rows[v["pid"]]["totals"]["kvm_exits"] == v["kvm_stats"]["exits"]
            assert kv["pages"]["4k"] == v["kvm_stats"]["pages_4k"]
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


def test_vcpu_thread_named_with_its_guest_faults(gmemd):
    """LIVE and LAB: the thread that runs each vCPU is known from its first KVM_RUN (a
    VCPU_THREAD record): gmemd's snapshot pairs vCPU 0 with the thread gmem-load ran it on, and
    gmemtop's batch JSON puts that tid beside KVM's per-vCPU stats. With records flowing (a
    subscriber, as gmemtop's drill-down is), the guest-fault pages counted on that thread
    equal the VM's guest faults."""
    import json
    sock, f, _ = subscribe(gmemd)
    load = Load("--vms", "1", "--stats-fds", "--guest-touch", "16", "--linger", "30")
    try:
        v = load.wait_phase("done")["vms"][0]
        pid, tid = v["pid"], v["vcpu_tid"]
        assert tid > 0, v
        want = v["pages_allocated"]["guest_fault"]
        assert want >= 16, v

        def paired():
            gmemd.scan()
            vm = [x for x in gmemd.call({"cmd": "snapshot"})["model"]["vms"]
                  if x["vm"] == pid]
            t = vm[0]["vcpu_threads"] if vm else []
            return (len(t) == 1 and t[0]["vcpu"] == 0 and t[0]["tid"] == tid
                    and t[0]["guest_fault_pages"] == want and t)
        wait_until(paired, timeout=10, what=f"vm {pid}: vCPU 0 on tid {tid}, {want} pages")
        def top_vcpu():
            top = subprocess.run([os.path.join(os.path.dirname(GMEMD), "gmemtop"), "-b", "-j",
                                  "-n", "1", "--socket", gmemd.socket], capture_output=True,
                                 text=True, timeout=30)
            assert top.returncode == 0, top.stderr
            row = {r["pid"]: r for r in json.loads(top.stdout.splitlines()[-1])["vms"]}[pid]
            # KVM's stats come on gmemd's 1 s tick
            return row["kvm"] and row["kvm"]["vcpus"] and row["kvm"]["vcpus"][0]
        vc = wait_until(top_vcpu, timeout=10, what="gmemtop's row with KVM's vCPU stats")
        assert (vc["vcpu"], vc["tid"], vc["gmem_fault_pages"]) == (0, tid, want), vc
    finally:
        f.close()
        sock.close()
        load.resume()
        load.finish()


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


def test_recording_carries_kvm_stats_samples():
    """LIVE: gmemd with the default --kvm-stats; gmemtrace record subscribes to it; two VMs
    hold their stats fds and finish their work. The recording's KVM stats samples end at the
    values each VM read from its own stats fds (exits, halt_exits, io_exits summed over its
    vCPU, pages_4k/2m/1g of the VM); report -j shows them per VM, per vCPU and as the mapping
    mix; whatif puts the mix beside the policy's coverage; replay --max serves the gmem_kvm_*
    series gmemd served; jsonl names the fields;
    the Perfetto export's counter tracks per VM and per vCPU end at the same values."""
    require_live()
    import json
    import shutil
    import tempfile
    import time
    from test_gmemtrace import Recorder, Replay, gt, series
    tmp = tempfile.mkdtemp(prefix="kvmrec-test-")
    out = os.path.join(tmp, "kvm.gmtr")
    d = Gmemd()
    rec = load = None
    try:
        rec = Recorder(out, "--socket", d.socket)
        load = Load("--vms", "2", "--stats-fds", "--user-touch", "8", "--guest-touch", "16",
                    "--linger", "30")
        vms = load.wait_phase("done")["vms"]
        pids = [str(v["pid"]) for v in vms]
        ours = lambda n, l: n.startswith("gmem_kvm_") and l.get("vm") in pids

        def settled():
            m = d.metrics()
            return all(m.get("gmem_kvm_exits_total", vm=v["pid"]) == v["kvm_stats"]["exits"]
                       and m.get("gmem_kvm_pages_4k", vm=v["pid"]) ==
                       v["kvm_stats"]["pages_4k"] for v in vms) and m
        live = series(wait_until(settled, timeout=10, what="gmemd's KVM stats"), ours)
        time.sleep(2.5)  # two more ticks: their samples are in the stream
        assert series(d.metrics(), ours) == live
        assert rec.stop() == 0, rec.output()
        rec = None
        load.resume()
        load.finish()
    finally:
        if rec:
            rec.stop()
        if load and load.proc.poll() is None:
            load.proc.kill()
        assert d.stop() == 0, d.output()
    try:
        rep = json.loads(gt("report", "-j", out).stdout)
        by_vm = {k["vm"]: k for k in rep["kvm_stats"]}
        assert rep["kvm_stats_bad_records"] == 0
        for v in vms:
            truth, k = v["kvm_stats"], by_vm[v["pid"]]
            assert k["samples"] > 0
            for name in ("exits", "halt_exits", "io_exits"):
                assert k["vcpu_totals"][name] == truth[name], (name, k, truth)
            assert k["vcpus"][0]["vcpu"] == 0
            assert k["vcpus"][0]["stats"]["exits"] == truth["exits"]
            # the per-vCPU set a recording always carries
            assert {"exits", "halt_exits", "pf_taken", "pf_fixed", "halt_wait_ns"} <= \
                set(k["vcpus"][0]["stats"])
            for ps in ("4k", "2m", "1g"):
                assert k["vm_stats"][f"pages_{ps}"] == truth[f"pages_{ps}"]
                mix = k["mapping"][f"pages_{ps}"]
                assert mix["last"] == truth[f"pages_{ps}"]
                assert mix["min"] <= mix["first"] <= mix["max"] and mix["samples"] >= 2
        text = gt("report", out).stdout
        assert "KVM STATS" in text and "mapping mix" in text, text
        # what-if puts the recorded mix, summed over the VMs, beside the policies' coverage
        wi = json.loads(gt("whatif", out, "-p", "split4k", "-j").stdout)["recorded_mapping"]
        for ps in ("4k", "2m", "1g"):
            assert wi[f"pages_{ps}"]["last"] == sum(v["kvm_stats"][f"pages_{ps}"] for v in vms)
        assert "KVM (rec.)" in gt("whatif", out, "-p", "split4k").stdout
        r = Replay(out, "--max")
        try:
            assert series(r.finished(), ours) == live
        finally:
            assert r.stop() == 0
        lines = [json.loads(x) for x in gt("export", out, "--format", "jsonl").stdout.split("\n")
                 if '"kvm_stat' in x]
        desc = [x for x in lines if x["kind"] == "kvm_stat_desc"]
        samples = [x for x in lines if x["kind"] == "kvm_stat"]
        assert {x["stat"] for x in desc} >= {"exits", "pages_2m", "halt_wait_ns"}
        assert all({"stat_id", "value", "scope"} <= set(x) for x in samples), samples[:3]
        assert all(("vcpu" in x) == (x["scope"] == "vcpu") for x in samples), samples[:3]
        # Perfetto: a counter track per VM stat and per vCPU stat in the VM's process
        pf = os.path.join(tmp, "kvm.json")
        gt("export", out, "--format", "perfetto", "-o", pf)
        with open(pf) as f:
            evs = [e for e in json.load(f)["traceEvents"] if e.get("cat") == "kvm"]
        for v in vms:
            last = {e["name"]: e["args"] for e in evs if e["pid"] == v["pid"]}
            assert last["vCPU 0 exits"] == {"exits": v["kvm_stats"]["exits"]}, last
            assert last["KVM pages_2m"] == {"pages_2m": v["kvm_stats"]["pages_2m"]}, last
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_exited_vms_stats_fds_are_closed_over_many_cycles():
    """LIVE: VMs that exit have their stats fds closed: over 1,000 VM cycles (20 rounds of 50
    VMs, each VM holding a VM and a vCPU stats fd until gmemd has copied both, which each round
    checks), gmemd's open fd count (/proc/PID/fd) comes back to what it was after the first
    round, no stats fd stays, and the exited VMs' series are gone. About 40 s on this 2-core
    host: a VM must live through gmemd's one-second stats tick to be copied at all."""
    require_live()
    d = Gmemd()
    rounds, per = 20, 50
    try:
        baseline = None
        for i in range(rounds):
            load = Load("--vms", str(per), "--stats-fds", "--guest-touch", "1", "--linger", "30")
            try:
                pids = {v["pid"] for v in load.wait_phase("done")["vms"]}
                # every VM's two fds copied: the cycle really went through gmemd
                wait_until(lambda: len(held_stats_fds(d.proc.pid)) == 2 * per, timeout=10,
                           what=f"round {i}: gmemd holds the {2 * per} stats fds")
                load.resume()
                load.finish()
            finally:
                if load.proc.poll() is None:
                    load.proc.kill()
            wait_until(lambda: not held_stats_fds(d.proc.pid), timeout=10,
                       what=f"round {i}: the exited VMs' stats fds closed")
            m = d.metrics()
            assert not any(m.has("gmem_kvm_exits_total", vm=p) for p in pids)
            if baseline is None:
                baseline = open_fds(d.proc.pid)
        assert open_fds(d.proc.pid) <= baseline, (baseline, os.listdir(f"/proc/{d.proc.pid}/fd"))
        assert d.metrics().get("gmemscope_kvm_stats_errors_total") == 0
    finally:
        assert d.stop() == 0, d.output()


# A seccomp filter that makes ioctl(fd, KVM_GET_STATS_FD, ...) fail with ENOTTY, as a kernel
# before 5.14 answers it, and allows every other syscall: classic BPF over seccomp_data.
KVM_GET_STATS_FD = 0xAECE


def refuse_stats_fd():
    import ctypes
    import errno
    import struct
    AUDIT_ARCH_X86_64, NR_IOCTL = 0xC000003E, 16
    RET_ERRNO, RET_ALLOW = 0x00050000, 0x7FFF0000
    ld, jeq, ret = 0x20, 0x15, 0x06
    insns = [(ld, 0, 0, 4), (jeq, 0, 5, AUDIT_ARCH_X86_64), (ld, 0, 0, 0),
             (jeq, 0, 3, NR_IOCTL), (ld, 0, 0, 24), (jeq, 0, 1, KVM_GET_STATS_FD),
             (ret, 0, 0, RET_ERRNO | errno.ENOTTY), (ret, 0, 0, RET_ALLOW)]
    code = b"".join(struct.pack("<HBBI", *i) for i in insns)
    buf = ctypes.create_string_buffer(code)

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    prog = Prog(len(insns), ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) or \
            libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0):
        os._exit(97)


@pytest.mark.parametrize("refused", [False, True])
def test_probe_reports_kvm_binary_stats(refused):
    """LIVE: gmemd --probe has a line (and -j a kvm_stats member) for KVM binary stats, found
    by creating a VM and asking for its stats fd. Under a seccomp filter that refuses
    KVM_GET_STATS_FD with ENOTTY (what a kernel without binary stats answers) it reports the
    gap and why, and the rest of the table is as without it; unfiltered, this host has them."""
    require_live()
    import json
    pre = refuse_stats_fd if refused else None
    human = subprocess.run([GMEMD, "--probe"], capture_output=True, text=True, timeout=60,
                           preexec_fn=pre)
    js = subprocess.run([GMEMD, "--probe", "-j"], capture_output=True, text=True, timeout=60,
                        preexec_fn=pre)
    assert human.returncode == 0 and js.returncode == 0, (human.stderr, js.stderr)
    k = json.loads(js.stdout)["kvm_stats"]
    line = [x for x in human.stdout.splitlines() if x.startswith("kvm binary stats:")]
    assert len(line) == 1, human.stdout
    if refused:
        assert k["state"] == "unavailable", k
        assert k["reason"].startswith(
            "KVM_GET_STATS_FD on a test VM: Inappropriate ioctl for device"), k
        assert line[0] == f"kvm binary stats: unavailable: {k['reason']}"
        rows = {r["event"]: r["state"] for r in json.loads(js.stdout)["events"]}
        assert rows["page_alloc"] == "live" and rows["create"] == "live", rows
    else:
        assert k["state"] == "available", k
        assert k["reason"].endswith(" VM stats") and line[0].startswith(
            "kvm binary stats: available: KVM_GET_STATS_FD on a test VM: ")


def test_in_process_recording_carries_kvm_stats():
    """LIVE: without gmemd, gmemtrace record --in-process reads the stats fds of the VMs its
    own probes find, once a second, and records the same samples: the report's last values
    equal what the VM read from its own stats fds. --kvm-stats without --in-process is a usage
    error (gmemd decides what it sends)."""
    require_live()
    import json
    import shutil
    import tempfile
    import time
    from test_gmemtrace import GMEMTRACE, Recorder, gt
    p = subprocess.run([GMEMTRACE, "record", "--kvm-stats", "all", "-o", "/nonexistent/x"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 64 and "--kvm-stats needs --in-process" in p.stderr, p.stderr
    tmp = tempfile.mkdtemp(prefix="kvmrec-inproc-")
    out = os.path.join(tmp, "k.gmtr")
    rec = Recorder(out, "--in-process", "--scan-interval", "0.5", "--kvm-stats", "all")
    load = None
    try:
        load = Load("--vms", "1", "--stats-fds", "--guest-touch", "8", "--linger", "30")
        v = load.wait_phase("done")["vms"][0]
        time.sleep(3)  # the VM found, then two ticks of its final values
        assert rec.stop() == 0, rec.output()
        rec = None
        load.resume()
        load.finish()
        rep = json.loads(gt("report", "-j", out).stdout)
        k = {x["vm"]: x for x in rep["kvm_stats"]}[v["pid"]]
        for name in ("exits", "halt_exits", "io_exits"):
            assert k["vcpu_totals"][name] == v["kvm_stats"][name], (name, k)
        assert k["vm_stats"]["pages_2m"] == v["kvm_stats"]["pages_2m"]
        assert "mmu_cache_miss" in k["vm_stats"]  # --kvm-stats all: beyond the default set
    finally:
        if rec:
            rec.stop()
        if load and load.proc.poll() is None:
            load.proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def test_probe_says_whether_this_kernel_has_guest_memfd():
    """LIVE (both answers: this host's kernel may lack guest_memfd, the lab's kernels have
    it): gmemd --probe has a guest_memfd line and -j a guest_memfd member, which agree with
    KVM_CHECK_EXTENSION(KVM_CAP_GUEST_MEMFD) asked here; where it is absent, gmemd says so
    when it starts, rather than serving an empty model in silence."""
    require_live()
    import fcntl
    import json
    kvm = os.open("/dev/kvm", os.O_RDWR)
    try:
        cap = fcntl.ioctl(kvm, 0xAE03, 234)  # KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD
    finally:
        os.close(kvm)
    human = subprocess.run([GMEMD, "--probe"], capture_output=True, text=True, timeout=60)
    js = subprocess.run([GMEMD, "--probe", "-j"], capture_output=True, text=True, timeout=60)
    assert human.returncode == 0 and js.returncode == 0, (human.stderr, js.stderr)
    g = json.loads(js.stdout)["guest_memfd"]
    line = [x for x in human.stdout.splitlines() if x.startswith("guest_memfd:")]
    assert line == [f"guest_memfd: {g['state']}: {g['reason']}"], (line, g)
    if cap > 0:
        assert g["state"] == "available" and g["reason"].startswith(
            f"KVM_CAP_GUEST_MEMFD {cap}, flags "), g
    else:
        assert g["state"] == "absent" and g["reason"].startswith("KVM_CAP_GUEST_MEMFD is 0"), g
    d = Gmemd()
    try:
        warned = "gmemd: warning: KVM_CAP_GUEST_MEMFD is 0" in d.output()
    finally:
        assert d.stop() == 0
    assert warned == (cap <= 0), d.output()
    print(f"{where()}: KVM_CAP_GUEST_MEMFD {cap}: {line[0]}")
