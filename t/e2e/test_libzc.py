"""lib-zc's own master/server samples (../shared/libzc-samples/, or $LIBZC_SAMPLES: aio_server.c, coroutine_server.c,
unmodified) built against libzserver's zc.h with only the include path changed, and run under
masterd with .cf files holding the samples' keys (our ports and paths): echo, `exit`, `DETACH`
(a replacement appears), `EXIT`, the aio sample's 1 s timer lines (through server-log =
masterlog), a graceful restart (SIGUSR2) while a session is held open and still answered, and
SIGTERM.  Skipped, saying so, when the samples' directory is absent."""
import os
import signal
import socket
import subprocess
import unittest

from lib import BUILD, MasterTest, ROOT, alive, free_port, wait_until

SAMPLES = os.environ.get("LIBZC_SAMPLES") or os.path.normpath(os.path.join(ROOT, "..", "shared", "libzc-samples"))
OUT = os.path.join(BUILD, "libzc")
BIN = {}


HAVE_SAMPLES = os.path.isdir(SAMPLES)
WHY_SKIP = "lib-zc samples not found at %s: nothing to build" % SAMPLES


def build_samples():
    """Builds both samples into build/libzc/ once (the first test class that needs them)."""
    if BIN:
        return
    os.makedirs(OUT, exist_ok=True)
    san = ["-fsanitize=address,undefined"] if os.path.basename(BUILD) == "build-san" else []
    for name in ("aio_server", "coroutine_server"):
        out = os.path.join(OUT, name)
        cmd = (["cc", "-O1", "-g", "-Wall", "-I", os.path.join(ROOT, "libzserver"),
                "-I", os.path.join(ROOT, "libzserver", "core"), "-o", out, os.path.join(SAMPLES, name + ".c")]
               + san + ["-Wl,--whole-archive", os.path.join(BUILD, "libzserver.a"), "-Wl,--no-whole-archive",
                        "-linih", "-lev", "-ldl", "-lm"])
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError("building %s failed:\n%s" % (name, r.stderr))
        BIN[name] = out


class Session:
    """A line-oriented client: send a line, read a line, with deadlines."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.f = self.s.makefile("rb")

    def line(self):
        return self.f.readline()

    def say(self, text):
        self.s.sendall(text.encode() + b"\n")
        return self.line()

    def closed(self):
        return self.f.read() == b""

    def close(self):
        self.f.close()
        self.s.close()


def aio_cf(m, port, ssl_port, extra=""):
    # event.cf's keys; `ssl://` names a listener (plain TCP: the sample does no TLS itself)
    return ("server-command = %s\nserver-service = 127.0.0.1:%d, ssl://127.0.0.1:%d\nserver-proc-count = 1\n"
            "server-log = masterlog,%s\nserver-stop-on-softstop-after = %s\n"
            % (BIN["aio_server"], port, ssl_port, m.path("log.socket"), extra or "2"))


def co_cf(port, after="5"):
    return ("server-command = %s\nserver-service = 127.0.0.1:%d\nserver-proc-count = 1\n"
            "server-stop-on-softstop-after = %s\n" % (BIN["coroutine_server"], port, after))


@unittest.skipUnless(HAVE_SAMPLES, WHY_SKIP)
class AioSample(MasterTest):
    @classmethod
    def setUpClass(cls):
        build_samples()

    def start(self, after=""):
        self.port, self.ssl_port = free_port(), free_port()
        m = self.master()
        m.write("event.cf", aio_cf(m, self.port, self.ssl_port, after))
        m.start(expect_children=1)
        return m

    def test_echo_exit_and_timer(self):
        m = self.start()
        c = Session(self.port)
        self.assertEqual(c.line(), b"echo server, support command: exit, DETACH\n")
        self.assertEqual(c.say("hello"), b"your input: hello\n")
        self.assertEqual(c.say("a\r"), b"your input: a\n")  # zbuf_trim_right_rn
        long_line = "x" * 5000
        self.assertEqual(c.say(long_line), b"your input: " + long_line.encode() + b"\n")
        self.assertEqual(c.say("exit"), b"your input: exit\n")
        self.assertTrue(c.closed())
        c.close()
        s = Session(self.ssl_port)  # the second listener, registered the same way
        self.assertEqual(s.line(), b"echo server, support command: exit, DETACH\n")
        self.assertEqual(s.say("two"), b"your input: two\n")
        s.close()
        # the 1 s timer: "L all:1, current:0" and so on, cycling through LIB-ZC, via masterlog
        wait_until(lambda: "all:2, current:0" in m.log(), 5, what="a timer line after the sessions")
        ticks = [ln for ln in m.log().splitlines() if "timer_cb" in ln and " all:" in ln]
        self.assertGreaterEqual(len(ticks), 1)
        wait_until(lambda: len([ln for ln in m.log().splitlines() if "timer_cb" in ln]) >= len(ticks) + 2, 5,
                   what="two more timer lines")
        self.assertEqual(m.stop(), 0)

    def test_a_line_longer_than_gets_max_len_comes_back_in_pieces(self):
        # zaio_gets(aio, 10240, ...): a longer line is answered 10240 bytes at a time, and the
        # process keeps serving the others
        m = self.start()
        c = Session(self.port)
        c.line()
        c.s.sendall(b"x" * 25000 + b"\n")
        pieces = [c.line() for _ in range(3)]
        self.assertEqual([len(p) for p in pieces], [12 + 10240 + 1, 12 + 10240 + 1, 12 + 4520 + 1])
        self.assertEqual(b"".join(p[12:-1] for p in pieces), b"x" * 25000)
        d = Session(self.port)
        self.assertEqual(d.line(), b"echo server, support command: exit, DETACH\n")
        d.close()
        c.close()
        self.assertEqual(m.stop(), 0)

    def test_detach_brings_a_replacement(self):
        m = self.start()
        first = m.children()[0]
        c = Session(self.port)
        c.line()
        self.assertEqual(c.say("DETACH"), b"your input: DETACH\n")
        self.assertTrue(c.closed())
        c.close()
        wait_until(lambda: [k for k in m.children() if k != first], 5, what="a replacement process")
        d = Session(self.port)
        self.assertEqual(d.line(), b"echo server, support command: exit, DETACH\n")
        self.assertEqual(d.say("again"), b"your input: again\n")
        d.close()
        self.assertEqual(m.stop(), 0)

    def test_graceful_restart_drains_an_open_session(self):
        m = self.start(after="8s")  # units as in lib-zc's files; masterd's stop waits this out
        old = m.children()[0]
        c = Session(self.port)
        c.line()
        self.assertEqual(c.say("before"), b"your input: before\n")
        m.signal(signal.SIGUSR2)
        wait_until(lambda: [k for k in m.children() if k != old], 5, what="the new generation")
        self.assertEqual(c.say("during"), b"your input: during\n")  # the old process still answers
        d = Session(self.port)  # new connections go to the new process
        self.assertEqual(d.line(), b"echo server, support command: exit, DETACH\n")
        d.close()
        self.assertTrue(alive(old))
        self.assertEqual(c.say("exit"), b"your input: exit\n")
        c.close()
        self.assertEqual(m.stop(), 0)
        wait_until(lambda: not alive(old), 5, what="the old process to end with masterd")


@unittest.skipUnless(HAVE_SAMPLES, WHY_SKIP)
class CoroutineSample(MasterTest):
    @classmethod
    def setUpClass(cls):
        build_samples()

    def start(self, after="5"):
        self.port = free_port()
        m = self.master()
        m.write("coroutine.cf", co_cf(self.port, after))
        m.start(expect_children=1)
        return m

    def test_echo_exit_and_several_sessions(self):
        m = self.start()
        a, b = Session(self.port), Session(self.port)
        self.assertEqual(a.line(), b"welcome coroutine\n")
        self.assertEqual(b.line(), b"welcome coroutine\n")
        # a session waiting for its line does not hold up the other (zstream yields)
        self.assertEqual(b.say("from b"), b"from b\n")
        self.assertEqual(a.say("from a"), b"from a\n")
        self.assertEqual(a.say("exit"), b"exit\n")
        self.assertTrue(a.closed())
        self.assertEqual(b.say("still"), b"still\n")
        b.close()
        self.assertEqual(m.stop(), 0)

    def test_EXIT_stops_the_process_and_it_is_replaced(self):
        m = self.start()
        old = m.children()[0]
        a = Session(self.port)
        a.line()
        self.assertEqual(a.say("EXIT"), b"EXIT\n")
        self.assertTrue(a.closed())
        a.close()
        wait_until(lambda: not alive(old) and [k for k in m.children() if k != old], 10,
                   what="the process to exit and be replaced")
        b = Session(self.port)
        self.assertEqual(b.line(), b"welcome coroutine\n")
        b.close()
        self.assertEqual(m.stop(), 0)

    def test_detach_keeps_the_session_and_brings_a_replacement(self):
        m = self.start()
        old = m.children()[0]
        a = Session(self.port)
        a.line()
        self.assertEqual(a.say("DETACH"), b"DETACH\n")
        wait_until(lambda: [k for k in m.children() if k != old], 5, what="a replacement process")
        self.assertEqual(a.say("after detach"), b"after detach\n")  # the sample's loop goes on
        b = Session(self.port)
        self.assertEqual(b.line(), b"welcome coroutine\n")
        b.close()
        a.close()
        self.assertEqual(m.stop(), 0)

    def test_graceful_restart_does_not_kill_the_accept_loop(self):
        # the sample zfatal()s on any accept error but EAGAIN/EINTR: EBADF from the closed
        # listener would end the old process and cut the session it is draining
        m = self.start(after="8s")
        old = m.children()[0]
        a = Session(self.port)
        a.line()
        m.signal(signal.SIGUSR2)
        wait_until(lambda: [k for k in m.children() if k != old], 5, what="the new generation")
        self.assertEqual(a.say("during"), b"during\n")
        b = Session(self.port)
        self.assertEqual(b.line(), b"welcome coroutine\n")
        self.assertEqual(b.say("new"), b"new\n")
        b.close()
        self.assertTrue(alive(old))
        self.assertEqual(a.say("still"), b"still\n")
        self.assertNotIn("accept(", m.log())
        a.close()
        self.assertEqual(m.stop(), 0)
        wait_until(lambda: not alive(old), 5, what="the old process to end with masterd")


if __name__ == "__main__":
    unittest.main()
