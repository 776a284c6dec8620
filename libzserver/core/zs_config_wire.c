/*
 * zs_config_wire.c — a merged config view in a sealed memfd (zs_config.h): how masterd hands a
 * child exactly the view it validated, so a child never reads .cf/.gcf files behind its back.
 *
 * Layout (host byte order; both ends run on one machine): "ZSCF", u32 version, u32 count, then
 * per setting u32 key length, u32 value length, u32 file length, i32 line, and the three
 * strings without terminators.  The reader trusts nothing: every length is checked against
 * what is left, no string may hold a NUL, a key is never empty, and the memfd must be sealed
 * against writes and shrinking, so nobody can change it while it is read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "zs_config.h"

#define WIRE_MAGIC "ZSCF"
#define WIRE_VERSION 1u
#define WIRE_MAX (16u << 20)
#define REQUIRED_SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

typedef struct wbuf {
    char *p;
    size_t len, cap;
} wbuf;

static void put(wbuf *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        while (b->len + n > b->cap)
            b->cap = b->cap ? b->cap * 2 : 1024;
        b->p = zs_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_u32(wbuf *b, uint32_t v)
{
    put(b, &v, sizeof(v));
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int zs_config_to_memfd(const zs_config *c, char *why, size_t whylen)
{
    wbuf b = { 0 };
    put(&b, WIRE_MAGIC, 4);
    put_u32(&b, WIRE_VERSION);
    put_u32(&b, (uint32_t)c->n);
    for (size_t i = 0; i < c->n; i++) {
        const zs_kv *kv = &c->kv[i];
        const char *file = kv->file ? kv->file : "";
        put_u32(&b, (uint32_t)strlen(kv->key));
        put_u32(&b, (uint32_t)strlen(kv->value));
        put_u32(&b, (uint32_t)strlen(file));
        put_u32(&b, (uint32_t)kv->line);
        put(&b, kv->key, strlen(kv->key));
        put(&b, kv->value, strlen(kv->value));
        put(&b, file, strlen(file));
    }
    int fd = memfd_create("masterd-config", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        snprintf(why, whylen, "memfd_create: %s", strerror(errno));
        free(b.p);
        return -1;
    }
    if (write_all(fd, b.p, b.len) < 0 || fcntl(fd, F_ADD_SEALS, REQUIRED_SEALS) < 0) {
        snprintf(why, whylen, "sealed config memfd: %s", strerror(errno ? errno : EIO));
        close(fd);
        free(b.p);
        return -1;
    }
    free(b.p);
    return fd;
}

typedef struct rbuf {
    const char *p, *end;
} rbuf;

static int get_u32(rbuf *r, uint32_t *v)
{
    if ((size_t)(r->end - r->p) < sizeof(*v))
        return -1;
    memcpy(v, r->p, sizeof(*v));
    r->p += sizeof(*v);
    return 0;
}

/* A copy of the next n bytes as a string; NULL when they are not there or hold a NUL. */
static char *get_str(rbuf *r, uint32_t n)
{
    if ((size_t)(r->end - r->p) < n || memchr(r->p, '\0', n))
        return NULL;
    char *s = zs_xasprintf("%.*s", (int)n, r->p);
    r->p += n;
    return s;
}

static int parse(zs_config *c, const char *buf, size_t len, char *why, size_t whylen)
{
    rbuf r = { buf, buf + len };
    uint32_t version, count;
    if (len < 4 || memcmp(buf, WIRE_MAGIC, 4)) {
        snprintf(why, whylen, "not a config view (bad magic)");
        return -1;
    }
    r.p += 4;
    if (get_u32(&r, &version) < 0 || version != WIRE_VERSION || get_u32(&r, &count) < 0) {
        snprintf(why, whylen, "unknown config view version");
        return -1;
    }
    for (uint32_t i = 0; i < count; i++) {
        uint32_t kl, vl, fl, line;
        if (get_u32(&r, &kl) < 0 || get_u32(&r, &vl) < 0 || get_u32(&r, &fl) < 0 || get_u32(&r, &line) < 0 ||
            kl == 0 || (int32_t)line < 0) {
            snprintf(why, whylen, "setting %u: truncated or invalid header", i + 1);
            return -1;
        }
        char *k = get_str(&r, kl), *v = k ? get_str(&r, vl) : NULL, *f = v ? get_str(&r, fl) : NULL;
        if (!f) {
            snprintf(why, whylen, "setting %u: truncated, or a NUL byte in a string", i + 1);
            free(k);
            free(v);
            return -1;
        }
        zs_config_set(c, k, v, f, (int)line);
        free(k);
        free(v);
        free(f);
    }
    if (r.p != r.end) {
        snprintf(why, whylen, "%zu bytes after the last setting", (size_t)(r.end - r.p));
        return -1;
    }
    return 0;
}

int zs_config_from_memfd(zs_config *c, int fd, char *why, size_t whylen)
{
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & REQUIRED_SEALS) != REQUIRED_SEALS) {
        snprintf(why, whylen, "the config memfd is not sealed");
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 12 || (uint64_t)st.st_size > WIRE_MAX) {
        snprintf(why, whylen, "the config memfd has a bad size");
        return -1;
    }
    size_t len = (size_t)st.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        snprintf(why, whylen, "mmap: %s", strerror(errno));
        return -1;
    }
    zs_config tmp;
    zs_config_init(&tmp);
    int rc = parse(&tmp, map, len, why, whylen);
    munmap(map, len);
    if (rc == 0)
        zs_config_merge(c, &tmp);
    zs_config_free(&tmp);
    return rc;
}
