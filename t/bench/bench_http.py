"""Benchmarks 2 and 3 (t/bench/bench.py): HTTP hello under masterd against nginx, keep-alive and
connection per request."""
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

from benchlib import *  # noqa: F401,F403 - the shared helpers and knobs
from benchlib import Proc


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
        "p99_all": p99,
        "cpu100k_all": [sum(r["cpu"].values()) / r["reqs"] * 1e5 for r in runs if r["reqs"]],
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
         verdict_noise(a["rps"] is not None and b["rps"] is not None and a["rps"] >= b["rps"],
                       a["rps_all"], b["rps_all"], 1.0)],
        ["req/s, each round", " / ".join(fmt(x) for x in a["rps_all"]),
         " / ".join(fmt(x) for x in b["rps_all"]), "", "", ""],
        ["p99 latency ms (median)", fmt(a["p99"]), fmt(b["p99"]), ratio(a["p99"], b["p99"]), "≤ 1.00×",
         verdict_noise(a["p99"] is not None and b["p99"] is not None and a["p99"] <= b["p99"],
                       a["p99_all"], b["p99_all"], 1.0)],
        ["p99 latency ms, each round", " / ".join(fmt(x) for x in a["p99_all"]),
         " / ".join(fmt(x) for x in b["p99_all"]), "", "", ""],
    ]
    cpu_goal = 1.0 if close else 0.85
    rows.append(["worker CPU s per 100k requests", fmt(a["cpu100k"], 3), fmt(b["cpu100k"], 3),
                 ratio(a["cpu100k"], b["cpu100k"]), "≤ %.2f×" % cpu_goal,
                 verdict_noise(a["cpu100k"] is not None and b["cpu100k"] is not None
                               and a["cpu100k"] <= cpu_goal * b["cpu100k"],
                               a["cpu100k_all"], b["cpu100k_all"], cpu_goal)])
    rows.append(["worker CPU s per 100k requests, each round", " / ".join(fmt(x, 3) for x in a["cpu100k_all"]),
                 " / ".join(fmt(x, 3) for x in b["cpu100k_all"]), "", "", ""])
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
