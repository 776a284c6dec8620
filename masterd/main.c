/* masterd: lib-zc's master program (doc/CONTRACT.md §13); all of it is zmaster_server_main. */
#include "master/zmaster.h"

int main(int argc, char **argv) { return zmaster_server_main(argc, argv); }
