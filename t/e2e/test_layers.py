"""The shape of the code (issue #17): libzserver's layers only look down, and masterd carries no
server runtime.

- masterd's symbols: no syscall hook (a `T close` would mean every close() of the supervisor goes
  through the coroutine runtime), nothing of aio mode, the coroutine runtime or the server
  skeleton;
- t/tools/check_layers.py passes on the tree and on the build's per-layer archives, and fails
  on a copy of the tree given one upward include, one sideways include (aio <-> co) and a core
  file including the public zserver.h;
- the installed library still holds everything a server needs.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import lib

CHECK = os.path.join(lib.ROOT, "t", "tools", "check_layers.py")
# libc names the coroutine hooks define (libzserver/co/zs_co_hook.c); none may be masterd's own.
HOOKED = ("close", "read", "write", "accept", "accept4", "connect", "poll", "recv", "send",
          "recvmsg", "sendmsg", "dup", "dup2", "dup3", "socket", "fcntl", "sleep", "nanosleep", "fclose")
# (lib-zc's zconfig_t object calls and zvector_t are core's: the master builds configs with them;
# the typed getters zconfig_get_* belong to the server runtime.)
SERVER_PREFIXES = ("zaio_", "zcoroutine_", "zs_co_", "zs_aio_", "zs_server_", "zconfig_get",
                   "zvar_default_aio_base")


def defined_symbols(path):
    out = subprocess.run(["nm", "--defined-only", path], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if len(line.split()) >= 3}


class Layers(unittest.TestCase):

    def test_masterd_has_no_server_runtime(self):
        syms = defined_symbols(lib.MASTERD)
        self.assertIn("zs_gen_new", syms, "nm sees masterd's own supervision symbols")
        hooks = sorted(s for s in syms if s in HOOKED)
        self.assertEqual(hooks, [], "masterd defines libc names (syscall hooks)")
        runtime = sorted(s for s in syms if s.startswith(SERVER_PREFIXES))
        self.assertEqual(runtime, [], "masterd holds server-runtime symbols")

    def test_library_has_everything(self):
        syms = defined_symbols(os.path.join(lib.BUILD, "libzserver.a"))
        for s in ("zaio_server_main", "zcoroutine_server_main", "zcoroutine_go", "close",
                  "zs_gen_new", "zlog_write", "zconfig_get_str"):
            self.assertIn(s, syms)

    def test_tree_and_archives_pass(self):
        r = subprocess.run([sys.executable, CHECK, "--top", lib.ROOT, "--build", lib.BUILD],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "")

    def check_copy(self, rel, line):
        """Copies the tree's sources, appends `line` to rel, runs the checker: its output."""
        with tempfile.TemporaryDirectory() as d:
            for sub in ("libzserver", "masterd"):
                shutil.copytree(os.path.join(lib.ROOT, sub), os.path.join(d, sub))
            with open(os.path.join(d, rel), "a") as f:
                f.write(line + "\n")
            r = subprocess.run([sys.executable, CHECK, "--top", d], capture_output=True, text=True)
            self.assertEqual(r.returncode, 1, "checker accepted %r in %s" % (line, rel))
            self.assertIn(rel, r.stdout)
            return r.stdout

    def test_checker_refuses_upward_sideways_and_public_includes(self):
        out = self.check_copy("libzserver/core/zs_log.c", '#include "super/zs_supervisor.h"')
        self.assertIn("core may not use super", out)
        out = self.check_copy("libzserver/super/zs_spawn.c", '#include "server/zs_server.h"')
        self.assertIn("super may not use server", out)
        out = self.check_copy("libzserver/co/zs_co.c", '#include "aio/zs_aio.h"')
        self.assertIn("co may not use aio", out)
        out = self.check_copy("libzserver/aio/zs_aio.c", '#include "co/zs_co.h"')
        self.assertIn("aio may not use co", out)
        out = self.check_copy("libzserver/master/md_set.c", '#include "server/zs_server.h"')
        self.assertIn("master may not use server", out)
        out = self.check_copy("libzserver/co/zs_co.c", '#include "master/md_set.h"')
        self.assertIn("co may not use master", out)
        out = self.check_copy("masterd/main.c", '#include "server/zs_server.h"')
        self.assertIn("masterd may not use server", out)
        out = self.check_copy("libzserver/core/zs_board.c", '#include "zserver.h"')
        self.assertIn("public zserver.h", out)
        out = self.check_copy("libzserver/master/md_set.c", '#include "zc.h"')
        self.assertIn("public zc.h", out)
        out = self.check_copy("libzserver/core/zs_board.c", '#include "zs_spawn.h"')
        self.assertIn("named with its folder", out)


if __name__ == "__main__":
    unittest.main()
