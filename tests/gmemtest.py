# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""Shared helpers for gmemscope's live and end-to-end tests.

Live tests run the real gmemd against the real kernel and the real gmem-load workload on
/dev/kvm, and compare what gmemd exports with gmem-load's ground truth. Nothing here fakes a
kernel: a test that cannot run here skips and says which feature is missing.
"""
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("GMEM_BUILD", os.path.join(ROOT, "build"))
BIN = os.path.join(BUILD, "bin")
GMEMD = os.path.join(BIN, "gmemd")
GMEM_LOAD = os.path.join(BIN, "gmem-load")


SOURCES = ("user_fault", "guest_fault", "fallocate", "populate", "other")

# Where a test runs: LIVE on this host's kernel, or LAB inside a Debian kernel booted under
# QEMU by tests/lab/ (GMEM_LAB names the kernel, GMEM_LAB_TIER the tier under test).
# GMEM_LAB=0 (make check-host) only leaves the lab out: this is then the host, not a lab kernel.
LAB_KERNEL = "" if os.environ.get("GMEM_LAB", "0") == "0" else os.environ["GMEM_LAB"]
# The tier under test: "best" lets gmemd pick (fentry where the kernel permits it),
# "tracepoint" passes --no-fentry to every gmemd the tests start.
NO_FENTRY = os.environ.get("GMEM_NO_FENTRY") == "1"
TIER_ARGS = ["--no-fentry"] if NO_FENTRY else []


def where():
    """LIVE or LAB <kernel> <tier>: what a test's messages say about where it ran."""
    if LAB_KERNEL:
        return f"LAB {LAB_KERNEL} {os.environ.get('GMEM_LAB_TIER', 'best')}"
    return "LIVE"


def kernel_lacks(what):
    """Skip because the kernel under test truly lacks a feature (checked, not assumed). Under
    GMEM_NO_SKIP such a skip still counts as a skip, never as a pass: the reason says which
    kernel and what it lacks."""
    pytest.skip(f"{where()}: kernel {os.uname().release} lacks {what}")


def truth_counters(v, minus=None):
    """gmem-load's counts for one VM in the exporter's vocabulary, optionally minus an earlier
    phase's (the ground truth every live test compares with)."""
    def sub(*path):
        a, b = v, minus
        for p in path:
            a = a[p]
            b = b[p] if b is not None else None
        return a - (b or 0)
    return {
        "files_created": sub("files_created"),
        "files_released": sub("files_released"),
        "memslot_binds": sub("memslot_binds"),
        "pages_allocated": {s: sub("pages_allocated", s) for s in SOURCES},
        "pages_freed": sub("pages_freed"),
        "punch_holes": sub("punch_holes"),
        "invalidated_bytes": sub("invalidated_bytes"),
        "conversions": {to: {r: sub("conversions", to, r) for r in ("ok", "error")}
                        for to in ("private", "shared")},
    }


def _leaves(d, pre=()):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, pre + (k,))
        else:
            yield pre + (k,), v


def losses_counted(m, vm=None):
    """What the kernel said it skipped (gmemscope_probe_misses_total), plus (vm given) the
    records about that VM that found the ring full, counted against it by kind
    (gmem_events_dropped_total{vm,kind}): the losses a shortfall may be explained by."""
    missed = m.get("gmemscope_probe_misses_total")
    if vm is not None:
        missed += m.get("gmem_events_dropped_total", vm=vm)
    return missed


def exact_or_missed(m, got, want, vm=None):
    """got == want, exactly; or the kernel reported skipped runs of our programs, or (vm given)
    records about that VM were dropped on a full ring and counted as such
    (gmemscope_probe_misses_total > 0, which a preemptible kernel causes when a thread is
    preempted inside a probe) and nothing is over-counted. A skipped run loses one record,
    which may carry many pages, so a shortfall is bounded by the count of misses only in
    records, not in the counters; what is never allowed is a count above the truth."""
    if got == want:
        return True
    if losses_counted(m, vm) <= 0:
        return False
    # A skipped run of a syscall-entry program loses that call's context too, so its folios
    # are counted under the fault source instead of fallocate: by source the counts may move,
    # but their sum, like every other counter, is never above the truth.
    def folded(d):
        d = dict(d)
        if isinstance(d.get("pages_allocated"), dict):
            d["pages_allocated"] = sum(d["pages_allocated"].values())
        return d
    g = dict(_leaves(folded(got)))
    return all(g.get(k, 0) <= v for k, v in _leaves(folded(want)))


def _skip_if_unsupported(rc, stderr):
    """gmem-load exits 77 when the kernel cannot run what was asked (6.12: guest_memfd without
    MMAP|INIT_SHARED); that is the kernel lacking a feature, said as such."""
    if rc == 77:
        m = re.search(r"guest_memfd here lacks [^(\n]*", stderr or "")
        kernel_lacks(m.group(0).replace("guest_memfd here lacks", "guest_memfd").strip()
                     if m else (stderr or "what gmem-load needs").strip()[-200:])


def require_live():
    """Skip unless this machine can run the live tier: root, /dev/kvm, kernel BTF."""
    if os.geteuid() != 0:
        pytest.skip("live test needs root (BPF)")
    if not os.path.exists("/dev/kvm"):
        pytest.skip("live test needs /dev/kvm")
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.skip("live test needs kernel BTF")


def stop_process(proc, sig=signal.SIGTERM, timeout=15):
    """Ask a process to stop with sig; kill it if it has not within timeout. Its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def finish_loads(started):
    """End gmem-load runs a test started: SIGUSR1 twice (ends --pause, then --linger), then
    wait, killing what does not finish."""
    for ld in started:
        if ld.proc.poll() is None:
            ld.resume()
            ld.resume()
            try:
                ld.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                ld.proc.kill()
                ld.proc.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=10.0, interval=0.1, what="condition"):
    """Poll pred() until it returns a truthy value; return it, or fail with the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prom(text):
    """Prometheus text format -> {(name, ((label, value), ...)): float}; checks HELP/TYPE."""
    samples, types = {}, {}
    for line in text.splitlines():
        if not line or line.startswith("# HELP"):
            continue
        if line.startswith("# TYPE"):
            _, _, name, typ = line.split(None, 3)
            types[name] = typ
            continue
        if line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"unparseable sample line: {line!r}"
        labels = tuple(sorted(_LABEL.findall(m.group(3) or "")))
        samples[(m.group(1), labels)] = float(m.group(4))
    return samples, types


class Metrics:
    def __init__(self, text):
        self.text = text
        self.samples, self.types = parse_prom(text)

    def get(self, name, **labels):
        """The value of one series (0 when absent: counters start at zero)."""
        want = {k: str(v) for k, v in labels.items()}
        total, found = 0.0, False
        for (n, ls), v in self.samples.items():
            if n != name:
                continue
            d = dict(ls)
            if all(d.get(k) == val for k, val in want.items()):
                total += v
                found = True
        return total if found else 0.0

    def has(self, name, **labels):
        want = {k: str(v) for k, v in labels.items()}
        return any(n == name and all(dict(ls).get(k) == v for k, v in want.items())
                   for (n, ls) in self.samples)


class Gmemd:
    """A real gmemd on a free loopback port and a private control socket."""

    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="gmemd-test-")
        self.socket = os.path.join(self.dir, "gmemd.sock")
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "gmemd.log"), "w+")
        self.args = [GMEMD, "--listen", f"127.0.0.1:{self.port}", "--socket", self.socket,
                     "--scan-interval", "0.5", *TIER_ARGS, *extra]
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: self.proc.poll() is not None or "ready" in self.output(),
                       timeout=30, what="gmemd ready")
        except AssertionError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise AssertionError(f"gmemd exited {self.proc.returncode}: {self.output()}")

    def output(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def metrics_text(self, accept=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/metrics")
        if accept:
            req.add_header("Accept", accept)
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read().decode()

    def metrics(self):
        return Metrics(self.metrics_text())

    def call(self, obj):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.socket)
            s.sendall((json.dumps(obj) + "\n").encode())
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
        return json.loads(buf)

    def state(self, vms):
        """What the daemon's model holds about these VMs (gmem-load's truth dicts) and its
        totals: the evidence a failed comparison needs, since the series alone cannot say
        whether a record was lost or a VM was retired and rediscovered."""
        try:
            snap = self.call({"cmd": "snapshot"})
        except OSError as e:
            return f"(no snapshot: {e})"
        model = snap.get("model") or {}
        pids = {v["pid"] for v in vms}
        mine = [vm for vm in model.get("vms", []) if vm.get("vm") in pids]
        log = self.output().splitlines()[-20:]
        return (f"model totals: {json.dumps(model.get('totals'))}\n"
                f"anomalies: {json.dumps(model.get('anomalies'))}\n"
                f"probe: {json.dumps(snap.get('probe'))}\nmodel VMs: {json.dumps(mine)}\n"
                f"truth: {json.dumps(vms)}\ngmemd log tail:\n" + "\n".join(log))

    def scan(self):
        """Drain the ring and rescan now, so releases are visible deterministically."""
        assert self.call({"cmd": "scan"})["ok"]

    def stop(self, sig=signal.SIGTERM):
        return stop_process(self.proc, sig)


def subscribe(d):
    """A client subscribed to gmemd d's record stream: (socket, its file, the ack). gmemd sends
    every folio as a record while it stays (no counting in the kernel)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(d.socket)
    s.sendall(b'{"cmd":"subscribe"}\n')
    f = s.makefile("rb")
    ack = json.loads(f.readline())
    assert ack["ok"], ack
    return s, f, ack


class Load:
    """gmem-load in the background; its JSON lines are the ground truth, by phase."""

    def __init__(self, *args, exe=GMEM_LOAD):
        """exe: gmem-load or a link to it, whose name becomes the VMs' comm."""
        self.proc = subprocess.Popen([exe, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.phases = {}

    def next_phase(self, timeout=60):
        import select
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if r:
                line = self.proc.stdout.readline()
                if not line:
                    self.proc.wait(timeout=10)
                    _skip_if_unsupported(self.proc.returncode, self.stderr())
                    break
                doc = json.loads(line)
                self.phases[doc["phase"]] = doc
                return doc
        raise AssertionError(f"gmem-load printed no phase line; stderr: {self.stderr()}")

    def wait_phase(self, phase, timeout=60):
        while phase not in self.phases:
            self.next_phase(timeout)
        return self.phases[phase]

    def resume(self):
        self.proc.send_signal(signal.SIGUSR1)

    def finish(self, timeout=120):
        doc = self.wait_phase("exit", timeout)
        self.proc.wait(timeout=timeout)
        assert self.proc.returncode == 0, f"gmem-load failed: {self.stderr()}"
        return doc

    def stderr(self):
        try:
            return self.proc.stderr.read() if self.proc.poll() is not None else "(running)"
        except Exception:
            return "?"


def run_load(*args, timeout=120, exe=GMEM_LOAD):
    p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
    _skip_if_unsupported(p.returncode, p.stderr)
    assert p.returncode == 0, f"gmem-load {' '.join(args)} failed ({p.returncode}): {p.stderr}"
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    return {d["phase"]: d for d in lines}
