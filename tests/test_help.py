# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""Help that reads well at 80 columns, for every program and every verb.

argp wraps doc paragraphs itself, so a paragraph with hard line breaks comes out with orphan
words, and an example longer than the margin is cut in two and no longer pastes. Here every
--help (and -h, and `PROG help VERB`) runs at 80 columns and its text is checked line by line.
"""
import os
import re
import subprocess

import pytest

from gmemtest import BIN

PROGRAMS = ("gmemd", "gmemtop", "gmemtrace", "gmem-load", "gmem-policy")
VERBS = {
    "gmemtrace": ("record", "report", "replay", "export", "cat", "info", "features", "whatif",
                  "scenario"),
    "gmem-policy": ("list", "check", "decide", "whatif", "gen", "bench", "status", "switch"),
}
# What an example line may start with: our programs and the tools they are piped into.
COMMANDS = set(PROGRAMS) | {"curl", "sudo", "kill"}
# Paths and names that exist only in the source tree, not on a host that installed us.
LEAKS = re.compile(r"\b[a-z]\w*__[a-z]\w*\b|\b\w+\.h\b|DESIGN\.md|README|"
                   r"(?<![\w/.])(docs|bpf|tests|src|tools|include|build)/")
WIDTH = 80


def _env():
    env = dict(os.environ, COLUMNS=str(WIDTH), LC_ALL="C")
    env.pop("ARGP_HELP_FMT", None)
    return env


def run(*args):
    return subprocess.run([os.path.join(BIN, args[0]), *args[1:]], capture_output=True,
                          text=True, env=_env(), timeout=30)


def helps():
    for prog in PROGRAMS:
        yield (prog, "--help")
        yield (prog, "-h")
        for verb in VERBS.get(prog, ()):
            yield (prog, verb, "--help")
            yield (prog, verb, "-h")
            yield (prog, "help", verb)
    yield ("gmem-policy", "help")
    yield ("gmemtrace", "help")


def examples(lines):
    """The lines of each EXAMPLES: block, up to the blank line that ends it."""
    out, inside = [], False
    for line in lines:
        if line.startswith("EXAMPLES"):
            inside = True
            continue
        if inside and not line.strip():
            inside = False
        if inside:
            out.append(line)
    return out


def check_text(text):
    """Every way a help text can read badly; a list of what is wrong (empty if nothing)."""
    bad = []
    lines = text.splitlines()
    ex = examples(lines)
    if not ex:
        bad.append("no EXAMPLES block")
    for i, line in enumerate(ex):
        continued = i > 0 and ex[i - 1].endswith(" \\")
        if continued:
            if not line.startswith("      ") or not line.strip():
                bad.append(f"shell continuation not indented: {line!r}")
            continue
        m = re.match(r"  (\S+)", line)
        if not m or line.startswith("   "):
            bad.append(f"example split across lines: {ex[i - 1]!r} / {line!r}")
        elif m.group(1) not in COMMANDS:
            bad.append(f"example line does not start with a command: {line!r}")
    for prev, line in zip([""] + lines, lines):
        if len(line) >= WIDTH:
            bad.append(f"line of {len(line)} columns: {line!r}")
        word = line.strip()
        lone = word and " " not in word and not word.endswith(":")
        bare_command = re.fullmatch(r"  (\S+)", line) and word in COMMANDS
        option_alone = re.match(r" {2,6}-", line)  # argp's line for a long option name
        # a lone word ending a paragraph, or an option's description wrapped onto its own line
        pasted = prev.endswith(" \\")  # the rest of an example, after a shell continuation
        if lone and not bare_command and not option_alone and not pasted and (prev.strip() or
                                                         line.startswith("      ")):
            bad.append(f"orphan word: {prev!r} / {line!r}")
    m = LEAKS.search(text)
    if m:
        bad.append(f"names something not installed: {m.group(0)!r}")
    return bad


@pytest.mark.parametrize("args", list(helps()), ids=" ".join)
def test_help_reads_well_at_80_columns(args):
    p = run(*args)
    assert p.returncode == 0, (args, p.returncode, p.stderr)
    assert p.stderr == ""
    assert "USAGE" in p.stdout and "EXAMPLES" in p.stdout, p.stdout
    bad = check_text(p.stdout)
    assert not bad, "\n".join(bad) + "\n\n" + p.stdout


def test_the_checker_catches_what_argp_did_to_the_old_help():
    """The checks above fail on the faults the old help had (so the test above can fail)."""
    old = ("gmemtrace export: convert a recording for other tools.\n\n"
           "Needs root or\nCAP_BPF+CAP_PERFMON (see README,\nPrivileges).\n\n"
           "EXAMPLES:\n"
           "  gmemtrace export vm.gmtr --format jsonl | jq -c 'select(.kind ==\n"
           "\"conv_attr\")'\n\n"
           "  -s, --socket=PATH          Control socket (default\n"
           "                             16)\n")
    bad = check_text(old)
    assert any("example split" in b for b in bad), bad
    assert any("orphan word" in b and "Privileges" in b for b in bad), bad
    assert any("orphan word" in b and "16)" in b for b in bad), bad
    assert any("not installed" in b for b in bad), bad


@pytest.mark.parametrize("prog", PROGRAMS)
def test_help_documents_exit_status(prog):
    out = run(prog, "--help").stdout
    assert "EXIT STATUS" in out and "64" in out, out


BAD_USAGE = [
    ("gmemd", "--bogus"), ("gmemd", "--scan", "nope"),
    ("gmemtop", "-x"), ("gmemtop", "--format", "xml"),
    ("gmemtrace", "nosuchverb"), ("gmemtrace", "record", "--bogus"),
    ("gmemtrace", "report"),
    ("gmem-load", "--bogus"), ("gmem-load", "--vms", "0"),
    ("gmem-policy", "nosuchverb"), ("gmem-policy", "decide", "--bogus"),
    ("gmem-policy", "decide", "buddy"), ("gmem-policy",),
]


@pytest.mark.parametrize("args", BAD_USAGE, ids=" ".join)
def test_usage_errors_exit_64_named_after_the_program(args):
    """One code (EX_USAGE) and one prefix, the program's name, even when run by full path."""
    p = run(*args)
    assert p.returncode == 64, (args, p.returncode, p.stderr)
    first = p.stderr.splitlines()[0]
    assert first.startswith(args[0] + ":") or first.startswith(args[0] + " "), p.stderr
    assert BIN not in p.stderr and "/" + args[0] not in p.stderr, p.stderr


def test_version_is_one_version_with_revision_and_libbpf():
    lib = subprocess.run(["pkg-config", "--modversion", "libbpf"], capture_output=True,
                         text=True).stdout.strip()
    seen = set()
    for prog in PROGRAMS:
        for flag in ("--version", "-V"):
            p = run(prog, flag)
            assert p.returncode == 0, (prog, p.stderr)
            m = re.fullmatch(r"(\S+) (\d+\.\d+\.\d+) \(git (\S+), libbpf (\d+)\.(\d+)\)\n",
                             p.stdout)
            assert m, (prog, p.stdout)
            assert m.group(1) == prog
            assert m.group(3) != "unknown", "built from git, the revision is known"
            if lib:
                assert lib.split(".")[:2] == [m.group(4), m.group(5)], (lib, p.stdout)
            seen.add((m.group(2), m.group(3)))
    assert len(seen) == 1, seen
