/*
 * zs_stream.c — lib-zc's buffered stream on an fd (zc.h: zstream_*), for coroutine servers.
 * Reads and writes are plain read()/write()/poll(), so inside a coroutine the syscall hooks
 * (zs_co_hook*.c) park only the calling coroutine while it waits; outside one they block as
 * lib-zc's do.  A non-blocking fd is waited for with poll, so EAGAIN never reaches the caller.
 *
 * Semantics follow lib-zc's src/stream/stream.c: reads reset the caller's zbuf first and
 * return the count (0 at end of file with nothing read, -1 on error or timeout); writes are
 * buffered until zstream_flush, a full buffer, or the next read that must wait for input; an
 * error is sticky (zstream_is_exception).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/zs_err.h"
#include "zc.h"

#define SBUF 4096

struct zstream_t {
    int fd;
    int rto, wto;  /* seconds for one wait, < 0: none */
    unsigned eof : 1, error : 1;
    int rp1, rp2;  /* unread bytes: rbuf[rp1 .. rp2) */
    int wlen;
    unsigned char rbuf[SBUF];
    unsigned char wbuf[SBUF];
};

zstream_t *zstream_open_fd(int fd)
{
    zstream_t *fp = zs_xcalloc(1, sizeof(*fp));
    fp->fd = fd;
    fp->rto = fp->wto = -1;
    return fp;
}

int zstream_get_fd(zstream_t *fp) { return fp->fd; }
int zstream_is_exception(zstream_t *fp) { return fp->eof || fp->error; }
int zstream_is_eof(zstream_t *fp) { return fp->eof; }
int zstream_is_error(zstream_t *fp) { return fp->error; }
void zstream_set_read_wait_timeout(zstream_t *fp, int t) { fp->rto = t; }
void zstream_set_write_wait_timeout(zstream_t *fp, int t) { fp->wto = t; }

/* Waits until fd is ready for events within timeout_s (< 0: none): 1 ready, 0 timed out, -1 error. */
static int wait_ready(int fd, short events, int timeout_s)
{
    struct pollfd p = { fd, events, 0 };
    int ms = timeout_s < 0 ? -1 : (timeout_s > 2000000 ? 2000000000 : timeout_s * 1000);
    for (;;) {
        int r = poll(&p, 1, ms);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            return -1;
    }
}

/* Fills the read buffer (it is empty), sending pending output first (a request's answer must
 * be out before we wait for the next request): 1 with bytes, 0 at end of file, -1 on error or
 * timeout. */
static int refill(zstream_t *fp)
{
    if (fp->error)
        return -1;
    if (fp->eof)
        return 0;
    if (fp->wlen > 0 && zstream_flush(fp) < 0)
        return -1;
    fp->rp1 = fp->rp2 = 0;
    for (;;) {
        if (fp->rto >= 0 && wait_ready(fp->fd, POLLIN, fp->rto) <= 0) {
            fp->error = 1;
            return -1;
        }
        ssize_t n = read(fp->fd, fp->rbuf, sizeof(fp->rbuf));
        if (n > 0) {
            fp->rp2 = (int)n;
            return 1;
        }
        if (n == 0) {
            fp->eof = 1;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_ready(fp->fd, POLLIN, -1) > 0)
            continue;
        fp->error = 1;
        return -1;
    }
}

int zstream_getc(zstream_t *fp)
{
    if (fp->rp1 == fp->rp2 && refill(fp) <= 0)
        return -1;
    return fp->rbuf[fp->rp1++];
}

/* The end of a read that got n bytes: n, or 0 at end of file, -1 on error. */
static int read_result(zstream_t *fp, int n)
{
    if (n > 0)
        return n;
    return fp->error ? -1 : 0;
}

int zstream_read(zstream_t *fp, zbuf_t *bf, int max_len)
{
    zbuf_reset(bf);
    if (max_len < 1)
        return 0;
    if (fp->rp1 == fp->rp2 && refill(fp) <= 0)
        return read_result(fp, 0);
    int n = fp->rp2 - fp->rp1;
    if (n > max_len)
        n = max_len;
    zbuf_memcat(bf, fp->rbuf + fp->rp1, n);
    fp->rp1 += n;
    return n;
}

int zstream_readn(zstream_t *fp, zbuf_t *bf, int strict_len)
{
    zbuf_reset(bf);
    int got = 0;
    while (got < strict_len) {
        if (fp->rp1 == fp->rp2 && refill(fp) <= 0)
            break;
        int n = fp->rp2 - fp->rp1;
        if (n > strict_len - got)
            n = strict_len - got;
        zbuf_memcat(bf, fp->rbuf + fp->rp1, n);
        fp->rp1 += n;
        got += n;
    }
    return read_result(fp, got);
}

int zstream_read_delimiter(zstream_t *fp, zbuf_t *bf, int delimiter, int max_len)
{
    zbuf_reset(bf);
    int got = 0;
    while (got < max_len) {
        if (fp->rp1 == fp->rp2 && refill(fp) <= 0)
            break;
        int n = fp->rp2 - fp->rp1;
        if (n > max_len - got)
            n = max_len - got;
        unsigned char *d = memchr(fp->rbuf + fp->rp1, delimiter, (size_t)n);
        if (d)
            n = (int)(d - (fp->rbuf + fp->rp1)) + 1;
        zbuf_memcat(bf, fp->rbuf + fp->rp1, n);
        fp->rp1 += n;
        got += n;
        if (d)
            break;
    }
    return read_result(fp, got);
}

int zstream_flush(zstream_t *fp)
{
    if (fp->error)
        return -1;
    int off = 0;
    while (off < fp->wlen) {
        if (fp->wto >= 0 && wait_ready(fp->fd, POLLOUT, fp->wto) <= 0)
            break;
        ssize_t n = write(fp->fd, fp->wbuf + off, (size_t)(fp->wlen - off));
        if (n > 0) {
            off += (int)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait_ready(fp->fd, POLLOUT, -1) > 0)
            continue;
        break;
    }
    int ok = off == fp->wlen;
    fp->wlen = 0;
    if (!ok) {
        fp->error = 1;
        return -1;
    }
    return 1;
}

int zstream_write(zstream_t *fp, const void *buf, int len)
{
    const unsigned char *p = buf;
    if (fp->error)
        return -1;
    for (int left = len; left > 0;) {
        if (fp->wlen == SBUF && zstream_flush(fp) < 0)
            return -1;
        int n = SBUF - fp->wlen < left ? SBUF - fp->wlen : left;
        memcpy(fp->wbuf + fp->wlen, p, (size_t)n);
        fp->wlen += n;
        p += n;
        left -= n;
    }
    return len < 0 ? 0 : len;
}

int zstream_puts(zstream_t *fp, const char *s)
{
    return zstream_write(fp, s, (int)strlen(s));
}

int zstream_printf_1024(zstream_t *fp, const char *fmt, ...)
{
    ZSTACK_BUF(bf, 1024);
    va_list ap;
    va_start(ap, fmt);
    zbuf_vprintf_1024(bf, fmt, ap);
    va_end(ap);
    return zstream_write(fp, zbuf_data(bf), zbuf_len(bf));
}

int zstream_close(zstream_t *fp, int release_ioctx)
{
    if (!fp)
        return 0;
    int r = fp->wlen ? zstream_flush(fp) : (fp->error ? -1 : 1);
    if (release_ioctx && fp->fd >= 0)
        close(fp->fd);
    free(fp);
    return r < 0 ? -1 : 0;
}
