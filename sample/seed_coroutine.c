/*
 * seed_coroutine.c — the lib-zc seed's coroutine-mode example (t/seed/coroutine_model.c.txt).
 *
 * Below the marker line is the seed's text with its typo fixed (`accpet(fd)` reads
 * `accept(sock, 0, 0)`) and one line added, marked: the seed's loop has no error check, and
 * after a soft-stop closes the listener accept() returns -1/EBADF for good, so the loop must
 * end there (libzserver yields on such a failure, so even the unchecked loop would not starve
 * the process, but it would spin until the stop deadline).  The seed leaves foo() to the
 * reader: here it writes a greeting line to the accepted fd.
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zserver.h>

/* The seed's callbacks name parameters they do not use. */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#define SEED_GREETING "hello from the seed's coroutine example\r\n"
#define foo() (void)!write(fd, SEED_GREETING, sizeof(SEED_GREETING) - 1)

/* ---- the seed's text ---- */
static void *do_accept(void *ctx)
{
    int sock = (int)(long)ctx;
    while (1) {
        int fd = accept(sock, 0, 0);
        if (fd < 0) { if (errno == EBADF || errno == EINVAL) break; continue; } /* added */
        foo();
        close(fd);
    }
    return 0;
}

static void _service_register(const char *service_name, int fd, int fd_type)
{
    /* service_name 就是上面的 imapd, imapd-ssl */
    /* fd 是 从 master 继承的监听端口, 应该通过 accept 处理 */
    /* fd_type 可选 zvar_tcp_listen_type_inet, zvar_tcp_listen_type_unix */

    /* 大部分情况下, 这个 fd 需要 accpet, 一般通过启动新的协程来处理 */
    zcoroutine_go(do_accept, (void *)(long)fd, 0);
}

int main(int argc, char **argv)
{
    zcoroutine_server_service_register = _service_register;
    return zcoroutine_server_main(argc, argv);
}
