"""Privileges (doc/CONTRACT.md §1 -pid-file, §2 server-user and server-unix-mode).

- server-user: masterd binds (a privileged port too), the child sets its groups, gid and uid
  before exec; a child whose drop fails (masterd without CAP_SETUID) never runs the program,
  let alone as root.
- server-unix-mode sets the mode of unix sockets and fifos whatever masterd's umask; other
  users are kept out of a 0600 socket.
- The pid file is opened O_NOFOLLOW, mode 0644: a symlink there is refused and its target
  never touched.
- masterd run as root warns about config files and directories others could write.

Tests needing root skip with a message saying so.
"""
import errno
import os
import pwd
import re
import shutil
import signal
import subprocess
import socket
import stat
import time
import unittest

import lib

FD = lib.FDSERVER
ROOT_ONLY = unittest.skipUnless(os.geteuid() == 0, "needs root (masterd started as root): skipped as uid %d"
                                % os.geteuid())


def privileged_free_port():
    for port in range(980, 600, -1):
        if lib.can_bind(port) and lib.port_free(port):
            return port
    raise unittest.SkipTest("no free port below 1024")


def connect_as_nobody(path):
    """Connects to a unix socket from a forked process running as nobody: 0 or the errno."""
    nobody = pwd.getpwnam("nobody")
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(path)
                code = 0
            except OSError as e:
                code = e.errno
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


class CapMaster(lib.Master):
    """masterd started as root but without CAP_SETUID (setpriv drops it from the bounding set
    before exec), so a child's setuid() to server-user fails."""

    def cmdline(self, *extra):
        return ["setpriv", "--bounding-set=-setuid", "--"] + super().cmdline(*extra)


class Privileges(lib.MasterTest):

    def setUp(self):
        super().setUp()
        self.umask = os.umask(0o022)
        self.addCleanup(os.umask, self.umask)

    @ROOT_ONLY
    def test_server_user_groups_gid_uid_and_privileged_port(self):
        nobody = pwd.getpwnam("nobody")
        port = privileged_free_port()
        m = self.master({"u.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\nserver-user = nobody\n"
                                 % (FD, port)})
        os.chmod(m.dir, 0o755)
        m.start(expect_children=1)
        r = lib.report(("127.0.0.1", port))
        st = lib.proc_status(r["pid"])
        self.assertEqual(set(map(int, st["Uid"].split())), {nobody.pw_uid})
        self.assertEqual(set(map(int, st["Gid"].split())), {nobody.pw_gid})
        self.assertEqual(sorted(map(int, st["Groups"].split())),
                         sorted(set(os.getgrouplist("nobody", nobody.pw_gid))), "supplementary groups not nobody's")
        self.assertEqual(int(st["CapEff"], 16), 0, "the child kept capabilities")
        self.assertEqual(int(st["CapPrm"], 16), 0)
        # masterd itself stays root (it must bind and signal), and bound the privileged port.
        self.assertEqual(lib.proc_status(m.pid)["Uid"].split()[0], "0")
        self.assertEqual(lib.socket_info(m.pid, lib.fd_links(r["pid"])[3]), ("tcp", port))

    @ROOT_ONLY
    def test_program_or_chdir_server_user_cannot_use_is_a_config_error(self):
        # As root, -t passed a program only root may run (or a server-chdir only root may enter);
        # every start then failed with EACCES.
        m = self.master({})
        os.chmod(m.dir, 0o755)
        os.chmod(m.path("cf"), 0o755)
        prog = m.path("cf", "prog")
        shutil.copy(FD, prog)
        os.chmod(prog, 0o700)
        work = m.path("cf", "work")
        os.mkdir(work, 0o700)  # nor may it enter its server-chdir
        m.write("u.cf", "server-command = ./prog\nserver-user = nobody\nserver-chdir = work\n")
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r"u\.cf:1: server-command: '%s' is not executable by server-user nobody "
                                   r"\(mode 0700, owner 0, group 0\)" % re.escape(prog))
        self.assertRegex(r.stderr, r"u\.cf:3: server-chdir: '%s' cannot be entered by server-user nobody "
                                   r"\(mode 0700, owner 0, group 0\)" % re.escape(work))
        os.chmod(prog, 0o755)
        os.chmod(work, 0o755)
        r = m.run("-t")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    @ROOT_ONLY
    def test_failed_drop_never_runs_the_program(self):
        if not shutil.which("setpriv"):
            self.skipTest("needs setpriv(1) to start masterd without CAP_SETUID")
        port = lib.free_port()
        m = CapMaster({"u.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\nserver-user = nobody\n"
                              % (FD, port),
                       "ok.cf": "server-command = %s\n" % FD})
        self.masters.append(m)
        os.chmod(m.dir, 0o755)
        m.start()
        self.assertEqual(int(lib.proc_status(m.pid)["CapEff"], 16) & (1 << 7), 0, "masterd still has CAP_SETUID")
        t0 = time.monotonic()
        ran = []
        # Watch every process masterd forks for 2.5 s: none may ever become fdserver for u.
        while time.monotonic() - t0 < 2.5:
            for k in lib.children(m.pid):
                try:
                    exe = os.readlink("/proc/%d/exe" % k)
                    env = open("/proc/%d/environ" % k, "rb").read()
                except OSError:
                    continue
                if exe == FD and b"u.cf" in env:
                    ran.append((k, lib.proc_status(k)["Uid"]))
            time.sleep(0.01)
        log = m.log()
        self.assertEqual(ran, [], "server-user's program ran although the drop failed")
        self.assertIn("u: child", log)
        self.assertRegex(log, r"u: child \d+: setuid for server-user: Operation not permitted")
        self.assertRegex(log, r"u: pid \d+ exited with status 126")
        self.assertIn("u: slot 1 failed 3 times in a row", log)
        with self.assertRaises(OSError):
            lib.fetch(("127.0.0.1", port), timeout=0.5)
        self.assertEqual(len(lib.started_pids(log, "ok")), 1, "the other service suffered")

    def test_unix_socket_and_fifo_modes(self):
        os.umask(0o077)  # masterd's umask must not decide the mode
        m = self.master({
            "a.cf": "server-command = %s\nserver-service = {dir}/default.sock\n" % FD,
            "b.cf": "server-command = %s\nserver-service = {dir}/private.sock, fifo:{dir}/b.fifo\n"
                    "server-unix-mode = 0600\n" % FD,
            "c.cf": "server-command = %s\nserver-service = local:{dir}/group.sock\nserver-unix-mode = 660\n" % FD,
        })
        os.chmod(m.dir, 0o755)
        m.start(expect_children=3)
        modes = {n: stat.S_IMODE(os.stat(m.path(n)).st_mode) for n in
                 ("default.sock", "private.sock", "b.fifo", "group.sock")}
        self.assertEqual(modes, {"default.sock": 0o666, "private.sock": 0o600, "b.fifo": 0o600, "group.sock": 0o660})
        self.assertTrue(stat.S_ISSOCK(os.stat(m.path("private.sock")).st_mode))
        self.assertTrue(stat.S_ISFIFO(os.stat(m.path("b.fifo")).st_mode))
        # A service added by a reload gets its mode too.
        m.write("d.cf", "server-command = %s\nserver-service = {dir}/late.sock\nserver-unix-mode = 0620\n" % FD)
        m.signal(signal.SIGHUP)
        lib.wait_until(lambda: os.path.exists(m.path("late.sock")), 5)
        self.assertEqual(stat.S_IMODE(os.stat(m.path("late.sock")).st_mode), 0o620)
        if os.geteuid() == 0:
            # The mode is what keeps other users out: nobody may use the 0666 socket, not the 0600 one.
            for name, want in (("default.sock", 0), ("private.sock", errno.EACCES)):
                self.assertEqual(connect_as_nobody(m.path(name)), want, name)

    def test_pid_file_symlink_refused(self):
        port = lib.free_port()
        m = self.master({"a.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\n" % (FD, port)})
        target = m.path("precious")
        with open(target, "w") as f:
            f.write("precious data\n")
        os.symlink(target, m.pid_file)
        r = m.run()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("pid file %s" % m.pid_file, r.stderr)
        self.assertIn(os.strerror(40), r.stderr)  # ELOOP: O_NOFOLLOW met a symlink
        self.assertEqual(open(target).read(), "precious data\n")
        self.assertTrue(os.path.islink(m.pid_file))
        self.assertTrue(lib.can_bind(port), "masterd bound something before refusing")
        # A dangling symlink: its target is not created either.
        os.unlink(m.pid_file)
        os.unlink(target)
        os.symlink(target, m.pid_file)
        self.assertEqual(m.run().returncode, 1)
        self.assertFalse(os.path.exists(target))
        # --try-lock does not follow it either.
        self.assertEqual(m.run("--try-lock").returncode, 1)
        self.assertFalse(os.path.exists(target))

    def test_pid_file_mode_0644(self):
        m = self.master({"a.cf": "server-command = %s\n" % FD})
        os.umask(0)  # after the config is written: a world-writable .cf would be refused
        m.start(expect_children=1)
        st = os.lstat(m.pid_file)
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o644)
        self.assertEqual(open(m.pid_file).read(), "%d\n" % m.pid)

    @ROOT_ONLY
    def test_non_root_master_cannot_switch_users(self):
        # masterd run as nobody with server-user = root: -t says so (file:line), instead of "ok"
        # and then every start failing at setuid forever.
        m = self.master({"a.cf": "server-command = %s\nserver-user = root\n" % FD})
        os.chmod(m.dir, 0o755)
        os.chmod(m.cf, 0o755)
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", lib.MASTERD,
                            "-C", m.cf, "-t"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("%s:2: server-user: masterd runs as uid %d and cannot start processes as 'root'"
                      % (os.path.join(m.cf, "a.cf"), pwd.getpwnam("nobody").pw_uid), r.stderr)

    @ROOT_ONLY
    def test_config_others_can_write(self):
        """As root, masterd runs what its files say as root: a .cf or .gcf that anyone but root can
        change is refused (nothing starts); the directory, and a file root's group may write, get
        a warning."""
        port = lib.free_port()
        m = self.master({"a.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\n" % (FD, port),
                         "b.cf": "server-command = %s\n" % FD, "all.gcf": "k = v\n"})
        r = m.run("-t")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("warning", r.stderr)
        a, b, g = (os.path.join(m.cf, n) for n in ("a.cf", "b.cf", "all.gcf"))
        nobody = pwd.getpwnam("nobody")
        os.chmod(a, 0o666)
        os.chmod(g, 0o642)
        os.chmod(m.cf, 0o775)
        os.chown(b, nobody.pw_uid, 0)
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("masterd: %s is writable by group and others (mode 0666) and masterd reads it as root: "
                      "refusing it" % a, r.stderr)
        self.assertIn("%s is writable by others (mode 0642) and masterd reads it as root: refusing it" % g, r.stderr)
        self.assertIn("%s is owned by uid %d, not root, and masterd reads it as root: refusing it"
                      % (b, nobody.pw_uid), r.stderr)
        r = m.run()
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertNotIn("started pid", r.stderr + m.log())
        self.assertTrue(lib.can_bind(port), "masterd bound something before refusing")
        # Put right (root's group may write a file: a warning), it starts; a reload that meets a
        # file someone else made changes nothing.
        os.chmod(a, 0o664)
        os.chown(a, 0, 0)
        os.chmod(g, 0o644)
        os.chown(b, 0, 0)
        r = m.run("-t")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("warning: %s is writable by its group (mode 0775)" % m.cf, r.stderr)
        self.assertIn("warning: %s is writable by its group (mode 0664)" % a, r.stderr)
        m.start(expect_children=2)
        self.assertRegex(m.log(), r"WARNING: md_set\.c:.* PID:%d %s is writable by its group \(mode 0664\)"
                         % (m.pid, re.escape(a)))
        m.write("evil.cf", "server-command = /usr/bin/touch {dir}/pwned\n")
        os.chown(os.path.join(m.cf, "evil.cf"), nobody.pw_uid, nobody.pw_gid)
        m.signal(signal.SIGHUP)
        lib.wait_until(lambda: "nothing changed" in m.log(), 5, what="the reload to be refused")
        self.assertFalse(os.path.exists(m.path("pwned")))
        self.assertEqual(len(m.children()), 2)
        self.assertEqual(m.stop(), 0)

if __name__ == "__main__":
    unittest.main()
