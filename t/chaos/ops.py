"""The operations of a chaos run.  `generate(rng, world)` picks one op as a plain dict (every
random choice made there, so a recorded list replays the same way); `apply(op, world, checker)`
performs it.  Ops that name a process pick it by service and index modulo what is running then,
so a shrunk list still means something."""
import os
import signal
import time

import lib  # t/e2e/lib.py
from invariants import parse_reload
from world import Failure, poll

JUNK_KINDS = ["crash", "hostile_exit", "tlib_noready", "hostile_noready", "hostile_garbage",
              "hostile_flood", "hostile_passfd", "hostile_daemon", "hostile_detach",
              "bad_value", "bad_key", "overlong"]
INVALID = ("bad_value", "bad_key", "overlong")
SIGS = {"HUP": signal.SIGHUP, "USR1": signal.SIGUSR1, "USR2": signal.SIGUSR2}

# op name -> weight
WEIGHTS = {
    "touch": 6, "scale": 6, "add": 10, "remove": 6, "rename": 3, "dangling": 2, "hup": 8,
    "usr2": 3, "storm": 4, "kill9": 6, "stopcont": 3, "master_stopcont": 3, "restart": 1,
    "ctl_restart": 3, "ctl_hostile": 3,
}
CTL_HOSTILE = ("stuck", "partial", "garbage", "oversize", "flood", "ask_and_leave")


def generate(rng, world, skip=()):
    names = [n for n in WEIGHTS if n not in skip]
    name = rng.choices(names, [WEIGHTS[n] for n in names])[0]
    op = {"op": name}
    if name in ("touch", "scale"):
        op["sid"] = rng.choice(world.HEALTHY)
        op["count"] = rng.randint(1, 3)
        op["hup"] = rng.random() < 0.8
    elif name == "add":
        kind = rng.choice([k for k in JUNK_KINDS if k not in skip] or JUNK_KINDS)
        many = kind in ("crash", "hostile_exit") and rng.random() < 0.3
        op.update(kind=kind, count=rng.choice([16, 48]) if many else rng.randint(1, 2),
                  symlink=rng.random() < 0.25, listen=rng.random() < 0.3, hup=rng.random() < 0.7)
    elif name in ("remove", "rename"):
        op["index"] = rng.randrange(1000)
        op["hup"] = rng.random() < 0.7
    elif name == "dangling":
        op["hup"] = rng.random() < 0.5
    elif name == "storm":
        op["sigs"] = [rng.choice(["HUP", "HUP", "USR1", "USR2"]) for _ in range(rng.randint(3, 25))]
    elif name in ("kill9", "stopcont"):
        op["healthy"] = rng.random() < 0.5
        op["index"] = rng.randrange(1000)
        op["ms"] = rng.randint(10, 800)
    elif name == "master_stopcont":
        op["ms"] = rng.randint(10, 1500)
    elif name == "ctl_restart":
        op["sid"] = rng.choice(world.HEALTHY)
        op["verb"] = rng.choice(["restart", "stop_start"])
    elif name == "ctl_hostile":
        op["kinds"] = [rng.choice(CTL_HOSTILE) for _ in range(rng.randint(1, 60))]
    return op


def describe(op):
    rest = " ".join("%s=%s" % (k, v) for k, v in op.items() if k != "op")
    return "%s %s" % (op["op"], rest)


def _junk(world, index):
    junk = sorted(s for s in world.disk if s not in world.HEALTHY)
    return junk[index % len(junk)] if junk else None


def _send_and_settle(world, sigs):
    """Sends the signals; when any is SIGHUP, waits for masterd to log a reload result and takes
    the last one as the outcome (every reload of this op saw the same files)."""
    start = len(world.tail.update())
    for s in sigs:
        world.signal(SIGS[s])
    if "HUP" not in sigs:
        return
    res = poll(lambda: [r for r in map(parse_reload, world.tail.update()[start:]) if r],
               world.cfg.bound, 0.02)
    if not res:
        if not world.alive():
            return  # the alive check reports it
        raise Failure("reload", "no reload result logged within %.0f s of SIGHUP" % world.cfg.bound)
    want = "ok" if world.disk_valid() else "error"
    if res[-1] == "ok":
        world.set_applied()
    if res[-1] != want:
        raise Failure("reload-verdict", "reload %s, but the dir is %s: %s" % (
            "accepted" if res[-1] == "ok" else "refused", "valid" if want == "ok" else "invalid",
            sorted((s, v["kind"], "dangling" if v.get("dangling") else "") for s, v in world.disk.items()
                   if s not in world.HEALTHY)))


def _pick_child(world, op):
    kids = world.scan()
    cands = []
    for pid, (sid, comm, state) in sorted(kids.items()):
        if comm == "chaos-daemon" or sid is None:
            continue
        healthy = sid in world.HEALTHY
        if healthy != op["healthy"]:
            continue
        if healthy and _age(pid) < 2.0:
            continue  # dying young counts as a failure and backs off: not what this op is for
        cands.append(pid)
    return cands[op["index"] % len(cands)] if cands else None


def _age(pid):
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    start = int(data[data.rindex(")") + 2:].split()[19]) / os.sysconf("SC_CLK_TCK")
    with open("/proc/uptime") as f:
        up = float(f.read().split()[0])
    return up - start


def apply(op, world, checker):
    name = op["op"]
    if name in ("touch", "scale"):
        spec = world.disk[op["sid"]]
        if name == "touch":
            spec["touch"] += 1
        else:
            spec["count"] = op["count"]
        world.write_cf(op["sid"])
        if op["hup"]:
            _send_and_settle(world, ["HUP"])
    elif name == "add":
        world.junk_seq += 1
        sid = "j%d_%s" % (world.junk_seq, op["kind"])
        spec = {"kind": op["kind"], "count": op["count"], "touch": 0, "symlink": op["symlink"],
                "valid": op["kind"] not in INVALID, "cap": sid}
        if op["listen"]:
            spec["port"] = lib.free_port()
        world.disk[sid] = spec
        world.write_cf(sid)
        if op["hup"]:
            _send_and_settle(world, ["HUP"])
    elif name in ("remove", "rename"):
        sid = _junk(world, op["index"])
        if sid:
            if name == "remove":
                world.remove_cf(sid)
            else:
                world.junk_seq += 1
                world.rename_cf(sid, "j%d_%s" % (world.junk_seq, world.disk[sid]["kind"]))
        if op["hup"]:
            _send_and_settle(world, ["HUP"])
    elif name == "dangling":
        world.junk_seq += 1
        sid = "j%d_dangling" % world.junk_seq
        world.disk[sid] = {"kind": "crash", "count": 1, "dangling": True}
        world.write_cf(sid)
        if op["hup"]:
            _send_and_settle(world, ["HUP"])
    elif name == "hup":
        _send_and_settle(world, ["HUP"])
    elif name == "usr2":
        _send_and_settle(world, ["USR2"])
    elif name == "storm":
        _send_and_settle(world, op["sigs"])
    elif name in ("kill9", "stopcont"):
        pid = _pick_child(world, op)
        if pid:
            try:
                if name == "kill9":
                    os.kill(pid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGSTOP)
                    time.sleep(op["ms"] / 1e3)  # the stop itself is the op: a pause, not a wait
                    os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    elif name == "master_stopcont":
        world.signal(signal.SIGSTOP)
        try:
            time.sleep(op["ms"] / 1e3)
        finally:
            world.signal(signal.SIGCONT)
    elif name == "restart":
        restart_master(world, checker)
    elif name == "ctl_restart":
        verbs = ["restart"] if op["verb"] == "restart" else ["stop", "start"]
        for verb in verbs:
            r = world.ctl(verb, op["sid"])
            if r.returncode != 0 and world.alive():
                raise Failure("control", "masterctl %s %s: exit %d: %s" % (verb, op["sid"], r.returncode,
                                                                          (r.stdout + r.stderr)[-300:]))
    elif name == "ctl_hostile":
        world.ctl_hostile(op["kinds"])
    else:
        raise ValueError("unknown op %r" % name)


def restart_master(world, checker):
    """kill -9 masterd: its children must go; then a new masterd on the same (canonical) dir."""
    world.clients.paused.set()
    try:
        kids = list(world.scan())
        world.m.proc.kill()
        world.m.proc.wait(10)
        checker.after_master_killed(kids)
        world.kill_leftovers()  # adopted daemons have nobody to stop them (see the report)
        poll(lambda: not any(p for p in kids if os.path.exists("/proc/%d" % p)), 5)
        world.make_canonical()
        world.start()
        checker.converged()
        world.baseline = None
    finally:
        world.clients.paused.clear()
