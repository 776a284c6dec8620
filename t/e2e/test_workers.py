"""Self-hosted multi-process mode (doc/CONTRACT.md §9, the Melon seed): `prog alone -server-proc-count N`."""
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

from lib import alive, children, fetch, free_port, sample, tool, wait_until, MasterTest

HELLO = sample("hello_workers")
PROBE = tool("tlib_probe")
BURST = tool("burst")


class Workers(unittest.TestCase):
    def setUp(self):
        self.procs = []
        self.logs = []

    def start(self, *args):
        log = tempfile.NamedTemporaryFile(prefix="workers-", suffix=".log", delete=False)
        self.logs.append(log.name)
        p = subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(p)
        p.log_path = log.name
        return p

    def log(self, p):
        with open(p.log_path, errors="replace") as f:
            return f.read()

    def tearDown(self):
        for p in self.procs:
            kids = children(p.pid)
            if p.poll() is None:
                p.kill()
                p.wait()
            for k in kids:
                try:
                    os.kill(k, signal.SIGKILL)
                except OSError:
                    pass
        for name in self.logs:
            os.unlink(name)

    def test_hello_workers_melon_seed(self):
        p = self.start(HELLO, "alone", "-server-proc-count", "3")
        t0 = time.monotonic()
        hello_re = re.compile(r"^\d\d/\d\d/\d{4} \d\d:\d\d:\d\d UTC INFO: hello_workers\.c:print_handler:\d+: "
                              r"PID:(\d+) hello world$", re.M)
        pids = wait_until(lambda: (lambda s: s if len(s) >= 3 else None)(set(hello_re.findall(self.log(p)))),
                          5, what="3 workers saying hello world")
        took = time.monotonic() - t0
        self.assertLess(took, 2.5 + 1.0, "first hellos took %.2f s" % took)
        for k in (1, 2, 3):
            self.assertRegex(self.log(p), r"Start up worker process No\.%d \(pid \d+\)" % k)
        workers = children(p.pid)
        self.assertEqual(len(workers), 3)
        self.assertEqual(set(int(x) for x in pids), set(workers))
        # kill -9 worker No.2: a new pid takes its number.
        no2 = int(re.search(r"Start up worker process No\.2 \(pid (\d+)\)", self.log(p)).group(1))
        os.kill(no2, signal.SIGKILL)
        newpid = wait_until(lambda: (lambda m: int(m[-1]) if m and int(m[-1]) != no2 else None)(
            re.findall(r"Start up worker process No\.2 \(pid (\d+)\)", self.log(p))), 3, what="No.2 respawned")
        self.assertTrue(alive(newpid))
        wait_until(lambda: re.search(r"PID:%d hello world" % newpid, self.log(p)), 3, what="new No.2 says hello")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(10), 0)
        for w in workers + [newpid]:
            wait_until(lambda: not alive(w), 3, what="worker %d gone" % w)

    def test_crashing_worker_backs_off(self):
        p = self.start(PROBE, "alone", "-server-proc-count", "1", "-probe-crash", "yes")
        time.sleep(5.0)  # the window the backoff schedule is measured over, not a wait for a result
        starts = len(re.findall(r"Start up worker process No\.1", self.log(p)))
        # 0, 0.1, 0.3, 0.7, 1.5, 3.1 s: six starts in five seconds (a little slack for a slow machine).
        self.assertGreaterEqual(starts, 4, self.log(p))
        self.assertLessEqual(starts, 8, self.log(p))
        self.assertRegex(self.log(p), r"failed \d+ times in a row; next try in 1600 ms")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(10), 0)

    def test_workers_share_the_listener(self):
        port = free_port()
        p = self.start(PROBE, "alone", "-server-proc-count", "3", "-server-service", "127.0.0.1:%d" % port)
        wait_until(lambda: len(children(p.pid)) == 3, 5)
        wait_until(lambda: fetch(("127.0.0.1", port)), 5)
        r = subprocess.run([BURST, "-a", "127.0.0.1:%d" % port, "-n", "600", "-p", "32", "-e", "pid="],
                           capture_output=True, text=True, timeout=60)
        self.assertIn("ok=600 refused=0", r.stdout)
        n = int(re.search(r"pids=(\d+)", r.stdout).group(1))
        self.assertGreater(n, 1, "a burst should reach more than one worker: %s" % r.stdout)
        p.send_signal(signal.SIGINT)
        self.assertEqual(p.wait(10), 0)

    def test_rlimits_in_workers(self):
        p = self.start(HELLO, "alone", "-server-proc-count", "2", "-server-max-nofile", "777",
                       "-server-core-size", "unlimited")
        kids = wait_until(lambda: (lambda k: k if len(k) == 2 else None)(children(p.pid)), 5)
        for k in kids:
            limits = open("/proc/%d/limits" % k).read()
            self.assertRegex(limits, r"Max open files\s+777\s+777")
            self.assertRegex(limits, r"Max core file size\s+unlimited\s+unlimited")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(10), 0)


class RlimitsUnderMasterd(MasterTest):
    def test_rlimit_keys_applied_before_exec(self):
        from lib import FDSERVER, report
        port = free_port()
        m = self.master({"r.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\nserver-max-nofile = 1234\n"
                         "server-core-size = 4096\n" % (FDSERVER, port)}).start(expect_children=1)
        pid = report(("127.0.0.1", port))["pid"]
        limits = open("/proc/%d/limits" % pid).read()
        self.assertRegex(limits, r"Max open files\s+1234\s+1234")
        self.assertRegex(limits, r"Max core file size\s+4096\s+4096")

    @unittest.skipUnless(os.geteuid() == 0, "server-user needs root (not root: skipped)")
    def test_server_user_drops_privileges(self):
        from lib import FDSERVER, report
        import pwd
        nobody = pwd.getpwnam("nobody")
        port = free_port()
        m = self.master({"u.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\nserver-user = nobody\n"
                         % (FDSERVER, port)})
        os.chmod(m.dir, 0o755)
        m.start(expect_children=1)
        pid = report(("127.0.0.1", port))["pid"]
        status = open("/proc/%d/status" % pid).read()
        uid = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
        gid = re.search(r"^Gid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
        self.assertEqual(set(int(x) for x in uid), {nobody.pw_uid})
        self.assertEqual(set(int(x) for x in gid), {nobody.pw_gid})
