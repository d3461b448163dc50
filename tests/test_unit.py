# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""Unit layer: every cmocka binary built from tests/unit/, one pytest item per cmocka case.

The binaries run once, at collection, with TAP output; a binary that crashes or prints no
plan shows up as a failing item, never as silence.
"""
import glob
import os
import re
import subprocess

import pytest

from gmemtest import BUILD

_TAP = re.compile(r"^(not ok|ok) (\d+) - (.*?)(?: # (SKIP|TODO).*)?$")


def _run(binary):
    env = dict(os.environ, CMOCKA_MESSAGE_OUTPUT="TAP")
    name = os.path.basename(binary)
    try:
        p = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return [(name, "timeout", False, "timed out after 300 s")]
    out = p.stdout + p.stderr
    results, group = [], 0
    for line in out.splitlines():
        if line.startswith("1.."):
            group += 1
            continue
        m = _TAP.match(line)
        if m:
            ok = m.group(1) == "ok"
            results.append([name, f"g{group}-{m.group(3)}", ok, ""])
        elif line.startswith("#") and results:
            results[-1][3] += line + "\n"
    if p.returncode < 0 or not results:
        results.append([name, "exit", False,
                        f"exit status {p.returncode}; output:\n{out[-4000:]}"])
    elif p.returncode != 0 and all(r[2] for r in results):
        results.append([name, "exit", False, f"exit status {p.returncode} with all cases ok"])
    return [tuple(r) for r in results]


def _collect():
    binaries = sorted(glob.glob(os.path.join(BUILD, "tests", "test_*")))
    if not binaries:
        return [("none", "none", False, f"no unit test binaries under {BUILD}/tests: run make")]
    out = []
    for b in binaries:
        if os.access(b, os.X_OK) and not b.endswith(".d"):
            out.extend(_run(b))
    return out


_RESULTS = _collect()


@pytest.mark.parametrize("binary,case,ok,detail", _RESULTS,
                         ids=[f"{r[0]}:{r[1]}" for r in _RESULTS])
def test_unit(binary, case, ok, detail):
    assert ok, detail
