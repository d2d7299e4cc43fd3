/* IoT Edge deployments as users (or mistakes) write them: the input goes to gm_manifest_parse_as
 * as one deployment JSON, createOptions strings and all. The contract is
 * fuzz_manifest.h's. */
#define FORMAT    GM_MF_IOTEDGE
#define FILE_NAME "fuzz.json"

#include "fuzz_manifest.h"
