"""libzserver coroutine mode against the real masterd: the seed's coroutine example, the HTTP
hello server in coroutine style (byte for byte the aio one's answers, pipelining, keep-alive,
a burst of connections), soft-stop (of a child, and of everything by SIGTERM to masterd, while
coroutines sit blocked in accept() and in read()), and masterd killed with SIGKILL."""
import os
import re
import signal
import socket
import threading
import time

from lib import MasterTest, ROOT, burst_2000, alive, connect, fd_links, fetch, free_port, sample, tool, wait_until

SEED = sample("seed_coroutine")
HTTP_CO = sample("http_hello_co")
HTTP_AIO = sample("http_hello")
BURST = tool("burst")
GREETING = b"hello from the seed's coroutine example\r\n"


def wait_exit(pid, timeout):
    wait_until(lambda: not alive(pid), timeout, what="pid %d to exit" % pid)


def seed_cf(port, count=2, extra=""):
    return ("server-command = %s\nserver-service = 127.0.0.1:%d\nserver-proc-count = %d\n%s"
            % (SEED, port, count, extra))


def http_cf(prog, port, count=2, extra=""):
    return ("server-command = %s\nserver-service = 127.0.0.1:%d\nserver-proc-count = %d\n%s"
            % (prog, port, count, extra))


def no_date(b):
    return re.sub(rb"Date: [^\r]*\r\n", b"Date: -\r\n", b)


def read_response(f):
    """One HTTP response (headers + Content-Length body) from a buffered socket file."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = f.readline()
        if not line:
            return head
        head += line
    m = re.search(rb"Content-Length: (\d+)", head)
    return head + f.read(int(m.group(1)) if m else 0)


class Seed(MasterTest):
    def test_seed_text_with_its_typo_fixed_serves(self):
        model = open(os.path.join(ROOT, "t", "seed", "coroutine_model.c.txt")).read()
        model = model.replace("accpet(fd)", "accept(sock, 0, 0)")
        src = open(os.path.join(ROOT, "sample", "seed_coroutine.c")).read()
        # Every line of the seed, in order; only lines marked "added" come in between.
        marker = "/* ---- the seed's text ---- */"
        rest = src[src.index(marker) + len(marker):]
        pos = 0
        for line in model.splitlines():
            i = rest.find(line, pos)
            self.assertGreaterEqual(i, 0, "seed line missing or out of order: %r" % line)
            between = rest[pos:i].strip("\n")
            for extra in [x for x in between.splitlines() if x.strip()]:
                self.assertIn("/* added */", extra, "line not from the seed: %r" % extra)
            pos = i + len(line)
        port = free_port()
        m = self.master({"seed.cf": seed_cf(port)}).start(expect_children=2)
        for _ in range(5):
            self.assertEqual(fetch(("127.0.0.1", port)), GREETING)
        # Many at once: every one greeted (the accept coroutine never blocks the process).
        got = []

        def one():
            got.append(fetch(("127.0.0.1", port)))
        threads = [threading.Thread(target=one) for _ in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        self.assertEqual(got, [GREETING] * 40)
        self.assertEqual(m.stop(), 0)


class Http(MasterTest):
    def start_both(self, count=2, extra=""):
        self.p_co, self.p_aio = free_port(), free_port()
        files = {"co.cf": http_cf(HTTP_CO, self.p_co, count, extra)}
        if os.access(HTTP_AIO, os.X_OK):
            files["aio.cf"] = http_cf(HTTP_AIO, self.p_aio, count, extra)
        m = self.master(files).start(expect_children=len(files) * count)
        wait_until(lambda: fetch(("127.0.0.1", self.p_co), send=b"GET / HTTP/1.0\r\n\r\n"), 5)
        return m

    def test_same_bytes_as_aio_pipelined_and_keepalive(self):
        self.start_both()
        cases = [
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3 + b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcdeGET / HTTP/1.1\r\nConnection: close\r\n\r\n",
            b"GARBAGE\r\n\r\n",
            b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ]
        for req in cases:
            co = no_date(fetch(("127.0.0.1", self.p_co), send=req))
            self.assertTrue(co.startswith(b"HTTP/1.1 "), co)
            if os.access(HTTP_AIO, os.X_OK):
                self.assertEqual(co, no_date(fetch(("127.0.0.1", self.p_aio), send=req)), req)
        first = no_date(fetch(("127.0.0.1", self.p_co), send=cases[0]))
        self.assertEqual(first.count(b"HTTP/1.1 200 OK"), 4)
        self.assertEqual(first.count(b"Connection: keep-alive"), 3)
        # Keep-alive: several requests on one connection, each answered as it comes.
        s = connect(("127.0.0.1", self.p_co))
        f = s.makefile("rwb")
        for _ in range(3):
            f.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            f.flush()
            r = read_response(f)
            self.assertTrue(r.startswith(b"HTTP/1.1 200 OK") and r.endswith(b"\r\n\r\nhello"), r)
        s.close()

    def test_burst_2000_connections_none_refused(self):
        if not os.access(BURST, os.X_OK):
            self.skipTest("t/tools/burst not built")
        port = free_port()
        self.master({"h.cf": http_cf(HTTP_CO, port, 4)}).start(expect_children=4)
        burst_2000(self, port, BURST)


class SoftStop(MasterTest):
    def test_child_softstop_wakes_blocked_accept_and_returns_at_once(self):
        port = free_port()
        m = self.master({"seed.cf": seed_cf(port, 1)}).start(expect_children=1)
        pid = m.children()[0]
        self.assertEqual(fetch(("127.0.0.1", port)), GREETING)
        t0 = time.monotonic()
        os.kill(pid, signal.SIGTERM)  # soft-stop: the accept coroutine must not keep it alive
        wait_exit(pid, 5)
        self.assertLess(time.monotonic() - t0, 0.8)
        wait_until(lambda: [k for k in m.children() if k != pid], 5, what="replacement")
        wait_until(lambda: fetch(("127.0.0.1", port)) == GREETING, 5, what="the replacement to serve")

    def test_http_drains_a_keepalive_connection_then_leaves(self):
        port = free_port()
        m = self.master({"h.cf": http_cf(HTTP_CO, port, 1, "server-stop-on-softstop-after = 5\n")}
                        ).start(expect_children=1)
        pid = m.children()[0]
        s = connect(("127.0.0.1", port))
        f = s.makefile("rwb")
        f.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        f.flush()
        self.assertIn(b"Connection: keep-alive", read_response(f))
        t0 = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        # Soft-stop has begun once the child closed its listener (fd 3).
        wait_until(lambda: 3 not in fd_links(pid), 3, what="the child to close its listener")
        # Its next request is still answered (its coroutine sat in read()), then it is closed,
        # and the process leaves as soon as that was its last connection, not after 5 s.
        f.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        f.flush()
        r = read_response(f)
        self.assertTrue(r.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in r, r)
        self.assertEqual(f.read(), b"")
        s.close()
        wait_exit(pid, 4)
        self.assertLess(time.monotonic() - t0, 4)

    def test_sigterm_to_masterd_stops_every_coroutine_child(self):
        p1, p2 = free_port(), free_port()
        m = self.master({"seed.cf": seed_cf(p1, 2),
                         "h.cf": http_cf(HTTP_CO, p2, 2, "server-stop-on-softstop-after = 30\n")}
                        ).start(expect_children=4)
        kids = m.children()
        self.assertEqual(fetch(("127.0.0.1", p1)), GREETING)
        # An idle keep-alive connection: its coroutine is blocked in read() when the stop comes.
        s = connect(("127.0.0.1", p2))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"200 OK", s.recv(4096))
        t0 = time.monotonic()
        m.signal(signal.SIGTERM)
        # Every child but the one holding the idle connection has nothing to wait for: gone at
        # once (the seed ones, M = 0, were blocked in accept()).  That one waits for its connection up
        # to its 30 s; closing our side ends it early (read() returns 0: last connection gone).
        wait_until(lambda: sum(alive(k) for k in kids) == 1, 3, what="three children to exit")
        s.close()
        self.assertEqual(m.proc.wait(10), 0)
        self.assertLess(time.monotonic() - t0, 5)
        for k in kids:
            self.assertFalse(alive(k), "child %d outlived masterd" % k)
        self.assertTrue(all(lib_port_free(p) for p in (p1, p2)))


def lib_port_free(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


class MasterDeath(MasterTest):
    def test_kill9_master_children_exit_within_1s(self):
        p1, p2 = free_port(), free_port()
        m = self.master({"seed.cf": seed_cf(p1, 2, "server-stop-on-softstop-after = 30\n"),
                         "h.cf": http_cf(HTTP_CO, p2, 2, "server-stop-on-softstop-after = 30\n")}
                        ).start(expect_children=4)
        kids = m.children()
        self.assertEqual(fetch(("127.0.0.1", p1)), GREETING)
        s = connect(("127.0.0.1", p2))  # a coroutine blocked in read() must not hold its process
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"200 OK", s.recv(4096))
        t0 = time.monotonic()
        m.proc.kill()
        m.proc.wait()
        wait_until(lambda: not any(alive(k) for k in kids), 3, what="children to exit")
        took = time.monotonic() - t0
        s.close()
        print("coroutine children gone %.3f s after kill -9 of masterd" % took)
        self.assertLess(took, 1.0)
