"""Benchmark 5 (t/bench/bench.py): masterd at scale.

- Spawn cost: master CPU per process started (BENCH_SCALE services x processes, 100x10 by default)
  against t/bench/spawncost.c doing vfork()+exec of as many processes that stay alive (the same
  work without a supervisor's bookkeeping), in BENCH_SCALE_ROUNDS (5) alternating rounds, and once
  with ZS_SPAWN=fork.  Goal: ≤ 1.5× the reference.
- Footprint: RSS, idle wake-ups, reload of every service, stop; supervisord on the same processes.
- Loop latency (bench_loop.py): a signal and a control request answered while BENCH_BIG (4096)
  processes start, and the reload of BENCH_RELOAD_SERVICES (1000) services.
"""
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

from benchlib import *  # noqa: F401,F403 - the shared helpers and knobs
from benchlib import Proc, stop_all

SCALE_ROUNDS = int(os.environ.get("BENCH_SCALE_ROUNDS", "5"))
BASELINE = os.environ.get("BENCH_BASELINE")  # another masterd binary (an older build) to compare
SLEEP = shutil.which("sleep") or "/bin/sleep"
SPAWN_GOAL = 1.5


def tiny_children(pid):
    return {c for c in children(pid) if (stat(c) or ("",))[0] in ("tinyserv",)}


def write_services(cf, sockdir, nsvc, nproc, key=1, prefix="svc"):
    """nsvc tinyserv services of nproc processes each, one unix socket per service."""
    for i in range(nsvc):
        with open("%s/%s%04d.cf" % (cf, prefix, i), "w") as f:
            f.write("server-command = %s\nserver-service = %s/%s%04d.sock\nserver-proc-count = %d\n"
                    "generation-key = %d\n" % (TINY, sockdir, prefix, i, nproc, key))


def md_start(cf, total, log, env=None, args=(), limit=120, binary=None):
    """masterd on cf until `total` tinyserv children run: (Proc, wall s or None, master CPU s,
    master CPU µs per process of the starts alone).  The last is read from the first child on:
    what masterd spent after it, over the processes started after it (its own start-up, the
    config and the binds, left out)."""
    t0 = time.monotonic()
    md = Proc("masterd", [binary or MASTERD, "-C", cf] + list(args), env=env, log=log)
    first = wait_until(lambda: len(tiny_children(md.pid)), limit, interval=0.002)
    c0, n0 = cpu([md.pid]), first or 0
    up = wait_until(lambda: len(tiny_children(md.pid)) >= total, limit, interval=0.02)
    wall = time.monotonic() - t0 if up else None
    c1 = cpu([md.pid])
    steady = (c1 - c0) * 1e6 / (total - n0) if up and total > n0 else None
    return md, wall, c1, steady


def spawn_ref(mode, n, keep, res=False):
    """spawncost: (parent CPU µs per spawn, wall µs per spawn) of n vfork|fork + exec; keep: the
    children stay alive until all are started (as a supervisor's), else they exit at once; res:
    each also gets a socketpair and a pipe (kept, in epoll) and a record, as masterd's do."""
    argv = [SPAWNCOST, "-n", str(n), "-m", mode] + (["-r"] if res else []) + \
        (["-k", SLEEP, "300"] if keep else [TINY])
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=300)
    m = re.search(r"parent_cpu_us_per_spawn=(\d+) wall_us_per_spawn=(\d+)", r.stdout)
    return (int(m.group(1)), int(m.group(2))) if m else (None, None)


def spread(values, nd=2, scale=1.0):
    """'median (min–max)' of the values that are not None."""
    v = [x * scale for x in values if x is not None]
    if not v:
        return "-"
    if len(v) == 1:
        return fmt(v[0], nd)
    return "%s (%s–%s)" % (fmt(statistics.median(v), nd), fmt(min(v), nd), fmt(max(v), nd))


def med(values):
    v = [x for x in values if x is not None]
    return statistics.median(v) if v else None


def spawn_rounds(tmp, cf, total):
    """Alternating rounds of the kept-alive vfork reference and masterd's start of `total`."""
    res = {"ref_cpu": [], "ref_wall": [], "rres_cpu": [], "md_cpu": [], "md_steady": [], "md_wall": [], "fork_cpu": [],
           "fork_steady": [], "fork_wall": [], "base_cpu": [], "base_steady": [], "base_wall": []}
    for r in range(SCALE_ROUNDS):
        say("scale: spawn round %d of %d" % (r + 1, SCALE_ROUNDS))
        c, w = spawn_ref("vfork", total, keep=True)
        res["ref_cpu"].append(c)
        res["ref_wall"].append(w)
        res["rres_cpu"].append(spawn_ref("vfork", total, keep=True, res=True)[0])
        md, wall, mcpu, steady = md_start(cf, total, "%s/masterd-r%d.log" % (tmp, r))
        md.stop(grace=30)
        res["md_cpu"].append(mcpu * 1e6 / total if wall else None)
        res["md_steady"].append(steady)
        res["md_wall"].append(wall)
        if BASELINE:
            md, wall, mcpu, steady = md_start(cf, total, "%s/baseline-r%d.log" % (tmp, r), binary=BASELINE)
            md.stop(grace=30)
            res["base_cpu"].append(mcpu * 1e6 / total if wall else None)
            res["base_steady"].append(steady)
            res["base_wall"].append(wall)
    say("scale: the fork() path (ZS_SPAWN=fork) and the other references")
    md, wall, mcpu, steady = md_start(cf, total, tmp + "/masterd-fork.log", env=dict(os.environ, ZS_SPAWN="fork"))
    md.stop(grace=30)
    res["fork_cpu"].append(mcpu * 1e6 / total if wall else None)
    res["fork_steady"].append(steady)
    res["fork_wall"].append(wall)
    res["ref_fork_kept"] = spawn_ref("fork", total, keep=True)
    res["ref_vfork_exit"] = spawn_ref("vfork", total, keep=False)
    return res


def spawn_table(total, res):
    ref, md, mdall = med(res["ref_cpu"]), med(res["md_steady"]), med(res["md_cpu"])
    rows = [
        ["masterd (clone): master CPU µs per process, the starts alone", spread(res["md_steady"], 0),
         spread(res["ref_cpu"], 0), ratio(md, ref)],
        ["masterd (clone): the same with its start-up (config, binds) counted in", spread(res["md_cpu"], 0),
         spread(res["ref_cpu"], 0), ratio(mdall, ref)],
        ["masterd with ZS_SPAWN=fork: master CPU µs per process, the starts alone", spread(res["fork_steady"], 0),
         spread(res["ref_cpu"], 0), ratio(med(res["fork_steady"]), ref)],
    ]
    if BASELINE:
        rows += [["baseline masterd (%s): the starts alone" % BASELINE, spread(res["base_steady"], 0),
                  spread(res["ref_cpu"], 0), ratio(med(res["base_steady"]), ref)],
                 ["baseline masterd: with its start-up", spread(res["base_cpu"], 0), "", ""],
                 ["baseline masterd: start of all %d (s)" % total, spread(res["base_wall"]), "", ""]]
    rres = med(res["rres_cpu"])
    rows += [
        ["reference vfork()+exec with a child's channel and output pipe (spawncost -r): parent CPU µs",
         spread(res["rres_cpu"], 0), spread(res["ref_cpu"], 0), ratio(rres, ref)],
        ["masterd (clone), the starts alone, ÷ that reference", spread(res["md_steady"], 0), spread(res["rres_cpu"], 0),
         ratio(md, rres)],
        ["reference fork()+exec, children kept: parent CPU µs per spawn", fmt(res["ref_fork_kept"][0]), "", ""],
        ["reference vfork()+exec, children exit at once: parent CPU µs per spawn",
         fmt(res["ref_vfork_exit"][0]), "", ""],
        ["start of all %d (s): masterd vs %d × vfork+exec (children kept)" % (total, total),
         spread(res["md_wall"]), spread(res["ref_wall"], 2, total / 1e6),
         ratio(med(res["md_wall"]), (med(res["ref_wall"]) or 0) * total / 1e6)],
        ["start of all %d (s) with ZS_SPAWN=fork" % total, spread(res["fork_wall"]), "", ""],
    ]
    ok = md is not None and ref is not None and md <= SPAWN_GOAL * ref
    notes = [
        "Master CPU = masterd's utime+stime (10 ms ticks) from its first child until every child has"
        " exec'd tinyserv, ÷ the processes started meanwhile (the second row counts from masterd's own"
        " start).  Reference = t/bench/spawncost.c: vfork() + exec of as many `sleep` processes that stay"
        " alive (a task's kernel stack is reused from one that exited, so children that exit at once"
        " are cheaper: that row is given too); it builds an environment and logs a line per spawn, as"
        " masterd does, but makes no status channel, output pipe, relay or process record; with -r it"
        " makes and keeps a socketpair and a pipe per child, in an epoll set, and 2.5 KB of record"
        " (what the contract's fds cost the kernel, §4, §5)."
        "  Median (min–max) of %d alternating rounds." % SCALE_ROUNDS,
        "Goal master CPU per process ≤ %.1f× vfork+exec: %s → %s." % (
            SPAWN_GOAL, ratio(md, ref), verdict(ok)),
    ]
    mw, rw = med(res["md_wall"]), med(res["ref_wall"])
    if mw is not None and rw:
        notes.append("Goal start of all %d ≤ 1.5 × (%d × vfork+exec) of wall time: %s → %s." % (
            total, total, ratio(mw, rw * total / 1e6), verdict(mw <= 1.5 * rw * total / 1e6)))
    table("5a. Spawn cost (%d processes)" % total, ["figure", "masterd", "reference", "ratio"], rows, notes)


def idle_wakeups(pid):
    def sw():
        return (status_field(pid, "voluntary_ctxt_switches") or 0) + \
            (status_field(pid, "nonvoluntary_ctxt_switches") or 0)
    a = sw()
    time.sleep(5.0)
    return sw() - a


def footprint(tmp, cf, nsvc, total, ours):
    md, ours["start_s"], ours["start_cpu"], _ = md_start(cf, total, tmp + "/masterd.log")
    # Settle: plain programs count as ready after 1 s; then masterd should sleep for good.
    time.sleep(2.0)
    ours["rss_kb"] = status_field(md.pid, "VmRSS")
    ours["wakeups"] = idle_wakeups(md.pid)
    # Reload: every .cf changes a key, so every service gets a new generation.
    old = tiny_children(md.pid)
    for i in range(nsvc):
        with open("%s/svc%04d.cf" % (cf, i), "a") as f:
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


def supervisord(tmp, nsvc, nproc, total, sup):
    """supervisord with the same processes (each needs its own socket: it passes none)."""
    conf = tmp + "/supervisord.conf"
    with open(conf, "w") as f:
        f.write("[supervisord]\nnodaemon=true\nuser=root\nlogfile=%s/supervisord.log\npidfile=%s/sd.pid\n"
                "childlogdir=%s\nminfds=%d\n\n" % (tmp, tmp, tmp, 4 * total + 100))
        for i in range(nsvc):
            f.write("[program:svc%04d]\ncommand=%s %s/s/svc%04d_%%(process_num)02d.sock\n"
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


def footprint_table(nsvc, nproc, total, ours, sup):
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
    ]
    notes = ["%d services × %d tinyserv processes (masterd: one unix socket per service, shared by its %d"
             " processes; supervisord: numprocs=%d, one socket per process, since it passes none)."
             % (nsvc, nproc, nproc, nproc),
             "Up = every child has exec'd tinyserv (polled in /proc every 20 ms); wake-ups ="
             " voluntary+involuntary context switches of the master over 5 s of idleness, 2 s after"
             " all are up.  Reload = until all %d are new pids and every old one is gone (a plain"
             " program counts as ready after 1 s, so a reload takes at least that)." % total]
    if "note" in sup:
        notes.append("supervisord: " + sup["note"])
    if ours.get("wakeups") is not None:
        notes.append("Goal 0 idle wake-ups: masterd %d → %s." % (ours["wakeups"], verdict(ours["wakeups"] == 0)))
    table("5b. Master footprint and scale (%d processes)" % total,
          ["figure", "masterd", "supervisord", "ratio"], rows, notes)


def bench_scale():
    from bench_loop import bench_loop
    nsvc, nproc = (int(x) for x in SCALE.split("x"))
    total = nsvc * nproc
    tmp = tempfile.mkdtemp(prefix="zsb-", dir="/tmp")  # short: unix socket paths
    ours, sup = {}, {}
    ref_wall_us = None
    try:
        cf = tmp + "/cf"
        os.makedirs(cf)
        os.makedirs(tmp + "/s")
        write_services(cf, tmp + "/s", nsvc, nproc)
        hf = tmp + "/hf.json"
        subprocess.run(["hyperfine", "-N", "--style", "basic", "--warmup", "3", "-r", "30", "--export-json", hf,
                        "%s -C %s -t" % (MASTERD, cf)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
        try:
            with open(hf) as f:
                ours["check_ms"] = json.load(f)["results"][0]["median"] * 1000
        except (OSError, ValueError, KeyError, IndexError):
            pass
        res = spawn_rounds(tmp, cf, total)
        ref_wall_us = med(res["ref_wall"])
        spawn_table(total, res)
        footprint(tmp, cf, nsvc, total, ours)
        shutil.rmtree(tmp + "/s", ignore_errors=True)
        os.makedirs(tmp + "/s")
        supervisord(tmp, nsvc, nproc, total, sup)
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    footprint_table(nsvc, nproc, total, ours, sup)
    bench_loop(ref_wall_us)
