/*
 * zs_units.c — zs_parse_seconds and zs_parse_size (zs_units.h): a whole number and one unit
 * letter.  Stricter than lib-zc, which reads "5x" as 5 and "abc" as the default: a setting we
 * do not understand is an error naming it, never a silent guess.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "zs_units.h"

typedef struct unit {
    char letter;
    long factor;
} unit;

static const unit seconds_units[] = { { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 'w', 604800 }, { 0, 0 } };
static const unit size_units[] = { { 'b', 1 }, { 'k', 1L << 10 }, { 'm', 1L << 20 }, { 'g', 1L << 30 }, { 0, 0 } };

/* Digits (an optional sign first), then nothing or one letter of units. */
static int parse_unit(const char *s, const unit *units, const char *letters, long min, long max, long *out,
                      char *why, size_t whylen)
{
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    size_t digits = strspn(p, "0123456789");
    const char *u = p + digits;
    if (digits == 0 || (u[0] && (u[1] || !isalpha((unsigned char)u[0])))) {
        snprintf(why, whylen, "expected a whole number and an optional unit (%s)", letters);
        return -1;
    }
    long factor = 1;
    if (*u) {
        const unit *k = units;
        while (k->letter && k->letter != tolower((unsigned char)*u))
            k++;
        if (!k->letter) {
            snprintf(why, whylen, "unknown unit '%c' (units: %s)", *u, letters);
            return -1;
        }
        factor = k->factor;
    }
    errno = 0;
    long v = strtol(s, NULL, 10);
    if (errno == ERANGE || (v > 0 && v > LONG_MAX / factor) || (v < 0 && v < LONG_MIN / factor) || v * factor < min ||
        v * factor > max) {
        snprintf(why, whylen, "out of range %ld..%ld", min, max);
        return -1;
    }
    *out = v * factor;
    return 0;
}

int zs_parse_seconds(const char *s, long min, long max, long *out, char *why, size_t whylen)
{
    return parse_unit(s, seconds_units, "s m h d w", min, max, out, why, whylen);
}

int zs_parse_size(const char *s, long min, long max, long *out, char *why, size_t whylen)
{
    return parse_unit(s, size_units, "b k m g", min, max, out, why, whylen);
}
