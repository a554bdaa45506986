#include "c.h"
int part_c(int x) { return x - OFFSET; }
