#include <stdio.h>
int part_a(int x);
int part_b(int x);
int part_c(int x);
int main(void) {
    printf("parts %d %d %d\n", part_a(10), part_b(10), part_c(10));
    return 0;
}
