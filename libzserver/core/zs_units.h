/*
 * zs_units.h — numbers with units in settings, as lib-zc writes them: durations (`5s`, `2m`,
 * `1h`, `1d`, `1w`; a bare number is seconds) and sizes (`512b`, `64k`, `8m`, `1g`; a bare number
 * is bytes).  One parser for the master's server-* keys (zs_service.c) and the server's
 * zconfig_get_second / zconfig_get_size (zc.h), so both read a file the same way.
 */
#ifndef ZS_UNITS_H
#define ZS_UNITS_H
#include <stddef.h>

/* A whole number with at most one unit letter (any case) from s/m/h/d/w, in seconds, within
 * [min, max].  0 and *out set, or -1 with the reason in why ("unknown unit 'x'", "out of range"). */
int zs_parse_seconds(const char *s, long min, long max, long *out, char *why, size_t whylen);
/* The same for sizes: b/k/m/g (1024-based), in bytes. */
int zs_parse_size(const char *s, long min, long max, long *out, char *why, size_t whylen);
#endif
