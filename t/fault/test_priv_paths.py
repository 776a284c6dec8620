"""Privilege boundaries on paths (doc/CONTRACT.md §2 server-unix-mode, §3 unix and fifo entries).

masterd runs as root; the socket's or fifo's directory may belong to another user.  That user
must not be able to turn masterd's work on the path against a file of root's:

- between bind()/mkfifo() and setting the mode, the fresh socket or fifo is swapped for a
  symlink to a root-owned 0600 file: the target's mode never changes, and masterd never opens it;
- a directory writable by a user other than root, masterd's user or the service's user (and not
  sticky) is refused when the socket would be bound there: at start nothing is started (exit 1),
  at a reload nothing changes, and -t says so.

The race is made deterministic by tracing masterd with strace, which holds every bind() and
mknod() for 300 ms after it returns: the attacker, a process running as nobody, has all that
time to swap the file.  Needs root (and strace for the race): skipped otherwise.
"""
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
import unittest

import lib

FD = lib.FDSERVER
ROOT_ONLY = unittest.skipUnless(os.geteuid() == 0, "needs root (masterd started as root): skipped as uid %d"
                                % os.geteuid())


def as_nobody(fn):
    """Forks a process that drops to nobody and runs fn(); returns its pid."""
    nobody = pwd.getpwnam("nobody")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            code = fn() or 0
        except BaseException:  # noqa: BLE001 - the child must never return into the test runner
            code = 2
        finally:
            os._exit(code)
    return pid


def swapper(paths, target, limit=15.0):
    """As the directory's owner: each path, once it is a socket or a fifo, is replaced (rename,
    atomic) by a symlink to target.  Exits 0 when every path was swapped, 3 at the time limit."""
    def run():
        todo = list(paths)
        t0 = time.monotonic()
        while todo and time.monotonic() - t0 < limit:
            for p in list(todo):
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if stat.S_ISSOCK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
                    tmp = p + ".swap"
                    os.symlink(target, tmp)
                    os.rename(tmp, p)
                    todo.remove(p)
            time.sleep(0.002)
        return 3 if todo else 0
    return run


def traced(test, pid):
    """Attaches strace to pid: every bind() and mknod() returns 300 ms late.  Returns the detach
    function (also called at cleanup): masterd must not exit traced (LeakSanitizer cannot run
    under ptrace)."""
    if not shutil.which("strace"):
        test.skipTest("needs strace(1) to widen the race window")
    calls = "bind,mknod,mknodat"
    st = subprocess.Popen(["strace", "-qq", "-o", "/dev/null", "-p", str(pid), "-e", "trace=" + calls,
                           "-e", "inject=%s:delay_exit=300000" % calls],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def detach():
        if st.poll() is not None:
            return
        st.send_signal(signal.SIGINT)
        try:
            st.wait(10)
        except subprocess.TimeoutExpired:
            st.kill()
            st.wait()
    test.addCleanup(detach)
    lib.wait_until(lambda: lib.proc_status(pid)["TracerPid"] != "0", 5, what="strace to attach")
    return detach


def open_by(pids, path):
    """The pids among pids that have path open."""
    out = []
    for p in pids:
        try:
            if any(t == path for t in lib.fd_links(p).values()):
                out.append(p)
        except OSError:
            pass
    return out


@ROOT_ONLY
class SocketDirectory(lib.MasterTest):

    def setUp(self):
        super().setUp()
        self.umask = os.umask(0o022)
        self.addCleanup(os.umask, self.umask)
        self.nobody = pwd.getpwnam("nobody")

    def shared_dir(self, m):
        """m's dir readable by all; its subdirectory 'd' belongs to nobody."""
        os.chmod(m.dir, 0o755)
        d = m.path("d")
        os.mkdir(d, 0o755)
        os.chown(d, self.nobody.pw_uid, self.nobody.pw_gid)
        return d

    def secret(self, m, name):
        p = m.path(name)
        with open(p, "w") as f:
            f.write("root's secret\n")
        os.chmod(p, 0o600)
        return p

    def test_swapped_for_a_symlink_after_bind(self):
        port = lib.free_port()
        m = self.master({"a.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\n" % (FD, port)})
        d = self.shared_dir(m)
        s1, s2 = self.secret(m, "secret1"), self.secret(m, "secret2")
        m.start(expect_children=1)
        detach = traced(self, m.pid)
        sock, fifo = os.path.join(d, "u.sock"), os.path.join(d, "u.fifo")
        attackers = [as_nobody(swapper([sock], s1)), as_nobody(swapper([fifo], s2))]
        # nobody's directory is fine for nobody's service: the swap is the only way in.
        m.write("u.cf", "server-command = %s\nserver-service = %s, fifo:%s\nserver-user = nobody\n"
                        "server-unix-mode = 0666\n" % (FD, sock, fifo))
        m.signal(signal.SIGHUP)
        lib.wait_until(lambda: "reload: 1 started" in m.log() or "nothing changed" in m.log(), 15,
                       what="the reload to finish")
        for p in attackers:
            self.assertEqual(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]), 0, "an attacker never swapped its file")
        detach()
        lib.wait_until(lambda: lib.proc_status(m.pid)["TracerPid"] == "0", 5, what="strace to detach")
        for s in (s1, s2):
            st = os.stat(s)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, "%s: masterd changed the mode through a symlink" % s)
            self.assertEqual(st.st_uid, 0)
        everyone = [m.pid] + lib.descendants(m.pid)
        self.assertEqual(open_by(everyone, s1) + open_by(everyone, s2), [],
                         "masterd opened the symlink's target as the fifo")
        self.assertTrue(lib.alive(m.pid))

    def test_directory_others_can_write_refused(self):
        port = lib.free_port()
        cf = "server-command = %s\nserver-service = 127.0.0.1:%d, {dir}/d/a.sock\n" % (FD, port)
        m = self.master({"a.cf": cf})
        d = self.shared_dir(m)
        where = "%s:2" % os.path.join(m.cf, "a.cf")
        # Owned by nobody, and the service runs as root: refused at start, nothing bound or started.
        r = m.run()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("%s: server-service: '%s/a.sock': directory %s is owned by uid %d, not by root, masterd's "
                      "user or the service's user" % (where, d, d, self.nobody.pw_uid), r.stderr)
        self.assertTrue(lib.can_bind(port), "masterd bound something before refusing")
        self.assertEqual(os.listdir(d), [])
        self.assertNotIn("started pid", r.stderr)
        # -t says the same, as a configuration error.
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("directory %s is owned by uid %d" % (d, self.nobody.pw_uid), r.stderr)
        # root's directory that others may write (not sticky): refused too; sticky: accepted.
        os.chown(d, 0, 0)
        os.chmod(d, 0o777)
        r = m.run()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("directory %s is writable by others (mode 0777) and not sticky" % d, r.stderr)
        os.chmod(d, 0o775)
        os.chown(d, 0, self.nobody.pw_gid)
        r = m.run()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("directory %s is writable by group %d (mode 0775) and not sticky" % (d, self.nobody.pw_gid),
                      r.stderr)
        os.chmod(d, 0o1777)
        m.start(expect_children=1)
        self.assertTrue(stat.S_ISSOCK(os.lstat(os.path.join(d, "a.sock")).st_mode))
        # A reload that adds a socket in nobody's directory changes nothing and says why.
        e = m.path("e")
        os.mkdir(e, 0o755)
        os.chown(e, self.nobody.pw_uid, self.nobody.pw_gid)
        m.write("b.cf", "server-command = %s\nserver-service = {dir}/e/b.sock\n" % FD)
        m.signal(signal.SIGHUP)
        lib.wait_until(lambda: "nothing changed" in m.log(), 5)
        self.assertIn("b.cf:2: server-service: '%s/b.sock': directory %s is owned by uid %d" % (e, e, self.nobody.pw_uid),
                      m.log())
        self.assertEqual(os.listdir(e), [])
        self.assertEqual(len(m.children()), 1)
        # Given to the service's user, the directory is fine.
        m.write("b.cf", "server-command = %s\nserver-service = {dir}/e/b.sock\nserver-user = nobody\n" % FD)
        m.signal(signal.SIGHUP)
        lib.wait_until(lambda: "reload: 1 started" in m.log(), 5)
        self.assertTrue(stat.S_ISSOCK(os.lstat(os.path.join(e, "b.sock")).st_mode))


if __name__ == "__main__":
    unittest.main()
