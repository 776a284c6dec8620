"""Fault: what a hostile tester who had not seen the suite broke (each failed before its fix).

- a child passing lingering TCP sockets over the masterlog socket froze the loop in close();
- a child re-sending STOPPING kept moving its own kill deadline, so stop never ended;
- masterd blocked writing its own log to a stderr pipe whose reader stalled;
- a fifo put where the log file was hung masterd in open() on SIGUSR1 (and at start);
- a child that detaches after a second piled detached processes up without backoff;
- (round 6) a status record of no bytes ended the channel, so the child's READY was never read;
- (round 6) raw control bytes reached masterd's log and -t's stderr: a command path that failed
  exec, a config value or file name quoted in an error.
"""
import json
import os
import signal
import subprocess
import time

import lib


LINGER_CHILD = r'''#!/usr/bin/env python3
import os, socket, struct, sys, time
path, done = sys.argv[1], sys.argv[2]
d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for i in range(300):  # masterd reads the descriptors only after we dropped our copies
    d.sendto(b"junk %d" % i, path)
keep, sent, refused = [], 0, 0
for j in range(6):
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ls.bind(("127.0.0.1", 0)); ls.listen(1); keep.append(ls)
    c = socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    c.connect(ls.getsockname()); c.setblocking(False)
    try:
        while True:
            c.send(b"x" * 65536)
    except BlockingIOError:
        pass
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 20))
    try:
        d.sendmsg([b"fd %d" % j], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", c.fileno()))], 0, path)
        sent += 1
    except OSError:
        refused += 1  # then our close is the last one: do not linger in it ourselves
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
open(done + ".tmp", "w").write("sent=%d refused=%d\n" % (sent, refused)); os.rename(done + ".tmp", done)
time.sleep(300)
'''

STOPPING_LIAR = lib.CHANNEL_CHILD + r'''signal.signal(signal.SIGTERM, signal.SIG_IGN)
rec(1, os.getpid()); rec(2)
value = int(sys.argv[1])
while True:
    r = s.recv(64)
    if not r:
        break
    if struct.unpack_from("<I", r, 4)[0] == 100:  # SOFTSTOP: announce again and again
        for _ in range(600):
            rec(3, value); time.sleep(1)
time.sleep(600)
'''

LATE_READY = lib.CHANNEL_CHILD + r'''signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(os.environ["MARK"], "w").close()
rec(1, os.getpid())
time.sleep(3)
rec(2)  # READY, long after it was told to stop
time.sleep(600)
'''

EMPTY_RECORD = lib.CHANNEL_CHILD + r'''rec(1, os.getpid())
s.send(b"")  # a record of no bytes: malformed, not the end of the channel
time.sleep(0.2)
rec(2)
time.sleep(1000)
'''
MASTERCTL = os.path.join(lib.BUILD, "masterd", "masterctl")

DETACHER = lib.CHANNEL_CHILD + r'''rec(1, os.getpid()); rec(2)
time.sleep(1.1)
rec(4)  # DETACH, and keep running (as a process finishing its sessions would)
time.sleep(120)
'''

FLOOD_STDERR = "#!/bin/sh\nexec yes 'a line that fills the pipe of stderr' >&2\n"


class Hostile(lib.MasterTest):

    def test_descriptors_over_masterlog_do_not_freeze_the_loop(self):
        m = self.master()
        child = lib.script(m, "linger.py", LINGER_CHILD)
        done = m.path("done")
        m.write("l.cf", "server-command = %s {dir}/log.sock %s\nserver-log = masterlog,{dir}/log.sock\n" % (child, done))
        m.start()
        res = lib.wait_until(lambda: os.path.exists(done) and open(done).read(), 20, what="the child's attack")
        print("masterlog attack: %s" % res.strip())
        t0 = time.monotonic()
        m.signal(signal.SIGHUP)
        lib.wait_until(lambda: "reload: reading" in m.log(), 5, what="SIGHUP handled (attack: %s)" % res.strip())
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(m.stop(), 0)

    def check_liar(self, value):
        m = self.master(args=["-v"])
        liar = lib.script(m, "liar.py", STOPPING_LIAR)
        m.write("liar.cf", "server-command = %s %d\n" % (liar, value))
        m.start(expect_children=1)
        kid = m.children()[0]
        # Its READY was read (so it ignores SIGTERM by now, and gets SOFTSTOP, not SIGTERM).
        lib.wait_until(lambda: "liar: pid %d ready" % kid in m.log(), 10, what="the liar ready")
        t0 = time.monotonic()
        m.signal(signal.SIGTERM)
        return m, t0

    def test_stopping_again_cannot_postpone_the_kill(self):
        """STOPPING 0 every second: the first one sets 0 + 5 s; later ones must not move it."""
        m, t0 = self.check_liar(0)
        self.assertEqual(m.wait_exit(20), 0)
        took = time.monotonic() - t0
        print("a child re-announcing STOPPING 0 was killed after %.1f s" % took)
        self.assertLess(took, 9.0)

    def test_second_sigterm_is_final(self):
        """STOPPING 3600 every second: the second SIGTERM cuts it to 5 s for good."""
        m, t0 = self.check_liar(3600)
        time.sleep(2.0)
        self.assertIsNone(m.proc.poll(), "the announced 3600 s were not honoured")
        t1 = time.monotonic()
        m.signal(signal.SIGTERM)
        self.assertEqual(m.wait_exit(20), 0)
        self.assertLess(time.monotonic() - t1, 8.0)

    def test_ready_after_stop_keeps_the_kill_deadline(self):
        """Found by the second hostile tester: a READY after the stop request cancelled the kill
        deadline, so masterd never exited (a second SIGTERM did not help either)."""
        m = self.master()
        late = lib.script(m, "late.py", LATE_READY)
        m.write("late.cf", "server-command = %s\nserver-env = MARK=%s\n" % (late, m.path("mark")))
        m.start(expect_children=1)
        lib.wait_until(lambda: os.path.exists(m.path("mark")), 10, what="the child ignoring SIGTERM")
        t0 = time.monotonic()
        m.signal(signal.SIGTERM)
        self.assertEqual(m.wait_exit(20), 0)
        took = time.monotonic() - t0
        print("a child saying READY after the stop was killed after %.1f s" % took)
        self.assertGreater(took, 3.0)
        self.assertLess(took, 9.0)

    def test_masterlog_path_never_takes_a_live_socket(self):
        """Found by the second hostile tester: masterd removed whatever socket was at a masterlog
        path, a service's own listener or another process's live socket."""
        import socket
        m = self.master()
        m.write("a.cf", "server-command = %s\nserver-service = {dir}/sock\n" % lib.FDSERVER)
        m.write("b.cf", "server-command = %s\nserver-log = masterlog,{dir}/sock\n" % lib.FDSERVER)
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("is also a listening socket", r.stderr)
        m.remove("a.cf")
        other = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        other.bind(m.path("sock"))  # another program's live log socket
        ino = os.stat(m.path("sock")).st_ino
        try:
            r = m.run()
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("in use by another process", r.stderr)
            self.assertEqual(os.stat(m.path("sock")).st_ino, ino, "the live socket was replaced")
        finally:
            other.close()
        # A stale one (nobody reads it) is replaced as before.
        m.start(expect_children=1)
        self.assertEqual(m.stop(), 0)

    def test_stalled_stderr_pipe_never_blocks_masterd(self):
        m = self.master()
        flood = lib.script(m, "flood.sh", FLOOD_STDERR)
        m.write("f.cf", "server-command = %s\n" % flood)
        # masterd logs to a pipe nobody reads (as `masterd 2>&1 | logger` with logger stopped).
        p = subprocess.Popen(lib.valgrind_prefix(m.dir) + [lib.MASTERD, "-C", m.cf], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=m.dir)
        m.proc, m.pid = p, p.pid
        lib.wait_until(lambda: len(lib.children(p.pid)) == 1, 5, what="the flooding child")
        m.known.update(lib.children(p.pid))
        time.sleep(1.0)  # the pipe is full by now: the child blocks in write, masterd must not
        m.signal(signal.SIGHUP)  # masterd logs "reload: reading" into the full pipe
        time.sleep(0.2)
        t0 = time.monotonic()
        m.signal(signal.SIGTERM)
        try:
            rc = p.wait(10)
        finally:
            p.stdout.close()
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 8.0)

    def test_fifo_in_place_of_the_log_file(self):
        m = self.master()
        m.args = ["-log", "file," + m.path("m.log")]
        m.write("s.cf", "server-command = /bin/sleep 1000\n")
        m.start(wait_ready=False)
        lib.wait_until(lambda: os.path.exists(m.path("m.log")) and "started" in open(m.path("m.log")).read(), 5)
        os.rename(m.path("m.log"), m.path("m.log.1"))
        os.mkfifo(m.path("m.log"))
        m.signal(signal.SIGUSR1)  # a rotation gone wrong: the new "file" is a fifo
        time.sleep(0.3)
        t0 = time.monotonic()
        self.assertEqual(m.stop(timeout=10), 0)
        self.assertLess(time.monotonic() - t0, 8.0)
        # Refused (a fifo without a reader: ENXIO; with one: not a regular file), never waited on.
        self.assertIn("reopen log: %s" % m.path("m.log"), open(m.path("m.log.1")).read())
        # And at start: an error, not a hang.
        r = m.run()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(m.path("m.log"), r.stderr)
        reader = os.open(m.path("m.log"), os.O_RDONLY | os.O_NONBLOCK)
        try:
            r = m.run()
        finally:
            os.close(reader)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("not a regular file", r.stderr)

    def test_detaching_after_a_second_backs_off(self):
        m = self.master()
        m.write("d.cf", "server-command = %s\n" % lib.script(m, "detach.py", DETACHER))
        m.start()
        time.sleep(20.0)  # the window: one detach a second, each living >= 1 s
        starts = lib.started_pids(m.log(), "d")
        print("%d starts in 20 s" % len(starts))
        # Backing off from the second detach on: starts at 0, 1.1, 2.3, 3.6, 5.1, 7.0, 9.7, 14.0 s.
        self.assertLessEqual(len(starts), 9, "detached processes pile up without backoff")
        self.assertIn("d: slot 1 failed 5 times in a row", m.log())
        live = [p for p in starts if lib.alive(p)]
        m.known.update(live)
        self.assertEqual(m.stop(), 0)
        self.assertFalse(any(lib.alive(p) for p in live))


    def test_an_empty_status_record_is_malformed_not_the_end(self):
        m = self.master()
        m.write("e.cf", "server-command = %s\nserver-ready-timeout = 30\n" % lib.script(m, "empty.py", EMPTY_RECORD))
        m.start(expect_children=1)
        lib.wait_until(lambda: "a malformed record" in m.log(), 10 * lib.SLOW, what="the empty record counted")

        def states():
            r = subprocess.run([MASTERCTL, "-pid-file", m.pid_file, "status", "--json", "e"],
                               capture_output=True, text=True, timeout=30)
            return [p["state"] for s in json.loads(r.stdout)["services"] for p in s["processes"]]
        lib.wait_until(lambda: states() == ["ready"], 10 * lib.SLOW, what="the READY sent after it")
        self.assertEqual(len(lib.started_pids(m.log(), "e")), 1)
        self.assertEqual(m.stop(), 0)

    def test_quoted_bytes_are_escaped_in_the_log_and_on_stderr(self):
        m = self.master()
        evil = b"ev\x1b]0;PWN\x07il\x9b\xff"
        bad = m.path("cf").encode() + b"/cmd" + evil
        with open(bad, "wb") as f:
            f.write(b"#!/bin/sh\nexec sleep 1000\n")
        os.chmod(bad, 0o755)
        with open(m.path("cf", "x.cf"), "wb") as f:
            f.write(b"server-command = " + bad + b"\n")
        m.start(expect_children=1)
        os.chmod(bad, 0o644)  # no longer executable: the restart's exec fails, naming the path
        for pid in m.children():
            os.kill(pid, signal.SIGKILL)
        lib.wait_until(lambda: "x: child" in m.log() and "execve" in m.log(), 10 * lib.SLOW, what="the exec error")
        # A reload whose config quotes the bytes in a value and in a file name.
        with open(m.path("cf", "w.cf"), "wb") as f:
            f.write(b"server-command = /bin/sleep 300\nserver-chdir = /nonexistent" + evil + b"\n")
        with open(m.path("cf").encode() + b"/" + evil + b".cf", "wb") as f:
            f.write(b"server-command = /bin/sleep 300\nserver-bogus-key = 1\n")
        m.signal(signal.SIGHUP)
        lib.wait_until(lambda: "nothing changed" in m.log(), 10 * lib.SLOW, what="the refused reload")
        t = subprocess.run([lib.MASTERD, "-C", m.path("cf"), "-t"], capture_output=True, timeout=30)
        self.assertEqual(t.returncode, 2)
        self.assertEqual(m.stop(), 0)
        with open(m.log_path, "rb") as f:
            log = f.read()
        for name, text in (("the log", log), ("-t's stderr", t.stderr)):
            raw = [b for b in text if (b < 0x20 and b not in (0x09, 0x0a)) or 0x7f <= b <= 0x9f or b == 0xff]
            self.assertEqual(raw, [], "raw control bytes in %s:\n%s" % (name, text.decode(errors="replace")[-3000:]))
        self.assertIn(b"cmdev\\x1b]0;PWN\\x07il\\x9b\\xff", log)  # the exec error
        self.assertIn(b"/nonexistentev\\x1b]0;PWN\\x07il\\x9b\\xff", log)  # the reload's value
        self.assertIn(b"/nonexistentev\\x1b]0;PWN\\x07il\\x9b\\xff", t.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()
