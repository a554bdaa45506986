#include "common.h"
int part_a(int x) { return x * FACTOR; }
