"""The control socket and masterctl (doc/CONTRACT.md §12): status, restart/stop/start of one
service, the synchronous reload's exit codes, refusal of other users, hostile clients, and the
metrics (parsed with Debian's python3-prometheus-client)."""
import grp
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

import lib
from lib import MasterTest, free_port, sample, wait_until

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # the Debian package, under another python3 than /usr/bin/python3
    sys.path.append("/usr/lib/python3/dist-packages")
    from prometheus_client.parser import text_string_to_metric_families

MASTERCTL = os.path.join(lib.BUILD, "masterd", "masterctl")
HTTP = sample("http_hello")


def http_cf(port, count=2, extra=""):
    return ("server-command = %s\nserver-service = http://127.0.0.1:%d\nserver-proc-count = %d\n"
            "server-stop-on-softstop-after = 3\n%s" % (HTTP, port, count, extra))


def ctl(m, *args, timeout=30, user=None):
    cmd = [MASTERCTL, "-pid-file", m.pid_file] + list(args)
    if user is not None:
        cmd = ["setpriv", "--reuid=%d" % user.pw_uid, "--regid=%d" % user.pw_gid, "--clear-groups"] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def status(m, *ids):
    r = ctl(m, "status", "--json", *ids)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return {s["name"]: s for s in json.loads(r.stdout)["services"]}


def ask(s, data):
    """Sends data on the connected socket s, reads until EOF, closes s; returns what came."""
    if data:
        s.sendall(data)
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    return out


def raw(m, data):
    """Sends data on a fresh control connection; returns the whole reply (until EOF)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(m.pid_file[:-4] + ".ctl")
    return ask(s, data)


def http_get(port, timeout=5, req=b"GET / HTTP/1.0\r\n\r\n"):
    return ask(socket.create_connection(("127.0.0.1", port), timeout=timeout), req)


class Pinger(threading.Thread):
    """Asks a service for a page every 20 ms, counting answers and errors."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.ok, self.errors, self.stop = port, 0, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                if b"hello" in http_get(self.port):
                    self.ok += 1
                else:
                    self.errors.append("no hello")
            except OSError as e:
                self.errors.append(repr(e))
            time.sleep(0.02)


class ControlTest(MasterTest):
    def two(self, **kw):
        pa, pb = free_port(), free_port()
        m = self.master({"a.cf": http_cf(pa), "b.cf": http_cf(pb)}, **kw).start()
        m.wait_children(4)
        wait_until(lambda: all(s["state"] == "running" for s in status(m).values()), 5, what="both running")
        return m, pa, pb

    def test_status_while_running(self):
        m, pa, pb = self.two()
        st = status(m)
        self.assertEqual(sorted(st), ["a", "b"])
        a = st["a"]
        self.assertEqual((a["wanted"], a["running"], a["ready"], a["generation"]), (2, 2, 2, 1))
        self.assertEqual(a["restarts"], 0)
        self.assertIsNone(a["last_exit"])
        pids = sorted(p["pid"] for s in st.values() for p in s["processes"])
        self.assertEqual(pids, sorted(m.children()))
        self.assertEqual(sorted(p["slot"] for p in a["processes"]), [1, 2])
        self.assertTrue(all(p["rss_kib"] > 0 and p["state"] == "ready" for p in a["processes"]))
        lis = a["listeners"][0]
        self.assertEqual((lis["kind"], lis["queue"]), ("inet", 0))
        self.assertGreater(lis["backlog"], 0)
        r = ctl(m, "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^a\s+running\s+2/2/2\s+1\s")
        self.assertTrue(all(len(line) < 100 for line in r.stdout.splitlines()), r.stdout)
        only = status(m, "b")
        self.assertEqual(list(only), ["b"])
        r = ctl(m, "status", "nosuch")
        self.assertEqual(r.returncode, 2)
        self.assertIn("no service 'nosuch'", r.stderr)

    def test_accept_queue_and_connections(self):
        """The accept queue is read from the kernel; connections from the accept scoreboard."""
        m, pa, pb = self.two()
        held = [socket.create_connection(("127.0.0.1", pb), timeout=5) for _ in range(2)]
        wait_until(lambda: sum(p["connections"] or 0 for p in status(m)["b"]["processes"]) == 2, 5,
                   what="b's two connections on the scoreboard")
        self.assertEqual(ctl(m, "stop", "a").returncode, 0)
        wait_until(lambda: not status(m)["a"]["processes"], 10, what="a held down")
        queued = [socket.create_connection(("127.0.0.1", pa), timeout=5) for _ in range(3)]
        lis = wait_until(lambda: (lambda l: l if l["queue"] == 3 else None)(status(m)["a"]["listeners"][0]), 5,
                         what="3 connections in a's accept queue")
        self.assertEqual(lis["queue_max_seen"], 3)
        self.assertEqual(ctl(m, "start", "a").returncode, 0)
        lis = wait_until(lambda: (lambda l: l if l["queue"] == 0 else None)(status(m)["a"]["listeners"][0]), 5,
                         what="the queue taken by a's new generation")
        self.assertEqual(lis["queue_max_seen"], 3)
        for s in held + queued:
            s.close()

    def test_crash_loop_is_shown(self):
        m = self.master({"bad.cf": "server-command = /bin/false\n"}).start()
        st = wait_until(lambda: (lambda s: s if s["state"] == "crash-looping" else None)(status(m)["bad"]), 10,
                        what="crash-looping")
        self.assertGreaterEqual(st["restarts"], 3)
        self.assertGreaterEqual(st["restarts_10min"], 3)
        self.assertEqual((st["last_exit"]["code"], st["last_exit"]["signal"]), (1, None))
        # Waiting out a backoff, or trying again (a process not ready yet: no next try to tell).
        self.assertTrue(st["next_try_ms"] is not None or st["processes"], st)
        self.assertIn("last exit: pid", ctl(m, "status").stdout)
        self.assertIn("exited 1", ctl(m, "status").stdout)

    def test_exited_service_not_restarted_is_stopped(self):
        m = self.master({"once.cf": "server-command = /bin/true\nserver-restart = on-failure\n"}).start()
        st = wait_until(lambda: (lambda s: s if s["state"] == "stopped" else None)(status(m)["once"]), 5,
                        what="stopped")
        self.assertEqual((st["running"], st["last_exit"]["code"]), (0, 0))

    def test_signal_name_in_last_exit(self):
        port = free_port()
        m = self.master({"a.cf": http_cf(port, 1)}).start()
        kid = m.wait_children(1)[0]
        wait_until(lambda: status(m)["a"]["state"] == "running", 5, what="running")
        os.kill(kid, signal.SIGKILL)  # uncatchable (a sanitizer build catches SIGSEGV)
        st = wait_until(lambda: (lambda s: s if s["last_exit"] else None)(status(m)["a"]), 5, what="last exit")
        self.assertEqual((st["last_exit"]["pid"], st["last_exit"]["signal"]), (kid, "SIGKILL"))
        self.assertEqual(st["restarts"], 1)

    def test_stop_start_restart_while_neighbour_serves(self):
        m, pa, pb = self.two()
        before_b = sorted(p["pid"] for p in status(m)["b"]["processes"])
        ping = Pinger(pb)
        ping.start()
        try:
            r = ctl(m, "stop", "a")
            self.assertEqual(r.returncode, 0, r.stderr)
            st = wait_until(lambda: (lambda s: s if not s["processes"] else None)(status(m)["a"]), 10,
                            what="a's processes gone")
            self.assertEqual((st["state"], st["held"]), ("held down", True))
            self.assertFalse(lib.port_free(pa), "a's socket stays bound while held down")
            self.assertEqual(ctl(m, "stop", "a").returncode, 1)  # already held down
            r = ctl(m, "status")
            self.assertRegex(r.stdout, r"(?m)^a\s+held down")
            r = ctl(m, "start", "a")
            self.assertEqual(r.returncode, 0, r.stderr)
            wait_until(lambda: status(m)["a"]["state"] == "running", 5, what="a running again")
            self.assertIn(b"hello", http_get(pa))
            gen = status(m)["a"]["generation"]
            r = ctl(m, "restart", "a")
            self.assertEqual(r.returncode, 0, r.stderr)
            wait_until(lambda: (lambda s: s["generation"] == gen + 1 and s["state"] == "running"
                                and all(p["generation"] == gen + 1 for p in s["processes"]))(status(m)["a"]),
                       10, what="a's new generation alone")
            wait_until(lambda: ping.ok >= 5, 5, what="answers from b")
        finally:
            ping.stop.set()
            ping.join()
        self.assertEqual(ping.errors, [])
        self.assertEqual(sorted(p["pid"] for p in status(m)["b"]["processes"]), before_b, "b untouched")

    def test_reload_exit_codes(self):
        m, pa, pb = self.two()
        pids = sorted(m.children())
        m.write("a.cf", http_cf(pa, extra="server-env = X=1\n"))
        r = ctl(m, "reload")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("a: new generation (generation 2)", r.stdout)
        self.assertIn("a: generation 2 ready (2 processes)", r.stdout)
        self.assertEqual(status(m)["a"]["ready"], 2)
        # Invalid: nothing changes, the error names file and line.
        now = sorted(p["pid"] for s in status(m).values() for p in s["processes"] if p["state"] == "ready")
        m.write("b.cf", http_cf(pb) + "server-proc-count = lots\n")
        r = ctl(m, "reload")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"b\.cf:\d+: server-proc-count")
        self.assertIn("nothing changed", r.stdout)
        self.assertEqual(sorted(p["pid"] for s in status(m).values() for p in s["processes"]
                                if p["state"] == "ready"), now)
        # Applied, but the new generation fails: which one, and how it ended.
        m.write("b.cf", "server-command = /bin/false\nserver-service = 127.0.0.1:%d\n" % pb)
        r = ctl(m, "reload")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("b: generation 2 failed: pid", r.stdout)
        self.assertIn("exited 1", r.stdout)
        self.assertNotEqual(pids, [])

    def test_removed_service_shows_while_it_drains(self):
        port = free_port()
        m = self.master({"a.cf": http_cf(port, 1, "server-stop-on-softstop-after = 30\n")}).start()
        m.wait_children(1)
        wait_until(lambda: status(m)["a"]["state"] == "running", 5, what="running")
        conn = socket.create_connection(("127.0.0.1", port), timeout=5)  # an open session: it drains
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"hello", conn.recv(4096))
        m.remove("a.cf")
        r = ctl(m, "reload")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("a: removed", r.stdout)
        a = status(m, "a")["a"]
        self.assertEqual((a["state"], a["wanted"], len(a["processes"])), ("retiring", 0, 1))
        self.assertEqual(a["processes"][0]["state"], "retiring")
        # Back while its removed self drains: its generations go on from there, not from 1 again.
        m.write("a.cf", http_cf(port, 1, "server-stop-on-softstop-after = 30\n"))
        r = ctl(m, "reload")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("a: started (generation 2)", r.stdout)
        self.assertIn("a: generation 2 ready", r.stdout)
        self.assertEqual(sorted(status(m, "a")["a"]["generations"]), [1, 2])
        conn.close()
        wait_until(lambda: status(m, "a")["a"]["generations"] == [2], 10, what="generation 1 gone once drained")

    def test_sighup_still_reloads(self):
        m, pa, pb = self.two()
        m.write("a.cf", http_cf(pa, 1))
        m.signal(signal.SIGHUP)
        wait_until(lambda: status(m)["a"]["wanted"] == 1, 5, what="scaled by SIGHUP")

    def test_held_down_across_reloads_until_its_file_changes(self):
        m, pa, pb = self.two()
        self.assertEqual(ctl(m, "stop", "a").returncode, 0)
        wait_until(lambda: not status(m)["a"]["processes"], 10, what="a held down")
        self.assertEqual(ctl(m, "reload").returncode, 0)  # a's file unchanged
        m.signal(signal.SIGUSR2)
        wait_until(lambda: status(m)["b"]["generation"] == 2, 5, what="b restarted by SIGUSR2")
        a = status(m)["a"]
        self.assertEqual((a["state"], a["processes"]), ("held down", []))
        m.write("a.cf", http_cf(pa, 1))
        r = ctl(m, "reload")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("a: generation", r.stdout)
        a = status(m)["a"]
        self.assertEqual((a["state"], a["held"], a["ready"]), ("running", False, 1))

    def test_held_down_then_removed_is_reported(self):
        m, pa, pb = self.two()
        self.assertEqual(ctl(m, "stop", "a").returncode, 0)
        wait_until(lambda: not status(m)["a"]["processes"], 10, what="a held down")
        m.remove("a.cf")
        r = ctl(m, "reload")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("a: removed\n", r.stdout)
        self.assertIn("reload: 0 started, 0 new generations, 0 scaled, 1 removed, 1 unchanged", r.stdout)
        self.assertEqual(ctl(m, "status", "a").returncode, 2)
        wait_until(lambda: lib.port_free(pa), 5, what="a's socket closed once a was removed")

    def test_other_uid_is_refused(self):
        m, pa, pb = self.two()
        nobody = pwd.getpwnam("nobody")
        ctlpath = m.pid_file[:-4] + ".ctl"
        self.assertEqual(os.stat(ctlpath).st_mode & 0o777, 0o600)
        # An operator who widens the socket and its directory still lets nobody else in.
        os.chmod(m.dir, 0o755)
        os.chmod(ctlpath, 0o666)
        r = ctl(m, "status", user=nobody)
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertIn("permission denied", r.stderr)
        wait_until(lambda: "refused pid" in m.log() and "uid %d" % nobody.pw_uid in m.log(), 5,
                   what="the refusal logged")
        for _ in range(20):
            ctl(m, "stop", "a", user=nobody)
        self.assertEqual(m.log().count("refused pid"), 1, "refusals are rate-limited")
        self.assertEqual(status(m)["a"]["state"], "running")

    def test_control_group_members_are_served(self):
        nobody, daemon = pwd.getpwnam("nobody"), pwd.getpwnam("daemon")
        group = grp.getgrgid(nobody.pw_gid).gr_name
        self.assertNotEqual(daemon.pw_gid, nobody.pw_gid)
        pa, pb = free_port(), free_port()
        m = self.master({"a.cf": http_cf(pa, 1)}, args=["-control-group", group]).start()
        m.wait_children(1)
        ctlpath = m.pid_file[:-4] + ".ctl"
        st = os.lstat(ctlpath)
        self.assertEqual((st.st_mode & 0o777, st.st_gid), (0o660, nobody.pw_gid))
        os.chmod(m.dir, 0o755)
        r = ctl(m, "status", user=nobody)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("a ", r.stdout)
        os.chmod(ctlpath, 0o666)  # only the credentials keep the others out now
        r = ctl(m, "status", user=daemon)
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        bad = self.master({"a.cf": http_cf(pb, 1)}, args=["-control-group", "no-such-group-x"])
        r = bad.run()
        self.assertEqual(r.returncode, 1)
        self.assertIn("-control-group 'no-such-group-x': no such group", r.stdout + r.stderr + bad.log())

    def test_stuck_clients_do_not_delay_a_respawn(self):
        port = free_port()
        m = self.master({"a.cf": http_cf(port, 1)}).start()
        kid = m.wait_children(1)[0]
        ctlpath = m.pid_file[:-4] + ".ctl"
        stuck = []
        for i in range(40):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(ctlpath)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            if i % 2:
                s.sendall(b"status --json\n")  # asks, and never reads the answer
            else:
                s.sendall(b"stat")             # never finishes its request
            stuck.append(s)
        t0 = time.monotonic()
        os.kill(kid, signal.SIGKILL)
        wait_until(lambda: (lambda k: k and k[0] != kid)(m.children()), 3, what="the replacement")
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(status(m)["a"]["restarts"], 1)
        for s in stuck:
            s.close()

    def test_hammering_clients_do_not_delay_supervision(self):
        port = free_port()
        m = self.master({"a.cf": http_cf(port, 2)}).start()
        m.wait_children(2)
        stop, answered, errors = threading.Event(), [0], []

        def hammer():
            while not stop.is_set():
                try:
                    if raw(m, b"status --json\n").endswith(b"status 0\n"):
                        answered[0] += 1
                except OSError as e:
                    errors.append(repr(e))
        threads = [threading.Thread(target=hammer, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: answered[0] >= 20, 5, what="the hammering to get going")
            for _ in range(3):
                kids = m.children()
                t0 = time.monotonic()
                os.kill(kids[0], signal.SIGKILL)
                wait_until(lambda: len(m.children()) == 2 and kids[0] not in m.children(), 3,
                           what="the replacement")
                self.assertLess(time.monotonic() - t0, 1.5)
                n = m.log().count("log reopened")
                t0 = time.monotonic()
                m.signal(signal.SIGUSR1)
                wait_until(lambda: m.log().count("log reopened") > n, 3, interval=0.002, what="SIGUSR1 answered")
                self.assertLess(time.monotonic() - t0, 0.5)
                # A kill within 1 s of a start counts as a failed start and backs off.
                wait_until(lambda: all(p["uptime_ms"] > 1100 for p in status(m)["a"]["processes"]), 5,
                           interval=0.1, what="the replacement to be older than 1 s")
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        self.assertEqual(errors, [])
        self.assertEqual(status(m)["a"]["restarts"], 3)

    def test_garbage_and_oversize_requests(self):
        m, pa, pb = self.two()
        out = raw(m, b"x" * 5000)
        self.assertIn(b"longer than 1024 bytes", out)
        self.assertTrue(out.endswith(b"status 2\n"), out[-100:])
        out = raw(m, b"status\x00\xff\n")
        self.assertTrue(out.endswith(b"status 2\n"), out)
        out = raw(m, b"\x1b[2J\x01\n")
        self.assertIn(b"control characters", out)
        out = raw(m, b"\xff\xfe garbage\n")
        self.assertTrue(out.endswith(b"status 2\n"), out)
        out = raw(m, b"restart\n")
        self.assertTrue(out.endswith(b"status 2\n"), out)
        self.assertTrue(raw(m, b"status\r\n").endswith(b"status 0\n"))
        self.assertEqual(status(m)["a"]["state"], "running")

    def test_200_concurrent_clients(self):
        m, pa, pb = self.two()
        ctlpath = m.pid_file[:-4] + ".ctl"
        socks = []
        for _ in range(200):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(ctlpath)  # blocking: waits while the backlog is full
            s.settimeout(10)
            try:
                s.sendall(b"status\n")
            except BrokenPipeError:
                pass  # turned away (busy) and closed before it asked: the answer is there to read
            socks.append(s)
        def answer(s):
            try:
                return ask(s, b"")
            except ConnectionResetError:  # turned away while its request arrived: contract §10
                return b"(reset) error: busy\nstatus 1\n"
        replies = [answer(s) for s in socks]
        ok = sum(r.endswith(b"status 0\n") for r in replies)
        busy = sum(r.endswith(b"status 1\n") and b"busy" in r for r in replies)
        self.assertEqual(ok + busy, 200, [r for r in replies if not r.endswith((b"status 0\n", b"status 1\n"))][:3])
        self.assertGreaterEqual(ok, 128)
        self.assertEqual(status(m)["a"]["state"], "running")
        self.assertLessEqual(lib.fd_count(m.pid), 40, "every client's fd was closed")

    def test_metrics_parse(self):
        mport = free_port()
        m, pa, pb = self.two(args=["-metrics", "127.0.0.1:%d" % mport])
        r = ctl(m, "metrics")
        self.assertEqual(r.returncode, 0, r.stderr)
        fams = {f.name: f for f in text_string_to_metric_families(r.stdout)}
        ready = {s.labels["service"]: s.value for s in fams["masterd_service_processes_ready"].samples}
        self.assertEqual(ready, {"a": 2.0, "b": 2.0})
        states = [s for s in fams["masterd_service_state"].samples if s.value == 1]
        self.assertEqual(sorted((s.labels["service"], s.labels["state"]) for s in states),
                         [("a", "running"), ("b", "running")])
        self.assertEqual(fams["masterd_service_restarts"].type, "counter")
        conns = fams["masterd_process_connections"].samples
        self.assertEqual(len(conns), 4)
        backlog = fams["masterd_listener_backlog"].samples
        self.assertEqual(len(backlog), 2)
        # Over HTTP, read-only.
        out = http_get(mport, req=b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = out.split(b"\r\n\r\n", 1)
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
        self.assertEqual(fams["masterd_up"].samples[0].value, 1.0)
        for req, code in ((b"POST /metrics HTTP/1.0\r\n\r\n", b"405"), (b"GET /stop HTTP/1.0\r\n\r\n", b"404")):
            self.assertIn(b" " + code + b" ", http_get(mport, req=req).split(b"\r\n")[0] + b" ")
        self.assertEqual(status(m)["a"]["state"], "running")

    def test_scrapers_never_crowd_out_masterctl(self):
        mport = free_port()
        m, pa, pb = self.two(args=["-metrics", "127.0.0.1:%d" % mport])
        stuck = [socket.create_connection(("127.0.0.1", mport), timeout=5) for _ in range(40)]
        wait_until(lambda: http_get(mport, req=b"GET /metrics HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 503 "), 5,
                   what="scrapes beyond 32 at once turned away")
        r = ctl(m, "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        for s in stuck:
            s.close()
        out = wait_until(lambda: (lambda o: o if o.startswith(b"HTTP/1.1 200 ") else None)(
            http_get(mport, req=b"GET /metrics HTTP/1.0\r\n\r\n")), 5, what="a scrape served once the others left")
        self.assertIn(b"masterd_up 1", out)

    def test_idle_with_control_socket_open(self):
        port = free_port()
        m = self.master({"a.cf": http_cf(port, 1)}).start()
        m.wait_children(1)
        wait_until(lambda: status(m)["a"]["state"] == "running", 5, what="running")
        # A client that connected and left must leave no timer behind.
        raw(m, b"status\n")
        time.sleep(0.1)
        woke = lib.wakeups(m.pid, 2.0)
        self.assertEqual(woke, 0, "masterd woke up %d times in 2 s while idle" % woke)

    def test_silent_client_is_closed_after_idle_time(self):
        m, pa, pb = self.two()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(m.pid_file[:-4] + ".ctl")
        s.settimeout(15)
        t0 = time.monotonic()
        self.assertEqual(ask(s, b"sta"), b"")  # never finishes its line
        self.assertGreater(time.monotonic() - t0, 9.0)
        self.assertEqual(status(m)["a"]["state"], "running")

    def test_control_socket_path_safety(self):
        port = free_port()
        m = self.master({"a.cf": http_cf(port, 1)})
        ctlpath = m.pid_file[:-4] + ".ctl"
        # A live socket of someone else's at the path: refused, and left alone.
        other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        other.bind(ctlpath)
        other.listen(1)
        m.start(wait_ready=False)
        self.assertEqual(m.wait_exit(10), 1)
        self.assertIn("in use by another process", m.log())
        self.assertTrue(os.path.exists(ctlpath))
        other.close()
        os.unlink(ctlpath)
        # A regular file there is not removed either.
        with open(ctlpath, "w") as f:
            f.write("x")
        m.start(wait_ready=False)
        self.assertEqual(m.wait_exit(10), 1)
        self.assertIn("not a socket", m.log())
        os.unlink(ctlpath)
        # A stale socket (its masterd died) is replaced; ours is removed on exit.
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(ctlpath)
        stale.close()
        m.start()
        self.assertEqual(status(m)["a"]["wanted"], 1)
        self.assertEqual(m.stop(), 0)
        self.assertFalse(os.path.exists(ctlpath))
        r = ctl(m, "status")
        self.assertEqual(r.returncode, 3)
        self.assertIn("not running", r.stderr)

    def test_control_none_and_explicit_path(self):
        port = free_port()
        m = self.master({"a.cf": http_cf(port, 1)}, args=["-control", "none"]).start()
        m.wait_children(1)
        self.assertFalse(os.path.exists(m.pid_file[:-4] + ".ctl"))
        m.stop()
        path = m.path("x.sock")
        m2 = self.master({"a.cf": http_cf(port, 1)}, args=["-control", path]).start()
        m2.wait_children(1)
        r = wait_until(lambda: (lambda r: r if r.returncode == 0 and " running " in r.stdout else None)(
            subprocess.run([MASTERCTL, "-control", path, "status"], capture_output=True, text=True, timeout=10)),
            5, what="status over the explicit path")
        self.assertRegex(r.stdout, r"(?m)^a\s+running")


if __name__ == "__main__":
    unittest.main()
