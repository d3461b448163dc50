# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""LIVE: gmemtop, driven in a real terminal (tmux) and in batch mode, against gmem-load's
ground truth.

gmemtop runs in a shell in a private tmux server; keys go in with send-keys and the screen
comes back with capture-pane. The numbers on screen (files, populated bytes, allocations by
source) must equal what gmem-load says it did, exactly; every key must do what the help says;
quitting must give the shell back a sane terminal. Batch JSON is compared the same way, and
the in-process mode (no gmemd) too, with the default socket hidden in a private mount
namespace so that nothing else on the machine can answer there.
"""
import csv
import re
import io
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from gmemtest import GMEM_LOAD, GMEMD, Gmemd, Load, require_live, wait_until
from tui import GMEMTOP, Tmux, bytes_of, row_order, table

PAGE = 4096
SOURCES = ("user_fault", "guest_fault", "fallocate", "populate", "other")
# a private mount namespace whose /run/gmemscope is empty: no server on the default socket
HIDE_DEFAULT_SOCKET = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                       "mount -t tmpfs tmpfs /run/gmemscope && exec \"$0\" \"$@\""]


@pytest.fixture
def gmemd():
    require_live()
    d = Gmemd()
    yield d
    rc = d.stop()
    assert rc == 0, f"gmemd exited {rc} on SIGTERM: {d.output()}"


@pytest.fixture
def tmux():
    t = Tmux()
    yield t
    t.kill()


def start_load(loads, *args):
    ld = Load(*args)
    loads.append(ld)
    return ld


def truth(vm):
    """What gmemtop must show for one of gmem-load's VMs."""
    live = [f for f in vm["files"] if not f["released"]]
    return {
        "files": len(live),
        "size": sum(f["size"] for f in live),
        "populated": sum(f["populated_pages"] for f in live) * PAGE,
        "per_file": {f["ino"]: f["populated_pages"] for f in live},
        "alloc": vm["pages_allocated"],
    }


def shows_truth(screen, vms):
    """True when every VM's row shows its files, size and populated bytes exactly."""
    rows, _ = table(screen)
    for v in vms:
        r = rows.get(v["pid"])
        want = truth(v)
        if not r:
            return False
        try:
            if (int(r["FILES"]), bytes_of(r["GMEM"]), bytes_of(r["POPUL"])) != \
                    (want["files"], want["size"], want["populated"]):
                return False
        except (AssertionError, KeyError, ValueError):
            return False
    return True


def rates_shown(screen, pids):
    rows, _ = table(screen)
    return all(p in rows and rows[p].get("UFLT/s", "-") != "-" for p in pids)


def quit_and_check(tmux, key="q"):
    """Quit with key; gmemtop must exit 0 and leave the terminal as it found it."""
    tmux.keys(key)
    tmux.wait(lambda s: "EXIT=0" in s, timeout=5, what="gmemtop to exit 0")
    assert_terminal_sane(tmux)


def assert_terminal_sane(tmux):
    """The flags a curses program turns off, back on: line editing, echo, CR/NL mapping."""
    tmux.run("clear; stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo|icrnl|opost)' | "
             "tr '\\n' ' '; printf 'S%sY\\n' TT")
    s = tmux.wait(lambda s: any(l.endswith("STTY") for l in s.split("\n")), timeout=5,
                  what="stty")
    line = [l for l in s.split("\n") if l.endswith("STTY")][-1]
    assert line.split()[:-1] == ["icrnl", "opost", "icanon", "echo"], line


def probe_counts(d):
    """What the header must say about probe coverage, from gmemd's own table."""
    rows = d.call({"cmd": "probe"})["probe"]["events"]
    live = sum(r["state"] == "live" for r in rows)
    return live, len(rows) - live - sum(r["state"] == "failed" for r in rows)


def gmemtop_cmd(*args):
    return " ".join([GMEMTOP, *args]) + "; echo EXIT=$?"


def only(vms):
    """--filter for these VMs: other tests' VMs on this host stay off our 24 rows."""
    return ["--filter", ",".join(str(v["pid"]) for v in vms)]


# ---- the first frame ----------------------------------------------------------------------


def test_first_screen_is_correct_within_two_seconds(gmemd, tmux, loads):
    """LIVE: three VMs lingering with their files open; gmemtop at 80x24 shows every VM's
    files, size and populated bytes equal to gmem-load's JSON within 2 s of starting, and
    rates within 2 s too."""
    load = start_load(loads, "--vms", "3", "--files", "2", "--user-touch", "8",
                      "--guest-touch", "6", "--fallocate", "4", "--punch", "1",
                      "--secret-pages", "3", "--linger", "60")
    vms = load.wait_phase("done")["vms"]
    gmemd.scan()
    assert tmux.size() == (80, 24)
    t0 = time.monotonic()
    tmux.run(gmemtop_cmd("--socket", gmemd.socket, *only(vms)))
    tmux.wait(lambda s: shows_truth(s, vms), timeout=2.0, what="correct numbers")
    first = time.monotonic() - t0
    tmux.wait(lambda s: rates_shown(s, [v["pid"] for v in vms]),
              timeout=max(0.1, 2.0 - first), what="rates")
    s = tmux.screen()
    assert s.startswith(f"gmemtop  refresh 1s  gmemd pid {gmemd.proc.pid} via socket ")
    assert "probes %d live, %d unavailable" % probe_counts(gmemd) in s
    rows, cols = table(s)
    assert cols == ["FILES", "GMEM", "POPUL", "UFLT/s", "GFLT/s", "FALC/s", "POPL/s"]
    for v in vms:
        assert rows[v["pid"]]["NAME"] == "gmem-load"  # no -name: comm
    quit_and_check(tmux)


def test_default_gmemtop_uses_gmemd_on_the_default_socket(tmux, loads):
    """LIVE: plain `gmemtop` (no options) finds gmemd on /run/gmemscope/gmemd.sock. gmemd
    and gmemtop share a private mount namespace whose /run/gmemscope is a fresh tmpfs, so the
    test owns the default path without touching the host's."""
    require_live()
    os.makedirs("/run/gmemscope", exist_ok=True)
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    p = port.getsockname()[1]
    port.close()
    log = open(os.path.join(tmux.dir, "gmemd.log"), "w+")
    # unshare and sh exec: the child is gmemd itself, in its own mount namespace
    d = subprocess.Popen(HIDE_DEFAULT_SOCKET + [GMEMD, "--listen", f"127.0.0.1:{p}",
                                                "--scan-interval", "0.5"],
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "ready" in open(log.name).read() or d.poll() is not None,
                   timeout=30, what="gmemd ready")
        assert d.poll() is None, open(log.name).read()
        gmemd_pid = d.pid
        load = start_load(loads, "--vms", "2", "--user-touch", "5", "--linger", "60")
        vms = load.wait_phase("done")["vms"]
        t0 = time.monotonic()
        tmux.run(f"nsenter -t {gmemd_pid} -m {GMEMTOP} {' '.join(only(vms))}; echo EXIT=$?")
        tmux.wait(lambda s: shows_truth(s, vms), timeout=2.0, what="correct numbers")
        assert time.monotonic() - t0 < 2.0
        assert f"gmemd pid {gmemd_pid} via socket /run/gmemscope/gmemd.sock" in tmux.screen()
        quit_and_check(tmux)
    finally:
        d.send_signal(signal.SIGTERM)
        assert d.wait(timeout=15) == 0, open(log.name).read()


# ---- keys ---------------------------------------------------------------------------------


def test_keys_sort_filter_pause_help_totals_reset_interval(gmemd, tmux, loads):
    """LIVE: every key on the main view does what the help says, checked on screen."""
    big = start_load(loads, "--vms", "1", "--user-touch", "40", "--linger", "60")
    small = start_load(loads, "--vms", "2", "--user-touch", "3", "--guest-touch", "2",
                       "--linger", "60")
    vb = big.wait_phase("done")["vms"]
    vs = small.wait_phase("done")["vms"]
    vms = vb + vs
    pids = sorted(v["pid"] for v in vms)
    mine = ",".join(map(str, pids))
    # only our VMs: whatever else runs VMs on this host stays out of the assertions
    tmux.run(gmemtop_cmd("--socket", gmemd.socket, "--filter", mine))
    tmux.wait(lambda s: shows_truth(s, vms), timeout=5, what="the three VMs")
    assert row_order(tmux.screen()) == pids  # by PID, ascending

    # sort: M = populated, descending; i inverts; P back to pid; > and < step columns
    tmux.keys("M")
    s = tmux.wait(lambda s: "sort POPUL-" in s, what="sort by POPUL")
    assert row_order(s)[0] == vb[0]["pid"]
    tmux.keys("i")
    s = tmux.wait(lambda s: "sort POPUL+" in s, what="inverted")
    assert row_order(s)[-1] == vb[0]["pid"]
    tmux.keys("P")
    tmux.wait(lambda s: "sort PID+" in s and row_order(s) == pids, what="by PID")
    tmux.keys(">")
    tmux.wait(lambda s: "sort NAME+" in s, what="next column")
    tmux.keys("<", "<")
    tmux.wait(lambda s: "sort HUGE%-" in s, what="wrapped to the last column")
    tmux.keys("P")

    def set_filter(text, key="f"):
        tmux.keys(key)
        # the prompt opens empty; typed junk goes with Ctrl-U, as in a shell
        s = tmux.wait(lambda s: "Filter (name or pid, empty = all):" in s, what="filter prompt")
        assert s.split("Filter (name or pid, empty = all):")[1].split("\n")[0].strip() == ""
        tmux.type("junk")
        tmux.wait(lambda s: "empty = all): junk" in s, what="typed")
        tmux.keys("C-u")
        tmux.wait(lambda s: "empty = all): junk" not in s, what="Ctrl-U cleared the prompt")
        tmux.type(text)
        tmux.keys("Enter")

    # filter by one pid, by name (any case), by nothing that matches; Esc clears
    set_filter(str(vs[1]["pid"]))
    s = tmux.wait(lambda s: f'filter "{vs[1]["pid"]}"' in s, what="pid filter")
    assert row_order(s) == [vs[1]["pid"]]
    set_filter("GMEM-lo")
    tmux.wait(lambda s: 'filter "GMEM-lo"' in s and set(pids) <= set(row_order(s)),
              what="name filter")
    set_filter("zz-no-such-vm", key="/")
    tmux.wait(lambda s: "(no VM matches the filter)" in s, what="empty filter result")
    tmux.keys("Escape")
    tmux.wait(lambda s: "filter" not in s.split("\n")[3] and set(pids) <= set(row_order(s)),
              what="filter cleared")
    set_filter(mine)
    tmux.wait(lambda s: row_order(s) == pids, what="our VMs again")

    # help, and back with any key
    tmux.keys("h")
    s = tmux.wait(lambda s: "KEYS" in s and "any other key: back" in s, what="help")
    assert "sort by the previous / next column" in s and "This help scrolls" in s
    # it scrolls: the last line only shows at the end
    assert "probe coverage (gmemd --probe tells why)" not in s
    tmux.keys("End")
    tmux.wait(lambda s: "probe coverage (gmemd --probe tells why)" in s, what="help scrolled")
    tmux.keys("x")
    tmux.wait(lambda s: row_order(s) == pids, what="back from help")

    # totals: the allocation columns are exact counts
    tmux.keys("t")
    s = tmux.wait(lambda s: "[totals," in s, what="totals")
    rows, cols = table(s)
    assert "UFLT" in cols and "GFLT" in cols
    for v in vms:
        assert int(rows[v["pid"]]["UFLT"]) == v["pages_allocated"]["user_fault"]
        assert int(rows[v["pid"]]["GFLT"]) == v["pages_allocated"]["guest_fault"]
    assert vb[0]["pages_allocated"]["user_fault"] == 40
    # reset: totals count from now
    tmux.keys("r")
    tmux.wait(lambda s: all(table(s)[0][p]["UFLT"] == "0" for p in pids), what="reset")
    tmux.keys("t")
    tmux.wait(lambda s: "[rates," in s, what="rates again")

    # interval: + and - step, d sets it
    tmux.keys("+")
    tmux.wait(lambda s: "refresh 2s" in s, what="interval up")
    tmux.keys("-", "-")
    tmux.wait(lambda s: "refresh 0.5s" in s, what="interval down")
    tmux.keys("d")
    tmux.type("1.5")
    tmux.keys("Enter")
    tmux.wait(lambda s: "refresh 1.5s" in s, what="interval set")
    tmux.keys("d")
    tmux.type("abc")
    tmux.keys("Enter")
    tmux.wait(lambda s: 'not an interval: "abc"' in s, what="bad interval refused")

    # horizontal scroll keeps PID and NAME
    tmux.keys("Right", "Right", "Right")
    s = tmux.wait(lambda s: "OTHR/s" in s, what="columns scrolled")
    assert "FILES" not in s and " PID NAME" in s
    tmux.keys("Left", "Left", "Left")
    tmux.wait(lambda s: "FILES" in s, what="columns back")

    # pause: a VM that starts meanwhile is not in the frozen frame, even when filtered for;
    # resuming brings it
    tmux.keys("p")
    tmux.wait(lambda s: "[PAUSED]" in s, what="paused")
    late = start_load(loads, "--vms", "1", "--user-touch", "2", "--linger", "60")
    vl = late.wait_phase("done")["vms"]
    time.sleep(2.0)
    set_filter(str(vl[0]["pid"]))
    tmux.wait(lambda s: "(no VM matches the filter)" in s and "[PAUSED]" in s,
              what="not in the paused frame")
    tmux.keys("p")
    tmux.wait(lambda s: "[PAUSED]" not in s and shows_truth(s, vl), timeout=3,
              what="resumed, with the new VM")
    quit_and_check(tmux)


def test_drill_down_files_histograms_and_recent_events(gmemd, tmux, loads):
    """LIVE: Enter on a VM shows its files with populated bytes and pages equal to the JSON;
    while it churns, its recent events stream in from a subscription: allocations and
    punches on its own files only. Esc returns to the list."""
    quiet = start_load(loads, "--vms", "1", "--files", "3", "--user-touch", "7",
                       "--guest-touch", "5", "--fallocate", "2", "--linger", "60")
    vq = quiet.wait_phase("done")["vms"][0]
    busy = start_load(loads, "--vms", "1", "--churn", "--duration", "8", "--rate", "20",
                      "--user-touch", "4", "--fallocate", "4", "--no-vcpu", "--pause")
    vb = busy.wait_phase("paused")["vms"][0]
    tmux.run(gmemtop_cmd("--socket", gmemd.socket, "--filter", str(vq["pid"])))
    tmux.wait(lambda s: shows_truth(s, [vq]), timeout=5, what="the quiet VM")
    tmux.keys("Enter")
    s = tmux.wait(lambda s: f"VM {vq['pid']}  gmem-load" in s, what="drill-down")
    for f in vq["files"]:
        line = [l for l in s.split("\n") if l.startswith(f"{f['ino']} ")]
        assert line, f"file {f['ino']} not on screen:\n{s}"
        cells = line[0].split()
        assert bytes_of(cells[1]) == f["size"]
        assert bytes_of(cells[2]) == f["populated_pages"] * PAGE
        assert int(cells[3]) == f["populated_pages"]
    for what, n in (("user fault", vq["pages_allocated"]["user_fault"]),
                    ("guest fault", vq["pages_allocated"]["guest_fault"]),
                    ("fallocate", vq["pages_allocated"]["fallocate"])):
        line = [l for l in s.split("\n") if f"pages allocated: {what}" in l][0]
        assert int(line.split()[-2]) == n, line
    # the page scrolls: the events section is below
    assert "RECENT EVENTS" not in s
    tmux.keys("PageDown", "PageDown")
    tmux.wait(lambda s: "RECENT EVENTS" in s and "(none yet)" in s, what="scrolled")
    tmux.keys("Escape")
    tmux.wait(lambda s: table(s)[0].get(vq["pid"]) is not None, what="back to the list")

    # the busy one: drill in, then let it churn
    tmux.keys("f")
    for _ in range(12):
        tmux.keys("BSpace")
    tmux.type(str(vb["pid"]))
    tmux.keys("Enter")
    tmux.wait(lambda s: row_order(s) == [vb["pid"]], what="the busy VM")
    tmux.keys("Enter")
    tmux.wait(lambda s: f"VM {vb['pid']}" in s, what="drill-down into the busy VM")
    tmux.keys("End")
    busy.resume()
    ino = vb["files"][0]["ino"]
    s = tmux.wait(lambda s: f"page_alloc    ino {ino}" in s and "punch_hole" in s,
                  timeout=8, what="recent events")
    for line in s.split("\n"):
        if "page_alloc" in line or "punch_hole" in line or "page_free" in line:
            assert f"ino {ino} " in line, line
    tmux.keys("Escape")
    tmux.wait(lambda s: row_order(s) == [vb["pid"]], what="back")
    quit_and_check(tmux)


# ---- terminal handling ----------------------------------------------------------------------


def test_resize_and_quit_restore_the_terminal(gmemd, tmux, loads):
    """LIVE: resizing redraws to the new size with the same numbers: wide shows every column,
    tiny still draws; q, F10, Ctrl-C and SIGTERM all exit 0 with the terminal restored."""
    load = start_load(loads, "--vms", "2", "--user-touch", "6", "--linger", "60")
    vms = load.wait_phase("done")["vms"]
    tmux.run(gmemtop_cmd("--socket", gmemd.socket, *only(vms)))
    tmux.wait(lambda s: shows_truth(s, vms), timeout=5, what="numbers")
    tmux.resize(200, 50)
    # the whole redraw, footer included (a capture can land mid-redraw)
    s = tmux.wait(lambda s: "SPLIT/s" in s and shows_truth(s, vms) and
                  s.rstrip("\n").split("\n")[-1].startswith("h:help"), what="wide")
    assert tmux.size() == (200, 50)
    footer = s.rstrip("\n").split("\n")[-1]
    assert footer == "h:help q:quit Enter:VM </>:sort f:filter p:pause r:reset t:totals " \
        "+/-:interval"
    assert len(s.split("\n")) >= 50
    tmux.resize(40, 8)
    s = tmux.wait(lambda s: s.startswith("gmemtop  refresh 1s") and "SPLIT" not in s, what="tiny")
    assert max(len(l) for l in s.split("\n")) <= 40
    tmux.resize(80, 24)
    tmux.wait(lambda s: shows_truth(s, vms) and "POPL/s" in s and "OTHR/s" not in s,
              what="80x24 again")
    quit_and_check(tmux, "q")

    tmux.run("clear; " + gmemtop_cmd("--socket", gmemd.socket, *only(vms)))
    tmux.wait(lambda s: shows_truth(s, vms), timeout=5, what="second run")
    quit_and_check(tmux, "F10")

    tmux.run("clear; " + gmemtop_cmd("--socket", gmemd.socket, *only(vms)))
    tmux.wait(lambda s: shows_truth(s, vms), timeout=5, what="third run")
    quit_and_check(tmux, "C-c")

    tmux.run("clear; " + gmemtop_cmd("--socket", gmemd.socket, *only(vms)))
    tmux.wait(lambda s: shows_truth(s, vms), timeout=5, what="fourth run")
    os.kill(tmux.child_pid(), signal.SIGTERM)
    tmux.wait(lambda s: "EXIT=0" in s, timeout=5, what="exit 0 on SIGTERM")
    assert_terminal_sane(tmux)


def test_without_colours_and_without_a_screen_terminal(gmemd, loads):
    """LIVE: TERM=vt100 (no colours) draws the same table in plain attributes; TERM=dumb,
    which cannot move the cursor, gets text snapshots instead of a garbled screen."""
    load = start_load(loads, "--vms", "1", "--user-touch", "9", "--linger", "60")
    vms = load.wait_phase("done")["vms"]
    t = Tmux(term="vt100")
    try:
        t.run("echo TERM=$TERM colors=$(tput colors)")
        t.wait(lambda s: "TERM=vt100 colors=-1" in s.replace("$TERM", ""), what="vt100")
        t.run(gmemtop_cmd("--socket", gmemd.socket, *only(vms)))
        t.wait(lambda s: shows_truth(s, vms), timeout=5, what="vt100 screen")
        quit_and_check(t)
    finally:
        t.kill()
    t = Tmux(cols=220, term="dumb")  # text lines are as wide as every column
    try:
        t.run(gmemtop_cmd("--socket", gmemd.socket, "-n", "2", "-d", "0.3", *only(vms)))
        s = t.wait(lambda s: "EXIT=0" in s, timeout=5, what="text snapshots")
        assert "cannot show the dashboard; printing text snapshots" in s
        assert shows_truth(s, vms)
    finally:
        t.kill()


def test_survives_gmemd_restart(tmux, loads):
    """LIVE: when gmemd goes away gmemtop says so and keeps running; when a gmemd comes back
    on the same socket it reconnects and shows correct numbers again (from a discovery scan)."""
    require_live()
    load = start_load(loads, "--vms", "1", "--user-touch", "11", "--linger", "60")
    vms = load.wait_phase("done")["vms"]
    d = Gmemd()
    again = None
    try:
        tmux.run(gmemtop_cmd("--socket", d.socket, *only(vms)))
        tmux.wait(lambda s: shows_truth(s, vms), timeout=5, what="numbers")
        assert d.stop() == 0
        tmux.wait(lambda s: f"no gmemd is listening on {d.socket}" in s or f"lost {d.socket}" in s,
                  timeout=5, what="the loss reported")
        log = os.path.join(d.dir, "again.log")
        with open(log, "w") as f:
            again = subprocess.Popen(d.args, stdout=f, stderr=subprocess.STDOUT)
        wait_until(lambda: "ready" in open(log).read(), timeout=30, what="gmemd again")
        tmux.wait(lambda s: shows_truth(s, vms) and "lost" not in s and "no gmemd" not in s,
                  timeout=5, what="reconnected")
        quit_and_check(tmux)
    finally:
        d.stop()
        if again:
            again.send_signal(signal.SIGTERM)
            assert again.wait(timeout=15) == 0


# ---- batch --------------------------------------------------------------------------------


def run_batch(*args, timeout=30):
    p = subprocess.run([GMEMTOP, *args], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"gmemtop {args}: {p.stderr}"
    return p.stdout


def check_json_vm(got, v):
    want = truth(v)
    assert got["files"] == want["files"]
    assert got["size_bytes"] == want["size"]
    assert got["populated_bytes"] == want["populated"]
    assert {f["ino"]: f["populated_bytes"] // PAGE for f in got["file_list"]} == \
        want["per_file"]
    for s in SOURCES:
        assert got["totals"][f"alloc_{s}"] == v["pages_allocated"][s], s
    assert got["totals"]["punch_holes"] == v["punch_holes"]
    assert got["totals"]["pages_freed"] == v["pages_freed"]
    assert got["totals"]["memslot_binds"] == v["memslot_binds"]
    assert got["totals"]["direct_map_removals"] == v["secretmem"]["pages_removed"]
    assert got["name"] == "gmem-load"


def test_batch_json_csv_text_match_ground_truth(gmemd, loads):
    """LIVE: -b --format json prints one object per snapshot whose numbers equal gmem-load's
    (files, bytes, per-file pages, allocations by source, punches, frees, binds, this VM's
    secretmem direct-map removals); the first has no rates, the next has them. CSV and text
    carry the same numbers."""
    load = start_load(loads, "--vms", "2", "--files", "2", "--user-touch", "12",
                      "--guest-touch", "9", "--fallocate", "5", "--punch", "2",
                      "--secret-pages", "6", "--linger", "60")
    vms = load.wait_phase("done")["vms"]
    gmemd.scan()
    out = run_batch("--socket", gmemd.socket, "-b", "--format", "json", "-n", "2", "-d", "0.5")
    lines = out.strip().split("\n")
    assert len(lines) == 2
    first, second = (json.loads(l) for l in lines)
    assert first["interval_s"] is None
    assert 0.4 < second["interval_s"] < 1.0
    for doc in (first, second):
        got = {v["pid"]: v for v in doc["vms"]}
        for v in vms:
            check_json_vm(got[v["pid"]], v)
    assert all(v["rates"] is None for v in first["vms"])
    for v in second["vms"]:
        if v["pid"] in (x["pid"] for x in vms):
            assert v["rates"]["alloc_user_fault"] == 0.0  # lingering: nothing happens
    live, unavailable = probe_counts(gmemd)
    assert second["host"]["probes"] == {"live": live, "unavailable": unavailable, "failed": 0}
    assert second["server"] == {"name": "gmemd", "pid": gmemd.proc.pid, "live": True}

    once = json.loads(run_batch("--socket", gmemd.socket, "--once", "-j"))
    got = {v["pid"]: v for v in once["vms"]}
    for v in vms:
        check_json_vm(got[v["pid"]], v)

    rows = csv_rows = list(csv.DictReader(io.StringIO(run_batch(
        "--socket", gmemd.socket, "-b", "--format", "csv", "-n", "2", "-d", "0.3"))))
    for v in vms:
        mine = [r for r in rows if int(r["pid"]) == v["pid"]]
        assert len(mine) == 2
        assert mine[0]["alloc_user_fault_per_s"] == ""
        assert float(mine[1]["alloc_user_fault_per_s"]) == 0.0
        for r in mine:
            assert int(r["populated_bytes"]) == truth(v)["populated"]
            assert int(r["alloc_guest_fault"]) == v["pages_allocated"]["guest_fault"]

    text = run_batch("--socket", gmemd.socket, "-b", "-t", "-n", "1")
    rows, cols = table(text)
    assert cols[-3:] == ["SPLIT", "EXITS", "HUGE%"]
    for v in vms:
        assert bytes_of(rows[v["pid"]]["POPUL"]) == truth(v)["populated"]
        assert int(rows[v["pid"]]["FALC"]) == v["pages_allocated"]["fallocate"]

    # not a terminal: batch text without asking
    p = subprocess.run([GMEMTOP, "--socket", gmemd.socket, "-n", "1"], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 0 and shows_truth(p.stdout, vms)

    # times as RFC 3339 with the offset, in every format, and the snapshot's wall clock
    # beside its monotonic ts_ns
    rfc3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d")
    assert all(rfc3339.fullmatch(r["time"]) for r in csv_rows), csv_rows[0]["time"]
    assert rfc3339.fullmatch(once["time"]), once["time"]
    assert rfc3339.search(text.splitlines()[0]), text.splitlines()[0]
    snap = gmemd.call({"cmd": "snapshot"})
    assert rfc3339.fullmatch(snap["time"]) and abs(snap["wall_ns"] / 1e9 - time.time()) < 60


def named_load(loads, tmp_path, name, *args):
    """gmem-load started through a link called name: its VMs' comm, so their NAME."""
    link = tmp_path / name
    link.symlink_to(GMEM_LOAD)
    ld = Load(*args, exe=str(link))
    loads.append(ld)
    return ld


def test_once_waits_one_interval_and_prints_rates(gmemd, loads):
    """LIVE: --once, as kvm_stat -1, takes a snapshot, waits one interval (-d) and prints one
    snapshot with rates over that interval: a churning VM's allocation rate is above zero and
    its totals still equal the truth after the load ends; text and CSV print one table, with
    rates, not the first frame's dashes."""
    busy = start_load(loads, "--vms", "1", "--churn", "--duration", "6", "--rate", "50",
                      "--user-touch", "4", "--no-vcpu", "--pause")
    vb = busy.wait_phase("paused")["vms"][0]
    busy.resume()
    t0 = time.monotonic()
    doc = json.loads(run_batch("--socket", gmemd.socket, "--once", "-j", "-d", "0.7",
                               "-p", str(vb["pid"])))
    assert time.monotonic() - t0 >= 0.7
    assert 0.6 < doc["interval_s"] < 1.2, doc["interval_s"]
    (v,) = doc["vms"]
    assert v["pid"] == vb["pid"] and v["rates"] is not None
    assert v["rates"]["alloc_user_fault"] > 0, v["rates"]
    text = run_batch("--socket", gmemd.socket, "--once", "-d", "0.5", "-p", str(vb["pid"]))
    rows, cols = table(text)
    assert list(rows) == [vb["pid"]] and text.count("PID NAME") == 1
    assert rows[vb["pid"]]["UFLT/s"] != "-" and float(rows[vb["pid"]]["UFLT/s"]) > 0
    out = list(csv.DictReader(io.StringIO(run_batch("--socket", gmemd.socket, "--once", "-d",
                                                    "0.5", "--format", "csv", "-p",
                                                    str(vb["pid"])))))
    assert len(out) == 1 and float(out[0]["alloc_user_fault_per_s"]) > 0
    busy.finish()


def test_pid_guest_fields_and_skip_zero(gmemd, loads, tmp_path):
    """LIVE: -p shows that VM alone; -g the VMs named exactly so (a link's name as their comm;
    not a prefix of it); -f prints the columns asked for, in that order, with the truth in
    them; -z leaves out the idle VMs and keeps the churning one."""
    idle = start_load(loads, "--vms", "2", "--files", "2", "--user-touch", "5", "--linger", "60")
    vi = idle.wait_phase("done")["vms"]
    named = named_load(loads, tmp_path, "db01-vmm", "--vms", "2", "--user-touch", "3",
                       "--linger", "60")
    vn = named.wait_phase("done")["vms"]
    gmemd.scan()
    doc = json.loads(run_batch("--socket", gmemd.socket, "--once", "-j", "-d", "0.3",
                               "-p", str(vi[1]["pid"])))
    assert [v["pid"] for v in doc["vms"]] == [vi[1]["pid"]]
    check_json_vm(doc["vms"][0], vi[1])
    doc = json.loads(run_batch("--socket", gmemd.socket, "--once", "-j", "-d", "0.3",
                               "-g", "db01-vmm"))
    assert sorted(v["pid"] for v in doc["vms"]) == sorted(v["pid"] for v in vn)
    assert {v["name"] for v in doc["vms"]} == {"db01-vmm"}
    doc = json.loads(run_batch("--socket", gmemd.socket, "--once", "-j", "-d", "0.3",
                               "-g", "db01"))
    assert doc["vms"] == []

    text = run_batch("--socket", gmemd.socket, "-b", "-n", "1", "-t", "-f",
                     "popul,PID,name,files", "-p", str(vi[0]["pid"]))
    lines = text.rstrip("\n").split("\n")
    assert lines[1].split() == ["POPUL", "PID", "NAME", "FILES"], lines
    assert len(lines) == 3, lines
    cells = lines[2].split()
    assert bytes_of(cells[0]) == truth(vi[0])["populated"]
    assert cells[1:] == [str(vi[0]["pid"]), "gmem-load", "2"]

    busy = start_load(loads, "--vms", "1", "--churn", "--duration", "6", "--rate", "50",
                      "--user-touch", "4", "--no-vcpu", "--pause")
    vb = busy.wait_phase("paused")["vms"][0]
    busy.resume()
    mine = {v["pid"] for v in vi + vn} | {vb["pid"]}
    doc = json.loads(run_batch("--socket", gmemd.socket, "--once", "-z", "-j", "-d", "0.7"))
    shown = {v["pid"] for v in doc["vms"]} & mine
    assert shown == {vb["pid"]}, (shown, vb["pid"])
    # without -z the idle ones are there, with rates of zero
    doc = json.loads(run_batch("--socket", gmemd.socket, "--once", "-j", "-d", "0.3"))
    assert {v["pid"] for v in doc["vms"]} >= mine
    busy.finish()


def test_batch_flags_and_errors():
    """LIVE: bad flags, contradicting ones and a missing server fail clearly, with exit status
    64 (usage) or 1."""
    for args, needle in ((["-p", "1", "-g", "db"], "-p picks one VM by pid, -g VMs by name"),
                         (["-g", "db", "--filter", "x"], "give it or -g, not both"),
                         (["-p", "x"], "--pid: 'x' is not a pid"),
                         (["-f", "pid", "--format", "csv"], "give -f or --format csv"),
                         (["-f", "pid", "-j"], "give -f or --format json"),
                         (["-f", "pid,bogus"], "-f: no field 'bogus'; the fields are pid, "
                          "name, files, gmem, popul, uflt, gflt, falc, popl, othr, punch, "
                          "free, conv, convp50, convp99, dmap, rmp, tdx, split, exits, huge"),
                         (["-f", "pid,pid"], "twice the field 'pid'"),
                         (["-z", "-f", "pid,name,popul"], "shows no counter"),
                         (["--format", "xml"], "not text, csv or json"),
                         (["-d", "0"], "--delay"),
                         (["-n", "0"], "--iterations"),
                         (["--socket", "/x.sock", "--in-process"], "give one"),
                         (["--once", "-n", "5"], "give --once or -n, not both"),
                         (["-b", "-j", "--format", "csv"], "-j is --format json"),
                         (["extra"], "unexpected argument")):
        p = subprocess.run([GMEMTOP, *args], capture_output=True, text=True, timeout=30)
        assert p.returncode == 64, (args, p.returncode)  # argp's EX_USAGE
        assert needle in p.stderr, (args, p.stderr)
    # -f on a terminal without -b: the dashboard has no fixed columns to pick
    p = subprocess.run(["script", "-qec", f"{GMEMTOP} -f pid --socket /x.sock", "/dev/null"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 64 and "add -b or --once" in p.stdout, (p.returncode, p.stdout)
    p = subprocess.run([GMEMTOP, "--socket", "/nonexistent/gmemd.sock", "--once"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "no gmemd is listening on /nonexistent/gmemd.sock (no such socket" in p.stderr
    p = subprocess.run([GMEMTOP, "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "USAGE:" in p.stdout and "EXAMPLES:" in p.stdout


def test_unprivileged_without_gmemd_is_told_what_to_do():
    """As nobody, with no gmemd on the default socket: one line saying both, and exit 1."""
    require_live()
    os.makedirs("/run/gmemscope", exist_ok=True)
    p = subprocess.run(HIDE_DEFAULT_SOCKET + ["setpriv", "--reuid=65534", "--regid=65534",
                                              "--clear-groups", "--inh-caps=-all", GMEMTOP,
                                              "--once"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert p.stderr == ("gmemtop: no gmemd on /run/gmemscope/gmemd.sock, and the probes here "
                        "failed: permission denied: gmemscope loads BPF programs against KVM's "
                        "module BTF and needs root, or CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, "
                        "CAP_DAC_READ_SEARCH (the last only when not uid 0); missing: CAP_BPF, "
                        "CAP_PERFMON, CAP_SYS_ADMIN, CAP_DAC_READ_SEARCH\n"), p.stderr


# ---- in-process ---------------------------------------------------------------------------

def test_in_process_without_gmemd_tmux(tmux, loads):
    """LIVE: no gmemd (the default socket hidden): plain `gmemtop` runs the probes itself; a
    VM that existed before is found by the scan with its files and populated bytes exact,
    within two seconds of starting."""
    require_live()
    os.makedirs("/run/gmemscope", exist_ok=True)
    load = start_load(loads, "--vms", "2", "--files", "2", "--user-touch", "9",
                      "--guest-touch", "7", "--linger", "60")
    vms = load.wait_phase("done")["vms"]
    t0 = time.monotonic()
    tmux.run(" ".join(f"'{a}'" for a in HIDE_DEFAULT_SOCKET + [GMEMTOP, *only(vms)]) +
             "; echo EXIT=$?")
    s = tmux.wait(lambda s: shows_truth(s, vms), timeout=2.0, what="in-process numbers")
    assert time.monotonic() - t0 < 2.0
    assert s.startswith("gmemtop  refresh 1s  in-process pid ")
    assert "via own probes (no gmemd)" in s
    quit_and_check(tmux)


def read_json_line(p, timeout=10):
    import select
    r, _, _ = select.select([p.stdout], [], [], timeout)
    assert r, "gmemtop printed nothing"
    line = p.stdout.readline()
    assert line, f"gmemtop ended: {p.stderr.read()}"
    return json.loads(line)


def test_in_process_counts_exactly(loads):
    """LIVE: gmemtop --in-process in batch mode watches a VM from its start: every counter
    equals gmem-load's, as gmemd's would."""
    require_live()
    p = subprocess.Popen([GMEMTOP, "--in-process", "-b", "-j", "-d", "0.3"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = read_json_line(p, timeout=30)  # the probes are attached by now
        assert first["server"]["name"] == "in-process"
        load = start_load(loads, "--vms", "1", "--files", "2", "--user-touch", "13",
                          "--guest-touch", "10", "--fallocate", "3", "--punch", "2",
                          "--secret-pages", "4", "--linger", "60")
        v = load.wait_phase("done")["vms"][0]
        deadline = time.monotonic() + 15
        last = None
        while time.monotonic() < deadline:
            doc = read_json_line(p)
            last = {x["pid"]: x for x in doc["vms"]}.get(v["pid"])
            try:
                if last:
                    check_json_vm(last, v)
                    break
            except AssertionError:
                continue
        assert last is not None
        check_json_vm(last, v)
        assert last["totals"]["files_created"] == 2
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=15) == 0, p.stderr.read()


# ---- a recording's server ------------------------------------------------------------------


def test_reads_a_replay_server(gmemd, loads, tmp_path):
    """LIVE: gmemtop --socket works against any server of the control protocol; one that says
    it is `gmemtrace replay` (not live) is shown as a recording, and pids are not looked up on
    this host. The server here replays a snapshot gmemd really made."""
    load = start_load(loads, "--vms", "1", "--user-touch", "4", "--linger", "60")
    vms = load.wait_phase("done")["vms"]
    gmemd.scan()
    snap = gmemd.call({"cmd": "snapshot"})
    assert {v["vm"]: v["name"] for v in snap["model"]["vms"]}[vms[0]["pid"]] == "gmem-load"
    for v in snap["model"]["vms"]:
        v["name"] = ""  # as a recording without names serves it
    path = str(tmp_path / "replay.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(4)
    srv.settimeout(10)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                return
            with c:
                c.settimeout(5)
                f = c.makefile("rwb")
                for line in f:
                    cmd = json.loads(line)["cmd"]
                    if cmd == "hello":
                        r = {"ok": True, "proto": 1, "abi": 1, "server": "gmemtrace replay",
                             "record_size": 64, "live": False}
                    elif cmd == "snapshot":
                        r = dict(snap, daemon={"name": "gmemtrace replay", "pid": 1})
                    else:
                        r = {"ok": False, "error": "unknown command"}
                    f.write((json.dumps(r) + "\n").encode())
                    f.flush()
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        doc = json.loads(run_batch("--socket", path, "--once", "-j"))
        assert doc["server"]["live"] is False
        got = {v["pid"]: v for v in doc["vms"]}
        v = vms[0]
        assert got[v["pid"]]["populated_bytes"] == truth(v)["populated"]
        assert got[v["pid"]]["name"] == "?"  # a recording's pids are not this host's
    finally:
        stop.set()
        srv.close()
        th.join(timeout=5)
