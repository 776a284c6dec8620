/*
 * zmaster.h — the master as a library function (doc/CONTRACT.md §13): lib-zc's
 * zmaster_server_main and its hooks, for programs that do not include zc.h.
 */
#ifndef ZMASTER_H
#define ZMASTER_H
#include "core/zc_core.h"

int zmaster_server_main(int argc, char **argv);
extern void (*zmaster_server_before_service)(void);
extern void (*zmaster_server_load_config)(zvector_t *cfs);
void zmaster_server_load_config_from_dirname(const char *config_dir_pathname, zvector_t *cfs);
#endif
