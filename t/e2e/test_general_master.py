"""scripts/general_master.sh (doc/CONTRACT.md §10) driving a real masterd: start, status, reload,
restart, stop, and every way they refuse or fail.

The script runs exactly as an operator runs it (its shebang, its environment overrides); whether
a master runs is checked from outside with `masterd --try-lock` and /proc, never trusted from
the script's own words alone.
"""
import os
import signal
import socket
import subprocess

from lib import FDSERVER, MASTERD, ROOT, MasterTest, alive, descendants, port_free, report, wait_until, \
    free_port

SCRIPT = os.path.join(ROOT, "scripts", "general_master.sh")


class GeneralMaster(MasterTest):
    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.m = self.master({"fd.cf": "server-command = %s serve\n"
                                       "server-service = 127.0.0.1:%d, ./fd.sock\n"
                                       "server-proc-count = 2\n" % (FDSERVER, self.port)})
        self.addCleanup(self.kill_leftover)

    # -- helpers ---------------------------------------------------------------------------

    def script(self, cmd, timeout=30, **extra):
        """Runs the script in the temp dir with relative paths, as an operator would."""
        env = dict(os.environ, MASTERD=MASTERD, CONFIG_DIR="cf", PID_FILE="masterd.pid",
                   LOG="masterd.log")
        env.update(extra)
        return subprocess.run([SCRIPT, cmd], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, cwd=self.m.dir, env=env)

    def lock_held(self):
        r = subprocess.run([MASTERD, "-pid-file", self.m.pid_file, "--try-lock"], capture_output=True,
                           timeout=10)
        self.assertIn(r.returncode, (0, 1), r.stderr)
        return r.returncode == 1

    def file_pid(self):
        with open(self.m.pid_file) as f:
            return int(f.read().strip())

    def masterds(self):
        """Every live masterd serving this test's config dir (from /proc)."""
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv[0] == MASTERD.encode() and self.m.cf.encode() in argv and alive(int(d)):
                out.append(int(d))
        return sorted(out)

    def kill_leftover(self):
        """A test that failed half-way must not leave a master behind."""
        for pid in self.masterds():
            self.m.known.update(descendants(pid))
            os.kill(pid, signal.SIGTERM)
            try:
                wait_until(lambda: not alive(pid), 10, what="leftover masterd to stop")
            except AssertionError:
                os.kill(pid, signal.SIGKILL)

    def assert_ok(self, r, rc=0):
        self.assertEqual(r.returncode, rc, "stdout=%r stderr=%r" % (r.stdout, r.stderr))

    def start(self):
        r = self.script("start")
        self.assert_ok(r)
        pid = self.file_pid()
        self.assertIn("masterd started (pid %d)" % pid, r.stdout)
        # The lock is held when start returns: no waiting needed by the caller.
        self.assertTrue(self.lock_held())
        self.m.known.update(descendants(pid))
        return pid

    # -- tests -----------------------------------------------------------------------------

    def test_full_cycle(self):
        pid = self.start()
        self.assertTrue(alive(pid))
        # Detached: a session of its own, so the terminal's ^C or hangup never reaches it.
        self.assertEqual(os.getsid(pid), pid)
        # WORK_DIR defaults to CONFIG_DIR: ./fd.sock is bound inside the config dir.
        sock = self.m.path("cf", "fd.sock")
        rep = wait_until(lambda: report(sock), 5, what="fdserver on ./fd.sock")
        self.assertEqual(rep["ppid"], pid)
        self.assertEqual(report(("127.0.0.1", self.port))["ppid"], pid)

        r = wait_until(lambda: (lambda r: r if r.returncode == 0 and "2/2/2" in r.stdout else None)(
            self.script("status")), 5, what="status 0, every process ready")
        self.assertEqual(r.stdout.splitlines()[0], "masterd is running (pid %d)" % pid)
        self.assertRegex(r.stdout, r"(?m)^fd\s+running\s+2/2/2\s")

        r = self.script("reload")
        self.assert_ok(r)
        self.assertIn("pid %d" % pid, r.stdout)
        wait_until(lambda: "reload: 0 started, 0 new generations, 0 scaled, 0 removed, 1 unchanged"
                   in self.m.log(), 5, what="masterd to log the reload")
        self.assertEqual(self.file_pid(), pid)

        r = self.script("restart")
        self.assert_ok(r)
        new = self.file_pid()
        self.assertNotEqual(new, pid)
        self.assertIn("stopping masterd (pid %d)" % pid, r.stdout)
        self.assertIn("masterd started (pid %d)" % new, r.stdout)
        wait_until(lambda: not alive(pid), 5, what="the old masterd to be gone")
        self.m.known.update(descendants(new))
        self.assertEqual(wait_until(lambda: report(("127.0.0.1", self.port)), 5)["ppid"], new)
        self.assertEqual(self.masterds(), [new])

        kids = wait_until(lambda: (lambda k: k if len(k) == 2 else None)(descendants(new)), 5,
                          what="2 children of the new masterd")
        r = self.script("stop")
        self.assert_ok(r)
        self.assertIn("masterd stopped", r.stdout)
        # Stopped means stopped when the script returns: lock free, pid file gone.
        self.assertFalse(self.lock_held())
        self.assertFalse(os.path.exists(self.m.pid_file))
        wait_until(lambda: not any(alive(p) for p in [new] + kids), 5, what="masterd and children gone")
        self.assertTrue(port_free(self.port))

        r = self.script("status")
        self.assert_ok(r, 3)
        self.assertEqual(r.stdout.strip(), "masterd is not running")

    def test_status_and_reload_through_masterctl(self):
        """status: 1 while a service is crash-looping or held down; reload: synchronous."""
        pid = self.start()
        wait_until(lambda: self.script("status").returncode == 0, 5, what="status 0")
        ctl = os.path.join(os.path.dirname(MASTERD), "masterctl")
        r = subprocess.run([ctl, "-pid-file", self.m.pid_file, "stop", "fd"], capture_output=True, text=True,
                           timeout=10)
        self.assert_ok(r)
        r = self.script("status")
        self.assert_ok(r, 1)
        self.assertRegex(r.stdout, r"(?m)^fd\s+held down")
        self.m.write("bad.cf", "server-command = /bin/false\n")
        r = self.script("reload")
        self.assert_ok(r, 1)
        self.assertIn("bad: generation 1 failed: pid", r.stdout)
        wait_until(lambda: "crash-looping" in self.script("status").stdout, 10, what="crash-looping")
        self.m.remove("bad.cf")
        self.m.write("fd.cf", "server-command = %s serve\nserver-service = 127.0.0.1:%d\n" % (FDSERVER, self.port))
        r = self.script("reload")
        self.assert_ok(r)
        self.assertIn("fd: generation", r.stdout)
        self.assertIn("ready", r.stdout)
        r = self.script("status")
        self.assert_ok(r)
        self.assertEqual(self.file_pid(), pid)
        # Without masterctl: the blind SIGHUP, as before.
        r = self.script("reload", MASTERCTL=os.path.join(self.m.dir, "no-such-masterctl"))
        self.assert_ok(r)
        self.assertIn("signalled (SIGHUP", r.stdout)

    def test_start_twice_refuses(self):
        pid = self.start()
        r = self.script("start")
        self.assert_ok(r, 1)
        self.assertIn("a master is already running (pid %d)" % pid, r.stderr)
        self.assertEqual(self.file_pid(), pid)
        self.assertEqual(self.masterds(), [pid])
        self.assertEqual(self.m.log().count(" started (pid "), 1, "a second masterd was started")

    def test_start_with_bad_config(self):
        self.m.write("bad.cf", "server-command = %s serve\nserver-proc-count = lots\n" % FDSERVER)
        r = self.script("start")
        self.assert_ok(r, 2)
        self.assertIn("bad.cf:2: server-proc-count", r.stderr)
        self.assertIn("is invalid", r.stderr)
        self.assertFalse(self.lock_held())
        self.assertEqual(self.masterds(), [])
        self.assertTrue(port_free(self.port))
        self.assertNotIn("started", self.m.log())
        r = self.script("status")
        self.assert_ok(r, 3)

    def test_stop_and_reload_when_not_running(self):
        r = self.script("stop")
        self.assert_ok(r, 0)
        self.assertEqual(r.stdout.strip(), "masterd is not running")
        r = self.script("reload")
        self.assert_ok(r, 1)
        self.assertIn("masterd is not running", r.stderr)
        # restart from stopped simply starts.
        r = self.script("restart")
        self.assert_ok(r)
        self.assertTrue(self.lock_held())
        self.m.known.update(descendants(self.file_pid()))

    def test_start_failure_prints_log(self):
        # masterd -t passes (it binds nothing) but the real start cannot listen.
        blocker = socket.socket()
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", self.port))
        blocker.listen()
        self.addCleanup(blocker.close)
        r = self.script("start")
        self.assert_ok(r, 1)
        self.assertIn("masterd did not start (exit 1)", r.stderr)
        self.assertIn("127.0.0.1:%d" % self.port, r.stderr)
        self.assertIn("in use", r.stderr)
        self.assertFalse(self.lock_held())
        self.assertEqual(self.masterds(), [])

    def test_bad_config_never_stops_a_running_master(self):
        pid = self.start()
        self.m.write("fd.cf", "server-command = %s serve\nserver-proc-count = 0\n" % FDSERVER)
        for cmd in ("reload", "restart"):
            r = self.script(cmd)
            self.assert_ok(r, 2)
            self.assertIn("fd.cf:2: server-proc-count", r.stderr)
            self.assertTrue(self.lock_held(), cmd)
            self.assertEqual(self.file_pid(), pid)
        self.assertNotIn("reload: reading", self.m.log(), "SIGHUP sent for an invalid config")
        self.assertEqual(report(("127.0.0.1", self.port))["ppid"], pid)

    def test_stop_timeout_reports_and_leaves_it_running(self):
        # A child that ignores SIGTERM keeps masterd stopping for its 5 s grace.
        self.m.write("fd.cf", "server-command = %s stubborn\nserver-service = 127.0.0.1:%d\n"
                     % (FDSERVER, self.port))
        pid = self.start()
        wait_until(lambda: report(("127.0.0.1", self.port)), 5, what="stubborn server")
        self.m.known.update(descendants(pid))
        r = self.script("stop", STOP_TIMEOUT="1")
        self.assert_ok(r, 1)
        self.assertIn("masterd (pid %d) is still running after 1 s" % pid, r.stderr)
        self.assertTrue(alive(pid))
        # masterd finishes on its own (SIGKILL after the grace); the script then sees it stopped.
        wait_until(lambda: not self.lock_held(), 15, interval=0.1, what="masterd to finish stopping")
        r = self.script("status")
        self.assert_ok(r, 3)

    def test_usage(self):
        for args in ([], ["frobnicate"], ["start", "now"]):
            r = subprocess.run([SCRIPT] + args, capture_output=True, text=True, timeout=10,
                               env=dict(os.environ, MASTERD=MASTERD))
            self.assertEqual(r.returncode, 64, args)
            self.assertIn("usage:", r.stderr)
        r = self.script("status", MASTERD=os.path.join(self.m.dir, "no-such-masterd"))
        self.assert_ok(r, 1)
        self.assertIn("no-such-masterd: no such program", r.stderr)
        # An unwritable log is refused before anything starts (and the script itself survives
        # the failed redirection: in sh a redirection error on a special built-in exits).
        r = self.script("start", LOG=os.path.join(self.m.dir, "no", "such", "dir", "masterd.log"))
        self.assert_ok(r, 1)
        self.assertIn("cannot write the log file", r.stderr)
        self.assertFalse(self.lock_held())
        self.assertEqual(self.masterds(), [])

    def test_is_posix_sh(self):
        for sh in ("sh", "dash"):
            if subprocess.run(["sh", "-c", "command -v %s" % sh], capture_output=True).returncode == 0:
                r = subprocess.run([sh, "-n", SCRIPT], capture_output=True, text=True, timeout=10)
                self.assertEqual(r.returncode, 0, r.stderr)
        # The whole cycle under dash explicitly, whatever /bin/sh is.
        if subprocess.run(["sh", "-c", "command -v dash"], capture_output=True).returncode != 0:
            self.skipTest("no dash")
        env = dict(os.environ, MASTERD=MASTERD, CONFIG_DIR=self.m.cf, PID_FILE=self.m.pid_file,
                   LOG=self.m.log_path)
        for cmd, rc in (("start", 0), ("status", 0), ("stop", 0), ("status", 3)):
            r = subprocess.run(["dash", SCRIPT, cmd], capture_output=True, text=True, timeout=30, env=env,
                               stdin=subprocess.DEVNULL)
            self.assertEqual(r.returncode, rc, (cmd, r.stdout, r.stderr))
