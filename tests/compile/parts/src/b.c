#include "common.h"
int part_b(int x) { return x + FACTOR; }
