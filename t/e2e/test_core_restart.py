"""masterd core, respawn (doc/CONTRACT.md §2 server-restart, §6 Respawn): the backoff schedule of a
crash-looping service, with a healthy service beside it that never misses a connection, and
the three restart policies, all in one master over one 5 s window.
"""
import os
import re
import signal
import time

import lib

FD = lib.FDSERVER


def started(log, sid):
    return len(re.findall(r" %s: started pid \d+" % re.escape(sid), log))


class CoreRestart(lib.MasterTest):

    def test_backoff_and_restart_policies(self):
        port = lib.free_port()
        services = {
            # name: (command args, server-restart or None)
            "crash": ("exit 0", None),              # always (default): backoff, never gives up
            "neverok": ("exit 0", "never"),
            "neverbad": ("exit 3", "never"),
            "onfok": ("exit 0", "on-failure"),      # clean exit: not restarted
            "onfbad": ("exit 3", "on-failure"),     # failure: restarted with backoff
            "neverkill": ("serve", "never"),        # killed: not restarted
            "onfkill": ("serve", "on-failure"),     # killed by a signal is a failure: restarted
            "keepalive": ("exit 0", "keepalive"),   # Melon's word for always
            "melondefault": ("exit 3", "default"),  # Melon's word for never
        }
        files = {"healthy.cf": "server-command = %s serve\nserver-service = 127.0.0.1:%d\n" % (FD, port)}
        for sid, (args, policy) in services.items():
            files[sid + ".cf"] = "server-command = %s %s\n%s" % (
                FD, args, "server-restart = %s\n" % policy if policy else "")
        m = self.master(files)
        t0 = time.monotonic()
        m.start()
        log = lambda: m.log()  # noqa: E731
        lib.wait_until(lambda: started(log(), "neverkill") == 1 and started(log(), "onfkill") == 1, 5,
                       what="neverkill and onfkill to start")

        def pid_of(sid):
            return int(re.search(r" %s: started pid (\d+)" % sid, log()).group(1))

        nk, ok = pid_of("neverkill"), pid_of("onfkill")
        fds_before = lib.fd_count(m.pid)
        os.kill(nk, signal.SIGKILL)
        os.kill(ok, signal.SIGKILL)

        # Over the next 5 s the healthy service answers every single time.
        failures, polls = [], 0
        while time.monotonic() - t0 < 5.0:
            polls += 1
            try:
                r = lib.report(("127.0.0.1", port), timeout=2.0)
                if r["env"]["ZMASTER_CONFIG"] != os.path.join(m.cf, "healthy.cf"):
                    failures.append("wrong server answered: %r" % r["env"]["ZMASTER_CONFIG"])
            except Exception as e:  # noqa: BLE001 - every failure counts
                failures.append(repr(e))
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        text = log()
        # A dozen children came and went: their status channels must not pile up in masterd.
        fds_after = lib.fd_count(m.pid)
        self.assertLessEqual(fds_after, fds_before + 2, "masterd fds %d -> %d" % (fds_before, fds_after))
        self.assertEqual(failures, [], "healthy service failed %d of %d polls" % (len(failures), polls))
        self.assertGreater(polls, 20)
        self.assertEqual(started(text, "healthy"), 1, "healthy service was restarted")

        # 100 ms doubling: starts at 0, .1, .3, .7, 1.5, 3.1 (6.3 is past the window).
        n = started(text, "crash")
        self.assertTrue(4 <= n <= 9, "crash started %d times in %.1f s" % (n, elapsed))
        delays = [int(d) for d in re.findall(r" crash: slot 1 failed \d+ times? in a row; next try in (\d+) ms", text)]
        self.assertGreaterEqual(len(delays), n - 1, text)
        self.assertEqual(delays[:5], [100, 200, 400, 800, 1600][:len(delays[:5])], delays)

        self.assertGreaterEqual(started(text, "keepalive"), 4)
        for sid in ("neverok", "neverbad", "onfok", "melondefault"):
            self.assertEqual(started(text, sid), 1, "%s restarted" % sid)
            self.assertIn("%s: slot 1 not restarted" % sid, text)
        self.assertEqual(started(text, "neverkill"), 1)
        self.assertIn("neverkill: slot 1 not restarted (server-restart never)", text)
        self.assertFalse(lib.alive(nk))

        nb = started(text, "onfbad")
        self.assertTrue(4 <= nb <= 9, "onfbad started %d times" % nb)
        self.assertIn("onfbad: slot 1 failed", text)
        self.assertEqual(started(text, "onfkill"), 2, "on-failure did not restart a killed child")
        (new,) = [int(p) for p in re.findall(r" onfkill: started pid (\d+)", text)][1:]
        self.assertTrue(lib.alive(new))

        # What is still running: healthy, the replacement onfkill, maybe a crash/onfbad in flight.
        kids = set(m.children())
        self.assertIn(new, kids)
        self.assertNotIn(nk, kids)
        for sid in ("neverok", "neverbad", "onfok"):
            self.assertNotIn(pid_of(sid), kids)

        # Slots left empty by the policy and slots waiting in backoff do not hold up a stop.
        t1 = time.monotonic()
        self.assertEqual(m.stop(), 0)
        self.assertLess(time.monotonic() - t1, 3.0)
        self.assertFalse(os.path.exists(m.pid_file))


if __name__ == "__main__":
    import unittest
    unittest.main()
