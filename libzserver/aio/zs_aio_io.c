/*
 * zs_aio_io.c — lib-zc's buffered aio (zc.h): zaio_t, one non-blocking fd on the process's libev
 * loop with a read cache and a write cache, and one request at a time (read, readn, gets,
 * readable, writeable, cache_flush, sleep) whose callback runs from the loop.
 *
 * Semantics follow lib-zc's src/event/aio.c: a request never calls back from inside the call
 * that made it (it is started from a zero timer, so a chain of requests cannot recurse); a
 * read request is answered from the cache first; the result is the byte count, -1 for an
 * error or end of file, -2 for a timeout with nothing transferred (-1 when some was); the
 * callback may free the aio or make the next request.  Each aio owns one ev_io and one
 * ev_timer (the request's timeout, the sleep, or the start kick).
 * Invariant: a watcher of aio is active only while a request is in progress (aio->cb set).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ev.h>
#include "core/zs_err.h"
#include "server/zs_server.h"
#include "zc.h"

#define RBUF 4096 /* one read() at most */

enum { A_NONE, A_READABLE, A_WRITEABLE, A_READ, A_READN, A_DELIM, A_FLUSH, A_SLEEP };

/* Bytes data[off .. off+len) of a buffer of cap bytes. */
typedef struct cache {
    char *data;
    int off, len, cap;
} cache;

struct zaio_t {
    int fd;
    zaio_base_t *base;
    ev_io io;
    ev_timer tm;
    int kicking;    /* tm is the start kick, not a timeout */
    int action, want, delim, sleep_s;
    int rto, wto;   /* seconds, < 0: none */
    int io_ok;      /* this request moved some bytes (a timeout then is -1, not -2) */
    int ret;
    void (*cb)(zaio_t *aio);
    void *ctx;
    cache rc, wc;
};

/* ---- caches ---- */

static void cache_append(cache *c, const void *p, int n)
{
    if (n <= 0)
        return;
    if (c->off + c->len + n > c->cap) {
        if (c->off) { /* slide down first */
            memmove(c->data, c->data + c->off, (size_t)c->len);
            c->off = 0;
        }
        if (c->len + n > c->cap) {
            long cap = c->cap ? c->cap : 256;
            while (cap < (long)c->len + n)
                cap *= 2;
            if (cap > (1L << 30))
                zfatal("zaio: cache over 1 GiB");
            char *d = realloc(c->data, (size_t)cap);
            if (!d)
                zfatal("zaio: out of memory for the cache");
            c->data = d;
            c->cap = (int)cap;
        }
    }
    memcpy(c->data + c->off + c->len, p, (size_t)n);
    c->len += n;
}

/* Takes n bytes (at most what is there) off the front, into out unless NULL. */
static int cache_take(cache *c, char *out, int n)
{
    if (n > c->len)
        n = c->len;
    if (n <= 0)
        return 0;
    if (out)
        memcpy(out, c->data + c->off, (size_t)n);
    c->off += n;
    c->len -= n;
    if (c->len == 0)
        c->off = 0;
    return n;
}

/* ---- the request machine ---- */

static void step(zaio_t *aio, int timed_out);

static void stop_watchers(zaio_t *aio)
{
    struct ev_loop *loop = aio->base->loop;
    ev_io_stop(loop, &aio->io);
    ev_timer_stop(loop, &aio->tm);
    aio->kicking = 0;
}

/* The request is over: the callback runs last, because it may free aio. */
static void done(zaio_t *aio, int ret)
{
    stop_watchers(aio);
    void (*cb)(zaio_t *) = aio->cb;
    aio->cb = NULL;
    aio->action = A_NONE;
    aio->ret = ret;
    cb(aio);
}

/* Waits for the fd to be ready for events, within timeout_s (< 0: none) for this request. */
static void wait_fd(zaio_t *aio, int events, int timeout_s)
{
    struct ev_loop *loop = aio->base->loop;
    if (!ev_is_active(&aio->io) || (aio->io.events & (EV_READ | EV_WRITE)) != events) {
        ev_io_stop(loop, &aio->io);
        ev_io_set(&aio->io, aio->fd, events);
        ev_io_start(loop, &aio->io);
    }
    if (timeout_s >= 0 && !ev_is_active(&aio->tm)) {
        ev_timer_set(&aio->tm, (double)timeout_s, 0.);
        ev_timer_start(loop, &aio->tm);
    }
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    step((zaio_t *)w->data, 0);
}

static void tm_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    zaio_t *aio = w->data;
    int timed_out = !aio->kicking;
    aio->kicking = 0;
    step(aio, timed_out);
}

/* Starts a request: the first step runs from the loop, in this iteration or the next. */
static void begin(zaio_t *aio, int action, void (*cb)(zaio_t *))
{
    if (!cb)
        zfatal("zaio: a request without a callback");
    stop_watchers(aio);
    aio->action = action;
    aio->cb = cb;
    aio->io_ok = 0;
    aio->kicking = 1;
    ev_timer_set(&aio->tm, 0., 0.);
    ev_timer_start(aio->base->loop, &aio->tm);
}

/* Reads what the fd has into the read cache: > 0 bytes read, 0 nothing now, -1 end or error. */
static int fill(zaio_t *aio)
{
    char buf[RBUF];
    for (;;) {
        ssize_t n = read(aio->fd, buf, sizeof(buf));
        if (n > 0) {
            aio->io_ok = 1;
            cache_append(&aio->rc, buf, (int)n);
            return (int)n;
        }
        if (n == 0)
            return -1;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
}

/* How many cached bytes answer the current read request; 0: not enough yet. */
static int satisfied(const zaio_t *aio)
{
    const cache *c = &aio->rc;
    if (c->len == 0)
        return 0;
    switch (aio->action) {
    case A_READ:
        return c->len < aio->want ? c->len : aio->want;
    case A_READN:
        return c->len >= aio->want ? aio->want : 0;
    default: { /* A_DELIM */
        int scan = c->len < aio->want ? c->len : aio->want;
        const char *p = memchr(c->data + c->off, aio->delim, (size_t)scan);
        if (p)
            return (int)(p - (c->data + c->off)) + 1;
        return c->len >= aio->want ? aio->want : 0;
    }
    }
}

static void step_read(zaio_t *aio, int timed_out)
{
    if (aio->want < 1) {
        done(aio, 0);
        return;
    }
    for (;;) {
        int n = satisfied(aio);
        if (n > 0) {
            done(aio, n);
            return;
        }
        if (timed_out) {
            done(aio, aio->io_ok ? -1 : -2);
            return;
        }
        int r = fill(aio);
        if (r < 0) {
            done(aio, -1);
            return;
        }
        if (r == 0) {
            wait_fd(aio, EV_READ, aio->rto);
            return;
        }
    }
}

static void step_flush(zaio_t *aio, int timed_out)
{
    cache *c = &aio->wc;
    while (c->len > 0) {
        if (timed_out) {
            done(aio, aio->io_ok ? -1 : -2);
            return;
        }
        ssize_t n = write(aio->fd, c->data + c->off, (size_t)c->len);
        if (n > 0) {
            aio->io_ok = 1;
            cache_take(c, NULL, (int)n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wait_fd(aio, EV_WRITE, aio->wto);
            return;
        } else {
            done(aio, -1);
            return;
        }
    }
    done(aio, 1);
}

static void step(zaio_t *aio, int timed_out)
{
    switch (aio->action) {
    case A_READ:
    case A_READN:
    case A_DELIM:
        step_read(aio, timed_out);
        break;
    case A_FLUSH:
        step_flush(aio, timed_out);
        break;
    case A_READABLE:
    case A_WRITEABLE:
        if (timed_out) {
            done(aio, -2);
        } else if (ev_is_active(&aio->io) || (aio->action == A_READABLE && aio->rc.len > 0)) {
            done(aio, 1); /* the fd reported ready (or a read would be answered from the cache) */
        } else {
            int rd = aio->action == A_READABLE;
            wait_fd(aio, rd ? EV_READ : EV_WRITE, rd ? aio->rto : aio->wto);
        }
        break;
    case A_SLEEP:
        if (timed_out || aio->sleep_s < 1) {
            done(aio, 1);
        } else {
            ev_timer_set(&aio->tm, (double)aio->sleep_s, 0.);
            ev_timer_start(aio->base->loop, &aio->tm);
        }
        break;
    default:
        stop_watchers(aio);
        break;
    }
}

/* ---- the API (zc.h) ---- */

zaio_t *zaio_create_by_fd(int fd, zaio_base_t *aiobase)
{
    zaio_base_t *base = aiobase ? aiobase : zvar_default_aio_base;
    if (!base || !base->loop)
        zfatal("zaio_create: no event loop yet (create aios from the hooks or from callbacks)");
    zaio_t *aio = zs_xcalloc(1, sizeof(*aio));
    aio->fd = fd;
    aio->base = base;
    aio->rto = aio->wto = -1;
    aio->ret = 1;
    ev_io_init(&aio->io, io_cb, fd < 0 ? 0 : fd, EV_READ);
    aio->io.data = aio;
    ev_init(&aio->tm, tm_cb);
    aio->tm.data = aio;
    return aio;
}

void zaio_free(zaio_t *aio, int close_fd_and_release_ssl)
{
    if (!aio)
        return;
    stop_watchers(aio);
    free(aio->rc.data);
    free(aio->wc.data);
    if (close_fd_and_release_ssl && aio->fd >= 0)
        close(aio->fd);
    free(aio);
}

void zaio_set_read_wait_timeout(zaio_t *aio, int t) { aio->rto = t; }
void zaio_set_write_wait_timeout(zaio_t *aio, int t) { aio->wto = t; }
int zaio_get_result(zaio_t *aio) { return aio->ret; }
int zaio_get_fd(zaio_t *aio) { return aio->fd; }
void zaio_set_context(zaio_t *aio, const void *ctx) { aio->ctx = (void *)ctx; }
void *zaio_get_context(zaio_t *aio) { return aio->ctx; }
zaio_base_t *zaio_get_aio_base(zaio_t *aio) { return aio->base; }
int zaio_get_read_cache_size(zaio_t *aio) { return aio->rc.len; }
int zaio_get_write_cache_size(zaio_t *aio) { return aio->wc.len; }

void zaio_get_read_cache(zaio_t *aio, zbuf_t *bf, int strict_len)
{
    if (strict_len > aio->rc.len)
        strict_len = aio->rc.len;
    if (strict_len <= 0)
        return;
    zbuf_memcat(bf, aio->rc.data + aio->rc.off, strict_len); /* a ZSTACK_BUF keeps what fits */
    cache_take(&aio->rc, NULL, strict_len);
}

void zaio_get_read_cache_to_buf(zaio_t *aio, char *buf, int strict_len)
{
    cache_take(&aio->rc, buf, strict_len);
}

static void need_fd(zaio_t *aio, const char *what)
{
    if (aio->fd < 0)
        zfatal("zaio_%s: this aio has no fd (made for timers only)", what);
}

void zaio_readable(zaio_t *aio, void (*callback)(zaio_t *aio))
{
    need_fd(aio, "readable");
    begin(aio, A_READABLE, callback);
}

void zaio_writeable(zaio_t *aio, void (*callback)(zaio_t *aio))
{
    need_fd(aio, "writeable");
    begin(aio, A_WRITEABLE, callback);
}

void zaio_read(zaio_t *aio, int max_len, void (*callback)(zaio_t *aio))
{
    need_fd(aio, "read");
    aio->want = max_len;
    begin(aio, A_READ, callback);
}

void zaio_readn(zaio_t *aio, int strict_len, void (*callback)(zaio_t *aio))
{
    need_fd(aio, "readn");
    aio->want = strict_len;
    begin(aio, A_READN, callback);
}

void zaio_read_delimiter(zaio_t *aio, int delimiter, int max_len, void (*callback)(zaio_t *aio))
{
    need_fd(aio, "read_delimiter");
    aio->want = max_len;
    aio->delim = delimiter;
    begin(aio, A_DELIM, callback);
}

void zaio_cache_write(zaio_t *aio, const void *buf, int len)
{
    cache_append(&aio->wc, buf, len);
}

void zaio_cache_puts(zaio_t *aio, const char *s)
{
    cache_append(&aio->wc, s, (int)strlen(s));
}

void zaio_cache_printf_1024(zaio_t *aio, const char *fmt, ...)
{
    ZSTACK_BUF(bf, 1024);
    va_list ap;
    va_start(ap, fmt);
    zbuf_vprintf_1024(bf, fmt, ap);
    va_end(ap);
    cache_append(&aio->wc, zbuf_data(bf), zbuf_len(bf));
}

void zaio_cache_flush(zaio_t *aio, void (*callback)(zaio_t *aio))
{
    need_fd(aio, "cache_flush");
    begin(aio, A_FLUSH, callback);
}

void zaio_sleep(zaio_t *aio, void (*callback)(zaio_t *aio), int timeout)
{
    aio->sleep_s = timeout;
    begin(aio, A_SLEEP, callback);
}

void zaio_base_stop_notify(zaio_base_t *eb)
{
    zs_server_stop_notify(0); /* in a server: closes the listeners, tells the master, exits */
    if (eb && eb->loop)
        ev_break(eb->loop, EVBREAK_ALL);
}
