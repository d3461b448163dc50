# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""LIVE: gmemd's /metrics through real clients.

promtool lints live scrapes; a real Prometheus server (Debian's, started here on loopback with
its own data directory) scrapes gmemd every second while gmem-load runs, and what its HTTP API
returns must equal gmem-load's ground truth. The shipped example configuration and rules are
what that Prometheus runs. Bad clients (malformed requests, unknown paths, slow and idle
connections, hundreds at once) must not stop gmemd serving or lose it a single event.
Everything listens on 127.0.0.1 only, and every loop and server here is bounded in time.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gmemtest import GMEM_LOAD, GMEMD, ROOT, Gmemd, Load, Metrics, free_port, losses_counted, \
    parse_prom, require_live, run_load, stop_process, wait_until

PAGE = 4096
SOURCES = ("user_fault", "guest_fault", "fallocate", "populate", "other")
EXAMPLES = os.path.join(ROOT, "examples", "prometheus")
DASHBOARD = os.path.join(ROOT, "examples", "grafana", "gmemscope.json")
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
OM_ACCEPT = "application/openmetrics-text; version=1.0.0"
# what Prometheus 2.42 sends
PROM_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
               "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


@pytest.fixture
def gmemd():
    require_live()
    d = Gmemd()
    yield d
    rc = d.stop()
    assert rc == 0, f"gmemd exited {rc} on SIGTERM: {d.output()}"


def lingering(loads, *args):
    ld = Load(*args, "--linger", "60")
    loads.append(ld)
    return ld.wait_phase("done")["vms"], ld


def promtool(*args, stdin=None):
    p = subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout + p.stderr


def scrape(port, accept=None, path="/metrics", method="GET", timeout=10):
    """(status, content type, body) of one request."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def vm_truth(v):
    """gmem-load's counts as exporter series: {(name, labels...): value}."""
    pid = str(v["pid"])
    want = {
        ("gmem_files", pid): sum(not f["released"] for f in v["files"]),
        ("gmem_files_created_total", pid): v["files_created"],
        ("gmem_files_released_total", pid): v["files_released"],
        ("gmem_pages_freed_total", pid): v["pages_freed"],
        ("gmem_punch_holes_total", pid): v["punch_holes"],
        ("gmem_invalidated_bytes_total", pid): v["invalidated_bytes"],
        ("gmem_memslot_binds_total", pid): v["memslot_binds"],
    }
    for s in SOURCES:
        want[("gmem_pages_allocated_total", pid, s)] = v["pages_allocated"][s]
    for to in ("private", "shared"):
        for res in ("ok", "error"):
            want[("gmem_conversions_total", pid, to, res)] = v["conversions"][to][res]
    for f in v["files"]:
        if not f["released"]:
            want[("gmem_file_size_bytes", pid, str(f["ino"]))] = f["size"]
            want[("gmem_populated_bytes", pid, str(f["ino"]))] = f["populated_pages"] * PAGE
    return want


def from_metrics(m, key):
    name, vm = key[0], key[1]
    if name == "gmem_pages_allocated_total":
        return m.get(name, vm=vm, source=key[2])
    if name == "gmem_conversions_total":
        return m.get(name, vm=vm, to=key[2], result=key[3])
    if name in ("gmem_file_size_bytes", "gmem_populated_bytes"):
        return m.get(name, vm=vm, gmem=key[2])
    return m.get(name, vm=vm)


def short_by_misses(m, got, want, pid):
    """got falls short of want only where the kernel skipped runs of our programs or records
    about this VM found the ring full, both counted (gmemscope_probe_misses_total,
    gmem_events_dropped_total{vm}); nothing is above the truth. By source, allocations may
    move (a skipped syscall-entry run loses the call's context), so they compare summed."""
    if losses_counted(m, pid) <= 0:
        return False

    def folded(d):
        out = {}
        for k, v in d.items():
            if k[0] == "gmem_pages_allocated_total":
                k = k[:2]
            out[k] = out.get(k, 0) + (v or 0)
        return out
    g = folded(got)
    return all(g.get(k, 0) <= w for k, w in folded(want).items())


def check_exact(d, vms, timeout=15):
    """Every series of every VM equals the ground truth (after a drain and rescan), or falls
    short of it only by what the kernel said it skipped (short_by_misses)."""
    got = {}

    def same():
        d.scan()
        m = d.metrics()
        ok = True
        for v in vms:
            want = vm_truth(v)
            mine = {k: from_metrics(m, k) for k in want}
            got.update(mine)
            if mine != want and not short_by_misses(m, mine, want, v["pid"]):
                ok = False
        return ok
    try:
        wait_until(same, timeout=timeout, what="series equal to the ground truth")
    except AssertionError:
        diff = {k: (got.get(k), w) for v in vms for k, w in vm_truth(v).items()
                if got.get(k) != w}
        raise AssertionError(f"series differ (got, want): {diff}\n" + d.state(vms))


# ---- the format -------------------------------------------------------------------------


def test_promtool_accepts_a_live_scrape(gmemd, loads):
    """LIVE: `promtool check metrics` finds nothing wrong with a scrape taken while VMs are
    live (files, allocations of every kind, punches, refused conversions, secretmem churn),
    and the scrape carries those VMs' series."""
    vms, _ = lingering(loads, "--vms", "2", "--files", "3", "--user-touch", "10",
                       "--guest-touch", "6", "--fallocate", "4", "--punch", "2",
                       "--convert", "2", "--secret-pages", "4")
    check_exact(gmemd, vms)
    status, ctype, text = scrape(gmemd.port)
    assert status == 200
    rc, out = promtool("check", "metrics", stdin=text)
    assert rc == 0 and out.strip() == "", out
    m = Metrics(text)
    for v in vms:
        assert m.get("gmem_files", vm=v["pid"]) == 3
    # and promtool can fail: a broken exposition is caught
    rc, out = promtool("check", "metrics", stdin=text + "# HELP gmem_oops_bytes x\n"
                       "# TYPE gmem_oops_bytes counter\ngmem_oops_bytes 1\n")
    assert "counter metrics should have \"_total\" suffix" in out, out


def families(text):
    """{family: {"help": n, "type": t}} and [(sample name, value text)] of one exposition."""
    fam, samples = {}, []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            fam.setdefault(name, {}).setdefault("help", 0)
            fam[name]["help"] += 1
        elif line.startswith("# TYPE "):
            _, _, name, typ = line.split()
            assert "type" not in fam.get(name, {}), f"two TYPE lines for {name}"
            fam.setdefault(name, {})["type"] = typ
        elif line and not line.startswith("#"):
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$", line)
            assert m, f"bad sample line {line!r}"
            samples.append((m.group(1), m.group(3), m.group(2) or ""))
    return fam, samples


def family_of(name, fam, om):
    for suffix in ("_bucket", "_sum", "_count", "_total", "_info", ""):
        if suffix and not name.endswith(suffix):
            continue
        base = name[:len(name) - len(suffix)] if suffix else name
        if base in fam:
            t = fam[base].get("type")
            if suffix in ("_bucket", "_sum", "_count") and t != "histogram":
                continue
            if suffix == "_total" and om and t != "counter":
                continue
            if suffix == "_info" and t != "info":
                continue
            return base
    return None


DESIGN_FAMILIES = ("gmem_files", "gmem_files_created_total", "gmem_files_released_total",
                   "gmem_file_size_bytes", "gmem_populated_bytes", "gmem_pages_allocated_total",
                   "gmem_pages_freed_total", "gmem_punch_holes_total",
                   "gmem_invalidated_bytes_total", "gmem_faults_total",
                   "gmem_memslot_binds_total", "gmem_conversions_total",
                   "gmem_conversion_seconds", "gmem_conversion_exit_to_entry_seconds",
                   "gmem_direct_map_removals_total", "gmem_direct_map_restores_total",
                   "gmem_host_direct_map_bytes", "gmem_rmp_transitions_total",
                   "gmem_tdx_transitions_total", "gmem_hugepage_splits_total",
                   "gmem_hugepage_merges_total", "gmemscope_probe_info",
                   "gmemscope_events_total", "gmemscope_events_dropped_total",
                   "gmemscope_file_series_capped", "gmem_vm_info")


@pytest.mark.parametrize("om", [False, True], ids=["text-0.0.4", "openmetrics"])
def test_help_type_every_family_exact_integers(gmemd, loads, om):
    """LIVE: in both formats every sample belongs to a family with exactly one HELP and one
    TYPE; every family of docs/design.md's contract is there (with HELP and TYPE even before it has
    samples); counts and bytes are integers written out in full, equal to the truth."""
    vms, _ = lingering(loads, "--vms", "1", "--files", "2", "--file-size", "64M",
                       "--user-touch", "3000", "--fallocate", "5000", "--punch", "7",
                       "--punch-size", "2M")
    check_exact(gmemd, vms)
    _, _, text = scrape(gmemd.port, OM_ACCEPT if om else None)
    fam, samples = families(text)
    for name, value, labels in samples:
        base = family_of(name, fam, om)
        assert base, f"sample {name} has no TYPE'd family"
        assert fam[base].get("help") == 1, f"{base}: HELP missing or repeated"
        if name.startswith("gmem_") and "_seconds" not in name:
            assert re.fullmatch(r"\d+", value), f"{name}{labels} {value}: not an exact integer"
    for want in DESIGN_FAMILIES:
        if om:
            want = re.sub(r"_(total|info)$", "", want)
        assert want in fam and fam[want].get("help") == 1 and "type" in fam[want], want
    # integers in full: 7 punches of 2 MiB in each of 2 files are 29360128 bytes, no exponent
    pid = vms[0]["pid"]
    assert vms[0]["invalidated_bytes"] == 2 * 7 * (2 << 20)
    assert f'gmem_invalidated_bytes_total{{vm="{pid}"}} 29360128\n' in text
    for f in vms[0]["files"]:
        assert (f'gmem_populated_bytes{{vm="{pid}",gmem="{f["ino"]}"}} '
                f'{f["populated_pages"] * PAGE}\n') in text


def test_histograms_cumulative_with_inf_sum_count(gmemd, loads, tmp_path):
    """LIVE and CONSTRUCTED: VMs whose conversions all failed (this kernel has no private
    memory) export no histogram series at all; every series a converting VM exports (the
    constructed private_mem_conversions_test recording, served by gmemtrace replay as gmemd
    serves) has increasing le buckets, cumulative counts, a +Inf bucket equal to _count, and a
    _sum; the bucket bounds are 2^k ns in exact seconds."""
    from test_gmemtrace import GMEMTRACE, Replay
    vms, _ = lingering(loads, "--vms", "2", "--user-touch", "2", "--convert", "4")
    check_exact(gmemd, vms)
    _, _, text = scrape(gmemd.port)
    samples, types = parse_prom(text)
    hists = [n for n, t in types.items() if t == "histogram"]
    assert sorted(hists) == ["gmem_conversion_exit_to_entry_seconds", "gmem_conversion_seconds"]
    for v in vms:
        assert sum(v["conversions"][to]["ok"] for to in ("private", "shared")) == 0
        assert not [n for (n, ls) in samples if n.startswith("gmem_conversion_")
                    and "seconds" in n and dict(ls).get("vm") == str(v["pid"])], \
            "a VM that never converted has no histogram series"
    rec = str(tmp_path / "pmc.gmtr")
    p = subprocess.run([GMEMTRACE, "scenario", "private-mem-conversions", "-o", rec],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    replay = Replay(rec, "--max")
    try:
        replay.finished()
        with urllib.request.urlopen(f"http://127.0.0.1:{replay.port}/metrics", timeout=10) as r:
            text = r.read().decode()
    finally:
        replay.stop()
    samples, types = parse_prom(text)
    series = 0
    for h in hists:
        groups = {}
        for (name, labels), v in samples.items():
            if name == h + "_bucket":
                rest = tuple(l for l in labels if l[0] != "le")
                le = dict(labels)["le"]
                groups.setdefault(rest, []).append((float(le), le, v))
        assert groups, h
        for rest, buckets in groups.items():
            series += 1
            buckets.sort()
            les = [b[1] for b in buckets]
            assert les[-1] == "+Inf"
            assert les[0] == "0.000001024" and "68.719476736" in les, les
            counts = [b[2] for b in buckets]
            assert counts == sorted(counts), f"{h}{rest} not cumulative: {counts}"
            assert counts[-1] > 0, "a series exists only with an observation"
            assert samples[(h + "_count", rest)] == counts[-1]
            assert (h + "_sum", rest) in samples
            assert samples[(h + "_sum", rest)] >= 0
    # the scenario's VM converts both ways, timed in both families
    assert series == 2 * 2


def test_idle_vm_series_count(gmemd, loads):
    """LIVE: the series one idle VM with one file adds to a scrape (README states it): its
    per-VM counters and the file's two gauges; no conversion series (it never tried one)."""
    vms, _ = lingering(loads, "--vms", "1", "--user-touch", "2")
    check_exact(gmemd, vms)
    _, _, text = scrape(gmemd.port)
    samples, _ = parse_prom(text)
    mine = sorted(n for (n, ls) in samples if dict(ls).get("vm") == str(vms[0]["pid"]))
    print(f"series of one idle VM with one file: {len(mine)}: {mine}")
    assert len(mine) <= 15, mine
    assert "gmem_conversions_total" not in mine


# A VMM name with what a label must escape (quote, backslash) and a byte that is not UTF-8;
# within comm's 15 bytes. As a file name: gmem-load started through a link of that name.
ODD_NAME = b'db"01\\x\xff'
ODD_SHOWN = 'db"01\\x?'  # what gmemd names it: the bad byte replaced
ODD_LABEL = 'db\\"01\\\\x?'  # and how the exposition writes that label


def named_gmem_load(tmp_path, name):
    """A link to gmem-load whose (bytes) name becomes its VMs' comm."""
    link = os.path.join(os.fsencode(str(tmp_path)), name)
    os.symlink(os.fsencode(GMEM_LOAD), link)
    return link


def vm_info_lines(text):
    """{vm: the raw (escaped) name label} of gmem_vm_info; one series per vm."""
    out = {}
    for vm, name in re.findall(r'^gmem_vm_info\{vm="(\d+)",name="((?:[^"\\]|\\.)*)"\} 1$',
                               text, re.M):
        assert vm not in out, f"two gmem_vm_info series for vm {vm}"
        out[vm] = name
    return out


def test_vm_info_names_every_vm_escaped_and_outlives_the_process(gmemd, loads, tmp_path):
    """LIVE: gmem_vm_info{vm,name} 1 has one series per VM in the model, named from the VMM's
    comm (its command line names no guest) with the quote and backslash escaped and a non-UTF-8
    byte replaced; promtool accepts it; the snapshot carries the same name. VMs that exit
    before the next scrape keep their name (read at create, not at scrape), and their series
    goes when the VM retires."""
    vms, _ = lingering(loads, "--vms", "2", "--user-touch", "2")
    odd = Load("--vms", "1", "--user-touch", "2", "--linger", "60",
               exe=named_gmem_load(tmp_path, ODD_NAME))
    loads.append(odd)
    odd_vms = odd.wait_phase("done")["vms"]
    check_exact(gmemd, vms + odd_vms)
    _, _, text = scrape(gmemd.port)
    info = vm_info_lines(text)
    for v in vms:
        assert info[str(v["pid"])] == "gmem-load", info
    assert info[str(odd_vms[0]["pid"])] == ODD_LABEL, info
    # one series per VM the model holds, no more
    assert set(info) == {dict(ls)["vm"] for (n, ls) in parse_prom(text)[0] if n == "gmem_files"}
    rc, out = promtool("check", "metrics", stdin=text)
    assert rc == 0 and out.strip() == "", out
    snap = {v["vm"]: v for v in gmemd.call({"cmd": "snapshot"})["model"]["vms"]}
    assert snap[odd_vms[0]["pid"]]["name"] == ODD_SHOWN
    assert snap[vms[0]["pid"]]["name"] == "gmem-load"

    # short-lived: the VMs live half a second, and are gone before the scrape. (A VMM gone
    # before gmemd reads its first record, within ~100 ms, cannot be named from /proc.)
    short = run_load("--vms", "2", "--user-touch", "1", "--linger", "0.5",
                     exe=named_gmem_load(tmp_path, b"short-vm"))["exit"]["vms"]
    for v in short:
        assert not os.path.exists(f"/proc/{v['pid']}")
    gmemd.scan()
    info = vm_info_lines(scrape(gmemd.port)[2])
    for v in short:
        assert info.get(str(v["pid"])) == "short-vm", info


def test_vm_info_retires_with_the_vm(loads, tmp_path):
    """LIVE: a VM's gmem_vm_info series goes when the VM retires (--retire-after 1), like its
    other series, so names add one series per live VM and no more."""
    require_live()
    d = Gmemd("--retire-after", "1")
    try:
        ld = Load("--vms", "1", "--user-touch", "1", "--linger", "60",
                  exe=named_gmem_load(tmp_path, b"retiring"))
        loads.append(ld)
        pid = str(ld.wait_phase("done")["vms"][0]["pid"])
        wait_until(lambda: vm_info_lines(d.metrics_text()).get(pid) == "retiring",
                   timeout=15, what="the VM's gmem_vm_info")
        ld.resume()
        ld.finish()
        d.scan()
        wait_until(lambda: pid not in vm_info_lines(d.metrics_text()), timeout=15,
                   what="the retired VM's gmem_vm_info gone")
        m = d.metrics()
        assert not m.has("gmem_files", vm=pid) and not m.has("gmem_vm_info", vm=pid)
    finally:
        assert d.stop() == 0, d.output()


def test_openmetrics_negotiation(gmemd, loads):
    """LIVE: an OpenMetrics Accept (Prometheus's own header too) gets OpenMetrics 1.0 ending in
    one `# EOF`; anything else gets text 0.0.4 without it; both carry the same samples."""
    vms, _ = lingering(loads, "--vms", "1", "--files", "2", "--user-touch", "5")
    check_exact(gmemd, vms)
    for accept in (OM_ACCEPT, PROM_ACCEPT, "application/openmetrics-text"):
        status, ctype, om = scrape(gmemd.port, accept)
        assert status == 200
        assert ctype == "application/openmetrics-text; version=1.0.0; charset=utf-8", accept
        assert om.endswith("\n# EOF\n") and om.count("# EOF") == 1
    for accept in (None, "text/plain", "text/plain;version=0.0.4", "*/*", "application/json"):
        status, ctype, text = scrape(gmemd.port, accept)
        assert status == 200
        assert ctype == "text/plain; version=0.0.4; charset=utf-8", accept
        assert "# EOF" not in text
    # OpenMetrics names counters' families without _total and has an info type
    assert "# TYPE gmem_pages_allocated counter\n" in om
    assert "# TYPE gmem_pages_allocated_total" not in om
    assert "# TYPE gmemscope_probe info\n" in om
    assert "# TYPE gmem_pages_allocated_total counter\n" in text
    # the same samples: our VM's, and the probe table (other tests' VMs may be churning)
    mine = str(vms[0]["pid"])

    def stable(text):
        samples, _ = parse_prom(text)
        return {k: v for k, v in samples.items()
                if dict(k[1]).get("vm") == mine or k[0] == "gmemscope_probe_info"}
    a, b = stable(om), stable(text)
    assert len(a) > 20 and a == b  # the VM's ~16 series and the probe table
    # HEAD: headers only
    status, ctype, body = scrape(gmemd.port, method="HEAD")
    assert status == 200 and body == ""


# ---- a real Prometheus --------------------------------------------------------------------


class Prometheus:
    """Debian's prometheus on a free loopback port with its own data directory, running the
    shipped example configuration and rules with the target and intervals substituted."""

    def __init__(self, target, rules=True, config=None):
        self.dir = tempfile.mkdtemp(prefix="gmem-prom-")
        self.port = free_port()
        cfg = config or open(os.path.join(EXAMPLES, "prometheus.yml")).read()
        targets = "', '".join([target] if isinstance(target, str) else target or [])
        for old, new in (() if config else
                         (("targets: ['localhost:9477']", f"targets: ['{targets}']"),
                         ("scrape_interval: 15s", "scrape_interval: 1s"),
                         ("evaluation_interval: 15s", "evaluation_interval: 1s"),
                         ("scrape_timeout: 10s", "scrape_timeout: 1s"))):
            assert old in cfg, f"examples/prometheus/prometheus.yml no longer has {old!r}"
            cfg = cfg.replace(old, new)
        if not rules:
            cfg = cfg.replace("  - gmemscope-rules.yml\n", "")
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            f.write(cfg)
        shutil.copy(os.path.join(EXAMPLES, "gmemscope-rules.yml"), self.dir)
        self.log = open(os.path.join(self.dir, "prometheus.log"), "w+")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.dir}/prometheus.yml",
             f"--storage.tsdb.path={self.dir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir)
        try:
            wait_until(self.ready, timeout=30, what="prometheus ready")
        except AssertionError:
            self.stop()
            raise AssertionError(f"prometheus did not start: {self.output()}")

    def output(self):
        self.log.flush()
        return open(self.log.name).read()

    def ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited {self.proc.returncode}: {self.output()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.load(r)
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr):
        """{frozenset(labels without __name__): value} of an instant query."""
        out = {}
        for r in self.api("query", query=expr)["result"]:
            labels = {k: v for k, v in r["metric"].items() if k != "__name__"}
            out[frozenset(labels.items())] = float(r["value"][1])
        return out

    def value(self, expr):
        res = self.query(expr)
        assert len(res) <= 1, f"{expr}: {res}"
        return next(iter(res.values())) if res else None

    def stop(self):
        stop_process(self.proc, signal.SIGTERM, timeout=20)
        shutil.rmtree(self.dir, ignore_errors=True)


def prom_truth_ok(prom, vms):
    """Compares every ground-truth series with Prometheus's latest sample; returns the diff."""
    diff = {}
    for v in vms:
        for k, want in vm_truth(v).items():
            name, vm = k[0], k[1]
            sel = f'vm="{vm}"'
            if name == "gmem_pages_allocated_total":
                sel += f',source="{k[2]}"'
            elif name == "gmem_conversions_total":
                sel += f',to="{k[2]}",result="{k[3]}"'
            elif name in ("gmem_file_size_bytes", "gmem_populated_bytes"):
                sel += f',gmem="{k[2]}"'
            got = prom.value(f'{name}{{job="gmemscope",{sel}}}')
            if got is None and want == 0 and name in ("gmem_file_size_bytes",
                                                       "gmem_populated_bytes"):
                continue
            if got != want:
                diff[k] = (got, want)
    return diff


def test_real_prometheus_scrapes_exact_values(gmemd, loads):
    """LIVE: Prometheus scrapes gmemd every second (OpenMetrics, as it asks) using the example
    configuration and rules; its API returns gmem-load's numbers for every series of every VM,
    the recording rules compute from them, every rule evaluates cleanly; after the VMs close
    their files Prometheus sees the releases too."""
    vms, load = lingering(loads, "--vms", "2", "--files", "2", "--user-touch", "10",
                          "--guest-touch", "6", "--fallocate", "4", "--punch", "2",
                          "--punch-size", "8K", "--convert", "2", "--secret-pages", "3")
    check_exact(gmemd, vms)
    prom = Prometheus(f"127.0.0.1:{gmemd.port}")
    try:
        last = {}

        def converged():
            last.clear()
            last.update(prom_truth_ok(prom, vms))
            return not last
        try:
            wait_until(converged, timeout=30, interval=0.5, what="Prometheus's values")
        except AssertionError:
            raise AssertionError(f"Prometheus differs (got, want): {last}")
        assert prom.value('up{job="gmemscope"}') == 1
        targets = prom.api("targets")["activeTargets"]
        assert len(targets) == 1
        assert targets[0]["health"] == "up" and targets[0]["lastError"] == "", targets
        assert targets[0]["scrapeUrl"] == f"http://127.0.0.1:{gmemd.port}/metrics"
        # the recording rules, on real series
        for v in vms:
            want = sum(f["populated_pages"] for f in v["files"]) * PAGE
            wait_until(lambda: prom.value(f'vm:gmem_populated_bytes:sum{{vm="{v["pid"]}"}}')
                       == want, timeout=10, what="vm:gmem_populated_bytes:sum")
        groups = prom.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert len(rules) == 10
        wait_until(lambda: all(r["health"] == "ok" and r["lastEvaluation"] >
                               "2000" for g in prom.api("rules")["groups"] for r in g["rules"]),
                   timeout=10, what="every rule evaluated, healthy")
        firing = [a["labels"]["alertname"] for a in prom.api("alerts")["alerts"]
                  if a["state"] == "firing"]
        assert "GmemscopeEventsDropped" not in firing and "GmemscopeDown" not in firing
        # the VMs close their files and exit: Prometheus sees it
        load.resume()
        final = load.finish()["vms"]
        check_exact(gmemd, final)
        wait_until(lambda: not prom_truth_ok(prom, final), timeout=30, interval=0.5,
                   what="Prometheus sees the releases")
        for v in final:
            assert prom.value(f'gmem_files{{vm="{v["pid"]}"}}') == 0
            assert prom.value(f'gmem_files_released_total{{vm="{v["pid"]}"}}') == 2
    finally:
        prom.stop()


def dashboard_exprs(doc):
    """Every PromQL expression of a Grafana dashboard: its panels' targets, rows' too."""
    out = []

    def walk(panels):
        for p in panels:
            out.extend(t["expr"] for t in p.get("targets", []))
            walk(p.get("panels", []))
    walk(doc["panels"])
    return out


def test_grafana_dashboard_every_query_returns_data(gmemd, loads, tmp_path):
    """LIVE and CONSTRUCTED: every PromQL expression of examples/grafana/gmemscope.json, run
    through a real Prometheus's query API, returns data with a finite value. Prometheus scrapes
    gmemd while gmem-load runs named VMs (every allocation source, punches, refused
    conversions, secretmem), and gmemtrace replay serving the constructed scenarios for what
    this kernel cannot produce (conversion histograms, SNP RMP, TDX, huge-page splits), the
    conversions paced over a few seconds so that rate() sees them. The dashboard is standard
    Grafana JSON on a Prometheus datasource variable, and gmem_vm_info's name reaches
    Prometheus unescaped, the same string gmemd read."""
    from test_gmemtrace import GMEMTRACE, Replay
    doc = json.load(open(DASHBOARD))
    assert doc["templating"]["list"][0] == {**doc["templating"]["list"][0], "name": "datasource",
                                            "type": "datasource", "query": "prometheus"}
    ids = []

    def panels(ps):
        for p in ps:
            ids.append(p["id"])
            assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
            if p["type"] != "row":
                assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            panels(p.get("panels", []))
    panels(doc["panels"])
    assert len(ids) == len(set(ids))
    exprs = dashboard_exprs(doc)
    assert len(exprs) >= 20 and all("$" not in e for e in exprs), exprs

    odd = Load("--vms", "2", "--files", "2", "--user-touch", "10", "--guest-touch", "6",
               "--fallocate", "4", "--punch", "2", "--convert", "2", "--secret-pages", "3",
               "--linger", "120", exe=named_gmem_load(tmp_path, ODD_NAME))
    loads.append(odd)
    vms = odd.wait_phase("done")["vms"]
    check_exact(gmemd, vms)
    recs = {}
    for scen in ("private-mem-conversions", "snp-boot", "tdx-guest", "hugepage-splits"):
        recs[scen] = str(tmp_path / f"{scen}.gmtr")
        p = subprocess.run([GMEMTRACE, "scenario", scen, "-o", recs[scen]], capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0, p.stderr
    replays = [Replay(recs[s], "--max") for s in ("snp-boot", "tdx-guest", "hugepage-splits")]
    paced_port = free_port()
    prom = None
    try:
        prom = Prometheus([f"127.0.0.1:{gmemd.port}", f"127.0.0.1:{paced_port}"] +
                          [f"127.0.0.1:{r.port}" for r in replays], rules=False)
        # the scenario's conversions (its first 7 ms) stretched over 7 s, Prometheus scraping
        replays.append(Replay(recs["private-mem-conversions"], "--speed", "0.001",
                              port=paced_port))
        missing = {}

        def all_have_data():
            missing.clear()
            for e in exprs:
                res = prom.query(e)
                if not any(v == v and abs(v) != float("inf") for v in res.values()):
                    missing[e] = res
            return not missing
        try:
            wait_until(all_have_data, timeout=60, interval=1, what="data for every query")
        except AssertionError:
            raise AssertionError("dashboard queries without data:\n" +
                                 "\n".join(f"{e}: {r}" for e, r in missing.items()))
        named = prom.query(f'gmem_vm_info{{job="gmemscope",instance="127.0.0.1:{gmemd.port}"}}')
        names = {dict(k)["vm"]: dict(k).get("name") for k in named}
        for v in vms:
            assert names[str(v["pid"])] == ODD_SHOWN, names
        # the join the panels use gives every gmem-load VM its name
        joined = prom.query(f'sum by (instance, vm) (gmem_populated_bytes{{instance='
                            f'"127.0.0.1:{gmemd.port}"}}) * on (instance, vm) group_left '
                            f'(name) gmem_vm_info')
        got = {dict(k)["vm"]: (dict(k)["name"], val) for k, val in joined.items()}
        for v in vms:
            assert got[str(v["pid"])] == (ODD_SHOWN, sum(f["populated_pages"]
                                                        for f in v["files"]) * PAGE)
    finally:
        if prom:
            prom.stop()
        for r in replays:
            r.stop()


class _Recorder(BaseHTTPRequestHandler):
    """A loopback proxy in front of gmemd that remembers what Prometheus asked for and got."""
    seen = []
    upstream = None

    def do_GET(self):
        req = urllib.request.Request(f"http://{self.upstream}{self.path}")
        accept = self.headers.get("Accept")
        if accept:
            req.add_header("Accept", accept)
        with urllib.request.urlopen(req, timeout=5) as r:
            body, ctype = r.read(), r.headers.get("Content-Type")
        self.seen.append((accept, ctype))
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_prometheus_negotiates_openmetrics_and_parses_it(gmemd, loads):
    """LIVE: what Prometheus really sends and gets, seen through a loopback proxy: it asks for
    OpenMetrics, gmemd answers OpenMetrics, and Prometheus's parser takes it (target up, no
    error, samples stored)."""
    vms, _ = lingering(loads, "--vms", "1", "--user-touch", "3")
    check_exact(gmemd, vms)
    _Recorder.seen = []
    _Recorder.upstream = f"127.0.0.1:{gmemd.port}"
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    th = threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.1},
                          daemon=True)
    th.start()
    prom = Prometheus(f"127.0.0.1:{proxy.server_address[1]}", rules=False)
    try:
        pid = vms[0]["pid"]
        wait_until(lambda: prom.value(f'gmem_pages_allocated_total{{vm="{pid}",'
                                      f'source="user_fault"}}') == 3, timeout=20,
                   what="a sample through the proxy")
        t = prom.api("targets")["activeTargets"][0]
        assert t["health"] == "up" and t["lastError"] == "", t
        assert _Recorder.seen
        for accept, ctype in _Recorder.seen:
            assert accept.startswith("application/openmetrics-text"), accept
            assert ctype.startswith("application/openmetrics-text; version=1.0.0"), ctype
    finally:
        prom.stop()
        proxy.shutdown()
        proxy.server_close()
        th.join(timeout=5)


def test_file_series_cap(loads):
    """LIVE: with --max-file-series 4 and 6 live files, /metrics keeps the 4 lowest (vm, ino)
    in each per-file family and says how many it left out; per-VM series stay complete; the
    scrape stays lint-clean."""
    require_live()
    d = Gmemd("--max-file-series", "4")
    try:
        vms, _ = lingering(loads, "--vms", "2", "--files", "3", "--user-touch", "2")
        files = sorted((v["pid"], f["ino"]) for v in vms for f in v["files"])
        assert len(files) == 6

        def capped():
            d.scan()
            m = d.metrics()
            return m if all(m.get("gmem_files", vm=v["pid"]) == 3 for v in vms) else None
        m = wait_until(capped, timeout=15, what="six files")
        # only our VMs' files on this gmemd? others may exist: the cap keeps the lowest
        shown = sorted((int(dict(l)["vm"]), int(dict(l)["gmem"]))
                       for (n, l) in m.samples if n == "gmem_populated_bytes")
        sizes = sorted((int(dict(l)["vm"]), int(dict(l)["gmem"]))
                       for (n, l) in m.samples if n == "gmem_file_size_bytes")
        assert len(shown) == 4 and shown == sizes
        total = int(sum(v for (n, l), v in m.samples.items() if n == "gmem_files"))
        assert m.get("gmemscope_file_series_capped") == total - 4
        assert m.types["gmemscope_file_series_capped"] == "gauge"
        # the counter of what the cap dropped: two series per file left out, every scrape
        before = m.get("gmemscope_file_series_dropped_total")
        assert m.types["gmemscope_file_series_dropped_total"] == "counter"
        assert before >= 2 * (total - 4)
        again = d.metrics()
        assert again.get("gmemscope_file_series_dropped_total") - before == 2 * (total - 4)
        mine = [f for f in files if f in shown]
        assert mine == [f for f in files if f <= shown[-1]]
        rc, out = promtool("check", "metrics", stdin=m.text)
        assert rc == 0 and out.strip() == "", out
    finally:
        assert d.stop() == 0


# ---- bad clients ----------------------------------------------------------------------------


def raw(port, data, timeout=3.0, read=True):
    """Sends bytes on a fresh connection; returns what came back before close or timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out and b"Content-Length: 0" in out:
                break
        return out
    finally:
        s.close()


def status_of(resp):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", resp)
    return int(m.group(1)) if m else None


def timed_scrape(port):
    t0 = time.monotonic()
    status, _, text = scrape(port)
    assert status == 200 and text.startswith("# HELP gmem_vm_info ")  # the first family
    return time.monotonic() - t0


def test_malformed_requests_and_unknown_paths(gmemd, loads):
    """LIVE: garbage, a huge header, a bad version, missing Host, wrong methods and unknown
    paths are refused with 4xx/5xx (or a close), counted where they reach gmemd's handler;
    gmemd keeps serving and its counters stay exact."""
    vms, _ = lingering(loads, "--vms", "1", "--files", "2", "--user-touch", "7")
    check_exact(gmemd, vms)
    bad0 = gmemd.metrics().get("gmemscope_http_bad_requests_total")
    p = gmemd.port
    results = {
        "garbage": raw(p, b"\x00\x01\x02GARBAGE \xff\xfe\r\n\r\n"),
        "no-version": raw(p, b"GET /metrics\r\n\r\n"),
        "bad-version": raw(p, b"GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n"),
        "no-host": raw(p, b"GET /metrics HTTP/1.1\r\n\r\n"),
        "huge-header": raw(p, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " +
                           b"a" * (256 * 1024) + b"\r\n\r\n"),
        "bad-length": raw(p, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
    }
    # refused (or closed: None); HTTP/1.1 without Host is served, libmicrohttpd is lenient
    allowed = {"garbage": {None, 400}, "no-version": {None, 400}, "bad-version": {None, 400, 505},
               "no-host": {200, 400}, "huge-header": {None, 400, 413, 431},
               "bad-length": {None, 400, 413}}
    for what, resp in results.items():
        assert status_of(resp) in allowed[what], (what, resp[:200])
    # these reach the handler: refused and counted
    counted = 0
    for method, path, want in (("POST", "/metrics", 405), ("DELETE", "/", 405),
                               ("PUT", "/metrics", 405), ("GET", "/nope", 404),
                               ("GET", "/metrics/", 404), ("GET", "/metricsx", 404),
                               ("GET", "/../etc/passwd", 404)):
        resp = raw(p, f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                   .encode())
        assert status_of(resp) == want, (method, path, resp[:200])
        counted += 1
    status, ctype, body = scrape(p, path="/nope")
    assert status == 404 and body == "not found: try /metrics\n"
    counted += 1
    status, ctype, body = scrape(p, path="/")
    assert status == 200 and 'href="/metrics"' in body
    status, _, _ = scrape(p, path="/metrics?format=x")
    assert status == 200
    m = gmemd.metrics()
    assert m.get("gmemscope_http_bad_requests_total") - bad0 == counted
    assert timed_scrape(p) < 1.0
    check_exact(gmemd, vms)


def test_slow_and_idle_clients_do_not_block_scrapes(gmemd, loads):
    """LIVE: 100 slowloris connections trickling a request, 20 that ask for /metrics and never
    read, and 20 that connect and say nothing, all at once: a normal scrape still answers in
    under a second, and the counters stay exact."""
    vms, _ = lingering(loads, "--vms", "1", "--files", "4", "--user-touch", "9")
    check_exact(gmemd, vms)
    p = gmemd.port
    held = []
    stop = threading.Event()

    def trickle(s):
        req = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"z" * 200
        for i in range(len(req)):
            if stop.wait(0.05):
                return
            try:
                s.send(req[i:i + 1])
            except OSError:
                return
    try:
        threads = []
        for _ in range(100):
            s = socket.create_connection(("127.0.0.1", p), timeout=5)
            held.append(s)
            th = threading.Thread(target=trickle, args=(s,), daemon=True)
            th.start()
            threads.append(th)
        for _ in range(20):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(5)
            s.connect(("127.0.0.1", p))
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            held.append(s)
        for _ in range(20):
            held.append(socket.create_connection(("127.0.0.1", p), timeout=5))
        worst = max(timed_scrape(p) for _ in range(20))
        assert worst < 1.0, f"a scrape took {worst:.3f}s behind slow clients"
    finally:
        stop.set()
        for s in held:
            s.close()
    assert timed_scrape(p) < 1.0
    check_exact(gmemd, vms)


def test_many_concurrent_clients_while_churning(gmemd):
    """LIVE: 64 threads scrape as fast as they can beside 150 idle connections while two VMs
    churn guest_memfd pages: every scrape is answered 200 and counted exactly, and every
    churned page, punch and free is in the counters afterwards, nothing dropped. Then 400 idle
    idle connections are held: scrapes are still answered at once (the connection limit is
    1024); once they go, gmemd answers as before, its counters still exact."""
    p = gmemd.port
    scrapes0 = gmemd.metrics().get("gmemscope_scrapes_total")
    done = threading.Event()
    ok, failed = [0], []
    lock = threading.Lock()

    def hammer():
        while not done.is_set():
            try:
                status, _, text = scrape(p)
                assert status == 200 and text.endswith("\n")
                with lock:
                    ok[0] += 1
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                with lock:
                    failed.append(repr(e))
                return
    idle = []
    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(64)]
    for th in threads:
        th.start()
    try:
        for _ in range(150):
            idle.append(socket.create_connection(("127.0.0.1", p), timeout=2))
        out = run_load("--vms", "2", "--churn", "--duration", "3", "--user-touch", "16",
                       "--fallocate", "16", "--secret-pages", "2")
    finally:
        done.set()
        for th in threads:
            th.join(timeout=15)
        for s in idle:
            s.close()
    assert not failed, failed[:5]
    assert ok[0] > 100, f"only {ok[0]} scrapes in the churn"
    m = gmemd.metrics()
    # every scrape we made was served and counted: ours, and this one
    assert m.get("gmemscope_scrapes_total") - scrapes0 == ok[0] + 1
    final = out["exit"]["vms"]
    assert sum(sum(v["pages_allocated"].values()) for v in final) > 1000
    check_exact(gmemd, final, timeout=20)
    # per VM: another workload on the host may overflow the ring, ours must not have
    m = gmemd.metrics()
    assert not [v["pid"] for v in final if m.has("gmem_events_dropped_total", vm=v["pid"])]

    # a pile of idle connections no longer holds scrapes off
    idle = []
    try:
        for _ in range(400):
            idle.append(socket.create_connection(("127.0.0.1", p), timeout=2))
        time.sleep(0.5)  # let the server accept them all
        assert timed_scrape(p) < 1.0, "400 idle connections must not block a scrape"
    finally:
        for s in idle:
            s.close()
    def serves():
        try:
            status, _, _ = scrape(p, timeout=1)
            return status == 200
        except OSError:
            return False
    wait_until(serves, timeout=20, interval=0.5, what="serving again")
    assert timed_scrape(p) < 1.0
    check_exact(gmemd, final)


# ---- the shipped examples -------------------------------------------------------------------


def test_example_rules_and_config_pass_promtool():
    """The example rules and scrape configuration pass promtool's checks, and the rules'
    unit tests (examples/prometheus/gmemscope-rules.test.yml) pass."""
    rc, out = promtool("check", "rules", os.path.join(EXAMPLES, "gmemscope-rules.yml"))
    assert rc == 0 and "SUCCESS: 10 rules found" in out, out
    rc, out = promtool("check", "config", os.path.join(EXAMPLES, "prometheus.yml"))
    assert rc == 0 and "is valid prometheus config file syntax" in out, out
    assert "SUCCESS: 1 rule files found" in out, out
    rc, out = promtool("test", "rules", os.path.join(EXAMPLES, "gmemscope-rules.test.yml"))
    assert rc == 0 and "SUCCESS" in out, out


def test_build_info_and_process_series(gmemd):
    """LIVE: gmemscope_build_info says what gmemd --version says; the process_* series every
    exporter has describe gmemd itself."""
    m = gmemd.metrics()
    ver = subprocess.run([GMEMD, "--version"], capture_output=True, text=True, timeout=30)
    assert ver.returncode == 0, ver.stderr
    # "gmemd 0.1.0 (git REV, libbpf X.Y)"
    words = ver.stdout.replace("(", " ").replace(")", " ").replace(",", " ").split()
    version, rev, libbpf = words[1], words[3], words[5]
    assert m.get("gmemscope_build_info", version=version, revision=rev, libbpf=libbpf) == 1
    assert m.types["gmemscope_build_info"] == "gauge"
    pid = gmemd.proc.pid
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    assert abs(m.get("process_open_fds") - fds) <= 3, (m.get("process_open_fds"), fds)
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert 0.5 * rss <= m.get("process_resident_memory_bytes") <= 2 * rss
    assert abs(m.get("process_start_time_seconds") - time.time()) < 600
    assert m.get("process_cpu_seconds_total") > 0
    assert m.types["process_cpu_seconds_total"] == "counter"
