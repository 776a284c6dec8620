"""Fault: no fd leaks across 100+ respawns and 20+ reloads (doc/CONTRACT.md §4 "nothing else").

A churn service whose 16 processes exit every ~1.1 s gives well over 100 respawns while 20
reloads give two other services (a plain program and a libzserver one) a new generation each.
Throughout, every child has exactly the contract's fds (checked from fdserver's own report and
from /proc); afterwards masterd, back in its starting configuration, holds exactly the fds it
held before (same count, same kinds).

A child that exits while an orphan it left (`sleep 1000 &`) still holds its stdout/stderr pipe
does not cost masterd a descriptor for the orphan's life: the pipe is drained and closed when
the child is reaped (its last lines are still relayed, before its exit line), so masterd's fd
count stays flat over many restarts; the orphan writing later gets EPIPE/SIGPIPE.
"""
import collections
import os
import re
import signal
import stat
import time

import lib

FD = lib.FDSERVER
PROBE = lib.tool("tlib_probe")


def kinds(pid):
    """Counter of masterd's fd kinds: 'socket', 'pipe', 'anon_inode:[eventpoll]', or the file path."""
    out = collections.Counter()
    for target in lib.fd_links(pid).values():
        out[target.split(":[")[0] if target.startswith(("socket:", "pipe:")) else target] += 1
    return out


class FdAudit(lib.MasterTest):

    def check_plain_child(self, r, m, nlisten):
        """fdserver's report: exactly 0..2, the listeners, the status channel."""
        want = list(range(3 + nlisten + 1))
        self.assertEqual(sorted(r["fds"]), want, "pid %d has fds %r" % (r["pid"], r["fds"]))
        self.assertEqual(r["fds"][0], "/dev/null")
        st = os.stat("/proc/%d/fd/0" % r["pid"])
        self.assertTrue(stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3,
                        "fd 0 is not the /dev/null device (is /dev/null itself broken on this machine?)")
        for fd in range(3, 3 + nlisten + 1):
            self.assertTrue(r["fds"][fd].startswith("socket:["), r["fds"])

    def test_100_respawns_20_reloads_no_fd_leak(self):
        p_a, p_l, p_c = lib.free_port(), lib.free_port(), lib.free_port()

        def a_cf(i):
            return ("server-command = %s\nserver-service = 127.0.0.1:%d, {dir}/a.sock\nserver-proc-count = 2\n"
                    "round = %d\n" % (FD, p_a, i))

        def l_cf(i):
            return ("server-command = %s\nserver-service = 127.0.0.1:%d\nserver-proc-count = 2\n"
                    "server-log = masterlog,{dir}/log.sock\nprobe-out = {dir}/events\nround = %d\n" % (PROBE, p_l, i))

        m = self.master({"a.cf": a_cf(0), "l.cf": l_cf(0)})
        m.start(expect_children=4)
        lib.wait_until(lambda: len(lib.probe_events(m.path("events"))) == 2 and lib.report(("127.0.0.1", p_a)), 5)
        before = kinds(m.pid)
        # Both probes hold the same fds once each has finished setting up (its log socket, the
        # board, its stderr reopened non-blocking): a moment after their first event under SAN.
        def probe_fd_counts():
            return {len(lib.fd_links(p)) for p in lib.probe_events(m.path("events"))}
        lib.wait_until(lambda: len(probe_fd_counts()) == 1, 5, what="the two probes to hold as many fds")
        (probe_fds,) = probe_fd_counts()

        # Reload 1 adds the churn service; reloads 2..20 give a and l a new generation each.
        m.write("churn.cf", "server-command = %s sleep-then-exit 1100\nserver-service = 127.0.0.1:%d\n"
                            "server-proc-count = 16\n" % (FD, p_c))
        m.signal(signal.SIGHUP)
        try:
            lib.wait_until(lambda: "reload: 1 started" in m.log(), 5, what="reload 1 to start churn")
        except AssertionError:
            print("---- masterd's log ----\n" + m.log()[-4000:])  # seen once in a loaded SAN run: why
            raise
        reloads, sampled = 1, 0
        t0 = time.monotonic()
        while reloads < 20 or len(lib.started_pids(m.log(), "churn")) < 116:
            self.assertLess(time.monotonic() - t0, 40, "churn too slow: %d starts" % len(lib.started_pids(m.log(), "churn")))
            if reloads < 20:
                reloads += 1
                m.write("a.cf", a_cf(reloads))
                m.write("l.cf", l_cf(reloads))
                m.signal(signal.SIGHUP)
                lib.wait_until(lambda: m.log().count("reload: 0 started, 2 new generations") == reloads - 1, 5,
                               what="reload %d" % reloads)
            # Sample children mid-churn: the contract's fds, nothing more.
            try:
                self.check_plain_child(lib.report(("127.0.0.1", p_c), timeout=2), m, 1)
                self.check_plain_child(lib.report(("127.0.0.1", p_a), timeout=2), m, 2)
                sampled += 1
            except (OSError, ValueError, KeyError):
                pass  # a churn child leaving as we connect; the next sample counts
            time.sleep(0.2)
        respawns = len(lib.started_pids(m.log(), "churn")) - 16
        print("%d churn respawns, %d reloads, %d children sampled" % (respawns, reloads, 2 * sampled))
        self.assertGreaterEqual(respawns, 100)
        self.assertGreaterEqual(sampled, 10)

        # Back to the first configuration (churn removed, a and l as at first: a new generation).
        m.remove("churn.cf")
        m.write("a.cf", a_cf(0))
        m.write("l.cf", l_cf(0))
        m.signal(signal.SIGHUP)
        lib.wait_until(lambda: "reload: 0 started, 2 new generations, 0 scaled, 1 removed" in m.log(), 5)
        lib.wait_until(lambda: len(m.children()) == 4 and lib.can_bind(p_c), 15,
                       what="the churn and old generations to be gone (have %r)" % m.children())
        kids = m.children()
        lib.wait_until(lambda: kinds(m.pid) == before, 5,
                       what="masterd's fds to be what they were: %r, now %r" % (before, kinds(m.pid)))
        for _ in range(6):
            r = lib.report(("127.0.0.1", p_a))
            self.assertIn(r["pid"], kids)
            self.assertEqual(r["env"]["ZMASTER_GENERATION"], str(reloads + 1))
            self.check_plain_child(r, m, 2)
        # By name, not by the events file: with pid_max 32768 and the suite's churn, an fdserver
        # child may have a pid a probe of an earlier generation had.
        probes = [p for p in kids if open("/proc/%d/comm" % p).read().strip() == "tlib_probe"]
        self.assertEqual(len(probes), 2)
        for p in probes:
            self.assertEqual(len(lib.fd_links(p)), probe_fds, "a libzserver child of the last generation")
        # No zombie left behind either.
        zombies = [d for d in os.listdir("/proc") if d.isdigit() and (lambda st: st and st[1] == m.pid and
                                                                       st[0] == "Z")(lib.proc_stat(int(d)))]
        self.assertEqual(zombies, [])
        self.assertEqual(m.stop(), 0)


    def test_orphans_holding_output_pipes_do_not_grow_masterd_fds(self):
        m = self.master()
        # Each process leaves a silent sleeper and a late writer holding its output pipe, prints
        # a last line and a partial one, and exits non-zero after 1.1 s (an immediate restart).
        leaver = lib.script(m, "leaver.sh",
                            "#!/bin/sh\nsleep 1000 &\n(sleep 3; echo late from $$) &\nsleep 1.1\n"
                            "echo bye from $$\nprintf 'tail of %s' $$\nexit 1\n")
        m.write("c.cf", "server-command = %s\nserver-proc-count = 8\n" % leaver)
        m.start(expect_children=8)
        base = lib.fd_count(m.pid)
        lib.wait_until(lambda: len(lib.started_pids(m.log(), "c")) >= 8 + 32, 20,
                       what="32 restarts (have %d)" % (len(lib.started_pids(m.log(), "c")) - 8))
        # Each of those left a sleeper (adopted by masterd, a subreaper) holding its old pipe.
        orphans = [p for p in lib.children(m.pid) if p not in lib.started_pids(m.log(), "c")]
        self.assertGreaterEqual(len(orphans), 32)
        lib.wait_until(lambda: lib.fd_count(m.pid) <= base + 2, 5,
                       what="masterd's fds to stay near %d (now %d, %d orphans)" % (
                           base, lib.fd_count(m.pid), len(orphans)))
        log = m.log()
        ended = [int(p) for p in re.findall(r" c: pid (\d+) exited with status 1 after", log)]
        self.assertGreaterEqual(len(ended), 32)
        for pid in ended:
            # Drained when reaped: its last line, and the partial one, before its exit line.
            exit_at = log.index(" c: pid %d exited" % pid)
            for line in ("[c pid %d] bye from %d\n" % (pid, pid), "[c pid %d] tail of %d\n" % (pid, pid)):
                self.assertIn(line, log)
                self.assertLess(log.index(line), exit_at, line)
        # A writer that outlived its parent wrote into a closed pipe: nothing of it is relayed.
        lib.wait_until(lambda: len(re.findall(r" c: pid \d+ exited", m.log())) >= 48, 20, what="16 more exits")
        self.assertNotIn("late from", m.log())
        self.assertEqual(m.stop(), 0)

if __name__ == "__main__":
    import unittest
    unittest.main()
