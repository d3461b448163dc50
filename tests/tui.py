# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""Driving a terminal program for real: a private tmux server, a shell in one pane, keys in,
the screen out (send-keys, capture-pane), and gmemtop's table read back into numbers.

Each Tmux has its own socket in its own temporary directory and no config file, so tests do not
see each other or the user's tmux; kill() ends that server only.
"""
import os
import re
import shutil
import subprocess
import tempfile
import time

from gmemtest import BIN, wait_until

GMEMTOP = os.path.join(BIN, "gmemtop")


class Tmux:
    def __init__(self, cols=80, rows=24, term="screen"):
        self.dir = tempfile.mkdtemp(prefix="gmemtop-tmux-")
        self.sock = os.path.join(self.dir, "tmux.sock")
        self.env = dict(os.environ, TERM="xterm", PS1="$ ", HOME=self.dir)
        self.env.pop("TMUX", None)
        try:
            self.tmux("-f", "/dev/null", "new-session", "-d", "-x", str(cols), "-y", str(rows),
                      "-s", "t", "bash --norc --noprofile")
            self.tmux("set-option", "-g", "default-terminal", term)
            self.tmux("set-option", "-t", "t", "status", "off")
            # the session's first shell started before the options: a fresh one gets them
            self.tmux("respawn-pane", "-k", "-t", "t", "bash --norc --noprofile")
            self.wait(lambda s: s.strip().endswith(("$", "#")), what="shell prompt")
        except BaseException:
            self.kill()
            raise

    def tmux(self, *args, check=True):
        p = subprocess.run(["tmux", "-S", self.sock, *args], env=self.env,
                           capture_output=True, text=True, timeout=10)
        if check:
            assert p.returncode == 0, f"tmux {args}: {p.stderr}"
        return p.stdout

    def keys(self, *keys):
        """tmux key names: "Enter", "Escape", "Down", "F10", "C-c", or literal single keys."""
        self.tmux("send-keys", "-t", "t", *keys)

    def type(self, text):
        self.tmux("send-keys", "-t", "t", "-l", text)

    def run(self, cmdline):
        self.type(cmdline)
        self.keys("Enter")

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "t")

    def lines(self):
        return self.screen().split("\n")

    def wait(self, pred, timeout=10.0, what="screen"):
        """Polls the screen until pred(screen) is truthy; returns that screen."""
        last = [""]

        def check():
            last[0] = self.screen()
            return pred(last[0])
        try:
            wait_until(check, timeout=timeout, interval=0.05, what=what)
            return last[0]
        except AssertionError:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; screen:\n"
                                 f"{last[0]}")

    def resize(self, cols, rows):
        self.tmux("resize-window", "-t", "t", "-x", str(cols), "-y", str(rows))

    def size(self):
        out = self.tmux("display-message", "-p", "-t", "t", "#{pane_width} #{pane_height}")
        w, h = out.split()
        return int(w), int(h)

    def shell_pid(self):
        return int(self.tmux("display-message", "-p", "-t", "t", "#{pane_pid}").strip())

    def child_pid(self, name="gmemtop", timeout=5.0):
        """The pid of the shell's child program of that name (comm)."""
        def find():
            sp = self.shell_pid()
            try:
                with open(f"/proc/{sp}/task/{sp}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except OSError:
                return None
            for k in kids:
                try:
                    with open(f"/proc/{k}/comm") as f:
                        if f.read().strip() == name:
                            return k
                except OSError:
                    pass
            return None
        return wait_until(find, timeout=timeout, what=f"{name} running in the pane")

    def kill(self):
        self.tmux("kill-server", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- reading gmemtop's screen -------------------------------------------------------------

UNITS = {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def bytes_of(cell):
    """gmemtop's byte cells: "0", "512B", "80K", "4M" are exact; "1.5G" is not, and fails."""
    if cell == "0":
        return 0
    m = re.fullmatch(r"(\d+)([BKMGT])", cell)
    assert m, f"not an exact byte count: {cell!r}"
    return int(m.group(1)) * UNITS[m.group(2)]


def table(screen):
    """The main view's table: {pid: {column: cell}} with "NAME" too, and the header columns.
    PID and NAME are fixed-width (7 and 15); every other cell is one word."""
    lines = screen.split("\n")
    for i, line in enumerate(lines):
        if re.match(r"^\s+PID NAME\s", line):
            break
    else:
        return {}, []
    cols = lines[i][24:].split()
    rows = {}
    for line in lines[i + 1:]:
        m = re.match(r"^\s*(\d+) ", line)
        if not m or len(line) < 8:
            break
        cells = line[24:].split()
        row = dict(zip(cols, cells))
        row["NAME"] = line[8:23].strip()
        rows[int(m.group(1))] = row
    return rows, cols


def row_order(screen):
    rows = []
    seen = False
    for line in screen.split("\n"):
        if re.match(r"^\s+PID NAME\s", line):
            seen = True
            continue
        m = re.match(r"^\s*(\d+) ", line)
        if seen and m:
            rows.append(int(m.group(1)))
        elif seen and rows:
            break
    return rows


def wait_time(t0):
    return time.monotonic() - t0
