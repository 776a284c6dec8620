/*
 * zs_escape.h — a line of text someone else wrote, made safe to put in a log: what masterd
 * writes for a child (its output pipe, md_relay.c; a masterlog datagram, md_masterlog.c).
 */
#ifndef ZS_ESCAPE_H
#define ZS_ESCAPE_H
#include <stddef.h>

/* Writes src[0..n) to out (at most cap - 1 bytes; no NUL added) and returns the length written.
 * Escaped, so nothing in it can drive a terminal or pass for another line: \n and \r as `\n`
 * and `\r`; every other C0 control and DEL as `\xNN` (tab stays); every C1 control, raw
 * (0x80..0x9f) or UTF-8-encoded (U+0080..U+009F), and every byte that is not part of a valid
 * UTF-8 sequence (overlong forms, surrogates, beyond U+10FFFF, a cut sequence) as `\xNN` per
 * byte.  Valid UTF-8 text passes unchanged, so the result is valid UTF-8.  What does not fit
 * is dropped at a character boundary. */
size_t zs_escape_line(char *out, size_t cap, const char *src, size_t n);
#endif
