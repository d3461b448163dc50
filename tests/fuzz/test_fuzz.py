# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""The recording reader under libFuzzer, for a bounded time, in every make check.

tests/fuzz/fuzz_recording.c drives the reader and what consumes its records (model, text,
Perfetto); make check builds it with clang, ASan and UBSan. The seed corpus is real
recordings: every scenario and a churn stream written by the recorder's writer, plus the
small live recordings in tests/fuzz/corpus/. A crash, a leak, undefined behaviour or a hang
(-timeout) fails the test, and the input that caused it is kept in tests/fuzz/regressions/,
whose every file is replayed by the second test from then on.
GMEM_FUZZ_SECONDS sets the time (default 30).
"""
import glob
import os
import shutil
import subprocess
import tempfile

from gmemtest import BIN, BUILD

HERE = os.path.dirname(os.path.abspath(__file__))
FUZZER = os.path.join(BUILD, "fuzz", "fuzz_recording")
GMEMTRACE = os.path.join(BIN, "gmemtrace")
REGRESSIONS = os.path.join(HERE, "regressions")


def need_fuzzer():
    assert os.access(FUZZER, os.X_OK), \
        f"{FUZZER} is missing: make check builds it (or `make fuzz`; needs libclang-rt-19-dev)"


def seeds(d):
    for name, extra in (("private-mem-conversions", ["--vcpus", "1"]), ("snp-boot", []),
                        ("tdx-guest", []), ("hugepage-splits", []),
                        ("synthetic-churn", ["--events", "3000"])):
        subprocess.run([GMEMTRACE, "scenario", name, "--chunk-records", "300",
                        "-o", os.path.join(d, name + ".gmtr"), *extra], check=True,
                       timeout=60)
    for f in glob.glob(os.path.join(HERE, "corpus", "*")):
        shutil.copy(f, d)


def test_fuzz_reader_bounded():
    """Fuzz the reader for GMEM_FUZZ_SECONDS on real recordings: zero crashes."""
    need_fuzzer()
    secs = int(os.environ.get("GMEM_FUZZ_SECONDS", "30"))
    work = tempfile.mkdtemp(prefix="gmemtrace-fuzz-")
    try:
        corpus, art = os.path.join(work, "corpus"), os.path.join(work, "artifacts") + "/"
        os.makedirs(corpus)
        os.makedirs(art)
        seeds(corpus)
        p = subprocess.run([FUZZER, f"-max_total_time={secs}", "-timeout=10",
                            "-rss_limit_mb=2048", "-print_final_stats=1",
                            f"-artifact_prefix={art}", corpus],
                           capture_output=True, text=True, timeout=secs + 120)
        found = sorted(glob.glob(art + "*"))
        for f in found:
            # kept for good: the regression test replays it from now on
            shutil.copy(f, os.path.join(REGRESSIONS, os.path.basename(f)))
        assert p.returncode == 0 and not found, \
            f"the fuzzer failed (kept {found} in {REGRESSIONS}):\n{p.stderr[-6000:]}"
        runs = [l for l in p.stderr.splitlines() if l.startswith("stat::number_of_executed_units")]
        assert runs and int(runs[0].split()[-1]) > 100, p.stderr[-2000:]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_fuzz_regressions_replay():
    """Every input the fuzzer ever failed on (and the hand-made edge cases beside them) runs
    clean."""
    need_fuzzer()
    cases = sorted(f for f in glob.glob(os.path.join(REGRESSIONS, "*"))
                   if not f.endswith(".md"))
    assert cases, f"no regression inputs in {REGRESSIONS}"
    p = subprocess.run([FUZZER, "-timeout=10", "-rss_limit_mb=2048", *cases],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-6000:]
    assert p.stderr.count("Executed ") == len(cases), p.stderr[-2000:]
