"""Fault: masterd's own RLIMIT_NOFILE.

masterd holds one status-channel fd per process and one fd per listener.  Started with a small
soft limit (64) and a larger hard one (4096), it raises its soft limit to the hard limit at start,
so 150 processes all start; its children get the soft limit masterd was started with back
(unless server-max-nofile says otherwise).  A configuration that cannot fit even the hard limit
is an error with the figures (needed vs available) in -t and at start (exit 2), and a reload to
one is refused with "nothing changed".

A child that fails before exec, even before its output pipe is its stderr (here: out of
descriptors while placing its fds), says why in masterd's log (-log file), stamped with its
service, never on masterd's own stderr.
"""
import os
import re
import resource
import signal
import unittest

import lib

FD = lib.FDSERVER
LIMIT = ["prlimit", "--nofile=64:4096", "--"]


def limits_nofile(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                parts = line.split()
                return int(parts[3]), int(parts[4])
    return None


class MasterNofile(lib.MasterTest):

    def limited(self, files):
        m = self.master(files)
        orig = m.cmdline
        m.cmdline = lambda *extra: LIMIT + orig(*extra)
        return m

    def test_raises_its_soft_limit_and_children_get_the_original(self):
        port = lib.free_port()
        m = self.limited({"a.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\nserver-proc-count = 150\n"
                                  % (FD, port),
                          "b.cf": "server-command = %s\nserver-proc-count = 1\nserver-max-nofile = 100\n"
                                  "server-service = 127.0.0.1:%d\n" % (FD, lib.free_port())})
        m.start()
        lib.wait_until(lambda: len(m.children()) == 151, 30, what="151 children (have %d)" % len(m.children()))
        self.assertNotIn("Too many open files", m.log())
        self.assertEqual(limits_nofile(m.pid), (4096, 4096))
        kids = m.children()
        soft = sorted(set(limits_nofile(p)[0] for p in kids))
        self.assertEqual(soft, [64, 100])

    def test_config_that_cannot_fit_the_hard_limit(self):
        port = lib.free_port()
        big = "server-command = %s\nserver-service = 127.0.0.1:%d\nserver-proc-count = 4096\n" % (FD, port)
        m = self.limited({"a.cf": big})
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r"need about \d+ file descriptors.*allows 4096")
        r = m.run(timeout=20)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r"need about \d+ file descriptors")
        # Running small, a reload to the big one is refused and nothing changes.
        m.write("a.cf", big.replace("4096", "2"))
        m.start(expect_children=2)
        before = sorted(m.children())
        m.write("a.cf", big)
        m.signal(signal.SIGHUP)
        lib.wait_until(lambda: "nothing changed" in m.log(), 5)
        self.assertRegex(m.log(), r"need about \d+ file descriptors")
        self.assertEqual(sorted(m.children()), before)

    def test_estimate_counts_a_reload_running_two_generations(self):
        # 200 processes do not fit 256 descriptors twice: during a restart old and new
        # generations run side by side, so the config is refused up front instead of a restart
        # that fails hundreds of starts with "Too many open files".
        small = ["prlimit", "--nofile=256:256", "--"]
        m = self.master({"a.cf": "server-command = %s\nserver-proc-count = 200\n" % FD})
        orig = m.cmdline
        m.cmdline = lambda *extra: small + orig(*extra)
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r"need about \d+ file descriptors .*twice while a reload runs.*allows 256")
        m.write("a.cf", "server-command = %s\nserver-proc-count = 40\n" % FD)
        m.start(expect_children=40)
        m.signal(signal.SIGUSR2)
        lib.wait_until(lambda: m.log().count("started pid") >= 80, 30, what="the second generation")
        lib.wait_until(lambda: len(m.children()) == 40, 30, what="the first generation to leave")
        self.assertNotIn("Too many open files", m.log())
        self.assertEqual(m.stop(), 0)


    def test_child_setup_failure_reaches_the_log(self):
        # A start that fails before exec (here: its server-chdir is gone) is reported in masterd's
        # log target, naming the service, the child and the step, never on masterd's own stderr.
        # (This test first provoked the failure with a lowered RLIMIT_NOFILE; since children are
        # started with clone(CLONE_VM|CLONE_VFORK) and copy no descriptor table, that no longer
        # fails them, so a missing directory does.)
        m = self.master({"c.cf": "server-command = /bin/sleep 1000\nserver-chdir = work\n"})
        os.mkdir(m.path("cf", "work"))
        target = m.path("file.log")
        m.args += ["-log", "file," + target]
        m.start(wait_ready=False)
        (pid,) = m.wait_children(1)
        os.rmdir(m.path("cf", "work"))
        os.kill(pid, signal.SIGKILL)

        def file_log():
            with open(target) as f:
                return f.read()
        line = lib.wait_until(lambda: re.search(r"c: child (\d+): chdir for server-chdir: No such file or directory",
                                                file_log()), 10, what="the child's error in the log file")
        try:
            lib.wait_until(lambda: re.search(r"c: pid %s exited with status 126" % line.group(1), file_log()),
                           30 * lib.SLOW, what="its exit")
        except AssertionError:
            print("---- masterd's log file ----\n" + file_log()[-6000:])  # seen once under load: why
            raise
        self.assertNotIn("server-chdir", m.log())  # masterd's stderr
        # With its directory back, the service runs again.
        os.mkdir(m.path("cf", "work"))
        lib.wait_until(lambda: [p for p in m.children() if lib.proc_stat(p) and
                                open("/proc/%d/comm" % p).read().strip() == "sleep"], 15, what="sleep to run again")
        self.assertEqual(m.stop(), 0)

if __name__ == "__main__":
    unittest.main()
