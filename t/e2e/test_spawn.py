"""How masterd starts a child (libzserver/super/zs_spawn.c): clone(CLONE_VM|CLONE_VFORK) by
default, fork() with ZS_SPAWN=fork (and in AddressSanitizer builds, where ASan and a CLONE_VM
child on its own stack do not mix).  Both ways must give the same child (doc/CONTRACT.md §4:
test_core_fds runs again here on the fork path) and report a start that fails before exec the
same way: one log line naming the service, the child and the step, then the child's exit
(126 setup, 127 exec) seen as a failed start, with its backoff (§6).

Which way was taken is read from the debug line (-v) zs_spawn logs for every child after the
clone or fork call returned: `SERVICE: pid PID started with clone(CLONE_VM|CLONE_VFORK)`.
"""
import json
import os
import re
import shutil
import signal
import time
import unittest

import lib
import test_core_fds

FD = lib.FDSERVER
SAN = os.path.basename(lib.BUILD.rstrip("/")) == "build-san"
CLONE = "clone(CLONE_VM|CLONE_VFORK)"
ROOT_ONLY = unittest.skipUnless(os.geteuid() == 0, "needs root (masterd started as root): skipped as uid %d"
                                % os.geteuid())


def env_with(mode):
    env = dict(os.environ)
    env.pop("ZS_SPAWN", None)
    if mode == "fork":
        env["ZS_SPAWN"] = "fork"
    return env


def expected_method(mode):
    """The start the debug line must name for ZS_SPAWN=mode ('clone': unset)."""
    if mode == "fork":
        return "fork() (ZS_SPAWN=fork)"
    return "fork() (AddressSanitizer build)" if SAN else CLONE


class CapMaster(lib.Master):
    """masterd started as root without CAP_SETUID (setpriv), so a child's setuid() fails."""

    def cmdline(self, *extra):
        return ["setpriv", "--bounding-set=-setuid", "--"] + super().cmdline(*extra)


class Spawn(lib.MasterTest):

    def start_mode(self, mode, files, cls=lib.Master):
        m = cls(files, args=["-v"], env=env_with(mode))
        self.masters.append(m)
        return m

    def check_method(self, m, sid, mode, pids):
        log = m.log()
        for pid in pids:
            self.assertIn("%s: pid %d started with %s" % (sid, pid, expected_method(mode)), log)

    def check_path(self, mode):
        port = lib.free_port()
        m = self.start_mode(mode, {"s.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\n"
                                           "server-proc-count = 3\n" % (FD, port)})
        m.start()
        kids = m.wait_children(3)
        lib.wait_until(lambda: len(lib.started_pids(m.log(), "s")) == 3, 5, what="3 start lines")
        self.check_method(m, "s", mode, kids)
        # The child wrote LISTEN_PID itself (with clone: into our memory, before its exec).
        for _ in range(6):
            r = lib.report(("127.0.0.1", port))
            self.assertIn(r["pid"], kids)
            self.assertEqual(r["env"]["LISTEN_PID"], str(r["pid"]))
            self.assertEqual(r["sigblk"], "0" * 16)
        # Respawns take the same way.
        os.kill(kids[0], signal.SIGKILL)
        new = lib.wait_until(lambda: (lambda k: k if len(k) == 3 and kids[0] not in k else None)(m.children()), 5,
                             what="a replacement")
        (fresh,) = set(new) - set(kids)
        lib.wait_until(lambda: "s: pid %d started with" % fresh in m.log(), 5)
        self.check_method(m, "s", mode, [fresh])
        self.assertEqual(m.stop(), 0)

    def test_clone_is_the_default(self):
        self.check_path("clone")

    def test_fork_with_zs_spawn_fork(self):
        self.check_path("fork")

    # ---- a start that fails before exec: named, then a failed start with its backoff ----

    def failed_start(self, m, sid, line_re, code, remove):
        """Starts m, runs remove() once the service's child runs, kills the child; the next
        starts must fail, each with a log line matching line_re, exit `code` and back off."""
        m.start()
        (pid,) = m.wait_children(1)
        remove()
        os.kill(pid, signal.SIGKILL)
        return self.two_failures(m, sid, line_re, code)

    def two_failures(self, m, sid, line_re, code):
        """The pids of the first two starts that failed with a line matching line_re; each
        exited `code` and was followed by a backoff."""
        def failed():
            log = m.log()
            pids = [int(p) for p in re.findall(line_re, log)]
            if len(pids) >= 2 and all(re.search(r"%s: pid %d exited with status %d after" % (sid, p, code), log)
                                      for p in pids[:2]):
                return pids[:2]
            return None
        pids = lib.wait_until(failed, 5, what="two failed starts (%r, exit %d)" % (line_re, code))
        log = m.log()
        after = log[log.index("%s: child %d: " % (sid, pids[0])):]
        self.assertGreaterEqual(len(re.findall(r"%s: slot 1 failed \d+ times? in a row; next try in \d+ ms" % sid,
                                               after)), 2, log)
        return pids

    def check_missing_binary(self, mode):
        m = self.start_mode(mode, {})
        prog = m.path("prog")
        shutil.copy(FD, prog)
        m.write("x.cf", "server-command = %s\n" % prog)
        failed = self.failed_start(m, "x", r"x: child (\d+): execve %s: No such file or directory" % re.escape(prog),
                                   127, lambda: os.unlink(prog))
        self.check_method(m, "x", mode, failed)

    def check_missing_interpreter(self, mode):
        m = self.start_mode(mode, {})
        prog = m.path("prog.sh")
        with open(prog, "w") as f:
            f.write("#!/bin/sh\nexec sleep 1000\n")
        os.chmod(prog, 0o755)
        m.write("i.cf", "server-command = %s\n" % prog)

        def break_it():
            with open(prog, "w") as f:
                f.write("#!/nonexistent/sh -e\nexec sleep 1000\n")
        failed = self.failed_start(m, "i", r"i: child (\d+): execve %s: its interpreter /nonexistent/sh \(the #! line\): "
                                   r"No such file or directory" % re.escape(prog), 127, break_it)
        self.check_method(m, "i", mode, failed)
        # -t (and a reload) say it before any start.
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("server-command: '%s': its interpreter '/nonexistent/sh' (the #! line): No such file or "
                      "directory" % prog, r.stderr)

    def test_missing_interpreter_clone(self):
        self.check_missing_interpreter("clone")

    def test_missing_interpreter_fork(self):
        self.check_missing_interpreter("fork")

    def check_missing_chdir(self, mode):
        m = self.start_mode(mode, {})
        os.mkdir(m.path("cf", "work"))
        m.write("c.cf", "server-command = %s\nserver-chdir = work\n" % FD)
        failed = self.failed_start(m, "c", r"c: child (\d+): chdir for server-chdir: No such file or directory", 126,
                                   lambda: os.rmdir(m.path("cf", "work")))
        self.check_method(m, "c", mode, failed)

    def check_failed_setuid(self, mode):
        if not shutil.which("setpriv"):
            self.skipTest("needs setpriv(1) to start masterd without CAP_SETUID")
        m = self.start_mode(mode, {"u.cf": "server-command = %s\nserver-user = nobody\n" % FD}, cls=CapMaster)
        os.chmod(m.dir, 0o755)
        m.start()
        failed = self.two_failures(m, "u", r"u: child (\d+): setuid for server-user: Operation not permitted", 126)
        self.check_method(m, "u", mode, failed)

    def test_missing_binary_clone(self):
        self.check_missing_binary("clone")

    def test_missing_binary_fork(self):
        self.check_missing_binary("fork")

    def test_missing_chdir_clone(self):
        self.check_missing_chdir("clone")

    def test_missing_chdir_fork(self):
        self.check_missing_chdir("fork")

    @ROOT_ONLY
    def test_failed_setuid_clone(self):
        self.check_failed_setuid("clone")

    @ROOT_ONLY
    def test_failed_setuid_fork(self):
        self.check_failed_setuid("fork")


def control(m, line, timeout=10):
    """One request on m's control socket: the reply text."""
    return lib.fetch(m.pid_file[:-4] + ".ctl", timeout, send=line.encode() + b"\n").decode()


class LoopWhileStarting(lib.MasterTest):
    """Starts come in bounded batches (zs_sv_queue.c): while 1000 processes start, a signal and a
    control request are answered before the last one has started.  Not a timing: where the
    answers fall in the sequence of starts."""

    N = 1000

    def test_signal_and_status_answered_mid_start(self):
        m = self.master({"big.cf": "server-command = /bin/sleep 600\nserver-proc-count = %d\n" % self.N})
        m.start(wait_ready=False)
        ctlpath = m.pid_file[:-4] + ".ctl"
        lib.wait_until(lambda: os.path.exists(ctlpath) and "big: started pid" in m.log(), 10 * lib.SLOW,
                       interval=0.001, what="the control socket and the first start")
        m.signal(signal.SIGUSR1)
        reply = control(m, "status --json big")
        self.assertTrue(reply.endswith("status 0\n"), reply[-300:])
        (svc,) = json.loads(reply[:reply.rindex("status 0")])["services"]
        self.assertEqual(svc["wanted"], self.N)
        self.assertLess(svc["running"], self.N, "status answered only once every process had started")
        lib.wait_until(lambda: "log reopened" in m.log(), 10 * lib.SLOW, what="SIGUSR1's line")
        lib.wait_until(lambda: len(lib.started_pids(m.log(), "big")) == self.N, 120 * lib.SLOW,
                       interval=0.2, what="every start")
        log = m.log()
        before = len(lib.started_pids(log[:log.index("log reopened")], "big"))
        self.assertLess(before, self.N, "SIGUSR1 handled only once every process had started")
        print("SIGUSR1 answered after %d of %d starts; status saw %d running" % (before, self.N, svc["running"]))
        # Stopped by hand: lib's stop() walks /proc once per descendant, minutes for 1000 of them.
        m.signal(signal.SIGTERM)
        self.assertEqual(m.wait_exit(60), 0)


class CoreFdsOnTheForkPath(test_core_fds.CoreFds):
    """The whole fd/environment/signal contract of test_core_fds, with ZS_SPAWN=fork (the module
    itself runs on the default path)."""

    def setUp(self):
        super().setUp()
        old = os.environ.get("ZS_SPAWN")
        os.environ["ZS_SPAWN"] = "fork"
        self.addCleanup(lambda: os.environ.pop("ZS_SPAWN") if old is None else os.environ.update(ZS_SPAWN=old))


if __name__ == "__main__":
    unittest.main()
