#ifndef HELLO_H
#define HELLO_H
const char *hello_greeting(void);
#endif
