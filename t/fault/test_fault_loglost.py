"""Fault: log lines that cannot be written are counted and reported, never lost without a trace.

A -log file on a full filesystem (here: a symlink to /dev/full, where every write fails with
ENOSPC) loses lines; once the target works again (SIGUSR1 reopens it) the first line written
says `N log lines lost (REASON)`.  masterd keeps supervising all along.  The syslog and masterlog
targets count their drops the same way (test_fault_log.py).

A file over RLIMIT_FSIZE (systemd's LimitFSIZE=, `ulimit -f`) is the same kind of failed write:
masterd ignores SIGXFSZ (whose default is death), its children get the default back, and a pid
file it could not write is an error at start that leaves no empty pid file behind.
"""
import os
import re
import signal
import unittest

import lib

FD = lib.FDSERVER


class LostLines(lib.MasterTest):

    def test_full_log_file_then_reopen_reports_the_loss(self):
        port = lib.free_port()
        m = self.master({"a.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\n" % (FD, port)})
        link = m.path("masterd.log.link")
        good = m.path("good.log")
        os.symlink("/dev/full", link)
        m.args += ["-log", "file," + link]
        m.start(wait_ready=False)
        lib.wait_until(lambda: os.path.exists(m.pid_file), 5 * lib.SLOW, what="masterd to start")
        m.wait_children(1)
        # Lines go to the full "disk": a killed child and a reload both log.
        old = m.children()[0]
        os.kill(old, signal.SIGKILL)
        lib.wait_until(lambda: (lambda k: k if len(k) == 1 and k[0] != old else None)(m.children()), 5)
        m.signal(signal.SIGHUP)
        # The disk has room again: the reopened file starts with the count of what was lost.
        os.unlink(link)
        os.symlink(good, link)
        m.signal(signal.SIGUSR1)
        lib.wait_until(lambda: os.path.exists(good) and "log reopened" in open(good).read(), 5,
                       what="the reopened log")
        text = open(good).read()
        found = re.search(r"(\d+) log lines? lost \(([^)]*)\)", text)
        self.assertIsNotNone(found, text)
        self.assertGreaterEqual(int(found.group(1)), 3)  # started, the kill, the restart, the reload
        self.assertIn("No space left on device", found.group(2))
        self.assertLess(text.index("lost"), text.index("log reopened"))
        # Reported once: the count is reset after it got through.
        m.signal(signal.SIGHUP)
        lib.wait_until(lambda: "reload: 0 started" in open(good).read(), 5)
        self.assertEqual(open(good).read().count("log lines lost"), 1)
        self.assertTrue(lib.alive(m.pid))
        self.assertEqual(m.stop(), 0)

    def test_log_over_the_file_size_limit_is_lost_lines_not_death(self):
        port = lib.free_port()
        m = self.master({"a.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\n" % (FD, port)})
        m.args += ["-log", "file," + m.path("small.log")]
        orig = m.cmdline
        m.cmdline = lambda *extra: ["prlimit", "--fsize=400", "--"] + orig(*extra)
        m.start(wait_ready=False)
        lib.wait_until(lambda: os.path.exists(m.pid_file), 5 * lib.SLOW, what="masterd to start")
        (child,) = m.wait_children(1)
        with open("/proc/%d/status" % child) as f:
            ignored = int(re.search(r"SigIgn:\s*([0-9a-f]+)", f.read()).group(1), 16)
        self.assertFalse(ignored & (1 << (signal.SIGXFSZ - 1)), "the child inherited SIGXFSZ ignored")
        for _ in range(20):  # each is a line past the limit
            m.signal(signal.SIGHUP)
        lib.wait_until(lambda: os.path.getsize(m.path("small.log")) == 400, 5, what="the log at its limit")
        os.kill(child, signal.SIGKILL)
        lib.wait_until(lambda: (lambda k: k if len(k) == 1 and k[0] != child else None)(m.children()), 5 * lib.SLOW,
                       what="the child replaced by a masterd that lives")
        self.assertTrue(lib.alive(m.pid))
        self.assertEqual(m.stop(), 0)

    def test_pid_file_over_the_file_size_limit(self):
        m = self.master({"a.cf": "server-command = /bin/sleep 100\n"})
        orig = m.cmdline
        m.cmdline = lambda *extra: ["prlimit", "--fsize=0", "--"] + orig(*extra)
        r = m.run()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("pid file %s: File too large" % m.pid_file, r.stderr)
        self.assertFalse(os.path.exists(m.pid_file), "an empty pid file was left behind")


if __name__ == "__main__":
    unittest.main()
