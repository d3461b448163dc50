# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""LIVE: huge-page policies in gmemd, on this machine's kernel, against gmem-load's ground truth.

gmemd --policy runs the policy in the kernel's BPF VM on the events it observes (its huge-page
model of every guest_memfd file), exports gmem_policy_decisions_total, answers "decide" over
the control socket, and swaps policies at run time. gmem-load --advise asks before each punch
hole through the client library (include/gmem_advice.h).

The numbers are exact per VM (the "policy" command's per-VM view): gmemd sees every VM on the
host, so the host-wide metric is checked for consistency with gmemd's own totals instead.

What this kernel cannot show live: it has no KVM_CAP_MEMORY_ATTRIBUTES (no conversions) and
mainline guest_memfd has no huge folios, so the live streams hold faults, fallocates and punch
holes only; the policies' conversion behaviour is checked on CONSTRUCTED streams in
tests/unit/test_policy_whatif.c.
"""
import json
import os
import socket
import struct
import subprocess
import time

import pytest

from gmemtest import (BIN, BUILD, GMEMD, Gmemd, Load, require_live, run_load, subscribe,
                      wait_until)

GMEM_POLICY = os.path.join(BIN, "gmem-policy")
TEST_POLICIES = os.path.join(BUILD, "tests", "policies")
REC = struct.Struct("<QQQQQIIIiIBBH")
FILE_CREATE, FILE_RELEASE, PUNCH_HOLE, LOST = 1, 2, 8, 21
PAGE = 4096

# gmem-load --no-vcpu --user-touch 8 --punch 4 on one 2 MiB file, with buddy: the first fault
# allocates the whole 2M (alloc_order 2m); punching page 0 splits it minimally (9 -> 8: 1m),
# which leaves [1] o0, [2,4) o1, [4,8) o2 ...; page 1 is a folio of its own (freed, nothing
# asked); page 2 splits [2,4) to 4k, which is no choice (an order-1 folio), so nothing is
# asked; page 3 is freed.
BUDDY_8_4 = {"split": {"1M": 1}, "merge": {}, "alloc_order": {"2M": 1}}


@pytest.fixture
def buddy():
    require_live()
    d = Gmemd("--policy", "buddy")
    yield d
    rc = d.stop()
    assert rc == 0, f"gmemd exited {rc} on SIGTERM: {d.output()}"


def vm_decisions(d, vm):
    return d.call({"cmd": "policy", "vm": vm})["vm"]["decisions"]


def metric_rows(m):
    out = {}
    for (name, labels), v in m.samples.items():
        if name == "gmem_policy_decisions_total":
            l = dict(labels)
            out[(l["policy"], l["callback"], l["decision"])] = v
    return out


def json_rows(state):
    out = {}
    for p in state["policies"]:
        for cb, slots in p["decisions"].items():
            for dec, n in slots.items():
                out[(p["name"], cb, dec)] = n
    return out


def test_gmemd_policy_exports_decisions(buddy):
    """LIVE: gmemd --policy buddy decides on what gmem-load does, exactly per VM; the metric
    gmem_policy_decisions_total carries gmemd's own totals; struct_ops is reported as not
    registered by this kernel, and the syscall path runs."""
    out = buddy.output()
    assert "policy buddy" in out
    assert "struct_ops: not registered by this kernel" in out
    st = buddy.call({"cmd": "policy"})
    assert st["ok"] and st["active"]["name"] == "buddy"
    assert st["active"]["struct_ops"] == "not_registered"
    m = buddy.metrics()
    assert m.types["gmem_policy_decisions_total"] == "counter"

    v = run_load("--no-vcpu", "--user-touch", "8", "--punch", "4")["exit"]["vms"][0]
    assert v["punch_holes"] == 4
    buddy.scan()
    assert vm_decisions(buddy, v["pid"]) == {"buddy": BUDDY_8_4}

    # the metric is gmemd's totals (all VMs on the host); read both until the host is quiet
    def consistent():
        a = metric_rows(buddy.metrics())
        j = json_rows(buddy.call({"cmd": "policy"}))
        b = metric_rows(buddy.metrics())
        return (a == b == j) or None
    wait_until(consistent, timeout=20, what="metric == gmemd's totals")
    rows = metric_rows(buddy.metrics())
    for cb, slots in BUDDY_8_4.items():
        for dec, n in slots.items():
            assert rows[("buddy", cb, dec)] >= n


def test_decide_answers_on_gmemds_model(buddy):
    """LIVE: "decide" asks the active policy about an operation on gmemd's model of a live
    file, changes nothing, and counts the answers as advice."""
    load = Load("--no-vcpu", "--user-touch", "512", "--linger", "30")
    try:
        done = load.wait_phase("done")
        ino = done["vms"][0]["files"][0]["ino"]
        pid = done["vms"][0]["pid"]
        # every page was touched: one 2M folio
        r = buddy.call({"cmd": "decide", "op": "punch", "ino": ino, "offset": PAGE,
                        "len": PAGE})
        assert r["ok"], r
        assert r["policy"] == "buddy"
        assert [(d["callback"], d["index"], d["order"], d["answer"], d["decision"],
                 d["clamped"]) for d in r["decisions"]] == [("split", 0, 9, 8, "1M", False)]
        # asking changed nothing: the same question, the same answer
        assert buddy.call({"cmd": "decide", "op": "punch", "ino": ino, "offset": PAGE,
                           "len": PAGE})["decisions"] == r["decisions"]
        # a fault on a present page needs no decision
        r = buddy.call({"cmd": "decide", "op": "fault", "ino": ino, "index": 7})
        assert r["ok"] and r["decisions"] == []
        # gmem-load's files start shared (INIT_SHARED): converting a page to private splits
        r = buddy.call({"cmd": "decide", "op": "convert", "ino": ino, "offset": 8 * PAGE,
                        "len": PAGE, "to": "private"})
        assert [(d["index"], d["order"], d["answer"]) for d in r["decisions"]] == [(0, 9, 8)]
        r = buddy.call({"cmd": "decide", "op": "convert", "ino": ino, "offset": 8 * PAGE,
                        "len": PAGE, "to": "shared"})
        assert r["decisions"] == [], "already shared: nothing to split"
        # a context given whole: buddy merges 100 ms after the last conversion
        r = buddy.call({"cmd": "decide", "callback": "merge",
                        "ctx": {"order": 9, "folios": 3, "hist": {"since_conv_ns": 0}}})
        assert [(d["callback"], d["answer"], d["decision"]) for d in r["decisions"]] == \
            [("merge", 100, "delay")]
        # refusals say why
        r = buddy.call({"cmd": "decide", "op": "punch", "ino": 1, "offset": 0, "len": PAGE})
        assert not r["ok"] and "has no guest_memfd inode 1" in r["error"]
        r = buddy.call({"cmd": "decide", "callback": "splat", "ctx": {}})
        assert not r["ok"] and r["error"].startswith("bad request")
        r = buddy.call({"cmd": "decide", "callback": "split", "ctx": {"ordr": 9}})
        assert not r["ok"] and "ordr: no such field" in r["error"]
        r = buddy.call({"cmd": "decide", "op": "convert", "vm": pid, "gpa": 1 << 40,
                        "size": PAGE, "to": "shared"})
        assert not r["ok"] and "maps gpa" in r["error"]
        st = buddy.call({"cmd": "policy", "vm": pid})
        assert st["policies"][0]["advice"] == 4  # punch twice, convert, merge
        assert st["vm"]["decisions"] == {"buddy": {"split": {}, "merge": {},
                                                   "alloc_order": {"2M": 1}}}
    finally:
        load.resume()
    load.finish()


def test_swap_keeps_the_model_and_refuses_broken_policies(buddy):
    """LIVE: policy_set swaps at run time on the same model; a policy that fails to verify,
    refuses in its init, or does not exist leaves the active one in place and says why."""
    load = Load("--no-vcpu", "--user-touch", "300", "--linger", "30")
    try:
        done = load.wait_phase("done")
        pid = done["vms"][0]["pid"]
        buddy.scan()
        before = buddy.call({"cmd": "policy"})["model"]

        for spec, why in [
                (os.path.join(TEST_POLICIES, "test_unverifiable.bpf.o"),
                 "the verifier rejected gmem_split: R0 invalid mem access "
                 "'map_value_or_null'"),
                (os.path.join(TEST_POLICIES, "test_initfail.bpf.o"),
                 "init refused, returning -22"),
                ("nosuch", "no policy 'nosuch'"),
                ("/nonexistent/x.bpf.o", "No such file or directory")]:
            r = buddy.call({"cmd": "policy_set", "policy": spec})
            assert not r["ok"], r
            assert why in r["error"], r["error"]
            assert r["error"].endswith("policy 'buddy' stays active"), r["error"]
            assert r["active"]["name"] == "buddy"
        st = buddy.call({"cmd": "policy"})
        assert st["active"]["name"] == "buddy" and st["failed_swaps"] == 4
        assert st["last_error"].endswith("policy 'buddy' stays active")

        r = buddy.call({"cmd": "policy_set", "policy": "churn"})
        assert r["ok"] and r["active"]["name"] == "churn" and r["previous"] == "buddy"
        after = buddy.call({"cmd": "policy"})["model"]
        # the model is the same one: nothing was lost in the swap
        assert after["records"] >= before["records"]
        assert after["populated_bytes"] >= 2 << 20 and before["populated_bytes"] >= 2 << 20
        ino = done["vms"][0]["files"][0]["ino"]
        # churn answers on the state buddy's decisions built: one 2M folio (300 pages touched)
        r = buddy.call({"cmd": "decide", "op": "punch", "ino": ino, "offset": 0, "len": PAGE})
        assert r["policy"] == "churn"
        assert [(d["order"], d["answer"]) for d in r["decisions"]] == [(9, 8)]
    finally:
        load.resume()
    load.finish()
    # what the VM did next is decided by churn, and counted under it
    v = run_load("--no-vcpu", "--user-touch", "8", "--punch", "4")["exit"]["vms"][0]
    buddy.scan()
    assert vm_decisions(buddy, v["pid"]) == {"churn": BUDDY_8_4}
    assert vm_decisions(buddy, pid) == {"buddy": {"split": {}, "merge": {},
                                                  "alloc_order": {"2M": 1}}}


def test_gmemd_refuses_a_broken_policy_at_start():
    """LIVE: gmemd --policy with a policy the verifier rejects exits 1 and says why."""
    require_live()
    p = subprocess.run([GMEMD, "--listen", "127.0.0.1:0", "--socket", "/tmp/gmemd-bad.sock",
                        "--policy", os.path.join(TEST_POLICIES, "test_unverifiable.bpf.o")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "the verifier rejected gmem_split" in p.stderr
    assert "no policy is active" in p.stderr


def test_gmem_load_asks_through_the_client_library(buddy):
    """LIVE: gmem-load --advise asks gmemd before every punch hole (include/gmem_advice.h);
    every question is answered, with exactly the decisions buddy's model needs."""
    v = run_load("--no-vcpu", "--user-touch", "8", "--punch", "4", "--advise",
                 buddy.socket)["exit"]["vms"][0]
    # asked before each punch: page 0 (split 2M); pages 1, 2 ([2,4) o1: no choice), 3: none
    assert v["advice"] == {"asked": 4, "answered": 4, "decisions": 1, "errors": 0}
    churn = run_load("--no-vcpu", "--churn", "--iterations", "50", "--user-touch", "16",
                     "--fallocate", "16", "--advise", buddy.socket)["exit"]["totals"]
    assert churn["advice"]["asked"] == churn["punch_holes"] == 100
    assert churn["advice"]["answered"] == 100
    assert churn["advice"]["errors"] == 0


def test_advice_without_a_policy_is_refused_not_fatal():
    """LIVE: against a gmemd with no policy, every question is refused (and counted); the
    workload itself is unaffected."""
    require_live()
    d = Gmemd()
    try:
        out = run_load("--no-vcpu", "--user-touch", "4", "--punch", "2", "--advise", d.socket)
        v = out["exit"]["vms"][0]
        assert v["punch_holes"] == 2
        assert v["advice"] == {"asked": 2, "answered": 0, "decisions": 0, "errors": 2}
        r = d.call({"cmd": "decide", "op": "fault", "ino": 1, "index": 0})
        assert not r["ok"] and "no policy is active" in r["error"]
    finally:
        assert d.stop() == 0


def capture(d, run):
    """Subscribe, run the workload, and return gmem-load's exit doc and every record of its VM
    (by vm, or by one of its files' inodes), up to the release of its files."""
    s, f, _ = subscribe(d)
    doc = run()
    v = doc["vms"][0]
    inos = {x["ino"] for x in v["files"]}
    d.scan()
    recs, released, lost = [], set(), 0
    s.settimeout(1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and released != inos:
        try:
            rec = f.read(REC.size)
        except (socket.timeout, TimeoutError):
            d.scan()
            continue
        assert len(rec) == REC.size
        r = REC.unpack(rec)
        kind, vm, ino = r[5], r[6], r[1]
        lost += r[2] if kind == LOST else 0
        if vm == v["pid"] or ino in inos:
            recs.append(rec)
            if kind == FILE_RELEASE:
                released.add(ino)
    s.close()
    assert lost == 0, "the subscriber lost records"
    assert released == inos
    return doc, recs


def test_whatif_on_a_live_gmem_load_stream(tmp_path):
    """LIVE: a gmem-load stream captured from gmemd's subscribe, replayed through split4k,
    buddy and churn (gmem-policy whatif): the decisions are exactly those worked out below.

    Two 2 MiB files, every page touched, then 8 KiB holes at pages 0, 2, 4, 6 of each. Per
    file: one 2M allocation; split4k splits it to 4k at the first hole; buddy (and churn: no
    conversions on this kernel, so no region is ever hot) split it to 1m, then [4,8) to 8k at
    the third hole. No region is ever whole again, so nobody merges and there are no
    ping-pongs; the huge period ends at the first hole for all three, so coverage is the
    same: split4k is the lowest only in the sense of "not higher". Churn's advantage needs
    conversions, which this kernel lacks (see test_policy_whatif.c for those streams)."""
    require_live()
    d = Gmemd()
    try:
        doc, recs = capture(d, lambda: run_load(
            "--no-vcpu", "--files", "2", "--user-touch", "512", "--punch", "4",
            "--punch-size", "8K")["exit"])
    finally:
        assert d.stop() == 0
    v = doc["vms"][0]
    assert v["punch_holes"] == 8
    kinds = [REC.unpack(r)[5] for r in recs]
    assert kinds.count(FILE_CREATE) == 2 and kinds.count(PUNCH_HOLE) == 8
    path = tmp_path / "live.gmem"
    path.write_bytes(b"".join(recs))
    p = subprocess.run([GMEM_POLICY, "whatif", "-j", "-p", "split4k", "-p", "buddy", "-p",
                        "churn", str(path)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["records"] == len(recs)
    pols = {x["name"]: x for x in res["policies"]}
    want_splits = {
        "split4k": [("2M", "4k", 2)],
        "buddy": [("2M", "1M", 2), ("16k", "8k", 2)],
        "churn": [("2M", "1M", 2), ("16k", "8k", 2)],
    }
    for name, x in pols.items():
        assert x["decisions"]["alloc_order"] == 2, name
        assert x["allocs"] == {"2M": 2}, name
        assert sorted((s["from"], s["to"], s["count"]) for s in x["splits"]) == \
            sorted(want_splits[name]), name
        assert x["decisions"]["split"] == sum(c for _, _, c in want_splits[name])
        assert x["merges"] == [] and x["pingpongs"] == 0, name
        assert x["decisions"]["merge"] == 0, name
        assert x["cost"]["clamped"] == {"split": 0, "merge": 0, "alloc_order": 0}
        assert x["cost"]["errors"] == {"split": 0, "merge": 0, "alloc_order": 0}
        assert x["coverage"]["final"] == 0  # released
    assert pols["split4k"]["coverage"]["avg"] == pols["buddy"]["coverage"]["avg"] == \
        pols["churn"]["coverage"]["avg"]
    assert pols["split4k"]["coverage"]["avg"] > 0


def test_gmem_policy_check_cli():
    """LIVE: gmem-policy check loads each shipped policy (exit 0) and flags a policy whose
    answers are out of range (exit 1)."""
    require_live()
    p = subprocess.run([GMEM_POLICY, "check", "split4k", "buddy", "churn"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("not registered by this kernel") == 3
    p = subprocess.run([GMEM_POLICY, "check", "-j",
                        os.path.join(TEST_POLICIES, "test_bad.bpf.o")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert json.loads(p.stdout)["clamped"] == 8  # 2 splits, the merge, the fault; x2


def test_status_and_switch_drive_a_running_gmemd(buddy):
    """LIVE: gmem-policy status and switch are the command line for the control socket's
    policy and policy_set: status names the active policy and its decisions, switch swaps it
    and says what was active; a refused swap exits 1 with gmemd's reason and leaves the
    policy in place, an unreachable gmemd exits 2 and says why, a missing POLICY is a usage
    error."""
    pol = os.path.join(BIN, "gmem-policy")
    sock = ["-s", buddy.socket]
    v = run_load("--no-vcpu", "--user-touch", "8", "--punch", "4")["exit"]["vms"][0]
    buddy.scan()
    # the decisions the socket reports for buddy, as status prints them; host-wide, so other
    # VMs on the host may add some meanwhile: between a look before and one after
    before = buddy.call({"cmd": "policy"})["policies"][0]["decisions"]
    st = subprocess.run([pol, "status", *sock], capture_output=True, text=True, timeout=30)
    after = buddy.call({"cmd": "policy"})["policies"][0]["decisions"]
    assert st.returncode == 0, st.stderr
    assert st.stdout.startswith("active: buddy"), st.stdout
    line = [ln for ln in st.stdout.splitlines() if ln.startswith("decisions by buddy: ")][0]
    shown = {}
    for part in line.split(": ", 1)[1].split("; "):
        cb, *pairs = part.split()
        shown[cb] = {d: int(n) for d, n in (x.split("=") for x in pairs)}
    for cb, by in after.items():
        for dec, n in by.items():
            if n:
                got = shown.get(cb, {}).get(dec, 0)
                assert before[cb].get(dec, 0) <= got <= n, (line, before, after)
    assert vm_decisions(buddy, v["pid"]) == {"buddy": BUDDY_8_4}

    swaps = buddy.call({"cmd": "policy"})["swaps"]
    sw = subprocess.run([pol, "switch", "churn", *sock], capture_output=True, text=True,
                        timeout=60)
    assert sw.returncode == 0, sw.stderr
    assert sw.stdout.strip() == "active: churn (was buddy)"
    assert buddy.call({"cmd": "policy"})["active"]["name"] == "churn"
    js = json.loads(subprocess.run([pol, "status", "-j", *sock], capture_output=True,
                                   text=True, timeout=30).stdout)
    assert js["active"]["name"] == "churn" and js["swaps"] == swaps + 1

    bad = subprocess.run([pol, "switch", "nosuch", *sock], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 1
    assert "no policy 'nosuch'" in bad.stderr and "policy 'churn' stays active" in bad.stderr
    assert buddy.call({"cmd": "policy"})["active"]["name"] == "churn"

    gone = subprocess.run([pol, "status", "-s", "/nonexistent/gmemd.sock"],
                          capture_output=True, text=True, timeout=30)
    assert gone.returncode == 2 and gone.stderr.startswith("gmem-policy: "), gone.stderr
    assert "/nonexistent/gmemd.sock" in gone.stderr
    usage = subprocess.run([pol, "switch", *sock], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 64 and "POLICY" in usage.stderr


def test_gen_writes_a_recording_and_whatif_reads_either_format(tmp_path):
    """CONSTRUCTED: gmem-policy gen writes a gmemtrace recording, marked constructed, that
    gmemtrace reads (report says CONSTRUCTED); gmem-policy whatif reads it, and gives the
    same answers as for the same stream as bare records (gen --raw) and as gmemtrace whatif
    on the same file. gen without -o is a usage error; a damaged recording exits 1, saying
    why, with what could be read still used."""
    require_live()
    rec, raw = tmp_path / "conv.gmtr", tmp_path / "conv.raw"
    args = ["--vcpus", "2", "--iterations", "3"]
    g = subprocess.run([GMEM_POLICY, "gen", *args, "-o", str(rec)], capture_output=True,
                       text=True, timeout=60)
    assert g.returncode == 0, g.stderr
    g = subprocess.run([GMEM_POLICY, "gen", "--raw", *args, "-o", str(raw)],
                       capture_output=True, text=True, timeout=60)
    assert g.returncode == 0, g.stderr
    gmemtrace = os.path.join(BIN, "gmemtrace")
    rep = subprocess.run([gmemtrace, "report", str(rec)], capture_output=True, text=True,
                         timeout=60)
    assert rep.returncode == 0 and "CONSTRUCTED" in rep.stdout, rep.stdout + rep.stderr

    def whatif(tool, path):
        p = subprocess.run([tool, "whatif", "-j", "-p", "buddy", "-p", "churn", str(path)],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        r = json.loads(p.stdout)
        return r["records"], [(x["name"], x["decisions"], x["splits"], x["merges"],
                               x["pingpongs"]) for x in r["policies"]]
    a = whatif(GMEM_POLICY, rec)
    assert a[0] > 100
    assert a == whatif(GMEM_POLICY, raw) == whatif(gmemtrace, rec)

    no_o = subprocess.run([GMEM_POLICY, "gen"], capture_output=True, text=True, timeout=60)
    assert no_o.returncode == 64 and "give -o FILE" in no_o.stderr
    cut = tmp_path / "cut.gmtr"
    data = rec.read_bytes()
    cut.write_bytes(data[:len(data) * 2 // 3])
    p = subprocess.run([GMEM_POLICY, "whatif", "-p", "buddy", str(cut)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 1 and p.stderr.startswith("gmem-policy: "), p.stderr
    assert "policies" in p.stdout or "buddy" in p.stdout
