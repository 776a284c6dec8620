/*
 * zs_config.c — the key/value store and the .cf / .gcf reader (zs_config.h).
 *
 * inih does the splitting (key, value, comments); we feed it one line at a time from our own
 * reader so that we know every line's number, refuse a line longer than ZS_CONFIG_MAX_LINE
 * instead of letting Debian's 200-byte inih split it into garbage keys, and catch lines inih
 * would misread (no '=', a ':' before the '=', sections) with a message naming file and line.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include "zs_config.h"

static int accumulates(const char *key)
{
    return !strcmp(key, "server-service") || !strcmp(key, "server-env");
}

/* One key of the index: its first and last setting (kv indexes + 1; 0 marks a free slot). */
struct zs_config_slot {
    size_t first, last;
    size_t hash;
};

void zs_config_init(zs_config *c)
{
    memset(c, 0, sizeof(*c));
}

static void kv_free(zs_kv *kv)
{
    free(kv->key);
    free(kv->value);
    free(kv->file);
}

zs_config zs_process_config;

void zs_config_free(zs_config *c)
{
    if (c->load_errs) {
        zs_errs_free(c->load_errs);
        free(c->load_errs);
    }
    for (size_t i = 0; i < c->n; i++)
        kv_free(&c->kv[i]);
    for (size_t i = 0; i < c->nshadow; i++)
        kv_free(&c->shadow[i]);
    free(c->shadow);
    free(c->kv);
    free(c->slots);
    memset(c, 0, sizeof(*c));
}

/* FNV-1a: keys are short and few collide; the table is kept at most half full. */
static size_t key_hash(const char *key)
{
    size_t h = (size_t)14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * (size_t)1099511628211ull;
    return h;
}

/* The slot of key: its entry, or the free slot where it would go. */
static struct zs_config_slot *slot_of(const zs_config *c, const char *key, size_t h)
{
    size_t mask = c->nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct zs_config_slot *sl = &c->slots[i];
        if (!sl->first || (sl->hash == h && !strcmp(c->kv[sl->first - 1].key, key)))
            return sl;
    }
}

/* Makes kv[i] the last setting of its key, whose slot is sl. */
static void link_setting(zs_config *c, struct zs_config_slot *sl, size_t i, size_t h)
{
    c->kv[i].next = SIZE_MAX;
    if (!sl->first) {
        sl->first = i + 1;
        sl->hash = h;
    } else {
        c->kv[sl->last - 1].next = i;
    }
    sl->last = i + 1;
}

/* Rebuilds the index over kv[0..n) in a table of nslots (a power of two, > 2n). */
static void reindex(zs_config *c, size_t nslots)
{
    free(c->slots);
    c->slots = zs_xcalloc(nslots, sizeof(*c->slots));
    c->nslots = nslots;
    for (size_t i = 0; i < c->n; i++) {
        size_t h = key_hash(c->kv[i].key);
        link_setting(c, slot_of(c, c->kv[i].key, h), i, h);
    }
}

static const struct zs_config_slot *find_slot(const zs_config *c, const char *key)
{
    if (!c->nslots)
        return NULL;
    const struct zs_config_slot *sl = slot_of(c, key, key_hash(key));
    return sl->first ? sl : NULL;
}

/* Keeps a setting that is being replaced (its value and file move there). */
static void add_shadow(zs_config *c, const zs_kv *old)
{
    if (c->nshadow == c->capshadow) {
        c->capshadow = c->capshadow ? c->capshadow * 2 : 8;
        c->shadow = zs_xrealloc(c->shadow, c->capshadow * sizeof(zs_kv));
    }
    c->shadow[c->nshadow++] = (zs_kv){ zs_xstrdup(old->key), old->value, old->file, old->line, SIZE_MAX };
}

void zs_config_set(zs_config *c, const char *key, const char *value, const char *file, int line)
{
    if (2 * (c->n + 1) > c->nslots)
        reindex(c, c->nslots ? 2 * c->nslots : 32);
    size_t h = key_hash(key);
    struct zs_config_slot *sl = slot_of(c, key, h);
    zs_kv *kv;
    if (sl->first && !accumulates(key)) {
        kv = &c->kv[sl->first - 1];
        add_shadow(c, kv);
    } else {
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 16;
            c->kv = zs_xrealloc(c->kv, c->cap * sizeof(zs_kv));
        }
        size_t i = c->n++;
        kv = &c->kv[i];
        kv->key = zs_xstrdup(key);
        link_setting(c, sl, i, h);
    }
    kv->value = zs_xstrdup(value);
    kv->file = zs_xstrdup(file ? file : "");
    kv->line = line;
}

const zs_kv *zs_config_find(const zs_config *c, const char *key)
{
    const struct zs_config_slot *sl = find_slot(c, key);
    return sl ? &c->kv[sl->first - 1] : NULL;
}

const zs_kv *zs_config_next(const zs_config *c, const char *key, const zs_kv *prev)
{
    if (!prev)
        return zs_config_find(c, key);
    /* prev is a setting of key: its link leads on (the last one's link is past the end). */
    size_t i = prev->next;
    return i < c->n && !strcmp(c->kv[i].key, key) ? &c->kv[i] : NULL;
}

const char *zs_config_get(const zs_config *c, const char *key, const char *def)
{
    const zs_kv *kv = zs_config_find(c, key);
    return kv ? kv->value : def;
}

void zs_kv_where(const zs_kv *kv, char *buf, size_t len)
{
    if (kv->line > 0)
        snprintf(buf, len, "%s:%d", kv->file, kv->line);
    else
        snprintf(buf, len, "%s", kv->file);
}

void zs_config_unset(zs_config *c, const char *key)
{
    size_t k = 0;
    for (size_t i = 0; i < c->nshadow; i++) {
        if (!strcmp(c->shadow[i].key, key))
            kv_free(&c->shadow[i]);
        else
            c->shadow[k++] = c->shadow[i];
    }
    c->nshadow = k;
    if (!find_slot(c, key))
        return;
    k = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (!strcmp(c->kv[i].key, key))
            kv_free(&c->kv[i]);
        else
            c->kv[k++] = c->kv[i];
    }
    c->n = k;
    reindex(c, c->nslots);
}

void zs_config_name_unfiled(zs_config *c, const char *file)
{
    zs_kv *lists[2] = { c->kv, c->shadow };
    size_t counts[2] = { c->n, c->nshadow };
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < counts[l]; i++)
            if (lists[l][i].line <= 0) {
                free(lists[l][i].file);
                lists[l][i].file = zs_xstrdup(file);
            }
}

void zs_config_merge(zs_config *c, const zs_config *src)
{
    for (size_t i = 0; i < src->nshadow; i++) {
        zs_kv kv = src->shadow[i];
        kv.value = zs_xstrdup(kv.value);
        kv.file = zs_xstrdup(kv.file);
        add_shadow(c, &kv);
    }
    for (size_t i = 0; i < src->n; i++)
        zs_config_set(c, src->kv[i].key, src->kv[i].value, src->kv[i].file, src->kv[i].line);
}

/* ---- the reader ---- */

typedef struct reader {
    const char *path;
    const char *p, *end;   /* what is left of the file */
    int line;              /* number of the line last handed to inih */
    zs_config *c;
    zs_errs *errs;
    int bad;
} reader;

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* Checks a line (leading blanks already skipped) for what inih would misread. */
static const char *line_problem(const char *s, size_t len)
{
    if (len == 0 || s[0] == '#' || s[0] == ';')
        return NULL;
    if (s[0] == '[')
        return "sections ([...]) are not used in .cf files";
    const char *eq = memchr(s, '=', len);
    if (!eq)
        return "expected 'key = value'";
    const char *colon = memchr(s, ':', (size_t)(eq - s));
    if (colon)
        return "a key cannot contain ':'";
    const char *k = s;
    while (k < eq && !is_blank(*k))
        k++;
    if (k == s)
        return "missing key before '='";
    while (k < eq && is_blank(*k))
        k++;
    if (k != eq)
        return "a key cannot contain blanks";
    /* inih ends a value at a ';' that follows a blank (an inline comment): `server-service =
     * a:1 ; b:2` would lose b:2, `server-command = sh -c 'x ; y'` half its command, silently.
     * Such a line is refused; a ';' with no blank before it stays part of the value. */
    for (const char *q = eq + 1, *end = s + len; q < end; q++)
        if (*q == ';' && is_blank(q[-1]))
            return "a ';' after a blank would start an inline comment and drop the rest of the value "
                   "(write comments on their own line; separate server-service entries with ',')";
    return NULL;
}

/* inih's fgets: hands over one line at a time, never more than it can hold. */
static char *read_line(char *str, int num, void *stream)
{
    reader *r = stream;
    if (r->p >= r->end)
        return NULL;
    const char *nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
    const char *eol = nl ? nl : r->end;
    size_t len = (size_t)(eol - r->p);
    r->line++;
    const char *s = r->p;
    r->p = nl ? nl + 1 : r->end;
    /* A UTF-8 byte-order mark (editors on Windows add one) is not part of the first line. */
    if (r->line == 1 && len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) {
        s += 3;
        len -= 3;
    }
    while (len && s[len - 1] == '\r')
        len--;
    if (len > ZS_CONFIG_MAX_LINE) {
        zs_errs_add(r->errs, "%s:%d: line too long (%zu characters, at most %d; split a long server-service "
                    "list over several server-service lines)", r->path, r->line, len, ZS_CONFIG_MAX_LINE);
        r->bad = 1;
        str[0] = '\0';
        return str;
    }
    if (memchr(s, '\0', len)) {
        zs_errs_add(r->errs, "%s:%d: NUL byte in line", r->path, r->line);
        r->bad = 1;
        str[0] = '\0';
        return str;
    }
    while (len && is_blank(*s)) {
        s++;
        len--;
    }
    /* inih skips a byte-order mark at the start of the first line it is handed, after we
     * checked the key: one that is not the file's first bytes is refused instead. */
    const char *why = r->line == 1 && len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)
                          ? "byte-order mark not at the start of the file"
                          : line_problem(s, len);
    if (why) {
        zs_errs_add(r->errs, "%s:%d: %s", r->path, r->line, why);
        r->bad = 1;
        len = 0;
    }
    if ((int)len >= num)  /* cannot happen: ZS_CONFIG_MAX_LINE < inih's buffer */
        len = (size_t)num - 1;
    memcpy(str, s, len);
    str[len] = '\0';
    return str;
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
    reader *r = user;
    (void)section;
    zs_config_set(r->c, name, value, r->path, r->line);
    return 1;
}

int zs_config_load_mem(zs_config *c, const char *name, const char *buf, size_t len, zs_errs *errs)
{
    reader r = { .path = name, .p = buf, .end = buf + len, .c = c, .errs = errs };
    int rc = ini_parse_stream(read_line, &r, on_pair, &r);
    if (rc > 0 && !r.bad) {
        zs_errs_add(errs, "%s: syntax error near line %d", name, rc);
        r.bad = 1;
    } else if (rc < 0 && !r.bad) {
        zs_errs_add(errs, "%s: cannot be parsed", name);
        r.bad = 1;
    }
    return r.bad ? -1 : 0;
}

static const char *file_kind(mode_t m)
{
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device"
         : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "of an unknown type";
}

/* O_NONBLOCK: opening a FIFO must never wait for a writer.  The type is checked on the open
 * fd (fstat), so a file swapped between a check and the open cannot slip through. */
int zs_config_load_file(zs_config *c, const char *path, zs_errs *errs)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
            zs_errs_add(errs, "%s: dangling symbolic link (its target does not exist)", path);
        else
            zs_errs_add(errs, "%s: %s", path, strerror(e));
        return -2;
    }
    if (fstat(fd, &st) < 0) {
        zs_errs_add(errs, "%s: %s", path, strerror(errno));
        close(fd);
        return -2;
    }
    if (!S_ISREG(st.st_mode)) {
        zs_errs_add(errs, "%s: %s, not a regular file", path, file_kind(st.st_mode));
        close(fd);
        return -2;
    }
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            if (cap > (16u << 20)) {
                zs_errs_add(errs, "%s: file too large", path);
                free(buf);
                close(fd);
                return -2;
            }
            buf = zs_xrealloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            zs_errs_add(errs, "%s: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return -2;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    int rc = zs_config_load_mem(c, path, buf, len, errs);
    free(buf);
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int zs_config_list_dir(const char *dir, const char *suffix, char ***names, zs_errs *errs)
{
    DIR *d = opendir(dir);
    size_t slen = strlen(suffix);
    int n = 0, cap = 0;
    *names = NULL;
    if (!d) {
        zs_errs_add(errs, "%s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= slen || strcmp(de->d_name + len - slen, suffix))
            continue;
        /* Whatever it is (a dangling symlink, a FIFO, a directory): loading it says what is
         * wrong.  Skipping it here would silently drop a service. */
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            *names = zs_xrealloc(*names, (size_t)cap * sizeof(char *));
        }
        (*names)[n++] = zs_xstrdup(de->d_name);
    }
    closedir(d);
    if (n)
        qsort(*names, (size_t)n, sizeof(char *), cmp_names);
    return n;
}

void zs_config_free_list(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int zs_config_load_gcf_dir(zs_config *c, const char *dir, zs_errs *errs)
{
    char **names;
    int n = zs_config_list_dir(dir, ".gcf", &names, errs), bad = n < 0;
    for (int i = 0; i < n; i++) {
        char *p = zs_xasprintf("%s/%s", dir, names[i]);
        if (zs_config_load_file(c, p, errs) < 0)
            bad = 1;
        free(p);
    }
    if (n > 0)
        zs_config_free_list(names, n);
    return bad ? -1 : 0;
}

int zs_parse_long(const char *s, long min, long max, long *out, char *why, size_t whylen)
{
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    if (!*p || strspn(p, "0123456789") != strlen(p)) {
        snprintf(why, whylen, "not a whole number");
        return -1;
    }
    errno = 0;
    long v = strtol(s, NULL, 10);
    if (errno == ERANGE || v < min || v > max) {
        snprintf(why, whylen, "out of range %ld..%ld", min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int zs_parse_bool(const char *s)
{
    static const char *yes[] = { "yes", "true", "on", "1", "y", NULL }, *no[] = { "no", "false", "off", "0", "n", NULL };
    for (int i = 0; yes[i]; i++) {
        if (!strcasecmp(s, yes[i]))
            return 1;
        if (!strcasecmp(s, no[i]))
            return 0;
    }
    return -1;
}
