/*
 * test_service.c — validation of the server-* keys (zs_service.h, doc/CONTRACT.md §2).
 *
 * Each test writes a real .cf file into a mkdtemp directory, reads it with the real reader
 * and validates it, asserting the parsed fields or the exact `file:line: key: what` lines.
 */
#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/zs_service.h"
#include "check_run.h"

static char tmp[64];
static char cf[128];   /* tmp/svc.cf */

static void setup(void)
{
    strcpy(tmp, "/tmp/zs-test-service-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    snprintf(cf, sizeof(cf), "%s/svc.cf", tmp);
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

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    ck_assert_int_eq(fchmod(fd, mode), 0);
    close(fd);
}

/* Writes text as tmp/svc.cf (which must read cleanly) and validates it as service "svc". */
static int validate(const char *text, int need_command, zs_service *s, zs_errs *e)
{
    zs_config c;
    zs_errs le = { 0 };
    write_file(cf, text, 0644);
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_file(&c, cf, &le), 0);
    ck_assert_uint_eq(le.n, 0);
    int rc = zs_service_from_config(s, "svc", cf, &c, need_command, e);
    zs_config_free(&c);
    return rc;
}

/* Same, for a file that must be valid. */
static void validate_ok(const char *text, zs_service *s)
{
    zs_errs e = { 0 };
    int rc = validate(text, 1, s, &e);
    ck_assert_msg(rc == 0, "refused: %s", e.n ? e.msg[0] : "(no message)");
    ck_assert_uint_eq(e.n, 0);
}

/* The file must be refused with exactly one error, "svc.cf:LINE: " + tail. */
static void validate_one_error(const char *text, int line, const char *tail)
{
    zs_service s;
    zs_errs e = { 0 };
    ck_assert_int_eq(validate(text, 1, &s, &e), -1);
    char *want = line ? zs_xasprintf("%s:%d: %s", cf, line, tail) : zs_xasprintf("%s: %s", cf, tail);
    ck_assert_msg(e.n == 1, "%zu errors, first '%s' (want '%s')", e.n, e.n ? e.msg[0] : "", want);
    ck_assert_str_eq(e.msg[0], want);
    ck_assert_ptr_null(s.id);   /* freed */
    free(want);
    zs_errs_free(&e);
}

#define ASSERT_ERR(e, i, ...)                                    \
    do {                                                         \
        char *x_ = zs_xasprintf(__VA_ARGS__);                    \
        ck_assert_msg((e)->n > (size_t)(i), "no error #%d (want '%s')", (int)(i), x_); \
        ck_assert_str_eq((e)->msg[i], x_);                       \
        free(x_);                                                \
    } while (0)

/* ---- good files ---- */

START_TEST(test_defaults)
{
    zs_service s;
    validate_ok("server-command = /bin/true\n", &s);
    ck_assert_str_eq(s.id, "svc");
    ck_assert_str_eq(s.cf_path, cf);
    ck_assert_int_eq(s.argc, 1);
    ck_assert_str_eq(s.argv[0], "/bin/true");
    ck_assert_ptr_null(s.argv[1]);
    ck_assert_str_eq(s.exec_path, "/bin/true");
    ck_assert_int_eq(s.nlisten, 0);
    ck_assert_int_eq(s.proc_count, 1);
    ck_assert_ptr_null(s.log);
    ck_assert_int_eq(s.softstop_after, 0);
    ck_assert_int_eq(s.restart, ZS_RESTART_ALWAYS);
    ck_assert_ptr_null(s.user);
    ck_assert_uint_eq(s.unix_mode, 0666);
    ck_assert_int_eq(s.backlog, 511);
    ck_assert_int_eq(s.max_nofile, -1);
    ck_assert_int_eq(s.core_size, -1);
    ck_assert_int_eq(s.ready_timeout, 30);
    zs_service_free(&s);
    ck_assert_ptr_null(s.id);
}
END_TEST

START_TEST(test_every_key)
{
    char *text = zs_xasprintf("server-command = /bin/echo  a b\tc\n"
                              "server-service = 0:25, smtps://127.0.0.1:465\n"
                              "server-proc-count = 4096\n"
                              "server-log = syslog,mail\n"
                              "server-stop-on-softstop-after = 86400\n"
                              "server-restart = on-failure\n"
                              "server-user = root\n"
                              "server-unix-mode = 0660\n"
                              "server-listen-backlog = 65535\n"
                              "server-max-nofile = 65536\n"
                              "server-core-size = unlimited\n"
                              "server-ready-timeout = 5\n"
                              "server-service = %s/s.sock\n",
                              tmp);
    zs_service s;
    validate_ok(text, &s);
    ck_assert_int_eq(s.argc, 4);
    const char *words[] = { "/bin/echo", "a", "b", "c", NULL };
    for (int i = 0; i <= 4; i++)
        if (words[i])
            ck_assert_str_eq(s.argv[i], words[i]);
        else
            ck_assert_ptr_null(s.argv[i]);
    ck_assert_str_eq(s.exec_path, "/bin/echo");
    ck_assert_int_eq(s.nlisten, 3);
    ck_assert_int_eq(s.proc_count, 4096);
    ck_assert_str_eq(s.log, "syslog,mail");
    ck_assert_int_eq(s.softstop_after, 86400);
    ck_assert_int_eq(s.restart, ZS_RESTART_ON_FAILURE);
    ck_assert_str_eq(s.user, "root");
    ck_assert_int_eq(s.uid, 0);
    ck_assert_int_eq(s.gid, 0);
    ck_assert_uint_eq(s.unix_mode, 0660);
    ck_assert_int_eq(s.backlog, 65535);
    ck_assert_int_eq(s.max_nofile, 65536);
    ck_assert_int_eq(s.core_size, -2);
    ck_assert_int_eq(s.ready_timeout, 5);
    zs_service_free(&s);
    free(text);
}
END_TEST

/* Keys that do not start with server- (in any case: test_service_keys.c) belong to the
 * program: kept, never an error. */
START_TEST(test_program_keys_kept)
{
    const char *text = "server-command = /bin/true\n"
                       "abc = xxx\n"
                       "host = linuxmail.cn\n"
                       "Serverproc = 1\n"
                       "serverproc = 1\n"
                       "my-server-x = 2\n";
    zs_service s;
    validate_ok(text, &s);
    zs_service_free(&s);
    zs_config c;
    zs_errs e = { 0 };
    zs_config_init(&c);
    ck_assert_int_eq(zs_config_load_file(&c, cf, &e), 0);
    ck_assert_str_eq(zs_config_get(&c, "abc", NULL), "xxx");
    ck_assert_str_eq(zs_config_get(&c, "host", NULL), "linuxmail.cn");
    ck_assert_str_eq(zs_config_get(&c, "Serverproc", NULL), "1");
    zs_config_free(&c);
}
END_TEST

START_TEST(test_service_lines_accumulate)
{
    char *text = zs_xasprintf("server-command = /bin/true\n"
                              "server-service = a://0:2525, 127.0.0.1:2526\n"
                              "# a comment\n"
                              "\n"
                              "server-service = [::1]:2527\n"
                              "abc = x\n"
                              "server-service = local:%s/l.sock , fifo:%s/f\n",
                              tmp, tmp);
    zs_service s;
    validate_ok(text, &s);
    ck_assert_int_eq(s.nlisten, 5);
    const char *keys[] = { "inet:0.0.0.0:2525", "inet:127.0.0.1:2526", "inet6:[::1]:2527" };
    const char *names[] = { "a", "svc", "svc", "svc", "svc" };
    const int lines[] = { 2, 2, 5, 7, 7 };
    for (int i = 0; i < 5; i++) {
        char where[200];
        snprintf(where, sizeof(where), "%s:%d", cf, lines[i]);
        ck_assert_str_eq(s.listen[i].where, where);
        ck_assert_str_eq(s.listen[i].name, names[i]);
        if (i < 3)
            ck_assert_str_eq(s.listen[i].key, keys[i]);
    }
    ck_assert_int_eq(s.listen[3].kind, ZS_LISTEN_UNIX);
    ck_assert_int_eq(s.listen[4].kind, ZS_LISTEN_FIFO);
    zs_service_free(&s);
    free(text);
}
END_TEST

/* No server-command: an error for masterd, fine for a program run `alone`. */
START_TEST(test_missing_command)
{
    validate_one_error("server-service = 0:25\n", 0, "server-command: missing (which program runs this service?)");
    zs_service s;
    zs_errs e = { 0 };
    ck_assert_int_eq(validate("server-service = 0:25\n", 0, &s, &e), 0);
    ck_assert_uint_eq(e.n, 0);
    ck_assert_int_eq(s.argc, 0);
    ck_assert_ptr_null(s.argv);
    ck_assert_ptr_null(s.exec_path);
    ck_assert_int_eq(s.nlisten, 1);
    zs_service_free(&s);

    /* Without a file (alone mode, arguments only) the message names the service id. */
    zs_config c;
    zs_config_init(&c);
    ck_assert_int_eq(zs_service_from_config(&s, "imapd", NULL, &c, 1, &e), -1);
    ASSERT_ERR(&e, 0, "imapd: server-command: missing (which program runs this service?)");
    zs_errs_free(&e);
}
END_TEST

START_TEST(test_command_errors)
{
    validate_one_error("server-command =\n", 1, "server-command: empty");
    validate_one_error("abc = 1\nserver-command =   \t \n", 2, "server-command: empty");
    validate_one_error("server-command = /nonexistent-zs-dir/prog -x\n", 1,
                       "server-command: '/nonexistent-zs-dir/prog': No such file or directory");
    validate_one_error("server-command = no-such-program-zz arg\n", 1,
                       "server-command: 'no-such-program-zz' not found in PATH");

    char *prog = zs_xasprintf("%s/not-exec", tmp);
    write_file(prog, "#!/bin/sh\nexit 0\n", 0644);
    char *text = zs_xasprintf("server-command = %s\n", prog), *tail = zs_xasprintf("server-command: '%s' is not an executable file", prog);
    validate_one_error(text, 1, tail);
    free(text);
    free(tail);

    text = zs_xasprintf("server-command = %s\n", tmp);
    tail = zs_xasprintf("server-command: '%s' is not an executable file", tmp);
    validate_one_error(text, 1, tail);
    free(text);
    free(tail);

    /* Executable: fine, with a relative path too. */
    ck_assert_int_eq(chmod(prog, 0755), 0);
    zs_service s;
    text = zs_xasprintf("server-command = %s\n", prog);
    validate_ok(text, &s);
    ck_assert_str_eq(s.exec_path, prog);
    zs_service_free(&s);
    free(text);

    /* A relative path is taken from the config file's directory, whatever the working one. */
    char real[PATH_MAX];
    ck_assert_ptr_nonnull(realpath(tmp, real));
    char *want = zs_xasprintf("%s/not-exec", real);
    validate_ok("server-command = ./not-exec one\n", &s);
    ck_assert_str_eq(s.exec_path, want);
    ck_assert_str_eq(s.argv[0], "./not-exec");
    ck_assert_str_eq(s.argv[1], "one");
    zs_service_free(&s);
    free(want);
    free(prog);
}
END_TEST

/* A bare word is searched in PATH like execvp does, skipping what is not executable. */
START_TEST(test_command_path_search)
{
    char *d1 = zs_xasprintf("%s/bin1", tmp), *d2 = zs_xasprintf("%s/bin2", tmp);
    ck_assert_int_eq(mkdir(d1, 0755), 0);
    ck_assert_int_eq(mkdir(d2, 0755), 0);
    char *p1 = zs_xasprintf("%s/zs-prog", d1), *p2 = zs_xasprintf("%s/zs-prog", d2);
    write_file(p1, "#!/bin/sh\n", 0644);
    write_file(p2, "#!/bin/sh\n", 0755);
    const char *old = getenv("PATH");
    char *saved = old ? zs_xstrdup(old) : NULL;
    char *path = zs_xasprintf("/nonexistent-zs-dir:%s:%s", d1, d2);
    ck_assert_int_eq(setenv("PATH", path, 1), 0);
    zs_service s;
    validate_ok("server-command = zs-prog -v\n", &s);
    ck_assert_str_eq(s.exec_path, p2);
    ck_assert_str_eq(s.argv[0], "zs-prog");
    ck_assert_int_eq(s.argc, 2);
    zs_service_free(&s);
    if (saved)
        setenv("PATH", saved, 1);
    else
        unsetenv("PATH");
    free(saved);
    free(path);
    free(p1);
    free(p2);
    free(d1);
    free(d2);
}
END_TEST

/* ---- numbers: strict, in range, for each numeric key ---- */

static const struct num_case {
    const char *key, *value;
    const char *why;   /* NULL: accepted */
    long want;
} nums[] = {
    { "server-proc-count", "1", NULL, 1 },
    { "server-proc-count", "4096", NULL, 4096 },
    { "server-proc-count", "0", "out of range 1..4096", 0 },
    { "server-proc-count", "4097", "out of range 1..4096", 0 },
    { "server-proc-count", "-1", "out of range 1..4096", 0 },
    { "server-proc-count", "12abc", "not a whole number", 0 },
    { "server-proc-count", "1e3", "not a whole number", 0 },
    { "server-proc-count", "0x10", "not a whole number", 0 },
    { "server-proc-count", "2.0", "not a whole number", 0 },
    { "server-proc-count", "", "not a whole number", 0 },
    { "server-proc-count", "99999999999999999999999999", "out of range 1..4096", 0 },
    { "server-listen-backlog", "1", NULL, 1 },
    { "server-listen-backlog", "65535", NULL, 65535 },
    { "server-listen-backlog", "0", "out of range 1..65535", 0 },
    { "server-listen-backlog", "65536", "out of range 1..65535", 0 },
    { "server-listen-backlog", "511k", "not a whole number", 0 },
    { "server-listen-backlog", "1e3", "not a whole number", 0 },
    { "server-stop-on-softstop-after", "0", NULL, 0 },
    { "server-stop-on-softstop-after", "86400", NULL, 86400 },
    { "server-stop-on-softstop-after", "86401", "out of range 0..86400", 0 },
    { "server-stop-on-softstop-after", "-1", "out of range 0..86400", 0 },
    /* durations take lib-zc's units (core/zs_units.c) */
    { "server-stop-on-softstop-after", "10s", NULL, 10 },
    { "server-stop-on-softstop-after", "2m", NULL, 120 },
    { "server-stop-on-softstop-after", "1H", NULL, 3600 },
    { "server-stop-on-softstop-after", "1d", NULL, 86400 },
    { "server-stop-on-softstop-after", "2d", "out of range 0..86400", 0 },
    { "server-stop-on-softstop-after", "1w", "out of range 0..86400", 0 },
    { "server-stop-on-softstop-after", "5x", "unknown unit 'x' (units: s m h d w)", 0 },
    { "server-stop-on-softstop-after", "5ms", "expected a whole number and an optional unit (s m h d w)", 0 },
    { "server-stop-on-softstop-after", "s", "expected a whole number and an optional unit (s m h d w)", 0 },
    { "server-stop-on-softstop-after", "0x10", "expected a whole number and an optional unit (s m h d w)", 0 },
    { "server-ready-timeout", "1", NULL, 1 },
    { "server-ready-timeout", "86400", NULL, 86400 },
    { "server-ready-timeout", "0", "out of range 1..86400", 0 },
    { "server-ready-timeout", "30s", NULL, 30 },
    { "server-ready-timeout", "1e3", "expected a whole number and an optional unit (s m h d w)", 0 },
    { "server-ready-timeout", "99999999999999999999", "out of range 1..86400", 0 },
    { "server-max-nofile", "16", NULL, 16 },
    { "server-max-nofile", "16777216", NULL, 16777216 },
    { "server-max-nofile", "15", "out of range 16..16777216", 0 },
    { "server-max-nofile", "16777217", "out of range 16..16777216", 0 },
    { "server-max-nofile", "12abc", "not a whole number", 0 },
    { "server-max-nofile", "unlimited", "not a whole number", 0 },
};

static long field(const zs_service *s, const char *key)
{
    if (!strcmp(key, "server-proc-count"))
        return s->proc_count;
    if (!strcmp(key, "server-listen-backlog"))
        return s->backlog;
    if (!strcmp(key, "server-stop-on-softstop-after"))
        return s->softstop_after;
    if (!strcmp(key, "server-ready-timeout"))
        return s->ready_timeout;
    if (!strcmp(key, "server-max-nofile"))
        return (long)s->max_nofile;
    ck_abort_msg("no field for %s", key);
    return 0;
}

START_TEST(test_number)
{
    const struct num_case *t = &nums[_i];
    char *text = zs_xasprintf("server-command = /bin/true\n%s = %s\n", t->key, t->value);
    if (t->why) {
        char *tail = zs_xasprintf("%s: '%s': %s", t->key, t->value, t->why);
        validate_one_error(text, 2, tail);
        free(tail);
    } else {
        zs_service s;
        validate_ok(text, &s);
        ck_assert_int_eq(field(&s, t->key), t->want);
        zs_service_free(&s);
    }
    free(text);
}
END_TEST

/* A value from the command line (`-server-proc-count ' 5'`): no line, and no blank stripping. */
START_TEST(test_number_from_argv)
{
    static const char *vals[] = { " 5", "5 ", "+", "5\n" };
    static const char *shown[] = { " 5", "5 ", "+", "5\\n" }; /* errors are escaped (zs_escape.h) */
    for (size_t i = 0; i < sizeof(vals) / sizeof(*vals); i++) {
        zs_config c;
        zs_service s;
        zs_errs e = { 0 };
        zs_config_init(&c);
        zs_config_set(&c, "server-proc-count", vals[i], "argv", 0);
        ck_assert_int_eq(zs_service_from_config(&s, "x", NULL, &c, 0, &e), -1);
        ck_assert_uint_eq(e.n, 1);
        ASSERT_ERR(&e, 0, "argv: server-proc-count: '%s': not a whole number", shown[i]);
        zs_errs_free(&e);
        zs_config_free(&c);
    }
}
END_TEST

/* ---- enumerations and other formats ---- */

static const struct enum_case {
    const char *key, *value;
    const char *why;   /* NULL: accepted */
    long want;
} enums[] = {
    { "server-restart", "always", NULL, ZS_RESTART_ALWAYS },
    { "server-restart", "keepalive", NULL, ZS_RESTART_ALWAYS },
    { "server-restart", "on-failure", NULL, ZS_RESTART_ON_FAILURE },
    { "server-restart", "never", NULL, ZS_RESTART_NEVER },
    { "server-restart", "default", NULL, ZS_RESTART_NEVER },
    { "server-restart", "sometimes", "expected always (or keepalive), on-failure, or never (or default)", 0 },
    { "server-restart", "Always", "expected always (or keepalive), on-failure, or never (or default)", 0 },
    { "server-restart", "on_failure", "expected always (or keepalive), on-failure, or never (or default)", 0 },
    { "server-restart", "", "expected always (or keepalive), on-failure, or never (or default)", 0 },
    { "server-unix-mode", "0660", NULL, 0660 },
    { "server-unix-mode", "660", NULL, 0660 },
    { "server-unix-mode", "0", NULL, 0 },
    { "server-unix-mode", "0777", NULL, 0777 },
    { "server-unix-mode", "1777", NULL, 01777 },
    { "server-unix-mode", "0888", "expected an octal mode such as 0660", 0 },
    { "server-unix-mode", "00660", "expected an octal mode such as 0660", 0 },
    { "server-unix-mode", "0x1b6", "expected an octal mode such as 0660", 0 },
    { "server-unix-mode", "rw-rw----", "expected an octal mode such as 0660", 0 },
    { "server-unix-mode", "-660", "expected an octal mode such as 0660", 0 },
    { "server-unix-mode", "", "expected an octal mode such as 0660", 0 },
    { "server-core-size", "0", NULL, 0 },
    { "server-core-size", "1048576", NULL, 1048576 },
    { "server-core-size", "unlimited", NULL, -2 },
    { "server-core-size", "1M", "not a whole number (bytes or 'unlimited')", 0 },
    { "server-core-size", "-1", "out of range 0..9223372036854775807 (bytes or 'unlimited')", 0 },
    { "server-core-size", "Unlimited", "not a whole number (bytes or 'unlimited')", 0 },
    { "server-core-size", "99999999999999999999", "out of range 0..9223372036854775807 (bytes or 'unlimited')", 0 },
};

static long enum_field(const zs_service *s, const char *key)
{
    if (!strcmp(key, "server-restart"))
        return s->restart;
    if (!strcmp(key, "server-unix-mode"))
        return (long)s->unix_mode;
    return (long)s->core_size;
}

START_TEST(test_enum)
{
    const struct enum_case *t = &enums[_i];
    char *text = zs_xasprintf("server-command = /bin/true\n%s = %s\n", t->key, t->value);
    if (t->why) {
        char *tail = zs_xasprintf("%s: '%s': %s", t->key, t->value, t->why);
        validate_one_error(text, 2, tail);
        free(tail);
    } else {
        zs_service s;
        validate_ok(text, &s);
        ck_assert_int_eq(enum_field(&s, t->key), t->want);
        zs_service_free(&s);
    }
    free(text);
}
END_TEST

START_TEST(test_user_and_log)
{
    validate_one_error("server-command = /bin/true\nserver-user = no-such-user-zz\n", 2,
                       "server-user: 'no-such-user-zz': no such user");
    validate_one_error("server-command = /bin/true\nserver-log = syslog\n", 2,
                       "server-log: syslog needs a facility: syslog,mail");
    validate_one_error("server-command = /bin/true\nserver-log = syslog,nope\n", 2,
                       "server-log: unknown syslog facility 'nope'");
    validate_one_error("server-command = /bin/true\nserver-log = loud\n", 2,
                       "server-log: unknown log target 'loud' (stderr, syslog,FACILITY, file,PATH or masterlog,PATH)");
    zs_service s;
    validate_ok("server-command = /bin/true\nserver-log = stderr\n", &s);
    ck_assert_str_eq(s.log, "stderr");
    zs_service_free(&s);
    char *text = zs_xasprintf("server-command = /bin/true\nserver-log = masterlog,%s/log.sock\n", tmp);
    validate_ok(text, &s);
    zs_service_free(&s);
    free(text);
}
END_TEST

START_TEST(test_unknown_server_key)
{
    validate_one_error("server-command = /bin/true\nserver-proc-cont = 2\n", 2,
                       "server-proc-cont: unknown key (keys starting with server- are reserved; a typo?)");
    validate_one_error("server-colour = red\nserver-command = /bin/true\n", 1,
                       "server-colour: unknown key (keys starting with server- are reserved; a typo?)");
    validate_one_error("server-command = /bin/true\nserver- = 1\n", 2,
                       "server-: unknown key (keys starting with server- are reserved; a typo?)");
}
END_TEST

/* ---- listen entries through a file: every error names its own line ---- */

START_TEST(test_listen_errors_name_line)
{
    const char *text = "server-command = /bin/true\n"
                       "server-service = 0:25, localhost:26\n"
                       "server-service = 127.0.0.1:0\n"
                       "server-service = [::1]:27, ::1:28\n"
                       "server-service = 0:65536, 0:x, 0:\n"
                       "server-service = 1.2.3.256:25\n"
                       "server-service = /nonexistent-zs-dir/s.sock, local:, bad name://0:29\n";
    zs_service s;
    zs_errs e = { 0 };
    ck_assert_int_eq(validate(text, 1, &s, &e), -1);
    const char *want[] = {
        "2: server-service: 'localhost:26': 'localhost' is not a numeric address (host names are not resolved at start-up)",
        "3: server-service: '127.0.0.1:0': port 0 out of range 1..65535",
        "4: server-service: '::1:28': an IPv6 address needs brackets: [ADDRESS]:PORT",
        "5: server-service: '0:65536': port 65536 out of range 1..65535",
        "5: server-service: '0:x': bad port 'x' (a number 1..65535)",
        "5: server-service: '0:': missing port",
        "6: server-service: '1.2.3.256:25': bad IPv4 address '1.2.3.256'",
        "7: server-service: '/nonexistent-zs-dir/s.sock': directory '/nonexistent-zs-dir' does not exist",
        "7: server-service: 'local:': empty path",
        "7: server-service: 'bad name://0:29': bad service name 'bad name' (letters, digits, '-', '_', '.')",
    };
    ck_assert_uint_eq(e.n, sizeof(want) / sizeof(*want));
    for (size_t i = 0; i < e.n; i++)
        ASSERT_ERR(&e, i, "%s:%s", cf, want[i]);
    zs_errs_free(&e);
}
END_TEST

START_TEST(test_duplicate_address)
{
    char *text = zs_xasprintf("server-command = /bin/true\n"
                              "server-service = 0:25, [::]:25, %s/s.sock\n"
                              "server-service = smtp://0.0.0.0:25\n"
                              "server-service = :25, [0::0]:25\n"
                              "server-service = local:%s/./s.sock, fifo:%s/s.sock\n",
                              tmp, tmp, tmp);
    zs_service s;
    zs_errs e = { 0 };
    ck_assert_int_eq(validate(text, 1, &s, &e), -1);
    ck_assert_uint_eq(e.n, 5);
    ASSERT_ERR(&e, 0, "%s:3: server-service: 'smtp://0.0.0.0:25' is already listed at %s:2 ('0:25')", cf, cf);
    ASSERT_ERR(&e, 1, "%s:4: server-service: ':25' is already listed at %s:2 ('0:25')", cf, cf);
    ASSERT_ERR(&e, 2, "%s:4: server-service: '[0::0]:25' is already listed at %s:2 ('[::]:25')", cf, cf);
    ASSERT_ERR(&e, 3, "%s:5: server-service: 'local:%s/./s.sock' is already listed at %s:2 ('%s/s.sock')", cf, tmp,
               cf, tmp);
    /* A fifo at the socket's path: the same file, whatever the kinds. */
    ASSERT_ERR(&e, 4, "%s:5: server-service: 'fifo:%s/s.sock' is the path '%s/s.sock' of '%s/s.sock' at %s:2 (a unix "
               "socket and a fifo cannot share a path)", cf, tmp, tmp, tmp, cf);
    zs_errs_free(&e);
    free(text);

    /* On one line too. */
    char *tail = zs_xasprintf("server-service: '127.0.0.1:25' is already listed at %s:2 ('127.0.0.1:25')", cf);
    validate_one_error("server-command = /bin/true\nserver-service = 127.0.0.1:25, 127.0.0.1:25\n", 2, tail);
    free(tail);
}
END_TEST

/* ---- every problem of a file, at once ---- */

START_TEST(test_every_error_reported)
{
    const char *text = "server-colour = red\n"                 /* 1 */
                       "server-command = no-such-program-zz\n" /* 2 */
                       "server-proc-count = 0\n"               /* 3 */
                       "server-restart = sometimes\n"          /* 4 */
                       "server-unix-mode = 999\n"              /* 5 */
                       "server-core-size = 1G\n"               /* 6 */
                       "server-listen-backlog = 1e3\n"         /* 7 */
                       "server-stop-on-softstop-after = -1\n"  /* 8 */
                       "server-ready-timeout = 0x10\n"         /* 9 */
                       "server-max-nofile = 12abc\n"           /* 10 */
                       "server-service = localhost:25\n"       /* 11 */
                       "server-log = nowhere\n"                /* 12 */
                       "server-user = no-such-user-zz\n"       /* 13 */
                       "server-proc-cont = 2\n"                /* 14 */
                       "abc = fine\n";                         /* 15 */
    zs_service s;
    zs_errs e = { 0 };
    ck_assert_int_eq(validate(text, 1, &s, &e), -1);
    ck_assert_ptr_null(s.id);
    const char *want[] = {
        "1: server-colour: unknown key (keys starting with server- are reserved; a typo?)",
        "14: server-proc-cont: unknown key (keys starting with server- are reserved; a typo?)",
        "2: server-command: 'no-such-program-zz' not found in PATH",
        "12: server-log: unknown log target 'nowhere' (stderr, syslog,FACILITY, file,PATH or masterlog,PATH)",
        "4: server-restart: 'sometimes': expected always (or keepalive), on-failure, or never (or default)",
        "5: server-unix-mode: '999': expected an octal mode such as 0660",
        "6: server-core-size: '1G': not a whole number (bytes or 'unlimited')",
        "13: server-user: 'no-such-user-zz': no such user",
        "3: server-proc-count: '0': out of range 1..4096",
        "8: server-stop-on-softstop-after: '-1': out of range 0..86400",
        "7: server-listen-backlog: '1e3': not a whole number",
        "10: server-max-nofile: '12abc': not a whole number",
        "9: server-ready-timeout: '0x10': expected a whole number and an optional unit (s m h d w)",
        "11: server-service: 'localhost:25': 'localhost' is not a numeric address (host names are not resolved at start-up)",
    };
    ck_assert_uint_eq(e.n, sizeof(want) / sizeof(*want));
    for (size_t i = 0; i < e.n; i++)
        ASSERT_ERR(&e, i, "%s:%s", cf, want[i]);
    zs_errs_free(&e);
}
END_TEST

/* Errors are appended after what the caller already has; a clean service adds none. */
START_TEST(test_errors_appended)
{
    zs_errs e = { 0 };
    zs_errs_add(&e, "earlier");
    zs_service s;
    ck_assert_int_eq(validate("server-command = /bin/true\n", 1, &s, &e), 0);
    ck_assert_uint_eq(e.n, 1);
    zs_service_free(&s);
    ck_assert_int_eq(validate("server-command = /bin/true\nserver-proc-count = x\n", 1, &s, &e), -1);
    ck_assert_uint_eq(e.n, 2);
    ck_assert_str_eq(e.msg[0], "earlier");
    zs_errs_free(&e);
}
END_TEST

/* ---- reload's scale-only comparison ---- */

/* server-env accumulates like server-service; a name set twice keeps its last value (a .cf
 * overriding a .gcf default), in the place it was first set. */
START_TEST(test_env_keys)
{
    zs_service s;
    validate_ok("server-command = /bin/true\n", &s);
    ck_assert_int_eq(s.nenv, 0);
    ck_assert_int_eq(s.env_clear, 0); /* inherits masterd's environment by default */
    zs_service_free(&s);
    validate_ok("server-command = /bin/true\n"
                "server-env = LANG=C.UTF-8\n"
                "server-env = EMPTY=\n"
                "server-env-clear = yes\n"
                "server-env = _X1=a=b c:d\n"
                "server-env = LANG=C\n", &s);
    ck_assert_int_eq(s.env_clear, 1);
    ck_assert_int_eq(s.nenv, 3);
    ck_assert_str_eq(s.env[0], "LANG=C");
    ck_assert_str_eq(s.env[1], "EMPTY=");
    ck_assert_str_eq(s.env[2], "_X1=a=b c:d");
    ck_assert_ptr_null(s.env[3]);
    zs_service_free(&s);
    validate_ok("server-command = /bin/true\nserver-env-clear = no\n", &s);
    ck_assert_int_eq(s.env_clear, 0);
    zs_service_free(&s);
}
END_TEST

START_TEST(test_env_errors)
{
    validate_one_error("server-command = /bin/true\nserver-env = NOVALUE\n", 2,
                       "server-env: 'NOVALUE': expected NAME=VALUE");
    validate_one_error("server-command = /bin/true\nserver-env = =x\n", 2,
                       "server-env: '=x': empty name");
    validate_one_error("server-command = /bin/true\nserver-env = 1A=x\n", 2,
                       "server-env: '1A=x': '1A' is not a valid name (letters, digits and _, not starting with a digit)");
    validate_one_error("server-command = /bin/true\nserver-env = A-B=x\n", 2,
                       "server-env: 'A-B=x': 'A-B' is not a valid name (letters, digits and _, not starting with a digit)");
    validate_one_error("server-command = /bin/true\n\nserver-env = LISTEN_FDS=3\n", 3,
                       "server-env: 'LISTEN_FDS=3': LISTEN_FDS is set by masterd (LISTEN_*, ZMASTER_*, NOTIFY_SOCKET)");
    validate_one_error("server-command = /bin/true\nserver-env = ZMASTER_GENERATION=1\n", 2,
                       "server-env: 'ZMASTER_GENERATION=1': ZMASTER_GENERATION is set by masterd (LISTEN_*, ZMASTER_*, NOTIFY_SOCKET)");
    validate_one_error("server-command = /bin/true\nserver-env-clear = maybe\n", 2,
                       "server-env-clear: 'maybe': expected yes or no");
}
END_TEST

/* server-chdir and server-stop-signal; lib-zc's master-* keys refused; paths from the file's directory. */
START_TEST(test_run_keys)
{
    zs_service s;
    char real[PATH_MAX];
    ck_assert_ptr_nonnull(realpath(tmp, real));
    char *sub = zs_xasprintf("%s/work", tmp);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    validate_ok("server-command = /bin/true\nserver-chdir = ./work\nserver-stop-signal = SIGQUIT\n"
                "server-log = masterlog,log.sock\n", &s);
    char *want = zs_xasprintf("%s/work", real), *log = zs_xasprintf("masterlog,%s/log.sock", real);
    ck_assert_str_eq(s.chdir, want);
    ck_assert_int_eq(s.stop_signal, SIGQUIT);
    ck_assert_str_eq(s.log, log);
    zs_service_free(&s);
    validate_ok("server-command = /bin/true\n", &s);
    ck_assert_ptr_null(s.chdir);
    ck_assert_int_eq(s.stop_signal, SIGTERM);
    zs_service_free(&s);
    validate_one_error("server-command = /bin/true\nserver-stop-signal = KILL\n", 2,
                       "server-stop-signal: 'KILL': expected TERM, INT, QUIT, HUP, USR1 or USR2");
    char *e = zs_xasprintf("server-chdir: 'nope' (relative to the config directory %s): No such file or directory",
                           real);
    validate_one_error("server-command = /bin/true\nserver-chdir = nope\n", 2, e);
    validate_one_error("server-command = /bin/true\nmaster-chdir = /\n", 2,
                       "master-chdir: lib-zc's working directory of the service's processes is spelled "
                       "server-chdir here (relative paths taken from the config directory)");
    ck_assert_int_eq(rmdir(sub), 0);
    free(e);
    free(want);
    free(log);
    free(sub);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("service");
    TCase *tc = tcase_create("keys");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_every_key);
    tcase_add_test(tc, test_program_keys_kept);
    tcase_add_test(tc, test_service_lines_accumulate);
    tcase_add_test(tc, test_missing_command);
    tcase_add_test(tc, test_command_errors);
    tcase_add_test(tc, test_command_path_search);
    tcase_add_loop_test(tc, test_number, 0, (int)(sizeof(nums) / sizeof(*nums)));
    tcase_add_test(tc, test_number_from_argv);
    tcase_add_loop_test(tc, test_enum, 0, (int)(sizeof(enums) / sizeof(*enums)));
    tcase_add_test(tc, test_user_and_log);
    tcase_add_test(tc, test_unknown_server_key);
    tcase_add_test(tc, test_listen_errors_name_line);
    tcase_add_test(tc, test_duplicate_address);
    tcase_add_test(tc, test_every_error_reported);
    tcase_add_test(tc, test_errors_appended);
    tcase_add_test(tc, test_env_keys);
    tcase_add_test(tc, test_env_errors);
    tcase_add_test(tc, test_run_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(suite());
}
