"""Helpers for the end-to-end tests: temp config dirs, a real masterd, sockets, /proc, polling.

Everything is real: masterd and the servers are the built binaries, traffic goes to 127.0.0.1,
[::1] or unix sockets in a temp dir.  Deadlines are asserted by polling (`wait_until`), never by
a fixed sleep.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("ZS_BUILD") or os.path.join(ROOT, "build")  # build-san for SAN=1
MASTERD = os.path.join(BUILD, "masterd", "masterd")
FDSERVER = os.path.join(BUILD, "t", "tools", "fdserver")
# E2E_VALGRIND=1: every masterd runs under valgrind memcheck (see valgrind_prefix); deadlines
# that include masterd's own start-up stretch by SLOW.
VALGRIND = bool(os.environ.get("E2E_VALGRIND"))
SLOW = 4.0 if VALGRIND else 1.0


def sample(name):
    return os.path.join(BUILD, "sample", name)


def tool(name):
    return os.path.join(BUILD, "t", "tools", name)


def wait_until(fn, timeout=5.0, interval=0.02, what="condition"):
    """Polls fn() until it returns a true value (returned) or raises AssertionError at timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - a poll may race with process start
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s%s" % (
                timeout, what, " (last error: %r)" % last_exc if last_exc else ""))
        time.sleep(interval)


def free_port(family=socket.AF_INET):
    """A port free on loopback for both IPv4 and IPv6 right now."""
    for _ in range(100):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        port = s.getsockname()[1]
        s.close()
        try:
            t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            t.bind(("::1", port))
            t.close()
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def connect(addr, timeout=5.0):
    if isinstance(addr, str):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = addr
    elif ":" in addr[0]:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        target = addr
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        target = addr
    s.settimeout(timeout)
    s.connect(target)
    return s


def read_to_eof(s):
    """What s gives until EOF, as bytes."""
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def fetch(addr, timeout=5.0, send=None):
    """Connects, optionally sends, reads until EOF; returns bytes."""
    s = connect(addr, timeout)
    try:
        if send:
            s.sendall(send)
        return read_to_eof(s)
    finally:
        s.close()


def report(addr, timeout=5.0):
    """Asks a t/tools/fdserver for its report: {'pid': int, 'fds': {fd: target}, 'env': {..}, ...}."""
    text = fetch(addr, timeout).decode()
    assert text.endswith("end\n"), "truncated fdserver report: %r" % text[-200:]
    out = {"env": {}, "fds": {}}
    for line in text.splitlines():
        if line.startswith("env="):
            k, _, v = line[4:].partition("=")
            out["env"][k] = v
        elif line.startswith("fds="):
            # "3:socket:[1] 1:/x/log (deleted)": a target may contain blanks, an fd never does.
            for item in re.split(r" (?=\d+:)", line[4:].strip()):
                fd, _, target = item.partition(":")
                out["fds"][int(fd)] = target
        elif "=" in line:
            k, _, v = line.partition("=")
            out[k] = int(v) if k in ("pid", "pgid", "ppid") else v
    return out


def proc_stat(pid):
    """(state, ppid, pgrp) from /proc/PID/stat, or None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[2])


def alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def children(ppid):
    """Live (non-zombie) children of ppid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        st = proc_stat(int(d))
        if st and st[1] == ppid and st[0] != "Z":
            out.append(int(d))
    return sorted(out)


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children(p):
            out.append(c)
            todo.append(c)
    return out


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def port_free(port, host="127.0.0.1"):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        s.connect((host, port))
        return False
    except OSError:
        return True
    finally:
        s.close()


class Master:
    """A real masterd on a temp config dir.  files: {name: text}; `{dir}` in a text is the dir."""

    def __init__(self, files=None, args=(), env=None, log_to_file=True, cwd=None):
        self.dir = tempfile.mkdtemp(prefix="md-", dir="/tmp")
        self.cf = os.path.join(self.dir, "cf")
        os.mkdir(self.cf)
        self.pid_file = os.path.join(self.dir, "masterd.pid")
        self.log_path = os.path.join(self.dir, "masterd.log")
        self.args = list(args)
        self.env = env
        self.cwd = cwd or self.dir
        self.proc = None
        self.known = set()
        for name, text in (files or {}).items():
            self.write(name, text)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def write(self, name, text):
        p = os.path.join(self.cf, name)
        tmp = p + ".tmp~"
        with open(tmp, "w") as f:
            f.write(text.replace("{dir}", self.dir))
        os.rename(tmp, p)

    def remove(self, name):
        os.unlink(os.path.join(self.cf, name))

    def cmdline(self, *extra):
        return valgrind_prefix(self.dir) + [MASTERD, "-C", self.cf, "-pid-file", self.pid_file] + self.args + list(extra)

    def start(self, wait_ready=True, expect_children=None):
        self.logf = open(self.log_path, "ab")
        env = dict(os.environ if self.env is None else self.env)
        self.proc = subprocess.Popen(self.cmdline(), stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, cwd=self.cwd, env=env)
        self.pid = self.proc.pid
        if wait_ready:
            wait_until(lambda: os.path.exists(self.pid_file) and "started" in self.log(), 5 * SLOW,
                       what="masterd to start")
        if expect_children is not None:
            self.wait_children(expect_children)
        return self

    def run(self, *extra, timeout=10):
        """Runs masterd to completion (for -t, --try-lock, failures); returns CompletedProcess."""
        return subprocess.run(self.cmdline(*extra), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout, cwd=self.cwd)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def children(self):
        kids = children(self.pid)
        self.known.update(kids)
        return kids

    def wait_children(self, n, timeout=5.0):
        return wait_until(lambda: (lambda k: k if len(k) == n else None)(self.children()), timeout,
                          what="%d children (have %r)" % (n, self.children()))

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait_exit(self, timeout=15.0):
        return self.proc.wait(timeout)

    def stop(self, timeout=15.0):
        if self.proc and self.proc.poll() is None:
            self.known.update(descendants(self.pid))
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait()
        return self.proc.returncode if self.proc else None

    def cleanup(self):
        try:
            self.stop(timeout=10)
        finally:
            for pid in list(self.known):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            if getattr(self, "logf", None):
                self.logf.close()
            sanitizer_reports_in_log(self.log(), self.dir)
            if os.environ.get("E2E_KEEP"):
                print("kept", self.dir)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)


class MasterTest(unittest.TestCase):
    """A TestCase that cleans up every Master it made, and prints its log when a test fails."""

    def setUp(self):
        self.masters = []

    def master(self, files=None, **kw):
        m = Master(files, **kw)
        self.masters.append(m)
        return m

    def tearDown(self):
        outcome = getattr(self, "_outcome", None)
        failed = False
        if outcome is not None:
            res = getattr(outcome, "result", None)
            if res is not None:
                failed = any(t is self for t, _ in res.failures + res.errors)
        for m in self.masters:
            if failed:
                print("---- masterd log (%s) ----\n%s" % (m.dir, m.log()[-6000:]))
            m.cleanup()


# ---- /proc helpers added for the masterd core tests (test_core_*.py) ----

def proc_status(pid):
    """/proc/PID/status as {field: value string}, or None when gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            return dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)
    except OSError:
        return None


def wakeups(pid, seconds):
    """How many times pid went to sleep and woke (voluntary context switches) in `seconds`."""
    before = int(proc_status(pid)["voluntary_ctxt_switches"])
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:  # the measurement window itself, not a deadline
        time.sleep(0.2)
    return int(proc_status(pid)["voluntary_ctxt_switches"]) - before


def proc_environ(pid):
    """The environment a process was exec'd with, as a list of NAME=value strings (in order)."""
    with open("/proc/%d/environ" % pid, "rb") as f:
        return [e.decode(errors="replace") for e in f.read().split(b"\0") if e]


def fd_links(pid):
    """{fd: readlink target} of a live process."""
    out = {}
    base = "/proc/%d/fd" % pid
    for d in os.listdir(base):
        try:
            out[int(d)] = os.readlink(os.path.join(base, d))
        except OSError:
            pass
    return out


def socket_info(pid, target):
    """What a 'socket:[INODE]' fd of pid is, from /proc/PID/net: ('tcp', port), ('tcp6', port),
    ('unix', type, path) with type 1 = STREAM, 2 = DGRAM, 5 = SEQPACKET; None when not found."""
    if not target.startswith("socket:["):
        return None
    inode = target[8:-1]
    for proto in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, proto)) as f:
                for line in f.readlines()[1:]:
                    parts = line.split()
                    if parts[9] == inode:
                        return (proto, int(parts[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    with open("/proc/%d/net/unix" % pid) as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if parts[6] == inode:
                return ("unix", int(parts[4], 16), parts[7] if len(parts) > 7 else "")
    return None


# ---- fault suite, sanitizer and valgrind helpers (t/fault/) ----

def valgrind_prefix(fallback_dir):
    """The valgrind command masterd is wrapped in when E2E_VALGRIND is set (else []).  Logs go
    to E2E_REPORT_DIR (run.py fails a module whose logs show errors) or fallback_dir.  A memory
    error or a definite leak also makes masterd exit 99."""
    if not VALGRIND:
        return []
    d = os.environ.get("E2E_REPORT_DIR") or fallback_dir
    return ["valgrind", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
            "--track-fds=no", "--log-file=%s/vg.%%p" % d]


def proc_cpu(pid):
    """utime + stime of pid in seconds (from /proc/PID/stat), or None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def can_bind(port, host="127.0.0.1"):
    """True when a listening socket can be bound on host:port right now (nobody holds it)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((host, port))
        s.listen(1)
        return True
    except OSError:
        return False
    finally:
        s.close()


def burst_2000(test, port, burst):
    """2000 HTTP/1.0 GETs, 256 at a time, against 127.0.0.1:port with t/tools/burst: every one
    must be answered 200 (none refused, reset or timed out)."""
    wait_until(lambda: fetch(("127.0.0.1", port), send=b"GET / HTTP/1.0\r\n\r\n"), 5)
    r = subprocess.run([burst, "-a", "127.0.0.1:%d" % port, "-n", "2000", "-p", "256", "-s",
                        "GET / HTTP/1.0\\r\\n\\r\\n", "-e", "HTTP/1.1 200 OK", "-t", "20"],
                       capture_output=True, text=True, timeout=60)
    print(r.stdout.strip())
    test.assertIn("ok=2000 refused=0 reset=0 timeout=0 bad=0 other=0", r.stdout)
    test.assertEqual(r.returncode, 0)


def probe_events(path):
    """{pid: [event lines]} from a t/tools/tlib_probe output file (probe-out)."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                pid, _, ev = line.rstrip("\n").partition(" ")
                out.setdefault(int(pid), []).append(ev)
    except FileNotFoundError:
        pass
    return out


# The start of a python program that speaks the status channel (CONTRACT section 5) without
# libzserver: rec(type, value) sends one record.  Tests append what their child does.
CHANNEL_CHILD = r'''#!/usr/bin/env python3
import os, signal, socket, struct, sys, time
fd = int(os.environ["ZMASTER_STATUS_FD"]); gen = int(os.environ["ZMASTER_GENERATION"])
s = socket.socket(fileno=fd)
def rec(t, v=0):
    s.send(struct.pack("<IIIi", 0x7a6d7331, t, gen, v))
'''


def script(m, name, text):
    """Writes an executable file into m's temp dir (a program for server-command); returns its path."""
    p = m.path(name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, 0o755)
    return p


def started_pids(log, sid):
    """Pids masterd logged as started for service sid, in order."""
    import re
    return [int(p) for p in re.findall(r" %s: started pid (\d+)" % re.escape(sid), log)]


SANITIZER_MARKS = ("runtime error: ", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "ERROR: UndefinedBehaviorSanitizer")


def sanitizer_finding(text):
    """False for a sanitizer report file that says only that LeakSanitizer could not run (its
    tracer lost the process: SIGKILLed while the exit-time leak check ran, by a stop's
    escalation or a process-group kill): nothing was checked, so nothing was found.  Any report
    with an error in it is a finding."""
    return not ("Unable to get registers from thread" in text and
                not any(mk in text for mk in SANITIZER_MARKS + ("ERROR:", "SUMMARY:")))


def sanitizer_reports_in_log(text, where):
    """Copies a sanitizer report found in a log (masterd's and its children's stderr) into
    E2E_REPORT_DIR, so run.py fails the module.  Needed for UBSan: combined with ASan (GCC) it
    writes to stderr whatever log_path says."""
    d = os.environ.get("E2E_REPORT_DIR")
    hits = [i for i, line in enumerate(text.splitlines()) if any(mk in line for mk in SANITIZER_MARKS)]
    if not d or not hits:
        return
    lines = text.splitlines()
    fd, path = tempfile.mkstemp(prefix="log-report.", dir=d)
    with os.fdopen(fd, "w") as f:
        f.write("in the log of %s:\n" % where)
        f.write("\n".join(lines[max(0, hits[0] - 5):hits[0] + 40]) + "\n")
