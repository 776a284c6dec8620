"""Fault: masterd is SIGKILLed while clients hammer its services (doc/CONTRACT.md §6, last items).

Every child (plain programs by PR_SET_PDEATHSIG, libzserver servers by the status channel's EOF)
is gone within 1 s, every TCP port is free again, and a new masterd on the same config dir and
pid file starts clean: the stale unix socket files and masterlog socket the dead master left
are replaced, not reported as in use.
"""
import os
import subprocess
import time

import lib

FD = lib.FDSERVER
HTTP = lib.sample("http_hello")
PROBE = lib.tool("tlib_probe")
BURST = lib.tool("burst")
GET = b"GET / HTTP/1.0\r\n\r\n"


class MasterDeath(lib.MasterTest):

    def files(self, m, ports):
        return {
            "web.cf": "server-command = %s\nserver-service = 127.0.0.1:%d, {dir}/web.sock\n"
                      "server-proc-count = 3\nserver-stop-on-softstop-after = 30\n" % (HTTP, ports[0]),
            "plain.cf": "server-command = %s serve\nserver-service = 127.0.0.1:%d, [::1]:%d, {dir}/plain.sock\n"
                        "server-proc-count = 2\n" % (FD, ports[1], ports[1]),
            "probe.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\nserver-proc-count = 2\n"
                        "server-log = masterlog,{dir}/log.sock\nprobe-out = {dir}/events\nprobe-log-lines = 2\n"
                        "probe-softstop-hook = yes\nprobe-stop-notify = 1\nserver-stop-on-softstop-after = 30\n" % (PROBE, ports[2]),
        }

    def test_kill9_under_load_children_gone_ports_free_restart_clean(self):
        ports = [lib.free_port() for _ in range(3)]
        m = self.master()
        for name, text in self.files(m, ports).items():
            m.write(name, text)
        m.start(expect_children=7)
        kids = m.children()
        lib.wait_until(lambda: lib.fetch(("127.0.0.1", ports[0]), send=GET).startswith(b"HTTP/1.1 200"), 5,
                       what="http_hello to answer")
        lib.wait_until(lambda: sum("before_service loop-ready" in e for e in lib.probe_events(m.path("events")).values())
                       == 2, 5, what="both probes ready")
        unix_before = {n: (os.stat(m.path(n)).st_ino, os.stat(m.path(n)).st_ctime_ns) for n in ("web.sock", "plain.sock", "log.sock")}

        load = subprocess.Popen([BURST, "-a", "127.0.0.1:%d" % ports[0], "-r", "400", "-d", "4", "-p", "100",
                                 "-s", "GET / HTTP/1.0\\r\\n\\r\\n", "-e", "HTTP/1.1 200 OK", "-t", "3"],
                                stdout=subprocess.PIPE, text=True)
        t_load = time.monotonic()
        self.addCleanup(lambda: load.poll() is None and load.kill())
        # Let the burst run for a second (a window, not a deadline): its connections are in
        # flight when masterd dies.
        lib.wait_until(lambda: time.monotonic() - t_load >= 1.0, 5, what="the burst to run for 1 s")
        self.assertIsNone(load.poll(), "the burst ended early")
        t0 = time.monotonic()
        m.proc.kill()
        m.proc.wait()
        try:
            lib.wait_until(lambda: not any(lib.alive(k) for k in kids), 3.0, interval=0.01,
                           what="every child to exit after masterd's SIGKILL")
        except AssertionError:
            self.fail("alive after masterd's SIGKILL: %r" % [(k, lib.proc_stat(k)) for k in kids if lib.alive(k)])
        took = time.monotonic() - t0
        print("children gone %.3f s after kill -9 of masterd (under load)" % took)
        self.assertLess(took, 1.0 * lib.SLOW, "children took %.2f s to leave" % took)
        for p in ports:
            lib.wait_until(lambda: lib.can_bind(p), 1.0, what="port %d free" % p)
        self.assertTrue(lib.can_bind(ports[1], "::1"))
        out, _ = load.communicate(timeout=15)
        print("burst across the kill:", out.strip())

        # What the dead master left: its pid file (unlocked) and socket files nobody accepts on.
        self.assertTrue(os.path.exists(m.pid_file))
        self.assertEqual(m.run("--try-lock").returncode, 0, "the dead master's lock is still held")
        for n in ("web.sock", "plain.sock"):
            with self.assertRaises(ConnectionRefusedError, msg=n):
                lib.connect(m.path(n), timeout=1).close()

        # A new masterd on the same dir and pid file starts clean.
        open(m.log_path, "w").close()
        m.start(expect_children=7)
        text = m.log()
        self.assertNotIn("in use", text)
        self.assertNotIn("ERROR", text)
        self.assertEqual(open(m.pid_file).read().strip(), str(m.pid))
        for n in ("web.sock", "plain.sock", "log.sock"):
            self.assertNotEqual((os.stat(m.path(n)).st_ino, os.stat(m.path(n)).st_ctime_ns), unix_before[n], "%s was not replaced" % n)
        self.assertTrue(lib.fetch(m.path("web.sock"), send=GET).startswith(b"HTTP/1.1 200"))
        self.assertIn(lib.report(m.path("plain.sock"))["pid"], m.children())
        self.assertIn(lib.report(("::1", ports[1]))["pid"], m.children())
        self.assertTrue(lib.fetch(("127.0.0.1", ports[2])).startswith(b"pid="))
        # The new masterlog receiver works: the new probes' lines arrive through it.
        new_probes = [p for p in lib.probe_events(m.path("events")) if p not in kids]
        lib.wait_until(lambda: all("probe line 1 of 2 from %d:" % p in m.log() for p in new_probes) and new_probes, 5,
                       what="the new probes' lines through the new masterlog socket")
        r = subprocess.run([BURST, "-a", "127.0.0.1:%d" % ports[0], "-n", "300", "-p", "50", "-s",
                            "GET / HTTP/1.0\\r\\n\\r\\n", "-e", "HTTP/1.1 200 OK", "-t", "10"],
                           capture_output=True, text=True, timeout=60)
        self.assertIn("ok=300 refused=0", r.stdout)
        self.assertEqual(m.stop(), 0, m.log())
        for n in ("web.sock", "plain.sock", "log.sock"):
            self.assertFalse(os.path.exists(m.path(n)), "%s left after a clean stop" % n)


if __name__ == "__main__":
    import unittest
    unittest.main()
