/* tools/cairnctl_tsdb.c -- `cairnctl tsdb ...`: inspecting a data directory without a server. */
#include "tools/cairnctl.h"

#include <stdio.h>
#include <string.h>

int cairnctl_tsdb(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: cairnctl tsdb list|analyze|dump|verify|import ...\n");
        return argc < 2 ? 2 : 0;
    }
    fprintf(stderr, "cairnctl: unknown tsdb command %s\n", argv[1]);
    return 2;
}
