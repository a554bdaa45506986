int core1(void) { return 1; }
