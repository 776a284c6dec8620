"""masterd core, what a child is given (doc/CONTRACT.md §4): fds, environment, process group, signal
state, parent-death signal; proc counts and every address family; respawn of a killed child;
no periodic wakeups of an idle master.

Every check looks at the real child from the outside (/proc) or asks it (t/tools/fdserver).
"""
import os
import signal
import sys
import time

import lib

FD = lib.FDSERVER

# masterd is started with SIGQUIT ignored and SIGWINCH blocked: a child must not inherit either.
SIGWRAP = ("import os, signal, sys\n"
           "signal.signal(signal.SIGQUIT, signal.SIG_IGN)\n"
           "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGWINCH])\n"
           "os.execv(sys.argv[1], sys.argv[1:])\n")


class WrappedMaster(lib.Master):
    """A Master exec'd through a small wrapper that leaves odd signal state behind."""

    def cmdline(self, *extra):
        return [sys.executable, "-c", SIGWRAP] + super().cmdline(*extra)


def env_of(pid):
    """(dict, list of names) of pid's exec environment."""
    items = lib.proc_environ(pid)
    return dict(e.partition("=")[::2] for e in items), [e.partition("=")[0] for e in items]


def fd_flags(pid, fd):
    with open("/proc/%d/fdinfo/%d" % (pid, fd)) as f:
        for line in f:
            if line.startswith("flags:"):
                return int(line.split()[1], 8)
    return None


class CoreFds(lib.MasterTest):

    def children_by_service(self, m, total):
        """{service id: [pids]} from the 'started pid' lines of the children now alive."""
        def grouped():
            kids = m.wait_children(total)
            out = {}
            for pid in kids:
                env, _ = env_of(pid)
                if "ZMASTER_CONFIG" not in env:
                    return None  # forked but not exec'd yet: still masterd's environment
                out.setdefault(os.path.basename(env["ZMASTER_CONFIG"])[:-3], []).append(pid)
            return out
        return lib.wait_until(grouped, 5, what="every child exec'd")

    def test_fd_contract_env_pgrp_sigmask(self):
        port = lib.free_port()
        sock = "{dir}/a.sock"
        env = dict(os.environ, LISTEN_FDS="9", LISTEN_PID="1", LISTEN_FDNAMES="bogus",
                   ZMASTER_GENERATION="77", ZMASTER_STATUS_FD="99")
        m = WrappedMaster({
            "a.cf": "server-command = %s serve  x\ty\n"
                    "server-service = 127.0.0.1:%d, six://[::1]:%d\n"
                    "server-service = %s\n"
                    "server-proc-count = 2\n" % (FD, port, port, sock),
            "b.cf": "server-command = %s serve\n" % FD,
        }, env=env)
        self.masters.append(m)
        m.start()
        svc = self.children_by_service(m, 3)
        self.assertEqual(len(svc.get("a", [])), 2, svc)
        self.assertEqual(len(svc.get("b", [])), 1, svc)
        sock = m.path("a.sock")
        master_fds = lib.fd_links(m.pid)

        # Every address family answers, each time from one of a's processes.
        for addr in (("127.0.0.1", port), ("::1", port), sock):
            r = lib.report(addr)
            self.assertIn(r["pid"], svc["a"], addr)
            self.assertEqual(r["argv"], "%s serve x y" % FD)
            self.assertEqual(r["sigblk"], "0" * 16, "signal mask not reset (%s)" % (addr,))
            self.assertEqual(r["sigign"], "0" * 16, "ignored signals not reset (%s)" % (addr,))

        def settled_fds(pid):
            # fdserver reads its own /proc/self/status and lists /proc/self/fd once at start-up; a
            # slow (sanitizer) build may still hold one open: wait until it has finished looking
            # at itself.
            own = "/proc/%d/" % pid
            return lib.wait_until(lambda: (lambda f: f if not any(v.startswith(own) for v in f.values()) else None)(
                lib.fd_links(pid)), 5, what="fdserver %d done reading its own /proc files" % pid)

        for pid in svc["a"]:
            fds = settled_fds(pid)
            self.assertEqual(sorted(fds), [0, 1, 2, 3, 4, 5, 6], fds)
            self.assertEqual(fds[0], "/dev/null")
            # stdout and stderr: one pipe whose read end masterd holds (it relays the lines).
            self.assertEqual(fds[1], fds[2])
            self.assertTrue(fds[1].startswith("pipe:"), fds[1])
            self.assertIn(fds[1], lib.fd_links(m.pid).values())
            self.assertEqual(lib.socket_info(pid, fds[3]), ("tcp", port))
            self.assertEqual(lib.socket_info(pid, fds[4]), ("tcp6", port))
            self.assertEqual(lib.socket_info(pid, fds[5]), ("unix", 1, sock))
            self.assertEqual(lib.socket_info(pid, fds[6])[:2], ("unix", 5), "status channel not SEQPACKET")
            for fd in (3, 4, 5):
                self.assertTrue(fd_flags(pid, fd) & os.O_NONBLOCK, "listener %d blocking in the child" % fd)
            env, names = env_of(pid)
            for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "ZMASTER_STATUS_FD", "ZMASTER_GENERATION",
                      "ZMASTER_CONFIG_PATH", "ZMASTER_CONFIG"):
                self.assertEqual(names.count(k), 1, "%s appears %d times" % (k, names.count(k)))
            self.assertEqual(env["LISTEN_FDS"], "3")
            self.assertEqual(env["LISTEN_PID"], str(pid))
            self.assertEqual(env["LISTEN_FDNAMES"], "a:six:a")
            self.assertEqual(env["ZMASTER_STATUS_FD"], "6")
            self.assertEqual(env["ZMASTER_GENERATION"], "1")
            self.assertEqual(env["ZMASTER_CONFIG_PATH"], m.cf)
            self.assertEqual(env["ZMASTER_CONFIG"], os.path.join(m.cf, "a.cf"))
            state, ppid, pgrp = lib.proc_stat(pid)
            self.assertEqual(ppid, m.pid)
            self.assertEqual(pgrp, pid, "child does not lead its own process group")
            st = lib.proc_status(pid)
            self.assertEqual(int(st["SigBlk"], 16), 0)
            # fdserver itself ignores SIGPIPE after its report; nothing else may be ignored.
            self.assertEqual(int(st["SigIgn"], 16) & ~(1 << (signal.SIGPIPE - 1)), 0, st["SigIgn"])

        # A service without listeners: LISTEN_FDS=0 and the status channel at fd 3.
        (pid,) = svc["b"]
        fds = settled_fds(pid)
        self.assertEqual(sorted(fds), [0, 1, 2, 3], fds)
        self.assertEqual(lib.socket_info(pid, fds[3])[:2], ("unix", 5))
        env, _ = env_of(pid)
        self.assertEqual((env["LISTEN_FDS"], env["LISTEN_PID"], env["LISTEN_FDNAMES"], env["ZMASTER_STATUS_FD"]),
                         ("0", str(pid), "", "3"))
        self.assertEqual(lib.proc_stat(pid)[2], pid)

    def test_proc_count_and_families(self):
        p4, p6 = lib.free_port(), lib.free_port()
        m = self.master({
            "multi.cf": "server-command = %s\n"
                        "server-service = 127.0.0.1:%d, [::1]:%d, local:{dir}/m.sock\n"
                        "server-proc-count = 4\n" % (FD, p4, p6),
        }).start()
        kids = m.wait_children(4)
        # Same count stays: nothing extra gets spawned once the slots are full.  (A start is
        # logged once fork returned: the 4th child may be seen before its line.)
        lib.wait_until(lambda: m.log().count("multi: started pid") >= 4, 5, what="4 start lines")
        self.assertEqual(m.log().count("multi: started pid"), 4, m.log())
        seen = set()
        for addr in (("127.0.0.1", p4), ("::1", p6), m.path("m.sock")) * 3:
            r = lib.report(addr)
            self.assertIn(r["pid"], kids)
            self.assertEqual(r["env"]["LISTEN_FDNAMES"], "multi:multi:multi")
            seen.add(r["pid"])
        self.assertTrue(seen)
        # Each process holds the same three listening sockets (once it runs the program: between
        # fork and exec a child still has masterd's fds).
        for pid in kids:
            lib.wait_until(lambda: os.readlink("/proc/%d/exe" % pid) == os.path.realpath(FD), 5,
                           what="child %d to exec" % pid)
        inodes = {tuple(lib.fd_links(pid)[fd] for fd in (3, 4, 5)) for pid in kids}
        self.assertEqual(len(inodes), 1, inodes)

    def test_killed_child_replaced_within_1s(self):
        port = lib.free_port()
        m = self.master({"k.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\n" % (FD, port)}).start()
        (old,) = m.wait_children(1)
        self.assertEqual(lib.report(("127.0.0.1", port))["pid"], old)
        for _ in range(2):  # twice: the second kill hits a child that failed young (backoff 100 ms)
            os.kill(old, signal.SIGKILL)
            t0 = time.monotonic()
            new = lib.wait_until(lambda: (lambda p: p if p != old else None)(
                lib.report(("127.0.0.1", port), timeout=1.0)["pid"]), 1.0, what="a new pid to answer")
            self.assertLess(time.monotonic() - t0, 1.0)
            self.assertIn(new, m.children())
            self.assertFalse(lib.alive(old))
            old = new
        self.assertIn("k: pid", m.log())
        self.assertIn("killed by signal 9", m.log())

    def test_pdeathsig_when_master_killed(self):
        m = self.master({
            "plain.cf": "server-command = %s\n" % FD,
            "asuser.cf": "server-command = %s\nserver-user = nobody\n" % FD,
        }).start()
        kids = m.wait_children(2)
        nobody = [p for p in kids if lib.proc_status(p)["Uid"].split()[0] != "0"]
        self.assertEqual(len(nobody), 1, "server-user child not running as nobody")
        m.known.update(kids)
        m.proc.kill()
        m.proc.wait(5)
        t0 = time.monotonic()
        try:
            lib.wait_until(lambda: not any(lib.alive(p) for p in kids), 1.0,
                           what="children to exit after masterd was SIGKILLed")
        except AssertionError as e:
            raise AssertionError("%s; still alive: %r" % (e, [
                (p, lib.proc_status(p)["Uid"]) for p in kids if lib.alive(p)])) from None
        self.assertLess(time.monotonic() - t0, 1.0)

    def test_log_file_is_not_the_childs_stdout(self):
        """The child writes to a pipe masterd reads, never to masterd's log file itself (which
        it could truncate or seek)."""
        m = self.master({"lf.cf": "server-command = %s\n" % FD})
        target = m.path("file.log")
        m.args += ["-log", "file," + target]
        m.start(wait_ready=False)
        lib.wait_until(lambda: os.path.exists(target) and "started" in open(target).read(), 5,
                       what="masterd to log to its file")
        (kid,) = m.wait_children(1)
        # Audit the program, not the child between fork and exec (it still has masterd's fds).
        lib.wait_until(lambda: os.readlink("/proc/%d/exe" % kid) == os.path.realpath(FD), 5,
                       what="the child to exec")
        fds = lib.fd_links(kid)
        self.assertEqual(fds[0], "/dev/null")
        self.assertEqual(fds[1], fds[2])
        self.assertTrue(fds[1].startswith("pipe:"), fds[1])
        self.assertNotIn(target, fds.values())
        self.assertEqual(sorted(fds), [0, 1, 2, 3])

    def test_idle_master_does_not_wake_up(self):
        port = lib.free_port()
        m = self.master({"idle.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\n" % (FD, port)},
                        args=["-v"]).start()
        m.wait_children(1)
        # Ready (1 s for a program that never speaks): from then on nothing is due.
        lib.wait_until(lambda: "idle: pid" in m.log() and " ready" in m.log(), 5, what="child ready")
        self.assertEqual(lib.report(("127.0.0.1", port))["ppid"], m.pid)
        woke = lib.wakeups(m.pid, 2.0)
        self.assertLessEqual(woke, 1, "masterd woke up %d times in 2 s while idle" % woke)


if __name__ == "__main__":
    import unittest
    unittest.main()
