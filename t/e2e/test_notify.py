"""masterd speaks systemd's notify protocol (sd_notify) when NOTIFY_SOCKET is set.

A real unix datagram socket in a temp dir (and one in the abstract namespace) plays systemd:
READY=1 once every socket is bound and every service spawned, RELOADING=1 then READY=1 around a
SIGHUP reload (also a reload that fails), STOPPING=1 on SIGTERM.  The children must not inherit
NOTIFY_SOCKET: a server that speaks sd_notify itself would otherwise tell systemd things about
masterd's unit.
"""
import os
import signal
import socket
import time

from lib import FDSERVER, MasterTest, connect, free_port, report, wait_until


STATES = ("READY=1", "RELOADING=1", "STOPPING=1")


class NotifyListener:
    """A bound SOCK_DGRAM socket; collects the messages masterd sends to it.

    A message is newline-separated VAR=value assignments; `got` keeps, per message, the state
    it announces (READY=1, RELOADING=1 or STOPPING=1), so extra fields systemd allows
    (STATUS=, MONOTONIC_USEC=) do not matter — except that a MONOTONIC_USEC must be right.
    """

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.got = []

    def drain(self):
        while True:
            try:
                data = self.sock.recv(4096).decode()
            except (socket.timeout, BlockingIOError):
                return self.got
            now_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            fields = [f for f in data.split("\n") if f]
            states = [f for f in fields if f in STATES]
            assert len(states) == 1, "notify message %r: not exactly one state" % data
            for f in fields:
                assert "=" in f, "notify message %r: %r is not VAR=value" % (data, f)
                if f.startswith("MONOTONIC_USEC="):
                    usec = int(f.partition("=")[2])
                    assert now_us - 10 * 10**6 <= usec <= now_us, "bad %s (now %d)" % (f, now_us)
            self.got.append(states[0])

    def wait_for(self, msg, count=1, timeout=5.0):
        """Waits until msg has been received `count` times in total; returns every message."""
        return wait_until(lambda: self.drain().count(msg) >= count and self.got, timeout,
                          what="%r x%d on the notify socket (got %r)" % (msg, count, self.got))

    def close(self):
        self.sock.close()


class Notify(MasterTest):
    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.cf = ("server-command = %s serve\nserver-service = 127.0.0.1:%d\nserver-proc-count = 2\n"
                   % (FDSERVER, self.port))

    def notified_master(self, address, env_value):
        n = NotifyListener(address)
        self.addCleanup(n.close)
        m = self.master({"fd.cf": self.cf}, env=dict(os.environ, NOTIFY_SOCKET=env_value))
        return n, m

    def test_ready_reload_stopping(self):
        m = self.master({"fd.cf": self.cf})
        path = m.path("notify.sock")
        n = NotifyListener(path)
        self.addCleanup(n.close)
        m.env = dict(os.environ, NOTIFY_SOCKET=path, MD_TEST_MARK="inherited")

        m.start(wait_ready=False)
        got = n.wait_for("READY=1")
        self.assertEqual(got, ["READY=1"])
        # READY means bound: a connection is accepted by the backlog even before a child runs.
        connect(("127.0.0.1", self.port)).close()
        m.wait_children(2)

        # Children do not inherit NOTIFY_SOCKET (nor does it leak under another spelling).
        rep = wait_until(lambda: report(("127.0.0.1", self.port)), 5, what="fdserver report")
        self.assertEqual(rep["ppid"], m.pid)
        self.assertNotIn("NOTIFY_SOCKET", rep["env"])
        self.assertFalse([v for v in rep["env"].values() if v == path], rep["env"])
        # Ordinary variables are inherited, so the absence above is masterd's doing.
        self.assertEqual(rep["env"].get("MD_TEST_MARK"), "inherited")
        self.assertEqual(rep["env"].get("LISTEN_FDS"), "1")

        # A reload: RELOADING=1, then READY=1 once it is applied.
        m.signal(signal.SIGHUP)
        got = n.wait_for("READY=1", count=2)
        self.assertEqual(got, ["READY=1", "RELOADING=1", "READY=1"])
        self.assertIn("reload:", m.log())

        # A reload that fails (invalid config) still ends the reloading state.
        m.write("fd.cf", self.cf + "server-proc-count = zero\n")
        m.signal(signal.SIGHUP)
        got = n.wait_for("READY=1", count=3)
        self.assertEqual(got[3:], ["RELOADING=1", "READY=1"])
        wait_until(lambda: "nothing changed" in m.log(), 5, what="the failed reload in the log")

        # Stop: STOPPING=1, and nothing after it.
        self.assertEqual(m.stop(), 0)
        got = n.wait_for("STOPPING=1")
        self.assertEqual(got[5:], ["STOPPING=1"])
        n.drain()
        self.assertEqual(got.count("STOPPING=1"), 1)
        self.assertEqual(got[-1], "STOPPING=1")

    def test_abstract_namespace_socket(self):
        name = "masterd-notify-test-%d-%d" % (os.getpid(), time.monotonic_ns())
        n, m = self.notified_master("\0" + name, "@" + name)
        m.start(wait_ready=False)
        n.wait_for("READY=1")
        m.wait_children(2)
        self.assertNotIn("NOTIFY_SOCKET", report(("127.0.0.1", self.port))["env"])
        m.signal(signal.SIGTERM)
        n.wait_for("STOPPING=1")
        self.assertEqual(m.wait_exit(), 0)

    def test_without_notify_socket_nothing_is_sent(self):
        # The same run with NOTIFY_SOCKET unset: the listener (not advertised) hears nothing,
        # and masterd logs no sd_notify warning.
        m = self.master({"fd.cf": self.cf})
        n = NotifyListener(m.path("notify.sock"))
        self.addCleanup(n.close)
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        m.env = env
        m.start(expect_children=2)
        m.signal(signal.SIGHUP)
        wait_until(lambda: "reload: " in m.log() and "unchanged" in m.log(), 5, what="reload")
        self.assertEqual(m.stop(), 0)
        self.assertEqual(n.drain(), [])
        self.assertNotIn("sd_notify", m.log())

    def test_unreachable_notify_socket_is_harmless(self):
        # NOTIFY_SOCKET naming nothing (systemd gone, a stale variable): masterd runs, reloads
        # and stops normally; a failed notification is never fatal.
        m = self.master({"fd.cf": self.cf})
        m.env = dict(os.environ, NOTIFY_SOCKET=m.path("nobody-listens.sock"))
        m.start(expect_children=2)
        self.assertEqual(report(("127.0.0.1", self.port))["ppid"], m.pid)
        m.signal(signal.SIGHUP)
        wait_until(lambda: "unchanged" in m.log(), 5, what="the reload")
        self.assertEqual(report(("127.0.0.1", self.port))["ppid"], m.pid)
        self.assertEqual(m.stop(), 0)
