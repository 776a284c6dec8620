/*
 * hello_workers.c — the Melon seed's multi-process "hello" in libzserver's API.
 *
 *   ./hello_workers alone -server-proc-count 3
 *
 * main() runs once, before the workers are forked (Melon's global_init); before_service runs in
 * every worker with the loop ready (Melon's worker_process) and sets a one-second timer that
 * re-arms itself, as the seed's print_handler does.
 */
#include <stdio.h>
#include <zserver.h>

static char text[1024];

static int global_init(void)
{
    int n = snprintf(text, sizeof(text) - 1, "hello world");
    text[n] = 0;
    return 0;
}

static void print_handler(void *data)
{
    zinfo("%s", (char *)data);
    zaio_timer_set(1000, print_handler, data);
}

static void worker_process(void)
{
    zaio_timer_set(1000, print_handler, text);
}

int main(int argc, char **argv)
{
    if (global_init() != 0)
        return 1;
    zaio_server_before_service = worker_process;
    return zaio_server_main(argc, argv);
}
