/*
 * md_buf.c — the control socket's reply buffer (md_ctl.h) and JSON strings in it.
 */
#include <stdarg.h>
#include <stdio.h>
#include "md_ctl.h"
#include "core/zserver_core.h"

void md_buf_printf(md_buf *b, const char *fmt, ...)
{
    va_list ap;
    if (b->over)
        return;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        if (b->len + (size_t)n + 1 > MD_CTL_MAX_REPLY) {
            b->over = 1;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        b->p = zs_xrealloc(b->p, cap);
        b->cap = cap;
    }
}

void md_buf_json_str(md_buf *b, const char *s)
{
    md_buf_printf(b, "\"");
    for (const unsigned char *c = (const unsigned char *)s; c && *c; c++) {
        if (*c == '"' || *c == '\\')
            md_buf_printf(b, "\\%c", *c);
        else if (*c < 0x20 || *c == 0x7f)
            md_buf_printf(b, "\\u%04x", *c);
        else
            md_buf_printf(b, "%c", *c);
    }
    md_buf_printf(b, "\"");
}
