"""The config directory: what masterd accepts as a service file, and what a child is given.

- Every `*.cf` / `*.gcf` entry that is not a readable regular file (after following symlinks) is
  an error naming it, at start, in -t and at reload (the running set is kept); a FIFO never
  blocks masterd (doc/CONTRACT.md §11, §2).
- Under masterd a child runs with the merged view masterd validated at the last start or
  reload, never what the files say now (doc/CONTRACT.md §11, §4).
- Overlapping addresses (wildcard and specific on one port) are a duplicate; a ` ;` in a value
  is an error, never a silently dropped entry.
- A unix socket and a fifo at the same filesystem path (however spelled: relative, `local:`,
  through a symlinked directory) are a duplicate naming both places, in -t as at start.
- Every error is reported in one run (the first 20 of them, then how many more): a syntax error
  in one line hides no key error of its file or another, every setting of a key given twice is
  validated (the last one wins), and an error in a .gcf is said once, not once per service.
- Keys under the reserved prefixes server- and master- are matched in any case: a case variant
  of a known key is an error giving its spelling, never a key silently left to the program.
"""
import os
import re
import signal
import socket
import stat
import subprocess
import unittest

import lib

FD = lib.FDSERVER
PROBE = lib.tool("tlib_probe")


def svc(port):
    return "server-command = %s\nserver-service = 127.0.0.1:%d\n" % (FD, port)


class BadEntries(lib.MasterTest):

    def make_bad(self, m, name, kind):
        p = os.path.join(m.cf, name)
        if kind == "dangling":
            os.symlink(os.path.join(m.dir, "nowhere.cf"), p)
        elif kind == "fifo":
            os.mkfifo(p)
        elif kind == "dir":
            os.mkdir(p)
        elif kind == "device":
            os.mknod(p, stat.S_IFCHR | 0o644, os.makedev(1, 3))  # /dev/null's numbers
        elif kind == "unreadable":
            with open(p, "w") as f:
                f.write("server-command = /bin/true\n")
            os.chmod(p, 0)
        return p

    def test_t_and_start_refuse_every_kind(self):
        for suffix in (".cf", ".gcf"):
            for kind in ("dangling", "fifo", "dir", "device"):
                with self.subTest(kind=kind, suffix=suffix):
                    m = self.master({"ok.cf": svc(lib.free_port())})
                    p = self.make_bad(m, "bad" + suffix, kind)
                    r = m.run("-t", timeout=10)  # a FIFO must not block: the timeout would fire
                    self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                    self.assertIn(p, r.stderr)
                    self.assertNotIn("configuration ok", r.stdout)
                    r = m.run(timeout=10)
                    self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                    self.assertIn(p, r.stderr)

    def test_reload_keeps_a_service_whose_file_became_a_dangling_symlink(self):
        port = lib.free_port()
        m = self.master({"a.cf": svc(port)})
        m.start(expect_children=1)
        pid = lib.report(("127.0.0.1", port))["pid"]
        os.unlink(os.path.join(m.cf, "a.cf"))
        p = self.make_bad(m, "a.cf", "dangling")
        m.signal(signal.SIGHUP)
        lib.wait_until(lambda: "nothing changed" in m.log(), 5, what="the reload to be refused")
        self.assertIn(p, m.log())
        self.assertEqual(lib.report(("127.0.0.1", port))["pid"], pid)
        # A FIFO in its place does not block the reload either.
        os.unlink(p)
        self.make_bad(m, "a.cf", "fifo")
        n = m.log().count("nothing changed")
        m.signal(signal.SIGHUP)
        lib.wait_until(lambda: m.log().count("nothing changed") > n, 5, what="the second reload refused")
        self.assertEqual(lib.report(("127.0.0.1", port))["pid"], pid)
        self.assertTrue(lib.alive(m.pid))

    def test_symlink_to_a_regular_file_is_fine(self):
        port = lib.free_port()
        m = self.master()
        real = os.path.join(m.dir, "real")
        with open(real, "w") as f:
            f.write(svc(port))
        os.symlink(real, os.path.join(m.cf, "a.cf"))
        r = m.run("-t")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration ok (1 service)", r.stdout)


class Interpreter(lib.MasterTest):
    def test_script_found_in_path_with_a_missing_interpreter(self):
        m = self.master({"s.cf": "server-command = zs-test-script\n"})
        bindir = m.path("bin")
        os.mkdir(bindir)
        script = os.path.join(bindir, "zs-test-script")
        with open(script, "w") as f:
            f.write("#!/nonexistent/sh\nexit 0\n")
        os.chmod(script, 0o755)
        r = subprocess.run(m.cmdline("-t"), capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, PATH=bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin")))
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("s.cf:1: server-command: '%s': its interpreter '/nonexistent/sh' (the #! line): No such file "
                      "or directory" % script, r.stderr)


class Overlaps(lib.MasterTest):

    def check_dup(self, a, b, expect_error=True):
        m = self.master({"a.cf": "server-command = %s\nserver-service = %s\n" % (FD, a),
                         "b.cf": "server-command = %s\n# a comment\nserver-service = %s\n" % (FD, b)})
        r = m.run("-t")
        if not expect_error:
            self.assertEqual(r.returncode, 0, r.stderr)
            return
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(os.path.join(m.cf, "a.cf") + ":2", r.stderr)
        self.assertIn(os.path.join(m.cf, "b.cf") + ":3", r.stderr)

    def test_wildcard_and_specific_on_one_port(self):
        port = lib.free_port()
        self.check_dup("0:%d" % port, "127.0.0.1:%d" % port)
        self.check_dup("127.0.0.1:%d" % port, ":%d" % port)
        self.check_dup("[::]:%d" % port, "[::1]:%d" % port)
        # IPV6_V6ONLY is set on every IPv6 socket: 0:P and [::]:P are two sockets that coexist.
        self.check_dup("0:%d" % port, "[::]:%d" % port, expect_error=False)
        self.check_dup("0:%d" % port, "0:%d" % (port + 1 if port < 65535 else port - 1), expect_error=False)
        self.check_dup("127.0.0.1:%d" % port, "127.0.0.2:%d" % port, expect_error=False)

    def test_wildcard_and_specific_started_together_would_fail_at_bind(self):
        port = lib.free_port()
        m = self.master({"a.cf": svc(port).replace("127.0.0.1:", "0:"), "b.cf": svc(port)})
        r = m.run(timeout=10)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(os.path.join(m.cf, "b.cf") + ":2", r.stderr)


class PathClash(lib.MasterTest):

    def check_clash(self, first, second):
        m = self.master({"a.cf": "server-command = /bin/sleep 100\nserver-service = %s\n" % first,
                         "b.cf": "server-command = /bin/sleep 100\n# b\nserver-service = %s\n" % second})
        os.chmod(m.dir, 0o755)
        os.chmod(m.cf, 0o755)
        os.makedirs(m.path("run"), exist_ok=True)
        if not os.path.exists(m.path("link")):
            os.symlink(m.path("run"), m.path("link"))
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        a, b = os.path.join(m.cf, "a.cf"), os.path.join(m.cf, "b.cf")
        first, second = first.replace("{dir}", m.dir), second.replace("{dir}", m.dir)
        self.assertRegex(r.stderr, r"masterd: %s:3: server-service: '%s' .*'%s' at %s:2" % (
            re.escape(b), re.escape(second), re.escape(first), re.escape(a)))
        self.assertIn("1 error in", r.stderr)
        # A start says the same (exit 2: the configuration, not a failed bind).
        r = m.run(timeout=10)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("%s:3: server-service: '%s'" % (b, second), r.stderr)

    def test_unix_socket_and_fifo_at_one_path(self):
        self.check_clash("./s", "fifo:./s")
        self.check_clash("fifo:{dir}/run/f", "local:../run/f")
        self.check_clash("{dir}/link/x.sock", "fifo:{dir}/run/x.sock")  # through a symlinked directory

    def test_unix_socket_and_fifo_at_one_path_in_one_service(self):
        m = self.master({"a.cf": "server-command = /bin/sleep 100\nserver-service = ./s, fifo:d/../s\n"})
        os.makedirs(os.path.join(m.cf, "d"))
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("a.cf:2: server-service: 'fifo:d/../s' is the path '%s' of './s' at %s:2" % (
            os.path.join(m.cf, "s"), os.path.join(m.cf, "a.cf")), r.stderr)

    def test_masterlog_and_control_sockets_are_paths_too(self):
        m = self.master({"a.cf": "server-command = /bin/sleep 100\nserver-service = {dir}/run/x.sock\n",
                         "b.cf": "server-command = /bin/sleep 100\nserver-log = masterlog,{dir}/link/x.sock\n"})
        for d in (m.dir, m.cf):
            os.chmod(d, 0o755)
        os.makedirs(m.path("run"))
        os.symlink(m.path("run"), m.path("link"))
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("b.cf:2: server-log: masterlog,%s/link/x.sock: is also a listening socket (%s:2)" % (
            m.dir, os.path.join(m.cf, "a.cf")), r.stderr)
        # The control socket (-control, or beside the pid file) is masterd's path as well.
        m.write("b.cf", "server-command = /bin/sleep 100\nserver-service = fifo:{dir}/link/masterd.ctl\n")
        r = m.run("-t", "-control", m.path("run", "masterd.ctl"))
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("b.cf:2: server-service: 'fifo:%s/link/masterd.ctl' is the path of masterd's -control "
                      "socket '%s'" % (m.dir, m.path("run", "masterd.ctl")), r.stderr)
        r = m.run("-control", m.path("run", "masterd.ctl"), timeout=10)  # a start: refused before binding
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertEqual(m.run("-t", "-control", "none").returncode, 0)
        m.write("b.cf", "server-command = /bin/sleep 100\nserver-service = ../masterd.ctl\n")
        r = m.run("-t")  # -pid-file DIR/masterd.pid: the control socket is DIR/masterd.ctl
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("is the path of masterd's -control socket '%s'" % m.path("masterd.ctl"), r.stderr)

    def test_different_paths_are_fine(self):
        m = self.master({"a.cf": "server-command = /bin/sleep 100\nserver-service = ./s\n",
                         "b.cf": "server-command = /bin/sleep 100\nserver-service = fifo:./f\n"})
        r = m.run("-t")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class InlineSemicolon(lib.MasterTest):

    def test_semicolon_in_server_service_is_an_error(self):
        p1, p2 = lib.free_port(), lib.free_port()
        m = self.master({"a.cf": "server-command = %s\nserver-service = 127.0.0.1:%d ; 127.0.0.1:%d\n" % (FD, p1, p2)})
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(os.path.join(m.cf, "a.cf") + ":2", r.stderr)

    def test_semicolon_in_any_value_is_an_error(self):
        m = self.master({"a.cf": "server-command = /bin/sh -c 'sleep 9 ; exit 1'\n"})
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(os.path.join(m.cf, "a.cf") + ":1", r.stderr)

    def test_semicolon_comment_lines_and_semicolons_without_blank_are_fine(self):
        port = lib.free_port()
        m = self.master({"a.cf": "; a comment\n  ; an indented one\nserver-command = %s\n"
                                 "server-service = 127.0.0.1:%d\nprobe = a;b\n" % (FD, port)})
        r = m.run("-t")
        self.assertEqual(r.returncode, 0, r.stderr)


class AllErrors(lib.MasterTest):

    def test_syntax_errors_hide_no_key_errors(self):
        m = self.master({"x.cf": "server-command = /bin/true\nserver-proc-count = lots\n%s = v\nno equals sign\n"
                                 "server-restart = sometimes\n" % ("k" * 200),
                         "y.cf": "server-command = /bin/true\nserver-proc-count = 0\n"})
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        x, y = os.path.join(m.cf, "x.cf"), os.path.join(m.cf, "y.cf")
        for line in ("%s:2: server-proc-count: 'lots': not a whole number" % x,
                     "%s:3: line too long (204 characters, at most 199;" % x,
                     "%s:4: expected 'key = value'" % x,
                     "%s:5: server-restart: 'sometimes': expected" % x,
                     "%s:2: server-proc-count: '0': out of range 1..4096" % y):
            self.assertIn("masterd: " + line, r.stderr)
        self.assertIn("masterd: 5 errors in", r.stderr)

    def test_every_setting_of_a_key_is_validated(self):
        m = self.master({"main.gcf": "server-proc-count = 0x10\nserver-restart = never\n",
                         "y.cf": "server-command = /bin/true\nserver-proc-count = 99999999999999999999\n"
                                 "server-proc-count = 2\nserver-command = /nonexistent/prog\n"
                                 "server-command = /bin/true\nserver-restart = always\n"})
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        g, y = os.path.join(m.cf, "main.gcf"), os.path.join(m.cf, "y.cf")
        for line in ("%s:1: server-proc-count: '0x10': not a whole number" % g,
                     "%s:2: server-proc-count: '99999999999999999999': out of range 1..4096" % y,
                     "%s:4: server-command: '/nonexistent/prog'" % y):
            self.assertIn("masterd: " + line, r.stderr)
        self.assertIn("masterd: 3 errors in", r.stderr)
        # Valid everywhere: the last setting wins, as before.
        m.write("main.gcf", "server-proc-count = 3\n")
        m.write("y.cf", "server-command = /bin/false\nserver-command = /bin/sleep 100\nserver-proc-count = 2\n")
        self.assertEqual(m.run("-t").returncode, 0)
        m.start(expect_children=2)

    def test_gcf_error_said_once_and_at_most_20_shown(self):
        files = {"main.gcf": "server-ready-timeout = soon\n"}
        files.update(("s%02d.cf" % i, "server-command = /bin/true\nserver-proc-count = x%d\n" % i)
                     for i in range(30))
        m = self.master(files)
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        lines = r.stderr.splitlines()
        self.assertEqual(sum("main.gcf:1: server-ready-timeout: 'soon'" in l for l in lines), 1, r.stderr)
        self.assertEqual(len([l for l in lines if ".cf:2: server-proc-count" in l or "main.gcf:1" in l]), 20, r.stderr)
        self.assertIn("masterd: ... and 11 more errors", r.stderr)
        self.assertEqual(lines[-1], "masterd: 31 errors in %s" % m.cf)
        # A reload says the same (the control socket's reply, the log).
        m.write("main.gcf", "")
        for i in range(30):
            m.write("s%02d.cf" % i, "server-command = /bin/sleep 100\n")
        m.start(expect_children=30)
        m.write("main.gcf", "server-ready-timeout = soon\n")
        m.signal(signal.SIGHUP)
        lib.wait_until(lambda: "reload: 1 error; nothing changed" in m.log(), 5, what="the reload's refusal")
        self.assertEqual(m.log().count("main.gcf:1: server-ready-timeout: 'soon'"), 1, m.log())


class ReservedKeys(lib.MasterTest):

    def test_case_variants_of_reserved_keys_are_errors(self):
        m = self.master({"main.gcf": "# defaults\nServer-Stop-On-Softstop-After = 10\n",
                         "a.cf": "server-command = /bin/sleep 100\nServer-Proc-Count = 3\nMASTER-CHROOT = /tmp\n"
                                 "SERVER-COLOUR = red\nHost = mail\n"})
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        gcf, cf = os.path.join(m.cf, "main.gcf"), os.path.join(m.cf, "a.cf")
        for line in ("%s:2: Server-Stop-On-Softstop-After: keys are case-sensitive: this one is spelled "
                     "server-stop-on-softstop-after" % gcf,
                     "%s:2: Server-Proc-Count: keys are case-sensitive: this one is spelled server-proc-count" % cf,
                     "%s:3: MASTER-CHROOT: not supported: a chroot per service is not done" % cf,
                     "%s:4: SERVER-COLOUR: unknown key (keys starting with server- are reserved; a typo?)" % cf):
            self.assertIn("masterd: " + line, r.stderr)
        self.assertNotIn("Host", r.stderr)  # the program's key
        self.assertIn("4 errors", r.stderr)
        # A start refuses it the same way, before anything runs.
        r = m.run(timeout=10)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("Server-Proc-Count: keys are case-sensitive", r.stderr)


class ChildConfig(lib.MasterTest):
    """A child runs with what masterd validated, not with what the files say now."""

    def probe_cf(self, port, greeting, extra=""):
        return ("server-command = %s -k3 argv\nserver-service = 127.0.0.1:%d\nprobe-out = {dir}/events\n"
                "probe-print-keys = greeting,k3,k4\nk3 = cf\ngreeting = %s\n%s" % (PROBE, port, greeting, extra))

    def keys_of(self, m, pid):
        return [e for e in lib.probe_events(m.path("events")).get(pid, []) if e.startswith("key ")]

    def replace_child(self, m, port):
        old = m.children()[0]
        os.kill(old, signal.SIGKILL)
        new = lib.wait_until(lambda: (lambda k: k[0] if len(k) == 1 and k[0] != old else None)(m.children()),
                             10, what="a replacement child")
        lib.wait_until(lambda: any(e.startswith("before_service") for e in
                                   lib.probe_events(m.path("events")).get(new, [])), 5,
                       what="the replacement to start serving")
        return new

    def test_unreloaded_edit_does_not_reach_a_respawned_child(self):
        port = lib.free_port()
        m = self.master({"g.gcf": "k4 = gcf\n"})
        m.write("p.cf", self.probe_cf(port, "old"))
        m.start(expect_children=1)
        first = m.children()[0]
        lib.wait_until(lambda: self.keys_of(m, first), 5)
        self.assertEqual(self.keys_of(m, first), ["key greeting=old", "key k3=argv", "key k4=gcf"])
        # Edited, not reloaded: the replacement of a killed child still runs with "old".
        m.write("p.cf", self.probe_cf(port, "new"))
        m.write("g.gcf", "k4 = gcf-edited\n")
        second = self.replace_child(m, port)
        self.assertEqual(self.keys_of(m, second), ["key greeting=old", "key k3=argv", "key k4=gcf"])
        # A broken edit, not reloaded: no crash loop, the replacement serves with the old view.
        m.write("p.cf", self.probe_cf(port, "new", "just some words\n"))
        third = self.replace_child(m, port)
        self.assertEqual(self.keys_of(m, third), ["key greeting=old", "key k3=argv", "key k4=gcf"])
        self.assertEqual(lib.fetch(("127.0.0.1", port)).decode().split()[0], "pid=%d" % third)
        self.assertEqual(m.children(), [third])
        # The reload refuses the broken file, then takes the fixed one.
        m.signal(signal.SIGHUP)
        lib.wait_until(lambda: "nothing changed" in m.log(), 5)
        m.write("p.cf", self.probe_cf(port, "new"))
        m.signal(signal.SIGHUP)
        fourth = lib.wait_until(lambda: [p for p, ev in lib.probe_events(m.path("events")).items()
                                         if "key greeting=new" in ev], 10, what="a child with the new view")[0]
        self.assertEqual(self.keys_of(m, fourth), ["key greeting=new", "key k3=argv", "key k4=gcf-edited"])

    def test_child_never_opens_the_service_files(self):
        port = lib.free_port()
        m = self.master()
        m.write("p.cf", self.probe_cf(port, "old"))
        m.start(expect_children=1)
        first = m.children()[0]
        lib.wait_until(lambda: self.keys_of(m, first), 5)
        # Unreadable now (even a FIFO that would block any reader): the replacement does not care.
        os.unlink(os.path.join(m.cf, "p.cf"))
        os.mkfifo(os.path.join(m.cf, "p.cf"))
        second = self.replace_child(m, port)
        self.assertIn("key greeting=old", self.keys_of(m, second))


if __name__ == "__main__":
    unittest.main()
