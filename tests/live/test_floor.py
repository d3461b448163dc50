"""LIVE: gmemd --empty-bodies, the floor bench/hostcost measures: the same probes attached
the same way as a real gmemd, each returning at once."""
import os

from gmemtest import Gmemd, require_live, run_load


def bpf_links(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:bpf_link":
                n += 1
        except OSError:
            pass
    return n


def test_empty_bodies_attach_the_same_hooks_and_count_nothing():
    """LIVE: with --empty-bodies gmemd holds as many BPF links as a real gmemd, its probe
    table says the same events are live, and a real guest_memfd workload leaves no record:
    the programs ran (attached) and did nothing. A real gmemd counts the same workload."""
    require_live()
    real = Gmemd()
    try:
        links, probe = bpf_links(real.proc.pid), real.call({"cmd": "probe"})["probe"]
        out = run_load("--files", "1", "--user-touch", "8")
        pid = out["exit"]["vms"][0]["pid"]
        real.scan()
        assert real.metrics().get("gmem_pages_allocated_total", vm=pid) == 8
    finally:
        assert real.stop() == 0
    floor = Gmemd("--empty-bodies")
    try:
        assert "--empty-bodies: every probe returns at once" in floor.output()
        assert links > 0 and bpf_links(floor.proc.pid) == links
        fprobe = floor.call({"cmd": "probe"})["probe"]
        live = lambda p: sorted((e["event"], e["tier"]) for e in p["events"]
                                if e["state"] == "live")
        assert live(fprobe) == live(probe)
        out = run_load("--files", "1", "--user-touch", "8")
        pid = out["exit"]["vms"][0]["pid"]
        floor.scan()
        m = floor.metrics()
        assert m.get("gmem_pages_allocated_total", vm=pid) == 0
        assert m.get("gmem_files_created_total", vm=pid) == 0
        snap = floor.call({"cmd": "snapshot"})["model"]["totals"]["by_kind"]
        probe_kinds = {k: v for k, v in snap.items()
                       if k not in ("file_discover", "file_release", "dmap_sample", "lost")}
        assert sum(probe_kinds.values()) == 0, probe_kinds
    finally:
        assert floor.stop() == 0
