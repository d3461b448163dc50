# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""gmemtrace: recordings you can trust, replay, report and export.

LIVE tests record the real probes on this kernel while gmem-load drives real VMs, and hold
every number to gmem-load's ground truth and to what gmemd's /metrics said live. CONSTRUCTED
tests use the scenarios (gmemtrace synth) for what this kernel cannot produce: conversions,
SNP RMP and TDX transitions, huge-page splits; their expected numbers are computed here, from
the scenario definitions (tests/scenarios/README.md), independently of the C that writes them.
Bad-input tests need nothing but the binary.
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request

import pytest

from gmemtest import (BIN, GMEMD, TIER_ARGS, Gmemd, Load, Metrics, exact_or_missed, free_port,
                      require_live, run_load, stop_process, truth_counters, wait_until)

GMEMTRACE = os.path.join(BIN, "gmemtrace")
PAGE = 4096
SZ_2M = 2 << 20


def gt(*args, timeout=120, check=True):
    p = subprocess.run([GMEMTRACE, *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    if check:
        assert p.returncode == 0, f"gmemtrace {' '.join(map(str, args))}: {p.stderr}"
    return p


def report(path, *extra):
    return json.loads(gt("report", "-j", path, *extra).stdout)


def vm_of(rep, pid):
    for v in rep["model"]["vms"]:
        if v["vm"] == pid:
            return v
    raise AssertionError(f"vm {pid} not in the report: {[v['vm'] for v in rep['model']['vms']]}")


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="gmemtrace-test-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Recorder:
    """gmemtrace record in the background, started once it says it is recording."""

    def __init__(self, out, *args):
        self.out = out
        self.log = open(out + ".log", "w+")
        args = [*map(str, args), *(TIER_ARGS if "--in-process" in args else [])]
        self.proc = subprocess.Popen([GMEMTRACE, "record", "-o", out, *args],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: self.proc.poll() is not None or "recording to" in self.output(),
                       timeout=30, what="gmemtrace record started")
        except AssertionError:
            self.stop(signal.SIGKILL)
            raise
        assert self.proc.poll() is None, f"record exited: {self.output()}"

    def output(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def stop(self, sig=signal.SIGINT):
        return stop_process(self.proc, sig, timeout=30)


class Replay:
    """gmemtrace replay on a free port and a private socket."""

    def __init__(self, path, *args, port=None):
        self.dir = tempfile.mkdtemp(prefix="gmemtrace-replay-")
        self.socket = os.path.join(self.dir, "replay.sock")
        self.port = port or free_port()
        self.log = open(os.path.join(self.dir, "replay.log"), "w+")
        self.proc = subprocess.Popen([GMEMTRACE, "replay", path, "--listen",
                                      f"127.0.0.1:{self.port}", "--socket", self.socket,
                                      *map(str, args)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_until(lambda: self.proc.poll() is not None or "ready" in self.output(),
                   timeout=30, what="replay ready")

    def output(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            return Metrics(r.read().decode())

    def finished(self, timeout=60):
        return wait_until(lambda: (lambda m: m if m.get("gmemtrace_replay_finished") == 1
                                   else None)(self.metrics()), timeout=timeout,
                          what="replay finished")

    def call(self, obj):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.socket)
            s.sendall((json.dumps(obj) + "\n").encode())
            return json.loads(s.makefile().readline())

    def stop(self, sig=signal.SIGTERM):
        rc = stop_process(self.proc, sig)
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc


def truth(v, minus=None):
    """gmem-load's counts for one VM, in the report's vocabulary (minus an earlier phase)."""
    return truth_counters(v, minus)


class ReportCounts:
    """A report's loss counters with Metrics.get's names, for exact_or_missed: every record
    the recording says it lost (ring drops and skipped probe runs), and each VM's drops."""

    def __init__(self, rep):
        self.rep = rep

    def get(self, name, vm=None, **_):
        if name == "gmemscope_probe_misses_total":
            return self.rep["model"]["totals"]["events_dropped"]
        if name == "gmem_events_dropped_total":
            return sum(vm_of(self.rep, vm).get("events_dropped", {}).values())
        return 0


def reported(v):
    """The same counts from a report's VM."""
    return {
        "files_created": v["files_created"],
        "files_released": v["files_released"],
        "memslot_binds": v["memslot_binds"],
        "pages_allocated": dict(v["pages_allocated"]),
        "pages_freed": v["pages_freed"],
        "punch_holes": v["punch_holes"],
        "invalidated_bytes": v["invalidated_bytes"],
        "conversions": v["conversions"],
    }


def series(m, keep):
    """{(name, labels): value} of the samples keep() accepts."""
    return {k: v for k, v in m.samples.items() if keep(k[0], dict(k[1]))}


# Families the exporter computes from the model (docs/design.md's contract and the event totals);
# the rest of /metrics is each server's own health (scrapes, uptime, scans, replay progress).
MODEL_FAMILIES = ("gmem_", "gmemscope_events_total", "gmemscope_events_dropped_total",
                  "gmemscope_probe_info", "gmemscope_file_series_capped")


def model_series(name):
    # gmem_vm_info included: the recorder writes each VM's name (VM_NAME) as gmemd reads it
    return name.startswith(MODEL_FAMILIES)


# ---- LIVE: a recording replays to what gmemd said -------------------------------------------


def test_recording_replays_to_the_live_metrics(tmp):
    """LIVE: gmemd runs; gmemtrace record subscribes to it; gmem-load runs a VM with every
    allocation source, punches, refused conversions and secretmem churn. The recording,
    replayed with --max, gives the /metrics gmemd gave live: every series of the VM exactly
    (counters, per-file gauges, histogram buckets) and equal to gmem-load's ground truth;
    host-wide counters as what gmemd counted while recording (live minus the snapshot taken at
    subscribe, stored in the file). Other tests may run VMs on this host meanwhile: host-wide
    counters are then held between gmemd's counts just before and just after the recorder
    stopped (equal when the host was quiet), host-wide gauges compared when they did not
    move."""
    require_live()
    d = Gmemd()
    rec = None
    try:
        out = os.path.join(tmp, "live.gmtr")
        rec = Recorder(out, "--socket", d.socket)
        final = run_load("--vms", "1", "--files", "2", "--file-size", "4M", "--user-touch",
                         "24", "--guest-touch", "40", "--fallocate", "32", "--punch", "3",
                         "--punch-size", "16K", "--convert", "4", "--secret-pages", "12")
        v = final["exit"]["vms"][0]
        pid = v["pid"]

        def settled():
            d.scan()
            m = d.metrics()
            return m.get("gmem_files_released_total", vm=pid) == 2 and m
        wait_until(settled, timeout=15, what="the VM's files released")
        # best effort: wait for two scrapes a DirectMap sample period apart to agree
        prev = None
        for _ in range(6):
            d.scan()
            cur = series(d.metrics(), lambda n, l: model_series(n))
            if cur == prev:
                break
            prev = cur
            time.sleep(1.2)
        before = d.metrics()
        assert rec.stop() == 0, rec.output()
        after = d.metrics()
    finally:
        if rec:
            rec.stop(signal.SIGKILL)
        assert d.stop() == 0

    info = json.loads(gt("info", "-j", out).stdout)
    assert info["complete"] and info["error"] == ""
    meta = info["meta"]
    assert meta["source"]["kind"] == "gmemd" and meta["source"]["server"] == "gmemd"
    start = meta["source"]["at_subscribe"]
    preamble = meta["preamble"]["records"]

    r = Replay(out, "--max")
    try:
        rm = r.finished()
        hello = r.call({"cmd": "hello"})
        assert hello["server"] == "gmemtrace replay" and hello["live"] is False
    finally:
        assert r.stop() == 0

    # every series of the VM, exactly: counters, per-file gauges, histogram buckets
    ours = lambda n, l: model_series(n) and l.get("vm") == str(pid)
    want = series(before, ours)
    assert want, "gmemd exported nothing for the VM"
    assert series(after, ours) == want
    assert series(rm, ours) == want

    # host-wide counters: what gmemd counted from subscribe to the recorder's stop
    def bracket(got, name, base, **labels):
        lo, hi = before.get(name, **labels) - base, after.get(name, **labels) - base
        assert lo <= got <= hi, (name, labels, lo, got, hi)
    start_dm = start["direct_map"]
    for owner in ("gmem", "secretmem"):
        bracket(rm.get("gmem_direct_map_removals_total", owner=owner),
                "gmem_direct_map_removals_total", start_dm["removals_pages"][owner],
                owner=owner)
        bracket(rm.get("gmem_direct_map_restores_total", owner=owner),
                "gmem_direct_map_restores_total", start_dm["restores_pages"][owner],
                owner=owner)
    bracket(rm.get("gmemscope_events_total") - preamble, "gmemscope_events_total",
            start["totals"]["events"])
    bracket(rm.get("gmemscope_events_dropped_total"), "gmemscope_events_dropped_total",
            start["totals"]["events_dropped"])
    # nothing of ours dropped (host-wide drops could be any other workload's)
    assert not rm.has("gmem_events_dropped_total", vm=v["pid"])
    for ps in ("4k", "2M", "1G"):
        if before.get("gmem_host_direct_map_bytes", page_size=ps) == \
                after.get("gmem_host_direct_map_bytes", page_size=ps):
            assert rm.get("gmem_host_direct_map_bytes", page_size=ps) == \
                before.get("gmem_host_direct_map_bytes", page_size=ps)
    assert series(rm, lambda n, l: n == "gmemscope_probe_info") == \
        series(before, lambda n, l: n == "gmemscope_probe_info")
    # and the ground truth, through the report as well
    assert reported(vm_of(report(out), pid)) == truth(v)
    assert rm.get("gmem_pages_allocated_total", vm=pid, source="guest_fault") == \
        v["pages_allocated"]["guest_fault"] > 0
    assert rm.get("gmem_direct_map_removals_total", owner="secretmem") >= 12


def test_in_process_recording_matches_ground_truth(tmp):
    """LIVE: without gmemd, gmemtrace record loads the probes itself; two VMs, one exits
    early: the report of the recording equals gmem-load's counts per VM."""
    require_live()
    out = os.path.join(tmp, "inproc.gmtr")
    rec = Recorder(out, "--in-process", "--scan-interval", "0.5")
    try:
        final = run_load("--vms", "2", "--files", "2", "--user-touch", "8", "--guest-touch",
                         "12", "--fallocate", "6", "--punch", "2", "--convert", "2",
                         "--exit-early", "1")
        # the releases come from a liveness scan, or (fentry) from kvm_gmem_release, which
        # for a process that exited runs later from a workqueue (delayed fput; slow under TCG)
        time.sleep(4)
    finally:
        assert rec.stop(signal.SIGTERM) == 0, rec.output()
    meta = json.loads(gt("info", "-j", out).stdout)["meta"]
    assert meta["source"]["kind"] == "in-process"
    assert {e["event"] for e in meta["probe"]["events"]} >= {"create", "page_alloc"}
    rep = report(out)
    assert rep["recording"]["complete"]
    for v in final["exit"]["vms"]:
        # exact, or short only by losses the recording counted (a probe run the kernel
        # skipped on a preemptible kernel), never above the truth
        got = reported(vm_of(rep, v["pid"]))
        assert exact_or_missed(ReportCounts(rep), got, truth(v), v["pid"]), (got, truth(v))
        if got != truth(v):
            continue
        # nothing of these VMs lost (per VM: the host-wide total also holds probe runs the
        # kernel skipped for anyone else, which a preemptible kernel makes now and then)
        assert not vm_of(rep, v["pid"]).get("events_dropped"), vm_of(rep, v["pid"])
    print("host-wide events dropped:", rep["model"]["totals"]["events_dropped"])


def test_sigkill_mid_run_reads_up_to_the_last_chunk(tmp):
    """LIVE: the recorder is SIGKILLed during churn: the file has no trailer, every reader
    says so in one line and exits 1, and what it read - all chunks written, a second's worth
    each - reports, exports and replays."""
    require_live()
    out = os.path.join(tmp, "killed.gmtr")
    rec = Recorder(out, "--in-process")
    load = Load("--vms", "1", "--churn", "--duration", "4", "--user-touch", "16",
                "--fallocate", "16", "--no-vcpu")
    try:
        time.sleep(3.5)
        rec.stop(signal.SIGKILL)
        assert rec.proc.returncode == -signal.SIGKILL
    finally:
        load.finish()
    p = gt("info", "-j", out, check=False)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"gmemtrace: {out}: chunk ")
    info = json.loads(p.stdout)
    assert not info["complete"]
    assert info["chunks"] >= 2 and info["records"] > 10000
    assert f"read {info['chunks']} chunks ({info['records']} events) before it" in lines[0]
    # a kill lands between two whole writes: the file ends where a chunk ended
    assert "ends without a trailer" in lines[0] or "cut short" in lines[0]
    rp = gt("report", "-j", out, check=False)
    assert rp.returncode == 1
    assert json.loads(rp.stdout)["recording"]["records"] == info["records"]
    cat = gt("cat", out, check=False)
    assert cat.returncode == 1 and len(cat.stdout.splitlines()) == info["records"]
    r = Replay(out, "--max")
    try:
        m = r.finished()
        assert m.get("gmemtrace_replay_records_total") == info["records"]
        assert "serving what was read" in r.output()
    finally:
        r.stop()


def test_sigterm_and_sighup_end_the_file_cleanly(tmp):
    """LIVE: SIGTERM, and SIGHUP when not rotating, finish the file: trailer written."""
    require_live()
    for sig, why in ((signal.SIGTERM, "SIGTERM"), (signal.SIGHUP, "SIGHUP")):
        out = os.path.join(tmp, f"{why}.gmtr")
        rec = Recorder(out, "--in-process")
        run_load("--vms", "1", "--user-touch", "4")
        assert rec.stop(sig) == 0, rec.output()
        info = json.loads(gt("info", "-j", out).stdout)
        assert info["complete"] and info["end"]["reason"] == why


def test_duration_and_vm_filter(tmp):
    """LIVE: two VMs exist (paused) before recording starts; --vm keeps one of them and the
    host-wide records; --duration ends the file. The recording holds that VM's files as
    discovered and counts exactly what it did afterwards; the other VM is absent."""
    require_live()
    load = Load("--vms", "2", "--files", "2", "--user-touch", "6", "--fallocate", "4",
                "--punch", "1", "--pause")
    paused = load.wait_phase("paused")
    keep, other = paused["vms"][0], paused["vms"][1]
    out = os.path.join(tmp, "filtered.gmtr")
    rec = Recorder(out, "--in-process", "--vm", keep["pid"], "--duration", "6",
                   "--scan-interval", "0.5")
    load.resume()
    final = {v["pid"]: v for v in load.finish()["vms"]}
    rec.proc.wait(timeout=30)
    assert rec.proc.returncode == 0, rec.output()
    info = json.loads(gt("info", "-j", out).stdout)
    assert info["complete"] and info["end"]["reason"] == "duration"
    assert info["meta"]["recording"]["vm_filter"] == [keep["pid"]]
    assert info["end"]["filtered_total"] > 0
    rep = report(out)
    assert other["pid"] not in [v["vm"] for v in rep["model"]["vms"]]
    v = vm_of(rep, keep["pid"])
    want = truth(final[keep["pid"]], minus=keep)
    want["files_created"] = 0
    assert reported(v) == want
    assert v["files_discovered"] == 2


def test_rotation_keeps_the_newest_files_each_complete(tmp):
    """LIVE: --rotate-size with --max-files 3 during churn: only the newest three files
    remain, numbered in sequence, each complete and self-describing, each (after the first)
    opening with the files live at the cut; SIGHUP rotates on demand."""
    require_live()
    out = os.path.join(tmp, "ring.gmtr")
    rec = Recorder(out, "--in-process", "--rotate-size", "64K", "--max-files", "3",
                   "--chunk-records", "2000")
    load = Load("--vms", "1", "--churn", "--duration", "3", "--user-touch", "16",
                "--fallocate", "16", "--no-vcpu", "--linger", "30")
    try:
        ino = load.wait_phase("done")["vms"][0]["files"][0]["ino"]
        time.sleep(1.5)
        n_before = len([f for f in os.listdir(tmp) if f.startswith("ring.gmtr.") and
                        not f.endswith(".log")])
        rec.proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert rec.stop() == 0, rec.output()
    finally:
        load.resume()
        load.finish()
    files = sorted((int(f.rsplit(".", 1)[1]), f) for f in os.listdir(tmp)
                   if f.startswith("ring.gmtr.") and not f.endswith(".log"))
    assert len(files) == 3 and n_before == 3
    seqs = [s for s, _ in files]
    assert seqs == list(range(seqs[0], seqs[0] + 3)) and seqs[0] >= 3
    for s, f in files:
        info = json.loads(gt("info", "-j", os.path.join(tmp, f)).stdout)
        assert info["complete"], f
        meta = info["meta"]
        assert meta["recording"]["sequence"] == s
        assert meta["recording"]["previous"] == f"{out}.{s - 1}"
        # it opens with the files live at the cut (other VMs on this host included): the
        # churn VM's file, live throughout, among them
        lines = gt("cat", os.path.join(tmp, f)).stdout.splitlines()
        carried = lines[:meta["preamble"]["files"]]
        assert carried and all("file_discover" in l and "[synth]" in l for l in carried)
        assert any(f" ino={ino} " in l for l in carried)
    last = json.loads(gt("info", "-j", os.path.join(tmp, files[-1][1])).stdout)
    assert last["end"]["reason"] == "SIGINT"
    assert json.loads(gt("info", "-j", os.path.join(tmp, files[-2][1])).stdout)["end"][
        "next"] == os.path.join(tmp, files[-1][1])


def test_report_reads_a_rotated_set_as_one_recording(tmp):
    """LIVE: a recording rotated into several files reports, given all of them in any order
    (as a shell glob hands them over), as the one recording it is: the VM's counts equal
    gmem-load's truth, though its life spans the files. A file from another recording, or a
    part given twice, is refused with a clear error; a missing part is reported as a gap."""
    require_live()
    out = os.path.join(tmp, "ring.gmtr")
    rec = Recorder(out, "--in-process", "--rotate-size", "64K", "--chunk-records", "2000")
    try:
        v = run_load("--vms", "1", "--churn", "--duration", "2", "--user-touch", "16",
                     "--fallocate", "16", "--punch", "4", "--no-vcpu")["exit"]["vms"][0]
        time.sleep(2.5)  # the release scan and the frees after it
    finally:
        assert rec.stop() == 0, rec.output()
    parts = sorted((os.path.join(tmp, f) for f in os.listdir(tmp)
                    if f.startswith("ring.gmtr.") and not f.endswith(".log")),
                   key=lambda f: int(f.rsplit(".", 1)[1]))
    assert len(parts) >= 3, parts
    shuffled = parts[1:] + parts[:1]
    rep = report(*shuffled)
    assert [f["path"] for f in rep["recording"]["files"]] == parts
    assert [f["sequence"] for f in rep["recording"]["files"]] == list(range(len(parts)))
    got = reported(vm_of(rep, v["pid"]))
    assert exact_or_missed(ReportCounts(rep), got, truth(v), v["pid"]), (got, truth(v))
    text = gt("report", *shuffled).stdout
    assert f"a rotated set of {len(parts)} files (parts 0 to {len(parts) - 1})" in text
    # one file alone is a part of the story: the VM's create is in the first file only
    assert vm_of(report(parts[0]), v["pid"])["files_created"] == 1
    # refused: a part twice, a file of another recording
    dup = gt("report", parts[0], parts[1], parts[1], check=False)
    assert dup.returncode == 1 and "are the same part" in dup.stderr, dup.stderr
    other = os.path.join(tmp, "other.gmtr")
    gt("scenario", "snp-boot", "-o", other)
    mixed = gt("report", parts[0], other, check=False)
    assert mixed.returncode == 1 and "not part of a rotated set" in mixed.stderr, mixed.stderr
    gap = gt("report", parts[0], parts[2])
    assert "parts 1 to 1 of the set are missing" in gap.stderr


def test_recordings_carry_vm_names(tmp):
    """LIVE: a recording names its VMs as gmemd does (the VMM's comm here: gmem-load run
    through a link called db01-vmm), through gmemd and in-process; report, report -j,
    replay's gmem_vm_info and Perfetto's process names show the name, not only the pid.
    Names come from /proc when gmemd (or the in-process recorder) first reads one of the
    VM's records, so the VM lingers a moment."""
    require_live()
    link = os.path.join(tmp, "db01-vmm")
    os.symlink(os.path.join(BIN, "gmem-load"), link)
    for how in ("gmemd", "in-process"):
        out = os.path.join(tmp, f"{how}.gmtr")
        d = Gmemd() if how == "gmemd" else None
        rec = (Recorder(out, "-s", d.socket) if d else Recorder(out, "--in-process"))
        try:
            # a VM that lives a moment: one gone before its first record is read keeps
            # no name (the probes do not carry one)
            ld = Load("--vms", "1", "--user-touch", "4", "--no-vcpu", "--linger", "30",
                      exe=link)
            pid = ld.wait_phase("done")["vms"][0]["pid"]
            time.sleep(0.5)
            ld.resume()
            ld.finish()
            time.sleep(1.5)
        finally:
            assert rec.stop() == 0, rec.output()
            if d:
                assert d.stop() == 0
        assert vm_of(report(out), pid)["name"] == "db01-vmm", how
        assert f"VM {pid}  db01-vmm" in gt("report", out).stdout, how
        cat = gt("cat", out, "--kind", "vm_name").stdout
        assert f"vm {pid} " in cat and "name=db01-vmm" in cat, cat
        trace = os.path.join(tmp, f"{how}.json")
        gt("export", out, "--format", "perfetto", "-o", trace)
        with open(trace) as f:
            doc = json.load(f)
        events = doc["traceEvents"] if isinstance(doc, dict) else doc
        names = [e["args"]["name"] for e in events
                 if e.get("name") == "process_name" and e.get("pid") == pid]
        assert names and names[-1] == f"db01-vmm (VM {pid})", names
        r = Replay(out, "--max")
        try:
            m = r.finished()
            info = [dict(ls).get("name") for (n, ls) in m.samples
                    if n == "gmem_vm_info" and dict(ls).get("vm") == str(pid)]
            assert info == ["db01-vmm"], (how, info)
        finally:
            assert r.stop() == 0


def test_features_is_gmemd_probe():
    """LIVE: gmemtrace features prints gmemd --probe's table."""
    require_live()
    a = json.loads(gt("features", "-j").stdout)
    b = json.loads(subprocess.run([GMEMD, "--probe", "-j"], capture_output=True, text=True,
                                  timeout=60).stdout)
    strip = lambda t: [(e["event"], e["tier"], e["state"]) for e in t["events"]]
    assert strip(a) == strip(b) and a["fentry_permitted"] == b["fentry_permitted"]
    human = gt("features").stdout
    assert "EVENT" in human and "page_alloc" in human


# ---- CONSTRUCTED: the scenarios -------------------------------------------------------------
# Expected numbers from the scenario definitions (tests/scenarios/README.md), computed here.

GUEST_NS, FAULT_NS, UCALL_NS, HANDLER_NS = 2000, 1500, 3000, 2500


def falloc_ns(pages):
    return 1000 + 200 * pages


def punch_ns(pages):
    return 1000 + 100 * pages


def attr_ns(pages):
    return 1500 + 30 * pages


def pmc_expected(vcpus):
    """private_mem_conversions_test, step by step as its guest_code() runs, per vCPU."""
    PAGES, STRIDE = 513, 4 << 20
    ranges = [(0, PAGE), (0, SZ_2M), (PAGE, PAGE), (PAGE, SZ_2M), (SZ_2M, PAGE)]
    SET, SHARED, FALLOC = 1, 2, 4
    x = {"requests": 0, "completed": 0, "abandoned": 0, "attr": {"private": [], "shared": []},
         "e2e": {"private": [], "shared": []}, "punch_holes": 0, "fallocates": 0,
         "invalidated": 0, "fallocated": 0, "guest_fault": 0, "fallocate": 0, "freed": 0}
    for _ in range(vcpus):
        pop, priv = [False] * PAGES, [False] * PAGES

        def fallocate(off, size, punch):
            changed = 0
            for p in range(off // PAGE, (off + size) // PAGE):
                if pop[p] == punch:
                    pop[p] = not punch
                    changed += 1
            if punch:
                x["freed"] += changed
                x["punch_holes"] += 1
                x["invalidated"] += size
                return punch_ns(changed)
            x["fallocate"] += changed
            x["fallocates"] += 1
            x["fallocated"] += size
            return falloc_ns(changed)

        def hypercall(off, size, flags):
            x["requests"] += 1
            dur = fallocate(off, size, bool(flags & SHARED)) if flags & FALLOC else 0
            if flags & SET:
                to = "shared" if flags & SHARED else "private"
                lat = attr_ns(size // PAGE)
                x["attr"][to].append(lat)
                for p in range(off // PAGE, (off + size) // PAGE):
                    priv[p] = not (flags & SHARED)
                # the selftest's flags lack KVM_MAP_GPA_RANGE_ENCRYPTED: every request
                # decodes as "to shared", but end to end lands under the direction the
                # VMM converted to, as the kernel part does
                x["e2e"][to].append(dur + lat + HANDLER_NS)
                x["completed"] += 1
            else:
                x["abandoned"] += 1

        def touch(off, size):
            for p in range(off // PAGE, (off + size) // PAGE):
                if priv[p] and not pop[p]:
                    pop[p] = True
                    x["guest_fault"] += 1

        full = PAGES * PAGE
        for do_falloc in (False, True):          # guest_test_explicit_conversion
            fa = FALLOC if do_falloc else 0
            touch(0, full)
            for off, size in ranges:
                touch(off, size)
                hypercall(off, size, SET | fa)
                if size > PAGE:
                    touch(off, PAGE)
                else:
                    touch(off, size)
                    for j in range(0, size, PAGE):
                        if (j // PAGE) & 1:
                            hypercall(off + j, PAGE, SET | SHARED | fa)
                            touch(off + j, PAGE)
                hypercall(off, size, SET | SHARED | fa)
                touch(off, size)
                hypercall(0, full, SET | SHARED | FALLOC)
        for precise in (False, True):            # guest_test_punch_hole
            hypercall(0, full, SET)
            for off, size in ranges:
                hypercall(0, full, SHARED | FALLOC)
                touch(*((off, size) if precise else (0, full)))
                hypercall(off, size, SHARED | FALLOC)
                touch(off, size)
        x["leftover"] = x.get("leftover", 0) + sum(pop)
    # after the VM: punch the whole file, allocate all of it, close it (frees everything)
    memfd = STRIDE * vcpus
    x["freed"] += x["leftover"]
    x["punch_holes"] += 1
    x["invalidated"] += memfd
    x["fallocate"] += memfd // PAGE
    x["fallocates"] += 1
    x["fallocated"] += memfd
    x["freed"] += memfd // PAGE
    return x


def cumulative(values, le_ns):
    return sum(1 for v in values if v <= le_ns)


def slots(values):
    """log2 slots as model__to_json gives them: [[slot, count], ...]"""
    out = {}
    for v in values:
        s = max(v.bit_length() - 1, 0)
        out[s] = out.get(s, 0) + 1
    return [[s, out[s]] for s in sorted(out)]


def check_histo(h, values):
    assert h["count"] == len(values)
    assert h["sum_ns"] == sum(values)
    if values:
        assert h["min_ns"] == min(values) and h["max_ns"] == max(values)
    assert h["slots"] == slots(values)


def check_prom_histo(m, name, values, **labels):
    buckets = {dict(l)["le"]: v for (n, l), v in m.samples.items()
               if n == name + "_bucket" and all(dict(l).get(k) == str(w)
                                                for k, w in labels.items())}
    assert buckets, f"no {name} buckets for {labels}"
    for le, count in buckets.items():
        want = len(values) if le == "+Inf" else cumulative(values, round(float(le) * 1e9))
        assert count == want, (name, labels, le)
    assert m.get(name + "_count", **labels) == len(values)


def test_scenario_private_mem_conversions(tmp):
    """CONSTRUCTED: KVM's private_mem_conversions_test on 3 vCPUs: per vCPU 52 hypercall
    exits, 32 attribute calls (12 to private, 20 to shared), 35 punch holes, 5 allocating
    fallocates; conversion latency histograms (kernel part and end to end) exact, in the
    report and in the replay's Prometheus buckets."""
    out = os.path.join(tmp, "pmc.gmtr")
    gt("scenario", "private-mem-conversions", "--vcpus", 3, "-o", out)
    x = pmc_expected(3)
    assert (x["requests"], x["completed"], x["abandoned"]) == (156, 96, 60)
    assert (len(x["attr"]["private"]), len(x["attr"]["shared"])) == (36, 60)
    assert x["punch_holes"] == 35 * 3 + 1 and x["fallocates"] == 5 * 3 + 1
    rep = report(out)
    assert rep["recording"]["scenario_records"] == rep["recording"]["records"]
    meta = rep["recording"]["meta"]["scenario"]
    assert meta["name"] == "private-mem-conversions" and meta["params"] == {"vcpus": 3}
    assert "private_mem_conversions_test" in meta["source"]
    v = vm_of(rep, 4242)
    cr = v["conversion_requests"]
    assert (cr["requests"], cr["completed"], cr["abandoned"], cr["pending"]) == \
        (x["requests"], x["completed"], x["abandoned"], 0)
    assert v["conversions"] == {"private": {"ok": 36, "error": 0},
                                "shared": {"ok": 60, "error": 0}}
    for to in ("private", "shared"):
        check_histo(v["conversion_latency"][to], x["attr"][to])
        check_histo(v["conversion_exit_to_entry"][to], x["e2e"][to])
    assert v["pages_allocated"]["guest_fault"] == x["guest_fault"]
    assert v["pages_allocated"]["fallocate"] == x["fallocate"]
    assert v["pages_freed"] == x["freed"] == x["guest_fault"] + x["fallocate"]
    assert (v["punch_holes"], v["invalidated_bytes"]) == (x["punch_holes"], x["invalidated"])
    assert (v["fallocates"], v["fallocated_bytes"]) == (x["fallocates"], x["fallocated"])
    assert (v["files_created"], v["files_released"], v["memslot_binds"]) == (1, 1, 1)

    r = Replay(out, "--max")
    try:
        m = r.finished()
        for to in ("private", "shared"):
            check_prom_histo(m, "gmem_conversion_seconds", x["attr"][to], vm=4242, to=to)
            assert m.get("gmem_conversions_total", vm=4242, to=to, result="ok") == \
                len(x["attr"][to])
            check_prom_histo(m, "gmem_conversion_exit_to_entry_seconds", x["e2e"][to],
                             vm=4242, to=to)
        assert m.get("gmem_pages_allocated_total", vm=4242, source="guest_fault") == \
            x["guest_fault"]
        assert m.get("gmem_punch_holes_total", vm=4242) == x["punch_holes"]
        # the probe table stored in the scenario: a kernel with every hook, fentry allowed
        assert m.get("gmemscope_probe_info", event="rmp", tier="fentry", state="live") == 1
    finally:
        r.stop()


def snp_expected():
    """The snp-boot scenario's RMP transitions, folio by folio (sev.c's rules)."""
    rmp = dict.fromkeys(("make_private", "make_shared", "psmash", "rmp_fault", "gmem_prepare",
                         "gmem_invalidate", "leak"), 0)
    F = 16
    split = [False] * F
    rmp2m = [False] * F
    assigned = [[False] * 512 for _ in range(F)]
    populated = [[False] * 512 for _ in range(F)]
    alloc = {"populate": 512, "guest_fault": 0}
    # launch: folio 0 populated, 512 x make_private at 4K
    populated[0] = [True] * 512
    assigned[0] = [True] * 512
    rmp["make_private"] += 512
    for f in range(1, F):  # boot: prepare + one 2M make_private per folio
        populated[f] = [True] * 512
        rmp2m[f] = True
        rmp["gmem_prepare"] += 1
        rmp["make_private"] += 1
        alloc["guest_fault"] += 512

    def invalidate(f, i, n):
        rmp["gmem_invalidate"] += 1
        if rmp2m[f] and n == 512:
            rmp["make_shared"] += 1
            rmp2m[f] = False
            return
        for k in range(i, i + n):
            if rmp2m[f]:
                rmp["psmash"] += 1
                rmp2m[f] = False
                assigned[f] = [True] * 512
            if assigned[f][k]:
                rmp["make_shared"] += 1
                assigned[f][k] = False

    shared_reqs, freed, splits = [], 0, 0

    def to_shared(f, i, n):
        nonlocal freed, splits
        shared_reqs.append(n)
        if not split[f]:
            split[f] = True
            splits += 1
        for k in range(i, i + n):
            invalidate(f, k, 1)
            populated[f][k] = False
            freed += 1
    for i in range(2):
        to_shared(14, i, 1)
    for k in range(4):
        to_shared(15, k * 128, 128)
    for i in range(128):  # back to private, refaulted at 4K
        populated[15][i] = True
        assigned[15][i] = True
        rmp["gmem_prepare"] += 1
        rmp["make_private"] += 1
        alloc["guest_fault"] += 1
    for f in range(5, 9):  # 4K validations in 2M regions: psmash + fault, then a 4K fault
        rmp["psmash"] += 1
        rmp2m[f] = False
        assigned[f] = [True] * 512
        rmp["rmp_fault"] += 2
    for f in range(F):  # teardown
        if not split[f]:
            freed += 512
            invalidate(f, 0, 512)
        else:
            for i in range(512):
                if populated[f][i]:
                    freed += 1
                    invalidate(f, i, 1)
    return rmp, alloc, freed, splits, shared_reqs


def test_scenario_snp_boot(tmp):
    """CONSTRUCTED: an SNP guest on 2M folios: RMP make_private at launch and boot, psmash
    and 4K make_shared on page-state changes, RMP faults, teardown; conversions with the real
    direction; splits 9->0. Every RMP op count exact in the report and the replay."""
    out = os.path.join(tmp, "snp.gmtr")
    gt("scenario", "snp-boot", "-o", out)
    rmp, alloc, freed, splits, shared_reqs = snp_expected()
    assert rmp["psmash"] == 6 and rmp["rmp_fault"] == 8
    v = vm_of(report(out), 5100)
    assert v["rmp_transitions"] == rmp
    assert v["pages_allocated"]["populate"] == alloc["populate"]
    assert v["pages_allocated"]["guest_fault"] == alloc["guest_fault"]
    assert v["pages_freed"] == freed == alloc["populate"] + alloc["guest_fault"]
    assert v["hugepages"] == [{"from_order": 9, "to_order": 0, "splits": splits, "merges": 0}]
    assert v["conversions"] == {"private": {"ok": 1, "error": 0},
                                "shared": {"ok": len(shared_reqs), "error": 0}}
    check_histo(v["conversion_latency"]["shared"], [attr_ns(n) for n in shared_reqs])
    assert v["conversion_exit_to_entry"]["shared"]["count"] == len(shared_reqs)
    assert v["conversion_exit_to_entry"]["private"]["count"] == 1
    assert v["punch_holes"] == len(shared_reqs)
    r = Replay(out, "--max")
    try:
        m = r.finished()
        for op, n in rmp.items():
            assert m.get("gmem_rmp_transitions_total", vm=5100, op=op) == n, op
        assert m.get("gmem_hugepage_splits_total", vm=5100, from_order=9, to_order=0) == 2
    finally:
        r.stop()


def test_scenario_tdx_guest(tmp):
    """CONSTRUCTED: a TDX guest: page.add per TDVF page, page.aug per accepted page,
    block/track/remove/wbinvd per converted page, wbinvd per private page at teardown."""
    out = os.path.join(tmp, "tdx.gmtr")
    gt("scenario", "tdx-guest", "-o", out)
    tdvf, accepted, converted, reprivate = 512, 4096, 4 * 128 + 1, 64
    mapped_at_end = tdvf + accepted - converted + reprivate
    want = {"page_add": tdvf, "page_aug": accepted + reprivate, "page_remove": converted,
            "range_block": converted, "track": converted, "wbinvd": converted + mapped_at_end}
    v = vm_of(report(out), 6100)
    assert v["tdx_transitions"] == want
    assert v["pages_allocated"]["populate"] == tdvf
    assert v["pages_allocated"]["guest_fault"] == accepted + reprivate
    assert v["pages_freed"] == converted + mapped_at_end
    assert v["conversions"] == {"private": {"ok": 1, "error": 0}, "shared": {"ok": 5, "error": 0}}
    check_histo(v["conversion_latency"]["shared"],
                [attr_ns(n) + 10000 * n for n in (128, 128, 128, 128, 1)])
    r = Replay(out, "--max")
    try:
        m = r.finished()
        for op, n in want.items():
            assert m.get("gmem_tdx_transitions_total", vm=6100, op=op) == n, op
    finally:
        r.stop()


def test_scenario_hugepage_splits(tmp):
    """CONSTRUCTED: 1G and 2M guest_memfd folios split by conversions and merged back, and
    the TDP MMU's eager splits: every (from, to) pair counted per VM and per file."""
    out = os.path.join(tmp, "hp.gmtr")
    gt("scenario", "hugepage-splits", "-o", out)
    rep = report(out)
    v = vm_of(rep, 7100)
    pairs = {(h["from_order"], h["to_order"]): (h["splits"], h["merges"])
             for h in v["hugepages"]}
    assert pairs == {(0, 9): (0, 12), (0, 18): (0, 3), (9, 0): (20 + 64, 0),
                     (18, 0): (3, 0), (18, 9): (4, 0)}
    # 1G: 262144 pages; 2M file: 32 folios of 512; each conversion refaults one page
    assert v["pages_allocated"]["guest_fault"] == 262144 + 32 * 512 + 3 + 12
    assert v["pages_freed"] == v["pages_allocated"]["guest_fault"]
    files = {f["ino"]: f for f in rep["released_files"]}
    assert (files[95001]["splits"], files[95001]["merges"]) == (3, 3)
    assert (files[95002]["splits"], files[95002]["merges"]) == (20, 12)
    assert files[95002]["punch_holes"] == 20 and files[95001]["punch_holes"] == 3
    r = Replay(out, "--max")
    try:
        m = r.finished()
        assert m.get("gmem_hugepage_splits_total", vm=7100, from_order=9, to_order=0) == 84
        assert m.get("gmem_hugepage_merges_total", vm=7100, from_order=0, to_order=18) == 3
        assert m.get("gmem_hugepage_splits_total", vm=7100, from_order=18, to_order=9) == 4
    finally:
        r.stop()


# ---- exports --------------------------------------------------------------------------------


def check_trace_event_schema(doc):
    """The Chrome trace event format (the JSON Object Format): traceEvents of dicts with
    name/ph/pid/tid, ts in microseconds, X with dur, C with numeric args, M metadata with
    args.name, i with a scope; and X slices properly nested on each thread."""
    assert isinstance(doc, dict) and isinstance(doc["traceEvents"], list)
    assert doc.get("displayTimeUnit") in ("ms", "ns")
    per_thread = {}
    phases = {}
    for ev in doc["traceEvents"]:
        ph = ev["ph"]
        phases[ph] = phases.get(ph, 0) + 1
        assert ph in ("X", "B", "E", "C", "M", "i", "I"), ev
        assert isinstance(ev["name"], str) and ev["name"]
        assert isinstance(ev["pid"], int) and ev["pid"] >= 0
        if ph == "M":
            assert ev["name"] in ("process_name", "thread_name", "process_sort_index",
                                  "thread_sort_index")
            assert isinstance(ev["args"]["name"], str)
            continue
        assert isinstance(ev["ts"], (int, float))
        if "tid" in ev:
            assert isinstance(ev["tid"], int)
        if "args" in ev:
            assert isinstance(ev["args"], dict)
        if ph == "X":
            assert isinstance(ev["dur"], (int, float)) and ev["dur"] >= 0
            per_thread.setdefault((ev["pid"], ev["tid"]), []).append((ev["ts"], ev["dur"]))
        if ph == "C":
            assert ev["args"] and all(isinstance(v, (int, float)) for v in ev["args"].values())
        if ph in ("i", "I"):
            assert ev.get("s", "t") in ("g", "p", "t")
    for key, sl in per_thread.items():
        stack = []
        for ts, dur in sorted(sl, key=lambda s: (s[0], -s[1])):
            while stack and ts >= stack[-1] - 1e-6:
                stack.pop()
            assert not stack or ts + dur <= stack[-1] + 1e-6, f"slices overlap on {key}"
            stack.append(ts + dur)
    return phases


def test_perfetto_export_schema_and_content(tmp):
    """CONSTRUCTED: the Perfetto export of the conversions scenario is valid trace-event JSON:
    a process per VM, a thread per vCPU, a conversion slice per request from exit to entry
    with its attributes call nested inside, populated-bytes counters."""
    src = os.path.join(tmp, "pmc.gmtr")
    gt("scenario", "private-mem-conversions", "--vcpus", 2, "-o", src)
    out = os.path.join(tmp, "pmc.json")
    gt("export", src, "--format", "perfetto", "-o", out, "--counter-interval", "0")
    with open(out) as f:
        doc = json.load(f)
    phases = check_trace_event_schema(doc)
    assert phases["X"] and phases["C"] and phases["M"] and phases["i"]
    ev = doc["traceEvents"]
    procs = {e["pid"]: e["args"]["name"] for e in ev if e["name"] == "process_name"}
    assert procs[4242] == "VM 4242"
    threads = {e["tid"] for e in ev if e["name"] == "thread_name" and e["pid"] == 4242}
    assert {4243, 4244} <= threads
    x = pmc_expected(2)
    conv = [e for e in ev if e["ph"] == "X" and e["name"].startswith("conversion to")]
    assert len(conv) == x["requests"]
    assert sum(1 for e in conv if e["args"]["outcome"] == "completed") == x["completed"]
    assert sorted(round(e["dur"] * 1000) for e in conv
                  if e["args"]["outcome"] == "completed") == \
        sorted(x["e2e"]["private"] + x["e2e"]["shared"])
    attrs = [e for e in ev if e["ph"] == "X" and e["name"].startswith("set_memory_attributes")]
    assert len(attrs) == len(x["attr"]["private"]) + len(x["attr"]["shared"])
    assert sorted(round(e["dur"] * 1000) for e in attrs) == \
        sorted(x["attr"]["private"] + x["attr"]["shared"])
    pop = [e for e in ev if e["ph"] == "C" and e["name"] == "populated bytes"]
    assert pop and pop[-1]["args"]["bytes"] == 0 and max(e["args"]["bytes"] for e in pop) > 0
    assert doc["otherData"]["scenario"]["name"] == "private-mem-conversions"


def test_perfetto_export_of_a_live_recording(tmp):
    """LIVE: a real recording (secretmem churn, a VM) exports to valid trace-event JSON with
    the VM's process, its populated-bytes counter, the host's DirectMap counter, and a track
    named for the vCPU its thread runs."""
    require_live()
    out = os.path.join(tmp, "live.gmtr")
    rec = Recorder(out, "--in-process")
    try:
        v = run_load("--vms", "1", "--user-touch", "16", "--guest-touch", "8",
                     "--secret-pages", "8")["exit"]["vms"][0]
        time.sleep(1.5)
    finally:
        assert rec.stop() == 0
    js = os.path.join(tmp, "live.json")
    gt("export", out, "--format", "perfetto", "-o", js)
    with open(js) as f:
        doc = json.load(f)
    check_trace_event_schema(doc)
    names = {(e["ph"], e["name"], e["pid"]) for e in doc["traceEvents"]}
    assert ("M", "process_name", v["pid"]) in names
    assert ("C", "populated bytes", v["pid"]) in names
    assert ("C", "DirectMap", 0) in names
    # the vCPU's thread has a track named for the vCPU it runs
    tracks = {e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"
              and e["pid"] == v["pid"] and e["tid"] == v["vcpu_tid"]}
    assert f"vCPU 0 (tid {v['vcpu_tid']})" in tracks, tracks


def test_csv_jsonl_and_cat_agree(tmp):
    """CONSTRUCTED: csv, jsonl and cat give one line per record, with the same kinds."""
    src = os.path.join(tmp, "snp.gmtr")
    gt("scenario", "snp-boot", "-o", src)
    n = json.loads(gt("info", "-j", src).stdout)["records"]
    csv = gt("export", src, "--format", "csv").stdout.splitlines()
    assert csv[0].split(",")[:3] == ["ts_ns", "kind", "vm"] and len(csv) == n + 1
    jl = [json.loads(line) for line in gt("export", src, "--format", "jsonl").stdout.splitlines()]
    assert len(jl) == n
    assert [row.split(",")[1] for row in csv[1:]] == [j["kind"] for j in jl]
    assert all("scenario" in j["flag_names"] for j in jl)
    rmp = [j for j in jl if j["kind"] == "rmp"]
    assert {j["sub_name"] for j in rmp} == {"make_private", "make_shared", "psmash",
                                            "rmp_fault", "gmem_prepare", "gmem_invalidate"}
    cat = gt("cat", src).stdout.splitlines()
    assert len(cat) == n and [c.split()[1] for c in cat] == [j["kind"] for j in jl]
    assert "op=psmash" in "\n".join(cat)
    only = gt("cat", src, "--kind", "conv_request").stdout.splitlines()
    assert len(only) == 7 and all("conv_request" in l for l in only)


# ---- replay as a server ---------------------------------------------------------------------


def test_replay_serves_the_control_protocol(tmp):
    """CONSTRUCTED: a paced replay speaks gmemd's protocol: hello names it, scan is refused
    (no live source), snapshot and probe answer, and a subscriber gets the records as they
    are replayed; --exit-at-end ends it once done."""
    src = os.path.join(tmp, "churn.gmtr")
    gt("scenario", "synthetic-churn", "--events", 400000, "-o", src)
    r = Replay(src, "--speed", "0.1", "--exit-at-end")
    try:
        hello = r.call({"cmd": "hello"})
        assert hello["ok"] and hello["server"] == "gmemtrace replay" and not hello["live"]
        assert r.call({"cmd": "scan"})["ok"] is False
        snap = r.call({"cmd": "snapshot"})
        assert snap["ok"] and snap["daemon"]["name"] == "gmemtrace replay"
        assert r.call({"cmd": "probe"})["probe"]["kernel"].startswith("constructed")
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(r.socket)
            s.sendall(b'{"cmd":"subscribe"}\n')
            f = s.makefile("rb")
            assert json.loads(f.readline())["ok"]
            rec = f.read(64)
            kind, = struct.unpack_from("<I", rec, 40)
            flags, = struct.unpack_from("<H", rec, 62)
            assert kind in (6, 7, 8, 9) and flags & 4
        r.proc.wait(timeout=60)
        assert r.proc.returncode == 0
        assert "end of recording: 400000 events" in r.output()
    finally:
        r.stop()


# ---- bad input ------------------------------------------------------------------------------


def bad_files(tmp):
    good = os.path.join(tmp, "good.gmtr")
    gt("scenario", "synthetic-churn", "--events", 20000, "--chunk-records", 2000, "-o", good)
    with open(good, "rb") as f:
        data = f.read()
    files = {}

    def put(name, content):
        p = os.path.join(tmp, name)
        with open(p, "wb") as f:
            f.write(content)
        files[name] = p
    put("truncated-mid-chunk.gmtr", data[:len(data) * 2 // 3])
    put("truncated-in-header.gmtr", data[:20])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    put("flipped.gmtr", bytes(flipped))
    put("wrong-magic.gmtr", b"\x7fELF" + data[4:])
    newer = bytearray(data)
    newer[8] = 2  # major version 2, header checksum fixed so the version is what fails
    import zlib
    newer[28:32] = struct.pack("<I", zlib.crc32(bytes(newer[:28])))
    put("newer.gmtr", bytes(newer))
    put("empty.gmtr", b"")
    put("text.gmtr", b"this is not a recording\n" * 10)
    files["directory"] = tmp
    files["missing"] = os.path.join(tmp, "does-not-exist.gmtr")
    return files


EXPECT = {
    "truncated-mid-chunk.gmtr": "cut short",
    "truncated-in-header.gmtr": "cut short in its header",
    "flipped.gmtr": "checksum mismatch",
    "wrong-magic.gmtr": "not a gmemtrace recording (bad magic)",
    "newer.gmtr": "format version 2.0 is newer",
    "empty.gmtr": "empty file",
    "text.gmtr": "bad magic",
    "directory": "is a directory",
    "missing": "No such file or directory",
}


@pytest.mark.parametrize("verb", [("report",), ("report", "-j"), ("cat",), ("info",),
                                  ("export", "--format", "csv"),
                                  ("export", "--format", "perfetto"),
                                  ("replay", "-q", "--exit-at-end", "--max", "--no-http")])
def test_bad_input_one_line_and_nonzero(tmp, verb):
    """Truncated, flipped, wrong magic, newer version, empty, text, a directory, a missing
    file: each verb prints one line naming the file and what is wrong (and what was read
    before it), exits non-zero, and neither crashes nor hangs."""
    for name, path in bad_files(tmp).items():
        args = list(verb) + [path]
        if verb[0] == "replay":
            args += ["--socket", os.path.join(tmp, "r.sock")]
        p = gt(*args, check=False, timeout=30)
        assert p.returncode == 1, (verb, name, p.returncode, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1, (verb, name, p.stderr)
        assert lines[0].startswith(f"gmemtrace: {path}: "), lines[0]
        assert EXPECT[name] in lines[0], (verb, name, lines[0])
        if name in ("truncated-mid-chunk.gmtr", "flipped.gmtr"):
            assert "chunks (" in lines[0] and "events) before it" in lines[0]


def test_cli_help_and_usage_errors():
    """help lists the verbs; every verb's --help has USAGE and EXAMPLES; usage errors are
    argp's, exit 64."""
    h = gt("help").stdout
    for verb in ("record", "report", "replay", "export", "cat", "info", "features",
                 "scenario"):
        assert f"  {verb}" in h
        vh = gt(verb, "--help").stdout
        assert "USAGE:" in vh and "EXAMPLES:" in vh, verb
        assert gt("help", verb).stdout == vh
    assert "synth" not in h  # the old name of scenario: still taken, not listed
    assert gt("synth", "--list").stdout == gt("scenario", "--list").stdout
    for args, needle in ((["bogus"], "unknown or ambiguous verb"),
                         (["re"], "unknown or ambiguous verb"),
                         (["report"], "which recording"),
                         (["export", "x.gmtr"], "--format"),
                         (["export", "x", "--format", "pdf"], "is not perfetto"),
                         (["record", "--rotate-size", "1M", "--rotate-time", "5"], "choose one"),
                         (["record", "--max-files", "3"], "needs --rotate-size"),
                         (["replay", "x", "--speed", "0"], "--speed")):
        p = gt(*args, check=False)
        assert p.returncode == 64, (args, p.returncode)
        assert needle in p.stderr, (args, p.stderr)
    assert gt("--version").stdout.startswith("gmemtrace ")
    assert gt("repo", "--help").stdout.startswith("Usage: gmemtrace report")


# ---- what-if: policies replayed over recordings ------------------------------------------


def whatif(path, *extra):
    p = gt("whatif", path, "-p", "split4k", "-p", "buddy", "-p", "churn", *extra)
    return p.stdout


def test_whatif_side_by_side_on_a_live_recording(tmp):
    """LIVE: a real gmem-load recording (faults, fallocates, punches) replayed through the
    three shipped policies: all three columns, every allocation decided, and split4k never
    keeping more of the populated memory huge than buddy, which splits minimally."""
    require_live()
    out = os.path.join(tmp, "live.gmtr")
    rec = Recorder(out, "--in-process", "--scan-interval", "0.5")
    try:
        run_load("--vms", "1", "--files", "2", "--file-size", "8M", "--user-touch", "600",
                 "--fallocate", "600", "--punch", "20", "--punch-size", "64K")
        time.sleep(1)
    finally:
        assert rec.stop(signal.SIGTERM) == 0, rec.output()
    text = whatif(out)
    head = [l for l in text.splitlines() if "split4k" in l and "buddy" in l and "churn" in l]
    assert head, text
    res = json.loads(whatif(out, "-j"))
    pols = {p["name"]: p for p in res["policies"]}
    assert set(pols) == {"split4k", "buddy", "churn"}
    for p in pols.values():
        assert p["decisions"]["alloc_order"] > 0, p
        assert p["pingpongs"] == 0, "nothing converts on this kernel: nothing to ping-pong"
    assert pols["split4k"]["coverage"]["avg"] <= pols["buddy"]["coverage"]["avg"]
    assert pols["split4k"]["coverage"]["peak_populated_bytes"] > 0


def test_whatif_on_a_scenario_and_bad_input(tmp):
    """CONSTRUCTED: the private_mem_conversions scenario through whatif (-j parses, three
    policies); a missing policy or a non-recording gives one line and a non-zero exit."""
    path = os.path.join(tmp, "pmc.gmtr")
    gt("scenario", "private-mem-conversions", "-o", path)
    res = json.loads(whatif(path, "-j"))
    assert [p["name"] for p in res["policies"]] == ["split4k", "buddy", "churn"]
    bad = gt("whatif", path, "-p", "no-such-policy", check=False)
    assert bad.returncode != 0 and "no-such-policy" in bad.stderr
    junk = os.path.join(tmp, "junk")
    with open(junk, "w") as f:
        f.write("not a recording\n")
    bad = gt("whatif", junk, "-p", "buddy", check=False)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
