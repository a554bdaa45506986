#include <stdio.h>
int core1(void);
int core2(void);
int core3(void);
int main(void) {
    printf("core says %d\n", core1() + core2() + core3());
    return 0;
}
