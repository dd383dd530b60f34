/* Golden tests: networks computed by PyTorch (tests/golden/make-fixtures.py) — outputs,
 * input gradients, every parameter gradient and updated running statistics — against
 * percept on the same weights. Tolerance per tensor: max |a - b| <= 1e-4 S + 1e-6 with S the
 * tensor's largest |value|; for parameter gradients S is at least 1% of the network's largest
 * gradient, because some are mathematically zero (a conv bias followed by instance norm) and
 * hold only rounding noise in PyTorch and here alike. */
#include "check.h"
#include "percept/percept.h"

static void compare(const char *fixture, const char *what, const float *got, const float *want,
                    size_t n, double floor)
{
    double diff = 0, scale = floor;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)got[i] - want[i]));
        scale = fmax(scale, fabs(want[i]));
    }
    int ok = diff <= 1e-4 * scale + 1e-6;
    CHECK(ok, "%s %s: max error %.3g (max |value| %.3g)", fixture, what, diff, scale);
    printf("  %-13s %-30s max err %.2e  rel %.2e%s\n", fixture, what, diff, diff / (scale + 1e-30),
           ok ? "" : "  FAIL");
}

static const PerceptStTensor *need(const PerceptSafetensors *st, const char *name)
{
    const PerceptStTensor *t = percept_st_find(st, name);
    CHECK(t != NULL, "%s: fixture has no %s", st->path, name);
    return t;
}

static void run_fixture(const char *file, const char *builder_arch)
{
    char path[256];
    snprintf(path, sizeof path, "golden/%s.safetensors", file);
    PerceptSafetensors *st = percept_st_read(path);
    CHECK(st != NULL, "fixture missing or unreadable: %s", percept_error());
    if (!st)
        return;
    /* the weights alone: every tensor that is not a golden.* record */
    PerceptSafetensors weights = *st;
    weights.tensors = malloc(sizeof *weights.tensors * st->n_tensors);
    weights.n_tensors = 0;
    for (int i = 0; i < st->n_tensors; i++)
        if (strncmp(st->tensors[i].name, "golden.", 7))
            weights.tensors[weights.n_tensors++] = st->tensors[i];
    const char *mode = percept_st_meta(st, "golden.mode");
    int training = mode && !strcmp(mode, "train");
    const char *arch = builder_arch ? builder_arch : percept_st_meta(st, "percept.arch");
    PerceptNet *net = percept_net_from_safetensors(&weights, arch);
    CHECK(net != NULL, "%s: %s", file, percept_error());
    const PerceptStTensor *in = need(st, "golden.input"), *out = need(st, "golden.output");
    const PerceptStTensor *dout = need(st, "golden.dout"), *din = need(st, "golden.din");
    if (net && in && out && dout && din) {
        percept_net_set_training(net, training);
        percept_net_set_grad(net, 1);
        PerceptTensor x = {(int)in->shape[0], (int)in->shape[1], (int)in->shape[2],
                           (int)in->shape[3], in->data}, y;
        CHECK(percept_net_forward(net, &x, &y) == 0, "%s forward: %s", file, percept_error());
        CHECK(percept_tensor_numel(&y) == out->numel, "%s: output has %zu values, want %zu", file,
              percept_tensor_numel(&y), out->numel);
        if (percept_tensor_numel(&y) == out->numel)
            compare(file, "output", y.data, out->data, out->numel, 0);
        float *dx = malloc(sizeof(float) * din->numel);
        percept_net_zero_grads(net);
        CHECK(percept_net_backward(net, dout->data, dx) == 0, "%s backward: %s", file,
              percept_error());
        compare(file, "d input", dx, din->data, din->numel, 0);
        free(dx);
        int grads = 0, after = 0;
        double grad_scale = 0;
        for (int i = 0; i < st->n_tensors; i++)
            if (!strncmp(st->tensors[i].name, "golden.grad.", 12))
                for (size_t j = 0; j < st->tensors[i].numel; j++)
                    grad_scale = fmax(grad_scale, fabs(st->tensors[i].data[j]));
        for (int i = 0; i < st->n_tensors; i++) {
            const char *name = st->tensors[i].name;
            size_t n;
            if (!strncmp(name, "golden.grad.", 12)) {
                float *g = percept_net_param_grad(net, name + 12, &n);
                CHECK(g && n == st->tensors[i].numel, "%s: no gradient for %s", file, name + 12);
                if (g && n == st->tensors[i].numel)
                    compare(file, name + 7, g, st->tensors[i].data, n, 0.01 * grad_scale);
                grads++;
            } else if (!strncmp(name, "golden.after.", 13)) {
                float *p = percept_net_param(net, name + 13, &n);
                CHECK(p && n == st->tensors[i].numel, "%s: no buffer %s", file, name + 13);
                if (p && n == st->tensors[i].numel)
                    compare(file, name + 7, p, st->tensors[i].data, n, 0);
                after++;
            }
        }
        CHECK(grads > 0 && (!training || after > 0), "%s: fixture holds no gradients", file);
    }
    percept_net_free(net);
    free(weights.tensors);
    percept_st_free(st);
}

int main(void)
{
    /* the fixture's architecture comes from `percept arch`; building it again here checks the
     * builder still produces the names and structure PyTorch was run with */
    char *johnson = percept_arch_johnson(&(PerceptJohnsonOpts){4, 2, 0});
    run_fixture("johnson", johnson);
    run_fixture("johnson", NULL);
    free(johnson);
    run_fixture("sr4", NULL);
    run_fixture("discriminator", NULL);
    run_fixture("vgg-like", NULL);
    return check_done("test-golden");
}
