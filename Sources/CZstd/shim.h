// Zstandard (Debian: libzstd-dev), for the compressed host tier of offloaded checkpoints.
#include <zstd.h>
