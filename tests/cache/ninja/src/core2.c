int core2(void) { return 2; }
