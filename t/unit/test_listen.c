/*
 * test_listen.c — listen entries `[NAME://]ADDRESS` (zs_listen.h, doc/CONTRACT.md §3): every address
 * form, the canonical keys used for duplicate detection, every malformed category with its
 * exact error text, list parsing, and binding real sockets and fifos on 127.0.0.1, [::1] and
 * unix paths in a mkdtemp directory.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "core/zs_listen.h"
#include "zserver.h"
#include "check_run.h"

static char tmp[64];
static char real_tmp[PATH_MAX];

static void setup(void)
{
    strcpy(tmp, "/tmp/zs-test-listen-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    ck_assert_ptr_nonnull(realpath(tmp, real_tmp));
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

#define ASSERT_ERR(e, i, ...)                                    \
    do {                                                         \
        char *x_ = zs_xasprintf(__VA_ARGS__);                    \
        ck_assert_msg((e)->n > (size_t)(i), "no error #%d (want '%s')", (int)(i), x_); \
        ck_assert_str_eq((e)->msg[i], x_);                       \
        free(x_);                                                \
    } while (0)

/* Parses entry, which must be good; the caller frees l. */
static void parse_ok(const char *entry, zs_listen *l)
{
    char why[300] = "";
    int rc = zs_listen_parse(entry, "svc", l, why, sizeof(why));
    ck_assert_msg(rc == 0, "'%s' refused: %s", entry, why);
    ck_assert_str_eq(l->text, entry);
}

/* ---- good entries: network addresses ---- */

static const struct good_inet {
    const char *entry, *name, *key, *ip;
    int kind, port;
} good_inet[] = {
    { "0:25", "svc", "inet:0.0.0.0:25", "0.0.0.0", ZS_LISTEN_INET, 25 },
    { ":25", "svc", "inet:0.0.0.0:25", "0.0.0.0", ZS_LISTEN_INET, 25 },
    { "0.0.0.0:25", "svc", "inet:0.0.0.0:25", "0.0.0.0", ZS_LISTEN_INET, 25 },
    { "127.0.0.1:1143", "svc", "inet:127.0.0.1:1143", "127.0.0.1", ZS_LISTEN_INET, 1143 },
    { "10.1.2.3:1", "svc", "inet:10.1.2.3:1", "10.1.2.3", ZS_LISTEN_INET, 1 },
    { "0:65535", "svc", "inet:0.0.0.0:65535", "0.0.0.0", ZS_LISTEN_INET, 65535 },
    { "0:00025", "svc", "inet:0.0.0.0:25", "0.0.0.0", ZS_LISTEN_INET, 25 },
    { "[::1]:143", "svc", "inet6:[::1]:143", "::1", ZS_LISTEN_INET6, 143 },
    { "[::]:143", "svc", "inet6:[::]:143", "::", ZS_LISTEN_INET6, 143 },
    { "[0:0::0]:143", "svc", "inet6:[::]:143", "::", ZS_LISTEN_INET6, 143 },
    { "[0000:0000:0000:0000:0000:0000:0000:0001]:143", "svc", "inet6:[::1]:143", "::1", ZS_LISTEN_INET6, 143 },
    { "[2001:DB8::A]:80", "svc", "inet6:[2001:db8::a]:80", "2001:db8::a", ZS_LISTEN_INET6, 80 },
    { "smtp://0:25", "smtp", "inet:0.0.0.0:25", "0.0.0.0", ZS_LISTEN_INET, 25 },
    { "imap://:143", "imap", "inet:0.0.0.0:143", "0.0.0.0", ZS_LISTEN_INET, 143 },
    { "a.b-c_D9://127.0.0.1:65535", "a.b-c_D9", "inet:127.0.0.1:65535", "127.0.0.1", ZS_LISTEN_INET, 65535 },
    { "v6://[::1]:993", "v6", "inet6:[::1]:993", "::1", ZS_LISTEN_INET6, 993 },
};

START_TEST(test_good_inet)
{
    const struct good_inet *g = &good_inet[_i];
    zs_listen l;
    char ip[INET6_ADDRSTRLEN];
    parse_ok(g->entry, &l);
    ck_assert_int_eq(l.kind, g->kind);
    ck_assert_str_eq(l.name, g->name);
    ck_assert_str_eq(l.key, g->key);
    ck_assert_ptr_null(l.path);
    ck_assert_ptr_null(l.where);
    if (g->kind == ZS_LISTEN_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&l.sa;
        ck_assert_int_eq(s4->sin_family, AF_INET);
        ck_assert_int_eq(ntohs(s4->sin_port), g->port);
        ck_assert_uint_eq(l.salen, sizeof(*s4));
        ck_assert_str_eq(inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip)), g->ip);
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&l.sa;
        ck_assert_int_eq(s6->sin6_family, AF_INET6);
        ck_assert_int_eq(ntohs(s6->sin6_port), g->port);
        ck_assert_uint_eq(l.salen, sizeof(*s6));
        ck_assert_str_eq(inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip)), g->ip);
    }
    zs_listen_free(&l);
    ck_assert_ptr_null(l.key);
}
END_TEST

/* ---- good entries: unix sockets and fifos ---- */

START_TEST(test_good_unix_and_fifo)
{
    zs_listen l;
    char *p = zs_xasprintf("%s/x.sock", tmp), *k = zs_xasprintf("unix:%s/x.sock", real_tmp);
    parse_ok(p, &l);
    ck_assert_int_eq(l.kind, ZS_LISTEN_UNIX);
    ck_assert_str_eq(l.name, "svc");
    ck_assert_str_eq(l.path, p);
    ck_assert_str_eq(l.key, k);
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&l.sa;
    ck_assert_int_eq(sun->sun_family, AF_UNIX);
    ck_assert_str_eq(sun->sun_path, p);
    zs_listen_free(&l);

    /* local:PATH is the same socket, spelled explicitly, under another name. */
    char *e = zs_xasprintf("lmtp://local:%s/x.sock", tmp);
    parse_ok(e, &l);
    ck_assert_int_eq(l.kind, ZS_LISTEN_UNIX);
    ck_assert_str_eq(l.name, "lmtp");
    ck_assert_str_eq(l.path, p);
    ck_assert_str_eq(l.key, k);
    zs_listen_free(&l);
    free(e);

    /* fifo:PATH: another kind, its own key prefix, no socket address. */
    e = zs_xasprintf("fifo:%s/x.fifo", tmp);
    parse_ok(e, &l);
    ck_assert_int_eq(l.kind, ZS_LISTEN_FIFO);
    ck_assert_str_eq(l.name, "svc");
    free(k);
    k = zs_xasprintf("fifo:%s/x.fifo", real_tmp);
    ck_assert_str_eq(l.key, k);
    free(p);
    p = zs_xasprintf("%s/x.fifo", tmp);
    ck_assert_str_eq(l.path, p);
    ck_assert_int_eq(l.salen, 0);
    zs_listen_free(&l);
    free(e);

    /* A socket right under the root directory (no I/O but the realpath of "/"). */
    parse_ok("/x.sock", &l);
    ck_assert_str_eq(l.key, "unix:/x.sock");
    zs_listen_free(&l);
    free(p);
    free(k);
}
END_TEST

/* local:rel, ./rel, sub/../rel and tmp/rel are one socket: one key. */
START_TEST(test_unix_relative_same_key)
{
    char cwd[PATH_MAX];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
    char *sub = zs_xasprintf("%s/sub", tmp);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    ck_assert_int_eq(chdir(tmp), 0);
    char *want = zs_xasprintf("unix:%s/rel", real_tmp), *abs = zs_xasprintf("%s/rel", tmp);
    const char *forms[] = { "local:rel", "./rel", "sub/../rel", "local:./sub/../rel", abs };
    for (size_t i = 0; i < sizeof(forms) / sizeof(*forms); i++) {
        zs_listen l;
        parse_ok(forms[i], &l);
        ck_assert_int_eq(l.kind, ZS_LISTEN_UNIX);
        ck_assert_str_eq(l.key, want);
        zs_listen_free(&l);
    }
    ck_assert_int_eq(chdir(cwd), 0);
    free(want);
    free(abs);
    free(sub);
}
END_TEST

START_TEST(test_unix_path_length)
{
    /* sun_path holds 107 characters and a NUL. */
    char path[200];
    int n = snprintf(path, sizeof(path), "%s/", tmp);
    memset(path + n, 's', 107 - (size_t)n);
    path[107] = '\0';
    zs_listen l;
    parse_ok(path, &l);
    ck_assert_str_eq(((struct sockaddr_un *)&l.sa)->sun_path, path);
    zs_listen_free(&l);

    char *e = zs_xasprintf("local:%s", path);
    parse_ok(e, &l);
    zs_listen_free(&l);
    free(e);

    strcat(path, "s");
    char why[300];
    ck_assert_int_eq(zs_listen_parse(path, "svc", &l, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "path too long for a unix socket (108 characters, at most 107)");
    ck_assert_ptr_null(l.key);
    e = zs_xasprintf("fifo:%s", path);
    ck_assert_int_eq(zs_listen_parse(e, "svc", &l, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "path too long for a unix socket (108 characters, at most 107)");
    free(e);
}
END_TEST

/* ---- malformed entries: one table, one check each ---- */

static const struct bad_entry {
    const char *entry, *why;
} bad[] = {
    /* ports */
    { "0:0", "port 0 out of range 1..65535" },
    { "0:65536", "port 65536 out of range 1..65535" },
    { "0:123456", "port 123456 out of range 1..65535" },
    { "0:99999999999999999999999", "port 99999999999999999999999 out of range 1..65535" },
    { "127.0.0.1:25a", "bad port '25a' (a number 1..65535)" },
    { "0:-1", "bad port '-1' (a number 1..65535)" },
    { "0:+25", "bad port '+25' (a number 1..65535)" },
    { "0: 25", "bad port ' 25' (a number 1..65535)" },
    { "0:0x19", "bad port '0x19' (a number 1..65535)" },
    { "0:smtp", "bad port 'smtp' (a number 1..65535)" },
    { "127.0.0.1:", "missing port" },
    { ":", "missing port" },
    { "25", "expected HOST:PORT, [IPV6]:PORT or a unix socket path (containing '/', or spelled local:PATH)" },
    { "sock", "expected HOST:PORT, [IPV6]:PORT or a unix socket path (containing '/', or spelled local:PATH)" },
    { "imapd.sock", "neither HOST:PORT nor a unix socket path (a path contains '/'): write local:imapd.sock or "
                    "./imapd.sock for a unix socket" },
    /* host names and bad IPv4 */
    { "localhost:25", "'localhost' is not a numeric address (host names are not resolved at start-up)" },
    { "mail.example.com:25", "'mail.example.com' is not a numeric address (host names are not resolved at start-up)" },
    { "1.2.3.256:25", "bad IPv4 address '1.2.3.256'" },
    { "1.2.3:25", "bad IPv4 address '1.2.3'" },
    { "1.2.3.4.5:25", "bad IPv4 address '1.2.3.4.5'" },
    { "127.1:25", "bad IPv4 address '127.1'" },
    { "00:25", "bad IPv4 address '00'" },
    /* IPv6 */
    { "::1:25", "an IPv6 address needs brackets: [ADDRESS]:PORT" },
    { "::", "an IPv6 address needs brackets: [ADDRESS]:PORT" },
    { "fe80::1:25", "an IPv6 address needs brackets: [ADDRESS]:PORT" },
    { "[::1]", "expected ':PORT' after ']'" },
    { "[::ffff:127.0.0.1]:25", "'::ffff:127.0.0.1' is an IPv4 address in IPv6 form (IPv6 sockets here are IPv6 only): "
                               "write it as 127.0.0.1:25" },
    { "[::FFFF:7f00:2]:25", "'::FFFF:7f00:2' is an IPv4 address in IPv6 form (IPv6 sockets here are IPv6 only): "
                            "write it as 127.0.0.2:25" },
    { "[::1]25", "expected ':PORT' after ']'" },
    { "[::1", "missing ']' after an IPv6 address" },
    { "[::1]:", "missing port" },
    { "[::1]:0", "port 0 out of range 1..65535" },
    { "[::1]:x", "bad port 'x' (a number 1..65535)" },
    { "[zz::1]:25", "bad IPv6 address 'zz::1'" },
    { "[127.0.0.1]:25", "bad IPv6 address '127.0.0.1'" },
    { "[]:25", "bad IPv6 address ''" },
    { "[fe80::1%lo]:25", "bad IPv6 address 'fe80::1%lo'" },
    { "[1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16:17:18:19]:25", "bad IPv6 address '1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16:17:18:19'" },
    { "[1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb]:25",
      "bad IPv6 address '1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb'" },
    /* service names */
    { "://0:25", "bad service name '' (letters, digits, '-', '_', '.')" },
    { "my smtp://0:25", "bad service name 'my smtp' (letters, digits, '-', '_', '.')" },
    { "smtp!://0:25", "bad service name 'smtp!' (letters, digits, '-', '_', '.')" },
    { "a:b://0:25", "bad service name 'a:b' (letters, digits, '-', '_', '.')" },
    { "smtp://", "missing address" },
    { "", "missing address" },
    /* paths */
    { "local:", "empty path" },
    { "fifo:", "empty path" },
    { "smtp://local:", "empty path" },
    { "/nonexistent-zs-test-dir/x.sock", "directory '/nonexistent-zs-test-dir' does not exist" },
    { "local:/nonexistent-zs-test-dir/x", "directory '/nonexistent-zs-test-dir' does not exist" },
    { "fifo:/nonexistent-zs-test-dir/x", "directory '/nonexistent-zs-test-dir' does not exist" },
    { "/tmp/", "'/tmp/' names a directory, not a socket" },
    { "fifo:/tmp/", "'/tmp/' names a directory, not a socket" },
    { "/dev/null/x.sock", "'/dev/null' is not a directory" },
    { "/dev/null/sub/x.sock", "directory '/dev/null/sub': Not a directory" },
};

START_TEST(test_bad_entry)
{
    const struct bad_entry *b = &bad[_i];
    zs_listen l;
    char why[300] = "";
    ck_assert_msg(zs_listen_parse(b->entry, "svc", &l, why, sizeof(why)) == -1, "'%s' accepted as %s", b->entry,
                  l.key);
    ck_assert_str_eq(why, b->why);
    /* Nothing is left allocated on failure. */
    ck_assert_ptr_null(l.key);
    ck_assert_ptr_null(l.name);
    ck_assert_ptr_null(l.text);
    ck_assert_ptr_null(l.path);
}
END_TEST

/* A missing parent directory, inside a real temp directory (the CONTRACT's example). */
START_TEST(test_missing_unix_dir)
{
    char *e = zs_xasprintf("%s/var/socket/imapd", tmp), *dir = zs_xasprintf("%s/var/socket", tmp);
    zs_listen l;
    char why[300];
    ck_assert_int_eq(zs_listen_parse(e, "imapd", &l, why, sizeof(why)), -1);
    char *want = zs_xasprintf("directory '%s' does not exist", dir);
    ck_assert_str_eq(why, want);
    free(want);
    /* Once it exists the same entry is good. */
    char *var = zs_xasprintf("%s/var", tmp);
    ck_assert_int_eq(mkdir(var, 0755), 0);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    ck_assert_int_eq(zs_listen_parse(e, "imapd", &l, why, sizeof(why)), 0);
    ck_assert_str_eq(l.name, "imapd");
    ck_assert_int_eq(l.kind, ZS_LISTEN_UNIX);
    zs_listen_free(&l);
    free(var);
    free(e);
    free(dir);
}
END_TEST

/* ---- lists ---- */

START_TEST(test_list_good)
{
    zs_listen *v = NULL;
    int n = 0;
    zs_errs e = { 0 };
    char *list = zs_xasprintf(" 0:25, smtps://127.0.0.1:465 ,,[::1]:587 , %s/s.sock,\tfifo:%s/f , ", tmp, tmp);
    ck_assert_int_eq(zs_listen_parse_list(list, "smtp", "a.cf:3", &v, &n, &e), 0);
    ck_assert_uint_eq(e.n, 0);
    ck_assert_int_eq(n, 5);
    const char *keys[] = { "inet:0.0.0.0:25", "inet:127.0.0.1:465", "inet6:[::1]:587" };
    const char *names[] = { "smtp", "smtps", "smtp", "smtp", "smtp" };
    for (int i = 0; i < n; i++) {
        if (i < 3)
            ck_assert_str_eq(v[i].key, keys[i]);
        ck_assert_str_eq(v[i].name, names[i]);
        ck_assert_str_eq(v[i].where, "a.cf:3");
    }
    ck_assert_str_eq(v[1].text, "smtps://127.0.0.1:465");
    ck_assert_int_eq(v[3].kind, ZS_LISTEN_UNIX);
    ck_assert_int_eq(v[4].kind, ZS_LISTEN_FIFO);

    /* A second list appends, in order; where may be NULL. */
    ck_assert_int_eq(zs_listen_parse_list("0:26", "x", NULL, &v, &n, &e), 0);
    ck_assert_int_eq(n, 6);
    ck_assert_str_eq(v[5].key, "inet:0.0.0.0:26");
    ck_assert_ptr_null(v[5].where);

    /* Nothing but blanks and commas: no entry, no error. */
    ck_assert_int_eq(zs_listen_parse_list(" , ,, ", "x", "a.cf:4", &v, &n, &e), 0);
    ck_assert_int_eq(zs_listen_parse_list("", "x", "a.cf:5", &v, &n, &e), 0);
    ck_assert_int_eq(n, 6);
    ck_assert_uint_eq(e.n, 0);
    zs_listen_free_array(v, n);
    free(list);
}
END_TEST

START_TEST(test_list_errors)
{
    zs_listen *v = NULL;
    int n = 0;
    zs_errs e = { 0 };
    ck_assert_int_eq(zs_listen_parse_list("0:25, localhost:26, 0:0 , [::1]:27, ::1:28", "svc", "/etc/m/a.cf:7", &v, &n, &e),
                     -1);
    ck_assert_uint_eq(e.n, 3);
    ASSERT_ERR(&e, 0, "/etc/m/a.cf:7: server-service: 'localhost:26': 'localhost' is not a numeric address (host "
               "names are not resolved at start-up)");
    ASSERT_ERR(&e, 1, "/etc/m/a.cf:7: server-service: '0:0': port 0 out of range 1..65535");
    ASSERT_ERR(&e, 2, "/etc/m/a.cf:7: server-service: '::1:28': an IPv6 address needs brackets: [ADDRESS]:PORT");
    /* The good entries are still parsed (the caller decides; every error is reported). */
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(v[0].key, "inet:0.0.0.0:25");
    ck_assert_str_eq(v[1].key, "inet6:[::1]:27");

    ck_assert_int_eq(zs_listen_parse_list("0:99999", "svc", NULL, &v, &n, &e), -1);
    ASSERT_ERR(&e, 3, "server-service: '0:99999': port 99999 out of range 1..65535");
    ck_assert_int_eq(n, 2);
    zs_listen_free_array(v, n);
    zs_errs_free(&e);
}
END_TEST

/* ---- binding ---- */

/* A port nobody listens on right now (the kernel's choice). */
static int free_port(int family)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_storage ss = { .ss_family = (sa_family_t)family };
    socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&ss, len), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    int port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
    close(fd);
    return port;
}

static void assert_listening(int fd)
{
    int on = 0;
    socklen_t len = sizeof(on);
    ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len), 0);
    ck_assert_int_eq(on, 1);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
}

static void bind_inet(const char *fmt, int family)
{
    char entry[64], err[300] = "";
    int port = free_port(family);
    snprintf(entry, sizeof(entry), fmt, port);
    zs_listen l;
    parse_ok(entry, &l);
    int fd = zs_listen_bind(&l, 16, 0666, err, sizeof(err));
    ck_assert_msg(fd >= 0, "%s", err);
    assert_listening(fd);
    ck_assert_int_eq(zs_listen_fd_type(fd), zvar_tcp_listen_type_inet);
    int on = 0;
    socklen_t len = sizeof(on);
    ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, &len), 0);
    ck_assert_int_eq(on, 1);
    /* A client connects (the backlog takes it before any accept). */
    int c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(connect(c, (struct sockaddr *)&l.sa, l.salen), 0);
    close(c);
    /* The same address twice: bind fails with a message naming the entry. */
    char want[300];
    snprintf(want, sizeof(want), "%s: cannot listen: %s", entry, strerror(EADDRINUSE));
    ck_assert_int_eq(zs_listen_bind(&l, 16, 0666, err, sizeof(err)), -1);
    ck_assert_str_eq(err, want);
    close(fd);
    zs_listen_free(&l);
}

START_TEST(test_bind_inet)
{
    bind_inet("127.0.0.1:%d", AF_INET);
}
END_TEST

START_TEST(test_bind_inet6)
{
    bind_inet("[::1]:%d", AF_INET6);
}
END_TEST

/* `0:P` and `[::]:P` can both be listed: IPv6 sockets are IPV6_V6ONLY. */
START_TEST(test_bind_v4_and_v6_any)
{
    int port = free_port(AF_INET);
    char e4[32], e6[32], err[300] = "";
    snprintf(e4, sizeof(e4), "0:%d", port);
    snprintf(e6, sizeof(e6), "[::]:%d", port);
    zs_listen l4, l6;
    parse_ok(e4, &l4);
    parse_ok(e6, &l6);
    ck_assert_str_ne(l4.key, l6.key);
    int f4 = zs_listen_bind(&l4, 16, 0666, err, sizeof(err));
    ck_assert_msg(f4 >= 0, "%s", err);
    int f6 = zs_listen_bind(&l6, 16, 0666, err, sizeof(err));
    ck_assert_msg(f6 >= 0, "%s", err);
    int on = 0;
    socklen_t len = sizeof(on);
    ck_assert_int_eq(getsockopt(f6, IPPROTO_IPV6, IPV6_V6ONLY, &on, &len), 0);
    ck_assert_int_eq(on, 1);
    close(f4);
    close(f6);
    zs_listen_free(&l4);
    zs_listen_free(&l6);
}
END_TEST

START_TEST(test_bind_unix)
{
    char *path = zs_xasprintf("%s/u.sock", tmp), err[300] = "";
    zs_listen l;
    parse_ok(path, &l);
    int fd = zs_listen_bind(&l, 16, 0660, err, sizeof(err));
    ck_assert_msg(fd >= 0, "%s", err);
    assert_listening(fd);
    ck_assert_int_eq(zs_listen_fd_type(fd), zvar_tcp_listen_type_unix);
    struct stat st;
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_int_eq(st.st_mode & 07777, 0660);

    /* In use: refused, the file left alone. */
    char *want = zs_xasprintf("%s: '%s' is in use by another process", path, path);
    ck_assert_int_eq(zs_listen_bind(&l, 16, 0660, err, sizeof(err)), -1);
    ck_assert_str_eq(err, want);
    free(want);
    ck_assert_int_eq(lstat(path, &st), 0);

    /* Its owner gone, the socket file is stale: removed and bound again, with the new mode. */
    close(fd);
    ck_assert_int_eq(lstat(path, &st), 0);
    fd = zs_listen_bind(&l, 16, 0600, err, sizeof(err));
    ck_assert_msg(fd >= 0, "%s", err);
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0600);
    close(fd);
    zs_listen_free(&l);

    /* Never removes a file that is not a socket. */
    char *file = zs_xasprintf("%s/plain", tmp);
    int w = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ck_assert_int_ge(w, 0);
    ck_assert_int_eq(write(w, "keep", 4), 4);
    close(w);
    char *e = zs_xasprintf("local:%s", file);
    parse_ok(e, &l);
    want = zs_xasprintf("%s: '%s' exists and is not a socket (not removing it)", e, file);
    ck_assert_int_eq(zs_listen_bind(&l, 16, 0666, err, sizeof(err)), -1);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(lstat(file, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    ck_assert_int_eq(st.st_size, 4);
    zs_listen_free(&l);
    free(want);
    free(e);
    free(file);
    free(path);
}
END_TEST

START_TEST(test_bind_fifo)
{
    char *path = zs_xasprintf("%s/f", tmp), *e = zs_xasprintf("fifo:%s", path), err[300] = "";
    zs_listen l;
    parse_ok(e, &l);
    int fd = zs_listen_bind(&l, 16, 0640, err, sizeof(err));
    ck_assert_msg(fd >= 0, "%s", err);
    ck_assert_int_eq(zs_listen_fd_type(fd), zvar_tcp_listen_type_fifo);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    int fl = fcntl(fd, F_GETFL);
    ck_assert(fl & O_NONBLOCK);
    ck_assert_int_eq(fl & O_ACCMODE, O_RDWR);
    struct stat st;
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert(S_ISFIFO(st.st_mode));
    ck_assert_int_eq(st.st_mode & 07777, 0640);
    /* A writer's bytes come out of the fd; empty, it does not block. */
    char buf[16];
    ck_assert_int_eq(read(fd, buf, sizeof(buf)), -1);
    ck_assert_int_eq(errno, EAGAIN);
    int w = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    ck_assert_int_ge(w, 0);
    ck_assert_int_eq(write(w, "hello", 5), 5);
    ck_assert_int_eq(read(fd, buf, sizeof(buf)), 5);
    ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
    close(w);
    /* An existing fifo is reused. */
    int fd2 = zs_listen_bind(&l, 16, 0600, err, sizeof(err));
    ck_assert_msg(fd2 >= 0, "%s", err);
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0600);
    close(fd2);
    close(fd);
    zs_listen_free(&l);

    /* A file that is not a fifo is refused and left alone. */
    char *file = zs_xasprintf("%s/plain", tmp);
    w = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ck_assert_int_ge(w, 0);
    close(w);
    free(e);
    e = zs_xasprintf("fifo:%s", file);
    parse_ok(e, &l);
    char *want = zs_xasprintf("%s: '%s' exists and is not a fifo", e, file);
    ck_assert_int_eq(zs_listen_bind(&l, 16, 0666, err, sizeof(err)), -1);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(lstat(file, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    zs_listen_free(&l);
    free(want);
    free(file);
    free(e);
    free(path);
}
END_TEST

START_TEST(test_fd_type_other)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(zs_listen_fd_type(fd), -1);
    close(fd);
    ck_assert_int_eq(zs_listen_fd_type(fd), -1);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(zs_listen_fd_type(sv[0]), zvar_tcp_listen_type_unix);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* The mode comes from bind itself, whatever the process umask, and the umask is restored. */
START_TEST(test_bind_unix_mode_any_umask)
{
    static const mode_t umasks[] = { 0, 022, 077, 0777 };
    static const unsigned modes[] = { 0666, 0600, 0660, 0620, 0 };
    char err[300] = "";
    for (size_t u = 0; u < sizeof(umasks) / sizeof(*umasks); u++) {
        for (size_t k = 0; k < sizeof(modes) / sizeof(*modes); k++) {
            char *path = zs_xasprintf("%s/m%zu-%zu.sock", tmp, u, k);
            zs_listen l;
            parse_ok(path, &l);
            mode_t old = umask(umasks[u]);
            int fd = zs_listen_bind(&l, 16, modes[k], err, sizeof(err));
            mode_t after = umask(old);
            ck_assert_msg(fd >= 0, "%s", err);
            ck_assert_int_eq(after, umasks[u]);
            struct stat st;
            ck_assert_int_eq(lstat(path, &st), 0);
            ck_assert_msg((st.st_mode & 07777) == modes[k], "umask %03o mode %03o: got %03o", umasks[u], modes[k],
                          st.st_mode & 07777);
            close(fd);
            zs_listen_free(&l);
            free(path);
        }
    }
}
END_TEST

/* A fifo path that is a symlink (to a fifo or to a file) is neither followed nor chmodded; a
 * fifo with a second hard link is refused. */
START_TEST(test_bind_fifo_symlink_and_link)
{
    char err[300] = "";
    char *target = zs_xasprintf("%s/target", tmp), *lpath = zs_xasprintf("%s/f", tmp);
    char *e = zs_xasprintf("fifo:%s", lpath);
    zs_listen l;
    parse_ok(e, &l);
    int w = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    ck_assert_int_ge(w, 0);
    close(w);
    ck_assert_int_eq(symlink(target, lpath), 0);
    ck_assert_int_eq(zs_listen_bind(&l, 16, 0666, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "exists and is not a fifo") != NULL, "%s", err);
    struct stat st;
    ck_assert_int_eq(stat(target, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0600);
    /* Even a symlink to a real fifo. */
    ck_assert_int_eq(unlink(target), 0);
    ck_assert_int_eq(mkfifo(target, 0600), 0);
    ck_assert_int_eq(zs_listen_bind(&l, 16, 0666, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "exists and is not a fifo") != NULL, "%s", err);
    ck_assert_int_eq(stat(target, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0600);
    /* A hard lpath to somebody's fifo. */
    ck_assert_int_eq(unlink(lpath), 0);
    ck_assert_int_eq(link(target, lpath), 0);
    ck_assert_int_eq(zs_listen_bind(&l, 16, 0666, err, sizeof(err)), -1);
    char *want = zs_xasprintf("%s: '%s' has 2 hard links (a fifo linked from elsewhere is not ours to chmod)", e, lpath);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(stat(target, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0600);
    free(want);
    zs_listen_free(&l);
    free(e);
    free(lpath);
    free(target);
}
END_TEST

static void check_dir_err(const char *entry, uid_t allow, const char *want_fmt, ...)
{
    zs_listen l;
    char err[PATH_MAX + 400] = "";
    parse_ok(entry, &l);
    l.where = zs_xstrdup("x.cf:3");
    int rc = zs_listen_check_dir(&l, allow, err, sizeof(err));
    if (!want_fmt) {
        ck_assert_msg(rc == 0, "%s refused: %s", entry, err);
    } else {
        va_list ap;
        char want[PATH_MAX + 400];
        va_start(ap, want_fmt);
        vsnprintf(want, sizeof(want), want_fmt, ap);
        va_end(ap);
        ck_assert_int_eq(rc, -1);
        ck_assert_str_eq(err, want);
    }
    zs_listen_free(&l);
}

/* Directories another user could write are refused (only testable as root, which can chown). */
START_TEST(test_check_dir)
{
    char *d = zs_xasprintf("%s/d", tmp), *sock = zs_xasprintf("%s/d/s.sock", tmp);
    char *fifo = zs_xasprintf("fifo:%s/d/f", tmp), *deep = zs_xasprintf("%s/d/sub/s.sock", tmp);
    ck_assert_int_eq(mkdir(d, 0755), 0);
    check_dir_err(sock, (uid_t)-1, NULL);
    check_dir_err("127.0.0.1:25", (uid_t)-1, NULL);
    ck_assert_int_eq(chmod(d, 0757), 0);
    check_dir_err(sock, (uid_t)-1, "x.cf:3: server-service: '%s': directory %s is writable by others (mode 0757) "
                                   "and not sticky", sock, d);
    check_dir_err(fifo, (uid_t)-1, "x.cf:3: server-service: '%s': directory %s is writable by others (mode 0757) "
                                   "and not sticky", fifo, d);
    ck_assert_int_eq(chmod(d, 01777), 0);
    check_dir_err(sock, (uid_t)-1, NULL);
    if (geteuid() == 0) {
        ck_assert_int_eq(chmod(d, 0775), 0);
        ck_assert_int_eq(chown(d, 0, 4242), 0);
        check_dir_err(sock, (uid_t)-1, "x.cf:3: server-service: '%s': directory %s is writable by group 4242 "
                                       "(mode 0775) and not sticky", sock, d);
        ck_assert_int_eq(chown(d, 0, 0), 0);
        check_dir_err(sock, (uid_t)-1, NULL);
        ck_assert_int_eq(chmod(d, 0755), 0);
        ck_assert_int_eq(chown(d, 4242, 4242), 0);
        check_dir_err(sock, (uid_t)-1, "x.cf:3: server-service: '%s': directory %s is owned by uid 4242, not by "
                                       "root, masterd's user or the service's user", sock, d);
        check_dir_err(sock, 4242, NULL); /* the service's own user */
        /* A directory above counts too, even when the last one is root's. */
        char *sub = zs_xasprintf("%s/d/sub", tmp);
        ck_assert_int_eq(mkdir(sub, 0755), 0);
        check_dir_err(deep, (uid_t)-1, "x.cf:3: server-service: '%s': directory %s is owned by uid 4242, not by "
                                       "root, masterd's user or the service's user", deep, d);
        ck_assert_int_eq(chown(d, 0, 0), 0);
        check_dir_err(deep, (uid_t)-1, NULL);
        /* Reached through a symlink: the directories it resolves to are checked too. */
        char *other = zs_xasprintf("%s/other", tmp), *ln = zs_xasprintf("%s/d/ln", tmp);
        char *via = zs_xasprintf("%s/d/ln/s.sock", tmp);
        ck_assert_int_eq(mkdir(other, 0755), 0);
        ck_assert_int_eq(chown(other, 4242, 0), 0);
        ck_assert_int_eq(symlink(other, ln), 0);
        check_dir_err(via, (uid_t)-1, "x.cf:3: server-service: '%s': directory %s is owned by uid 4242, not by "
                                      "root, masterd's user or the service's user", via, ln);
        free(other);
        free(ln);
        free(via);
        free(sub);
    }
    free(d);
    free(sock);
    free(fifo);
    free(deep);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("listen");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_loop_test(tc, test_good_inet, 0, (int)(sizeof(good_inet) / sizeof(*good_inet)));
    tcase_add_test(tc, test_good_unix_and_fifo);
    tcase_add_test(tc, test_unix_relative_same_key);
    tcase_add_test(tc, test_unix_path_length);
    tcase_add_loop_test(tc, test_bad_entry, 0, (int)(sizeof(bad) / sizeof(*bad)));
    tcase_add_test(tc, test_missing_unix_dir);
    tcase_add_test(tc, test_list_good);
    tcase_add_test(tc, test_list_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("bind");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_bind_inet);
    tcase_add_test(tc, test_bind_inet6);
    tcase_add_test(tc, test_bind_v4_and_v6_any);
    tcase_add_test(tc, test_bind_unix);
    tcase_add_test(tc, test_bind_fifo);
    tcase_add_test(tc, test_fd_type_other);
    tcase_add_test(tc, test_bind_unix_mode_any_umask);
    tcase_add_test(tc, test_bind_fifo_symlink_and_link);
    tcase_add_test(tc, test_check_dir);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(suite());
}
