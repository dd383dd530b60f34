/* Test helper: runs a weight file on a raw float32 NCHW input and writes the raw output.
 *   run-raw MODEL.safetensors N C H W IN.f32 OUT.f32 */
#include <stdio.h>
#include <stdlib.h>

#include "percept/percept.h"

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: run-raw MODEL N C H W IN.f32 OUT.f32\n");
        return 2;
    }
    PerceptNet *net = percept_net_load(argv[1]);
    if (!net) {
        fprintf(stderr, "run-raw: %s\n", percept_error());
        return 1;
    }
    PerceptTensor in = {atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), NULL}, out;
    size_t n = percept_tensor_numel(&in);
    in.data = malloc(sizeof(float) * n);
    FILE *f = fopen(argv[6], "rb");
    if (!f || fread(in.data, sizeof(float), n, f) != n) {
        fprintf(stderr, "run-raw: cannot read %zu floats from %s\n", n, argv[6]);
        return 1;
    }
    fclose(f);
    if (percept_net_forward(net, &in, &out)) {
        fprintf(stderr, "run-raw: %s\n", percept_error());
        return 1;
    }
    f = fopen(argv[7], "wb");
    fwrite(out.data, sizeof(float), percept_tensor_numel(&out), f);
    fclose(f);
    printf("%d %d %d %d\n", out.n, out.c, out.h, out.w);
    free(in.data);
    percept_net_free(net);
    return 0;
}
