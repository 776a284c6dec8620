"""masterd core, start-up (doc/CONTRACT.md §1-§3): arguments, the pid-file lock and --try-lock, -t,
configuration errors, bind failures (all or nothing), unix socket files.

A service whose command is `/usr/bin/touch DIR/marker-ID` is a spawn detector: if masterd ever
starts it, the marker file appears.
"""
import os
import re
import socket
import subprocess
import time

import lib

FD = lib.FDSERVER
TOUCH = "/usr/bin/touch"



def can_bind(host, port):
    return lib.can_bind(port, host)


def detector(sid, listen=""):
    """A .cf whose process, if ever started, leaves DIR/marker-SID behind."""
    return "server-command = %s {dir}/marker-%s\n%s" % (
        TOUCH, sid, "server-service = %s\n" % listen if listen else "")


class CoreCli(lib.MasterTest):

    def markers(self, m):
        return sorted(f for f in os.listdir(m.dir) if f.startswith("marker-"))

    # ---- arguments ----

    def test_arguments(self):
        m = self.master({"a.cf": "server-command = %s\n" % FD})
        r = m.run("--bogus-flag")
        self.assertEqual(r.returncode, 1)
        self.assertIn("--bogus-flag", r.stderr)
        r = m.run("stray")
        self.assertEqual(r.returncode, 1)
        self.assertIn("'stray'", r.stderr)
        r = subprocess.run([lib.MASTERD, "--version"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^masterd \d+\.\d+\.\d+\n$")
        r = subprocess.run([lib.MASTERD, "-h"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0)
        for word in ("usage", "-C", "-pid-file", "--try-lock", "-t", "-log"):
            self.assertIn(word, r.stdout)
        r = subprocess.run([lib.MASTERD], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("-C", r.stderr)
        r = subprocess.run([lib.MASTERD, "-C"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("-C", r.stderr)
        r = subprocess.run([lib.MASTERD, "--try-lock"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("-pid-file", r.stderr)
        r = m.run("-log", "nowhere")
        self.assertEqual(r.returncode, 1)
        self.assertIn("nowhere", r.stderr)
        self.assertFalse(os.path.exists(m.pid_file))

    # ---- the pid-file lock ----

    def test_second_master_refused(self):
        p1, p2 = lib.free_port(), lib.free_port()
        m1 = self.master({"a.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\n" % (FD, p1)}).start()
        (kid,) = m1.wait_children(1)
        m2 = self.master({"b.cf": detector("b", "127.0.0.1:%d, {dir}/b.sock" % p2)})
        m2.pid_file = m1.pid_file
        with open(m1.pid_file) as f:
            before = f.read()
        self.assertEqual(before, "%d\n" % m1.pid)
        t0 = time.monotonic()
        r = m2.run()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertLess(time.monotonic() - t0, 3.0)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("another masterd", lines[0])
        self.assertIn("pid %d" % m1.pid, lines[0])
        self.assertIn(m1.pid_file, lines[0])
        self.assertTrue(can_bind("127.0.0.1", p2), "second master bound its address")
        self.assertFalse(os.path.exists(m2.path("b.sock")))
        self.assertEqual(self.markers(m2), [])
        with open(m1.pid_file) as f:
            self.assertEqual(f.read(), before)
        self.assertEqual(lib.report(("127.0.0.1", p1))["pid"], kid)
        self.assertEqual(m1.children(), [kid])
        # -t needs no lock and leaves the running master's pid file alone.
        r = m2.run("-t")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(m1.pid_file) as f:
            self.assertEqual(f.read(), before)
        self.assertEqual(m2.run("--try-lock").returncode, 1)

    def test_try_lock(self):
        m = self.master({"a.cf": "server-command = %s\n" % FD})
        r = m.run("--try-lock")
        self.assertEqual((r.returncode, r.stdout), (0, ""))
        self.assertFalse(os.path.exists(m.pid_file), "--try-lock created the pid file")
        with open(m.pid_file, "w") as f:
            f.write("12345\n")
        st = os.stat(m.pid_file)
        self.assertEqual(m.run("--try-lock").returncode, 0)
        with open(m.pid_file) as f:
            self.assertEqual(f.read(), "12345\n")
        self.assertEqual(os.stat(m.pid_file).st_mtime_ns, st.st_mtime_ns)
        m.start()
        m.wait_children(1)
        with open(m.pid_file) as f:
            held = f.read()
        self.assertEqual(held, "%d\n" % m.pid)
        st = os.stat(m.pid_file)
        for _ in range(3):
            self.assertEqual(m.run("--try-lock").returncode, 1)
        with open(m.pid_file) as f:
            self.assertEqual(f.read(), held)
        self.assertEqual((os.stat(m.pid_file).st_mtime_ns, os.stat(m.pid_file).st_size), (st.st_mtime_ns, st.st_size))
        # Probes racing a starting master: it retries the lock instead of giving up.
        m.stop()
        m2 = self.master({"a.cf": "server-command = %s\n" % FD})
        m2.pid_file = m.pid_file
        probe = subprocess.Popen(["sh", "-c", "i=0; while [ $i -lt 300 ]; do %s --try-lock -pid-file %s; "
                                  "i=$((i+1)); done" % (lib.MASTERD, m.pid_file)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            m2.start()
            m2.wait_children(1)
        finally:
            probe.kill()
            probe.wait()
        self.assertEqual(m2.proc.poll(), None, m2.log())
        self.assertEqual(m2.run("--try-lock").returncode, 1)
        self.assertEqual(m2.stop(), 0)
        self.assertEqual(m2.run("--try-lock").returncode, 0)

    # ---- -t ----

    def test_check_good_dir(self):
        p = lib.free_port()
        m = self.master({
            "all.gcf": "server-proc-count = 2\nhost = linuxmail.cn\n",
            "a.cf": detector("a", "127.0.0.1:%d, v6://[::1]:%d" % (p, p)) +
                    "server-service = local:{dir}/a.sock\nabc = xxx\n",
            "b.cf": detector("b", "{dir}/b.sock") + "server-restart = on-failure\nserver-proc-count = 3\n",
            "ignored.txt": "not a service\n",
        })
        r = m.run("-t")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration ok", r.stdout)
        self.assertEqual(r.stderr, "")
        self.assertEqual(self.markers(m), [])
        self.assertTrue(can_bind("127.0.0.1", p) and can_bind("::1", p))
        self.assertFalse(os.path.exists(m.path("a.sock")) or os.path.exists(m.path("b.sock")))
        self.assertFalse(os.path.exists(m.pid_file))

    def test_service_id_from_file_name_is_checked(self):
        # The id goes into LISTEN_FDNAMES (':'-separated) and every log line: a ':' or a newline
        # in a file name is a config error, shown without the raw control character.
        m = self.master({"a:b.cf": "server-command = %s\n" % FD, "x\ny.cf": "server-command = %s\n" % FD,
                         "ok-1.2_x.cf": "server-command = %s\n" % FD})
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("a:b.cf: the file name makes the service id 'a:b', which may hold only letters", r.stderr)
        self.assertIn("x?y.cf: the file name makes the service id 'x?y'", r.stderr)
        self.assertEqual(r.stderr.count("\n"), 3, r.stderr)
        self.assertNotIn("ok-1.2_x", r.stderr)

    def test_overlap_errors_match_pairwise_rule(self):
        """Duplicate and wildcard/specific overlaps among many entries (seeded, 3 rounds): masterd -t
        reports, for each entry that overlaps an earlier one, exactly the first such entry, as a
        comparison of every pair in listing order would."""
        import random
        ports = [lib.free_port() for _ in range(3)]
        addrs = ["127.0.0.1", "0.0.0.0", "127.0.0.2", "[::1]", "[::]"]
        seen = set()
        for seed in (1, 2, 3):
            rnd = random.Random(seed)
            files, entries = {}, []   # entries: (file, line, text, family, addr, port) in listing order
            for f in range(6):
                name = "s%d.cf" % f
                lines = ["server-command = %s" % FD]
                mine = set()
                for _ in range(rnd.randint(1, 4)):
                    a, p = rnd.choice(addrs), rnd.choice(ports)
                    fam = "6" if a.startswith("[") else "4"
                    if (fam, p) in mine:
                        continue  # one file's own overlaps are the service check's (test_service.c)
                    mine.add((fam, p))
                    lines.append("server-service = %s:%d" % (a, p))
                    entries.append((name, len(lines), "%s:%d" % (a, p), "6" if a.startswith("[") else "4",
                                    a, p))
                files[name] = "\n".join(lines) + "\n"
            want = []
            for i, x in enumerate(entries):
                for y in entries[:i]:
                    if x[3] == y[3] and x[5] == y[5] and (x[4] == y[4] or x[4] in ("0.0.0.0", "[::]")
                                                          or y[4] in ("0.0.0.0", "[::]")):
                        want.append("%s:%d: server-service: '%s' %s" % (
                            x[0], x[1], x[2], "is already listed at" if x[4] == y[4] else "overlaps '%s' at" % y[2]))
                        want[-1] += " %s:%d" % (y[0], y[1])
                        break
            m = self.master(files)
            r = m.run("-t")
            self.assertEqual(r.returncode, 2 if want else 0, r.stderr)
            got = [re.sub(r"^.*?(s\d\.cf:\d+: )", r"\1", line) for line in r.stderr.splitlines()
                   if "server-service:" in line]
            got = [re.sub(r"(at )\S*/(s\d\.cf:\d+).*", r"\1\2", g) for g in got]
            self.assertEqual(got, want, "seed %d" % seed)
            seen.update("overlaps" if "overlaps" in w else "listed" for w in want)
        self.assertEqual(seen, {"overlaps", "listed"}, "the seeds exercise both kinds of clash")

    def test_check_bad_dirs(self):
        p = lib.free_port()
        long_list = ", ".join("127.0.0.1:%d" % (20000 + i) for i in range(20))
        cases = {
            "missing command": ({"x.cf": "server-service = 127.0.0.1:%d\n" % p},
                                [r"x\.cf\b.*server-command"]),
            "command not executable": ({"x.cf": "server-command = {dir}/cf/notexec.txt\n",
                                        "notexec.txt": "#!/bin/sh\n"},
                                       [r"x\.cf:1: server-command"]),
            "command not found": ({"x.cf": "server-command = no-such-program-zz\n"},
                                  [r"x\.cf:1: server-command.*no-such-program-zz"]),
            "bad port": ({"x.cf": "server-command = %s\nserver-service = 127.0.0.1:99999\n" % FD},
                         [r"x\.cf:2: server-service.*99999"]),
            "port junk": ({"x.cf": "server-command = %s\nserver-service = 127.0.0.1:80x\n" % FD},
                          [r"x\.cf:2: server-service.*80x"]),
            "duplicate across files": ({
                "a.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\n" % (FD, p),
                "b.cf": "server-command = %s\n# comment\nserver-service = x://127.0.0.1:%d\n" % (FD, p),
            }, [r"b\.cf:3: server-service.*already listed at .*a\.cf:2"]),
            "duplicate unix path spelled twice": ({
                "a.cf": "server-command = %s\nserver-service = {dir}/s.sock\n" % FD,
                "b.cf": "server-command = %s\nserver-service = local:{dir}/./s.sock\n" % FD,
            }, [r"b\.cf:2: .*a\.cf:2"]),
            "unknown server key": ({"x.cf": "server-command = %s\nserver-proc-cont = 2\n" % FD},
                                   [r"x\.cf:2: server-proc-cont: unknown key"]),
            "line too long": ({"x.cf": "server-command = %s\nserver-service = %s\n" % (FD, long_list)},
                              [r"x\.cf:2: line too long"]),
            "hostname": ({"x.cf": "server-command = %s\nserver-service = localhost:%d\n" % (FD, p)},
                         [r"x\.cf:2: server-service.*localhost.*not a numeric"]),
            "missing unix dir": ({"x.cf": "server-command = %s\nserver-service = {dir}/nope/x.sock\n" % FD},
                                 [r"x\.cf:2: server-service.*nope.*does not exist"]),
            "proc count zero": ({"x.cf": "server-command = %s\nserver-proc-count = 0\n" % FD},
                                [r"x\.cf:2: server-proc-count"]),
            "proc count junk": ({"x.cf": "server-command = %s\nserver-proc-count = 2x\n" % FD},
                                [r"x\.cf:2: server-proc-count"]),
            "proc count too big": ({"x.cf": "server-command = %s\nserver-proc-count = 4097\n" % FD},
                                   [r"x\.cf:2: server-proc-count"]),
            "bad restart": ({"x.cf": "server-command = %s\nserver-restart = sometimes\n" % FD},
                            [r"x\.cf:2: server-restart"]),
            "every error at once": ({
                "a.cf": "server-command = %s\nserver-service = 127.0.0.1:0\nserver-colour = red\n" % FD,
                "b.cf": "server-service = bad.host.example:25\nserver-proc-count = -1\n",
            }, [r"a\.cf:2: server-service", r"a\.cf:3: server-colour", r"b\.cf:1: server-service",
                r"b\.cf:2: server-proc-count", r"b\.cf\b.*server-command"]),
        }
        for name, (files, patterns) in cases.items():
            with self.subTest(name):
                m = self.master(files)
                r = m.run("-t")
                self.assertEqual(r.returncode, 2, "%s: %r %r" % (name, r.stdout, r.stderr))
                self.assertNotIn("configuration ok", r.stdout)
                for pat in patterns:
                    self.assertRegex(r.stderr, pat)
                # Starting on the same dir fails the same way, binding and spawning nothing.
                r2 = m.run()
                self.assertEqual(r2.returncode, 2, r2.stderr)
                for pat in patterns:
                    self.assertRegex(r2.stderr, pat)
                self.assertFalse(os.path.exists(m.pid_file))

    # ---- start-up failures: all or nothing ----

    def test_bad_config_at_start_binds_and_spawns_nothing(self):
        p = lib.free_port()
        m = self.master({
            "a.cf": detector("a", "127.0.0.1:%d, {dir}/a.sock" % p),
            "z.cf": detector("z") + "server-restart = maybe\n",
        })
        r = m.run()
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"z\.cf:2: server-restart")
        self.assertEqual(self.markers(m), [])
        self.assertTrue(can_bind("127.0.0.1", p))
        self.assertFalse(os.path.exists(m.path("a.sock")))
        self.assertFalse(os.path.exists(m.pid_file))

    def test_port_in_use(self):
        p1, busy, p3 = lib.free_port(), lib.free_port(), lib.free_port()
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", busy))
        holder.listen(1)
        self.addCleanup(holder.close)
        m = self.master({
            "a.cf": detector("a", "127.0.0.1:%d, [::1]:%d, {dir}/a.sock, fifo:{dir}/a.fifo" % (p1, p1)),
            "b.cf": detector("b", "[::1]:%d, 127.0.0.1:%d" % (busy, busy)),
            "c.cf": detector("c", "127.0.0.1:%d, {dir}/c.sock" % p3),
        })
        r = m.run()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("127.0.0.1:%d" % busy, r.stderr)
        self.assertRegex(r.stderr, r"(?i)in use")
        self.assertIn("%s:2: server-service: 127.0.0.1:%d" % (os.path.join(m.cf, "b.cf"), busy), r.stderr)
        self.assertEqual(self.markers(m), [])
        for host, port in (("127.0.0.1", p1), ("::1", p1), ("::1", busy), ("127.0.0.1", p3)):
            self.assertTrue(can_bind(host, port), "%s:%d left bound" % (host, port))
        for f in ("a.sock", "c.sock", "a.fifo"):
            self.assertFalse(os.path.exists(m.path(f)), "%s left behind" % f)
        self.assertFalse(os.path.exists(m.pid_file))
        self.assertEqual(m.run("--try-lock").returncode, 0)

    def test_unix_socket_in_use_by_another_process(self):
        m = self.master({"a.cf": detector("a", "127.0.0.1:%d, {dir}/a.sock" % lib.free_port())})
        other = socket.socket(socket.AF_UNIX)
        other.bind(m.path("a.sock"))
        other.listen(1)
        self.addCleanup(other.close)
        r = m.run()
        self.assertEqual(r.returncode, 1)
        self.assertIn(m.path("a.sock"), r.stderr)
        self.assertIn("in use", r.stderr)
        self.assertTrue(os.path.exists(m.path("a.sock")), "a live socket file was removed")
        c = socket.socket(socket.AF_UNIX)
        c.connect(m.path("a.sock"))  # still the other process's socket
        c.close()
        self.assertEqual(self.markers(m), [])

    # ---- unix socket files ----

    def test_stale_unix_socket_replaced(self):
        m = self.master({"s.cf": "server-command = %s\nserver-service = {dir}/s.sock\n" % FD})
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(m.path("s.sock"))
        stale.close()  # the file stays: a socket nobody listens on
        m.start()
        (kid,) = m.wait_children(1)
        self.assertEqual(lib.report(m.path("s.sock"))["pid"], kid)
        self.assertEqual(os.stat(m.path("s.sock")).st_mode & 0o777, 0o666)
        self.assertEqual(m.stop(), 0)
        self.assertFalse(os.path.exists(m.path("s.sock")))

    def test_regular_file_at_unix_path_never_removed(self):
        m = self.master({"r.cf": detector("r", "{dir}/r.sock")})
        with open(m.path("r.sock"), "w") as f:
            f.write("precious\n")
        r = m.run()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(m.path("r.sock"), r.stderr)
        self.assertIn("not a socket", r.stderr)
        with open(m.path("r.sock")) as f:
            self.assertEqual(f.read(), "precious\n")
        self.assertEqual(self.markers(m), [])
        self.assertFalse(os.path.exists(m.pid_file))


if __name__ == "__main__":
    import unittest
    unittest.main()
