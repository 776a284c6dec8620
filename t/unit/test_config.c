/*
 * test_config.c — the .cf / .gcf reader and the key/value store (zs_config.h, doc/CONTRACT.md §2).
 *
 * Every test writes real files into a fresh mkdtemp directory under /tmp and reads them back
 * with zs_config_load_file, asserting the values, the file:line they came from, and the exact
 * text of every error line.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/zs_config.h"
#include "core/zs_err.h"
#include "check_run.h"

static char tmp[64];

static void setup(void)
{
    strcpy(tmp, "/tmp/zs-test-config-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static void teardown(void)
{
    nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes len bytes to tmp/name; returns the path (malloc'd). */
static char *write_bytes(const char *name, const char *text, size_t len)
{
    char *path = zs_xasprintf("%s/%s", tmp, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static char *write_file(const char *name, const char *text)
{
    return write_bytes(name, text, strlen(text));
}

/* "key = vvv...v" of exactly len characters. */
static char *line_of(const char *key, size_t len)
{
    char *s = zs_xmalloc(len + 1);
    int n = snprintf(s, len + 1, "%s = ", key);
    ck_assert_int_lt(n, (int)len);
    memset(s + n, 'v', len - (size_t)n);
    s[len] = '\0';
    ck_assert_uint_eq(strlen(s), len);
    return s;
}

#define ASSERT_ERR(e, i, ...)                                    \
    do {                                                         \
        char *x_ = zs_xasprintf(__VA_ARGS__);                    \
        ck_assert_msg((e)->n > (size_t)(i), "no error #%d (want '%s')", (int)(i), x_); \
        ck_assert_str_eq((e)->msg[i], x_);                       \
        free(x_);                                                \
    } while (0)

#define ASSERT_KV(c, k, v, ln)                                   \
    do {                                                         \
        const zs_kv *kv_ = zs_config_find((c), (k));             \
        ck_assert_msg(kv_ != NULL, "key '%s' not set", (k));     \
        ck_assert_str_eq(kv_->value, (v));                       \
        ck_assert_int_eq(kv_->line, (ln));                       \
    } while (0)

/* ---- good input ---- */

START_TEST(test_plain_keys_comments_blanks)
{
    char *p = write_file("a.cf",
                         "# a comment\n"
                         "; another comment\n"
                         "\n"
                         "   \n"
                         "server-command = /bin/true -x  y\n"
                         "abc = xxx\n"
                         "host=linuxmail.cn\n"
                         "  spaced   =   value with  inner  blanks   \n"
                         "\tindented = tab\n"
                         "empty =\n"
                         "eq = a=b=c\n"
                         "semi = x;y\n"
                         "lead =;x\n"
                         "hash = x # kept: '#' only starts whole-line comments\n"
                         "   # an indented comment\n"
                         "last = no newline at end");
    zs_config c;
    zs_errs e = { 0 };
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_file(&c, p, &e), 0);
    ck_assert_uint_eq(e.n, 0);
    ASSERT_KV(&c, "server-command", "/bin/true -x  y", 5);
    ASSERT_KV(&c, "abc", "xxx", 6);
    ASSERT_KV(&c, "host", "linuxmail.cn", 7);
    ASSERT_KV(&c, "spaced", "value with  inner  blanks", 8);
    ASSERT_KV(&c, "indented", "tab", 9);
    ASSERT_KV(&c, "empty", "", 10);
    ASSERT_KV(&c, "eq", "a=b=c", 11);
    ASSERT_KV(&c, "semi", "x;y", 12);
    ASSERT_KV(&c, "lead", ";x", 13);
    ASSERT_KV(&c, "hash", "x # kept: '#' only starts whole-line comments", 14);
    ASSERT_KV(&c, "last", "no newline at end", 16);
    ck_assert_uint_eq(c.n, 11);
    ck_assert_str_eq(zs_config_find(&c, "abc")->file, p);
    ck_assert_ptr_null(zs_config_find(&c, "a comment"));
    zs_config_free(&c);
    free(p);
}
END_TEST

START_TEST(test_crlf)
{
    char *p = write_file("crlf.cf", "# comment\r\n\r\nabc = xxx\r\nserver-service = 0:25\r\nlast = y\r\n");
    zs_config c;
    zs_errs e = { 0 };
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_file(&c, p, &e), 0);
    ck_assert_uint_eq(e.n, 0);
    ASSERT_KV(&c, "abc", "xxx", 3);
    ASSERT_KV(&c, "server-service", "0:25", 4);
    ASSERT_KV(&c, "last", "y", 5);
    zs_config_free(&c);
    free(p);
}
END_TEST

START_TEST(test_bom)
{
    char *p = write_file("bom.cf", "\xEF\xBB\xBF# comment after a byte-order mark\nkey = v\n");
    zs_config c;
    zs_errs e = { 0 };
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_file(&c, p, &e), 0);
    ck_assert_uint_eq(e.n, 0);
    ASSERT_KV(&c, "key", "v", 2);
    zs_config_free(&c);
    free(p);

    p = write_file("bom2.cf", "\xEF\xBB\xBFkey = w\n");
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_file(&c, p, &e), 0);
    ck_assert_uint_eq(e.n, 0);
    ASSERT_KV(&c, "key", "w", 1);
    zs_config_free(&c);
    free(p);
}
END_TEST

START_TEST(test_empty_file)
{
    char *p = write_file("empty.cf", "");
    zs_config c;
    zs_errs e = { 0 };
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_file(&c, p, &e), 0);
    ck_assert_uint_eq(e.n, 0);
    ck_assert_uint_eq(c.n, 0);
    zs_config_free(&c);
    free(p);
}
END_TEST

START_TEST(test_service_accumulates_in_order)
{
    char *p = write_file("svc.cf",
                         "server-service = 0:25, 0:465\n"
                         "abc = 1\n"
                         "# a comment between\n"
                         "server-service = [::1]:25\n"
                         "abc = 2\n"
                         "server-service = /tmp/x.sock\n");
    zs_config c;
    zs_errs e = { 0 };
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_file(&c, p, &e), 0);
    ck_assert_uint_eq(e.n, 0);
    const char *want[] = { "0:25, 0:465", "[::1]:25", "/tmp/x.sock" };
    int lines[] = { 1, 4, 6 }, i = 0;
    for (const zs_kv *kv = zs_config_find(&c, "server-service"); kv; kv = zs_config_next(&c, "server-service", kv), i++) {
        ck_assert_int_lt(i, 3);
        ck_assert_str_eq(kv->value, want[i]);
        ck_assert_int_eq(kv->line, lines[i]);
        ck_assert_str_eq(kv->file, p);
    }
    ck_assert_int_eq(i, 3);
    /* Any other key: the later setting replaces the earlier one. */
    ASSERT_KV(&c, "abc", "2", 5);
    ck_assert_ptr_null(zs_config_next(&c, "abc", zs_config_find(&c, "abc")));
    zs_config_free(&c);
    free(p);
}
END_TEST

/* Leading blanks never make inih glue a line onto the previous value (its multi-line mode). */
START_TEST(test_indented_not_glued)
{
    char *p = write_file("ind.cf", "a = 1\n    b = 2\n\tc = 3\n");
    zs_config c;
    zs_errs e = { 0 };
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_file(&c, p, &e), 0);
    ck_assert_uint_eq(e.n, 0);
    ASSERT_KV(&c, "a", "1", 1);
    ASSERT_KV(&c, "b", "2", 2);
    ASSERT_KV(&c, "c", "3", 3);
    zs_config_free(&c);
    free(p);

    /* What inih would take as a continuation is a line without '=' to us. */
    p = write_file("cont.cf", "server-service = 0:25\n    0:26\nafter = x\n");
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_file(&c, p, &e), -1);
    ck_assert_uint_eq(e.n, 1);
    ASSERT_ERR(&e, 0, "%s:2: expected 'key = value'", p);
    ASSERT_KV(&c, "server-service", "0:25", 1);
    ck_assert_ptr_null(zs_config_next(&c, "server-service", zs_config_find(&c, "server-service")));
    ASSERT_KV(&c, "after", "x", 3);
    zs_config_free(&c);
    zs_errs_free(&e);
    free(p);
}
END_TEST

/* ---- the 199-character line limit (Debian's inih has a 200-byte buffer) ---- */

START_TEST(test_line_199_accepted)
{
    char *l = line_of("k", ZS_CONFIG_MAX_LINE);
    char *text = zs_xasprintf("a = 1\n%s\nb = 2\n", l);
    char *p = write_file("199.cf", text);
    zs_config c;
    zs_errs e = { 0 };
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_file(&c, p, &e), 0);
    ck_assert_uint_eq(e.n, 0);
    ASSERT_KV(&c, "k", l + 4, 2);
    ck_assert_uint_eq(strlen(zs_config_get(&c, "k", "")), 195);
    ASSERT_KV(&c, "b", "2", 3);
    ck_assert_uint_eq(c.n, 3);
    zs_config_free(&c);
    free(p);
    free(text);

    /* A CR before the LF does not count. */
    text = zs_xasprintf("%s\r\nb = 2\r\n", l);
    p = write_file("199crlf.cf", text);
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_file(&c, p, &e), 0);
    ck_assert_uint_eq(e.n, 0);
    ASSERT_KV(&c, "k", l + 4, 1);
    zs_config_free(&c);
    free(p);
    free(text);
    free(l);
}
END_TEST

START_TEST(test_line_200_refused)
{
    char *l = line_of("k", ZS_CONFIG_MAX_LINE + 1);
    char *text = zs_xasprintf("a = 1\n%s\nb = 2\n", l);
    char *p = write_file("200.cf", text);
    zs_config c;
    zs_errs e = { 0 };
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_file(&c, p, &e), -1);
    ck_assert_uint_eq(e.n, 1);
    ASSERT_ERR(&e, 0, "%s:2: line too long (200 characters, at most 199; split a long server-service list over "
               "several server-service lines)", p);
    /* Nothing from that line: neither the key nor a piece of the value as a garbage key. */
    ck_assert_ptr_null(zs_config_find(&c, "k"));
    ck_assert_uint_eq(c.n, 2);
    ASSERT_KV(&c, "a", "1", 1);
    ASSERT_KV(&c, "b", "2", 3);
    zs_config_free(&c);
    zs_errs_free(&e);
    free(p);
    free(text);
    free(l);
}
END_TEST

START_TEST(test_long_lines_other_shapes)
{
    /* With CRLF; a 600-character line (inih would split it into three); a long comment; the
     * last line without a newline. */
    char *l200 = line_of("server-service", 200), *l600 = line_of("k", 600);
    char *com = zs_xmalloc(202);
    memset(com, '#', 201);
    com[201] = '\0';
    char *text = zs_xasprintf("%s\r\n%s\n%s\nok = 1\n%s", l200, l600, com, l200);
    char *p = write_file("long.cf", text);
    zs_config c;
    zs_errs e = { 0 };
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_file(&c, p, &e), -1);
    ck_assert_uint_eq(e.n, 4);
    const char *tail = "at most 199; split a long server-service list over several server-service lines)";
    ASSERT_ERR(&e, 0, "%s:1: line too long (200 characters, %s", p, tail);
    ASSERT_ERR(&e, 1, "%s:2: line too long (600 characters, %s", p, tail);
    ASSERT_ERR(&e, 2, "%s:3: line too long (201 characters, %s", p, tail);
    ASSERT_ERR(&e, 3, "%s:5: line too long (200 characters, %s", p, tail);
    ck_assert_uint_eq(c.n, 1);
    ASSERT_KV(&c, "ok", "1", 4);
    zs_config_free(&c);
    zs_errs_free(&e);
    free(p);
    free(text);
    free(l200);
    free(l600);
    free(com);
}
END_TEST

/* ---- malformed lines: one table, one check each ---- */

#define SEMI "a ';' after a blank would start an inline comment and drop the rest of the value " \
             "(write comments on their own line; separate server-service entries with ',')"
static const struct bad_line {
    const char *text;
    const char *why;   /* expected after "path:LINE: " */
} bad_lines[] = {
    { "just some words", "expected 'key = value'" },
    { "server-command /bin/true", "expected 'key = value'" },
    { "[main]", "sections ([...]) are not used in .cf files" },
    { "  [main]", "sections ([...]) are not used in .cf files" },
    { "[server]\nserver-command = x", "sections ([...]) are not used in .cf files" },
    { "= value", "missing key before '='" },
    { "=", "missing key before '='" },
    { "a b = c", "a key cannot contain blanks" },
    { "server-proc count = 2", "a key cannot contain blanks" },
    { "host:port = 1", "a key cannot contain ':'" },
    { "server-service: 0:25", "expected 'key = value'" },
    { "a:b", "expected 'key = value'" },
    { "server-service = 0:25 ; 0:26", SEMI },
    { "server-service = 0:25\t;0:26", SEMI },
    { "host = linuxmail.cn ; a comment", SEMI },
    { "lead = ;x", SEMI },
    { "server-command = sh -c 'x ;y'", SEMI },
};

START_TEST(test_bad_line)
{
    const struct bad_line *b = &bad_lines[_i];
    char *text = zs_xasprintf("good = 1\n%s\nafter = 2\n", b->text);
    char *p = write_file("bad.cf", text);
    zs_config c;
    zs_errs e = { 0 };
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_file(&c, p, &e), -1);
    ck_assert_uint_eq(e.n, 1);
    ASSERT_ERR(&e, 0, "%s:2: %s", p, b->why);
    /* The bad line sets nothing; the lines around it are read. */
    ASSERT_KV(&c, "good", "1", 1);
    ck_assert_str_eq(zs_config_get(&c, "after", ""), "2");
    for (size_t i = 0; i < c.n; i++)
        ck_assert_msg(!strcmp(c.kv[i].key, "good") || !strcmp(c.kv[i].key, "after") ||
                      !strcmp(c.kv[i].key, "server-command"), "unexpected key '%s'", c.kv[i].key);
    zs_config_free(&c);
    zs_errs_free(&e);
    free(p);
    free(text);
}
END_TEST

START_TEST(test_nul_byte)
{
    char *p = write_bytes("nul.cf", "a = b\0c\nd = e\n", 14);
    zs_config c;
    zs_errs e = { 0 };
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_file(&c, p, &e), -1);
    ck_assert_uint_eq(e.n, 1);
    ASSERT_ERR(&e, 0, "%s:1: NUL byte in line", p);
    ck_assert_ptr_null(zs_config_find(&c, "a"));
    ASSERT_KV(&c, "d", "e", 2);
    zs_config_free(&c);
    zs_errs_free(&e);
    free(p);
}
END_TEST

START_TEST(test_every_error_reported)
{
    char *l = line_of("long", 250);
    char *text = zs_xasprintf("a = 1\n"           /* 1 */
                              "[sec]\n"           /* 2 */
                              "\n"                /* 3 */
                              "junk\n"            /* 4 */
                              "%s\n"              /* 5 */
                              "= x\n"             /* 6 */
                              "b = 2\n"           /* 7 */
                              "k:k = 3\n",        /* 8 */
                              l);
    char *p = write_file("many.cf", text);
    zs_config c;
    zs_errs e = { 0 };
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_file(&c, p, &e), -1);
    ck_assert_uint_eq(e.n, 5);
    ASSERT_ERR(&e, 0, "%s:2: sections ([...]) are not used in .cf files", p);
    ASSERT_ERR(&e, 1, "%s:4: expected 'key = value'", p);
    ASSERT_ERR(&e, 2, "%s:5: line too long (250 characters, at most 199; split a long server-service list "
               "over several server-service lines)", p);
    ASSERT_ERR(&e, 3, "%s:6: missing key before '='", p);
    ASSERT_ERR(&e, 4, "%s:8: a key cannot contain ':'", p);
    ck_assert_uint_eq(c.n, 2);
    ASSERT_KV(&c, "a", "1", 1);
    ASSERT_KV(&c, "b", "2", 7);
    zs_config_free(&c);
    zs_errs_free(&e);
    free(p);
    free(text);
    free(l);
}
END_TEST

/* Not read at all: -2 (a file with refused lines is -1, its other lines read). */
START_TEST(test_unreadable)
{
    char *p = zs_xasprintf("%s/missing.cf", tmp);
    zs_config c;
    zs_errs e = { 0 };
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_file(&c, p, &e), -2);
    ASSERT_ERR(&e, 0, "%s: No such file or directory", p);
    /* A directory where a file should be. */
    char *d = zs_xasprintf("%s/dir.cf", tmp);
    ck_assert_int_eq(mkdir(d, 0755), 0);
    ck_assert_int_eq(zs_config_load_file(&c, d, &e), -2);
    ck_assert_uint_eq(e.n, 2);
    ASSERT_ERR(&e, 1, "%s: a directory, not a regular file", d);
    /* A FIFO is refused without waiting for a writer; a dangling symlink says so. */
    char *f = zs_xasprintf("%s/fifo.cf", tmp), *l = zs_xasprintf("%s/link.cf", tmp);
    ck_assert_int_eq(mkfifo(f, 0644), 0);
    ck_assert_int_eq(zs_config_load_file(&c, f, &e), -2);
    ASSERT_ERR(&e, 2, "%s: a FIFO, not a regular file", f);
    ck_assert_int_eq(symlink(p, l), 0);
    ck_assert_int_eq(zs_config_load_file(&c, l, &e), -2);
    ASSERT_ERR(&e, 3, "%s: dangling symbolic link (its target does not exist)", l);
    ck_assert_int_eq(zs_config_load_file(&c, "/dev/null", &e), -2);
    ASSERT_ERR(&e, 4, "/dev/null: a character device, not a regular file");
    free(f);
    free(l);
    ck_assert_uint_eq(c.n, 0);
    zs_config_free(&c);
    zs_errs_free(&e);
    free(p);
    free(d);
}
END_TEST

/* ---- the store ---- */

START_TEST(test_store)
{
    zs_config c, d;
    zs_config_init(&c);
    zs_config_init(&d);
    ck_assert_ptr_null(zs_config_find(&c, "x"));
    ck_assert_str_eq(zs_config_get(&c, "x", "dflt"), "dflt");
    ck_assert_ptr_null(zs_config_get(&c, "x", NULL));
    for (int i = 0; i < 40; i++) {   /* past the first growth of the array */
        char k[16], v[16];
        snprintf(k, sizeof(k), "k%d", i);
        snprintf(v, sizeof(v), "v%d", i);
        zs_config_set(&c, k, v, "f", i + 1);
    }
    zs_config_set(&c, "k7", "again", "g", 99);
    ck_assert_uint_eq(c.n, 40);
    ASSERT_KV(&c, "k7", "again", 99);
    ck_assert_str_eq(zs_config_find(&c, "k7")->file, "g");
    ck_assert_str_eq(zs_config_get(&c, "k39", NULL), "v39");
    zs_config_set(&c, "server-service", "0:1", NULL, 0);
    zs_config_set(&c, "server-service", "0:2", "argv", 0);
    ck_assert_str_eq(zs_config_find(&c, "server-service")->file, "");
    ck_assert_str_eq(zs_config_next(&c, "server-service", zs_config_find(&c, "server-service"))->value, "0:2");

    zs_config_set(&d, "k7", "from d", "d", 1);
    zs_config_set(&d, "server-service", "0:3", "d", 2);
    zs_config_set(&d, "new", "n", "d", 3);
    zs_config_merge(&c, &d);
    ck_assert_str_eq(zs_config_get(&c, "k7", NULL), "from d");
    ck_assert_str_eq(zs_config_get(&c, "new", NULL), "n");
    int n = 0;
    const char *want[] = { "0:1", "0:2", "0:3" };
    for (const zs_kv *kv = zs_config_find(&c, "server-service"); kv; kv = zs_config_next(&c, "server-service", kv))
        ck_assert_str_eq(kv->value, want[n++]);
    ck_assert_int_eq(n, 3);

    zs_config_unset(&c, "server-service");
    ck_assert_ptr_null(zs_config_find(&c, "server-service"));
    zs_config_unset(&c, "k0");
    zs_config_unset(&c, "not there");
    ck_assert_ptr_null(zs_config_find(&c, "k0"));
    ck_assert_str_eq(zs_config_get(&c, "k1", NULL), "v1");
    ck_assert_str_eq(zs_config_get(&c, "new", NULL), "n");
    ck_assert_uint_eq(c.n, 40);
    zs_config_free(&c);
    ck_assert_uint_eq(c.n, 0);
    zs_config_free(&d);
}
END_TEST

/* The index at scale: 100,000 keys, settings of an accumulating key spread between them, keys
 * removed and set again; every lookup and every chain must still say what a scan would. */
START_TEST(test_store_index_at_scale)
{
    enum { N = 100000 };
    zs_config c;
    zs_config_init(&c);
    char k[32], v[32];
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof(k), "key-%d", i);
        snprintf(v, sizeof(v), "v%d", i);
        zs_config_set(&c, k, v, "f", i + 1);
        if (i % 1000 == 0) {
            snprintf(v, sizeof(v), "127.0.0.1:%d", i);
            zs_config_set(&c, "server-service", v, "f", i + 1);
        }
    }
    for (int i = 0; i < N; i += 7) {
        snprintf(k, sizeof(k), "key-%d", i);
        snprintf(v, sizeof(v), "v%d", i);
        ck_assert_str_eq(zs_config_get(&c, k, NULL), v);
    }
    ck_assert_ptr_null(zs_config_find(&c, "key-100000"));
    int n = 0;
    for (const zs_kv *kv = zs_config_find(&c, "server-service"); kv; kv = zs_config_next(&c, "server-service", kv)) {
        snprintf(v, sizeof(v), "127.0.0.1:%d", n * 1000);
        ck_assert_str_eq(kv->value, v);
        n++;
    }
    ck_assert_int_eq(n, N / 1000);
    /* A key removed from the middle, the others shifted down: the index follows them. */
    zs_config_unset(&c, "key-5");
    ck_assert_ptr_null(zs_config_find(&c, "key-5"));
    ck_assert_str_eq(zs_config_get(&c, "key-6", NULL), "v6");
    ck_assert_str_eq(zs_config_get(&c, "key-99999", NULL), "v99999");
    zs_config_set(&c, "key-5", "back", "g", 1);
    ck_assert_str_eq(zs_config_get(&c, "key-5", NULL), "back");
    ck_assert_str_eq(c.kv[c.n - 1].key, "key-5");
    zs_config_set(&c, "server-service", "last", "g", 2);
    const zs_kv *kv = zs_config_find(&c, "server-service");
    for (int i = 1; i < N / 1000; i++)
        kv = zs_config_next(&c, "server-service", kv);
    ck_assert_str_eq(zs_config_next(&c, "server-service", kv)->value, "last");
    ck_assert_ptr_null(zs_config_next(&c, "server-service", zs_config_next(&c, "server-service", kv)));
    /* A whole config moved by assignment keeps working (masterd swaps them on reload). */
    zs_config moved = c;
    zs_config_init(&c);
    ck_assert_str_eq(zs_config_get(&moved, "key-42", NULL), "v42");
    ck_assert_ptr_null(zs_config_find(&c, "key-42"));
    zs_config_free(&moved);
}
END_TEST

START_TEST(test_list_dir)
{
    free(write_file("b.cf", "x = 1\n"));
    free(write_file("a.cf", "x = 1\n"));
    free(write_file("c.gcf", "x = 1\n"));
    free(write_file(".hidden.cf", "x = 1\n"));
    free(write_file("x.cf.bak", "x = 1\n"));
    free(write_file(".cf", "x = 1\n"));
    char *sub = zs_xasprintf("%s/sub.cf", tmp);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    char **names;
    zs_errs e = { 0 };
    int n = zs_config_list_dir(tmp, ".cf", &names, &e);
    /* sub.cf is listed: loading it is the error (a skipped entry would drop a service). */
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(names[0], "a.cf");
    ck_assert_str_eq(names[1], "b.cf");
    ck_assert_str_eq(names[2], "sub.cf");
    zs_config_free_list(names, n);
    n = zs_config_list_dir(tmp, ".gcf", &names, &e);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(names[0], "c.gcf");
    zs_config_free_list(names, n);
    ck_assert_uint_eq(e.n, 0);

    char *none = zs_xasprintf("%s/none", tmp);
    ck_assert_int_eq(zs_config_list_dir(none, ".cf", &names, &e), -1);
    ck_assert_uint_eq(e.n, 1);
    ASSERT_ERR(&e, 0, "%s: No such file or directory", none);
    zs_errs_free(&e);
    free(none);
    free(sub);
}
END_TEST

START_TEST(test_gcf_dir)
{
    free(write_file("b.gcf", "x = from b\ny = b\n"));
    char *a = write_file("a.gcf", "x = from a\nz = a\n");
    char *bad = write_file("c.gcf", "oops\n");
    free(write_file("svc.cf", "x = from cf\n"));
    zs_config c;
    zs_errs e = { 0 };
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_gcf_dir(&c, tmp, &e), -1);
    ck_assert_uint_eq(e.n, 1);
    ASSERT_ERR(&e, 0, "%s:1: expected 'key = value'", bad);
    ck_assert_str_eq(zs_config_get(&c, "x", NULL), "from b");   /* sorted: a, b, c; later wins */
    ck_assert_str_eq(zs_config_get(&c, "y", NULL), "b");
    ck_assert_str_eq(zs_config_get(&c, "z", NULL), "a");
    ck_assert_str_eq(zs_config_find(&c, "z")->file, a);
    zs_config_free(&c);
    zs_errs_free(&e);

    ck_assert_int_eq(unlink(bad), 0);
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_gcf_dir(&c, tmp, &e), 0);
    ck_assert_uint_eq(e.n, 0);
    ck_assert_uint_eq(c.n, 3);
    zs_config_free(&c);
    free(a);
    free(bad);
}
END_TEST

/* ---- strict numbers ---- */

static const struct num_case {
    const char *s;
    long min, max;
    int ok;
    long v;
    const char *why;
} nums[] = {
    { "1", 1, 4096, 1, 1, NULL },
    { "4096", 1, 4096, 1, 4096, NULL },
    { "0", 0, 86400, 1, 0, NULL },
    { "-5", -10, 10, 1, -5, NULL },
    { "007", 0, 10, 1, 7, NULL },
    { "0", 1, 4096, 0, 0, "out of range 1..4096" },
    { "4097", 1, 4096, 0, 0, "out of range 1..4096" },
    { "-1", 0, 86400, 0, 0, "out of range 0..86400" },
    { "99999999999999999999999", 1, 4096, 0, 0, "out of range 1..4096" },
    { "-99999999999999999999999", 1, 4096, 0, 0, "out of range 1..4096" },
    { "12abc", 1, 4096, 0, 0, "not a whole number" },
    { "1e3", 1, 4096, 0, 0, "not a whole number" },
    { " 5", 1, 4096, 0, 0, "not a whole number" },
    { "5 ", 1, 4096, 0, 0, "not a whole number" },
    { "0x10", 1, 4096, 0, 0, "not a whole number" },
    { "1.5", 1, 4096, 0, 0, "not a whole number" },
    { "1,000", 1, 4096, 0, 0, "not a whole number" },
    { "", 1, 4096, 0, 0, "not a whole number" },
    { "-", 1, 4096, 0, 0, "not a whole number" },
    { "+", 1, 4096, 0, 0, "not a whole number" },
    { "--5", -10, 10, 0, 0, "not a whole number" },
    { "five", 1, 4096, 0, 0, "not a whole number" },
    { "\xd9\xa1", 1, 4096, 0, 0, "not a whole number" },  /* ARABIC-INDIC DIGIT ONE */
};

START_TEST(test_parse_long)
{
    const struct num_case *t = &nums[_i];
    long v = 12345;
    char why[64] = "";
    int rc = zs_parse_long(t->s, t->min, t->max, &v, why, sizeof(why));
    if (t->ok) {
        ck_assert_msg(rc == 0, "'%s' refused: %s", t->s, why);
        ck_assert_int_eq(v, t->v);
    } else {
        ck_assert_msg(rc == -1, "'%s' accepted as %ld", t->s, v);
        ck_assert_int_eq(v, 12345);
        ck_assert_str_eq(why, t->why);
    }
}
END_TEST

START_TEST(test_parse_bool)
{
    /* ours and lib-zc's words (its zstr_to_bool takes y and n too) */
    const char *yes[] = { "yes", "YES", "true", "On", "1", "y", "Y" }, *no[] = { "no", "False", "off", "0", "n" };
    const char *neither[] = { "", "2", "yes ", "enable", "ye" };
    for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++)
        ck_assert_int_eq(zs_parse_bool(yes[i]), 1);
    for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++)
        ck_assert_int_eq(zs_parse_bool(no[i]), 0);
    for (size_t i = 0; i < sizeof(neither) / sizeof(*neither); i++)
        ck_assert_int_eq(zs_parse_bool(neither[i]), -1);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("reader");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_plain_keys_comments_blanks);
    tcase_add_test(tc, test_crlf);
    tcase_add_test(tc, test_bom);
    tcase_add_test(tc, test_empty_file);
    tcase_add_test(tc, test_service_accumulates_in_order);
    tcase_add_test(tc, test_indented_not_glued);
    tcase_add_test(tc, test_line_199_accepted);
    tcase_add_test(tc, test_line_200_refused);
    tcase_add_test(tc, test_long_lines_other_shapes);
    tcase_add_loop_test(tc, test_bad_line, 0, (int)(sizeof(bad_lines) / sizeof(*bad_lines)));
    tcase_add_test(tc, test_nul_byte);
    tcase_add_test(tc, test_every_error_reported);
    tcase_add_test(tc, test_unreadable);
    tcase_add_test(tc, test_list_dir);
    tcase_add_test(tc, test_gcf_dir);
    suite_add_tcase(s, tc);

    tc = tcase_create("store");
    tcase_add_test(tc, test_store);
    tcase_add_test(tc, test_store_index_at_scale);
    tcase_add_loop_test(tc, test_parse_long, 0, (int)(sizeof(nums) / sizeof(*nums)));
    tcase_add_test(tc, test_parse_bool);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(suite());
}
