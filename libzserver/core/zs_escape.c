/*
 * zs_escape.c — escaping a foreign line for a log (zs_escape.h).
 */
#include <stdio.h>
#include "zs_escape.h"

/* The length of the valid UTF-8 sequence at s[0..n) (s[0] >= 0x80), or 0 when there is none:
 * RFC 3629's well-formed sequences only (no overlong form, no surrogate, nothing above
 * U+10FFFF).  *cp gets its code point. */
static size_t utf8_seq(const unsigned char *s, size_t n, unsigned *cp)
{
    unsigned c = s[0], lo = 0x80, hi = 0xbf;
    size_t len;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        *cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        *cp = c & 0x0f;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        *cp = c & 0x07;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* beyond U+10FFFF */
    } else {
        return 0; /* a continuation byte, 0xc0, 0xc1, 0xf5.. */
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        unsigned b = s[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xbf))
            return 0;
        *cp = (*cp << 6) | (b & 0x3f);
    }
    return len;
}

size_t zs_escape_line(char *out, size_t cap, const char *src, size_t n)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i], cp = 0;
        size_t len = c >= 0x80 ? utf8_seq(s + i, n - i, &cp) : 1;
        if (len && c >= 0x80 && !(cp >= 0x80 && cp <= 0x9f)) {
            if (o + len >= cap)
                break;
            for (size_t k = 0; k < len; k++)
                out[o++] = (char)s[i + k];
            i += len;
            continue;
        }
        /* An ASCII byte, or one byte of an invalid or C1 sequence (each escaped alone). */
        size_t need = c == '\n' || c == '\r' ? 2 : (c < 0x20 && c != '\t') || c >= 0x7f ? 4 : 1;
        if (o + need >= cap)
            break;
        if (need == 2) {
            out[o++] = '\\';
            out[o++] = c == '\n' ? 'n' : 'r';
        } else if (need == 4) {
            snprintf(out + o, 5, "\\x%02x", c);
            o += 4;
        } else {
            out[o++] = (char)c;
        }
        i++;
    }
    return o;
}
