"""The benchmarks behind `make bench` (t/bench/run.sh builds the tools and calls this).

    python3 t/bench/bench.py [respawn] [keepalive] [close] [coroutine] [scale]   (default: all)

Each benchmark starts every process it uses, remembers them by pid, and stops them (and their
children, by pid) before the next one starts.  Traffic goes to 127.0.0.1 and unix sockets in
temp dirs only.  Every loop is bounded in count and time.  Our figure and the peer's are measured
in the same invocation, alternating, so drift on the machine falls on both.

Tables go to stdout and, with the machine and date, to build/bench/results.md.
Environment: BENCH_KILLS (respawn kills per supervisor, 50), BENCH_SECONDS (wrk duration, 5),
BENCH_ROUNDS (wrk rounds per server, 5), BENCH_SCALE (services x processes, 100x10),
BENCH_SUP_LIMIT (seconds supervisord gets to start them, 40), BENCH_SCALE_ROUNDS (spawn-cost rounds, 5),
BENCH_BASELINE (another masterd binary, e.g. an older build, measured beside ours in those rounds),
BENCH_BIG (processes started while answers are timed, 4096), BENCH_RELOAD_SERVICES (1000).
"""
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import *  # noqa: F401,F403 - the shared helpers and knobs
from benchlib import RESULTS, Proc  # noqa: F401
from bench_http import bench_close, bench_keepalive
from bench_scale import bench_scale

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
        # 2,000 services need more descriptors (masterd -t checks it could run them all) than a
        # hard RLIMIT_NOFILE of 20,000 allows: then 250 and 1,000 (the same 4× ratio).
        small, big = (500, 2000) if resource.getrlimit(resource.RLIMIT_NOFILE)[1] >= 32768 else (250, 1000)
        svcs = {}
        for n in (small, big):
            d = "%s/s%d" % (tmp, n)
            os.makedirs(d)
            for i in range(n):
                with open("%s/svc%04d.cf" % (d, i), "w") as f:
                    f.write("server-command = /bin/true\nserver-service = 127.0.0.1:%d\n" % (20000 + i))
            svcs[n] = check_time(d)
        rk, rs = keys[40000] / keys[4000], svcs[big] / svcs[small]
        table("6. Config reader (`masterd -t`, median of 5)", ["input", "time (s)", "ratio", "goal"], [
            ["4,000 keys in one file", fmt(keys[4000], 3), "", ""],
            ["40,000 keys in one file", fmt(keys[40000], 3), ratio(keys[40000], keys[4000]),
             "≤ 12× (linear: 10×) " + verdict(rk <= 12)],
            ["%d services" % small, fmt(svcs[small], 3), "", ""],
            ["%d services" % big, fmt(svcs[big], 3), ratio(svcs[big], svcs[small]),
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
