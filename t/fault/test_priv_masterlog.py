"""Who may write masterd's log through a masterlog socket (doc/CONTRACT.md §2 server-log = masterlog,PATH).

- The socket is 0600 (masterd's user) when every service logging there runs as masterd's user,
  else 0660 with a group every such server-user is in: a local user who is neither gets EACCES.
- Every datagram becomes exactly one line, stamped by masterd from the sender's kernel
  credentials: `[SERVICE pid PID] ` for a process masterd runs, `[pid PID uid UID] ` for any
  other sender; newlines and other control characters in it are escaped.  So a line that
  starts like one of masterd's own (a date) can only be masterd's: a forged `masterd stopped`
  never appears as a bare line.

Needs root (another user): skipped otherwise.
"""
import errno
import grp
import os
import pwd
import re
import socket
import stat
import sys
import unittest

import lib

PROBE = lib.tool("tlib_probe")
ROOT_ONLY = unittest.skipUnless(os.geteuid() == 0, "needs root (masterd started as root): skipped as uid %d"
                                % os.geteuid())
FORGED = b"x\n01/01/2030 00:00:00 UTC INFO: md_master.c:md_master_run:1: PID:1 masterd stopped\n"
# A server that sends one multi-line datagram with a forged line in it, then waits.
SENDER = """import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(%r + b"from " + str(__import__("os").getpid()).encode() + b"\\x1b[2J\\n", sys.argv[1])
time.sleep(60)
""" % FORGED


def send_as_nobody(path, data):
    """Sends one datagram to path from a forked process running as nobody: (errno or 0, pid)."""
    nobody = pwd.getpwnam("nobody")
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                s.sendto(data, path)
                code = 0
            except OSError as e:
                code = e.errno
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), pid


def bare_forgeries(log):
    return [l for l in log.splitlines() if l.startswith("01/01/2030")]


@ROOT_ONLY
class MasterlogSenders(lib.MasterTest):

    def setUp(self):
        super().setUp()
        self.umask = os.umask(0o022)
        self.addCleanup(os.umask, self.umask)
        self.nobody = pwd.getpwnam("nobody")

    def test_root_services_only_nobody_refused(self):
        m = self.master({"p.cf": "server-command = %s\nserver-log = masterlog,{dir}/ml.sock\nprobe-log-lines = 1\n"
                                 % PROBE})
        os.chmod(m.dir, 0o755)
        m.start(expect_children=1)
        kid = m.children()[0]
        lib.wait_until(lambda: "probe line 0 of 1 from %d" % kid in m.log(), 5)
        st = os.lstat(m.path("ml.sock"))
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid), (0o600, 0))
        rc, _ = send_as_nobody(m.path("ml.sock"), FORGED)
        self.assertEqual(rc, errno.EACCES, "nobody could write masterd's log")
        # The child's line is stamped with its service and pid.
        self.assertRegex(m.log(), r"(?m)^\[p pid %d\] \d\d/\d\d/\d{4} .* probe line 0 of 1 from %d" % (kid, kid))
        self.assertEqual(m.stop(), 0)
        self.assertEqual(bare_forgeries(m.log()), [])

    def test_service_user_lines_stamped_and_escaped(self):
        m = self.master({"p.cf": "server-command = %s\nserver-log = masterlog,{dir}/ml.sock\nprobe-log-lines = 1\n"
                                 "server-user = nobody\n" % PROBE})
        os.chmod(m.dir, 0o755)
        sender = m.path("sender.py")
        with open(sender, "w") as f:
            f.write(SENDER)
        os.chmod(sender, 0o644)
        m.write("s.cf", "server-command = /usr/bin/python3 %s {dir}/ml.sock\nserver-log = masterlog,{dir}/ml.sock\n"
                        "server-user = nobody\n" % sender)
        m.start(expect_children=2)
        st = os.lstat(m.path("ml.sock"))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertIn(st.st_gid, os.getgrouplist("nobody", self.nobody.pw_gid))
        kids = m.children()
        probe = lib.wait_until(lambda: [k for k in kids if "probe line 0 of 1 from %d" % k in m.log()], 5)[0]
        other = [k for k in kids if k != probe][0]
        self.assertRegex(m.log(), r"(?m)^\[p pid %d\] .* probe line 0 of 1 from %d" % (probe, probe))
        # The sender's datagram: one line, its newlines and escape sequence escaped, stamped.
        line = lib.wait_until(lambda: [l for l in m.log().splitlines() if l.startswith("[s pid %d] " % other)], 5,
                              what="the sender's line")
        self.assertEqual(line, ["[s pid %d] x\\n01/01/2030 00:00:00 UTC INFO: md_master.c:md_master_run:1: PID:1 "
                                "masterd stopped\\nfrom %d\\x1b[2J" % (other, other)])
        # nobody, not a service's process but in the socket's group, may send: stamped as such.
        rc, pid = send_as_nobody(m.path("ml.sock"), FORGED)
        self.assertEqual(rc, 0)
        lib.wait_until(lambda: "[pid %d uid %d] x\\n01/01/2030" % (pid, self.nobody.pw_uid) in m.log(), 5)
        self.assertEqual(m.stop(), 0)
        self.assertEqual(bare_forgeries(m.log()), [])
        # The only "masterd stopped" that starts a line is masterd's own.
        self.assertEqual(len(re.findall(r"(?m)^\d\d/\d\d/\d{4} .*masterd stopped$", m.log())), 1)

    def test_users_without_a_common_group_refused(self):
        # root's service and nobody's share the socket: root needs no group, so nobody's decides.
        m = self.master({"a.cf": "server-command = %s\nserver-log = masterlog,{dir}/ml.sock\n" % PROBE,
                         "b.cf": "server-command = %s\nserver-log = masterlog,{dir}/ml.sock\nserver-user = nobody\n"
                                 % PROBE})
        os.chmod(m.dir, 0o755)
        m.start(expect_children=2)
        st = os.lstat(m.path("ml.sock"))
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_gid), (0o660, self.nobody.pw_gid))
        # A user in no group with nobody: the reload is refused, nothing changes.
        other = next((p for p in pwd.getpwall() if p.pw_uid not in (0, self.nobody.pw_uid) and
                      not set(os.getgrouplist(p.pw_name, p.pw_gid)) & set(os.getgrouplist("nobody", self.nobody.pw_gid))),
                     None)
        if other is None:
            self.skipTest("no user without a group in common with nobody")
        m.write("c.cf", "server-command = %s\nserver-log = masterlog,{dir}/ml.sock\nserver-user = %s\n"
                        % (PROBE, other.pw_name))
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("%s:2: server-log: masterlog,%s: its services run as users with no group in common (b (nobody), "
                      "c (%s))" % (os.path.join(m.cf, "a.cf"), m.path("ml.sock"), other.pw_name), r.stderr)
        m.signal(__import__("signal").SIGHUP)
        lib.wait_until(lambda: "nothing changed" in m.log(), 5)
        self.assertIn("masterlog,%s: its services run as users with no group in common" % m.path("ml.sock"), m.log())
        self.assertEqual(len(m.children()), 2)
        self.assertEqual(os.lstat(m.path("ml.sock")).st_gid, self.nobody.pw_gid)


if __name__ == "__main__":
    unittest.main()
