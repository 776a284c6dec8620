/*
 * fuzz_args.c — libFuzzer harness for the generic-argument parser zs_server_parse_args
 * (`-key value`, `--flag`, `--key=value`, the first other word is the command; doc/CONTRACT.md §8).
 *
 * The input is split on NUL bytes into argv[1..] (argv[0] is "prog").  Checks: success leaves
 * the command NULL or pointing at one of the words, failure leaves a reason; every setting
 * came from the arguments and has a key.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/zs_server.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "fuzz_args: check failed: %s\n", #c); abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = '\0';
    int argc = 1;
    for (size_t i = 0; i < size; i++)
        argc += buf[i] == '\0';
    argc += 1;   /* the last word (after the last NUL, maybe empty) */
    char **argv = calloc((size_t)argc + 1, sizeof(char *));
    argv[0] = "prog";
    int k = 1;
    for (char *p = buf; k < argc; k++) {
        argv[k] = p;
        p += strlen(p) + 1;
    }
    argv[argc] = NULL;

    zs_config cfg;
    const char *command = (const char *)1;
    char why[300];
    why[0] = '\0';
    zs_config_init(&cfg);
    if (zs_server_parse_args(argc, argv, &cfg, &command, why, sizeof(why)) == 0) {
        if (command) {
            int found = 0;
            for (int i = 1; i < argc; i++)
                found |= command == argv[i];
            CHECK(found);
            CHECK(command[0] != '-' || command[1] == '\0' || !strcmp(command, "--"));
        }
        for (size_t i = 0; i < cfg.n; i++) {
            CHECK(cfg.kv[i].key && *cfg.kv[i].key && cfg.kv[i].value);
            CHECK(!strcmp(cfg.kv[i].file, "argv") && cfg.kv[i].line == 0);
        }
    } else {
        CHECK(why[0] != '\0');
    }
    zs_config_free(&cfg);
    free(argv);
    free(buf);
    return 0;
}
