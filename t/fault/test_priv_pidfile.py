"""The pid file (doc/CONTRACT.md §1 -pid-file, --try-lock) against other users and against a racing master.

- A pid file another user owns or may write (or one in a directory they may write) is refused
  with a line saying why and what to do: its owner could rewrite the pid that
  `general_master.sh stop` signals, or hold the lock to keep masterd out with a misleading
  "another masterd holds the lock".
- Two masters on one pid file: B starts while A holds the lock (B retries for 500 ms) and A
  stops in that window, unlinking the file.  B must not end up holding the lock of the unlinked
  file (then `--try-lock` says "no master" and a third one starts): at every moment at most one
  masterd runs, and the one that runs holds the lock of the file at the path.

Tests needing root (another user's files) skip with a message saying so.
"""
import fcntl
import os
import pwd
import signal
import stat
import subprocess
import time
import unittest

import lib

FD = lib.FDSERVER
ROOT_ONLY = unittest.skipUnless(os.geteuid() == 0, "needs root (files of another user): skipped as uid %d"
                                % os.geteuid())


def masterd(cf, pid_file, log, *extra):
    f = open(log, "ab")
    try:
        return subprocess.Popen([lib.MASTERD, "-C", cf, "-pid-file", pid_file] + list(extra),
                                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
    finally:
        f.close()


def try_lock(pid_file):
    return subprocess.run([lib.MASTERD, "-pid-file", pid_file, "--try-lock"], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=10).returncode


class PidFileOwner(lib.MasterTest):

    def setUp(self):
        super().setUp()
        self.umask = os.umask(0o022)
        self.addCleanup(os.umask, self.umask)

    @ROOT_ONLY
    def test_pid_file_of_another_user_refused(self):
        nobody = pwd.getpwnam("nobody")
        port = lib.free_port()
        m = self.master({"a.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\n" % (FD, port)})
        with open(m.pid_file, "w") as f:
            f.write("1\n")
        os.chown(m.pid_file, nobody.pw_uid, nobody.pw_gid)
        r = m.run()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("masterd: pid file %s is owned by uid %d, not masterd's (uid 0): its owner could change the "
                      "pid that a stop signals, or hold the lock; remove it" % (m.pid_file, nobody.pw_uid), r.stderr)
        self.assertEqual(open(m.pid_file).read(), "1\n", "masterd wrote into another user's pid file")
        self.assertTrue(lib.can_bind(port), "masterd bound something before refusing")
        # Held by its owner (the lock-out): the same clear reason, not "another masterd holds the lock".
        os.chmod(m.dir, 0o755)
        holder = subprocess.Popen(["setpriv", "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid,
                                   "--clear-groups", "flock", m.pid_file, "sleep", "30"])
        self.addCleanup(lambda: (holder.kill(), holder.wait()))
        lib.wait_until(lambda: try_lock(m.pid_file) == 1, 5, what="nobody's flock on the pid file")
        r = m.run()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("is owned by uid %d" % nobody.pw_uid, r.stderr)
        self.assertNotIn("another masterd", r.stderr)

    def test_pid_file_others_can_write_refused(self):
        m = self.master({"a.cf": "server-command = %s\n" % FD})
        open(m.pid_file, "w").close()
        os.chmod(m.pid_file, 0o666)
        r = m.run()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("masterd: pid file %s is writable by others (mode 0666): remove it" % m.pid_file, r.stderr)
        self.assertEqual(open(m.pid_file).read(), "")
        os.unlink(m.pid_file)
        # Its directory writable by others (not sticky): they could swap the file.
        os.chmod(m.dir, 0o777)
        r = m.run()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("masterd: pid file %s: directory %s is writable by others (mode 0777) and not sticky"
                      % (m.pid_file, m.dir), r.stderr)
        self.assertFalse(os.path.exists(m.pid_file))
        # Sticky (like /tmp): accepted, and the file is masterd's own.
        os.chmod(m.dir, 0o1777)
        m.start(expect_children=1)
        st = os.lstat(m.pid_file)
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (os.geteuid(), 0o644))


class PidFileRace(lib.MasterTest):

    def test_master_stops_while_another_waits_for_the_lock(self):
        m = self.master({"a.cf": "server-command = %s\n" % FD})
        pid_file = m.pid_file
        ran_b = 0
        for round_ in range(6):
            a = masterd(m.cf, pid_file, m.path("a.log"))
            self.addCleanup(lambda p=a: p.poll() is None and (p.kill(), p.wait()))
            lib.wait_until(lambda: os.path.exists(pid_file) and open(pid_file).read().strip() == str(a.pid)
                           and lib.children(a.pid), 5 * lib.SLOW, what="master A to start")
            b = masterd(m.cf, pid_file, m.path("b.log"))
            self.addCleanup(lambda p=b: p.poll() is None and (p.kill(), p.wait()))
            # B has the file open and is retrying the lock: now A stops (and unlinks the file).
            lib.wait_until(lambda: b.poll() is not None or pid_file in lib.fd_links(b.pid).values(), 5,
                           what="B to open the pid file")
            a.send_signal(signal.SIGTERM)
            self.assertEqual(a.wait(10), 0)
            # B either gave up (A took longer than its 500 ms) or runs; if it runs it must own the path.
            lib.wait_until(lambda: b.poll() is not None or (os.path.exists(pid_file) and
                                                            open(pid_file).read().strip() == str(b.pid)), 5,
                           what="B to start (with the file at the path) or give up: B holds the lock of the unlinked file?")
            if b.poll() is not None:
                self.assertEqual(b.returncode, 1)
                continue
            ran_b += 1
            self.assertEqual(try_lock(pid_file), 1, "round %d: B runs but --try-lock says no master" % round_)
            c = masterd(m.cf, pid_file, m.path("c.log"))
            self.addCleanup(lambda p=c: p.poll() is None and (p.kill(), p.wait()))
            try:
                rc = c.wait(10)
            except subprocess.TimeoutExpired:
                rc = None
            self.assertEqual(rc, 1, "round %d: a third master started beside B (two masters)" % round_)
            self.assertTrue(b.poll() is None)
            b.send_signal(signal.SIGTERM)
            self.assertEqual(b.wait(10), 0)
            self.assertFalse(os.path.exists(pid_file), "B left its pid file")
        self.assertGreater(ran_b, 0, "B never got through the window: the race was not exercised")

    def test_stop_leaves_a_newer_pid_file_alone(self):
        # Somebody removed A's pid file and B started with a new one: A's stop must not unlink B's.
        m = self.master({"a.cf": "server-command = %s\n" % FD})
        a = masterd(m.cf, m.pid_file, m.path("a.log"))
        self.addCleanup(lambda: a.poll() is None and (a.kill(), a.wait()))
        lib.wait_until(lambda: os.path.exists(m.pid_file) and open(m.pid_file).read().strip() == str(a.pid), 5)
        os.unlink(m.pid_file)
        # B's control socket elsewhere: A's, still live at the default path, would keep B out.
        b = masterd(m.cf, m.pid_file, m.path("b.log"), "-control", m.path("b.ctl"))
        self.addCleanup(lambda: b.poll() is None and (b.kill(), b.wait()))
        lib.wait_until(lambda: os.path.exists(m.pid_file) and open(m.pid_file).read().strip() == str(b.pid), 5)
        a.send_signal(signal.SIGTERM)
        self.assertEqual(a.wait(10), 0)
        self.assertTrue(os.path.exists(m.pid_file), "A removed B's pid file")
        self.assertEqual(try_lock(m.pid_file), 1)


if __name__ == "__main__":
    unittest.main()
