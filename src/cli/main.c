#include "cli/cli.h"

#include <curl/curl.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = gm_cli_main(argc, argv, stdout, stderr);
    if (fflush(stdout) != 0 && rc == GM_CLI_EXIT_OK)
        rc = GM_CLI_EXIT_FAIL; /* e.g. a full disk: the output is incomplete */
    curl_global_cleanup();
    return rc;
}
