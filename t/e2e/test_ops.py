"""Operator features (issues #15, #16 §3): relative paths from the config directory, bare unix
paths and lib-zc's master-* keys refused, server-chdir, server-stop-signal.

Every test runs masterd from a working directory that is NOT the config directory, as
general_master.sh does, so a path taken from the wrong place fails.
"""
import os
import signal
import stat
import subprocess

import lib
from lib import FDSERVER, MasterTest, wait_until

# A plain program (never says HELLO): records its working directory, then every stop signal it
# gets, and leaves 0.2 s after one (its "drain").
PLAIN = r"""#!/usr/bin/env python3
import os, signal, sys, time
out = sys.argv[1]
with open(out, "a") as f:
    f.write("cwd %s\n" % os.getcwd())
stop = []
def on(sig, frame):
    with open(out, "a") as f:
        f.write("signal %s\n" % signal.Signals(sig).name)
    stop.append(time.monotonic())
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(s, on)
while not stop or time.monotonic() - stop[0] < 0.2:
    time.sleep(0.02)
with open(out, "a") as f:
    f.write("drained\n")
"""


class Ops(MasterTest):
    def elsewhere(self, m):
        """A working directory for masterd that is neither the config dir nor its parent."""
        d = m.path("elsewhere")
        os.makedirs(d, exist_ok=True)
        m.cwd = d
        return m

    def plain(self, m):
        p = m.path("cf", "plain.py")
        with open(p, "w") as f:
            f.write(PLAIN)
        os.chmod(p, 0o755)
        return p

    def wait_ready(self, m, pid):
        """A plain program counts as ready after 1 s (masterd -v logs it)."""
        wait_until(lambda: "p: pid %d ready" % pid in m.log(), 5 * lib.SLOW, what="pid %d to be ready" % pid)

    def lines(self, path):
        try:
            with open(path) as f:
                return f.read().splitlines()
        except OSError:
            return []

    # ---- relative paths (CONTRACT §2) ----

    def test_relative_paths_from_config_dir(self):
        m = self.elsewhere(self.master())
        os.symlink(FDSERVER, m.path("cf", "fd"))
        os.mkdir(m.path("cf", "run"))
        m.write("a.cf", "server-command = ./fd serve\nserver-service = ./run/a.sock\n")
        r = m.run("-t")
        self.assertEqual(r.returncode, 0, r.stderr)
        m.start(expect_children=1)
        self.assertTrue(stat.S_ISSOCK(os.lstat(m.path("cf", "run", "a.sock")).st_mode))
        self.assertFalse(os.path.exists(m.path("elsewhere", "run")))
        rep = lib.report(m.path("cf", "run", "a.sock"))
        self.assertTrue(rep)

    def test_relative_path_errors_say_relative_to_what(self):
        m = self.elsewhere(self.master())
        cf = os.path.realpath(m.path("cf"))
        m.write("a.cf", "server-command = ./nothing-here\nserver-service = ./run/a.sock\n")
        r = m.run("-t")
        self.assertEqual(r.returncode, 2)
        self.assertIn("a.cf:1: server-command: './nothing-here' (relative to the config directory %s): "
                      "No such file or directory" % cf, r.stderr)
        self.assertIn("a.cf:2: server-service: './run/a.sock': directory '%s/run' does not exist "
                      "(relative to the config directory %s)" % (cf, cf), r.stderr)

    def test_relative_masterlog_for_a_server_in_its_chdir(self):
        """lib-zc's sample spelling `masterlog,./log.socket`: masterd binds it in the config dir,
        and the server, working in its server-chdir, is handed the absolute path."""
        m = self.elsewhere(self.master())
        os.mkdir(m.path("cf", "work"))
        port = lib.free_port()
        m.write("p.cf", "server-command = %s\nserver-service = 127.0.0.1:%d\nserver-chdir = work\n"
                        "server-log = masterlog,./log.socket\nprobe-out = %s\nprobe-log-lines = 2\n"
                        % (lib.tool("tlib_probe"), port, m.path("ev")))
        m.start(expect_children=1)
        (pid,) = m.children()
        self.assertTrue(stat.S_ISSOCK(os.lstat(m.path("cf", "log.socket")).st_mode))
        wait_until(lambda: "[p pid %d] " % pid in m.log() and "probe line 1 of 2" in m.log(), 5,
                   what="the server's lines through the masterlog socket")
        self.assertEqual(os.readlink("/proc/%d/cwd" % pid), os.path.realpath(m.path("cf", "work")))
        self.assertNotIn("server-log:", m.log())
        # A reload reads the same directory, whatever masterd's working directory.
        m.signal(signal.SIGHUP)
        wait_until(lambda: "reload: 0 started" in m.log(), 5, what="the reload")
        self.assertIn(pid, m.children())

    def test_general_master_from_another_directory(self):
        """The issue's case: `masterd -t` passes in the config dir, and general_master.sh (which
        runs masterd in WORK_DIR) starts the same config with its relative paths."""
        m = self.master()
        os.mkdir(m.path("cf", "run"))
        os.symlink(FDSERVER, m.path("cf", "fd"))
        m.write("a.cf", "server-command = ./fd serve\nserver-service = ./run/a.sock\n")
        r = subprocess.run([lib.MASTERD, "-C", ".", "-t"], cwd=m.path("cf"), capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        os.mkdir(m.path("work"))
        env = dict(os.environ, MASTERD=lib.MASTERD, CONFIG_DIR=m.path("cf"), PID_FILE=m.pid_file,
                   LOG=m.log_path, WORK_DIR=m.path("work"))
        script = os.path.join(lib.ROOT, "scripts", "general_master.sh")
        try:
            r = subprocess.run([script, "start"], env=env, cwd="/", capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            rep = wait_until(lambda: lib.report(m.path("cf", "run", "a.sock")), 5, what="the service to answer")
            self.assertTrue(rep)
        finally:
            r = subprocess.run([script, "stop"], env=env, cwd="/", capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    # ---- refused spellings (issue #16 §3) ----

    def test_bare_unix_path_refused_with_a_hint(self):
        m = self.master({"a.cf": "server-command = %s\nserver-service = imapd.sock\n" % FDSERVER})
        r = m.run("-t")
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"a\.cf:2: server-service: 'imapd\.sock': .*write local:imapd\.sock or "
                                   r"\./imapd\.sock")

    def test_master_chroot_and_chdir_refused(self):
        m = self.master({"a.cf": "server-command = %s\nmaster-chdir = /tmp\n" % FDSERVER,
                         "g.gcf": "master-chroot = /var/empty\n"})
        r = m.run("-t")
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"a\.cf:2: master-chdir: .*spelled server-chdir here")
        self.assertRegex(r.stderr, r"g\.gcf:1: master-chroot: not supported")

    # ---- server-chdir ----

    def test_server_chdir_relative_to_config_dir(self):
        m = self.elsewhere(self.master())
        script = self.plain(m)
        os.mkdir(m.path("cf", "work"))
        out = m.path("out")
        m.write("p.cf", "server-command = ./plain.py %s\nserver-chdir = work\n" % out)
        m.start(expect_children=1)
        wait_until(lambda: self.lines(out), 5, what="the program's first line")
        self.assertEqual(self.lines(out)[0], "cwd %s" % os.path.realpath(m.path("cf", "work")))
        self.assertTrue(script)

    def test_server_chdir_errors(self):
        m = self.elsewhere(self.master())
        cf = os.path.realpath(m.path("cf"))
        with open(m.path("cf", "file"), "w"):
            pass
        m.write("a.cf", "server-command = %s\nserver-chdir = missing\n" % FDSERVER)
        m.write("b.cf", "server-command = %s\nserver-chdir = file\n" % FDSERVER)
        m.write("c.cf", "server-command = %s\nserver-stop-signal = KILL\n" % FDSERVER)
        r = m.run("-t")
        self.assertEqual(r.returncode, 2)
        self.assertIn("a.cf:2: server-chdir: 'missing' (relative to the config directory %s): No such file "
                      "or directory" % cf, r.stderr)
        self.assertIn("b.cf:2: server-chdir: 'file' (relative to the config directory %s) is not a directory"
                      % cf, r.stderr)
        self.assertIn("c.cf:2: server-stop-signal: 'KILL': expected TERM, INT, QUIT, HUP, USR1 or USR2", r.stderr)

    # ---- server-stop-signal ----

    def stop_signal_case(self, key, want):
        m = self.elsewhere(self.master())
        self.plain(m)
        out = m.path("out")
        m.write("p.cf", "server-command = ./plain.py %s\nserver-stop-on-softstop-after = 5\n%s" % (out, key))
        m.args.append("-v")
        m.start(expect_children=1)
        first = m.children()[0]
        self.wait_ready(m, first)
        m.signal(signal.SIGUSR2)  # graceful restart: the old process gets the stop signal
        wait_until(lambda: "drained" in self.lines(out), 10, what="the old process to drain")
        self.assertIn("signal %s" % want, self.lines(out))
        self.assertEqual([x for x in self.lines(out) if x.startswith("signal")], ["signal %s" % want])
        wait_until(lambda: not lib.alive(first), 5, what="the old process to leave")
        self.assertNotIn("did not stop in time", m.log())

    def test_stop_signal_default_term(self):
        self.stop_signal_case("", "SIGTERM")

    def test_stop_signal_quit(self):
        self.stop_signal_case("server-stop-signal = QUIT\n", "SIGQUIT")

    def test_stop_signal_not_before_ready(self):
        """Retired in its first second (not ready: it may be a libzserver child that has not said
        HELLO yet), a process gets SIGTERM, never a signal whose default is a core dump."""
        m = self.elsewhere(self.master())
        self.plain(m)
        out = m.path("out")
        m.write("p.cf", "server-command = ./plain.py %s\nserver-stop-signal = QUIT\n" % out)
        m.start(expect_children=1)
        wait_until(lambda: self.lines(out), 5, what="the program to start")
        m.signal(signal.SIGUSR2)  # at once: the process is not ready yet (a plain program: 1 s)
        wait_until(lambda: "drained" in self.lines(out), 10, what="the old process to drain")
        self.assertEqual([x for x in self.lines(out) if x.startswith("signal")], ["signal SIGTERM"])

    def test_stop_signal_on_masterd_stop(self):
        m = self.elsewhere(self.master())
        self.plain(m)
        out = m.path("out")
        m.write("p.cf", "server-command = ./plain.py %s\nserver-stop-signal = SIGINT\n" % out)
        m.args.append("-v")
        m.start(expect_children=1)
        self.wait_ready(m, m.children()[0])
        self.assertEqual(m.stop(), 0)
        self.assertEqual([x for x in self.lines(out) if x.startswith("signal")], ["signal SIGINT"])
        self.assertIn("drained", self.lines(out))

    def test_libzserver_child_still_gets_softstop(self):
        """server-stop-signal is for plain programs: a libzserver child still gets SOFTSTOP (a
        SIGQUIT would kill the greeter at once, its default action)."""
        port = lib.free_port()
        m = self.master({"g.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\n"
                                 "server-stop-signal = QUIT\nserver-stop-on-softstop-after = 1\n"
                                 % (lib.sample("greeter"), port)}, args=["-v"])
        m.start(expect_children=1)
        old = m.children()[0]
        wait_until(lambda: "g: pid %d ready" % old in m.log(), 5 * lib.SLOW, what="the greeter to say READY")
        m.signal(signal.SIGUSR2)
        wait_until(lambda: not lib.alive(old), 10, what="the old greeter to stop")
        self.assertNotRegex(m.log(), r"pid %d .*signal" % old)

    # ---- process titles ----

    def test_process_title_names_service_and_generation(self):
        port = lib.free_port()
        greeter = lib.sample("greeter")
        m = self.master({"imapd.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\nbanner = * OK\n"
                                     % (greeter, port)})
        m.start(expect_children=1)

        def title(pid):
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                return f.read().split(b"\0")[0].decode()
        (pid,) = m.children()
        wait_until(lambda: title(pid) == "greeter: imapd gen 1", 5, what="the title of generation 1")
        # The environment still works (it moved to the heap): the greeter still answers.
        with lib.connect(("127.0.0.1", port)) as c:
            self.assertTrue(c.recv(100).startswith(b"* OK"))
        m.signal(signal.SIGUSR2)
        new = wait_until(lambda: [p for p in m.children() if p != pid and title(p) == "greeter: imapd gen 2"],
                         10, what="generation 2's title")
        self.assertEqual(len(new), 1)
        with open("/proc/%d/comm" % new[0]) as f:
            self.assertEqual(f.read().strip(), "greeter")  # comm stays the program's name
        # The title fit in the argument strings: the environment is still readable from /proc.
        self.assertTrue(any(e.startswith("PATH=") for e in lib.proc_environ(new[0])), lib.proc_environ(new[0]))

    def test_process_title_longer_than_the_arguments(self):
        """`greeter` found in PATH: its argument area is 8 bytes, the title runs on into the
        environment's and cmdline still shows all of it."""
        port = lib.free_port()
        env = dict(os.environ, PATH=os.path.dirname(lib.sample("greeter")) + ":" + os.environ.get("PATH", ""))
        m = self.master({"imapd.cf": "server-command = greeter\nserver-service = 127.0.0.1:%d\nbanner = * OK\n"
                                     % port}, env=env)
        m.start(expect_children=1)
        (pid,) = m.children()

        def cmdline():
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                return f.read()
        wait_until(lambda: cmdline().split(b"\0")[0] == b"greeter: imapd gen 1", 5, what="the whole title")
        with lib.connect(("127.0.0.1", port)) as c:
            self.assertTrue(c.recv(100).startswith(b"* OK"))
