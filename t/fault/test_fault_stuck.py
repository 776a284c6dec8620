"""Fault: children that do not cooperate (doc/CONTRACT.md §5, §6).

- A child that ignores SIGTERM (a plain program) or hangs in its soft-stop hook (a libzserver
  server) is SIGKILLed with its whole process group, grandchildren included, once
  server-stop-on-softstop-after + 5 s are over: on a reload that removes its service, and on
  masterd's stop.
- A libzserver child that says HELLO but never READY is killed after server-ready-timeout,
  logged, counted as a failure (backoff) and replaced.
- A child stopped by a signal (SIGSTOP) is logged; still stopped server-ready-timeout seconds
  later, its process group is SIGKILLed and the slot refilled; continued in time, it is left
  alone.  A stopped child asked to stop is sent SIGCONT so it hears the request.
"""
import os
import re
import signal
import time

import lib

FD = lib.FDSERVER
PROBE = lib.tool("tlib_probe")


def grandchild(events, pid):
    for e in events.get(pid, []):
        if e.startswith("grandchild "):
            return int(e.split()[1])
    return None


class Stuck(lib.MasterTest):

    def stuck_services(self, m, ports):
        return {
            "plain.cf": "server-command = %s stubborn\nserver-service = 127.0.0.1:%d\n"
                        "server-stop-on-softstop-after = 0\n" % (FD, ports[0]),
            "lib.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\nserver-stop-on-softstop-after = 0\n"
                      "probe-out = {dir}/events\nprobe-stuck-softstop = yes\nprobe-grandchild = yes\n" % (PROBE, ports[1]),
        }

    def family(self, m, ports):
        """{name: (child, grandchild)} of the two stuck services, once both are up."""
        plain = lib.report(("127.0.0.1", ports[0]))["pid"]
        pg = lib.wait_until(lambda: lib.children(plain), 5, what="the stubborn program's helper")[0]
        lib.wait_until(lambda: lib.fetch(("127.0.0.1", ports[1])).startswith(b"pid="), 5)
        lib_pid = int(lib.fetch(("127.0.0.1", ports[1])).split()[0][4:])
        lg = lib.wait_until(lambda: grandchild(lib.probe_events(m.path("events")), lib_pid), 5,
                            what="the probe's grandchild")
        fam = {"plain": (plain, pg), "lib": (lib_pid, lg)}
        for child, grand in fam.values():
            self.assertEqual(lib.proc_stat(grand)[2], child, "grandchild not in its parent's process group")
            m.known.update([child, grand])
        return fam

    def test_stuck_children_killed_with_their_group_on_reload(self):
        ports = [lib.free_port() for _ in range(3)]
        m = self.master()
        for name, text in self.stuck_services(m, ports).items():
            m.write(name, text)
        m.write("ok.cf", "server-command = %s\nserver-service = 127.0.0.1:%d\n" % (FD, ports[2]))
        m.start(expect_children=3)
        fam = self.family(m, ports)
        m.remove("plain.cf")
        m.remove("lib.cf")
        t0 = time.monotonic()
        m.signal(signal.SIGHUP)
        lib.wait_until(lambda: "2 removed" in m.log(), 5, what="the reload")
        lib.wait_until(lambda: "stuck" in lib.probe_events(m.path("events")).get(fam["lib"][0], []), 5,
                       what="the probe to hang in its soft-stop hook")
        # masterd keeps working while it waits: the other service answers throughout.
        everyone = [p for pair in fam.values() for p in pair]
        polls = 0
        while any(lib.alive(p) for p in everyone) and time.monotonic() - t0 < 10:
            self.assertIn(lib.report(("127.0.0.1", ports[2]), timeout=2)["ppid"], (m.pid,))
            polls += 1
            time.sleep(0.1)
        took = time.monotonic() - t0
        left = [p for p in everyone if lib.alive(p)]
        self.assertEqual(left, [], "still alive %.1f s after the reload" % took)
        self.assertGreater(took, 4.5, "killed before the grace period (0 + 5 s) was over")
        self.assertLess(took, 8.0)
        self.assertGreater(polls, 20)
        for sid in ("plain", "lib"):
            child = fam[sid][0]
            # Dead is not reaped yet: wait for masterd to log the exit.
            lib.wait_until(lambda: "%s: pid %d killed by signal 9" % (sid, child) in m.log(), 2)
            self.assertIn("%s: pid %d did not stop in time; killing its process group" % (sid, child), m.log())
        lib.wait_until(lambda: lib.can_bind(ports[0]) and lib.can_bind(ports[1]), 2,
                       what="the removed services' ports to close")
        self.assertEqual(m.stop(), 0)

    def test_stuck_libzserver_child_killed_with_its_group_on_stop(self):
        ports = [lib.free_port() for _ in range(2)]
        m = self.master()
        for name, text in self.stuck_services(m, ports).items():
            m.write(name, text)
        m.start(expect_children=2)
        fam = self.family(m, ports)
        t0 = time.monotonic()
        m.signal(signal.SIGTERM)
        rc = m.wait_exit(15)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, m.log())
        self.assertGreater(took, 4.5)
        self.assertLess(took, 8.0)
        everyone = [p for pair in fam.values() for p in pair]
        lib.wait_until(lambda: not any(lib.alive(p) for p in everyone), 1, what="children and grandchildren gone")
        self.assertIn("lib: pid %d did not stop in time" % fam["lib"][0], m.log())
        self.assertFalse(os.path.exists(m.pid_file))

    def test_never_ready_killed_logged_replaced_with_backoff(self):
        port, ok_port = lib.free_port(), lib.free_port()
        m = self.master({
            "hang.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\nserver-ready-timeout = 1\n"
                       "probe-out = {dir}/events\nprobe-hang-before-ready = yes\n" % (PROBE, port),
            "ok.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\n" % (FD, ok_port),
        })
        t0 = time.monotonic()
        m.start(expect_children=2)
        # 1 s to READY, then 100 ms, 200 ms, 400 ms of backoff: the fourth start is due at ~3.7 s.
        lib.wait_until(lambda: len(lib.started_pids(m.log(), "hang")) >= 4, 8 * lib.SLOW, what="four starts of hang")
        took = time.monotonic() - t0
        self.assertLess(took, 6.0 * lib.SLOW)  # includes masterd's own start (valgrind: SLOW)
        log = m.log()
        pids = lib.started_pids(log, "hang")
        ev = lib.probe_events(m.path("events"))
        for p in pids[:3]:
            self.assertIn("hanging", ev.get(p, []), "pid %d never reached before_service" % p)
            self.assertIn("hang: pid %d said HELLO but not READY within 1 s; killing it" % p, log)
            self.assertIn("hang: pid %d killed by signal 9" % p, log)
            self.assertFalse(lib.alive(p))
        delays = [int(d) for d in re.findall(r"hang: slot 1 failed \d+ times? in a row; next try in (\d+) ms", log)]
        self.assertEqual(delays[:3], [100, 200, 400], "a never-ready child must count as a failure")
        # Nothing else was disturbed.
        self.assertEqual(len(lib.started_pids(log, "ok")), 1)
        self.assertIn(lib.report(("127.0.0.1", ok_port))["pid"], m.children())
        self.assertEqual(m.stop(), 0)

    def test_stopped_child_killed_and_replaced_continued_child_kept(self):
        p_plain, p_lib, p_cont = lib.free_port(), lib.free_port(), lib.free_port()
        m = self.master({
            "splain.cf": "server-command = %s forker\nserver-service = 127.0.0.1:%d\nserver-ready-timeout = 1\n"
                         % (FD, p_plain),
            "slib.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\nserver-ready-timeout = 1\n"
                       "probe-out = {dir}/events\nprobe-grandchild = yes\n" % (PROBE, p_lib),
            "cont.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\nserver-ready-timeout = 1\n" % (FD, p_cont),
        })
        m.start(expect_children=3)
        plain = lib.report(("127.0.0.1", p_plain))["pid"]
        plain_helper = lib.wait_until(lambda: lib.children(plain), 5)[0]
        lib.wait_until(lambda: lib.fetch(("127.0.0.1", p_lib)).startswith(b"pid="), 5)
        libp = int(lib.fetch(("127.0.0.1", p_lib)).split()[0][4:])
        lib_helper = lib.wait_until(lambda: grandchild(lib.probe_events(m.path("events")), libp), 5)
        cont = lib.report(("127.0.0.1", p_cont))["pid"]
        m.known.update([plain, plain_helper, libp, lib_helper, cont])
        t0 = time.monotonic()
        for p in (plain, libp, cont):
            os.kill(p, signal.SIGSTOP)
        for sid, p in (("splain", plain), ("slib", libp), ("cont", cont)):
            lib.wait_until(lambda: "%s: pid %d stopped by signal %d" % (sid, p, signal.SIGSTOP) in m.log(), 3,
                           what="masterd to log that %s's pid %d stopped" % (sid, p))
        os.kill(cont, signal.SIGCONT)
        # Still stopped after server-ready-timeout (1 s): killed with the group, replaced.
        for sid, p, helper, port in (("splain", plain, plain_helper, p_plain), ("slib", libp, lib_helper, p_lib)):
            lib.wait_until(lambda: not lib.alive(p) and not lib.alive(helper), 4,
                           what="stopped %s pid %d and its helper to be killed" % (sid, p))
            new = lib.wait_until(lambda: (lambda r: r if r != p else None)(
                int(lib.fetch(("127.0.0.1", port), timeout=2).split()[0][4:]) if sid == "slib"
                else lib.report(("127.0.0.1", port), timeout=2)["pid"]), 4, what="a replacement for %s" % sid)
            self.assertIn(new, m.children())
            self.assertIn("%s: pid %d still stopped after 1 s; killing its process group" % (sid, p), m.log())
        self.assertLess(time.monotonic() - t0, 6.0)
        # The one continued in time was kept.
        self.assertIn("cont: pid %d continued" % cont, m.log())
        lib.wait_until(lambda: time.monotonic() - t0 > 2.5, 5)  # past the 1 s timeout, with room
        self.assertTrue(lib.alive(cont))
        self.assertEqual(lib.report(("127.0.0.1", p_cont))["pid"], cont)
        self.assertNotIn("cont: pid %d still stopped" % cont, m.log())
        self.assertEqual(len(lib.started_pids(m.log(), "cont")), 1)

        # A stopped child when masterd stops: SIGCONT lets it hear SIGTERM at once, instead of
        # waiting out the grace period for the SIGKILL.  The new slib's helper (it ignores
        # SIGTERM) is killed once slib has gone: leftovers of a stopped service do not survive.
        new_lib = [p for p in lib.probe_events(m.path("events")) if p != libp and lib.alive(p)]
        helpers = [grandchild(lib.probe_events(m.path("events")), p) for p in new_lib]
        self.assertTrue(helpers and all(helpers), helpers)
        m.known.update(helpers)
        os.kill(cont, signal.SIGSTOP)
        lib.wait_until(lambda: m.log().count("cont: pid %d stopped by signal" % cont) == 2, 3,
                       what="the second stop of cont")
        t1 = time.monotonic()
        m.signal(signal.SIGTERM)
        self.assertEqual(m.wait_exit(15), 0, m.log())
        self.assertLess(time.monotonic() - t1, 4.0, "a stopped child held up the stop")
        self.assertIn("cont: pid %d killed by signal 15" % cont, m.log())
        lib.wait_until(lambda: not any(lib.alive(p) for p in [cont] + helpers), 1,
                       what="cont and the probes' helpers gone")

if __name__ == "__main__":
    import unittest
    unittest.main()
