/*
 * zserver_core.h — the public part of libzserver's core layer: logging and the fd types handed
 * to the service_register hooks.  Included by zserver.h (installed beside it); the supervisor
 * (masterd, libzserver/super/) includes this one and never zserver.h, which declares the
 * server runtime above it.
 */
#ifndef ZSERVER_CORE_H
#define ZSERVER_CORE_H

#ifdef __cplusplus
extern "C" {
#endif

/* ---- fd types handed to the service_register hooks ---- */
#define zvar_tcp_listen_type_inet 'i'
#define zvar_tcp_listen_type_unix 'u'
#define zvar_tcp_listen_type_fifo 'f'

/* ---- logging: `MM/DD/YYYY HH:MM:SS UTC LEVEL: file:func:line: PID:n message`, one write a line ---- */
enum { ZLOG_DEBUG = 0, ZLOG_INFO, ZLOG_WARNING, ZLOG_ERROR, ZLOG_FATAL };
void zlog_write(int level, const char *file, const char *func, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* zfatal logs then exits the process with status 1: it is the program's own decision to die. */
void zlog_fatal(const char *file, const char *func, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));
extern int zvar_log_debug_enable;
#define zdebug(...) do { if (zvar_log_debug_enable) zlog_write(ZLOG_DEBUG, __FILE__, __func__, __LINE__, __VA_ARGS__); } while (0)
#define zinfo(...) zlog_write(ZLOG_INFO, __FILE__, __func__, __LINE__, __VA_ARGS__)
#define zwarning(...) zlog_write(ZLOG_WARNING, __FILE__, __func__, __LINE__, __VA_ARGS__)
#define zerror(...) zlog_write(ZLOG_ERROR, __FILE__, __func__, __LINE__, __VA_ARGS__)
#define zfatal(...) zlog_fatal(__FILE__, __func__, __LINE__, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
