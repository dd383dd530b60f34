#include <stdio.h>
#include "percept/percept.h"
int main(void) { printf("percept %s\n", PERCEPT_VERSION); return 0; }
