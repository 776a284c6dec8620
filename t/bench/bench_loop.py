"""Benchmark 5c (called from bench_scale.py): masterd's loop stays responsive under load.

- While BENCH_BIG (4096) processes of one service start, a client alternately asks the control
  socket `status probe` (a one-process service beside it) and sends SIGUSR1 (answered by a `log
  reopened` line) and SIGHUP (a reload of the unchanged config: its `reload: reading` line), and
  times each answer; a second start is cut short by SIGTERM once a quarter has started (its
  `stopping:` line).  Goal: every one answered within 50 ms.
- The reload of BENCH_RELOAD_SERVICES (1000) services of one process each, every file changed:
  how long the loop is held by the reload itself (SIGHUP to its summary line), and how long
  until every process was replaced.
Each answer is timed by the client, so its own scheduling on a busy machine is included.
"""
import os
import re
import signal
import socket
import statistics
import tempfile
import time
import shutil

from benchlib import *  # noqa: F401,F403 - the shared helpers and knobs
from benchlib import Proc, stop_all
from bench_scale import md_start, tiny_children, write_services

BIG = int(os.environ.get("BENCH_BIG", "4096"))
RELOAD_SERVICES = int(os.environ.get("BENCH_RELOAD_SERVICES", "1000"))
LOOP_GOAL_MS = 50.0


def ask(path, req, timeout=5.0):
    """(seconds, reply text) of one control request."""
    t0 = time.monotonic()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(req.encode() + b"\n")
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    finally:
        s.close()
    return time.monotonic() - t0, b"".join(chunks).decode(errors="replace")


class LogWatch:
    """Counts lines containing a mark in masterd's log as it grows."""

    def __init__(self, path):
        self.path, self.pos, self.tail = path, 0, ""

    def new_lines(self):
        try:
            with open(self.path, errors="replace") as f:
                f.seek(self.pos)
                data = f.read()
                self.pos = f.tell()
        except OSError:
            return []
        data = self.tail + data
        lines = data.split("\n")
        self.tail = lines.pop()
        return lines

    def wait_for(self, mark, t0, timeout=5.0):
        """Seconds from t0 until a new line with mark, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(mark in line for line in self.new_lines()):
                return time.monotonic() - t0
            time.sleep(0.0005)
        return None


def signal_latency(md, watch, sig, mark):
    watch.new_lines()  # skip what came before
    t0 = time.monotonic()
    os.kill(md.pid, sig)
    return watch.wait_for(mark, t0)


def ms_summary(v):
    v = [x * 1000 for x in v if x is not None]
    if not v:
        return "-", None
    return "%d answers, median %.1f, max %.1f" % (len(v), statistics.median(v), max(v)), max(v)


def probe_start(tmp):
    """Start of BIG processes with answers timed all along; then the SIGTERM run."""
    cf = tmp + "/big"
    os.makedirs(cf)
    with open(cf + "/big.cf", "w") as f:
        f.write("server-command = %s\nserver-service = %s/big.sock\nserver-proc-count = %d\n" % (TINY, tmp, BIG))
    with open(cf + "/probe.cf", "w") as f:
        f.write("server-command = %s\nserver-service = %s/probe.sock\n" % (TINY, tmp))
    log, ctl = tmp + "/big.log", tmp + "/md.ctl"
    out = {"status": [], "usr1": [], "hup": [], "starting_seen": 0}
    t0 = time.monotonic()
    md = Proc("masterd", [MASTERD, "-C", cf, "-pid-file", tmp + "/md.pid"], log=log)
    watch = LogWatch(log)
    wait_until(lambda: os.path.exists(ctl), 10, interval=0.005)
    kinds = ("status", "usr1", "hup")
    k = 0
    while time.monotonic() - t0 < 300:
        n = len(tiny_children(md.pid))
        if n >= BIG + 1:
            break
        kind = kinds[k % 3]
        k += 1
        try:
            if kind == "status":
                dt, text = ask(ctl, "status probe")
                out["status"].append(dt if text.rstrip().endswith("status 0") else None)
            elif kind == "usr1":
                out["usr1"].append(signal_latency(md, watch, signal.SIGUSR1, "log reopened"))
            else:
                out["hup"].append(signal_latency(md, watch, signal.SIGHUP, "reload: reading"))
        except OSError:
            out[kind].append(None)
        if n < BIG:
            out["starting_seen"] += 1
        time.sleep(0.02)
    out["start_s"] = time.monotonic() - t0
    out["cpu_per_proc_us"] = cpu([md.pid]) * 1e6 / (BIG + 1)
    t1 = time.monotonic()
    md.stop(grace=60)
    out["stop_s"] = time.monotonic() - t1

    # SIGTERM while a quarter has started.
    log2 = tmp + "/big2.log"
    md = Proc("masterd", [MASTERD, "-C", cf, "-control", "none"], log=log2)
    wait_until(lambda: len(tiny_children(md.pid)) >= BIG // 4, 120, interval=0.01)
    watch = LogWatch(log2)
    out["term"] = signal_latency(md, watch, signal.SIGTERM, "stopping: soft-stopping")
    out["term_started"] = len(tiny_children(md.pid))
    md.stop(grace=60)
    return out


def probe_reload(tmp):
    """RELOAD_SERVICES services × 1 process, every file changed, SIGHUP; a control request and a
    SIGUSR1 timed alternately from the SIGHUP until every process is replaced."""
    cf, sd = tmp + "/many", tmp + "/ms"
    os.makedirs(cf)
    os.makedirs(sd)
    write_services(cf, sd, RELOAD_SERVICES, 1, prefix="m")
    log, ctl = tmp + "/many.log", tmp + "/many.ctl"
    md, wall, _, _ = md_start(cf, RELOAD_SERVICES, log, args=["-control", ctl] + (["-v"] if os.environ.get("RL_V") else []))
    out = {"start_s": wall, "during_read": [], "during_rest": []}
    time.sleep(1.5)  # every process ready (a plain program: after 1 s)
    old = tiny_children(md.pid)
    for i in range(RELOAD_SERVICES):
        with open("%s/m%04d.cf" % (cf, i), "a") as f:
            f.write("generation-key = 2\n")
    watch = LogWatch(log)
    watch.new_lines()
    applied = []

    def seen(lines, mark):
        if not applied and any(" new generation" in x and "reload:" in x for x in lines):
            applied.append(time.monotonic() - t0)
        return any(mark in x for x in lines)

    def timed_usr1():
        seen(watch.new_lines(), "\0")  # what came before: only the summary line matters
        t1 = time.monotonic()
        os.kill(md.pid, signal.SIGUSR1)
        while time.monotonic() - t1 < 5:
            if seen(watch.new_lines(), "log reopened"):
                return time.monotonic() - t1
            time.sleep(0.0005)
        return None

    def replaced():
        now = tiny_children(md.pid)
        return len(now) == RELOAD_SERVICES and not (now & old) and not any(alive(p) for p in old)

    c0, t0 = cpu([md.pid]), time.monotonic()
    os.kill(md.pid, signal.SIGHUP)
    k, done = 0, False
    while time.monotonic() - t0 < 120:
        into = out["during_read"] if not applied else out["during_rest"]
        try:
            if k % 2 == 0:
                dt, text = ask(ctl, "status m0000")
                into.append(dt if text.rstrip().endswith("status 0") else None)
            else:
                into.append(timed_usr1())
        except OSError:
            into.append(None)
        k += 1
        seen(watch.new_lines(), "\0")
        if applied and k % 8 == 0 and replaced():
            done = True
            break
    out["applied_s"] = applied[0] if applied else None
    out["probed_reload_s"] = time.monotonic() - t0 if done else None
    # Again without the probes (which take a core's share from the 2): the reload's own time,
    # from SIGHUP until masterd has logged N starts and N ends of the replaced processes.
    time.sleep(1.5)
    for i in range(RELOAD_SERVICES):
        with open("%s/m%04d.cf" % (cf, i), "a") as f:
            f.write("generation-key = 3\n")
    watch.new_lines()
    starts = ends = 0
    c0, t0 = cpu([md.pid]), time.monotonic()
    os.kill(md.pid, signal.SIGHUP)
    while time.monotonic() - t0 < 120 and (starts < RELOAD_SERVICES or ends < RELOAD_SERVICES):
        for x in watch.new_lines():
            starts += " started pid " in x
            ends += bool(re.search(r": pid \d+ (exited|killed)", x))
        time.sleep(0.02)
    out["reload_s"] = time.monotonic() - t0 if ends >= RELOAD_SERVICES else None
    out["reload_cpu"] = cpu([md.pid]) - c0
    md.stop(grace=60)
    return out


def bench_loop(ref_wall_us=None):
    """ref_wall_us: the wall time per process of spawncost's vfork+exec (kept alive), measured
    in the same run, for the reload goal."""
    tmp = tempfile.mkdtemp(prefix="zsl-", dir="/tmp")
    try:
        say("loop: %d processes starting, answers timed" % BIG)
        st = probe_start(tmp)
        say("loop: reload of %d services" % RELOAD_SERVICES)
        rl = probe_reload(tmp)
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    s_txt, s_max = ms_summary(st["status"])
    u_txt, u_max = ms_summary(st["usr1"])
    h_txt, h_max = ms_summary(st["hup"])
    t_ms = st["term"] * 1000 if st.get("term") is not None else None
    worst = max([x for x in (s_max, u_max, h_max, t_ms) if x is not None] or [float("nan")])
    lost = sum(1 for k in ("status", "usr1", "hup") for x in st[k] if x is None)
    r_max = max([x for x in (ms_summary(rl["during_read"])[1], ms_summary(rl["during_rest"])[1]) if x is not None]
                or [float("nan")])
    r_lost = sum(1 for k in ("during_read", "during_rest") for x in rl[k] if x is None)
    r_goal = 1.0 + 1.5 * RELOAD_SERVICES * ref_wall_us / 1e6 if ref_wall_us else None
    rows = [
        ["start of %d + 1 processes (s)" % BIG, fmt(st["start_s"]), ""],
        ["master CPU µs per process (that start)", fmt(st["cpu_per_proc_us"], 0), ""],
        ["`status probe` on the control socket (ms)", s_txt, ""],
        ["SIGUSR1 → `log reopened` (ms)", u_txt, ""],
        ["SIGHUP → `reload: reading` (ms)", h_txt, ""],
        ["SIGTERM with %d of %d started → `stopping:` (ms)" % (st.get("term_started", 0), BIG), fmt(t_ms, 1), ""],
        ["answers asked while processes were still starting / unanswered", "%d / %d" % (st["starting_seen"], lost), ""],
        ["stop of the %d (s)" % (BIG + 1), fmt(st["stop_s"]), ""],
        ["reload of %d services (SIGHUP, every file changed): read and applied, until its summary line (ms)"
         % RELOAD_SERVICES, fmt(rl["applied_s"] * 1000 if rl.get("applied_s") else None, 0), ""],
        ["the same: `status` and SIGUSR1 answered while it read (ms)", ms_summary(rl["during_read"])[0], ""],
        ["the same: answered while its processes were replaced (ms)", ms_summary(rl["during_rest"])[0], ""],
        ["the same: every process replaced, with those probes running (s)", fmt(rl.get("probed_reload_s")), ""],
        ["a second reload of all (every file changed again), no probes: every process replaced (s), master CPU (s)",
         "%s, %s" % (fmt(rl.get("reload_s")), fmt(rl.get("reload_cpu"))), ""],
        ["start of the %d services (s)" % RELOAD_SERVICES, fmt(rl.get("start_s")), ""],
    ]
    notes = ["Goal every signal and control request answered within %.0f ms while %d processes start: worst"
             " %.1f ms → %s." % (LOOP_GOAL_MS, BIG, worst, verdict(worst <= LOOP_GOAL_MS and lost == 0)),
             "Goal every one answered within %.0f ms while a reload of %d services runs: worst %.1f ms over"
             " %d answers, %d unanswered → %s." % (LOOP_GOAL_MS, RELOAD_SERVICES, r_max,
                                                 len(rl["during_read"]) + len(rl["during_rest"]), r_lost,
                                                 verdict(r_max <= LOOP_GOAL_MS and r_lost == 0)),
             "The client polls the log every 0.5 ms for a signal's line; it shares the 2 cores with masterd"
             " and the starting children."]
    if r_goal is not None and rl.get("reload_s") is not None:
        notes.append("Goal the reload of %d plain programs ≤ 1 s (readiness) + 1.5 × %d × vfork+exec (%.0f µs"
                      " each, this run) = %.2f s: %.2f s → %s." % (
                          RELOAD_SERVICES, RELOAD_SERVICES, ref_wall_us, r_goal, rl["reload_s"],
                          verdict(rl["reload_s"] <= r_goal)))
    table("5c. Loop latency under load", ["figure", "masterd", ""], rows, notes)
