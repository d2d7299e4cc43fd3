#include "gpusim/nvml/nvml_internal.h"
