"""A reload reads the config a slice per loop iteration (libzserver/master/md_reload.c, at most
MD_LOAD_STEP_MAX = 64 services a slice), so masterd answers signals and control requests while it
reads a large directory, and applies the set in one step (doc/CONTRACT.md §6, §12).

Not timings: each test catches masterd in the middle of a read — SIGHUP, wait for `reload:
reading`, SIGSTOP; if the summary line is already there the read was over, so it goes on and tries
again — acts while masterd is stopped, lets it go on, and checks the order in which things came.
A masterd that read the whole directory in one callback (before this change) fails every one.
"""
import json
import os
import signal
import socket
import time
import unittest

import lib

N = 1000
SUMMARY = "reload: 0 started, 0 new generations, 0 scaled, 0 removed, %d unchanged" % N
TRIES = 40


def is_stopped(pid):
    st = lib.proc_stat(pid)
    return st is not None and st[0] in ("T", "t")


class ReloadInSlices(unittest.TestCase):
    """One masterd with N one-process services (`sleep`), shared by the tests: the reloads find
    every file unchanged, so nothing is started again."""

    @classmethod
    def setUpClass(cls):
        files = {"m%04d.cf" % i: "server-command = /bin/sleep 600\n" for i in range(N)}
        cls.m = lib.Master(files)
        cls.m.start(wait_ready=False)
        cls.ctl = cls.m.pid_file[:-4] + ".ctl"
        lib.wait_until(lambda: os.path.exists(cls.ctl) and cls.m.log().count(": started pid") >= N, 120 * lib.SLOW,
                       interval=0.1, what="every service started")

    @classmethod
    def tearDownClass(cls):
        m = cls.m
        if m.proc.poll() is None:
            os.kill(m.pid, signal.SIGCONT)
            m.signal(signal.SIGTERM)  # by hand: lib's stop() walks /proc once per descendant
            m.wait_exit(60)
        m.cleanup()

    def tearDown(self):
        outcome = getattr(self, "_outcome", None)
        res = getattr(outcome, "result", None)
        if res is not None and any(t is self for t, _ in res.failures + res.errors):
            print("---- masterd log ----\n%s" % self.m.log()[-4000:])

    def connect(self):
        return lib.connect(self.ctl, 30 * lib.SLOW)

    @staticmethod
    def read_all(s):
        return lib.read_to_eof(s).decode()

    def ask(self, line):
        return lib.fetch(self.ctl, 30 * lib.SLOW, send=line.encode() + b"\n").decode()

    def reload_client(self):
        """A control client that asked for a reload and waits for its reply."""
        s = self.connect()
        s.sendall(b"reload\n")
        return s

    def status_mid_read(self, request):
        """The reply to request sent while masterd is caught reading; the read then ends."""
        pos, _ = self.catch_mid_read(lambda: self.m.signal(signal.SIGHUP))
        s = self.connect()
        s.sendall(request.encode() + b"\n")
        os.kill(self.m.pid, signal.SIGCONT)
        reply = self.read_all(s)
        s.close()
        self.wait_log(SUMMARY, pos)
        return reply

    def wait_log(self, mark, pos, count=1, timeout=30):
        lib.wait_until(lambda: self.m.log()[pos:].count(mark) >= count, timeout * lib.SLOW, interval=0.001,
                       what="%d × %r in masterd's log" % (count, mark))

    def catch_mid_read(self, start):
        """start() begins a reload; returns (log position before it, what start returned) with
        masterd stopped in the middle of reading, after `reload: reading` and before the summary."""
        for _ in range(TRIES):
            pos = len(self.m.log())
            ret = start()
            self.wait_log("reload: reading", pos)
            os.kill(self.m.pid, signal.SIGSTOP)
            lib.wait_until(lambda: is_stopped(self.m.pid), 10 * lib.SLOW, interval=0.001, what="masterd stopped")
            if "unchanged" not in self.m.log()[pos:]:
                return pos, ret
            os.kill(self.m.pid, signal.SIGCONT)  # the read was over already: again
            if isinstance(ret, socket.socket):
                self.read_all(ret)
                ret.close()
        self.fail("masterd was never caught reading in %d tries: does it read in one go?" % TRIES)

    def test_1_signal_answered_mid_read(self):
        pos, _ = self.catch_mid_read(lambda: self.m.signal(signal.SIGHUP))
        self.m.signal(signal.SIGUSR1)
        os.kill(self.m.pid, signal.SIGCONT)
        self.wait_log(SUMMARY, pos)
        log = self.m.log()[pos:]
        self.assertIn("log reopened", log)
        self.assertLess(log.index("reload: reading"), log.index("log reopened"))
        self.assertLess(log.index("log reopened"), log.index(SUMMARY),
                        "SIGUSR1 sent during the read was handled only after it")

    def test_2_status_answered_mid_read_shows_it(self):
        reply = self.status_mid_read("status --json m0000")
        self.assertTrue(reply.endswith("status 0\n"), reply[-300:])
        doc = json.loads(reply[:reply.rindex("status 0")])
        rl = doc["masterd"]["reload"]
        self.assertIsNotNone(rl, "status during the read did not see it: %r" % doc["masterd"])
        self.assertEqual(rl["of"], N)
        self.assertLess(rl["read"], N)
        # Once applied, the status says no reload runs, in JSON and in the table.
        doc = json.loads(self.ask("status --json m0000").rsplit("status 0", 1)[0])
        self.assertIsNone(doc["masterd"]["reload"])
        self.assertNotIn("reload: reading", self.ask("status m0000"))

    def test_3_table_shows_the_read(self):
        reply = self.status_mid_read("status m0000")
        self.assertRegex(reply, r"\nreload: reading the config: \d+ of %d services read\nstatus 0\n$" % N)

    def test_4_asked_again_mid_read_reads_again(self):
        # A control client asks for the first; a SIGHUP and a second client come during it.
        pos, first = self.catch_mid_read(lambda: self.reload_client())
        self.m.signal(signal.SIGHUP)
        second = self.connect()
        second.sendall(b"reload\n")
        os.kill(self.m.pid, signal.SIGCONT)
        r1, r2 = self.read_all(first), self.read_all(second)
        first.close()
        second.close()
        self.wait_log(SUMMARY, pos, count=2)
        log = self.m.log()[pos:]
        self.assertEqual(log.count("reload: reading"), 2, log[-2000:])
        self.assertEqual(log.count("reload: asked again while reading"), 1)
        self.assertLess(log.index(SUMMARY), log.rindex("reload: reading"), "the second read began before the first ended")
        for r in (r1, r2):
            self.assertIn(SUMMARY + "\n", r)
            self.assertTrue(r.endswith("status 0\n"), r)
        # The second client got the second reload's answer: it was sent after the second read.
        self.assertEqual(r2.count("unchanged"), 1)

    def test_5_client_gone_mid_read(self):
        pos, s = self.catch_mid_read(lambda: self.reload_client())
        s.close()
        os.kill(self.m.pid, signal.SIGCONT)
        self.wait_log(SUMMARY, pos)
        self.assertTrue(self.ask("status m0000").endswith("status 0\n"))
        self.assertIsNone(self.m.proc.poll())

    def test_9_stop_mid_read_abandons_it(self):
        pos, s = self.catch_mid_read(lambda: self.reload_client())
        self.m.signal(signal.SIGTERM)
        os.kill(self.m.pid, signal.SIGCONT)
        reply = self.read_all(s)
        s.close()
        self.assertIn("error: masterd is stopping: the reload was abandoned before it was applied: nothing changed",
                      reply)
        self.assertTrue(reply.endswith("status 1\n"), reply)
        self.assertEqual(self.m.wait_exit(60), 0)
        log = self.m.log()[pos:]
        self.assertIn("reload: abandoned: masterd is stopping", log)
        self.assertNotIn("unchanged", log)


if __name__ == "__main__":
    unittest.main()
