"""masterd never waits on a peer it does not control (found by a hostile tester):

- a NOTIFY_SOCKET receiver that does not read (its queue full) must cost a warning, not a
  supervisor stuck in sendto() that starts nothing and ignores SIGTERM;
- a live unix listener whose backlog is full, at a path a reload wants (or a masterlog target
  names), is "in use": the probe connect never blocks, the reload is refused, masterd goes on.
The peers are this test's own sockets in the test's temp dir.
"""
import os
import pwd
import signal
import socket
import stat
import subprocess

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


def listen_backlog(port):
    """The backlog of the TCP listener on 127.0.0.1:port, as ss reports it (Send-Q)."""
    out = subprocess.run(["ss", "-Hltn", "sport = :%d" % port], capture_output=True, text=True).stdout
    return int(out.split()[2]) if out.strip() else None


class Reapplied(lib.MasterTest):
    """What a reload changes about a socket it keeps is applied, not silently ignored."""

    def test_mode_and_backlog_follow_a_reload(self):
        port = lib.free_port()
        cf = ("server-command = %s\nserver-service = 127.0.0.1:%d, {dir}/u.sock, fifo:{dir}/u.fifo\n"
              "server-unix-mode = %s\nserver-listen-backlog = %d\n")
        m = self.master({"a.cf": cf % (FD, port, "0666", 64)})
        m.start(expect_children=1)
        self.assertEqual(stat.S_IMODE(os.stat(m.path("u.sock")).st_mode), 0o666)
        self.assertEqual(listen_backlog(port), 64)
        m.write("a.cf", cf % (FD, port, "0600", 7))
        m.signal(signal.SIGHUP)
        wait_until(lambda: "reload: " in m.log() and "new generation" in m.log(), 5, what="the reload")
        wait_until(lambda: stat.S_IMODE(os.stat(m.path("u.sock")).st_mode) == 0o600, 5,
                   what="the socket file's mode to follow the config")
        self.assertEqual(stat.S_IMODE(os.stat(m.path("u.fifo")).st_mode), 0o600)
        self.assertEqual(listen_backlog(port), 7)
        self.assertEqual(m.stop(), 0)


@lib.unittest.skipUnless(os.geteuid() == 0, "needs root (a fifo another user made)")
class ForeignFifo(lib.MasterTest):

    def test_fifo_made_by_another_user_is_refused(self):
        nobody = pwd.getpwnam("nobody")
        m = self.master({"a.cf": "server-command = %s\nserver-service = fifo:{dir}/pub/x.fifo\n"
                                 "server-unix-mode = 0600\n" % FD})
        os.chmod(m.dir, 0o755)
        pub = m.path("pub")
        os.mkdir(pub)
        os.chmod(pub, 0o1777)
        pid = os.fork()
        if pid == 0:
            try:
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                os.mkfifo(os.path.join(pub, "x.fifo"), 0o666)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        r = m.run()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("belongs to uid %d, not to root, masterd's user or the service's user" % nobody.pw_uid,
                      r.stderr + m.log())
        self.assertEqual(os.stat(os.path.join(pub, "x.fifo")).st_uid, nobody.pw_uid)
        # The service's own user may have made it.
        m.write("a.cf", "server-command = %s\nserver-service = fifo:{dir}/pub/x.fifo\nserver-user = nobody\n" % FD)
        m.start(expect_children=1)
        self.assertEqual(m.stop(), 0)


if __name__ == "__main__":
    import unittest
    unittest.main()
