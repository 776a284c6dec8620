/*
 * seed_aio.c — the lib-zc seed's aio-mode example, compiled as written.
 *
 * Everything below the marker line is the seed's text, byte for byte (t/seed/aio_model.c.txt;
 * t/e2e/test_aio.py checks that it stays so).  The seed leaves foo() to the reader: here it
 * writes a greeting to the accepted fd, so the example answers each connection with one line
 * and closes it.
 */
#include <unistd.h>
#include <zserver.h>

/* The seed's callbacks name parameters they do not use. */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#define SEED_GREETING "hello from the seed's aio example\r\n"
#define foo() (void)!write(fd, SEED_GREETING, sizeof(SEED_GREETING) - 1)

/* ---- the seed's text ---- */
static void do_something(int fd)
{
    /* fd 是 accept 后得到的文件描述符, 使用者自己处理, 最后记得要 close */
    foo();
    close(fd);
}

static void _service_register(const char *service_name, int fd, int fd_type)
{
    /* service_name 就是上面的 imapd, imapd-ssl */
    /* fd 是 从 master 继承的监听端口, 应该通过 accept 处理 */
    /* fd_type 可选 zvar_tcp_listen_type_inet, zvar_tcp_listen_type_unix */
    
    /* 下面这个函数是一个通用的, 简单的处理机制 */
    zaio_server_general_aio_register(zvar_default_aio_base, fd, fd_type, do_something);
}

int main(int argc, char **argv)
{

    zaio_server_service_register = _service_register;
    return zaio_server_main(argc, argv);
}
