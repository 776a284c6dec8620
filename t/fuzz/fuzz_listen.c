/*
 * fuzz_listen.c — libFuzzer harness for listen entries (zs_listen_parse, zs_listen_parse_list).
 * Parse only: nothing is bound, no file is created (a unix path costs a realpath + stat of its
 * parent directory).
 *
 * Input: the whole buffer up to its first NUL is the entry text, parsed once as a list and
 * once as a single entry.  Checks: a parsed entry has a name, a canonical key, a sockaddr of
 * the kind it claims, a unix path that fits sun_path, a canonical key that parses back to
 * itself; the list parser's count and errors agree with its return value.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include "core/zs_listen.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "fuzz_listen: check failed: %s\n", #c); abort(); } } while (0)

static void check_entry(const zs_listen *l)
{
    CHECK(l->name && *l->name && l->text && l->key);
    switch (l->kind) {
    case ZS_LISTEN_INET:
        CHECK(l->sa.ss_family == AF_INET && l->salen == sizeof(struct sockaddr_in));
        CHECK(ntohs(((const struct sockaddr_in *)&l->sa)->sin_port) >= 1);
        CHECK(!strncmp(l->key, "inet:", 5) && !l->path);
        break;
    case ZS_LISTEN_INET6:
        CHECK(l->sa.ss_family == AF_INET6 && l->salen == sizeof(struct sockaddr_in6));
        CHECK(ntohs(((const struct sockaddr_in6 *)&l->sa)->sin6_port) >= 1);
        CHECK(!strncmp(l->key, "inet6:[", 7) && !l->path);
        break;
    case ZS_LISTEN_UNIX:
        CHECK(l->sa.ss_family == AF_UNIX && l->path && *l->path);
        CHECK(strlen(l->path) < sizeof(((struct sockaddr_un *)0)->sun_path));
        CHECK(!strcmp(((const struct sockaddr_un *)&l->sa)->sun_path, l->path));
        CHECK(!strncmp(l->key, "unix:/", 6));
        break;
    case ZS_LISTEN_FIFO:
        CHECK(l->path && *l->path && !strncmp(l->key, "fifo:/", 6));
        break;
    default:
        CHECK(!"unknown kind");
    }
}

/* An address's canonical key, parsed as an entry, gives the same key (duplicate detection
 * relies on it: two spellings of one address must meet in one key).  A unix key may be too
 * long to be an entry itself; then there is nothing to compare. */
static void check_canonical(const zs_listen *l)
{
    const char *colon = strchr(l->key, ':');
    char *again = NULL;
    if (l->kind == ZS_LISTEN_FIFO)
        again = strdup(l->key);             /* "fifo:/abs" is itself an entry */
    else
        again = strdup(colon + 1);
    zs_listen k;
    char why[300];
    if (zs_listen_parse(again, "svc", &k, why, sizeof(why)) == 0) {
        if (strcmp(k.key, l->key))
            fprintf(stderr, "fuzz_listen: '%s' -> key '%s' -> key '%s'\n", l->text, l->key, k.key);
        CHECK(!strcmp(k.key, l->key));
        zs_listen_free(&k);
    } else {
        if (l->kind == ZS_LISTEN_INET || l->kind == ZS_LISTEN_INET6)
            fprintf(stderr, "fuzz_listen: key '%s' of '%s' refused: %s\n", again, l->text, why);
        CHECK(l->kind == ZS_LISTEN_UNIX || l->kind == ZS_LISTEN_FIFO);
    }
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';

    zs_listen *v = NULL;
    int n = 0;
    zs_errs errs = { 0 };
    int rc = zs_listen_parse_list(text, "svc", "fuzz.cf:1", &v, &n, &errs);
    CHECK((rc == 0) == (errs.n == 0));
    CHECK(n >= 0 && (n == 0 || v));
    for (int i = 0; i < n; i++) {
        check_entry(&v[i]);
        CHECK(v[i].where && !strcmp(v[i].where, "fuzz.cf:1"));
    }
    zs_listen_free_array(v, n);
    zs_errs_free(&errs);

    zs_listen l;
    char why[300];
    why[0] = '\0';
    if (zs_listen_parse(text, "svc", &l, why, sizeof(why)) == 0) {
        check_entry(&l);
        check_canonical(&l);
        CHECK(!strcmp(l.text, text));
        zs_listen_free(&l);
    } else {
        CHECK(why[0] != '\0');
    }
    free(text);
    return 0;
}
