/*
 * fuzz_config.c — libFuzzer harness for the .cf reader (zs_config_load_mem) followed by the
 * server-* key validation (zs_service_from_config) of whatever it read.
 *
 * The input is the file's bytes, NULs and all.  need_command is 0 and nothing is bound, so
 * the only I/O is read-only (stat of a command word, getpwnam for server-user, realpath of a
 * unix socket's parent directory).  Checks beyond "no crash, no leak": a load that reports
 * success added no error line, every value read fits on one line, and a service that
 * validated has sane fields, and what was read reads back the same when written out again.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/zs_config.h"
#include "core/zs_service.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "fuzz_config: check failed: %s\n", #c); abort(); } } while (0)

/* What was read, written back as `key=value` lines (after a comment line, so no key is on the
 * first line where a byte-order mark would be skipped), reads back the same: the reader never
 * accepts a setting it could not read again. */
static void check_round_trip(const zs_config *cf)
{
    size_t cap = 3, len = 0;
    for (size_t i = 0; i < cf->n; i++)
        cap += strlen(cf->kv[i].key) + strlen(cf->kv[i].value) + 2;
    char *text = malloc(cap);
    len += (size_t)sprintf(text, "#\n");
    for (size_t i = 0; i < cf->n; i++)
        len += (size_t)sprintf(text + len, "%s=%s\n", cf->kv[i].key, cf->kv[i].value);
    zs_config again;
    zs_errs errs = { 0 };
    zs_config_init(&again);
    int rc = zs_config_load_mem(&again, "again.cf", text, len, &errs);
    if (rc != 0)
        fprintf(stderr, "fuzz_config: written back:\n%s\nrefused: %s\n", text, errs.msg[0]);
    CHECK(rc == 0);
    CHECK(again.n == cf->n);
    for (size_t i = 0; i < cf->n; i++) {
        CHECK(!strcmp(again.kv[i].key, cf->kv[i].key));
        CHECK(!strcmp(again.kv[i].value, cf->kv[i].value));
    }
    zs_errs_free(&errs);
    zs_config_free(&again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    zs_config cf;
    zs_errs errs = { 0 };
    zs_config_init(&cf);
    int rc = zs_config_load_mem(&cf, "fuzz.cf", (const char *)data, size, &errs);
    CHECK((rc == 0) == (errs.n == 0));
    for (size_t i = 0; i < cf.n; i++) {
        const zs_kv *kv = &cf.kv[i];
        CHECK(kv->key && kv->value && kv->file);
        CHECK(*kv->key);
        CHECK(kv->line >= 1);
        CHECK(strlen(kv->key) + strlen(kv->value) <= ZS_CONFIG_MAX_LINE);
        CHECK(!strchr(kv->key, '\n') && !strchr(kv->value, '\n'));
        CHECK(!strchr(kv->key, '=') && !strchr(kv->key, ':'));
    }
    if (rc == 0)
        check_round_trip(&cf);
    /* Validate whatever was read, even after reader errors: masterd -t does the same. */
    zs_service s;
    zs_errs serrs = { 0 };
    if (zs_service_from_config(&s, "fuzz", "fuzz.cf", &cf, 0, &serrs) == 0) {
        CHECK(serrs.n == 0);
        CHECK(s.proc_count >= 1 && s.proc_count <= 4096);
        CHECK(s.backlog >= 1 && s.backlog <= 65535);
        CHECK(s.unix_mode <= 07777);
        CHECK(s.ready_timeout >= 1);
        CHECK(s.nlisten >= 0);
        for (int i = 0; i < s.nlisten; i++)
            CHECK(s.listen[i].name && s.listen[i].key && s.listen[i].text);
        for (int i = 0; i < s.argc; i++)
            CHECK(s.argv[i] && *s.argv[i]);
        CHECK(!s.argv || !s.argv[s.argc]);
        zs_service_free(&s);
    } else {
        CHECK(serrs.n > 0);
        CHECK(!s.id && !s.listen);   /* freed on failure */
    }
    zs_errs_free(&serrs);
    zs_errs_free(&errs);
    zs_config_free(&cf);
    return 0;
}
