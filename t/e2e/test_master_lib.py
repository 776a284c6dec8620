"""The master as a library (doc/CONTRACT.md §13, issue #16 part 1): masterd is lib-zc's three-line
main over zmaster_server_main; lib-zc's own master_server.c builds against zc.h and libzmaster.a
and is the master itself; sample/custom_master.c sets zmaster_server_before_service and
zmaster_server_load_config and supervises services built in code, with no .cf file on disk.  The
hook runs again on every reload; what it returns is validated exactly as a file is (errors name
the service; a refused reload changes nothing); lib-zc's default loader is usable from the hook."""
import os
import re
import signal
import socket
import subprocess
import unittest

from lib import BUILD, MASTERD, Master, MasterTest, ROOT, free_port, sample, valgrind_prefix, wait_until

MASTERCTL = os.path.join(BUILD, "masterd", "masterctl")
CUSTOM = sample("custom_master")
SAMPLES = os.environ.get("LIBZC_SAMPLES") or os.path.normpath(os.path.join(ROOT, "..", "shared", "libzc-samples"))


class CustomMaster(Master):
    """sample/custom_master with its "database" file; no -C unless args give one."""

    def __init__(self, db_text, **kw):
        super().__init__(**kw)
        self.db = self.path("services.txt")
        self.set_db(db_text)
        self.env = dict(os.environ, CUSTOM_MASTER_DB=self.db)

    def set_db(self, text):
        with open(self.db + ".tmp", "w") as f:
            f.write(text.replace("{dir}", self.dir))
        os.rename(self.db + ".tmp", self.db)

    def cmdline(self, *extra):
        return valgrind_prefix(self.dir) + [CUSTOM, "-pid-file", self.pid_file] + self.args + list(extra)

    def run(self, *extra, timeout=10):
        return subprocess.run(self.cmdline(*extra), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, cwd=self.cwd, env=self.env)

    def ctl(self, *args):
        return subprocess.run([MASTERCTL, "-pid-file", self.pid_file] + list(args), capture_output=True,
                              text=True, timeout=30)


def banner(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        return s.makefile("rb").readline().decode().strip()


class MasterLib(MasterTest):
    def custom(self, db_text, **kw):
        m = CustomMaster(db_text, **kw)
        self.masters.append(m)
        return m

    def test_masterd_main_is_the_seeds_three_lines(self):
        with open(os.path.join(ROOT, "masterd", "main.c")) as f:
            code = [l for l in f.read().splitlines() if l.strip() and not l.lstrip().startswith(("/*", "*", "#"))]
        self.assertEqual(code, ["int main(int argc, char **argv) { return zmaster_server_main(argc, argv); }"])

    def test_services_built_in_code_run_with_no_cf_file(self):
        port = free_port()
        m = self.custom("greeter 127.0.0.1:%d 2 220 from the database\n" % port)
        r = m.run("-t")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration ok (1 service)", r.stdout)
        m.start(expect_children=2)
        self.assertEqual([f for f in os.listdir(m.dir) if f.endswith(".cf")], [])
        self.assertEqual(os.listdir(m.cf), [])
        self.assertEqual(banner(port), "220 from the database")
        # One process answering says nothing of the other's readiness (a loaded SAN run saw 2/2/1).
        wait_until(lambda: re.search(r"greeter\s+running\s+2/2/2", m.ctl("status").stdout), 10,
                   what="both greeters ready")
        st = m.ctl("status")
        self.assertEqual(st.returncode, 0, st.stdout + st.stderr)
        self.assertIn("1 service from zmaster_server_load_config", m.log())
        self.assertEqual(m.stop(), 0)

    def test_the_hook_runs_on_every_reload_and_is_validated_like_a_file(self):
        port = free_port()
        m = self.custom("greeter 127.0.0.1:%d 2\n" % port)
        m.start(expect_children=2)
        m.set_db("greeter 127.0.0.1:%d 3\n" % port)
        r = m.ctl("reload")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        kids = m.wait_children(3)
        self.assertIn("(load 2)", m.log())
        # A bad value and a config without a name: refused, naming the service; nothing changes.
        m.set_db("greeter 127.0.0.1:%d 0\n- 127.0.0.1:%d 1\n" % (port, free_port()))
        r = m.ctl("reload")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("service 'greeter' (zmaster_server_load_config): server-proc-count: '0': out of range",
                      r.stdout + r.stderr)
        self.assertIn("config #2 has no server-name", r.stdout + r.stderr)
        self.assertEqual(sorted(m.children()), sorted(kids))
        self.assertEqual(banner(port)[:3], "220")
        # SIGHUP runs the hook too.
        m.set_db("greeter 127.0.0.1:%d 1\n" % port)
        m.signal(signal.SIGHUP)
        m.wait_children(1, timeout=15)
        self.assertIn("(load 4)", m.log())
        self.assertEqual(m.log().count("custom_master: before_service"), 1)
        self.assertEqual(m.stop(), 0)

    def test_long_service_names_are_shown_whole(self):
        # Found by the hostile round: names were cut at 20 characters, so two could look the same.
        a, b = "mail-submission-port-a", "mail-submission-port-b"
        m = self.master({a + ".cf": "server-command = /bin/sleep 1000\n", b + ".cf": "server-command = /bin/sleep 1000\n"})
        m.start(expect_children=2)
        out = subprocess.run([MASTERCTL, "-pid-file", m.pid_file, "status"], capture_output=True, text=True,
                             timeout=30).stdout
        self.assertRegex(out, r"(?m)^%s\s+\S+" % a)
        self.assertRegex(out, r"(?m)^%s\s+\S+" % b)

    def test_a_bad_config_at_start_starts_nothing(self):
        port = free_port()
        m = self.custom("a 127.0.0.1:%d 1\na 127.0.0.1:%d 1\nb 127.0.0.1:%d 5000\n" % (port, free_port(), port))
        r = m.run("-t")
        self.assertEqual(r.returncode, 2)
        self.assertIn("service 'a' is defined twice", r.stderr)
        self.assertIn("service 'b' (zmaster_server_load_config): server-proc-count: '5000'", r.stderr)
        self.assertIn("errors in zmaster_server_load_config", r.stderr)
        r = m.run()
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertTrue(socket.socket().connect_ex(("127.0.0.1", port)) != 0, "a port was bound")

    def test_the_default_loader_from_the_hook_and_its_file_errors(self):
        port, port2 = free_port(), free_port()
        m = self.custom("@{dir}/cf\ngreeter 127.0.0.1:%d 1\n" % port)
        m.write("pop.cf", "server-command = %s\nserver-service = 127.0.0.1:%d\nbanner = +OK from a file\n"
                % (sample("greeter"), port2))
        m.write("bad.cf", "server-command = %s\nserver-proc-count = x\n" % sample("greeter"))
        r = m.run("-t")
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad.cf:2: server-proc-count: 'x'", r.stderr)
        m.write("bad.cf", "server-command = %s\nthis line has no equals sign\n" % sample("greeter"))
        r = m.run("-t")
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad.cf:2", r.stderr)
        m.remove("bad.cf")
        r = m.run("-t")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("(2 services)", r.stdout)
        m.start(expect_children=2)
        self.assertEqual(banner(port2), "+OK from a file")
        self.assertEqual(banner(port)[:3], "220")

    def test_a_duration_with_a_unit_ends_a_held_session_gracefully(self):
        # The hook sets server-stop-on-softstop-after = 5s: the greeter reads it as a duration
        # (it was read as a whole number, and the old process died at soft-stop).
        port = free_port()
        m = self.custom("greeter 127.0.0.1:%d 1 first\n" % port)
        m.start(expect_children=1)
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        f = s.makefile("rb")
        self.assertEqual(f.readline().strip(), b"first")
        m.set_db("greeter 127.0.0.1:%d 1 second\n" % port)
        self.assertEqual(m.ctl("reload").returncode, 0)
        wait_until(lambda: banner(port) == "second", 10, what="the new generation")
        # greeter's soft-stop tells an idle session goodbye (it died without a word before).
        self.assertTrue(f.readline().startswith(b"421"), "the old session was not told goodbye")
        s.close()
        self.assertNotIn("FATAL", m.log())


# A master whose hook misbehaves as $MODE says (hostile round on #16); $FLAG exists: the variant.
HOSTILE_MASTER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "zc.h"
static int flag(void) { return access(getenv("FLAG"), F_OK) == 0; }
static zconfig_t *svc(const char *name)
{
    zconfig_t *cf = zconfig_create();
    zconfig_update_string(cf, "server-name", name, -1);
    zconfig_update_string(cf, "server-command", "/bin/sleep 1000", -1);
    return cf;
}
static void load(zvector_t *cfs)
{
    const char *mode = getenv("MODE");
    if (!strcmp(mode, "twice")) {
        zconfig_t *cf = svc("a");
        zvector_push(cfs, cf);
        if (flag())
            zvector_push(cfs, cf);
    } else if (!strcmp(mode, "file")) {          /* a file read in the hook, renamed in code */
        zconfig_t *cf = zconfig_create();
        zconfig_load_from_pathname(cf, getenv("FILE"));
        zconfig_update_string(cf, "___Z_20181216_fn", getenv("FILE"), -1); /* as lib-zc's loader does */
        if (getenv("EXTRA"))                    /* more keys from a second file */
            zconfig_load_from_pathname(cf, getenv("EXTRA"));
        if (flag())
            zconfig_update_string(cf, "server-name", "renamed", -1);
        zvector_push(cfs, cf);
    } else if (!strcmp(mode, "order")) {         /* the same keys, set in another order */
        zconfig_t *cf = zconfig_create();
        const char *k[3][2] = { { "server-name", "a" }, { "server-command", "/bin/sleep 1000" }, { "x", "1" } };
        for (int i = 0; i < 3; i++) {
            int j = flag() ? 2 - i : i;
            zconfig_update_string(cf, k[j][0], k[j][1], -1);
        }
        zconfig_update_string(cf, "server-proc-count", "2", -1);
        zvector_push(cfs, cf);
    } else if (!strcmp(mode, "names")) {
        char longname[301];
        memset(longname, 'n', 300);
        longname[300] = 0;
        zvector_push(cfs, svc(longname));
        zvector_push(cfs, svc(".hidden"));
        zconfig_t *cf = svc("k");
        zconfig_update_string(cf, "a b", "1", -1);
        zconfig_update_string(cf, "c", "two\nlines", -1);
        zvector_push(cfs, cf);
    }
}
int main(int argc, char **argv) { zmaster_server_load_config = load; return zmaster_server_main(argc, argv); }
"""


class HostileHooks(MasterTest):
    """What a careless hook does (each failed before it was fixed)."""

    @classmethod
    def setUpClass(cls):
        cls.bin = os.path.join(BUILD, "t", "hostile_master")
        src = cls.bin + ".c"
        os.makedirs(os.path.dirname(src), exist_ok=True)
        with open(src, "w") as f:
            f.write(HOSTILE_MASTER)
        san = ["-fsanitize=address,undefined"] if os.path.basename(BUILD) == "build-san" else []
        r = subprocess.run(["cc", "-O1", "-g", "-Wall", "-I", os.path.join(ROOT, "libzserver"), "-I",
                            os.path.join(ROOT, "libzserver", "core"), "-o", cls.bin, src] + san
                           + [os.path.join(BUILD, "libzmaster.a"), "-linih", "-lev", "-lm"],
                           capture_output=True, text=True, timeout=120)
        if r.returncode:
            raise AssertionError(r.stderr)

    def hostile(self, mode, **env):
        m = CustomMaster("", **{})
        self.masters.append(m)
        m.flag = m.path("flag")
        m.env = dict(os.environ, MODE=mode, FLAG=m.flag, **env)
        m.cmdline = lambda *extra: valgrind_prefix(m.dir) + [self.bin, "-pid-file", m.pid_file] + list(extra)
        return m

    def test_a_config_pushed_twice_is_an_error_not_a_crash(self):
        m = self.hostile("twice")
        open(m.flag, "w").close()
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("config #2 is config #1 again (one zconfig_t pushed twice)", r.stderr)
        os.unlink(m.flag)
        m.start(expect_children=1)
        kids = m.children()
        open(m.flag, "w").close()
        r = m.ctl("reload")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIsNone(m.proc.poll(), "the master died")
        self.assertEqual(m.children(), kids)

    @unittest.skipUnless(os.geteuid() == 0, "needs root")
    def test_a_file_the_hook_loads_gets_the_ownership_check(self):
        m = self.hostile("file")
        f, extra = m.path("svc.cf"), m.path("extra.conf")
        with open(f, "w") as fh:
            fh.write("server-command = /bin/sleep 1000\n")
        with open(extra, "w") as fh:
            fh.write("server-proc-count = 2\n")
        m.env.update(FILE=f, EXTRA=extra)
        self.assertEqual(m.run("-t").returncode, 0)
        os.chown(extra, 65534, 65534)
        r = m.run("-t")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("extra.conf is owned by uid 65534, not root", r.stderr)
        os.chown(extra, 0, 0)
        os.chmod(extra, 0o666)
        r = m.run("-t")
        self.assertEqual(r.returncode, 2)
        self.assertIn("extra.conf is writable by group and others", r.stderr)

    def test_server_name_set_in_code_names_a_file_loaded_config(self):
        m = self.hostile("file")
        f = m.path("svc.cf")
        with open(f, "w") as fh:
            fh.write("server-command = /bin/sleep 1000\n")
        m.env["FILE"] = f
        open(m.flag, "w").close()
        r = m.run("-t")
        self.assertEqual(r.returncode, 0, r.stderr)
        m.start(expect_children=1)
        wait_until(lambda: re.search(r"(?m)^renamed\s+running", m.ctl("status").stdout), 10, what="renamed running")

    def test_keys_set_in_another_order_are_the_same_config(self):
        m = self.hostile("order")
        m.start(expect_children=2)
        kids = m.children()
        open(m.flag, "w").close()
        r = m.ctl("reload")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(sorted(m.children()), sorted(kids))
        self.assertIn("1 unchanged", m.log())

    def test_names_and_keys_no_file_could_hold_are_refused(self):
        m = self.hostile("names")
        r = m.run("-t")
        self.assertEqual(r.returncode, 2)
        self.assertIn("(300 characters): a service id has at most 200 characters", r.stderr)
        self.assertIn("server-name: '.hidden'", r.stderr)
        self.assertIn("service 'k' (zmaster_server_load_config): key 'a b': not a key a file could set", r.stderr)
        self.assertIn("service 'k' (zmaster_server_load_config): c: the value holds a newline", r.stderr)


@unittest.skipUnless(os.path.isdir(SAMPLES), "lib-zc samples not found at %s" % SAMPLES)
class LibzcMasterServer(MasterTest):
    """lib-zc's sample/master/master_server.c, unmodified, is the master."""

    def test_libzc_master_server_c_is_the_master(self):
        out = os.path.join(BUILD, "libzc", "master_server")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        san = ["-fsanitize=address,undefined"] if os.path.basename(BUILD) == "build-san" else []
        r = subprocess.run(["cc", "-O1", "-g", "-Wall", "-I", os.path.join(ROOT, "libzserver"),
                            "-I", os.path.join(ROOT, "libzserver", "core"), "-o", out,
                            os.path.join(SAMPLES, "master_server.c")] + san
                           + [os.path.join(BUILD, "libzmaster.a"), "-linih", "-lev", "-lm"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        port = free_port()
        m = self.master({"pop3d.cf": "server-command = %s\nserver-service = 127.0.0.1:%d\nbanner = +OK lib-zc's master\n"
                                     % (sample("greeter"), port)})
        m.cmdline = lambda *extra: valgrind_prefix(m.dir) + [out, "-C", m.cf, "-pid-file", m.pid_file] + list(extra)
        r = m.run("-t")
        self.assertEqual(r.returncode, 0, r.stderr)
        m.start(expect_children=1)
        self.assertEqual(banner(port), "+OK lib-zc's master")
        self.assertEqual(m.stop(), 0)
        self.assertNotEqual(os.path.realpath(out), os.path.realpath(MASTERD))


if __name__ == "__main__":
    unittest.main()
