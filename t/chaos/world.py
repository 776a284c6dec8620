"""The world a chaos run drives: one config dir, the real masterd on it, its processes and a model
of what masterd should be running.

The model keeps two views of the config dir: `disk` (the files as written) and `applied` (what
masterd last accepted: at its start, or at a reload it logged as successful).  Expectations are
taken from `applied`, and whether a reload succeeded is read from masterd's log, never guessed,
so the tester cannot disagree with masterd about which config is live.
"""
import copy
import os
import signal
import socket
import subprocess
import threading
import time

import lib  # t/e2e/lib.py

MARK = "CHAOS_RUN"  # in masterd's environment; every descendant inherits it


class Failure(Exception):
    """An invariant that did not hold.  kind names the invariant (what shrinking must reproduce)."""

    def __init__(self, kind, detail):
        super().__init__("%s: %s" % (kind, detail))
        self.kind = kind
        self.detail = detail


def poll(fn, timeout, interval=0.02):
    """fn() until true (returned) or the deadline (returns None).  Never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = fn()
        except Exception:  # noqa: BLE001 - a /proc read may race with an exit
            v = None
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


class LogTail:
    """masterd's log file read incrementally; lines kept in order."""

    def __init__(self, path):
        self.path = path
        self.off = 0
        self.lines = []
        self.partial = b""

    def update(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except OSError:
            return self.lines
        self.off += len(data)
        data = self.partial + data
        parts = data.split(b"\n")
        self.partial = parts.pop()
        self.lines.extend(p.decode(errors="replace") for p in parts)
        return self.lines

    def count(self, text, start=0):
        self.update()
        return sum(1 for l in self.lines[start:] if text in l)


# ---- /proc ----

def proc_info(pid):
    """(state, ppid, comm, starttime) or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    comm = data[data.index("(") + 1:data.rindex(")")]
    rest = data[data.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), comm, int(rest[19])


def environ(pid):
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def marked(run_id):
    """{pid: (state, ppid, comm, start)} of live processes carrying this run's mark."""
    mark = ("%s=%s" % (MARK, run_id)).encode()
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit() and mark in environ(int(d)):
            info = proc_info(int(d))
            if info and info[0] != "Z":
                out[int(d)] = info
    return out


def rss_kb(pid):
    st = lib.proc_status(pid) or {}
    return int(st.get("VmRSS", "0 kB").split()[0])


class Clients(threading.Thread):
    """Keeps connecting to the healthy listeners; a refused connection while not paused is a
    failure (a configured listener must always accept)."""

    def __init__(self, world):
        super().__init__(daemon=True)
        self.world = world
        self.paused = threading.Event()
        self.quit = threading.Event()
        self.lock = threading.Lock()
        self.refused = []
        self.ok = 0

    def run(self):
        while not self.quit.is_set():
            if self.paused.is_set():
                time.sleep(0.05)
                continue
            for addr, payload in self.world.healthy_addrs():
                if self.paused.is_set() or self.quit.is_set():
                    break
                try:
                    lib.fetch(addr, timeout=self.world.cfg.io_timeout, send=payload)
                    with self.lock:
                        self.ok += 1
                except ConnectionRefusedError as e:
                    if not self.paused.is_set():
                        with self.lock:
                            self.refused.append((time.monotonic(), addr, repr(e)))
                except OSError:
                    pass  # a reset or timeout: the child serving it may have just been killed
            time.sleep(0.02)

    def take_refused(self):
        with self.lock:
            r, self.refused = self.refused, []
        return r


class World:
    """One config dir, one masterd at a time on it, and the model."""

    HEALTHY = ("fd_tcp", "fd_unix", "http")

    def __init__(self, cfg, run_id):
        self.cfg = cfg
        self.run_id = run_id
        self.m = lib.Master()
        self.dir = self.m.dir
        self.src = os.path.join(self.dir, "src")  # symlink targets
        self.san_dir = os.path.join(self.dir, "san")
        os.mkdir(self.src)
        os.mkdir(self.san_dir)
        self.ports = {"fd_tcp": lib.free_port(), "http": lib.free_port()}
        self.disk = {}
        for sid in self.HEALTHY:
            self.disk[sid] = {"kind": sid, "count": 2 if sid != "fd_unix" else 1, "touch": 0}
        self.applied = {}
        self.applied_at = {}  # sid -> monotonic time it became applied
        self.seen = {}  # pid -> (start, comm, cmdline) of every descendant of masterd seen
        self.junk_seq = 0
        self.baseline = None  # (fds, rss) of this masterd in the canonical state
        self.latencies = []
        self.clients = Clients(self)
        self.regen_events = []  # monotonic times of every SIGHUP / SIGUSR2 sent
        self.ctl_junk = []  # hostile control-socket clients left open until the next such op
        for sid in self.HEALTHY:
            self.write_cf(sid)

    # ---- files ----

    def cf_text(self, sid, spec):
        b = self.cfg.build
        k = spec["kind"]
        lines = []
        if k == "fd_tcp":
            lines += ["server-command = %s/t/tools/fdserver serve" % b,
                      "server-service = 127.0.0.1:%d" % self.ports["fd_tcp"]]
        elif k == "fd_unix":
            lines += ["server-command = %s/t/tools/fdserver serve" % b,
                      "server-service = %s/fd.sock" % self.dir]
        elif k == "http":
            lines += ["server-command = %s/sample/http_hello" % b,
                      "server-service = 127.0.0.1:%d" % self.ports["http"]]
        elif k == "crash":
            lines += ["server-command = /bin/false"]
        elif k == "tlib_noready":
            lines += ["server-command = %s/t/tools/tlib_probe" % b, "probe-hang-before-ready = yes",
                      "probe-out = %s/probe.out" % self.dir, "server-ready-timeout = 1"]
        elif k.startswith("hostile_"):
            mode = k[len("hostile_"):]
            lines += ["server-command = %s/t/tools/chaos_child %s %s/cap.%s 40" % (
                b, mode, self.dir, spec.get("cap", sid))]
            if mode == "noready":
                lines += ["server-ready-timeout = 1"]
        elif k == "bad_value":
            lines += ["server-command = /bin/false", "server-proc-count = 3x"]
        elif k == "bad_key":
            lines += ["server-command = /bin/false", "server-bogus-key = 1"]
        elif k == "overlong":
            lines += ["server-command = /bin/false", "note = " + "x" * 250]
        if k not in ("bad_value",):
            lines.append("server-proc-count = %d" % spec["count"])
        if spec.get("port"):
            lines.append("server-service = 127.0.0.1:%d" % spec["port"])
        lines.append("# touch %d" % spec.get("touch", 0))
        return "\n".join(lines) + "\n"

    def cf_path(self, sid):
        return os.path.join(self.m.cf, sid + ".cf")

    def write_cf(self, sid):
        spec = self.disk[sid]
        path = self.cf_path(sid)
        if spec.get("dangling"):
            os.symlink(os.path.join(self.src, "missing-%s.cf" % sid), path)
            return
        text = self.cf_text(sid, spec)
        if spec.get("symlink"):
            target = os.path.join(self.src, sid + ".cf")
            with open(target, "w") as f:
                f.write(text)
            if not os.path.islink(path):
                os.symlink(target, path)
        else:
            self.m.write(sid + ".cf", text)

    def remove_cf(self, sid):
        os.unlink(self.cf_path(sid))
        del self.disk[sid]

    def rename_cf(self, sid, new):
        os.rename(self.cf_path(sid), self.cf_path(new))
        self.disk[new] = self.disk.pop(sid)

    def disk_valid(self):
        return all(s.get("valid", True) and not s.get("dangling") for s in self.disk.values())

    def make_canonical(self):
        """Removes every junk file: only the healthy services remain (a valid dir)."""
        for sid in list(self.disk):
            if sid not in self.HEALTHY:
                self.remove_cf(sid)

    # ---- masterd ----

    @property
    def pid(self):
        return self.m.pid

    def start(self):
        env = dict(os.environ)
        env[MARK] = self.run_id
        env["ASAN_OPTIONS"] = ("detect_leaks=1:abort_on_error=0:halt_on_error=1:disable_coredump=0:"
                               "log_path=%s/asan" % self.san_dir)
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1:log_path=%s/ubsan" % self.san_dir
        self.m.env = env
        if os.path.exists(self.m.pid_file):
            os.unlink(self.m.pid_file)
        self.m.start(wait_ready=False)
        self.tail = LogTail(self.m.log_path)
        self.tail.off = os.path.getsize(self.m.log_path) if os.path.exists(self.m.log_path) else 0
        if not poll(lambda: self.alive() and any("started (pid %d)" % self.pid in l for l in self.tail.update()),
                    self.cfg.bound):
            raise Failure("start", "masterd did not log its start within %.0f s" % self.cfg.bound)
        self.set_applied()
        self.baseline = None

    def alive(self):
        return self.m.proc is not None and self.m.proc.poll() is None

    def set_applied(self):
        now = time.monotonic()
        old = self.applied
        self.applied = copy.deepcopy(self.disk)
        for sid, spec in self.applied.items():
            if old.get(sid) != spec:
                self.applied_at[sid] = now

    def signal(self, sig):
        if sig in (signal.SIGHUP, signal.SIGUSR2):
            self.regen_events.append(time.monotonic())
        os.kill(self.pid, sig)

    def hostile_starts(self, sid):
        """Start times a t/tools/chaos_child of service sid wrote to its cap file (sorted)."""
        cap = self.applied.get(sid, self.disk.get(sid, {})).get("cap", sid)
        try:
            with open(os.path.join(self.dir, "cap." + cap)) as f:
                return sorted(float(l) for l in f if l.strip())
        except (OSError, ValueError):
            return []

    # ---- processes ----

    def scan(self):
        """Children of masterd now, as {pid: (sid or None, comm)}; remembers every descendant."""
        ours = marked(self.run_id)
        kids = {}
        for pid, (state, ppid, comm, start) in ours.items():
            if pid == self.pid:
                continue
            if pid not in self.seen:
                self.seen[pid] = (start, comm, cmdline(pid))
            if ppid == self.pid:
                sid = None
                for e in environ(pid):
                    if e.startswith(b"ZMASTER_CONFIG="):
                        sid = os.path.basename(e[15:].decode(errors="replace"))[:-3]
                kids[pid] = (sid, comm, state)
        return kids

    def service_pids(self, sid, kids=None):
        kids = self.scan() if kids is None else kids
        return sorted(p for p, (s, comm, st) in kids.items() if s == sid and comm != "chaos-daemon")

    def healthy_addrs(self):
        out = []
        for sid in self.HEALTHY:
            if sid == "fd_tcp":
                out.append((("127.0.0.1", self.ports["fd_tcp"]), None))
            elif sid == "fd_unix":
                out.append((os.path.join(self.dir, "fd.sock"), None))
            else:
                out.append((("127.0.0.1", self.ports["http"]),
                            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        return out

    def kill_leftovers(self):
        for pid in list(marked(self.run_id)):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def sanitizer_reports(self):
        out = []
        for f in sorted(os.listdir(self.san_dir)):
            with open(os.path.join(self.san_dir, f), errors="replace") as fh:
                text = fh.read()
            if lib.sanitizer_finding(text):
                out.append("%s:\n%s" % (f, text[:3000]))
        for i, l in enumerate(self.tail.update()):
            if any(mk in l for mk in lib.SANITIZER_MARKS):
                out.append("in masterd's log: " + "\n".join(self.tail.lines[i:i + 30]))
                break
        return out

    def ctl(self, *args, timeout=None):
        """masterctl against this masterd; CompletedProcess."""
        return subprocess.run([os.path.join(lib.BUILD, "masterd", "masterctl"), "-pid-file", self.m.pid_file]
                              + list(args), capture_output=True, text=True,
                              timeout=timeout or self.cfg.converge + 10)

    def ctl_hostile(self, kinds):
        """Replaces the hostile control clients with new ones of these kinds, left open: the
        checks after this op run while they sit there."""
        for s in self.ctl_junk:
            s.close()
        self.ctl_junk = []
        for kind in kinds:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            try:
                s.connect(self.m.pid_file[:-4] + ".ctl")
                data = {"stuck": b"", "partial": b"status --js", "garbage": b"\x00\xff\x1b\n",
                        "oversize": b"s" * 3000, "flood": b"status\n" + b"x" * 200000,
                        "ask_and_leave": b"status --json\n"}[kind]
                s.send(data)  # what the buffer takes; the rest never comes
            except OSError:
                pass  # busy, or the backlog is full: refused is a fine answer to a flood
            if kind == "ask_and_leave":
                s.close()
            else:
                self.ctl_junk.append(s)

    def close(self, keep=False):
        for s in self.ctl_junk:
            s.close()
        self.clients.quit.set()
        try:
            if self.alive():
                self.m.proc.kill()
                self.m.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill_leftovers()
        if keep:
            print("chaos: kept", self.dir)
            self.m.cleanup = lambda: None
        else:
            self.m.cleanup()
