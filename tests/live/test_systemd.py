# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""gmemd under systemd's Type=notify: READY=1 once it serves, STOPPING=1 when it stops.

systemd is not PID 1 here, so the test plays systemd's part of the protocol: NOTIFY_SOCKET
names an AF_UNIX datagram socket this test reads, exactly what sd_notify(3) writes to.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.request

from gmemtest import GMEMD, TIER_ARGS, free_port, require_live, stop_process


def test_gmemd_notifies_ready_once_serving_and_stopping_on_sigterm():
    require_live()
    d = tempfile.mkdtemp(prefix="gmemd-notify-")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(os.path.join(d, "notify"))
    notify.settimeout(60)
    ctl, port = os.path.join(d, "gmemd.sock"), free_port()
    log = open(os.path.join(d, "gmemd.log"), "w+")
    proc = subprocess.Popen([GMEMD, "--listen", f"127.0.0.1:{port}", "--socket", ctl,
                             *TIER_ARGS], stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, NOTIFY_SOCKET=os.path.join(d, "notify")))
    try:
        msg = notify.recv(4096).decode()
        # gmemd wrote its ready line before it notified: it is in the log already
        with open(log.name) as f:
            out = f.read()
        assert "READY=1" in msg.split("\n"), msg
        assert "gmemd: attached; capabilities kept: " in out, out
        assert "gmemd: ready; " in out, (msg, out)
        # and READY means serving: the control socket and /metrics answer now, not later
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(ctl)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            assert r.status == 200
        proc.send_signal(signal.SIGTERM)
        msg = notify.recv(4096).decode()
        assert msg == "STOPPING=1", msg
        assert proc.wait(timeout=30) == 0, open(log.name).read()
        assert not os.path.exists(ctl)
    finally:
        stop_process(proc, signal.SIGKILL)
        notify.close()
        log.close()
        shutil.rmtree(d, ignore_errors=True)
