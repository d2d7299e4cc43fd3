/* Kubernetes manifests as users (or mistakes) write them: the input goes to gm_manifest_parse_as
 * as one YAML file of Pods, Jobs and Deployments. The contract is
 * fuzz_manifest.h's. */
#define FORMAT    GM_MF_KUBERNETES
#define FILE_NAME "fuzz.yaml"

#include "fuzz_manifest.h"
