"""Children's stdout and stderr relayed through masterd (issue #15: every log line names its
service): each line lands in masterd's log stamped `[SERVICE pid PID] `, a flooding child does not
delay supervision, and no child holds masterd's log file.
"""
import os
import re
import signal
import time

import lib
from lib import FDSERVER, MasterTest, wait_until

PROBE = lib.tool("tlib_probe")

PRINTER = r"""#!/usr/bin/env python3
import os, sys, time
print("to stdout", flush=True)
sys.stderr.write("to stderr\n"); sys.stderr.flush()
sys.stdout.write("ctl \x1b[2J and \r here\n"); sys.stdout.flush()
sys.stdout.write("L" * 5000 + "\n"); sys.stdout.flush()
try:
    os.ftruncate(1, 0)
    print("truncate: done", flush=True)
except OSError as e:
    print("truncate: refused (%s)" % e.strerror, flush=True)
try:
    os.ftruncate(2, 0)
except OSError:
    pass
sys.stdout.write("partial, no newline"); sys.stdout.flush()
time.sleep(float(sys.argv[1]))
"""


# C0 and C1 controls (raw 0x9b is an 8-bit CSI, 0x85 NEL; U+009B is the same CSI in UTF-8) and
# bytes that are not UTF-8 (a lone 0xff, an overlong '/', a surrogate) are escaped; valid UTF-8
# text (accents, CJK, an emoji) passes unchanged.
HOSTILE_BYTES = (b"A\x1b[31mB\x9b2JC\x85D caf\xc3\xa9 \xe6\x97\xa5\xf0\x9f\x98\x80 \xc2\x9b \xc0\xaf "
                 b"\xed\xa0\x80 \xff\xfe \xe6\x97 end")
HOSTILE_ESCAPED = (b"A\\x1b[31mB\\x9b2JC\\x85D caf\xc3\xa9 \xe6\x97\xa5\xf0\x9f\x98\x80 \\xc2\\x9b \\xc0\\xaf "
                   b"\\xed\\xa0\\x80 \\xff\\xfe \\xe6\\x97 end\n")


class Relay(MasterTest):
    def script(self, m, name, text):
        p = m.path(name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, 0o755)
        return p

    def test_plain_program_lines_are_stamped(self):
        m = self.master()
        p = self.script(m, "printer.py", PRINTER)
        m.write("pr.cf", "server-command = %s 0.3\nserver-restart = never\n" % p)
        m.start()
        (pid,) = m.wait_children(1)
        stamp = "[pr pid %d] " % pid
        wait_until(lambda: stamp + "partial, no newline" in m.log(), 5, what="the partial last line at exit")
        log = m.log()
        for line in ("to stdout", "to stderr", "ctl \\x1b[2J and \\r here", "truncate: refused (Invalid argument)"):
            self.assertIn("\n" + stamp + line + "\n", log)
        # Longer than 2048 bytes: cut, and the cut said.
        self.assertRegex(log, re.escape(stamp) + r"L{1000,} \[line cut: \d+ more bytes dropped\]\n")
        self.assertNotRegex(log, r"L{2100}")
        # The truncation did nothing to masterd's log: its first line is still there.
        self.assertIn("started (pid %d)" % m.pid, log.splitlines()[0])

    def test_libzserver_stderr_lines_are_stamped(self):
        m = self.master()
        port = lib.free_port()
        m.write("p.cf", "server-command = %s\nserver-service = 127.0.0.1:%d\nprobe-out = %s\n"
                        "probe-log-lines = 3\n" % (PROBE, port, m.path("ev")))
        m.start()
        (pid,) = m.wait_children(1)
        line = wait_until(lambda: re.search(r"^\[p pid %d\] \d\d/\d\d/\d{4} .* UTC INFO: tlib_probe\.c:\w+:\d+: "
                                            r"PID:%d probe line 2 of 3 " % (pid, pid), m.log(), re.M), 5,
                          what="the probe's stderr line, stamped")
        self.assertTrue(line)

    def test_flooding_child_does_not_delay_a_respawn(self):
        port = lib.free_port()
        m = self.master()
        flood = self.script(m, "flood.sh", "#!/bin/sh\nexec /usr/bin/yes %s >&2\n" % ("x" * 60))
        m.write("flood.cf", "server-command = %s\n" % flood)
        m.write("k.cf", "server-command = %s\nserver-service = 127.0.0.1:%d\n" % (FDSERVER, port))
        m.start()
        wait_until(lambda: m.log().count("[flood pid") > 1000, 5, what="the flood to reach the log")
        old = lib.report(("127.0.0.1", port))["pid"]
        for _ in range(3):
            os.kill(old, signal.SIGKILL)
            t0 = time.monotonic()
            new = wait_until(lambda: (lambda p: p if p != old else None)(
                lib.report(("127.0.0.1", port), timeout=1.0)["pid"]), 2.0, what="a replacement to answer")
            took = time.monotonic() - t0
            print("replacement answered %.0f ms after the kill, under a stderr flood" % (took * 1000))
            self.assertLess(took, 1.0)
            old = new  # the next kill hits a young child: 100 ms backoff, still well under 1 s
        # Signals are still handled at once: a stop ends the flood too.
        m.stop()
        self.assertRegex(m.log(), r"\[flood pid \d+\] x{60}\n")

    def test_log_file_survives_a_child(self):
        """With -log file,PATH the child cannot reach the file: not even through /proc."""
        m = self.master()
        target = m.path("file.log")
        m.args += ["-log", "file," + target]
        p = self.script(m, "printer.py", PRINTER)
        m.write("pr.cf", "server-command = %s 5\n" % p)
        m.start(wait_ready=False)
        wait_until(lambda: os.path.exists(target) and "partial" not in open(target).read()
                   and "truncate: refused" in open(target).read(), 5, what="the child's lines in the file")
        with open(target) as f:
            text = f.read()
        self.assertIn("started (pid %d)" % m.pid, text)
        self.assertRegex(text, r"\[pr pid \d+\] to stderr\n")

    def test_server_user_child_gets_a_nonblocking_stderr(self):
        """A server-user child owns its output pipe, so libzserver can reopen its stderr
        non-blocking through /proc (a slow masterd then costs it a counted line, never a block)."""
        port = lib.free_port()
        m = self.master({"g.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\nserver-user = nobody\n"
                                 "banner = hi\n" % (lib.sample("greeter"), port)})
        m.start(expect_children=1)
        (pid,) = m.children()
        with lib.connect(("127.0.0.1", port)) as c:
            self.assertTrue(c.recv(10).startswith(b"hi"))
        fds = lib.fd_links(pid)
        self.assertTrue(fds[2].startswith("pipe:"), fds)
        self.assertGreaterEqual(list(fds.values()).count(fds[2]), 3, fds)
        uid = int(lib.proc_status(pid)["Uid"].split()[0])
        self.assertNotEqual(uid, 0)
        self.assertEqual(os.stat("/proc/%d/fd/2" % pid).st_uid, uid)

    def raw_log(self, m):
        with open(m.log_path, "rb") as f:
            return f.read()

    def test_c1_controls_and_invalid_utf8_escaped_in_relayed_lines(self):
        m = self.master()
        p = self.script(m, "c1.py", "#!/usr/bin/env python3\nimport os, time\nos.write(1, %r + b'\\n')\n"
                                    "time.sleep(100)\n" % HOSTILE_BYTES)
        m.write("c.cf", "server-command = %s\n" % p)
        m.start()
        (pid,) = m.wait_children(1)
        stamp = b"[c pid %d] " % pid
        wait_until(lambda: stamp in self.raw_log(m), 5, what="the child's line")
        self.assertIn(b"\n" + stamp + HOSTILE_ESCAPED, self.raw_log(m))
        self.assertNotRegex(self.raw_log(m), re.compile(b"[\x80-\x9f](?<![\x80-\xbf])"))  # no raw C1
        self.raw_log(m).decode("utf-8")  # the whole log is valid UTF-8

    def test_c1_controls_and_invalid_utf8_escaped_in_masterlog_lines(self):
        m = self.master()
        os.chmod(m.dir, 0o755)
        p = self.script(m, "c1.py", "#!/usr/bin/env python3\nimport socket, sys, time\n"
                                    "socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(%r, sys.argv[1])\n"
                                    "time.sleep(100)\n" % HOSTILE_BYTES)
        m.write("c.cf", "server-command = %s {dir}/ml.sock\nserver-log = masterlog,{dir}/ml.sock\n" % p)
        m.start()
        (pid,) = m.wait_children(1)
        stamp = b"[c pid %d] " % pid
        wait_until(lambda: stamp in self.raw_log(m), 5, what="the child's datagram")
        self.assertIn(b"\n" + stamp + HOSTILE_ESCAPED, self.raw_log(m))
        self.raw_log(m).decode("utf-8")
