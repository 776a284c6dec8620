"""Hostile and careless users of the control plane (doc/CONTRACT.md §12): other uids that can
reach the socket file, connect errors, bytes that are not UTF-8 in names and paths, a reload
waited for while masterd stops, the metrics listener's limits and targets, masterctl's
arguments, and general_master.sh status's exit code.

Everything is a real masterd, real sockets and real other uids (setpriv to nobody, as
test_control.py does); a test that needs root skips when not root.
"""
import json
import os
import pwd
import select
import signal
import socket
import subprocess
import sys
import time
import unittest

import lib
from lib import CHANNEL_CHILD, MasterTest, free_port, script, wait_until

MASTERCTL = os.path.join(lib.BUILD, "masterd", "masterctl")
GENERAL_MASTER = os.path.join(lib.ROOT, "scripts", "general_master.sh")
SLEEP = "server-command = /bin/sleep 1000\n"
# Says HELLO and never READY: a generation of it stays "starting" until server-ready-timeout.
NEVER_READY = CHANNEL_CHILD + "rec(1, os.getpid())\nwhile True:\n    time.sleep(60)\n"

# Run as nobody: connects argv[2] times to the control socket argv[1] and holds them all; prints
# "connected N", then what the first connection got and how long until its EOF; exits when its
# stdin closes.
HOG = r'''
import socket, sys, time
socks = []
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    socks.append(s)
print("connected", len(socks), flush=True)
s = socks[0]
s.settimeout(15)
t0, got = time.monotonic(), b""
try:
    while True:
        b = s.recv(4096)
        if not b:
            break
        got += b
except OSError as e:
    got += b"<%r>" % e
print(repr(got), round(time.monotonic() - t0, 2), flush=True)
sys.stdin.read()
'''

# Run as nobody: for argv[2] seconds connects to argv[1] as fast as it can, holding the latest
# 60 connections (the oldest is closed as each new one opens).  Prints how many it made.
FLOOD = r'''
import collections, socket, sys, time
held, n, end = collections.deque(), 0, time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(sys.argv[1])
    except OSError:
        s.close()
        continue
    n += 1
    held.append(s)
    if len(held) > 60:
        held.popleft().close()
print(n, flush=True)
'''


def as_user(user, argv):
    return ["setpriv", "--reuid=%d" % user.pw_uid, "--regid=%d" % user.pw_gid, "--clear-groups"] + list(argv)


def ctl_path(m):
    return m.pid_file[:-4] + ".ctl"


def ctl(m, *args, user=None, timeout=30, opts=None):
    """masterctl on m's control socket; bytes out (nothing is decoded for the caller)."""
    cmd = [MASTERCTL] + (["-control", ctl_path(m)] if opts is None else list(opts)) + list(args)
    return subprocess.run(as_user(user, cmd) if user else cmd, capture_output=True, timeout=timeout)


def json_status(m):
    r = ctl(m, "status", "--json")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return {s["name"]: s for s in json.loads(r.stdout)["services"]}


def read_line(f, deadline):
    """One line from the pipe f (bytes), or b'' at EOF; AssertionError at the deadline."""
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([f], [], [], left)[0]:
            raise AssertionError("no whole line in time (have %r)" % line)
        b = os.read(f.fileno(), 1)
        if not b:
            return line
        line += b
    return line


def http(port, req, timeout=5):
    """Sends req to 127.0.0.1:port and reads until EOF; a reset after some bytes ends the read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        s.sendall(req)
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except ConnectionResetError:
        if not out:
            raise
    finally:
        s.close()
    return out


def plain_text(test, data):
    """data is UTF-8 with no control character but newline, no DEL and no C1 control."""
    text = data.decode("utf-8")  # strict
    bad = [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f]
    test.assertEqual(bad, [], "raw control characters in %r" % text)
    return text


class ControlHostile(MasterTest):
    def need_root(self):
        if os.geteuid() != 0:
            self.skipTest("needs root (runs clients as nobody with setpriv)")

    def sleeper(self, **kw):
        """A masterd running a.cf, a plain program (ready once it has run for 1 s)."""
        m = self.master({"a.cf": SLEEP}, **kw).start()
        m.wait_children(1)
        wait_until(lambda: json_status(m)["a"]["state"] == "running", 5, what="a running")
        return m

    # -- 1. refused peers ------------------------------------------------------------------

    def test_refused_peers_hold_no_client_slot(self):
        """200 connections of another uid, held open, take no slot: root's status still works,
        each was answered and closed at once, and one refusal line is logged."""
        self.need_root()
        nobody = pwd.getpwnam("nobody")
        m = self.sleeper()
        os.chmod(m.dir, 0o755)
        os.chmod(ctl_path(m), 0o666)  # a careless chmod: only the credentials check is left
        hog = subprocess.Popen(as_user(nobody, [sys.executable, "-c", HOG, ctl_path(m), "200"]),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 10
            self.assertEqual(read_line(hog.stdout, deadline), b"connected 200\n")
            r = ctl(m, "status")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertRegex(r.stdout, rb"(?m)^a\s+running")
            self.assertLessEqual(lib.fd_count(m.pid), 40, "masterd holds the refused connections")
            got = read_line(hog.stdout, deadline)
            reply, secs = got.rsplit(b" ", 1)
            self.assertEqual(reply, repr(b"error: permission denied\nstatus 4\n").encode())
            self.assertLess(float(secs), 2.0, "the refused connection was not closed at once")
        finally:
            hog.stdin.close()
            hog.wait(10)
        self.assertEqual(m.log().count("control socket: refused pid"), 1, "refusals are rate-limited")

    def test_unauthorized_flood_does_not_starve_root(self):
        """4 processes of another uid connect as fast as they can, each holding its latest 60:
        root's masterctl is served every time, promptly."""
        self.need_root()
        nobody = pwd.getpwnam("nobody")
        m = self.sleeper()
        os.chmod(m.dir, 0o755)
        os.chmod(ctl_path(m), 0o666)
        floods = [subprocess.Popen(as_user(nobody, [sys.executable, "-c", FLOOD, ctl_path(m), "6"]),
                                   stdout=subprocess.PIPE) for _ in range(4)]
        try:
            wait_until(lambda: m.log().count("control socket: refused pid") == 1, 5, what="the flood to begin")
            for _ in range(5):
                t0 = time.monotonic()
                r = ctl(m, "status", timeout=10)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertLess(time.monotonic() - t0, 5.0)
            made = [int(f.communicate(timeout=15)[0]) for f in floods]
        finally:
            for f in floods:
                if f.poll() is None:
                    f.kill()
                    f.wait()
        self.assertGreater(sum(made), 1000, "the flood was not a flood")
        self.assertEqual(m.log().count("control socket: refused pid"), 1, "refusals are rate-limited")
        self.assertLessEqual(lib.fd_count(m.pid), 40)
        self.assertEqual(json_status(m)["a"]["state"], "running")

    # -- 2. connect errors -----------------------------------------------------------------

    def test_masterctl_permission_denied_is_exit_4(self):
        self.need_root()
        nobody = pwd.getpwnam("nobody")
        m = self.sleeper()
        os.chmod(m.dir, 0o755)  # the socket itself stays 0600: connect() fails with EACCES
        r = ctl(m, "status", user=nobody)
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertIn(b"permission denied", r.stderr.lower())
        self.assertIn(ctl_path(m).encode(), r.stderr)
        self.assertNotIn(b"not running", r.stderr)
        os.chmod(m.dir, 0o700)  # no search permission on its directory: EACCES too
        r = ctl(m, "status", user=nobody)
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        # Only "no such socket" and "nobody listens" mean not running.
        r = ctl(m, "status", opts=["-control", m.path("nosuch.ctl")])
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn(b"not running", r.stderr)
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(m.path("stale.ctl"))
        stale.close()
        r = ctl(m, "status", opts=["-control", m.path("stale.ctl")])
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn(b"not running", r.stderr)

    # -- 3. bytes that are not UTF-8 -------------------------------------------------------

    def test_every_string_is_valid_utf8_and_escaped(self):
        """A listen path with bytes that are not UTF-8, an ESC and an é: --json is strict UTF-8
        JSON with \\u00XX for the bad bytes; the table, error lines and a reload's lines (a file
        name the service id rules refuse) show them escaped, never raw."""
        m = self.master({})
        with open(os.path.join(m.cf, "s.cf"), "wb") as f:
            f.write(b"server-command = /bin/sleep 1000\nserver-service = ../x\xff\x1b\x7f\x9b\xc3\xa9.sock\n")
        m.start()
        m.wait_children(1)
        r = ctl(m, "status", "--json")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r.stdout.decode("utf-8")  # strict: raises on a byte that is not UTF-8
        self.assertEqual([b for b in r.stdout if b < 0x20 and b != 0x0a], [])
        doc = json.loads(r.stdout)
        address = doc["services"][0]["listeners"][0]["address"]
        self.assertTrue(address.endswith("/x\u00ff\u001b\u007f\u009b\u00e9.sock"), address)
        self.assertIn(b"x\\u00ff\\u001b\\u007f\\u009b\xc3\xa9.sock", r.stdout)
        # The table: UTF-8, nothing raw a terminal would act on, the bad bytes visible.
        r = ctl(m, "status")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("x\\xff\\x1b\\x7f\\x9b\u00e9.sock", plain_text(self, r.stdout))
        # Error lines that echo a request's bytes.
        r = ctl(m, "status", b"no\xff\x9bsuch".decode("utf-8", "surrogateescape"))
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("no\\xff\\x9bsuch", plain_text(self, r.stderr))
        # A reload's lines: here the error naming a file whose name is not a service id.
        with open(os.path.join(m.cf.encode(), b"w\xff\x9b\xc3\xa9.cf"), "wb") as f:
            f.write(b"server-command = /bin/sleep 1000\n")
        r = ctl(m, "reload")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("w\\xff\\x9b\u00e9.cf", plain_text(self, r.stdout))

    # -- 4. a synchronous reload ------------------------------------------------------------

    def never_ready_reload(self):
        """a runs; its file changes to a program that never becomes ready; `masterctl reload`
        is started and waits.  Returns (m, the masterctl Popen)."""
        m = self.sleeper()
        prog = script(m, "never_ready.py", NEVER_READY)
        m.write("a.cf", "server-command = %s\nserver-ready-timeout = 60\n" % prog)
        p = subprocess.Popen([MASTERCTL, "-control", ctl_path(m), "reload"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        return m, p

    def test_reload_change_lines_come_before_the_wait(self):
        m, p = self.never_ready_reload()
        line = read_line(p.stdout, time.monotonic() + 5)
        self.assertEqual(line, b"a: new generation (generation 2)\n")
        self.assertIsNone(p.poll(), "masterctl should still wait for generation 2")

    def test_reload_waited_for_when_masterd_stops(self):
        m, p = self.never_ready_reload()
        wait_until(lambda: "reload: 0 started, 1 new generation" in m.log(), 5, what="the reload applied")
        wait_until(lambda: "a: started pid" in m.log().split("reload: 0 started")[-1], 5,
                   what="generation 2's process")
        m.signal(signal.SIGTERM)
        out, err = p.communicate(timeout=15)
        self.assertEqual(p.returncode, 1, (out, err))
        self.assertIn(b"a: new generation (generation 2)\n", out)
        self.assertIn(b"masterctl: masterd is stopping", err)
        self.assertEqual(m.wait_exit(15), 0)

    # -- 5. the metrics listener -------------------------------------------------------------

    def test_http_over_the_limit_gets_503(self):
        mport = free_port()
        m = self.sleeper(args=["-metrics", "127.0.0.1:%d" % mport])
        stuck = [socket.create_connection(("127.0.0.1", mport), timeout=5) for _ in range(40)]
        try:
            out = http(mport, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            head, _, body = out.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            self.assertEqual(lines[0], b"HTTP/1.1 503 Service Unavailable", out)
            self.assertRegex(head, rb"\r\nRetry-After: \d+(\r\n|$)")
            self.assertIn(b"\r\nConnection: close", head)
            self.assertIn(b"\r\nContent-Length: %d" % len(body), head)
            # One of the 8 connections past the 32 was answered the same way, and closed.
            stuck[-1].settimeout(5)
            self.assertTrue(stuck[-1].recv(4096).startswith(b"HTTP/1.1 503 "))
            # masterctl is not crowded out.
            self.assertEqual(ctl(m, "status").returncode, 0)
        finally:
            for s in stuck:
                s.close()
        out = wait_until(lambda: (lambda o: o if o.startswith(b"HTTP/1.1 200 OK\r\n") else None)(
            http(mport, b"GET /metrics HTTP/1.0\r\n\r\n")), 5, what="a scrape served once the others left")
        self.assertIn(b"\nmasterd_up 1\n", out)

    def test_http_query_string_is_ignored(self):
        mport = free_port()
        m = self.sleeper(args=["-metrics", "127.0.0.1:%d" % mport])
        for target in (b"/metrics?x=1", b"/metrics?", b"/metrics?name[]=masterd_up&a=%20"):
            out = http(mport, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(out.startswith(b"HTTP/1.1 200 OK\r\n"), (target, out[:100]))
            self.assertIn(b"\nmasterd_up 1\n", out)
        out = http(mport, b"HEAD /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\n"), out[:200])
        for target in (b"/metricsx", b"/metrics/x", b"/?metrics", b"/x?/metrics"):
            out = http(mport, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(out.startswith(b"HTTP/1.1 404 Not Found\r\n"), (target, out[:100]))
        self.assertEqual(json_status(m)["a"]["state"], "running")

    # -- masterctl's arguments ---------------------------------------------------------------

    def test_masterctl_arguments(self):
        m = self.sleeper()
        for opts in (["-control", ""], ["-pid-file", ""]):
            r = ctl(m, "status", opts=opts)
            self.assertEqual(r.returncode, 64, r.stdout + r.stderr)
            self.assertIn(b"masterctl: %s: empty path" % opts[0].encode(), r.stderr)
        # Options after the command work as before it.
        r = ctl(m, "status", "--json", "-control", ctl_path(m), opts=["-control", m.path("nosuch.ctl")])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(json.loads(r.stdout)["services"][0]["name"], "a")
        r = ctl(m, "status", "-pid-file", m.pid_file, "a", opts=[])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, rb"(?m)^a\s+running")
        # An unknown option is a usage error, wherever it is; after `--` a word is a word.
        r = ctl(m, "status", "-bogus")
        self.assertEqual(r.returncode, 64, r.stdout + r.stderr)
        self.assertIn(b"masterctl: unknown option '-bogus'", r.stderr)
        r = ctl(m, "status", "--", "-bogus")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(b"no service '-bogus'", r.stderr)
        r = ctl(m, "status", "-control")
        self.assertEqual(r.returncode, 64, r.stdout + r.stderr)
        # --json may come before the command too; alone it is no command.
        r = ctl(m, "--json", "status", "a")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual([s["name"] for s in json.loads(r.stdout)["services"]], ["a"])
        r = ctl(m, "--json")
        self.assertEqual(r.returncode, 64, r.stdout + r.stderr)

    # -- states, and general_master.sh status --------------------------------------------------

    def general_status(self, m, **extra):
        env = dict(os.environ, MASTERD=lib.MASTERD, CONFIG_DIR=m.cf, PID_FILE=m.pid_file, LOG=m.log_path)
        env.update(extra)
        return subprocess.run([GENERAL_MASTER, "status"], capture_output=True, text=True, timeout=30,
                              env=env, cwd=m.dir)

    def test_sigstopped_process_shows_in_the_service_state(self):
        m = self.sleeper()
        kid = m.children()[0]
        self.assertEqual(self.general_status(m).returncode, 0)
        os.kill(kid, signal.SIGSTOP)
        try:
            a = wait_until(lambda: (lambda a: a if a["state"] != "running" else None)(json_status(m)["a"]), 5,
                           what="a's state to change from running")
            self.assertEqual(a["state"], "sigstopped")
            self.assertEqual(a["processes"][0]["state"], "stopped")
            self.assertRegex(ctl(m, "status").stdout, rb"(?m)^a\s+sigstopped\s")
            r = self.general_status(m)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        finally:
            os.kill(kid, signal.SIGCONT)
        wait_until(lambda: json_status(m)["a"]["state"] == "running", 5, what="a running again")

    def test_general_master_status_without_a_reply_is_1(self):
        m = self.sleeper()
        r = self.general_status(m)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.general_status(m, CONTROL=m.path("nosuch.ctl"))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("no status from masterd", r.stderr)

    def test_general_master_reload_not_allowed_is_1(self):
        """masterctl's exit 4 (not allowed) is general_master.sh reload's failure, 1: the script's
        codes stay 0, 1, 2 and 64."""
        m = self.sleeper()
        fake = script(m, "masterctl_denied.sh", "#!/bin/sh\n"
                      "echo 'masterctl: permission denied: cannot reach the control socket' >&2\nexit 4\n")
        env = dict(os.environ, MASTERD=lib.MASTERD, CONFIG_DIR=m.cf, PID_FILE=m.pid_file, LOG=m.log_path,
                   MASTERCTL=fake)
        r = subprocess.run([GENERAL_MASTER, "reload"], capture_output=True, text=True, timeout=30, env=env,
                           cwd=m.dir)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("permission denied", r.stderr)

    def test_crash_loop_retrying_is_still_crash_looping(self):
        """A slot that failed 3 times in a row and is trying again (a process that has not become
        ready) is crash-looping, not starting: general_master.sh status says 1 throughout."""
        m = self.master({})
        prog = script(m, "fail3.sh", "#!/bin/sh\n"
                      "n=$(cat %s/tries 2>/dev/null || echo 0); echo $((n + 1)) > %s/tries\n"
                      "[ \"$n\" -lt 3 ] && exit 1\nexec %s %s\n" % (m.dir, m.dir, sys.executable,
                                                                   script(m, "never_ready.py", NEVER_READY)))
        m.write("a.cf", "server-command = %s\nserver-ready-timeout = 60\n" % prog)
        m.start()
        a = wait_until(lambda: (lambda a: a if a["processes"] and a["restarts"] >= 3 else None)(json_status(m)["a"]),
                       10, what="the 4th try running after 3 failures")
        self.assertEqual(a["state"], "crash-looping")
        r = self.general_status(m)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
