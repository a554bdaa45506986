/* Compresses a buffer with the installed libzstd and checks the round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

int main(void) {
    char input[4096];
    for (size_t i = 0; i < sizeof input; i++) input[i] = (char)('a' + i % 7);
    size_t bound = ZSTD_compressBound(sizeof input);
    void *packed = malloc(bound);
    char output[sizeof input];
    size_t size = ZSTD_compress(packed, bound, input, sizeof input, 3);
    if (ZSTD_isError(size)) { fprintf(stderr, "%s\n", ZSTD_getErrorName(size)); return 1; }
    size_t back = ZSTD_decompress(output, sizeof output, packed, size);
    if (ZSTD_isError(back) || back != sizeof input || memcmp(input, output, back) != 0) {
        fprintf(stderr, "round trip failed\n");
        return 1;
    }
    printf("zstd %s, round trip ok (%zu -> %zu bytes)\n", ZSTD_versionString(), sizeof input, size);
    free(packed);
    return 0;
}
