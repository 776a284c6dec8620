/*
 * zs_buf.c — zbuf_t (zserver_core.h): lib-zc's growable byte string, used by the buffered I/O
 * of both modes (aio/zs_aio_io.c, co/zs_stream.c) and by programs through zc.h.
 * Invariant: data[len] == 0 and len <= size; a static (ZSTACK_BUF) buffer never reallocates.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "zs_err.h"
#include "zserver_core.h"

#define ZBUF_MAX (1 << 30) /* the bit-fields hold 31 bits; stay well inside */

zbuf_t *zbuf_create(int size)
{
    if (size < 1)
        size = 64;
    zbuf_t *bf = zs_xcalloc(1, sizeof(*bf));
    bf->data = zs_xcalloc(1, (size_t)size + 1);
    bf->size = size;
    return bf;
}

void zbuf_free(zbuf_t *bf)
{
    if (!bf)
        return;
    if (!bf->static_mode)
        free(bf->data);
    free(bf);
}

int zbuf_need_space(zbuf_t *bf, int need)
{
    if (need < 0 || bf->len + (long)need <= bf->size)
        return 0;
    if (bf->static_mode || bf->len + (long)need > ZBUF_MAX)
        return -1;
    long n = bf->size < 64 ? 64 : bf->size;
    while (n < bf->len + (long)need)
        n *= 2;
    if (n > ZBUF_MAX)
        n = ZBUF_MAX;
    char *d = realloc(bf->data, (size_t)n + 1);
    if (!d)
        zfatal("zbuf: out of memory for %ld bytes", n);
    bf->data = d;
    bf->size = (int)n;
    return 0;
}

void zbuf_memcat(zbuf_t *bf, const void *src, int len)
{
    if (len <= 0)
        return;
    if (zbuf_need_space(bf, len) < 0)
        len = bf->size - bf->len; /* a stack buffer keeps what fits */
    memcpy(bf->data + bf->len, src, (size_t)len);
    bf->len += len;
    bf->data[bf->len] = 0;
}

void zbuf_strcat(zbuf_t *bf, const char *src)
{
    zbuf_memcat(bf, src, (int)strlen(src));
}

void zbuf_put(zbuf_t *bf, int ch)
{
    char c = (char)ch;
    zbuf_memcat(bf, &c, 1);
}

void zbuf_trim_right_rn(zbuf_t *bf)
{
    while (bf->len > 0 && (bf->data[bf->len - 1] == '\n' || bf->data[bf->len - 1] == '\r'))
        bf->len--;
    bf->data[bf->len] = 0;
}

void zbuf_vprintf_1024(zbuf_t *bf, const char *fmt, va_list ap)
{
    char buf[1024 + 1];
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    if (n > 1024)
        n = 1024;
    zbuf_memcat(bf, buf, n);
}

void zbuf_printf_1024(zbuf_t *bf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    zbuf_vprintf_1024(bf, fmt, ap);
    va_end(ap);
}
