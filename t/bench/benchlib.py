"""What the benchmarks share (t/bench/bench.py, t/bench/bench_scale.py): paths, knobs, the processes
we start and how we stop them, /proc readers, and the markdown tables (collected in RESULTS)."""
import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, "build")
OUT = os.path.join(BUILD, "bench")
MASTERD = os.path.join(BUILD, "masterd", "masterd")
HTTP_HELLO = os.path.join(BUILD, "sample", "http_hello")
TINY = os.path.join(OUT, "tinyserv")
RESPAWN = os.path.join(OUT, "respawn")
COROUTINE_RUN = os.path.join(ROOT, "t", "bench", "coroutine", "run.sh")
HZ = os.sysconf("SC_CLK_TCK")

KILLS = int(os.environ.get("BENCH_KILLS", "50"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
SCALE = os.environ.get("BENCH_SCALE", "100x10")
WORKERS = 2
CONNS = 50
SUP_LIMIT = int(os.environ.get("BENCH_SUP_LIMIT", "40"))  # seconds supervisord gets to start its processes
SPAWNCOST = os.path.join(OUT, "spawncost")
BURST = os.path.join(BUILD, "t", "tools", "burst")
HERD = os.path.join(OUT, "herd")

RESULTS = []    # markdown blocks, in order


# ---------------------------------------------------------------- processes and /proc

def wait_until(fn, timeout, interval=0.02):
    """Polls fn() until it returns a true value (returned) or timeout seconds pass (None)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = fn()
        except OSError:
            v = None
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def stat(pid):
    """(comm, ppid, utime+stime ticks) of pid, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    comm = s[s.index("(") + 1:s.rindex(")")]
    f = s[s.rindex(")") + 2:].split()
    return comm, int(f[1]), int(f[11]) + int(f[12])


def status_field(pid, name):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                st = stat(int(d))
                if st and st[1] == pid:
                    out.append(int(d))
        return out


def descendants(pid):
    out, todo = [], [pid]
    while todo and len(out) < 100000:
        for c in children(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


def cpu(pids):
    """Sum of utime+stime (seconds) of the pids still alive."""
    t = 0
    for p in pids:
        st = stat(p)
        if st:
            t += st[2]
    return t / HZ


def alive(pid):
    st = stat(pid)
    return st is not None and not _zombie(pid)


def _zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        return s[s.rindex(")") + 2] == "Z"
    except OSError:
        return True


class Proc:
    """A process we started: stopped with its whole tree, by pid."""
    live = []

    def __init__(self, name, argv, env=None, log=None, cwd=None):
        self.name = name
        self.log = log
        out = open(log, "ab") if log else subprocess.DEVNULL
        self.p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT)
        if log:
            out.close()
        self.pid = self.p.pid
        Proc.live.append(self)

    def stop(self, sig=signal.SIGTERM, grace=10.0):
        """sig to the root, wait (bounded) for the root and every descendant, then SIGKILL them."""
        tree = descendants(self.pid)
        if self.p.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if self.p.poll() is not None and not any(alive(c) for c in tree):
                break
            time.sleep(0.02)
        if self.p.poll() is None:
            # Still there: freeze it (a supervisor may still be starting children), then take
            # every descendant it has now, so none is left behind, reparented, once it is gone.
            try:
                os.kill(self.pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass
            tree = list(dict.fromkeys(tree + descendants(self.pid)))
        for c in tree + [self.pid]:
            if alive(c):
                try:
                    os.kill(c, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self in Proc.live:
            Proc.live.remove(self)


def stop_all():
    for p in list(Proc.live):
        p.stop(grace=3.0)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_ok(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while len(data) < 4096:
                b = s.recv(4096)
                if not b:
                    break
                data += b
            return data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello")
    except OSError:
        return False


def tiny_ok(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            return s.recv(64).strip().isdigit()
    except OSError:
        return False


# ---------------------------------------------------------------- tables

def pct(values, q):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def fmt(x, nd=2):
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    if isinstance(x, int):
        return str(x)
    if abs(x) >= 1000:
        return "%.0f" % x
    return ("%." + str(nd) + "f") % x


def ratio(a, b):
    if a is None or b is None or b == 0 or a != a or b != b:
        return "-"
    return "%.2f×" % (a / b)


def verdict(ok):
    return "**met**" if ok else "**NOT met**"


def verdict_noise(ok, ours, peer, goal):
    """verdict(ok) of the medians, saying so when the rounds do not decide it: when the range of
    our rounds overlaps the range of the peer's rounds times the goal, some pairing of rounds meets
    the goal and another does not, and the machine's noise, not the code, decides the verdict."""
    out = verdict(ok)
    a, b = [x for x in ours if x is not None], [x * goal for x in peer if x is not None]
    if len(a) >= 2 and len(b) >= 2 and min(a) <= max(b) and min(b) <= max(a):
        out += " (our rounds %s–%s overlap nginx's × %.2f, %s–%s: noise decides)" % (
            fmt(min(a), 3), fmt(max(a), 3), goal, fmt(min(b), 3), fmt(max(b), 3))
    return out


def table(title, header, rows, notes=()):
    lines = ["### " + title, "", "| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    if notes:
        lines.append("")
        lines.extend(notes)
    block = "\n".join(lines) + "\n"
    RESULTS.append(block)
    print(block, flush=True)


def say(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)
