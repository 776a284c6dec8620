"""Privilege boundaries between masterd (root) and the children it starts as another user.

- No child shares masterd's session or controlling terminal: each starts its own session
  (setsid), so a `server-user = nobody` child cannot TIOCSTI a command into the terminal masterd
  was started from (exec mode and fork mode alike).
- masterd's end of a status channel takes no descriptors: a child passing a socket whose close
  would linger cannot freeze masterd's loop.
- The accept scoreboard is sealed: a worker cannot shrink it under its siblings (SIGBUS), and
  garbage it writes there never crashes a sibling.
- server-env / server-env-clear: the environment a child gets is exactly what the config says.

Tests needing root skip with a message saying so.
"""
import fcntl
import os
import pwd
import signal
import socket
import struct
import subprocess
import termios
import time
import unittest

import lib

FD = lib.FDSERVER
HOSTILE = lib.tool("hostile")
HTTP = lib.sample("http_hello")
ROOT_ONLY = unittest.skipUnless(os.geteuid() == 0, "needs root (masterd started as root): skipped as uid %d"
                                % os.geteuid())

def stat_fields(pid):
    """(pgrp, session, tty_nr) from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[2]), int(rest[3]), int(rest[4])


def on_terminal():
    """A new pty pair, and a preexec_fn making the started process a session leader whose
    controlling terminal is that pty (a root shell running masterd in the foreground)."""
    master, slave = os.openpty()

    def preexec():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    return master, slave, preexec


class TtyMaster(lib.Master):
    """masterd with stdin, stdout and stderr on a pty that is its controlling terminal; its log
    goes to a file so that the test can read it."""

    def start(self, wait_ready=True, expect_children=None):
        self.ptm, self.pts, preexec = on_terminal()
        self.proc = subprocess.Popen(self.cmdline("-log", "file," + self.log_path), stdin=self.pts,
                                     stdout=self.pts, stderr=self.pts, cwd=self.cwd, preexec_fn=preexec)
        self.pid = self.proc.pid
        lib.wait_until(lambda: os.path.exists(self.pid_file) and "started" in self.log(), 5 * lib.SLOW,
                       what="masterd to start")
        if expect_children is not None:
            self.wait_children(expect_children)
        return self

    def cleanup(self):
        try:
            super().cleanup()
        finally:
            for fd in (getattr(self, "ptm", None), getattr(self, "pts", None)):
                if fd is not None:
                    os.close(fd)


def drain(fd):
    """Whatever the pty master has to read right now (echo of injected input)."""
    out = b""
    os.set_blocking(fd, False)
    try:
        while True:
            out += os.read(fd, 4096)
    except OSError:
        return out


class Terminal(lib.MasterTest):

    @ROOT_ONLY
    def test_child_has_no_controlling_terminal(self):
        m = TtyMaster()
        self.masters.append(m)
        os.chmod(m.dir, 0o755)
        out = m.path("out")
        os.mkdir(out)
        os.chmod(out, 0o777)
        m.write("t.cf", "server-command = %s tty %s\nserver-user = nobody\n" % (HOSTILE, os.path.join(out, "res")))
        m.start()
        self.assertEqual(stat_fields(m.pid)[1], m.pid, "masterd is not the session leader the test meant")
        self.assertNotEqual(stat_fields(m.pid)[2], 0, "masterd has no controlling terminal")
        kid = m.wait_children(1)[0]
        res = lib.wait_until(lambda: open(os.path.join(out, "res")).read().split(), 10, what="the probe's result")
        self.assertNotIn("tiocsti=ok", res, "the child injected input into masterd's terminal: %r" % res)
        self.assertIn("open=ENXIO", res, "the child could open masterd's terminal: %r" % res)
        pgrp, sid, tty = stat_fields(kid)
        self.assertEqual((pgrp, sid, tty), (kid, kid, 0), "child (pgrp, session, tty_nr)")
        self.assertFalse([r for r in res if r.startswith("sctty") and r.endswith("=ok")], res)
        self.assertNotIn(b"#", drain(m.ptm), "input was injected into masterd's terminal")
        self.assertEqual(m.stop(), 0)

    def test_fork_mode_workers_leave_the_terminal(self):
        # The self-hosted mode (`alone`) forks its workers through the same spawn code.
        port = lib.free_port()
        ptm, pts, preexec = on_terminal()
        p = subprocess.Popen([HTTP, "alone", "-server-service", "127.0.0.1:%d" % port, "-server-proc-count", "2"],
                             stdin=pts, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=preexec)
        try:
            kids = lib.wait_until(lambda: (lambda k: k if len(k) == 2 else None)(lib.children(p.pid)), 5,
                                  what="2 workers")
            self.assertNotEqual(stat_fields(p.pid)[2], 0, "the alone-mode parent has no controlling terminal")
            for k in kids:
                # A worker just forked has not reached its setsid() yet: give it the time to.
                lib.wait_until(lambda: stat_fields(k) == (k, k, 0), 5,
                               what="worker %d in its own session (pgrp, session, tty_nr = %r)" % (k, stat_fields(k)))
        finally:
            p.terminate()
            p.wait(timeout=15)
            os.close(ptm)
            os.close(pts)


def kernel_at_least(major, minor):
    v = [int(x) for x in os.uname().release.split("-")[0].split(".")[:2]]
    return v >= [major, minor]


def nobody_dir(m):
    """A directory in m's temp dir that a nobody child can write its result into."""
    os.chmod(m.dir, 0o755)
    out = m.path("out")
    os.mkdir(out)
    os.chmod(out, 0o777)
    return out


def result(path, timeout=10):
    return lib.wait_until(lambda: open(path).read().split(), timeout, what="the hostile child's result in %s" % path)


class PassedDescriptor(lib.MasterTest):

    @ROOT_ONLY
    def test_lingering_socket_does_not_freeze_masterd(self):
        # The peer never reads: the hostile child's send buffer stays full, so the last close
        # of its socket (SO_LINGER {1, 15}) would wait 15 s.
        peer = socket.socket()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        peer.bind(("127.0.0.1", 0))
        peer.listen(64)
        self.addCleanup(peer.close)
        port = lib.free_port()
        m = self.master()
        out = nobody_dir(m)
        m.write("h.cf", "server-command = %s passfd %d %s\nserver-user = nobody\n"
                % (HOSTILE, peer.getsockname()[1], os.path.join(out, "h")))
        m.write("s.cf", "server-command = %s\nserver-service = 127.0.0.1:%d\n" % (FD, port))
        m.start(expect_children=2)
        res = result(os.path.join(out, "h"))
        # masterd has read the record (or refused its descriptor) by the time it answers a
        # signal it gets after it: a SIGHUP is handled in the same loop.
        sib = lib.report(("127.0.0.1", port))["pid"]
        t0 = time.monotonic()
        os.kill(sib, signal.SIGKILL)
        new = lib.wait_until(lambda: (lambda r: r["pid"] if r["pid"] != sib else None)(lib.report(("127.0.0.1", port))),
                             3, what="the killed sibling replaced (hostile child: %r)" % res)
        self.assertLess(time.monotonic() - t0, 1.5, "replacement took too long (hostile child: %r)" % res)
        self.assertNotEqual(new, sib)
        if kernel_at_least(6, 16):  # SO_PASSRIGHTS: every descriptor refused in the kernel
            sent, refused = (int(w.split("=")[1]) for w in res)
            self.assertEqual(sent, 0, res)
            self.assertGreater(refused, 0, res)
        m.signal(signal.SIGHUP)
        lib.wait_until(lambda: "reload: reading" in m.log(), 1.5, what="SIGHUP handled promptly (hostile: %r)" % res)
        self.assertEqual(m.stop(), 0)


REQ_KEEP = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def board_pids(master_pid):
    """The pids on the accept scoreboard(s) masterd holds, read through its memfd."""
    pids = set()
    for fd in os.listdir("/proc/%d/fd" % master_pid):
        try:
            if not os.readlink("/proc/%d/fd/%s" % (master_pid, fd)).startswith("/memfd:zserver-board"):
                continue
            with open("/proc/%d/fd/%s" % (master_pid, fd), "rb") as f:
                body = f.read(64 + 64 * 16)
            pids.update(struct.unpack_from("<i", body, 64 + 64 * i)[0] for i in range(16))
        except OSError:
            pass
    return pids - {0}


def hello(port, req=REQ_KEEP):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(req)
    buf = b""
    while b"hello" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    return s, buf


class Scoreboard(lib.MasterTest):

    @ROOT_ONLY
    def test_worker_cannot_crash_its_siblings(self):
        port = lib.free_port()
        m = self.master()
        out = nobody_dir(m)
        mark, res = os.path.join(out, "mark"), os.path.join(out, "res")
        m.write("w.cf", "server-command = %s board %s %s %s\nserver-service = 127.0.0.1:%d\n"
                        "server-proc-count = 3\nserver-user = nobody\n" % (HOSTILE, mark, res, HTTP, port))
        m.start(expect_children=3)
        bad = lib.wait_until(lambda: int(open(mark).read()), 5, what="the hostile worker's pid")
        kids = m.children()
        good = set(kids) - {bad}
        lib.wait_until(lambda: good <= board_pids(m.pid), 5, what="the siblings on the board")
        # First the board is shrunk to nothing, then (second signal) filled with garbage.
        for attack in ("truncate", "garbage"):
            os.kill(bad, signal.SIGUSR1)
            what = lib.wait_until(lambda: (lambda w: w if any(x.startswith(attack) for x in w) else None)(
                result(res)), 5, what="the hostile worker's %s" % attack)
            self.burst(port, what)
            self.assertEqual(set(m.children()), set(kids), "a worker died (hostile: %r)\n%s" % (what, m.log()[-2000:]))
        self.assertNotIn("signal 7", m.log())
        self.assertIn("truncate=EPERM", what)
        self.assertEqual(m.stop(), 0)

    def burst(self, port, what):
        """Siblings keep serving: held keep-alive connections (the board counts them), then new
        ones closed at once."""
        held = []
        for i in range(40):
            s, head = hello(port)
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), "connection %d: %r (hostile: %r)" % (i, head, what))
            held.append(s)
        for s in held:
            s.close()
        for i in range(40):
            s, head = hello(port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            s.close()
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), "connection %d: %r (hostile: %r)" % (i, head, what))


CONTRACT = {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "ZMASTER_STATUS_FD", "ZMASTER_GENERATION",
            "ZMASTER_CONFIG_PATH", "ZMASTER_CONFIG"}
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def environ_of(port):
    """(pid, {name: value}, [names in order]) of the fdserver on port, read from /proc."""
    pid = lib.report(("127.0.0.1", port))["pid"]
    items = lib.proc_environ(pid)
    return pid, dict(e.split("=", 1) for e in items), [e.split("=", 1)[0] for e in items]


class Environment(lib.MasterTest):
    """server-env / server-env-clear: what a child's environment is, read from /proc/PID/environ."""

    def env(self):
        # masterd's own environment: a secret it must not hand on when told not to.
        return dict(os.environ, ZS_SECRET="root-only", LANG="xx_XX")

    def test_inherited_by_default_server_env_overrides(self):
        port = lib.free_port()
        m = self.master({"e.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\n"
                                 "server-env = LANG=C.UTF-8\nserver-env = EXTRA=a=b c\n" % (FD, port)},
                        env=self.env())
        m.start(expect_children=1)
        _, env, names = environ_of(port)
        self.assertEqual(env["ZS_SECRET"], "root-only")  # the documented default: inherited
        self.assertEqual(env["LANG"], "C.UTF-8")
        self.assertEqual(env["EXTRA"], "a=b c")
        self.assertEqual(len(names), len(set(names)), "a name twice: %r" % names)
        self.assertTrue(CONTRACT <= set(env))

    @ROOT_ONLY
    def test_cleared_environment_is_exactly_the_config(self):
        port = lib.free_port()
        m = self.master({"e.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\nserver-user = nobody\n"
                                 "server-env-clear = yes\nserver-env = LANG=C.UTF-8\n" % (FD, port)},
                        env=self.env())
        os.chmod(m.dir, 0o755)
        m.start(expect_children=1)
        pid, env, names = environ_of(port)
        self.assertEqual(set(names), CONTRACT | {"LANG", "PATH"}, env)
        self.assertEqual(len(names), len(set(names)), names)
        self.assertEqual(env["LANG"], "C.UTF-8")
        self.assertEqual(env["PATH"], DEFAULT_PATH)
        self.assertEqual(env["LISTEN_PID"], str(pid))
        self.assertEqual(env["ZMASTER_CONFIG"], os.path.join(m.cf, "e.cf"))
        # PATH is the config's when it sets one.
        m.write("e.cf", "server-command = %s\nserver-service = 127.0.0.1:%d\nserver-env-clear = yes\n"
                        "server-env = PATH=/opt/x/bin\n" % (FD, port))
        m.signal(signal.SIGHUP)
        # A new generation (the old one may still answer a connection while it stops).
        _, env, names = lib.wait_until(lambda: (lambda r: r if r[1]["ZMASTER_GENERATION"] == "2" else None)(
            environ_of(port)), 10, what="the new generation serving")
        self.assertEqual(set(names), CONTRACT | {"PATH"}, env)
        self.assertEqual(env["PATH"], "/opt/x/bin")

    def test_bad_server_env_refused(self):
        m = self.master({"e.cf": "server-command = %s\nserver-env = LISTEN_FDS=7\nserver-env = NOEQ\n"
                                 "server-env-clear = maybe\n" % FD})
        r = m.run("-t")
        self.assertNotEqual(r.returncode, 0)
        cf = os.path.join(m.cf, "e.cf")
        self.assertIn("%s:2: server-env: 'LISTEN_FDS=7': LISTEN_FDS is set by masterd" % cf, r.stderr + r.stdout)
        self.assertIn("%s:3: server-env: 'NOEQ': expected NAME=VALUE" % cf, r.stderr + r.stdout)
        self.assertIn("%s:4: server-env-clear: 'maybe': expected yes or no" % cf, r.stderr + r.stdout)


if __name__ == "__main__":
    unittest.main()
