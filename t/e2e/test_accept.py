"""How aio-mode workers share a listener (libzserver/aio/zs_accept.c): one worker woken per connection
(EPOLLEXCLUSIVE in libev's own epoll set), idle workers taking turns, and a worker that stopped
accepting never swallowing a wake-up meant for the others.  Each figure is compared with the
same run under ZSERVER_ACCEPT=plain (the plain registration, every idle worker woken)."""
import os
import subprocess
import re
import signal
import socket
import time

from lib import MasterTest, children, free_port, proc_status, sample, wait_until

HTTP = sample("http_hello")
REQ_CLOSE = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
REQ_KEEP = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def http_cf(port, count, extra=""):
    return ("server-command = %s\nserver-service = 127.0.0.1:%d\nserver-proc-count = %d\n%s"
            % (HTTP, port, count, extra))


def get(port, req=REQ_CLOSE, timeout=5.0):
    """One request on a new connection; returns (socket, response head).  With REQ_CLOSE the
    socket is closed already."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(req)
    buf = b""
    while b"hello" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    if req is REQ_CLOSE:
        s.close()
    return s, buf


def switches(pids):
    total = 0
    for p in pids:
        st = proc_status(p) or {}
        total += int(st.get("voluntary_ctxt_switches", "0").split()[0])
        total += int(st.get("nonvoluntary_ctxt_switches", "0").split()[0])
    return total


def socket_inodes(pid):
    out = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if t.startswith("socket:"):
            out.add(t)
    return out


def conn_inodes(pid, port):
    """'socket:[INODE]' of the established TCP connections to local port `port` in pid's netns."""
    out = set()
    for proto in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, proto)) as f:
                for line in f.readlines()[1:]:
                    parts = line.split()
                    if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "01":
                        out.add("socket:[%s]" % parts[9])
        except OSError:
            pass
    return out


def epoll_listener_flags(pid, port_fd=3):
    """The event masks of fd port_fd in the epoll sets of pid (from /proc/PID/fdinfo)."""
    masks = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) != "anon_inode:[eventpoll]":
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                for line in f:
                    m = re.match(r"tfd:\s+(\d+)\s+events:\s+([0-9a-f]+)", line)
                    if m and int(m.group(1)) == port_fd:
                        masks.append(int(m.group(2), 16))
        except OSError:
            pass
    return masks


EPOLLEXCLUSIVE = 1 << 28


class AcceptCase(MasterTest):
    """Helpers: masterd with http_hello workers, switch counts, held keep-alive connections."""

    def start(self, count, plain=False, extra=""):
        port = free_port()
        env = dict(os.environ, ZSERVER_ACCEPT_STATS="1")
        if plain:
            env["ZSERVER_ACCEPT"] = "plain"
        else:
            env.pop("ZSERVER_ACCEPT", None)
        m = self.master({"http.cf": http_cf(port, count, extra)}, env=env)
        m.start(expect_children=count)
        kids = m.children()
        # every worker serves (and has had its first loop iteration, where the upgrade happens)
        wait_until(lambda: get(port)[1].startswith(b"HTTP/1.1 200") and all(epoll_listener_flags(k) for k in kids),
                   10, what="workers to serve")
        return m, port, kids

    def switches_per_connection(self, plain, workers=4, n=120):
        m, port, kids = self.start(workers, plain=plain)
        if not plain:
            wait_until(lambda: all(any(f & EPOLLEXCLUSIVE for f in epoll_listener_flags(k)) for k in kids), 5,
                       what="exclusive registrations")
        time.sleep(0.2)  # let start-up settle (no fixed wait for a result: only quiet before counting)
        before = switches(kids)
        for _ in range(n):
            _, head = get(port)
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            time.sleep(0.003)  # one connection at a time, every worker idle when it arrives
        after = switches(kids)
        self.assertEqual(m.stop(), 0)
        stats = re.findall(r"accept stats: (\d+) wake-ups, (\d+) accepted, (\d+) found nothing \((\w+)\)", m.log())
        self.assertEqual(len(stats), workers, m.log()[-3000:])
        return (after - before) / n, stats

    def hold_keepalive(self, port, kids, n):
        """Opens n keep-alive connections one at a time; returns them and the count each worker holds."""
        base = {k: socket_inodes(k) for k in kids}
        held = []
        for _ in range(n):
            s, head = get(port, REQ_KEEP)
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            held.append(s)
            time.sleep(0.003)
        per = {k: len(conn_inodes(k, port) & (socket_inodes(k) - base[k])) for k in kids}
        return held, per


class Accept(AcceptCase):
    def test_one_worker_woken_per_connection(self):
        excl, stats = self.switches_per_connection(plain=False)
        plain, pstats = self.switches_per_connection(plain=True)
        self.assertEqual({s[3] for s in stats}, {"exclusive"})
        self.assertEqual({s[3] for s in pstats}, {"plain"})
        accepted = sum(int(s[1]) for s in stats)
        empty = sum(int(s[2]) for s in stats)
        self.assertGreaterEqual(accepted, 120)
        # exclusive: no worker reaches accept4 for nothing; plain: the losers of each race do
        self.assertLessEqual(empty, accepted * 0.05, stats)
        # 4 idle workers: plain wakes all four per connection, exclusive one
        self.assertLess(excl, 2.5, "context switches per connection, exclusive")
        self.assertGreater(plain - excl, 1.5, "plain %.2f vs exclusive %.2f per connection" % (plain, excl))

    def test_idle_workers_take_turns(self):
        m, port, kids = self.start(3)
        held, per = self.hold_keepalive(port, kids, 24)
        try:
            self.assertEqual(sum(per.values()), 24, per)
            # rotation every 4 accepts: 8/8/8 when all idle; without it one worker takes all 24
            self.assertGreaterEqual(min(per.values()), 4, per)
        finally:
            for s in held:
                s.close()
        self.assertEqual(m.stop(), 0)

    def test_stopped_worker_swallows_no_wakeup(self):
        # Old workers keep running (draining a keep-alive connection each) after a restart
        # closed their listeners; connections made one at a time must all reach the new ones.
        m, port, kids = self.start(2, extra="server-stop-on-softstop-after = 20\n")
        held, per = self.hold_keepalive(port, kids, 8)
        self.assertTrue(all(per.values()), per)
        m.signal(signal.SIGUSR2)
        new = wait_until(lambda: (lambda k: k if len(k) == 2 else None)(
            [c for c in m.children() if c not in kids]), 10, what="the new generation")
        wait_until(lambda: all(epoll_listener_flags(k) for k in new), 10, what="new workers to listen")
        self.assertTrue(all(os.path.exists("/proc/%d" % k) for k in kids), "old workers still drain")
        # the old workers' epoll sets no longer hold the listener, once each got its SOFTSTOP (sent
        # as a new worker's READY is read, which can come after the new one already listens)
        wait_until(lambda: [epoll_listener_flags(k) for k in kids] == [[], []], 10,
                   what="old workers to drop the listener (have %r)" % [epoll_listener_flags(k) for k in kids])
        t0 = time.monotonic()
        for _ in range(60):
            _, head = get(port, timeout=3.0)
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        self.assertLess(time.monotonic() - t0, 30)
        for s in held:
            s.close()
        self.assertEqual(m.stop(), 0)

    def test_plain_fallback_serves(self):
        m, port, kids = self.start(2, plain=True)
        self.assertTrue(all(not any(f & EPOLLEXCLUSIVE for f in epoll_listener_flags(k)) for k in kids))
        for _ in range(20):
            self.assertTrue(get(port)[1].startswith(b"HTTP/1.1 200"))
        self.assertEqual(m.stop(), 0)



def board_slots(master_pid):
    """The accept scoreboard(s) masterd holds (zs_board.h): [[(pid, accepting, live), ...], ...]."""
    import struct
    boards = []
    for fd in os.listdir("/proc/%d/fd" % master_pid):
        try:
            if not os.readlink("/proc/%d/fd/%s" % (master_pid, fd)).startswith("/memfd:zserver-board"):
                continue
            with open("/proc/%d/fd/%s" % (master_pid, fd), "rb") as f:
                head = f.read(64)
                magic, n = struct.unpack_from("<II", head)
                if magic != 0x7a626431:
                    continue
                body = f.read(64 * n)
            boards.append([struct.unpack_from("<iii", body, 64 * i) for i in range(n)])
        except OSError:
            pass
    return boards


class Board(AcceptCase):
    def test_board_counts_connections_and_frees_slots(self):
        m, port, kids = self.start(2)

        def live():
            b = board_slots(m.pid)
            if len(b) != 1:
                return None
            return {pid: (acc, n) for pid, acc, n in b[0] if pid}

        wait_until(lambda: (lambda v: v and set(v) == set(kids))(live()), 5, what="both workers on the board")
        held, per = self.hold_keepalive(port, kids, 6)
        # each worker's published count is what it holds (6 in all), and both accept
        wait_until(lambda: live() == {k: (1, per[k]) for k in kids}, 5, what="board = held %r (have %r)" % (per, live()))
        for s in held:
            s.close()
        wait_until(lambda: live() == {k: (1, 0) for k in kids}, 5, what="counts back to 0 (have %r)" % live())
        # a worker killed: its slot goes to the replacement, the dead pid leaves the board
        os.kill(kids[0], signal.SIGKILL)
        new = wait_until(lambda: (lambda k: k if len(k) == 2 and kids[0] not in k else None)(m.children()), 5,
                         what="a replacement")
        wait_until(lambda: (lambda v: v and set(v) == set(new))(live()), 5, what="board = %r (have %r)" % (new, live()))
        self.assertEqual(m.stop(), 0)

    def test_burst_spreads_over_workers(self):
        m, port, kids = self.start(2)
        base = {k: socket_inodes(k) for k in kids}
        socks = []
        for _ in range(40):  # as fast as Python connects: a burst, like a client's reconnect storm
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
        for s in socks:
            s.setblocking(True)
            s.settimeout(5)
            s.sendall(REQ_KEEP)
            self.assertIn(b"HTTP/1.1 200", s.recv(4096))
        per = {k: len(socket_inodes(k) - base[k]) for k in kids}
        self.assertEqual(sum(per.values()), 40, per)
        self.assertGreaterEqual(min(per.values()), 12, per)  # at most 70 % on one worker
        for s in socks:
            s.close()
        self.assertEqual(m.stop(), 0)

    def test_board_in_alone_mode(self):
        # The self-hosted multi-process mode runs the same supervision core: same scoreboard.

        port = free_port()
        p = subprocess.Popen([HTTP, "alone", "-server-service", "127.0.0.1:%d" % port, "-server-proc-count", "2"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:

            kids = wait_until(lambda: (lambda k: k if len(k) == 2 else None)(children(p.pid)), 5, what="2 workers")
            wait_until(lambda: get(port)[1].startswith(b"HTTP/1.1 200"), 5, what="workers to serve")

            def live():
                b = board_slots(p.pid)
                return {pid: (acc, n) for pid, acc, n in b[0] if pid} if len(b) == 1 else None

            wait_until(lambda: (lambda v: v and set(v) == set(kids))(live()), 5, what="both workers on the board")
            held, per = self.hold_keepalive(port, kids, 4)
            wait_until(lambda: live() == {k: (1, per[k]) for k in kids}, 5, what="board = held %r (have %r)" % (per, live()))
            for s in held:
                s.close()
        finally:
            p.terminate()
            p.wait(timeout=15)
