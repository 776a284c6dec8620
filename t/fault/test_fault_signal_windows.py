"""Signals that arrive in masterd's narrow windows (found by a hostile tester):

- between the pid file and the signal handlers (the config still loading): a SIGHUP, SIGUSR1
  or SIGUSR2 from logrotate or a reload script must wait and be acted on, never kill masterd
  with the default action;
- between fork() and execve() of a child: a stop sent to a child of a generation superseded
  at once (two restarts a few ms apart) must not be swallowed by the master's handler still
  installed in the child, leaving a process that serves on until the SIGKILL M+5 s later.
"""
import os
import signal
import subprocess
import time

import lib
from lib import wait_until


class SignalWindows(lib.MasterTest):

    def big_config(self, m):
        # ~6 MB of keys: loading it takes long enough after the pid file for a signal to land.
        with open(os.path.join(m.cf, "big.cf"), "w") as f:
            f.write("server-command = %s\n" % lib.FDSERVER)
            for i in range(60000):
                f.write("key%d = %s\n" % (i, "v" * 100))

    def test_signal_while_the_config_loads(self):
        for sig, then in ((signal.SIGHUP, "reload: "), (signal.SIGUSR1, "log reopened"),
                          (signal.SIGUSR2, None)):
            with self.subTest(sig=sig.name):
                m = self.master({})
                self.big_config(m)
                m.logf = open(m.log_path, "ab")
                m.proc = subprocess.Popen(m.cmdline(), stdin=subprocess.DEVNULL, stdout=m.logf,
                                          stderr=subprocess.STDOUT, cwd=m.cwd)
                m.pid = m.proc.pid
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    try:
                        if os.path.getsize(m.pid_file) > 0:
                            break
                    except OSError:
                        pass
                    time.sleep(0.001)
                os.kill(m.pid, sig)
                wait_until(lambda: "started" in m.log() or m.proc.poll() is not None, 20,
                           what="masterd to start")
                self.assertIsNone(m.proc.poll(), "masterd died of %s: %s" % (sig.name, m.log()[-300:]))
                if then:
                    wait_until(lambda: then in m.log(), 10, what="the deferred %s to be handled" % sig.name)
                self.assertEqual(m.stop(), 0)

    def test_stop_between_fork_and_exec_is_not_lost(self):
        port = lib.free_port()
        m = self.master({"g.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\nserver-proc-count = 3\n"
                         % (lib.sample("http_hello_co"), port)})
        m.start(expect_children=3)
        for i in range(40):
            m.signal(signal.SIGUSR2)
            time.sleep(0.001 * (i % 10))
            m.signal(signal.SIGUSR2)
            time.sleep(0.1)
        # Every superseded child honours its stop: none is left to be killed at the deadline.
        wait_until(lambda: len(m.children()) == 3, 20, what="only the last generation to remain")
        lost = [l for l in m.log().splitlines() if "did not stop in time" in l]
        self.assertEqual(lost, [], "%d stops lost" % len(lost))
        self.assertEqual(m.stop(), 0)


if __name__ == "__main__":
    import unittest
    unittest.main()
