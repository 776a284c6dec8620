#!/usr/bin/env python3
"""Checks that libzserver's layers only look down.

The layers, lowest first (each a folder of libzserver/ and an archive libzs_LAYER.a):

    core < super < server < aio, co        (aio and co are siblings: neither uses the other)
    core < super < master                  (zmaster_server_main: beside server, used by no layer)

and masterd/ (main() only) sits on master.  Two rules, each checked from the sources and, given a build
directory, from the archives:

1. includes: a file includes headers of its own layer (bare name) or of a lower layer
   ("core/zs_log.h"); the public zserver.h is the top and only server, aio, co and programs
   include it (core/zserver_core.h is the public part that core and super may use); lib-zc's
   compatibility headers zc.h and zc_coroutine.h sit beside it and follow the same rule;
2. symbols: every symbol an archive needs from the library is defined in its own layer or a
   lower one (`nm`), so a dependency hidden behind an extern declaration is caught too.

Usage: check_layers.py [--top DIR] [--build DIR].  Prints each violation as FILE: why, and exits
1 when there is one.
"""
import argparse
import os
import re
import subprocess
import sys

LAYERS = ["core", "super", "server", "aio", "co", "master"]
RANK = {"core": 0, "super": 1, "server": 2, "master": 2, "aio": 3, "co": 3, "masterd": 4}
# Who may use whom, beyond "strictly lower rank": nobody; siblings (aio, co) may not.
TOP_HEADERS = ("zserver.h", "zc.h", "zc_coroutine.h")


def may_use(user, used):
    """Whether layer `user` may depend on layer `used`."""
    if user == "masterd":
        return used in ("master", "super", "core")
    if used == "master":
        return user == "master"
    return used == user or RANK[used] < RANK[user]


def includes(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            m = re.match(r'\s*#\s*include\s*"([^"]+)"', line)
            if m:
                yield n, m.group(1)


def check_sources(top):
    bad = []
    lib = os.path.join(top, "libzserver")
    units = [(l, os.path.join(lib, l)) for l in LAYERS] + [("masterd", os.path.join(top, "masterd"))]
    for layer, d in units:
        for f in sorted(os.listdir(d)):
            if not f.endswith((".c", ".h", ".S")):
                continue
            p = os.path.join(d, f)
            rel = os.path.relpath(p, top)
            for n, inc in includes(p):
                where = "%s:%d: #include \"%s\"" % (rel, n, inc)
                if inc in TOP_HEADERS:
                    if RANK[layer] < RANK["server"] or layer in ("master", "masterd"):
                        bad.append("%s: the public %s declares the server runtime; %s uses "
                                   "core/zserver_core.h" % (where, inc, layer))
                    continue
                if "/" not in inc:
                    if layer == "masterd" or os.path.exists(os.path.join(d, inc)):
                        continue
                    bad.append("%s: a header of another layer is named with its folder" % where)
                    continue
                used = inc.split("/")[0]
                if used not in RANK or used == "masterd":
                    bad.append("%s: not a layer of libzserver" % where)
                elif not may_use(layer, used):
                    bad.append("%s: %s may not use %s (layers: core < super < server < aio, co; "
                               "core < super < master < masterd)"
                               % (where, layer, used))
    return bad


def nm(archive, defined):
    """Symbols an archive defines (defined=True) or needs."""
    out = subprocess.run(["nm", "-A", archive], capture_output=True, text=True, check=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        kind, name = parts[-2], parts[-1]
        if defined and kind in "TDBRVWCG" and len(kind) == 1:
            syms.add(name)
        if not defined and kind == "U":
            syms.add(name)
    return syms


def check_archives(build):
    bad = []
    defs = {}
    for l in LAYERS:
        a = os.path.join(build, "libzs_%s.a" % l)
        if not os.path.exists(a):
            return ["%s: missing (build first)" % a]
        defs[l] = nm(a, True)
    for l in LAYERS:
        for sym in sorted(nm(os.path.join(build, "libzs_%s.a" % l), False)):
            # The coroutine hooks define libc's own names (close, read...): a call to those
            # is a call to libc, whoever ends up answering it.
            owners = [o for o in LAYERS if sym in defs[o] and sym.startswith("z")]
            if owners and not any(may_use(l, o) for o in owners):
                bad.append("libzs_%s.a: needs %s from %s" % (l, sym, "/".join(owners)))
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    ap.add_argument("--build")
    a = ap.parse_args()
    bad = check_sources(a.top)
    if a.build:
        bad += check_archives(a.build)
    for b in bad:
        print(b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
