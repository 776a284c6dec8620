"""Reload (SIGHUP), graceful restart (SIGUSR2), log reopen (SIGUSR1) and masterd as PID 1."""
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

from lib import (FDSERVER, MASTERD, MasterTest, alive, children, descendants, fetch, free_port, port_free, proc_stat,
                 report, sample, tool, wait_until)

BURST = tool("burst")
HTTP = sample("http_hello")


def http_cf(port, count=2, extra=""):
    return ("server-command = %s\nserver-service = http://127.0.0.1:%d\nserver-proc-count = %d\n"
            "server-stop-on-softstop-after = 3\n%s" % (HTTP, port, count, extra))


def fd_cf(port, count=1, extra="", svc=None):
    return ("server-command = %s serve\nserver-service = %s\nserver-proc-count = %d\n%s"
            % (FDSERVER, svc or "127.0.0.1:%d" % port, count, extra))


class KeepAliveClient(threading.Thread):
    """Sends a request every 20 ms on one connection; reconnects when told `Connection: close`.
    Counts requests answered and requests that got no whole answer (errors)."""

    def __init__(self, port, stop):
        super().__init__(daemon=True)
        self.port, self.stop, self.ok, self.errors, self.reconnects = port, stop, 0, [], 0

    def run(self):
        s = None
        while not self.stop.is_set():
            try:
                if s is None:
                    s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                buf = b""
                while b"\r\n\r\nhello" not in buf:
                    b = s.recv(4096)
                    if not b:
                        raise ConnectionError("EOF after %d bytes" % len(buf))
                    buf += b
                self.ok += 1
                if b"Connection: close" in buf:
                    s.close()
                    s = None
                    self.reconnects += 1
            except OSError as e:
                self.errors.append(repr(e))
                if s:
                    s.close()
                s = None
            time.sleep(0.02)
        if s:
            s.close()


class ReloadUnderLoad(MasterTest):
    def test_20_reloads_5_restarts_zero_errors(self):
        port = free_port()
        m = self.master({"web.cf": http_cf(port)}).start(expect_children=2)
        wait_until(lambda: fetch(("127.0.0.1", port), send=b"GET / HTTP/1.0\r\n\r\n"), 5)
        stop = threading.Event()
        keep = [KeepAliveClient(port, stop) for _ in range(3)]
        for k in keep:
            k.start()
        load = subprocess.Popen([BURST, "-a", "127.0.0.1:%d" % port, "-r", "200", "-d", "12", "-p", "200",
                                 "-s", "GET / HTTP/1.0\\r\\n\\r\\n", "-e", "HTTP/1.1 200 OK", "-t", "15"],
                                stdout=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        for i in range(25):
            # Pace the changes over ~10 s so every one overlaps live traffic.
            while time.monotonic() - t0 < 0.4 * i:
                time.sleep(0.01)
            if i % 5 == 4:
                m.signal(signal.SIGUSR2)
            else:
                m.write("web.cf", http_cf(port, extra="change = %d\n" % i))
                m.signal(signal.SIGHUP)
        out, _ = load.communicate(timeout=60)
        stop.set()
        for k in keep:
            k.join(10)
        print(out.strip(), "keep-alive:", [(k.ok, k.reconnects, len(k.errors)) for k in keep])
        self.assertIn("refused=0 reset=0 timeout=0 bad=0 other=0", out)
        self.assertEqual(load.returncode, 0, out)
        for k in keep:
            self.assertEqual(k.errors, [], "keep-alive client errors")
            self.assertGreater(k.ok, 50)
        log = m.log()
        self.assertEqual(log.count("reload: reading"), 20)
        self.assertEqual(log.count("graceful restart"), 5)
        # Every old generation drained and left: exactly 2 children of the last generation remain.
        wait_until(lambda: len(m.children()) == 2, 15, what="old generations gone")
        self.assertEqual(m.stop(), 0)


class ReloadSemantics(MasterTest):
    def pids_by_service(self, m, ports):
        out = {}
        for name, port in ports.items():
            out[name] = sorted({report(("127.0.0.1", port))["pid"] for _ in range(12)})
        return out

    def test_broken_reload_changes_nothing(self):
        port = free_port()
        m = self.master({"a.cf": fd_cf(port, 2)}).start(expect_children=2)
        before = m.children()
        m.write("a.cf", fd_cf(port, 2) + "server-proc-count = 3x\n")
        m.write("b.cf", "server-service = 127.0.0.1:%d\n" % free_port())
        m.signal(signal.SIGHUP)
        wait_until(lambda: "nothing changed" in m.log(), 5, what="reload refused")
        log = m.log()
        self.assertRegex(log, r"reload: .*a\.cf:\d+: server-proc-count: '3x': not a whole number")
        self.assertRegex(log, r"reload: .*b\.cf: server-command: missing")
        self.assertEqual(m.children(), before)
        self.assertIn(report(("127.0.0.1", port))["pid"], before)

    def test_reload_follows_a_swapped_config_symlink(self):
        # A deploy: -C is a symlink to a release directory, swapped atomically, then SIGHUP.
        m = self.master()
        for d in ("r1", "r2"):
            os.mkdir(m.path(d))
        os.symlink("r1", m.path("current"))
        m.cf = m.path("current")
        m.write("a.cf", "server-command = /bin/sleep 600\n")
        with open(m.path("r2", "b.cf"), "w") as f:
            f.write("server-command = /bin/sleep 600\n")
        m.start()
        wait_until(lambda: "a: started pid" in m.log(), 5, what="a started from r1")
        os.symlink("r2", m.path("current.new"))
        os.rename(m.path("current.new"), m.path("current"))
        m.signal(signal.SIGHUP)
        wait_until(lambda: "b: started pid" in m.log(), 5, what="b started from r2")
        self.assertIn("reload: 1 started, 0 new generations, 0 scaled, 1 removed, 0 unchanged", m.log())

    def test_add_remove_change_scale_unchanged(self):
        ports = {n: free_port() for n in "abcde"}
        files = {"%s.cf" % n: fd_cf(ports[n], 2) for n in "abcd"}
        m = self.master(files).start(expect_children=8)
        wait_until(lambda: all(len(v) == 2 for v in self.pids_by_service(m, {n: ports[n] for n in "abcd"}).values()),
                   10, what="both children of every service answering")
        by = {}
        for n in "abcd":
            by[n] = wait_until(lambda: (lambda s: s if len(s) == 2 else None)(
                sorted({report(("127.0.0.1", ports[n]))["pid"] for _ in range(20)})), 5)
        # a: unchanged; b: removed; c: changed (a server key); d: scaled 2 -> 3; e: added.
        m.remove("b.cf")
        m.write("c.cf", fd_cf(ports["c"], 2, "greeting = changed\n"))
        m.write("d.cf", fd_cf(ports["d"], 3))
        m.write("e.cf", fd_cf(ports["e"], 1))
        m.signal(signal.SIGHUP)
        wait_until(lambda: "reload: 1 started, 1 new generation, 1 scaled, 1 removed, 1 unchanged" in m.log(), 5)
        # b's children soft-stop and its port closes once they are gone.
        for p in by["b"]:
            wait_until(lambda: not alive(p), 5, what="b's pid %d gone" % p)
        wait_until(lambda: port_free(ports["b"]), 5, what="b's port closed")
        # c: two new pids with the new generation, the old ones gone.
        for p in by["c"]:
            wait_until(lambda: not alive(p), 10, what="c's old pid %d gone" % p)
        newc = {report(("127.0.0.1", ports["c"]))["pid"] for _ in range(20)}
        self.assertFalse(newc & set(by["c"]))
        self.assertEqual(report(("127.0.0.1", ports["c"]))["env"]["ZMASTER_GENERATION"], "2")
        # d: the two old pids kept, one more added.
        d_now = wait_until(lambda: (lambda s: s if len(s) == 3 else None)(
            {report(("127.0.0.1", ports["d"]))["pid"] for _ in range(30)}), 5)
        self.assertTrue(set(by["d"]) <= d_now)
        # a: untouched.
        self.assertTrue(all(alive(p) for p in by["a"]))
        self.assertEqual(report(("127.0.0.1", ports["a"]))["env"]["ZMASTER_GENERATION"], "1")
        # e: started.
        self.assertTrue(report(("127.0.0.1", ports["e"]))["pid"])
        # scale down d 3 -> 1: two soft-stopped, pids of the rest unchanged
        m.write("d.cf", fd_cf(ports["d"], 1))
        m.signal(signal.SIGHUP)
        wait_until(lambda: len({report(("127.0.0.1", ports["d"]))["pid"] for _ in range(20)}) == 1, 10)
        self.assertIn(report(("127.0.0.1", ports["d"]))["pid"], d_now)

    def test_binary_change_is_a_new_generation(self):
        port = free_port()
        m = self.master()
        exe = m.path("fdserver-copy")
        shutil.copy(FDSERVER, exe)
        m.write("a.cf", "server-command = %s\nserver-service = 127.0.0.1:%d\n" % (exe, port))
        m.start(expect_children=1)
        old = m.children()[0]
        m.signal(signal.SIGHUP)
        wait_until(lambda: "1 unchanged" in m.log(), 5)
        self.assertEqual(m.children(), [old])
        os.unlink(exe)
        shutil.copy(FDSERVER, exe)  # a new inode
        m.signal(signal.SIGHUP)
        wait_until(lambda: "1 new generation" in m.log(), 5)
        wait_until(lambda: not alive(old), 5)
        self.assertEqual(report(("127.0.0.1", port))["env"]["ZMASTER_GENERATION"], "2")

    def test_unix_socket_keeps_its_inode(self):
        m = self.master()
        path = m.path("u.sock")
        m.write("u.cf", fd_cf(0, 1, svc=path))
        m.start(expect_children=1)
        ino = os.stat(path).st_ino
        old = report(path)["pid"]
        m.write("u.cf", fd_cf(0, 1, "x = y\n", svc=path))
        m.signal(signal.SIGHUP)
        wait_until(lambda: not alive(old), 5)
        self.assertNotEqual(report(path)["pid"], old)
        self.assertEqual(os.stat(path).st_ino, ino)
        m.remove("u.cf")
        m.signal(signal.SIGHUP)
        wait_until(lambda: not os.path.exists(path), 5, what="socket file removed with its service")

    def test_usr1_reopens_log_file(self):
        port = free_port()
        m = self.master({"a.cf": fd_cf(port)})
        logfile = m.path("file.log")
        m.args = ["-log", "file,%s" % logfile]
        m.start(wait_ready=False)
        wait_until(lambda: os.path.exists(logfile) and "started" in open(logfile).read(), 5)
        os.rename(logfile, logfile + ".1")
        m.signal(signal.SIGUSR1)
        wait_until(lambda: os.path.exists(logfile) and "log reopened" in open(logfile).read(), 5)
        self.assertNotIn("log reopened", open(logfile + ".1").read())


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare"), "needs root and unshare(1)")
class Pid1(MasterTest):
    def test_masterd_as_pid1_reaps_orphans_and_stops(self):
        port = free_port()
        m = self.master()
        script = m.path("orphaner.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\n(sleep 0.3 &)\nexec %s serve\n" % FDSERVER)
        os.chmod(script, 0o755)
        m.write("o.cf", "server-command = %s\nserver-service = 127.0.0.1:%d\nserver-proc-count = 2\n" % (script, port))
        logf = open(m.log_path, "ab")
        p = subprocess.Popen(["unshare", "--fork", "--pid", "--mount-proc", MASTERD, "-C", m.cf], stdout=logf,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            md = wait_until(lambda: (lambda c: c[0] if c else None)(children(p.pid)), 5, what="masterd in namespace")
            m.pid = md
            def servers():
                out = []
                for c in children(md):
                    try:
                        if "fdserver" in open("/proc/%d/cmdline" % c).read():
                            out.append(c)
                    except OSError:
                        pass
                return out
            # Two fdservers (the orphaned sleeps are masterd's children for a moment too).
            kids = wait_until(lambda: (lambda c: c if len(c) == 2 else None)(servers()), 5)
            r = report(("127.0.0.1", port))
            self.assertEqual(r["env"]["LISTEN_PID"], str(r["pid"]))  # pid as seen inside the namespace
            # The orphaned sleeps were adopted by masterd (PID 1) and must be reaped: no zombie stays.

            def no_zombies():
                for d in os.listdir("/proc"):
                    if d.isdigit():
                        st = proc_stat(int(d))
                        if st and st[1] == md and st[0] == "Z":
                            return False
                return "sleep" not in " ".join(open("/proc/%d/cmdline" % c).read() for c in children(md))
            wait_until(no_zombies, 5, what="orphans reaped")
            self.assertEqual(sorted(servers()), sorted(kids))
            # Restart behaviour is kept: kill one child, it is replaced.
            os.kill(kids[0], signal.SIGKILL)
            wait_until(lambda: len(servers()) == 2 and kids[0] not in servers(), 5, what="respawn as PID 1")
            wait_until(no_zombies, 5)
            t0 = time.monotonic()
            os.kill(md, signal.SIGTERM)
            self.assertEqual(p.wait(10), 0)
            self.assertLess(time.monotonic() - t0, 6)
        finally:
            if p.poll() is None:
                p.kill()
            logf.close()
