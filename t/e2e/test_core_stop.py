"""masterd core, stopping (doc/CONTRACT.md §6): SIGTERM/SIGINT stop every child, remove the pid file,
free every address and exit 0; a child that ignores SIGTERM is SIGKILLed together with its
process group once server-stop-on-softstop-after + 5 s are over.
"""
import os
import signal
import socket
import time

import lib

FD = lib.FDSERVER



def can_bind(host, port):
    return lib.can_bind(port, host)


class CoreStop(lib.MasterTest):

    def check_clean_stop(self, sig):
        p4, p6 = lib.free_port(), lib.free_port()
        m = self.master({
            "a.cf": "server-command = %s\nserver-service = 127.0.0.1:%d, [::1]:%d, {dir}/a.sock\n"
                    "server-proc-count = 2\n" % (FD, p4, p6),
            "b.cf": "server-command = %s\nserver-proc-count = 2\n" % FD,
            # A plain program with a helper process of its own: stopping masterd stops it too.
            "f.cf": "server-command = %s forker\nserver-service = {dir}/f.sock\n" % FD,
        }).start()
        kids = m.wait_children(5)
        for addr in (("127.0.0.1", p4), ("::1", p6), m.path("a.sock")):
            self.assertIn(lib.report(addr)["pid"], kids)
        forker = lib.report(m.path("f.sock"))["pid"]
        lib.wait_until(lambda: lib.children(forker), 5, what="the forker's helper")
        everyone = set(lib.descendants(m.pid))
        self.assertEqual(len(everyone), 6, everyone)
        m.known.update(everyone)
        self.assertTrue(os.path.exists(m.pid_file))
        t0 = time.monotonic()
        m.signal(sig)
        rc = m.wait_exit(10)
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 0, m.log())
        # Plain programs die of SIGTERM at once; the grace period (0 + 5 s) is not needed.
        self.assertLess(elapsed, 3.0)
        self.assertFalse(os.path.exists(m.pid_file), "pid file left behind")
        self.assertFalse(os.path.exists(m.path("a.sock")), "unix socket file left behind")
        self.assertTrue(lib.port_free(p4) and lib.port_free(p6, "::1"))
        self.assertTrue(can_bind("127.0.0.1", p4) and can_bind("::1", p6), "addresses still bound")
        # The helper got SIGTERM with its process group; allow it a moment to be reaped.
        try:
            lib.wait_until(lambda: not any(lib.alive(p) for p in everyone), 1.0, what="every process to be gone")
        except AssertionError:
            self.fail("processes left after stop: %r" % [p for p in everyone if lib.alive(p)])
        self.assertFalse(os.path.exists(m.path("f.sock")))
        self.assertIn("masterd stopped", m.log())
        self.assertEqual(m.run("--try-lock").returncode, 0)

    def test_sigterm_stops_everything(self):
        self.check_clean_stop(signal.SIGTERM)

    def test_sigint_stops_everything(self):
        self.check_clean_stop(signal.SIGINT)

    def test_stop_during_backoff(self):
        m = self.master({"loop.cf": "server-command = %s exit 1\n" % FD}).start()
        lib.wait_until(lambda: "loop: slot 1 failed 3 times" in m.log(), 5, what="a crash loop")
        t0 = time.monotonic()
        m.signal(signal.SIGTERM)
        self.assertEqual(m.wait_exit(10), 0, m.log())
        self.assertLess(time.monotonic() - t0, 2.0, "a pending backoff delayed the stop")
        text = m.log()
        n = text.count("loop: started pid")
        self.assertEqual(text[text.index("stopping:"):].count("loop: started pid"), 0,
                         "a process was started after the stop began")
        self.assertGreaterEqual(n, 3)
        self.assertFalse(os.path.exists(m.pid_file))

    def test_stubborn_child_killed_with_its_group(self):
        port = lib.free_port()
        m = self.master({
            "stub.cf": "server-command = %s stubborn\nserver-service = 127.0.0.1:%d\n"
                       "server-stop-on-softstop-after = 0\n" % (FD, port),
            "nice.cf": "server-command = %s\n" % FD,
        }).start()
        m.wait_children(2)
        r = lib.report(("127.0.0.1", port))
        child = r["pid"]
        (grand,) = lib.wait_until(lambda: lib.children(child), 5, what="the stubborn grandchild")
        self.assertEqual(lib.proc_stat(grand)[2], child, "grandchild not in the child's process group")
        m.known.update([child, grand])
        t0 = time.monotonic()
        m.signal(signal.SIGTERM)
        # SIGTERM is ignored: masterd must wait the grace, then SIGKILL the group.
        rc = m.wait_exit(15)
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 0, m.log())
        self.assertGreater(elapsed, 4.5, "stubborn child killed before its grace period")
        self.assertLess(elapsed, 8.0, "stop took %.1f s" % elapsed)
        lib.wait_until(lambda: not lib.alive(child) and not lib.alive(grand), 1,
                       what="stubborn child and grandchild to be gone")
        self.assertIn("stub: pid %d did not stop in time" % child, m.log())
        self.assertIn("stub: pid %d killed by signal 9" % child, m.log())
        self.assertFalse(os.path.exists(m.pid_file))
        self.assertTrue(can_bind("127.0.0.1", port))


if __name__ == "__main__":
    import unittest
    unittest.main()
