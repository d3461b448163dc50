# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""make install: the programs land on a PATH and still find their policies and probes there
(a user types `gmemtop`, not build/bin/gmemtop)."""
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from gmemtest import BUILD, ROOT, require_live


def test_install_then_run_from_the_prefix():
    dest = tempfile.mkdtemp(prefix="gmem-install-")
    try:
        p = subprocess.run(["make", "-C", ROOT, "-s", f"O={BUILD}", f"DESTDIR={dest}",
                            "PREFIX=/usr", "install"], capture_output=True, text=True,
                           timeout=600)
        assert p.returncode == 0, p.stderr
        bindir = os.path.join(dest, "usr", "bin")
        for prog in ("gmemd", "gmemtop", "gmemtrace", "gmem-load", "gmem-policy"):
            assert os.access(os.path.join(bindir, prog), os.X_OK), prog
        env = dict(os.environ, PATH=bindir + ":" + os.environ.get("PATH", ""))
        env.pop("GMEM_POLICY_DIR", None)
        lst = subprocess.run(["gmem-policy", "list"], capture_output=True, text=True, env=env,
                             timeout=60)
        assert lst.returncode == 0, lst.stderr
        for name in ("split4k", "buddy", "churn"):
            assert f"{dest}/usr/bin/../lib/gmemscope/policies/{name}.bpf.o" in lst.stdout
        h = subprocess.run(["gmemtop", "--help"], capture_output=True, text=True, env=env,
                           timeout=30)
        assert h.returncode == 0 and "USAGE" in h.stdout
        require_live()
        probe = subprocess.run(["gmemd", "--probe"], capture_output=True, text=True, env=env,
                               timeout=60)
        assert probe.returncode == 0 and "page_alloc" in probe.stdout, probe.stderr
        un = subprocess.run(["make", "-C", ROOT, "-s", f"O={BUILD}", f"DESTDIR={dest}",
                             "PREFIX=/usr", "uninstall"], capture_output=True, text=True,
                            timeout=60)
        assert un.returncode == 0 and not os.path.exists(os.path.join(bindir, "gmemd"))
        for gone in ("share/gmemscope", "share/doc/gmemscope"):
            assert not os.path.exists(os.path.join(dest, "usr", gone)), gone
    finally:
        shutil.rmtree(dest, ignore_errors=True)


@pytest.fixture(scope="module")
def installed():
    """make install into a fresh DESTDIR with PREFIX=/usr; the DESTDIR's path."""
    dest = tempfile.mkdtemp(prefix="gmem-install-")
    p = subprocess.run(["make", "-C", ROOT, "-s", f"O={BUILD}", f"DESTDIR={dest}",
                        "PREFIX=/usr", "install"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    yield dest
    shutil.rmtree(dest, ignore_errors=True)


MAN_PAGES = {"gmemd": 8, "gmemtop": 1, "gmemtrace": 1, "gmem-load": 1, "gmem-policy": 1}


def _man(*args, **env):
    e = dict(os.environ, MANWIDTH="80", LC_ALL="C", **env)
    p = subprocess.run(["man", *args], capture_output=True, text=True, env=e, timeout=60)
    p.stdout = re.sub(r".\x08", "", p.stdout)  # man's overstrike bold and underline
    return p


@pytest.mark.parametrize("prog", MAN_PAGES)
def test_man_page_is_installed_and_agrees_with_help(installed, prog):
    """man PROG works from the install, and says what PROG --help says (generated from it)."""
    sec = MAN_PAGES[prog]
    page = os.path.join(installed, "usr", "share", "man", f"man{sec}", f"{prog}.{sec}")
    assert os.path.isfile(page), page
    for shown in (_man("-l", page),
                  _man(prog, MANPATH=os.path.join(installed, "usr", "share", "man"))):
        assert shown.returncode == 0, shown.stderr
        text = shown.stdout
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXAMPLES",
                        "EXIT STATUS", "SEE ALSO"):
            assert re.search(rf"^{section}$", text, re.M), (prog, section, text)
        assert re.search(rf"^NAME\n\s+{re.escape(prog)} +- +\S", text, re.M), text
    help_text = subprocess.run([os.path.join(BUILD, "bin", prog), "--help"],
                               capture_output=True, text=True, env=dict(os.environ, COLUMNS="80"),
                               timeout=30).stdout
    usage = [ln.split("USAGE: ", 1)[1] for ln in help_text.splitlines() if "USAGE: " in ln]
    synopsis = text.split("SYNOPSIS", 1)[1].split("DESCRIPTION", 1)[0]
    assert usage and " ".join(usage[0].split()) in " ".join(synopsis.split()), (usage, synopsis)
    examples = text.split("\nEXAMPLES", 1)[1]
    block = help_text.split("EXAMPLES:\n", 1)[1].split("\n\n", 1)[0]
    for ex in block.replace(" \\\n", " ").splitlines():
        if ex.startswith("  "):
            assert "$ " + " ".join(ex.split()) in "\n".join(
                " ".join(ln.split()) for ln in examples.splitlines()), (ex, examples)


def test_docs_examples_and_dashboard_installed(installed):
    """LIVE: make install (DESTDIR, PREFIX=/usr) puts docs/ in share/doc/gmemscope, the
    Prometheus examples and the Grafana dashboard in share/gmemscope, byte for byte; the
    installed scrape config still finds its rules (promtool), the dashboard is JSON, and the
    installed gmemd --help names the design notes where they now are. (Uninstalling them is
    checked by test_install_then_run_from_the_prefix.)"""
    share = os.path.join(installed, "usr", "share")
    want = {os.path.join("doc", "gmemscope", f): os.path.join(ROOT, "docs", f)
            for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md")}
    for sub, ext in (("prometheus", ".yml"), ("grafana", ".json")):
        src = os.path.join(ROOT, "examples", sub)
        want.update({os.path.join("gmemscope", sub, f): os.path.join(src, f)
                     for f in os.listdir(src) if f.endswith(ext)})
    assert {os.path.join("doc", "gmemscope", "design.md"),
            os.path.join("gmemscope", "grafana", "gmemscope.json"),
            os.path.join("gmemscope", "prometheus", "prometheus.yml"),
            os.path.join("gmemscope", "prometheus", "gmemscope-rules.yml")} <= set(want)
    for rel, src in want.items():
        with open(os.path.join(share, rel), "rb") as a, open(src, "rb") as b:
            assert a.read() == b.read(), rel
    got = {os.path.relpath(os.path.join(d, f), share) for sub in ("gmemscope", "doc/gmemscope")
           for d, _, fs in os.walk(os.path.join(share, sub)) for f in fs}
    assert got == set(want), got ^ set(want)
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    p = subprocess.run([promtool, "check", "config",
                        os.path.join(share, "gmemscope", "prometheus", "prometheus.yml")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "SUCCESS: 1 rule files found" in p.stdout + p.stderr, \
        p.stdout + p.stderr
    assert json.load(open(os.path.join(share, "gmemscope", "grafana", "gmemscope.json")))["panels"]
    h = subprocess.run([os.path.join(installed, "usr", "bin", "gmemd"), "--help"],
                       capture_output=True, text=True, env=dict(os.environ, COLUMNS="200"),
                       timeout=30)
    assert "/usr/share/doc/gmemscope/design.md lists them all" in h.stdout, h.stdout


COMPLETE = r'''
t() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
      COMPREPLY=(); _gmemscope; echo "$*|${COMPREPLY[*]}"; }
for p in gmemd gmemtop gmemtrace gmem-load gmem-policy; do complete -p $p; done
t gmemtrace re
t gmemtrace record --rot
t gmem-policy help d
t gmemtop --format ""
t gmemtrace whatif -p sp
t gmemd --no-
'''


def _complete(script, dest, **env):
    bindir = os.path.join(dest, "usr", "bin")
    e = dict(os.environ, PATH=bindir + ":" + os.environ.get("PATH", ""), **env)
    e.pop("GMEM_POLICY_DIR", None)
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script + COMPLETE],
                       capture_output=True, text=True, env=e, timeout=60)
    assert p.returncode == 0, p.stderr
    got = {}
    for line in p.stdout.splitlines():
        if "|" in line:
            k, v = line.split("|", 1)
            got[k] = v.split()
        else:
            got.setdefault("complete", []).append(line)
    return got


def _check_completions(got):
    for prog in ("gmemd", "gmemtop", "gmemtrace", "gmem-load", "gmem-policy"):
        assert f"complete -o bashdefault -o default -F _gmemscope {prog}" in got["complete"]
    assert got["gmemtrace re"] == ["record", "report", "replay"]
    assert got["gmemtrace record --rot"] == ["--rotate-size=", "--rotate-time="]
    assert got["gmem-policy help d"] == ["decide"]
    assert got["gmemtop --format "] == ["text", "csv", "json"]
    assert got["gmemtrace whatif -p sp"] == ["split4k"]  # from the installed policies
    assert got["gmemd --no-"] == ["--no-fentry", "--no-http"]


def test_bash_completion_installed_for_every_program(installed):
    """Sourcing the installed file registers all five; verbs, options and values complete."""
    comp = os.path.join(installed, "usr", "share", "bash-completion", "completions")
    for prog in ("gmemd", "gmemtop", "gmemtrace", "gmem-load", "gmem-policy"):
        assert os.path.realpath(os.path.join(comp, prog)) == os.path.join(comp, "gmemscope")
    _check_completions(_complete(f"source {comp}/gmemtrace\n", installed))


def test_bash_completion_found_by_bash_completions_loader(installed):
    """What an interactive shell does: bash-completion loads ours on first use of gmemtop."""
    loader = "/usr/share/bash-completion/bash_completion"
    assert os.path.isfile(loader), "make deps installs bash-completion"
    got = _complete(f"source {loader}\n__load_completion gmemtop || exit 3\n", installed,
                    XDG_DATA_DIRS=os.path.join(installed, "usr", "share"))
    _check_completions(got)


def _unit_keys(text):
    keys = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, v = line.split("=", 1)
            keys[k.strip()] = v.strip()
    return keys


def test_systemd_unit_passes_systemd_analyze_verify():
    """gmemd.service as installed for a prefix: systemd-analyze verify finds nothing to say
    (it also checks that ExecStart's gmemd exists there), and a broken copy is refused."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "make deps installs systemd, which has systemd-analyze"
    root = tempfile.mkdtemp(prefix="gmem-unit-")
    try:
        prefix = os.path.join(root, "usr")
        p = subprocess.run(["make", "-C", ROOT, "-s", f"O={BUILD}", f"PREFIX={prefix}",
                            "install"], capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr
        unit = os.path.join(prefix, "lib", "systemd", "system", "gmemd.service")
        text = open(unit).read()
        keys = _unit_keys(text)
        assert keys["Type"] == "notify"
        assert keys["ExecStart"] == f"{prefix}/bin/gmemd $GMEMD_ARGS"
        assert keys["EnvironmentFile"] == "-/etc/default/gmemd"
        # the measured set (README, Privileges; tests/live/test_safety.py measures it), plus
        # CAP_SYS_PTRACE for the KVM stats fds gmemd copies by default (--kvm-stats)
        assert set(keys["CapabilityBoundingSet"].split()) == {
            "CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"}
        assert keys["ProtectSystem"] == "strict" and keys["NoNewPrivileges"] == "yes"
        assert keys["RuntimeDirectory"] == "gmemscope"
        v = subprocess.run([analyze, "verify", "--man=no", unit], capture_output=True,
                           text=True, timeout=120)
        assert v.returncode == 0 and v.stderr == "", v.stderr
        # the same check on a unit with a misspelt key and a missing binary complains
        bad = os.path.join(root, "gmemd.service")
        with open(bad, "w") as f:
            f.write(text.replace("NoNewPrivileges=", "NoNewPrivilege=")
                    .replace(f"{prefix}/bin/gmemd", f"{prefix}/bin/no-such-gmemd"))
        v = subprocess.run([analyze, "verify", "--man=no", bad], capture_output=True,
                           text=True, timeout=120)
        assert v.returncode != 0 and "NoNewPrivilege" in v.stderr, v.stderr
        assert "no-such-gmemd" in v.stderr, v.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)
