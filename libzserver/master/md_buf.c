/*
 * md_buf.c — the control socket's reply buffer (md_ctl.h) and how strings go into a reply.
 *
 * Names and paths come from file names and config values: any byte but NUL and '/' (and
 * newline in a value) may be in them, UTF-8 or not.  A reply is always valid UTF-8 and never
 * carries a raw control character to a terminal:
 *   JSON (md_buf_json_str): '"' and '\' escaped; C0 controls, DEL and every byte that is not part
 *     of a valid UTF-8 sequence as \u00XX (so 0xff reads as U+00FF); valid UTF-8 as it is.
 *   text (md_buf_text, md_text_esc): C0 controls, DEL, C1 controls (U+0080..U+009F, which some
 *     terminals act on) and bytes that are not valid UTF-8 as \xHH, one per byte; the rest as it is.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
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

/* The length of the valid UTF-8 sequence at s (1 to 4; shortest form, no surrogate, at most
 * U+10FFFF), or 0 when the byte at s does not start one.  Stops at NUL (never a continuation). */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

void md_buf_json_str(md_buf *b, const char *s)
{
    md_buf_printf(b, "\"");
    for (const unsigned char *c = (const unsigned char *)s; c && *c;) {
        size_t n = utf8_len(c);
        if (*c == '"' || *c == '\\')
            md_buf_printf(b, "\\%c", *c);
        else if (*c < 0x20 || *c == 0x7f || n == 0)
            md_buf_printf(b, "\\u%04x", *c);
        else
            md_buf_printf(b, "%.*s", (int)n, (const char *)c);
        c += n ? n : 1;
    }
    md_buf_printf(b, "\"");
}

/* The next item of s as text goes out into out (at most 16 bytes and a NUL): a character as it
 * is, or \xHH for each of its bytes.  Returns how many bytes of s it took (0 at the end). */
static size_t text_item(const unsigned char *s, char out[17])
{
    size_t n = utf8_len(s);
    if (!*s)
        return 0;
    /* C0, DEL, and C1 (U+0080..U+009F: 0xc2 0x80..0x9f) are escaped; so is a byte that is not UTF-8. */
    if (n == 0 || *s < 0x20 || *s == 0x7f || (n == 2 && s[0] == 0xc2 && s[1] < 0xa0)) {
        n = n ? n : 1;
        for (size_t i = 0; i < n; i++)
            snprintf(out + 4 * i, 5, "\\x%02x", s[i]);
        return n;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return n;
}

void md_buf_text(md_buf *b, const char *s)
{
    char item[17];
    for (const unsigned char *c = (const unsigned char *)s; c;) {
        size_t n = text_item(c, item);
        if (!n)
            break;
        md_buf_printf(b, "%s", item);
        c += n;
    }
}

const char *md_text_esc(const char *s, char *buf, size_t size)
{
    char item[17];
    size_t len = 0;
    buf[0] = '\0';
    for (const unsigned char *c = (const unsigned char *)s; c;) {
        size_t n = text_item(c, item), k = strlen(item);
        if (!n || len + k + 1 > size)
            break; /* cut before a character or an escape, never inside one */
        memcpy(buf + len, item, k + 1);
        len += k;
        c += n;
    }
    return buf;
}
