#include <stdio.h>
#include "greet.h"

int greet_format(char *buf, int size, const char *name) {
    return snprintf(buf, (size_t)size, "Hello, %s!", name);
}

const char *greet_version(void) {
    return "1.2.0";
}
