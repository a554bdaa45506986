#ifndef GREET_H
#define GREET_H

/* Writes "Hello, NAME!" into buf (at most size bytes); returns the length. */
int greet_format(char *buf, int size, const char *name);

/* The library version, "1.2.0". */
const char *greet_version(void);

#endif
