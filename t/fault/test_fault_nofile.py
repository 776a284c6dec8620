"""Fault: a libzserver server (sample/http_hello, aio mode) at its RLIMIT_NOFILE.

With server-max-nofile = 32 the server fills its fd table with keep-alive clients.  It keeps
serving the connections it has, it does not spin on EMFILE while more clients hammer it (its
utime + stime over a 2 s hammer stays low: the accept loop frees a reserve fd, accepts and closes
the connection, takes the reserve back), every excess client gets a clean close (EOF or reset,
never a hang), and once clients leave it serves new ones again.
"""
import socket
import subprocess
import time

import lib

HTTP = lib.sample("http_hello")
BURST = lib.tool("burst")
REQ = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def ask(s, timeout=3.0):
    """One keep-alive request on s; the answer, or b'' when the server closed instead."""
    s.settimeout(timeout)
    s.sendall(REQ)
    buf = b""
    while b"\r\n\r\nhello" not in buf:
        b = s.recv(4096)
        if not b:
            return b""
        buf += b
    return buf


class NoFile(lib.MasterTest):

    def test_at_rlimit_nofile_serves_held_sheds_excess_without_spinning(self):
        port = lib.free_port()
        m = self.master({"h.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\nserver-max-nofile = 32\n"
                                 "server-stop-on-softstop-after = 1\n" % (HTTP, port)})
        m.start(expect_children=1)
        (pid,) = m.children()
        lib.wait_until(lambda: lib.fetch(("127.0.0.1", port), send=b"GET / HTTP/1.0\r\n\r\n"), 5)
        self.assertRegex(open("/proc/%d/limits" % pid).read(), r"Max open files\s+32\s+32")

        held, shed = [], []
        self.addCleanup(lambda: [s.close() for s in held + shed])
        for _ in range(45):  # more than 32 fds' worth
            s = socket.create_connection(("127.0.0.1", port), timeout=3)
            try:
                t = time.monotonic()
                got = ask(s)
            except ConnectionResetError:
                got = b""
            if got.startswith(b"HTTP/1.1 200"):
                held.append(s)
            else:
                self.assertLess(time.monotonic() - t, 2.5, "an excess client waited instead of being closed")
                shed.append(s)
        print("fd table full after %d held connections; %d shed; server fds %d" % (
            len(held), len(shed), lib.fd_count(pid)))
        self.assertGreaterEqual(len(held), 15)
        self.assertGreaterEqual(len(shed), 10, "nothing was shed: the limit did not bite")
        self.assertLessEqual(lib.fd_count(pid), 32)

        # Hammer it for 2 s with connections it has no fd for; measure its CPU meanwhile.
        cpu0, t0 = lib.proc_cpu(pid), time.monotonic()
        r = subprocess.run([BURST, "-a", "127.0.0.1:%d" % port, "-r", "300", "-d", "2", "-p", "100", "-t", "3"],
                           capture_output=True, text=True, timeout=30)
        dt, cpu = time.monotonic() - t0, lib.proc_cpu(pid) - cpu0
        print("hammer: %s; server cpu %.3f s over %.1f s" % (r.stdout.strip(), cpu, dt))
        counts = dict(kv.split("=") for kv in r.stdout.split())
        self.assertEqual(counts["timeout"], "0", "an excess client hung: %s" % r.stdout)
        self.assertEqual(int(counts["ok"]) + int(counts["reset"]), 600, r.stdout)
        self.assertLess(cpu / dt, 0.25, "the server used %.0f %% of a core while out of fds (spinning?)"
                        % (100 * cpu / dt))
        self.assertTrue(lib.alive(pid))
        self.assertIn("out of file descriptors", m.log())

        # Idle at the limit: no spinning at all.
        cpu0, t0 = lib.proc_cpu(pid), time.monotonic()
        lib.wait_until(lambda: time.monotonic() - t0 >= 1.0, 3)  # the measurement window
        self.assertLess(lib.proc_cpu(pid) - cpu0, 0.05)

        # Every held connection still works.
        for s in held:
            self.assertTrue(ask(s).startswith(b"HTTP/1.1 200"))
        # Clients leave: new ones are served again.
        for s in held[:10]:
            s.close()
        del held[:10]
        lib.wait_until(lambda: lib.fetch(("127.0.0.1", port), send=b"GET / HTTP/1.0\r\n\r\n", timeout=2)
                       .startswith(b"HTTP/1.1 200"), 5, what="a new connection served after fds were freed")
        self.assertEqual(m.children(), [pid], "the server was restarted")
        for s in held:
            self.assertTrue(ask(s).startswith(b"HTTP/1.1 200"))


if __name__ == "__main__":
    import unittest
    unittest.main()
