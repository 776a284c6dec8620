/*
 * test_libzc.c — lib-zc compatibility pieces (zc.h): zbuf_t, the units parser shared with the
 * master's duration keys (core/zs_units.h), zstream over a socketpair (plain and inside
 * coroutines, where a read that waits lets the others run), and the buffered aio over a
 * socketpair on a libev loop (results, cache, timeouts, callbacks only from the loop).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <ev.h>
#include "check_run.h"
#include "co/zs_co.h"
#include "core/zs_units.h"
#include "server/zs_server.h"
#include "zc_coroutine.h"

/* ---- zbuf ---- */

START_TEST(test_zbuf_grows_and_trims)
{
    zbuf_t *bf = zbuf_create(0);
    ck_assert_int_eq(zbuf_len(bf), 0);
    ck_assert_str_eq(zbuf_data(bf), "");
    for (int i = 0; i < 10000; i++)
        zbuf_memcat(bf, "0123456789", 10);
    ck_assert_int_eq(zbuf_len(bf), 100000);
    ck_assert_int_eq(zbuf_data(bf)[100000], 0);
    ck_assert_int_eq(memcmp(zbuf_data(bf) + 99990, "0123456789", 10), 0);
    zbuf_reset(bf);
    ck_assert_int_eq(zbuf_len(bf), 0);
    zbuf_puts(bf, "line\r\n\r\n");
    zbuf_trim_right_rn(bf);
    ck_assert_str_eq(zbuf_data(bf), "line");
    zbuf_reset(bf);
    zbuf_puts(bf, "\r\n");
    zbuf_trim_right_rn(bf);
    ck_assert_int_eq(zbuf_len(bf), 0);
    zbuf_put(bf, 'x');
    ck_assert_str_eq(zbuf_data(bf), "x");
    zbuf_printf_1024(bf, "%d-%s", 42, "y");
    ck_assert_str_eq(zbuf_data(bf), "x42-y");
    char big[3000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    zbuf_reset(bf);
    zbuf_printf_1024(bf, "%s", big); /* cut at 1024, as lib-zc */
    ck_assert_int_eq(zbuf_len(bf), 1024);
    zbuf_free(bf);
}
END_TEST

START_TEST(test_zstack_buf_keeps_what_fits)
{
    ZSTACK_BUF(bf, 8);
    ck_assert_int_eq(zbuf_len(bf), 0);
    zbuf_memcat(bf, "0123456789abcdefghij", 20);
    ck_assert_int_eq(zbuf_len(bf), 8);
    ck_assert_str_eq(zbuf_data(bf), "01234567");
    ck_assert_int_eq(zbuf_need_space(bf, 1), -1);
    zbuf_reset(bf);
    ck_assert_int_eq(zbuf_need_space(bf, 8), 0);
}
END_TEST

/* ---- units ---- */

START_TEST(test_units)
{
    static const struct { const char *s; long want; } secs[] = {
        { "7", 7 }, { "5s", 5 }, { "2m", 120 }, { "1h", 3600 }, { "1d", 86400 }, { "1w", 604800 }, { "3M", 180 },
        { "+4s", 4 }, { "0", 0 },
    }, sizes[] = { { "512", 512 }, { "5b", 5 }, { "64k", 65536 }, { "8M", 8L << 20 }, { "1g", 1L << 30 } };
    char why[128];
    long v;
    for (size_t i = 0; i < sizeof(secs) / sizeof(*secs); i++) {
        ck_assert_msg(zs_parse_seconds(secs[i].s, 0, 1L << 40, &v, why, sizeof(why)) == 0, "%s: %s", secs[i].s, why);
        ck_assert_int_eq(v, secs[i].want);
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
        ck_assert_msg(zs_parse_size(sizes[i].s, 0, 1L << 40, &v, why, sizeof(why)) == 0, "%s: %s", sizes[i].s, why);
        ck_assert_int_eq(v, sizes[i].want);
    }
    ck_assert_int_eq(zs_parse_seconds("5x", 0, 100, &v, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "unknown unit 'x' (units: s m h d w)");
    ck_assert_int_eq(zs_parse_size("3t", 0, 100, &v, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "unknown unit 't' (units: b k m g)");
    const char *bad[] = { "", "s", "5ms", "1.5h", " 5", "5 ", "0x10", "--1" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        ck_assert_msg(zs_parse_seconds(bad[i], 0, 100, &v, why, sizeof(why)) == -1, "'%s' accepted", bad[i]);
        ck_assert_str_eq(why, "expected a whole number and an optional unit (s m h d w)");
    }
    ck_assert_int_eq(zs_parse_seconds("2m", 0, 100, &v, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "out of range 0..100");
    ck_assert_int_eq(zs_parse_seconds("-1s", 0, 100, &v, why, sizeof(why)), -1);
    ck_assert_int_eq(zs_parse_seconds("9223372036854775807w", 0, 1L << 62, &v, why, sizeof(why)), -1);
    ck_assert_int_eq(zs_parse_size("99999999999999999g", 0, 1L << 62, &v, why, sizeof(why)), -1);
}
END_TEST

/* ---- zstream ---- */

static int pair(int sv[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
}

START_TEST(test_zstream_plain)
{
    int sv[2];
    ck_assert_int_eq(pair(sv), 0);
    zstream_t *fp = zstream_open_fd(sv[0]);
    zbuf_t *bf = zbuf_create(4);
    ck_assert_int_eq(write(sv[1], "line1\nline2\npartial", 19), 19);
    ck_assert_int_eq(zstream_gets(fp, bf, 100), 6);
    ck_assert_str_eq(zbuf_data(bf), "line1\n");
    ck_assert_int_eq(zstream_gets(fp, bf, 3), 3); /* max_len without the delimiter */
    ck_assert_str_eq(zbuf_data(bf), "lin");
    ck_assert_int_eq(zstream_gets(fp, bf, 100), 3);
    ck_assert_str_eq(zbuf_data(bf), "e2\n");
    ck_assert_int_eq(shutdown(sv[1], SHUT_WR), 0);
    ck_assert_int_eq(zstream_gets(fp, bf, 100), 7); /* the last line, cut by end of file */
    ck_assert_str_eq(zbuf_data(bf), "partial");
    ck_assert(zstream_is_exception(fp)); /* as lib-zc: end of file was seen reading it */
    ck_assert_int_eq(zstream_gets(fp, bf, 100), 0);
    ck_assert(zstream_is_exception(fp));
    ck_assert(zstream_is_eof(fp));
    /* output waits in the buffer until flush */
    ck_assert_int_eq(zstream_puts(fp, "hello "), 6);
    ck_assert_int_eq(zstream_write(fp, "world\n", 6), 6);
    char got[64];
    ck_assert_int_eq(recv(sv[1], got, sizeof(got), MSG_DONTWAIT), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(zstream_flush(fp), 1);
    ck_assert_int_eq(recv(sv[1], got, sizeof(got), 0), 12);
    ck_assert_int_eq(memcmp(got, "hello world\n", 12), 0);
    ck_assert_int_eq(zstream_close(fp, 0), 0);
    zbuf_free(bf);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(test_zstream_read_timeout_and_readn)
{
    int sv[2];
    ck_assert_int_eq(pair(sv), 0);
    zstream_t *fp = zstream_open_fd(sv[0]);
    zbuf_t *bf = zbuf_create(0);
    ck_assert_int_eq(write(sv[1], "abcdefgh", 8), 8);
    ck_assert_int_eq(zstream_readn(fp, bf, 6), 6);
    ck_assert_str_eq(zbuf_data(bf), "abcdef");
    ck_assert_int_eq(zstream_read(fp, bf, 100), 2);
    ck_assert_str_eq(zbuf_data(bf), "gh");
    zstream_set_read_wait_timeout(fp, 1);
    double t0 = zs_co_now();
    ck_assert_int_eq(zstream_gets(fp, bf, 100), -1);
    ck_assert(zs_co_now() - t0 >= 0.9);
    ck_assert(zstream_is_error(fp));
    ck_assert_int_eq(zstream_puts(fp, "x"), -1); /* the error is sticky */
    ck_assert_int_eq(zstream_close(fp, 1), -1);  /* and closes sv[0] */
    ck_assert_int_eq(fcntl(sv[0], F_GETFD), -1);
    zbuf_free(bf);
    close(sv[1]);
}
END_TEST

/* Inside coroutines: the echo side waits in zstream_gets while the client side runs; the
 * echo's answer goes out when it waits for the next line (a read flushes first). */
static int co_sv[2];
static char co_seen[256];
static void *co_echo(void *ctx)
{
    (void)ctx;
    zstream_t *fp = zstream_open_fd(co_sv[0]);
    zbuf_t *line = zbuf_create(0);
    while (!zstream_is_exception(fp)) {
        if (zstream_gets(fp, line, 1024) > 0)
            zstream_write(fp, zbuf_data(line), zbuf_len(line));
    }
    zstream_close(fp, 1);
    zbuf_free(line);
    return NULL;
}

static void *co_client(void *ctx)
{
    (void)ctx;
    zstream_t *fp = zstream_open_fd(co_sv[1]);
    zbuf_t *line = zbuf_create(0);
    for (int i = 0; i < 3; i++) {
        zstream_printf_1024(fp, "ping %d\n", i);
        zstream_flush(fp);
        ck_assert_int_gt(zstream_gets(fp, line, 1024), 0);
        strncat(co_seen, zbuf_data(line), sizeof(co_seen) - strlen(co_seen) - 1);
    }
    zstream_close(fp, 1); /* the echo side sees end of file */
    zbuf_free(line);
    return NULL;
}

START_TEST(test_zstream_in_coroutines)
{
    ck_assert_int_eq(pair(co_sv), 0);
    ck_assert_int_eq(zcoroutine_go(co_echo, NULL, -1), 0);
    ck_assert_int_eq(zcoroutine_go(co_client, NULL, -1), 0);
    zs_co_run();
    ck_assert_str_eq(co_seen, "ping 0\nping 1\nping 2\n");
    ck_assert_int_eq(zs_co_live(), 0);
}
END_TEST

/* ---- zaio ---- */

static struct ev_loop *loop;
static int results[16], nresults;
static zbuf_t *got;
static int aio_sv[2];

static void guard_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
    ck_abort_msg("the loop ran 10 s");
}

static void aio_setup(void)
{
    loop = ev_default_loop(0);
    zs_server_adopt_loop(loop);
    nresults = 0;
    got = zbuf_create(0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, aio_sv), 0);
}

static void run_loop(void)
{
    static ev_timer guard;
    ev_timer_init(&guard, guard_cb, 10., 0.);
    ev_timer_start(loop, &guard);
    ev_unref(loop);
    ev_run(loop, 0);
    ev_ref(loop);
    ev_timer_stop(loop, &guard);
}

/* Each callback records the result and takes the request's bytes. */
static void record(zaio_t *aio)
{
    int r = zaio_get_result(aio);
    results[nresults++] = r;
    if (r > 0 && zaio_get_read_cache_size(aio) >= r)
        zaio_get_read_cache(aio, got, r);
}

static void step3(zaio_t *aio)
{
    record(aio); /* -2: the timeout, nothing read */
    zaio_free(aio, 1);
}

static void step2(zaio_t *aio)
{
    record(aio);
    zaio_set_read_wait_timeout(aio, 1);
    zaio_gets(aio, 100, step3);
}

static void step1(zaio_t *aio)
{
    record(aio);
    zaio_gets(aio, 100, step2); /* answered from the cache */
}

START_TEST(test_zaio_gets_cache_and_timeout)
{
    aio_setup();
    ck_assert_int_eq(write(aio_sv[1], "abc\ndef\n", 8), 8);
    zaio_t *aio = zaio_create(aio_sv[0], NULL);
    zaio_gets(aio, 100, step1);
    ck_assert_int_eq(nresults, 0); /* never from inside the request */
    double t0 = ev_time();
    run_loop();
    ck_assert_int_eq(nresults, 3);
    ck_assert_int_eq(results[0], 4);
    ck_assert_int_eq(results[1], 4);
    ck_assert_int_eq(results[2], -2);
    ck_assert(ev_time() - t0 >= 0.9);
    ck_assert_str_eq(zbuf_data(got), "abc\ndef\n");
    ck_assert_int_eq(fcntl(aio_sv[0], F_GETFD), -1); /* zaio_free(aio, 1) closed it */
}
END_TEST

static void readn_done(zaio_t *aio)
{
    record(aio);
    results[nresults++] = zaio_get_read_cache_size(aio);
    zaio_free(aio, 0);
}

static void maxlen_done(zaio_t *aio)
{
    record(aio);
    zaio_readn(aio, 6, readn_done);
}

START_TEST(test_zaio_max_len_readn_and_late_data)
{
    aio_setup();
    zaio_t *aio = zaio_create(aio_sv[0], NULL);
    ck_assert_int_eq(write(aio_sv[1], "0123", 4), 4);
    zaio_gets(aio, 3, maxlen_done); /* no newline: max_len bytes */
    ev_run(loop, EVRUN_NOWAIT);
    ev_run(loop, EVRUN_NOWAIT);
    ck_assert_int_eq(nresults, 1);
    /* readn waits for the rest: 1 byte cached, 5 more arrive */
    ck_assert_int_eq(write(aio_sv[1], "4567xy", 6), 6);
    run_loop();
    ck_assert_int_eq(nresults, 3);
    ck_assert_int_eq(results[0], 3);
    ck_assert_int_eq(results[1], 6);
    ck_assert_int_eq(results[2], 1); /* "y" stays cached */
    ck_assert_str_eq(zbuf_data(got), "01234567x");
    close(aio_sv[0]);
}
END_TEST

static void eof_done(zaio_t *aio)
{
    record(aio);
    zaio_free(aio, 1);
}

START_TEST(test_zaio_end_of_file)
{
    aio_setup();
    zaio_t *aio = zaio_create(aio_sv[0], NULL);
    ck_assert_int_eq(write(aio_sv[1], "no newline", 10), 10);
    close(aio_sv[1]);
    zaio_gets(aio, 100, eof_done);
    run_loop();
    ck_assert_int_eq(nresults, 1);
    ck_assert_int_eq(results[0], -1);
}
END_TEST

static void flush_done(zaio_t *aio)
{
    record(aio);
    if (nresults == 1) {
        /* now one that cannot go out: 4 MB to a peer that does not read, 1 s to write */
        static char big[4 << 20];
        zaio_set_write_wait_timeout(aio, 1);
        zaio_cache_write(aio, big, sizeof(big));
        ck_assert_int_eq(zaio_get_write_cache_size(aio), (int)sizeof(big));
        zaio_cache_flush(aio, flush_done);
        return;
    }
    zaio_free(aio, 1);
}

START_TEST(test_zaio_cache_flush_and_write_timeout)
{
    aio_setup();
    zaio_t *aio = zaio_create(aio_sv[0], NULL);
    zaio_cache_puts(aio, "hello ");
    zaio_cache_write(aio, "world\n", 6);
    zaio_cache_printf_1024(aio, "%d\n", 42);
    char buf[64];
    ck_assert_int_eq(recv(aio_sv[1], buf, sizeof(buf), MSG_DONTWAIT), -1); /* nothing before flush */
    zaio_cache_flush(aio, flush_done);
    run_loop();
    ck_assert_int_eq(nresults, 2);
    ck_assert_int_eq(results[0], 1);
    ck_assert_int_eq(results[1], -1); /* timed out after writing some: -1 (nothing: -2) */
    ck_assert_int_eq(recv(aio_sv[1], buf, 15, 0), 15);
    ck_assert_int_eq(memcmp(buf, "hello world\n42\n", 15), 0);
}
END_TEST

static double slept_at[2];
static void slept(zaio_t *aio)
{
    slept_at[nresults] = ev_time();
    record(aio);
    if (nresults == 1)
        zaio_sleep(aio, slept, 0); /* < 1: the next iteration */
    else
        zaio_free(aio, 1);        /* no fd: nothing closed */
}

START_TEST(test_zaio_sleep_and_free_cancels)
{
    aio_setup();
    zaio_t *t = zaio_create(-1, NULL);
    double t0 = ev_time();
    zaio_sleep(t, slept, 1);
    /* a request freed before it ran never calls back */
    zaio_t *gone = zaio_create(aio_sv[0], NULL);
    zaio_gets(gone, 10, eof_done);
    zaio_free(gone, 0);
    run_loop();
    ck_assert_int_eq(nresults, 2);
    ck_assert_int_eq(results[0], 1);
    ck_assert_int_eq(results[1], 1);
    ck_assert(slept_at[0] - t0 >= 0.95);
    ck_assert(slept_at[1] - slept_at[0] < 0.5);
    ck_assert_int_eq(fcntl(aio_sv[0], F_GETFD), FD_CLOEXEC); /* zaio_free(gone, 0) left it open */
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("libzc");
    TCase *tc = tcase_create("buf");
    tcase_add_test(tc, test_zbuf_grows_and_trims);
    tcase_add_test(tc, test_zstack_buf_keeps_what_fits);
    tcase_add_test(tc, test_units);
    suite_add_tcase(s, tc);
    tc = tcase_create("stream");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_zstream_plain);
    tcase_add_test(tc, test_zstream_read_timeout_and_readn);
    tcase_add_test(tc, test_zstream_in_coroutines);
    suite_add_tcase(s, tc);
    tc = tcase_create("aio");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_zaio_gets_cache_and_timeout);
    tcase_add_test(tc, test_zaio_max_len_readn_and_late_data);
    tcase_add_test(tc, test_zaio_end_of_file);
    tcase_add_test(tc, test_zaio_cache_flush_and_write_timeout);
    tcase_add_test(tc, test_zaio_sleep_and_free_cancels);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(suite());
}
