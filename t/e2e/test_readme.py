"""The C snippets of README.md and doc/*.md compile as pasted.

Every fenced block whose info string is `c` is a whole program: it is compiled with the project's
warnings (`-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror`, headers from libzserver/ and
libzserver/core/) and linked against the build's libzserver.a, as a server links it.  A block
whose info string is `c fragment` is a piece of a program (a function, a hook): it must compile
on its own with the same flags but is not linked (`cc -c`), so it still needs its own #includes
and declarations.  Any other info string (`sh`, `ini`, none) is not C and is not checked.

The checker itself is tested: a snippet with an undeclared call, one with a warning, and a program
without main() must each be refused, and the extractor must see both kinds of block.
"""
import glob
import os
import re
import subprocess
import tempfile
import unittest

from lib import BUILD, ROOT

CC = os.environ.get("CC") or "cc"
CFLAGS = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
          "-I", os.path.join(ROOT, "libzserver"), "-I", os.path.join(ROOT, "libzserver", "core")]
ARCHIVE = os.path.join(BUILD, "libzserver.a")
LIBS = ["-Wl,--whole-archive", ARCHIVE, "-Wl,--no-whole-archive",
        "-linih", "-lev", "-ldl", "-lm", "-lpthread"]
FENCE = re.compile(r"^```[ \t]*([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)


def snippets(text):
    """[(line, kind, code)] of the C blocks of a markdown text; kind is "program" or "fragment"."""
    out = []
    for m in FENCE.finditer(text):
        words = m.group(1).split()
        if not words or words[0] != "c":
            continue
        kind = "fragment" if words[1:] == ["fragment"] else "program"
        if words[1:] not in ([], ["fragment"]):
            raise ValueError("unknown C block kind %r" % m.group(1))
        out.append((text.count("\n", 0, m.start()) + 1, kind, m.group(2)))
    return out


def sanitizer_flags():
    """A sanitizer build's archive (ZS_BUILD=build-san) needs the same runtime at link time."""
    with open(ARCHIVE, "rb") as f:
        return ["-fsanitize=address,undefined"] if b"__asan_" in f.read() else []


def build(code, kind):
    """Compiles (and, for a program, links) code: (ok, compiler output)."""
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "snippet.c")
        with open(src, "w") as f:
            f.write(code)
        san = sanitizer_flags()
        if kind == "fragment":
            cmd = [CC] + CFLAGS + san + ["-c", src, "-o", os.path.join(d, "snippet.o")]
        else:
            cmd = [CC] + CFLAGS + san + [src, "-o", os.path.join(d, "snippet")] + LIBS
        r = subprocess.run(cmd, capture_output=True, text=True)
        return r.returncode == 0, r.stdout + r.stderr


def documents():
    return [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "doc", "*.md")))


class Readme(unittest.TestCase):

    def test_snippets_compile(self):
        seen = 0
        for path in documents():
            with open(path) as f:
                text = f.read()
            for line, kind, code in snippets(text):
                seen += 1
                with self.subTest(file=os.path.relpath(path, ROOT), line=line):
                    ok, out = build(code, kind)
                    self.assertTrue(ok, "%s:%d: the %s does not build:\n%s"
                                    % (os.path.relpath(path, ROOT), line, kind, out))
        # README shows an aio and a coroutine server: an extractor that finds nothing must fail.
        self.assertGreaterEqual(seen, 2, "no C snippets found")

    def test_extractor_sees_both_kinds(self):
        text = ("intro\n```sh\nmake\n```\n```c\nint main(void) { return 0; }\n```\n"
                "text\n```c fragment\nint f(void);\n```\n```ini\na = b\n```\n")
        got = snippets(text)
        self.assertEqual([(k, c) for _, k, c in got],
                         [("program", "int main(void) { return 0; }\n"), ("fragment", "int f(void);\n")])
        self.assertEqual([line for line, _, _ in got], [5, 9])
        with self.assertRaises(ValueError):
            snippets("```c maybe\nint x;\n```\n")

    def test_checker_refuses_broken_snippets(self):
        good = "#include <zserver.h>\nint main(int argc, char **argv) { return zaio_server_main(argc, argv); }\n"
        ok, out = build(good, "program")
        self.assertTrue(ok, out)
        broken = {
            "undeclared call": ("#include <zserver.h>\nint main(void) { return zaio_no_such_call(); }\n", "program"),
            "unused parameter (-Werror)": ("static int f(int unused) { return 0; }\nint g(void) { return f(1); }\n",
                                           "fragment"),
            "no main (not linked)": ("#include <zserver.h>\nint not_main(void) { return 0; }\n", "program"),
        }
        for what, (code, kind) in broken.items():
            with self.subTest(what):
                ok, out = build(code, kind)
                self.assertFalse(ok, "%s was accepted" % what)
                self.assertTrue(out.strip(), "a refusal says why")
        # The fragment rule compiles without linking: no main needed.
        ok, out = build("#include <zserver.h>\nint not_main(void) { return 0; }\n", "fragment")
        self.assertTrue(ok, out)


if __name__ == "__main__":
    unittest.main()
