# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""make install: the programs land on a PATH and still find their policies and probes there
(a user types `gmemtop`, not build/bin/gmemtop)."""
import os
import shutil
import subprocess
import tempfile

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
    finally:
        shutil.rmtree(dest, ignore_errors=True)
