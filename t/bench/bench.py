"""The benchmarks behind `make bench` (t/bench/run.sh builds the tools and calls this).

    python3 t/bench/bench.py [respawn] [keepalive] [close] [coroutine] [scale]   (default: all)

Each benchmark starts every process it uses, remembers them by pid, and stops them (and their
children, by pid) before the next one starts.  Traffic goes to 127.0.0.1 and unix sockets in
temp dirs only.  Every loop is bounded in count and time.  Our figure and the peer's are measured
in the same invocation, alternating, so drift on the machine falls on both.

Tables go to stdout and, with the machine and date, to build/bench/results.md.
Environment: BENCH_KILLS (respawn kills per supervisor, 50), BENCH_SECONDS (wrk duration, 5),
BENCH_ROUNDS (wrk rounds per server, 5), BENCH_SCALE (services x processes, 100x10),
BENCH_SUP_LIMIT (seconds supervisord gets to start them, 40).
"""
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
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


# ---------------------------------------------------------------- 1. respawn

def bench_respawn():
    tmp = tempfile.mkdtemp(prefix="zsb-respawn-")
    ports = {n: free_port() for n in ("masterd", "supervisord", "runsv", "s6-supervise", "bare")}
    procs = []
    try:
        os.makedirs(tmp + "/md")
        with open(tmp + "/md/tiny.cf", "w") as f:
            f.write("server-command = %s\nserver-service = 127.0.0.1:%d\n" % (TINY, ports["masterd"]))
        procs.append(Proc("masterd", [MASTERD, "-C", tmp + "/md"], log=tmp + "/masterd.log"))

        os.makedirs(tmp + "/sup")
        with open(tmp + "/sup/supervisord.conf", "w") as f:
            f.write("[supervisord]\nnodaemon=true\nuser=root\nlogfile=%s/sup/supervisord.log\n"
                    "pidfile=%s/sup/supervisord.pid\nchildlogdir=%s/sup\n\n"
                    "[program:tiny]\ncommand=%s %d\nautostart=true\nautorestart=true\nstartsecs=1\n"
                    "startretries=100\nstdout_logfile=NONE\nstderr_logfile=NONE\n"
                    % (tmp, tmp, tmp, TINY, ports["supervisord"]))
        procs.append(Proc("supervisord", ["supervisord", "-c", tmp + "/sup/supervisord.conf"],
                          log=tmp + "/supervisord.out"))

        # runsv and s6-supervise run ./run with no arguments: ./run is the binary itself (no
        # shell in between, as for the others) and finds its port in TINY_ADDR.
        for name, argv0 in (("runsv", "runsv"), ("s6-supervise", "s6-supervise")):
            d = tmp + "/" + name
            os.makedirs(d)
            os.symlink(TINY, d + "/run")
            env = dict(os.environ, TINY_ADDR=str(ports[name]))
            procs.append(Proc(name, [argv0, d], env=env, log=tmp + "/" + name + ".log"))

        for name in ("masterd", "supervisord", "runsv", "s6-supervise"):
            if not wait_until(lambda: tiny_ok(ports[name]), 15):
                raise RuntimeError("%s: tinyserv does not answer on %d" % (name, ports[name]))

        # The bare baseline: fork+exec+listen by the client itself, nothing else.
        hf = os.path.join(tmp, "hf.json")
        subprocess.run(["hyperfine", "-N", "-i", "--style", "basic", "--warmup", "10", "-r", "200",
                        "--export-json", hf, TINY], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
        try:
            with open(hf) as f:
                exec_ms = json.load(f)["results"][0]["median"] * 1000
        except (OSError, ValueError, KeyError, IndexError):
            exec_ms = None

        say("respawn: %d kills per supervisor, round-robin (about %d s)" % (KILLS, KILLS * 2.6))
        argv = [RESPAWN, "-n", str(KILLS), "-m", "1200", "-i", "100", "-g", "10000"]
        argv += ["%s=%d" % (n, ports[n]) for n in ("masterd", "supervisord", "runsv", "s6-supervise")]
        argv.append("bare=%d:bare:%s" % (ports["bare"], TINY))
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=KILLS * 5 * 3 + 60)
        if r.returncode != 0:
            say("respawn client: exit %d: %s" % (r.returncode, r.stderr.strip()))
        res = {}
        for line in r.stdout.splitlines():
            w = line.split()
            if w and w[0] == "kill":
                d = res.setdefault(w[1], {"gap": [], "refused": [], "resets": 0, "lost": 0})
                if int(w[3]) < 0:
                    d["lost"] += 1
                else:
                    d["gap"].append(int(w[3]) / 1000.0)
                d["refused"].append(int(w[4]))
                d["resets"] += int(w[5])
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    md = res.get("masterd", {"gap": []})
    md50 = pct(md["gap"], 0.5)
    rows = []
    for n in ("masterd", "supervisord", "runsv", "s6-supervise", "bare"):
        d = res.get(n)
        if not d:
            rows.append([n] + ["-"] * 8)
            continue
        p50 = pct(d["gap"], 0.5)
        rows.append([n if n != "bare" else "bare fork+exec+listen", len(d["gap"]), fmt(p50), fmt(pct(d["gap"], 0.9)),
                     fmt(max(d["gap"]) if d["gap"] else None), sum(d["refused"]),
                     sum(1 for x in d["refused"] if x), d["resets"] + d["lost"],
                     ratio(md50, p50)])
    bare = res.get("bare", {"gap": []})
    b50 = pct(bare["gap"], 0.5)
    md_ref = sum(md.get("refused", [1]))
    notes = [
        "Gap = from `kill -9` of the serving process to the first answer from its replacement (ms).",
        "Refused = connection attempts refused during the gaps (client retries every 100 µs);"
        " kills with refusals = gaps in which at least one was refused; lost = resets + gaps over 10 s.",
        "bare = the client itself kills, reaps, forks and execs the server, which binds and listens:"
        " the floor any supervisor pays."
        + (" (fork+exec+exit of tinyserv alone, hyperfine median: %.2f ms.)" % exec_ms if exec_ms else ""),
        "supervisord restarts on its next main-loop tick (it polls with a 1 s timeout), s6-supervise"
        " waits 1 s after ./finish (even when there is none) before ./run again: both refuse"
        " connections for about a second per kill.  runsv restarts at once.",
        "Goal p50 ≤ 1.3× bare: masterd p50 = %s of bare → %s.  Goal 0 refused: masterd %d → %s."
        % (ratio(md50, b50), verdict(md50 == md50 and b50 == b50 and md50 <= 1.3 * b50), md_ref,
           verdict(md_ref == 0)),
    ]
    table("1. Respawn after kill -9 (%d kills each, round-robin)" % KILLS,
          ["supervisor", "kills", "p50 ms", "p90 ms", "max ms", "refused", "kills with refusals",
           "lost", "masterd p50 ÷ this"], rows, notes)


# ---------------------------------------------------------------- 2, 3. HTTP hello

NGINX_CONF = """worker_processes %(w)d;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    default_type text/plain;
    keepalive_requests 1000000;
    client_body_temp_path %(d)s/tmp/body;
    proxy_temp_path %(d)s/tmp/proxy;
    fastcgi_temp_path %(d)s/tmp/fastcgi;
    uwsgi_temp_path %(d)s/tmp/uwsgi;
    scgi_temp_path %(d)s/tmp/scgi;
    server {
        listen 127.0.0.1:%(port)d;
        location / { return 200 "hello"; }
    }
}
"""


def parse_wrk(text):
    r = {"rps": None, "p99": None, "reqs": 0, "errors": 0, "non2xx": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", text)
    if m:
        r["reqs"] = int(m.group(1))
    m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if m:
        r["p99"] = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        r["errors"] = sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        r["non2xx"] = int(m.group(1))
    return r


def sockets(pid):
    n = 0
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                    n += 1
            except OSError:
                pass
    except OSError:
        pass
    return n


class HttpServer:
    def __init__(self, name, proc, port, worker_comm):
        self.name, self.proc, self.port, self.worker_comm = name, proc, port, worker_comm
        self.workers = []

    def find_workers(self):
        self.workers = [c for c in children(self.proc.pid) if (stat(c) or ("",))[0] == self.worker_comm]
        return len(self.workers) == WORKERS


def start_http(tmp):
    pm, pn = free_port(), free_port()
    os.makedirs(tmp + "/md")
    with open(tmp + "/md/http.cf", "w") as f:
        f.write("server-command = %s\nserver-service = 127.0.0.1:%d\nserver-proc-count = %d\n"
                % (HTTP_HELLO, pm, WORKERS))
    env = dict(os.environ, ZSERVER_ACCEPT_STATS="1")  # each worker logs its accept counters when it stops
    ours = HttpServer("masterd + http_hello", Proc("masterd", [MASTERD, "-C", tmp + "/md"], env=env,
                                                   log=tmp + "/masterd.log"), pm, "http_hello")
    nd = tmp + "/nginx"
    for sub in ("", "/tmp", "/logs"):
        os.makedirs(nd + sub, exist_ok=True)
    with open(nd + "/nginx.conf", "w") as f:
        f.write(NGINX_CONF % {"w": WORKERS, "d": nd, "port": pn})
    nginx = HttpServer("nginx", Proc("nginx", ["nginx", "-p", nd + "/", "-c", nd + "/nginx.conf", "-e",
                                               nd + "/error.log", "-g", "daemon off;"],
                                     log=tmp + "/nginx.out"), pn, "nginx")
    for s in (ours, nginx):
        if not wait_until(lambda: http_ok(s.port) and s.find_workers(), 15):
            raise RuntimeError("%s does not answer on %d (workers %s)" % (s.name, s.port, s.workers))
    return ours, nginx


def wrk_round(s, seconds, close):
    argv = ["wrk", "-t1", "-c%d" % CONNS, "-d%ds" % seconds, "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append("http://127.0.0.1:%d/" % s.port)
    master_before = cpu([s.proc.pid])
    before = {w: cpu([w]) for w in s.workers}
    base = {w: sockets(w) for w in s.workers}
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    conns = None
    if not close:
        # connections each worker holds, sampled mid-run (sockets minus its idle ones)
        time.sleep(seconds / 2.0)
        conns = {w: max(0, sockets(w) - base[w]) for w in s.workers}
    out, _ = p.communicate(timeout=seconds + 30)
    r = parse_wrk(out)
    r["cpu"] = {w: cpu([w]) - before[w] for w in s.workers}
    r["master_cpu"] = cpu([s.proc.pid]) - master_before
    r["conns"] = conns
    r["raw"] = out
    return r


def http_bench(close):
    tmp = tempfile.mkdtemp(prefix="zsb-http-")
    servers = []
    try:
        ours, nginx = start_http(tmp)
        servers = [ours, nginx]
        for s in servers:  # warm-up, not counted
            wrk_round(s, 1, close)
        runs = {s.name: [] for s in servers}
        for i in range(ROUNDS):
            for s in (servers if i % 2 == 0 else servers[::-1]):
                r = wrk_round(s, SECONDS, close)
                runs[s.name].append(r)
                say("%s %s round %d: %s req/s, p99 %s ms, errors %d" % (
                    "close" if close else "keepalive", s.name, i + 1, fmt(r["rps"]), fmt(r["p99"]),
                    r["errors"] + r["non2xx"]))
        herd = {}
        if perf_ok():
            for s in servers:
                herd.setdefault(s.name, {})["perf"] = perf_syscalls(s, close, tmp)
        if close:
            for s in servers:
                herd.setdefault(s.name, {})["csw"] = switches_per_conn(s)
            for s in servers:
                herd[s.name].update({load: strace_accepts(s, tmp, load) for load in ("wrk", "slow")})
            herd["mechanism"] = {}
            for mode in ("plain", "direct", "nested"):
                r = subprocess.run([HERD, "-w", str(WORKERS), "-n", "300", mode], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True, timeout=30)
                m = re.search(r"csw_per_conn=([\d.]+)", r.stdout)
                herd["mechanism"][mode] = float(m.group(1)) if m else None
    finally:
        for s in servers:
            s.proc.stop()
        stop_all()
        herd["stats"] = accept_stats(tmp + "/masterd.log")
        shutil.rmtree(tmp, ignore_errors=True)
    return servers, runs, herd


def accept_stats(log):
    """Sums libzserver's per-worker accept counters (ZSERVER_ACCEPT_STATS) from masterd's log."""
    tot = {"wakeups": 0, "accepted": 0, "empty": 0, "rotations": 0, "workers": 0, "mode": "?"}
    try:
        with open(log, errors="replace") as f:
            for line in f:
                m = re.search(r"accept stats: (\d+) wake-ups, (\d+) accepted, (\d+) found nothing \((\w+)\)"
                              r"(?:, (\d+) rotations)?", line)
                if m:
                    tot["rotations"] += int(m.group(5) or 0)
                    tot["wakeups"] += int(m.group(1))
                    tot["accepted"] += int(m.group(2))
                    tot["empty"] += int(m.group(3))
                    tot["workers"] += 1
                    tot["mode"] = m.group(4)
    except OSError:
        pass
    return tot


def summarize(runs):
    rps = [r["rps"] for r in runs if r["rps"]]
    p99 = [r["p99"] for r in runs if r["p99"] is not None]
    reqs = sum(r["reqs"] for r in runs)
    tot = sum(sum(r["cpu"].values()) for r in runs)
    share = {}
    for r in runs:
        for i, w in enumerate(sorted(r["cpu"])):
            share[i] = share.get(i, 0) + r["cpu"][w]
    shares = [100.0 * v / tot for v in share.values()] if tot else []
    busiest = [100.0 * max(r["cpu"].values()) / sum(r["cpu"].values()) for r in runs
               if r["cpu"] and sum(r["cpu"].values()) > 0]
    conns = []
    for r in runs:
        if r["conns"]:
            conns.append("/".join(str(v) for _, v in sorted(r["conns"].items())))
    return {
        "rps": statistics.median(rps) if rps else None,
        "rps_all": rps,
        "p99": statistics.median(p99) if p99 else None,
        "cpu100k": tot / reqs * 1e5 if reqs else None,
        "shares": shares,
        "max_share": max(busiest) if busiest else None,
        "busiest": busiest,
        "errors": sum(r["errors"] + r["non2xx"] for r in runs),
        "master_cpu": sum(r["master_cpu"] for r in runs),
        "conns": conns,
        "reqs": reqs,
    }


def http_table(num, title, close, servers, runs, herd):
    ours, nginx = servers
    a, b = summarize(runs[ours.name]), summarize(runs[nginx.name])
    rows = [
        ["req/s (median of %d)" % ROUNDS, fmt(a["rps"]), fmt(b["rps"]), ratio(a["rps"], b["rps"]), "≥ 1.00×",
         verdict(a["rps"] is not None and b["rps"] is not None and a["rps"] >= b["rps"])],
        ["req/s, each round", " / ".join(fmt(x) for x in a["rps_all"]),
         " / ".join(fmt(x) for x in b["rps_all"]), "", "", ""],
        ["p99 latency ms (median)", fmt(a["p99"]), fmt(b["p99"]), ratio(a["p99"], b["p99"]), "≤ 1.00×",
         verdict(a["p99"] is not None and b["p99"] is not None and a["p99"] <= b["p99"])],
    ]
    cpu_goal = 1.0 if close else 0.85
    rows.append(["worker CPU s per 100k requests", fmt(a["cpu100k"], 3), fmt(b["cpu100k"], 3),
                 ratio(a["cpu100k"], b["cpu100k"]), "≤ %.2f×" % cpu_goal,
                 verdict(a["cpu100k"] is not None and b["cpu100k"] is not None
                         and a["cpu100k"] <= cpu_goal * b["cpu100k"])])
    rows.append(["busiest worker's CPU share %, each round", " / ".join("%.0f" % x for x in a["busiest"]),
                 " / ".join("%.0f" % x for x in b["busiest"]), "", "≤ 65 % every round",
                 verdict(a["max_share"] is not None and a["max_share"] <= 65)])
    if not close:
        rows.append(["connections held per worker (mid-run, each round)", ", ".join(a["conns"]),
                     ", ".join(b["conns"]), "", "", ""])
    pa, pb = herd.get(ours.name, {}).get("perf"), herd.get(nginx.name, {}).get("perf")
    if pa and pb:
        def calls(d):
            return sum(v for k, v in d.items() if k in PERF_CALLS)
        rows.append(["system calls per request (perf stat, separate 3 s run)", fmt(calls(pa), 2), fmt(calls(pb), 2),
                     ratio(calls(pa), calls(pb)), "", ""])
        for k in PERF_CALLS + ("page-faults", "context-switches"):
            if pa.get(k, 0) >= 0.005 or pb.get(k, 0) >= 0.005:
                rows.append(["  " + k, fmt(pa.get(k, 0.0), 3), fmt(pb.get(k, 0.0), 3), "", "", ""])
    rows.append(["master CPU s during the runs", fmt(a["master_cpu"], 2), fmt(b["master_cpu"], 2), "", "", ""])
    rows.append(["socket errors + non-2xx", a["errors"], b["errors"], "", "0", verdict(a["errors"] == 0)])
    if close:
        x, y = herd.get(ours.name, {}).get("csw"), herd.get(nginx.name, {}).get("csw")
        rows.append(["worker context switches per connection, 200 conn/s one at a time (no tracer)",
                     fmt(x, 2), fmt(y, 2), ratio(x, y), "", ""])
        mech = herd.get("mechanism", {})
        rows.append(["  mechanism check (t/bench/herd.c, %d idle workers): context switches per connection,"
                     " plain / EPOLLEXCLUSIVE direct / EPOLLEXCLUSIVE nested" % WORKERS,
                     " / ".join(fmt(mech.get(k), 2) for k in ("plain", "direct", "nested")), "", "", "", ""])
        for load, what in (("slow", "200 conn/s one at a time"), ("wrk", "under wrk")):
            hx, hy = herd.get(ours.name, {}).get(load, {}), herd.get(nginx.name, {}).get(load, {})
            for key, label in (("eagain_per_accept", "accept4 EAGAIN per accepted connection"),
                               ("wait_per_accept", "epoll_wait returns per accepted connection")):
                x, y = hx.get(key), hy.get(key)
                rows.append(["%s, %s (strace)" % (label, what), fmt(x, 3), fmt(y, 3), ratio(x, y), "", ""])
            rows.append(["  accepted / accept4 calls, %s" % what,
                         "%s / %s" % (hx.get("accepted", "-"), hx.get("calls", "-")),
                         "%s / %s" % (hy.get("accepted", "-"), hy.get("calls", "-")), "", "", ""])
    st = herd.get("stats", {})
    if st.get("accepted"):
        rows.append(["libzserver counters, all runs: wake-ups / accepted / empty wake-ups / rotations (%s, %d workers)"
                     % (st["mode"], st["workers"]),
                     "%d / %d / %d / %d" % (st["wakeups"], st["accepted"], st["empty"], st["rotations"]), "", "", "", ""])
        rows.append(["  empty wake-ups per accepted connection", fmt(st["empty"] / st["accepted"], 4), "",
                     "", "", ""])
    notes = ["wrk -t1 -c%d -d%ds --latency%s, %d rounds each, alternating, after a 1 s warm-up;"
             " both servers run %d workers on 127.0.0.1 (%d cores shared with wrk)."
             % (CONNS, SECONDS, " -H 'Connection: close'" if close else "", ROUNDS, WORKERS, os.cpu_count()),
             "CPU = utime+stime of every worker from /proc/PID/stat, before/after each round;"
             " share = each worker's part of it."]
    if close:
        notes.append("Wake-ups: `strace -c -f -e trace=accept4,epoll_wait,epoll_pwait` on the workers"
                     " during two separate 2 s runs: one connection at a time at 200/s (where a herd"
                     " would show: every idle worker woken per connection), and under wrk (strace slows"
                     " the servers; these counts are for the herd signal only, not for speed).  accept4"
                     " EAGAIN per accepted connection near 0 means no worker is woken for nothing.  The"
                     " libzserver counters (ZSERVER_ACCEPT_STATS, logged by each worker when it stops)"
                     " cover every run without strace, but like accept4 EAGAIN they only see wake-ups"
                     " that reach user space: a worker the kernel wakes and puts back to sleep inside"
                     " epoll_wait shows only as a context switch, hence the context-switch row.")
    table("%d. HTTP hello, %s: %s" % (num, title, "masterd + http_hello vs nginx"),
          ["figure", "masterd + http_hello", "nginx", "ratio", "goal", ""], rows, notes)


PERF_CALLS = ("accept4", "epoll_ctl", "epoll_wait", "read", "recvfrom", "sendto", "writev", "close", "brk")


def perf_ok():
    try:
        return subprocess.run(["perf", "stat", "-e", "syscalls:sys_enter_getpid", "true"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def perf_syscalls(s, close, tmp):
    """System calls and page faults per request of s's workers during a 3 s wrk run, counted by
    `perf stat` on the syscall tracepoints (exact counts, next to no slowdown), or None."""
    out = os.path.join(tmp, "perf-%d.txt" % s.port)
    events = ",".join("syscalls:sys_enter_" + c for c in PERF_CALLS) + ",page-faults,context-switches"
    st = Proc("perf", ["perf", "stat", "-x", ",", "-e", events, "-p", ",".join(str(w) for w in s.workers),
                       "-o", out, "--", "sleep", "4"], log=tmp + "/perf.log")
    time.sleep(0.3)
    argv = ["wrk", "-t1", "-c%d" % CONNS, "-d3s"] + (["-H", "Connection: close"] if close else [])
    p = subprocess.run(argv + ["http://127.0.0.1:%d/" % s.port], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=40)
    try:
        st.p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    st.stop(grace=2)
    reqs = parse_wrk(p.stdout)["reqs"]
    counts = {}
    try:
        with open(out) as f:
            for line in f:
                w = line.strip().split(",")
                if len(w) >= 3 and w[0].replace(".", "").isdigit():
                    counts[w[2].replace("syscalls:sys_enter_", "")] = float(w[0])
    except OSError:
        return None
    if not reqs or not counts:
        return None
    return {k: v / reqs for k, v in counts.items()}


def switches_per_conn(s):
    """Context switches of all workers per connection, one connection at a time at 200/s, no
    tracer: a worker woken for a connection another one takes still switches in and out."""
    def sw():
        return sum((status_field(w, "voluntary_ctxt_switches") or 0) +
                   (status_field(w, "nonvoluntary_ctxt_switches") or 0) for w in s.workers)
    a = sw()
    p = subprocess.run([BURST, "-a", "127.0.0.1:%d" % s.port, "-p", "1", "-r", "200", "-d", "2",
                        "-s", r"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        "-e", "HTTP/1.1 200"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=40)
    b = sw()
    m = re.search(r"ok=(\d+)", p.stdout)
    n = int(m.group(1)) if m else 0
    return (b - a) / n if n else None


def strace_accepts(s, tmp, load):
    """accept4/epoll_wait counts of s's workers (strace -c) while wrk (load "wrk") or a client
    opening one connection at a time, 200 a second (load "slow"), runs for 2 s."""
    out = os.path.join(tmp, "strace-%d-%s.txt" % (s.port, load))
    argv = ["strace", "-c", "-f", "-o", out, "-e", "trace=accept4,accept,epoll_wait,epoll_pwait"]
    for w in s.workers:
        argv += ["-p", str(w)]
    st = Proc("strace", argv, log=tmp + "/strace.log")
    ok = wait_until(lambda: all(status_field(w, "TracerPid") for w in s.workers), 5)
    res = {}
    if ok and load == "wrk":
        p = subprocess.run(["wrk", "-t1", "-c%d" % CONNS, "-d2s", "-H", "Connection: close",
                            "http://127.0.0.1:%d/" % s.port], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=40)
        res["rps"] = parse_wrk(p.stdout)["rps"]
    elif ok:
        p = subprocess.run([BURST, "-a", "127.0.0.1:%d" % s.port, "-p", "1", "-r", "200", "-d", "2",
                            "-s", r"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                            "-e", "HTTP/1.1 200"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=40)
        res["client"] = p.stdout.strip()
    st.stop(sig=signal.SIGINT, grace=10)
    calls = {}
    try:
        with open(out) as f:
            for line in f:
                w = line.split()
                if len(w) >= 5 and w[-1] in ("accept4", "accept", "epoll_wait", "epoll_pwait"):
                    nums = w[3:-1]
                    calls[w[-1]] = (int(nums[0]), int(nums[1]) if len(nums) > 1 else 0)
    except OSError:
        return res
    c, e = calls.get("accept4", (0, 0))
    c2, e2 = calls.get("accept", (0, 0))
    c, e = c + c2, e + e2
    accepted = c - e
    waits = calls.get("epoll_wait", (0, 0))[0] + calls.get("epoll_pwait", (0, 0))[0]
    res.update({"calls": c, "eagain": e, "accepted": accepted,
                "eagain_per_accept": e / accepted if accepted else None,
                "wait_per_accept": waits / accepted if accepted else None})
    return res


def bench_keepalive():
    servers, runs, herd = http_bench(close=False)
    http_table(2, "keep-alive", False, servers, runs, herd)


def bench_close():
    servers, runs, herd = http_bench(close=True)
    http_table(3, "a connection per request", True, servers, runs, herd)


# ---------------------------------------------------------------- 4. coroutine

def bench_coroutine():
    if not os.path.exists(COROUTINE_RUN):
        RESULTS.append("### 4. Coroutine\n\n(t/bench/coroutine/run.sh not present: skipped)\n")
        print(RESULTS[-1], flush=True)
        return
    say("coroutine: sh t/bench/coroutine/run.sh")
    try:
        r = subprocess.run(["sh", COROUTINE_RUN], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=240, cwd=ROOT)
        text, rc = r.stdout, r.returncode
    except subprocess.TimeoutExpired as e:
        text, rc = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), "timeout"
    block = "### 4. Coroutine (t/bench/coroutine/run.sh)\n\n" + text.rstrip() + "\n"
    if rc != 0:
        block += "\n(run.sh exit status: %s)\n" % rc
    RESULTS.append(block)
    print(block, flush=True)


# ---------------------------------------------------------------- 5. scale

def tiny_children(pid):
    return {c for c in children(pid) if (stat(c) or ("",))[0] in ("tinyserv",)}


def bench_scale():
    nsvc, nproc = (int(x) for x in SCALE.split("x"))
    total = nsvc * nproc
    tmp = tempfile.mkdtemp(prefix="zsb-", dir="/tmp")  # short: unix socket paths
    ours, sup = {}, {}
    try:
        cf = tmp + "/cf"
        os.makedirs(cf)
        os.makedirs(tmp + "/s")
        for i in range(nsvc):
            with open("%s/svc%03d.cf" % (cf, i), "w") as f:
                f.write("server-command = %s\nserver-service = %s/s/svc%03d.sock\nserver-proc-count = %d\n"
                        "generation-key = 1\n" % (TINY, tmp, i, nproc))
        hf = tmp + "/hf.json"
        subprocess.run(["hyperfine", "-N", "--style", "basic", "--warmup", "3", "-r", "30", "--export-json", hf,
                        "%s -C %s -t" % (MASTERD, cf)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
        try:
            with open(hf) as f:
                ours["check_ms"] = json.load(f)["results"][0]["median"] * 1000
        except (OSError, ValueError, KeyError, IndexError):
            pass

        for mode in ("fork", "vfork"):
            r = subprocess.run([SPAWNCOST, "-n", "300", "-m", mode, TINY], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, timeout=60)
            m = re.search(r"parent_cpu_us_per_spawn=(\d+)", r.stdout)
            if m:
                ours["spawn_" + mode] = int(m.group(1)) / 1000.0

        t0 = time.monotonic()
        md = Proc("masterd", [MASTERD, "-C", cf], log=tmp + "/masterd.log")
        up = wait_until(lambda: len(tiny_children(md.pid)) >= total, 60, interval=0.05)
        ours["start_s"] = time.monotonic() - t0 if up else None
        ours["start_cpu"] = cpu([md.pid])
        # Settle: plain programs count as ready after 1 s; then masterd should sleep for good.
        time.sleep(2.0)
        ours["rss_kb"] = status_field(md.pid, "VmRSS")
        ours["wakeups"] = idle_wakeups(md.pid)
        ours["children_rss_mb"] = sum(status_field(c, "VmRSS") or 0 for c in tiny_children(md.pid)) / 1024

        # Reload: every .cf changes a key, so every service gets a new generation.
        old = tiny_children(md.pid)
        for i in range(nsvc):
            with open("%s/svc%03d.cf" % (cf, i), "a") as f:
                f.write("generation-key = 2\n")
        c0, t0 = cpu([md.pid]), time.monotonic()
        os.kill(md.pid, signal.SIGHUP)

        def reloaded():
            now = tiny_children(md.pid)
            return len(now) == total and not (now & old) and not any(alive(p) for p in old)
        done = wait_until(reloaded, 90, interval=0.05)
        ours["reload_s"] = time.monotonic() - t0 if done else None
        ours["reload_cpu"] = cpu([md.pid]) - c0
        ours["rss_after_reload_kb"] = status_field(md.pid, "VmRSS")
        t0 = time.monotonic()
        md.stop(grace=30)
        ours["stop_s"] = time.monotonic() - t0
        shutil.rmtree(tmp + "/s", ignore_errors=True)
        os.makedirs(tmp + "/s")

        # supervisord with the same 1000 processes (each needs its own socket: nothing is shared).
        conf = tmp + "/supervisord.conf"
        with open(conf, "w") as f:
            f.write("[supervisord]\nnodaemon=true\nuser=root\nlogfile=%s/supervisord.log\npidfile=%s/sd.pid\n"
                    "childlogdir=%s\nminfds=%d\n\n" % (tmp, tmp, tmp, 4 * total + 100))
            for i in range(nsvc):
                f.write("[program:svc%03d]\ncommand=%s %s/s/svc%03d_%%(process_num)02d.sock\n"
                        "process_name=%%(program_name)s_%%(process_num)02d\nnumprocs=%d\nautostart=true\n"
                        "autorestart=true\nstartsecs=1\nstdout_logfile=NONE\nstderr_logfile=NONE\n\n"
                        % (i, TINY, tmp, i, nproc))
        t0 = time.monotonic()
        sd = Proc("supervisord", ["supervisord", "-c", conf], log=tmp + "/supervisord.out")
        up = wait_until(lambda: len(tiny_children(sd.pid)) >= total, SUP_LIMIT, interval=0.05)
        sup["start_s"] = time.monotonic() - t0 if up else None
        sup["start_cpu"] = cpu([sd.pid])
        sup["started"] = len(tiny_children(sd.pid))
        if up:
            time.sleep(2.0)
            sup["rss_kb"] = status_field(sd.pid, "VmRSS")
            sup["wakeups"] = idle_wakeups(sd.pid)
        else:
            sup["rss_partial_kb"] = status_field(sd.pid, "VmRSS")
            sup["note"] = "only %d of %d had started after %d s (then stopped: bounded)" % (
                len(tiny_children(sd.pid)), total, SUP_LIMIT)
        t0 = time.monotonic()
        sd.stop(grace=SUP_LIMIT / 2)
        sup["stop_s"] = time.monotonic() - t0 if up else None
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    def g(d, k, nd=2, scale=1.0):
        v = d.get(k)
        return fmt(v * scale, nd) if v is not None else "-"
    rows = [
        ["start to all %d exec'd (s)" % total, g(ours, "start_s"), g(sup, "start_s"),
         ratio(ours.get("start_s"), sup.get("start_s"))],
        ["master CPU s to start them", g(ours, "start_cpu"), g(sup, "start_cpu"),
         ratio(ours.get("start_cpu"), sup.get("start_cpu"))],
        ["master RSS MiB (VmRSS)", g(ours, "rss_kb", 1, 1 / 1024),
         g(sup, "rss_kb", 1, 1 / 1024) if "rss_kb" in sup else
         "%s with %d started" % (g(sup, "rss_partial_kb", 1, 1 / 1024), sup.get("started", 0)),
         ratio(ours.get("rss_kb"), sup.get("rss_kb"))],
        ["master wake-ups in 5 s idle (goal 0)", g(ours, "wakeups", 0), g(sup, "wakeups", 0), ""],
        ["reload all (SIGHUP, every .cf changed): wall s", g(ours, "reload_s"), "n/a", ""],
        ["reload all: master CPU s", g(ours, "reload_cpu"), "n/a", ""],
        ["master RSS MiB after the reload", g(ours, "rss_after_reload_kb", 1, 1 / 1024), "n/a", ""],
        ["stop all (SIGTERM to exit) s", g(ours, "stop_s"), g(sup, "stop_s"), ratio(ours.get("stop_s"), sup.get("stop_s"))],
        ["`masterd -t` on the %d services (ms, hyperfine median)" % nsvc, g(ours, "check_ms"), "n/a", ""],
        ["master CPU ms per process started (start)", fmt(ours["start_cpu"] * 1000 / total, 2)
         if ours.get("start_cpu") is not None else "-",
         fmt(sup["start_cpu"] * 1000 / sup["started"], 2) if sup.get("started") else "-", ""],
        ["reference: parent CPU ms per spawn, fork()+exec / vfork()+exec (spawncost)",
         "%s / %s" % (g(ours, "spawn_fork"), g(ours, "spawn_vfork")), "", ""],
    ]
    notes = ["%d services × %d tinyserv processes (masterd: one unix socket per service, shared by its %d"
             " processes; supervisord: numprocs=%d, one socket per process, since it passes none)."
             % (nsvc, nproc, nproc, nproc),
             "Up = every child has exec'd tinyserv (polled in /proc every 50 ms); wake-ups ="
             " voluntary+involuntary context switches of the master over 5 s of idleness, 2 s after"
             " all are up.  Reload = until all %d are new pids and every old one is gone (a plain"
             " program counts as ready after 1 s, so a reload takes at least that)." % total]
    if "note" in sup:
        notes.append("supervisord: " + sup["note"])
    if ours.get("wakeups") is not None:
        notes.append("Goal 0 idle wake-ups: masterd %d → %s." % (ours["wakeups"], verdict(ours["wakeups"] == 0)))
    table("5. Master footprint and scale (%d processes)" % total,
          ["figure", "masterd", "supervisord", "ratio"], rows, notes)


def idle_wakeups(pid):
    def sw():
        return (status_field(pid, "voluntary_ctxt_switches") or 0) + \
            (status_field(pid, "nonvoluntary_ctxt_switches") or 0)
    a = sw()
    time.sleep(5.0)
    return sw() - a


# ---------------------------------------------------------------- 6. config reader

def check_time(cfdir, rounds=5):
    """Median wall time (s) of `masterd -C cfdir -t`, which must say the config is ok."""
    ts = []
    for _ in range(rounds):
        t0 = time.monotonic()
        r = subprocess.run([MASTERD, "-C", cfdir, "-t"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=120)
        ts.append(time.monotonic() - t0)
        if r.returncode != 0:
            raise RuntimeError("masterd -t %s: %s" % (cfdir, r.stdout[-300:]))
    return statistics.median(ts)


def bench_config():
    """-t time against the number of keys in one file, and against the number of services."""
    tmp = tempfile.mkdtemp(prefix="zsb-cf-", dir="/tmp")
    try:
        keys = {}
        for n in (4000, 40000):
            d = "%s/k%d" % (tmp, n)
            os.makedirs(d)
            with open(d + "/a.cf", "w") as f:
                f.write("server-command = /bin/true\n")
                f.writelines("x-key-%d = value %d\n" % (i, i) for i in range(n))
            keys[n] = check_time(d)
        svcs = {}
        for n in (500, 2000):
            d = "%s/s%d" % (tmp, n)
            os.makedirs(d)
            for i in range(n):
                with open("%s/svc%04d.cf" % (d, i), "w") as f:
                    f.write("server-command = /bin/true\nserver-service = 127.0.0.1:%d\n" % (20000 + i))
            svcs[n] = check_time(d)
        rk, rs = keys[40000] / keys[4000], svcs[2000] / svcs[500]
        table("6. Config reader (`masterd -t`, median of 5)", ["input", "time (s)", "ratio", "goal"], [
            ["4,000 keys in one file", fmt(keys[4000], 3), "", ""],
            ["40,000 keys in one file", fmt(keys[40000], 3), ratio(keys[40000], keys[4000]),
             "≤ 12× (linear: 10×) " + verdict(rk <= 12)],
            ["500 services", fmt(svcs[500], 3), "", ""],
            ["2,000 services", fmt(svcs[2000], 3), ratio(svcs[2000], svcs[500]),
             "≤ 4× (linear: 4×) " + verdict(rs <= 4)],
        ], ["Each figure includes masterd's start-up; the ratios are what count."])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- main

def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%d × %s, Linux %s, %s" % (os.cpu_count(), model, os.uname().release,
                                      time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))


BENCHES = [("respawn", bench_respawn), ("keepalive", bench_keepalive), ("close", bench_close),
           ("coroutine", bench_coroutine), ("scale", bench_scale), ("config", bench_config)]


def main(argv):
    want = argv or [n for n, _ in BENCHES]
    unknown = [w for w in want if w not in dict(BENCHES)]
    if unknown:
        print("usage: bench.py [%s]..." % "|".join(n for n, _ in BENCHES), file=sys.stderr)
        return 2
    os.makedirs(OUT, exist_ok=True)
    head = "## masterd benchmarks\n\nMachine: %s.  Load average at start: %s.\n" % (
        machine(), " ".join(open("/proc/loadavg").read().split()[:3]))
    print(head, flush=True)
    t0 = time.monotonic()
    failed = []
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    try:
        for name, fn in BENCHES:
            if name not in want:
                continue
            t = time.monotonic()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - one broken benchmark must not hide the others
                failed.append(name)
                msg = "### %s\n\nFAILED: %s: %s\n" % (name, type(e).__name__, e)
                RESULTS.append(msg)
                print(msg, flush=True)
            finally:
                stop_all()
            say("%s took %.0f s" % (name, time.monotonic() - t))
    finally:
        stop_all()
        tail = "Total time: %.0f s.\n" % (time.monotonic() - t0)
        print(tail, flush=True)
        with open(os.path.join(OUT, "results.md"), "w") as f:
            f.write(head + "\n" + "\n".join(RESULTS) + "\n" + tail)
        print("(written to %s)" % os.path.relpath(os.path.join(OUT, "results.md"), ROOT))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
