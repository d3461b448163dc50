# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""/metrics beyond loopback: TLS and basic auth from --web.config.file (the Prometheus
exporter-toolkit's format), scraped by a real Prometheus over TLS with the right password, and
refused with a wrong one or none.

LIVE: the real gmemd on this kernel with gmem-load's VMs; a self-signed certificate made here
with openssl, and bcrypt hashes made with the system's crypt (libxcrypt).
"""
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import textwrap
import urllib.error
import urllib.request
import base64

import pytest

from gmemtest import GMEMD, Metrics, free_port, require_live, run_load, stop_process, wait_until
from test_exporter import Prometheus

PASSWORD = "correct horse battery staple"


def bcrypt(password):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    h = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10))
    assert h and h.startswith("$2"), "this system's crypt makes bcrypt hashes"
    return h


@pytest.fixture
def tls():
    d = tempfile.mkdtemp(prefix="gmem-tls-")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                        os.path.join(d, "server.key"), "-out", os.path.join(d, "server.crt"),
                        "-days", "2", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write(d, name, text):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    return path


class SecureGmemd:
    def __init__(self, d, web):
        self.port = free_port()
        self.socket = os.path.join(d, "gmemd.sock")
        self.log = open(os.path.join(d, "gmemd.log"), "w+")
        self.proc = subprocess.Popen([GMEMD, "--listen", f"127.0.0.1:{self.port}", "--socket",
                                      self.socket, "--scan-interval", "0.5",
                                      "--web.config.file", web],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.proc.poll() is not None or "ready" in self.output(),
                   timeout=30, what="gmemd ready")
        assert self.proc.poll() is None, self.output()
        self.ctx = ssl.create_default_context(cafile=os.path.join(d, "server.crt"))

    def output(self):
        self.log.flush()
        return open(self.log.name).read()

    def get(self, user=None, password=None):
        req = urllib.request.Request(f"https://127.0.0.1:{self.port}/metrics")
        if user is not None:
            tok = base64.b64encode(f"{user}:{password}".encode()).decode()
            req.add_header("Authorization", f"Basic {tok}")
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.ctx) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("WWW-Authenticate", "")

    def stop(self):
        return stop_process(self.proc)


def test_real_prometheus_scrapes_over_tls_with_auth_and_a_wrong_password_is_refused(tls):
    require_live()
    web = write(tls, "web.yml", f"""\
        tls_server_config:
          cert_file: server.crt
          key_file: server.key
        basic_auth_users:
          prometheus: {bcrypt(PASSWORD)}
        """)
    d = SecureGmemd(tls, web)
    prom = None
    try:
        assert "metrics on https://127.0.0.1:" in d.output() and "(basic auth)" in d.output()
        # by hand first: the right password, a wrong one, none, and plain HTTP
        status, body = d.get("prometheus", PASSWORD)
        assert status == 200 and "gmem_files_created_total" in body
        assert d.get("prometheus", "wrong")[0] == 401
        status, challenge = d.get()
        assert status == 401 and 'Basic realm="gmemscope"' in challenge
        with pytest.raises(Exception):
            urllib.request.urlopen(f"http://127.0.0.1:{d.port}/metrics", timeout=5).read()

        res = run_load("--vms", "1", "--files", "2", "--user-touch", "20", "--fallocate", "12")
        vm = (res.get("exit") or res["done"])["vms"][0]
        ca = os.path.join(tls, "server.crt")
        job = lambda name, password: textwrap.indent(textwrap.dedent(f"""\
            - job_name: {name}
              scheme: https
              tls_config:
                ca_file: {ca}
              basic_auth:
                username: prometheus
                password: '{password}'
              static_configs:
                - targets: ['127.0.0.1:{d.port}']
            """), "  ")
        cfg = ("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
               "  evaluation_interval: 1s\nscrape_configs:\n" + job("good", PASSWORD) +
               job("bad", "not the password"))
        prom = Prometheus(None, rules=False, config=cfg)

        def scraped():
            good = prom.value('up{job="good"}')
            bad = prom.value('up{job="bad"}')
            return good == 1 and bad == 0 and (good, bad)
        wait_until(scraped, timeout=30, what="both jobs scraped")
        got = lambda name, **l: prom.value(
            f'{name}{{job="good",{",".join(f"{k}={json.dumps(str(v))}" for k, v in l.items())}}}')
        wait_until(lambda: got("gmem_files_released_total", vm=vm["pid"]) == 2, timeout=30,
                   what="the VM's files released, through Prometheus")
        assert got("gmem_files_created_total", vm=vm["pid"]) == vm["files_created"]
        for src in ("user_fault", "fallocate"):
            assert (got("gmem_pages_allocated_total", vm=vm["pid"], source=src)
                    == vm["pages_allocated"][src]), src
        targets = prom.api("targets")["activeTargets"]
        bad = [t for t in targets if t["labels"]["job"] == "bad"][0]
        assert "401" in bad["lastError"], bad
        assert prom.value('count({job="bad", __name__=~"gmem_.*"})') is None, \
            "a refused scrape carries no gmem data"
        status, body = d.get("prometheus", PASSWORD)
        assert Metrics(body).get("gmemscope_http_unauthorized_total") >= 3
    finally:
        if prom:
            prom.stop()
        assert d.stop() == 0, d.output()


@pytest.mark.parametrize("text, needle", [
    ("tls_server_config:\n  cert_file: server.crt\n", "needs both cert_file and key_file"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
     "  client_auth_type: RequireAndVerifyClientCert\n",
     "tls_server_config.client_auth_type is not supported by gmemd"),
    ("http_server_config:\n  http2: false\n", "http_server_config is not supported by gmemd"),
    ("basic_auth_users:\n  alice: plaintext\n", "basic_auth_users.alice is not a bcrypt hash"),
    ("tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n", "key_file"),
    ("tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n",
     "cert_file "),
    ("tls_server_config: [unclosed\n", "not YAML"),
    ("- a\n- b\n", "the file must be a mapping"),
])
def test_bad_web_config_is_refused_by_name(tls, text, needle):
    require_live()
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-out", os.path.join(tls, "other.key")],
                   capture_output=True, timeout=60, check=True)
    web = write(tls, "web.yml", text)
    p = subprocess.run([GMEMD, "--listen", "127.0.0.1:0", "--socket",
                        os.path.join(tls, "s.sock"), "--web.config.file", web],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, p.stderr
    assert needle in p.stderr and "ready" not in p.stderr, p.stderr
    assert web in p.stderr or "--web.config.file" in p.stderr
    p = subprocess.run([GMEMD, "--web.config.file", os.path.join(tls, "absent.yml")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "absent.yml: No such file or directory" in p.stderr


def test_sighup_reloads_the_web_config_and_keeps_it_when_the_new_one_is_bad(tls):
    """LIVE: SIGHUP reads --web.config.file again: a changed password applies at once, on the
    same port, and gmemd keeps running; a file that does not load leaves the running config."""
    require_live()
    import signal

    def config(password):
        return write(tls, "web.yml", f"""\
            tls_server_config:
              cert_file: server.crt
              key_file: server.key
            basic_auth_users:
              prometheus: {bcrypt(password)}
            """)
    web = config("first")
    d = SecureGmemd(tls, web)
    try:
        assert d.get("prometheus", "first")[0] == 200
        config("second")
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "SIGHUP: reloaded" in d.output(), what="reloaded")
        assert d.get("prometheus", "second")[0] == 200
        assert d.get("prometheus", "first")[0] == 401
        write(tls, "web.yml", "basic_auth_users:\n  prometheus: not-a-hash\n")
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "SIGHUP: keeping the running web config" in d.output(),
                   what="the bad file refused")
        assert "not a bcrypt hash" in d.output()
        assert d.get("prometheus", "second")[0] == 200, "the running config stayed"
        assert d.proc.poll() is None
    finally:
        assert d.stop() == 0, d.output()
