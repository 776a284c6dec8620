"""Fault: masterd's log target disappears (doc/CONTRACT.md §1 -log, §2 server-log).

Whatever happens to the log - the -log file removed, its directory removed, a masterlog
receiver's socket file removed, syslog with nobody listening on /dev/log, or a syslog daemon
that stopped reading - masterd never blocks or dies: it keeps supervising (a killed child is
replaced, a reload applies, a stop is clean).  SIGUSR1 brings a removed file or masterlog
socket back.
"""
import os
import shutil
import signal
import socket
import subprocess
import time
import unittest

import lib

FD = lib.FDSERVER
PROBE = lib.tool("tlib_probe")


def fd_text(pid, target_suffix):
    """The content of the file pid has open whose name ends with target_suffix (even deleted)."""
    for fd, target in lib.fd_links(pid).items():
        if target.replace(" (deleted)", "").endswith(target_suffix):
            with open("/proc/%d/fd/%d" % (pid, fd), errors="replace") as f:
                return f.read()
    return None


class LogTargets(lib.MasterTest):

    def still_supervising(self, m, port, sid="a"):
        """A killed child is replaced and the new one answers; returns the new pid."""
        old = lib.report(("127.0.0.1", port))["pid"]
        os.kill(old, signal.SIGKILL)
        new = lib.wait_until(lambda: (lambda p: p if p != old else None)(
            lib.report(("127.0.0.1", port), timeout=2)["pid"]), 5, what="%s's child to be replaced" % sid)
        self.assertTrue(lib.alive(m.pid))
        return new

    def test_log_file_and_its_directory_removed(self):
        port = lib.free_port()
        m = self.master({"a.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\n" % (FD, port)})
        os.mkdir(m.path("logs"))
        target = m.path("logs", "masterd.log")
        m.args += ["-log", "file," + target]
        m.start(wait_ready=False)
        lib.wait_until(lambda: os.path.exists(target) and "started" in open(target).read(), 5 * lib.SLOW)
        m.wait_children(1)
        os.unlink(target)
        self.still_supervising(m, port)
        m.signal(signal.SIGHUP)
        lib.wait_until(lambda: "reload: 0 started" in (fd_text(m.pid, "logs/masterd.log") or ""), 5,
                       what="the reload logged to the removed file")
        # The directory goes too: SIGUSR1 cannot reopen, says so in the old file, carries on.
        shutil.rmtree(m.path("logs"))
        m.signal(signal.SIGUSR1)
        lib.wait_until(lambda: "reopen log" in (fd_text(m.pid, "logs/masterd.log") or ""), 5,
                       what="the failed reopen to be logged")
        self.still_supervising(m, port)
        self.assertNotIn("log reopened", fd_text(m.pid, "logs/masterd.log"))  # it was not
        # The directory is back: SIGUSR1 makes a new file; children write through masterd's
        # relay (a pipe), never to the file itself.
        os.mkdir(m.path("logs"))
        m.signal(signal.SIGUSR1)
        lib.wait_until(lambda: os.path.exists(target) and "log reopened" in open(target).read(), 5)
        new = self.still_supervising(m, port)
        self.assertTrue(os.readlink("/proc/%d/fd/1" % new).startswith("pipe:"))
        self.assertEqual(m.stop(), 0)
        self.assertIn("masterd stopped", open(target).read())

    def test_masterlog_socket_removed(self):
        port = lib.free_port()
        m = self.master()
        sock = m.path("log.sock")
        m.write("p.cf", "server-command = %s\nserver-service = 127.0.0.1:%d\nserver-log = masterlog,%s\n"
                        "probe-out = {dir}/events\nprobe-log-lines = 1\n" % (PROBE, port, sock))
        m.start(expect_children=1)
        first = m.children()[0]
        lib.wait_until(lambda: "probe line 0 of 1 from %d:" % first in m.log(), 5)
        os.unlink(sock)
        # A child started now cannot reach the receiver: it logs to stderr and serves anyway.
        os.kill(first, signal.SIGKILL)
        second = lib.wait_until(lambda: [k for k in m.children() if k != first], 5)[0]
        lib.wait_until(lambda: "PID:%d server-log: %s: connect" % (second, sock) in m.log(), 5,
                       what="the new child to fall back to stderr")
        self.assertTrue(lib.fetch(("127.0.0.1", port)).startswith(b"pid=%d" % second))
        m.signal(signal.SIGHUP)  # a reload neither fails nor stalls on it
        lib.wait_until(lambda: "reload: 0 started" in m.log(), 5)
        # SIGUSR1 (or that reload) made the socket anew; the next child logs through it again.
        m.signal(signal.SIGUSR1)
        lib.wait_until(lambda: os.path.exists(sock), 5, what="the masterlog socket to be re-created")
        self.assertIn("masterlog,%s: the socket file was removed or replaced; made a new one" % sock, m.log())
        os.kill(second, signal.SIGKILL)
        third = lib.wait_until(lambda: [k for k in m.children() if k not in (first, second)], 5)[0]
        lib.wait_until(lambda: "probe line 0 of 1 from %d:" % third in m.log(), 5)
        self.assertNotIn("PID:%d server-log:" % third, m.log())
        self.assertEqual(m.stop(), 0)
        self.assertFalse(os.path.exists(sock))


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare") and shutil.which("mount"),
                     "syslog faults need root, unshare(1) and mount(8) for a private /dev (not root: skipped)")
class Syslog(lib.MasterTest):
    """masterd -log syslog,daemon in a mount namespace whose /dev is a fresh tmpfs (only a
    bind-mounted /dev/null in it), so /dev/log is whatever the test puts there."""

    def namespaced(self, m, port, dev_log=None):
        null = m.path("null")
        open(null, "w").close()
        script = ["mount --make-rprivate /", "mount --bind /dev/null %s" % null, "mount -t tmpfs tmpfs /dev",
                  "touch /dev/null", "mount --bind %s /dev/null" % null]
        if dev_log:
            script += ["touch /dev/log", "mount --bind %s /dev/log" % dev_log]
        script.append('exec "$@"')
        m.args += ["-log", "syslog,daemon", "-v"]
        cmd = ["unshare", "--mount", "--", "sh", "-ec", " && ".join(script), "sh"] + m.cmdline()
        m.logf = open(m.log_path, "ab")
        m.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=m.logf, stderr=subprocess.STDOUT, cwd=m.dir)
        m.pid = m.proc.pid  # unshare and sh exec: the same process becomes masterd
        lib.wait_until(lambda: open(m.pid_file).read().strip() == str(m.pid), 5 * lib.SLOW,
                       what="masterd to start in its namespace (its pid file)")
        return m

    def exercise(self, m, port, extra_kills=3):
        kids = m.wait_children(2, timeout=5 * lib.SLOW)
        for _ in range(extra_kills):
            old = lib.report(("127.0.0.1", port))["pid"]
            os.kill(old, signal.SIGKILL)
            lib.wait_until(lambda: (lambda p: p if p != old else None)(
                lib.report(("127.0.0.1", port), timeout=2)["pid"]), 5, what="a replacement")
        m.signal(signal.SIGHUP)
        m.signal(signal.SIGUSR2)  # a graceful restart: a new generation of everything
        lib.wait_until(lambda: not set(kids) & set(m.children()) and len(m.children()) == 2, 10,
                       what="the restart to replace every child")

    def clean_stop(self, m):
        t0 = time.monotonic()
        m.signal(signal.SIGTERM)
        self.assertEqual(m.wait_exit(10), 0)
        self.assertLess(time.monotonic() - t0, 5)

    def cf(self, port, lines=0):
        return {"a.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\n" % (FD, port),
                "p.cf": "server-command = %s\nserver-log = masterlog,{dir}/ml.sock\nprobe-log-lines = %d\n"
                        % (PROBE, lines)}

    def daemon(self, m):
        """A datagram socket standing in for the syslog daemon (bind-mounted on /dev/log)."""
        d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        d.bind(m.path("devlog"))
        self.addCleanup(d.close)
        return d

    def received(self, d):
        out = []
        d.setblocking(False)
        while True:
            try:
                out.append(d.recv(65536).decode(errors="replace"))
            except BlockingIOError:
                return out

    def test_lines_reach_the_daemon(self):
        port = lib.free_port()
        m = self.master(self.cf(port, lines=3))
        d = self.daemon(m)
        self.namespaced(m, port, dev_log=m.path("devlog"))
        got = []
        lib.wait_until(lambda: got.extend(self.received(d)) or
                       sum("probe line" in g for g in got) == 3, 5, what="3 probe lines at /dev/log")
        # RFC 3164: <facility*8+severity>timestamp ident[pid]: the masterd log line.
        started = [g for g in got if " started (pid %d)" % m.pid in g]
        self.assertEqual(len(started), 1, got[:5])
        self.assertRegex(started[0], r"^<30>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d masterd\[%d\]: "
                                     r"\d\d/\d\d/\d{4} .* INFO: md_master\.c:" % m.pid)
        self.clean_stop(m)
        self.assertNotIn("log to syslog: /dev/log", m.log())

    def test_no_dev_log_listener(self):
        port = lib.free_port()
        m = self.master(self.cf(port, lines=50))
        self.namespaced(m, port)
        self.exercise(m, port)
        self.clean_stop(m)
        # Said once at start, on stderr, where the operator looks: the lines go nowhere.
        self.assertEqual(m.log().count("masterd: log to syslog: /dev/log: "), 1, m.log()[-2000:])

    def test_stalled_syslog_daemon(self):
        # A /dev/log bound by a "daemon" that never reads: its queue fills within a few hundred
        # lines, after which a blocking syslog() would hang masterd for good.  The probes send
        # 400 lines each through masterlog, which masterd passes on to syslog.
        port = lib.free_port()
        m = self.master(self.cf(port, lines=400))
        d = self.daemon(m)
        self.namespaced(m, port, dev_log=m.path("devlog"))
        self.exercise(m, port)
        # The daemon wakes up: what was dropped is counted in the next line that gets through.
        self.received(d)
        m.signal(signal.SIGHUP)
        got = []
        lib.wait_until(lambda: got.extend(self.received(d)) or any("reload:" in g for g in got), 5)
        notes = [g for g in got if "lines dropped: the daemon was busy or gone" in g]
        self.assertEqual(len(notes), 1, got[:3])
        self.clean_stop(m)


if __name__ == "__main__":
    unittest.main()
