"""masterd never waits on a peer it does not control (found by a hostile tester):

- a NOTIFY_SOCKET receiver that does not read (its queue full) must cost a warning, not a
  supervisor stuck in sendto() that starts nothing and ignores SIGTERM;
- a live unix listener whose backlog is full, at a path a reload wants (or a masterlog target
  names), is "in use": the probe connect never blocks, the reload is refused, masterd goes on.
The peers are this test's own sockets in the test's temp dir.
"""
import os
import signal
import socket

import lib
from lib import wait_until

FD = lib.FDSERVER


def full_dgram_receiver(path):
    """A datagram socket at path that never reads, its queue filled to the brim."""
    r = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    r.bind(path)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    c.setblocking(False)
    try:
        for _ in range(1000000):
            c.sendto(b"x", path)
    except BlockingIOError:
        pass
    return r, c


def wedged_listener(path):
    """A stream listener at path that never accepts, its backlog full: a blocking connect waits."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(0)
    fillers = []
    for _ in range(8):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(path)
        except (BlockingIOError, OSError):
            c.close()
            break
        fillers.append(c)
    return [s] + fillers


class Peers(lib.MasterTest):

    def test_full_notify_receiver_at_start(self):
        m = self.master({"a.cf": "server-command = %s\n" % FD})
        socks = full_dgram_receiver(m.path("notify"))
        try:
            m.env = dict(os.environ, NOTIFY_SOCKET=m.path("notify"))
            m.start(expect_children=1)
            wait_until(lambda: "sd_notify" in m.log(), 5, what="the warning about the notification")
            m.signal(signal.SIGHUP)
            wait_until(lambda: "unchanged" in m.log(), 5, what="the reload")
            self.assertEqual(m.stop(), 0)
        finally:
            for s in socks:
                s.close()

    def test_notify_receiver_fills_while_running(self):
        m = self.master({"a.cf": "server-command = %s\n" % FD})
        r = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        r.bind(m.path("notify"))
        try:
            m.env = dict(os.environ, NOTIFY_SOCKET=m.path("notify"))
            m.start(expect_children=1)
            _, c = r, None
            c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            c.setblocking(False)
            try:
                for _ in range(1000000):
                    c.sendto(b"x", m.path("notify"))
            except BlockingIOError:
                pass
            m.signal(signal.SIGHUP)
            wait_until(lambda: "unchanged" in m.log(), 5, what="the reload with the receiver full")
            old = m.children()
            os.kill(old[0], signal.SIGKILL)
            wait_until(lambda: m.children() and m.children() != old, 5, what="a replacement")
            self.assertEqual(m.stop(), 0)
            c.close()
        finally:
            r.close()

    def test_wedged_unix_listener_at_reload(self):
        m = self.master({"a.cf": "server-command = %s\n" % FD})
        m.start(expect_children=1)
        socks = wedged_listener(m.path("app.sock"))
        try:
            m.write("b.cf", "server-command = %s\nserver-service = {dir}/app.sock\n" % FD)
            m.signal(signal.SIGHUP)
            wait_until(lambda: "in use by another process" in m.log(), 5, what="the reload to be refused")
            self.assertIn("nothing changed", m.log())
            # Still supervising: a killed child is replaced, and SIGTERM stops masterd.
            old = m.children()
            os.kill(old[0], signal.SIGKILL)
            wait_until(lambda: m.children() and m.children() != old, 5, what="a replacement")
            self.assertEqual(m.stop(), 0)
            self.assertTrue(os.path.exists(m.path("app.sock")), "the other process's socket was left alone")
        finally:
            for s in socks:
                s.close()

    def test_wedged_unix_listener_at_start_and_as_masterlog(self):
        socks = []
        try:
            m = self.master({"b.cf": "server-command = %s\nserver-service = {dir}/app.sock\n" % FD})
            socks += wedged_listener(m.path("app.sock"))
            r = m.run()
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("in use by another process", r.stderr + m.log())
            m2 = self.master({"c.cf": "server-command = %s\nserver-log = masterlog,{dir}/log.sock\n" % FD})
            socks += wedged_listener(m2.path("log.sock"))
            r = m2.run()
            self.assertNotEqual(r.returncode, 0, r.stderr)
            self.assertIn("log.sock", r.stderr + m2.log())
        finally:
            for s in socks:
                s.close()


if __name__ == "__main__":
    import unittest
    unittest.main()
