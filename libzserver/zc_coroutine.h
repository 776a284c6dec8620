/*
 * zc_coroutine.h — lib-zc compatibility for coroutine programs (lib-zc's zc_coroutine.h): the
 * coroutine calls are zserver.h's (zcoroutine_go, zcoroutine_yield, the mutex and cond); this
 * adds the base lib-zc's samples name.  There is one coroutine base per process, the server's.
 */
#ifndef ZC_COROUTINE_H
#define ZC_COROUTINE_H
#include "zc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zcoroutine_base_t zcoroutine_base_t;
/* Ends the coroutine server (cobs: NULL or any value, there is one base): a soft-stop with no
 * grace, as zcoroutine_server_stop_notify(0). */
void zcoroutine_base_stop_notify(zcoroutine_base_t *cobs);
/* Milliseconds; only the calling coroutine sleeps. */
void zcoroutine_sleep_millisecond(int milliseconds);

#ifdef __cplusplus
}
#endif
#endif
