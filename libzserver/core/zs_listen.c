/*
 * zs_listen.c — listen entries parsed (`[NAME://]ADDRESS`, doc/CONTRACT.md §3): zs_listen_parse,
 * zs_listen_parse_at, zs_listen_parse_list(_at), zs_listen_free, zs_listen_free_array (zs_listen.h).  Binding them is
 * zs_listen_bind.c; the directory check of unix sockets and fifos is zs_listen_dir.c.
 *
 * Parsing is strict and does no DNS: an address is numeric or it is an error.  A unix path's
 * parent directory must exist (its real path is the entry's key, for duplicate detection).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include "zs_listen.h"
#include "zserver_core.h"

#define UNIX_PATH_MAX_LEN (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

static int parse_port(const char *s, int *port, char *why, size_t whylen)
{
    if (!*s) {
        snprintf(why, whylen, "missing port");
        return -1;
    }
    if (strspn(s, "0123456789") != strlen(s)) {
        snprintf(why, whylen, "bad port '%s' (a number 1..65535)", s);
        return -1;
    }
    long v = strlen(s) > 5 ? 0 : strtol(s, NULL, 10);
    if (v < 1 || v > 65535) {
        snprintf(why, whylen, "port %s out of range 1..65535", s);
        return -1;
    }
    *port = (int)v;
    return 0;
}

int zs_listen_name_ok(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

char *zs_path_canonical(const char *path, char *why, size_t whylen)
{
    char *copy = zs_xstrdup(path);
    char *slash = strrchr(copy, '/');
    const char *dir = ".", *base = copy;
    if (slash) {
        *slash = '\0';
        dir = slash == copy ? "/" : copy;
        base = slash + 1;
    }
    if (!*base) {
        snprintf(why, whylen, "'%s' names a directory, not a socket", path);
        free(copy);
        return NULL;
    }
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(dir, real) || stat(real, &st) < 0) {
        if (errno == ENOENT)
            snprintf(why, whylen, "directory '%s' does not exist", dir);
        else
            snprintf(why, whylen, "directory '%s': %s", dir, strerror(errno));
        free(copy);
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, whylen, "'%s' is not a directory", dir);
        free(copy);
        return NULL;
    }
    char *out = zs_xasprintf("%s/%s", strcmp(real, "/") ? real : "", base);
    free(copy);
    return out;
}

/* A relative path is taken from base (when given), and every error about it says so. */
static int parse_path(const char *written, const char *base, int kind, zs_listen *out, char *why, size_t whylen)
{
    if (!*written) {
        snprintf(why, whylen, "empty path");
        return -1;
    }
    char *path = zs_path_join(base, written);
    char note[PATH_MAX + 64] = "";
    if (written[0] != '/')
        snprintf(note, sizeof(note), " (relative to %s%s)", base ? "the config directory " : "the working directory",
                 base ? base : "");
    if (strlen(path) > UNIX_PATH_MAX_LEN) {
        if (*note)
            snprintf(why, whylen, "'%s'%s is '%s': too long for a unix socket (%zu characters, at most %zu)",
                     written, note, path, strlen(path), UNIX_PATH_MAX_LEN);
        else
            snprintf(why, whylen, "path too long for a unix socket (%zu characters, at most %zu)", strlen(path),
                     UNIX_PATH_MAX_LEN);
        free(path);
        return -1;
    }
    char *canon = zs_path_canonical(path, why, whylen);
    if (!canon) {
        size_t l = strlen(why);
        snprintf(why + l, whylen - l, "%s", note);
        free(path);
        return -1;
    }
    out->kind = kind;
    out->path = path;
    out->key = zs_xasprintf("%s:%s", kind == ZS_LISTEN_FIFO ? "fifo" : "unix", canon);
    free(canon);
    if (kind == ZS_LISTEN_UNIX) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&out->sa;
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, path, strlen(path) + 1);
        out->salen = (socklen_t)sizeof(*sun);
    }
    return 0;
}

static int parse_inet(const char *addr, zs_listen *out, char *why, size_t whylen)
{
    char host[INET6_ADDRSTRLEN + 8], buf[INET6_ADDRSTRLEN];
    const char *port_s;
    int port, v6 = 0;
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (!rb) {
            snprintf(why, whylen, "missing ']' after an IPv6 address");
            return -1;
        }
        if (rb[1] != ':') {
            snprintf(why, whylen, "expected ':PORT' after ']'");
            return -1;
        }
        if ((size_t)(rb - addr - 1) >= sizeof(host)) {
            snprintf(why, whylen, "bad IPv6 address '%.*s'", (int)(rb - addr - 1), addr + 1);
            return -1;
        }
        memcpy(host, addr + 1, (size_t)(rb - addr - 1));
        host[rb - addr - 1] = '\0';
        port_s = rb + 2;
        v6 = 1;
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon) {
            /* `imapd.sock` is a unix path to its author, and nothing to the parser: say how. */
            if (strchr(addr, '.') && strspn(addr, "0123456789.") != strlen(addr))
                snprintf(why, whylen, "neither HOST:PORT nor a unix socket path (a path contains '/'): write "
                         "local:%s or ./%s for a unix socket", addr, addr);
            else
                snprintf(why, whylen, "expected HOST:PORT, [IPV6]:PORT or a unix socket path (containing '/', "
                         "or spelled local:PATH)");
            return -1;
        }
        if (memchr(addr, ':', (size_t)(colon - addr))) {
            snprintf(why, whylen, "an IPv6 address needs brackets: [ADDRESS]:PORT");
            return -1;
        }
        if ((size_t)(colon - addr) >= sizeof(host)) {
            snprintf(why, whylen, "bad address '%.*s'", (int)(colon - addr), addr);
            return -1;
        }
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
        port_s = colon + 1;
    }
    if (parse_port(port_s, &port, why, whylen) < 0)
        return -1;
    if (v6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->sa;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) {
            snprintf(why, whylen, "bad IPv6 address '%s'", host);
            return -1;
        }
        /* Every IPv6 socket is IPV6_V6ONLY (zs_listen_bind.c): a mapped IPv4 address could
         * never be bound; the plain IPv4 spelling is what was meant. */
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            char v4[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], v4, sizeof(v4));
            snprintf(why, whylen, "'%s' is an IPv4 address in IPv6 form (IPv6 sockets here are IPv6 only): "
                     "write it as %s:%d", host, v4, port);
            return -1;
        }
        out->kind = ZS_LISTEN_INET6;
        out->salen = (socklen_t)sizeof(*s6);
        inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof(buf));
        out->key = zs_xasprintf("inet6:[%s]:%d", buf, port);
        return 0;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)&out->sa;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    if (!*host || !strcmp(host, "0")) {
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
    } else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) {
        if (strspn(host, "0123456789.") == strlen(host))
            snprintf(why, whylen, "bad IPv4 address '%s'", host);
        else
            snprintf(why, whylen, "'%s' is not a numeric address (host names are not resolved at start-up)", host);
        return -1;
    }
    out->kind = ZS_LISTEN_INET;
    out->salen = (socklen_t)sizeof(*s4);
    inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof(buf));
    out->key = zs_xasprintf("inet:%s:%d", buf, port);
    return 0;
}

int zs_listen_parse(const char *entry, const char *default_name, zs_listen *out, char *why, size_t whylen)
{
    return zs_listen_parse_at(entry, default_name, NULL, out, why, whylen);
}

int zs_listen_parse_at(const char *entry, const char *default_name, const char *base, zs_listen *out,
                       char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    const char *addr = entry, *sep = strstr(entry, "://");
    size_t nlen = 0;
    if (sep) {
        nlen = (size_t)(sep - entry);
        if (!zs_listen_name_ok(entry, nlen)) {
            snprintf(why, whylen, "bad service name '%.*s' (letters, digits, '-', '_', '.')", (int)nlen, entry);
            return -1;
        }
        addr = sep + 3;
    }
    if (!*addr) {
        snprintf(why, whylen, "missing address");
        return -1;
    }
    int rc;
    if (!strncmp(addr, "local:", 6))
        rc = parse_path(addr + 6, base, ZS_LISTEN_UNIX, out, why, whylen);
    else if (!strncmp(addr, "fifo:", 5))
        rc = parse_path(addr + 5, base, ZS_LISTEN_FIFO, out, why, whylen);
    else if (strchr(addr, '/'))
        rc = parse_path(addr, base, ZS_LISTEN_UNIX, out, why, whylen);
    else
        rc = parse_inet(addr, out, why, whylen);
    if (rc < 0) {
        zs_listen_free(out);
        return -1;
    }
    out->name = sep ? zs_xasprintf("%.*s", (int)nlen, entry) : zs_xstrdup(default_name);
    out->text = zs_xstrdup(entry);
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t len = strlen(s);
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        s[--len] = '\0';
    return s;
}

int zs_listen_parse_list(const char *list, const char *default_name, const char *where,
                         zs_listen **v, int *n, zs_errs *errs)
{
    return zs_listen_parse_list_at(list, default_name, where, NULL, v, n, errs);
}

int zs_listen_parse_list_at(const char *list, const char *default_name, const char *where, const char *base,
                            zs_listen **v, int *n, zs_errs *errs)
{
    char *copy = zs_xstrdup(list), *save = NULL, why[PATH_MAX + 400];
    int bad = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *e = trim(tok);
        if (!*e)
            continue;
        zs_listen l;
        if (zs_listen_parse_at(e, default_name, base, &l, why, sizeof(why)) < 0) {
            if (where)
                zs_errs_add(errs, "%s: server-service: '%s': %s", where, e, why);
            else
                zs_errs_add(errs, "server-service: '%s': %s", e, why);
            bad = 1;
            continue;
        }
        l.where = where ? zs_xstrdup(where) : NULL;
        *v = zs_xrealloc(*v, (size_t)(*n + 1) * sizeof(zs_listen));
        (*v)[(*n)++] = l;
    }
    free(copy);
    return bad ? -1 : 0;
}

const char *zs_listen_bound_path(const zs_listen *l)
{
    /* The key is "unix:PATH" or "fifo:PATH", PATH resolved (canonical_path). */
    return l->kind == ZS_LISTEN_UNIX || l->kind == ZS_LISTEN_FIFO ? strchr(l->key, ':') + 1 : NULL;
}

void zs_listen_free(zs_listen *l)
{
    free(l->name);
    free(l->text);
    free(l->key);
    free(l->path);
    free(l->where);
    memset(l, 0, sizeof(*l));
}

void zs_listen_free_array(zs_listen *v, int n)
{
    for (int i = 0; i < n; i++)
        zs_listen_free(&v[i]);
    free(v);
}
