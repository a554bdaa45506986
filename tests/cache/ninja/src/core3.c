int core3(void) { return 3; }
