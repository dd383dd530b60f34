/* Weighted loss sums (see objective.h). */
#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "degrade.h"
#include "images.h"
#include "objective.h"

/* style:NET:LAYERS and style-mmd[:OPTS] */
static int is_style(const char *spec)
{
    return !strncmp(spec, "style:", 6) || !strncmp(spec, "style-mmd", 9);
}

/* Style losses compare with the style image, tv with nothing. */
static int takes_reference(const char *spec)
{
    return !is_style(spec) && strcmp(spec, "tv");
}

int objective_init(Objective *o, const char *text)
{
    memset(o, 0, sizeof *o);
    char **items = g_strsplit(text ? text : "", ";", -1);
    int rc = 0;
    for (char **it = items; *it && !rc; it++) {
        char *item = g_strstrip(*it);
        if (!*item)
            continue;
        if (o->n == OBJECTIVE_MAX_TERMS) {
            rc = percept_fail("at most %d losses", OBJECTIVE_MAX_TERMS);
            break;
        }
        char *eq = strchr(item, '='), *end = NULL;
        double w = 1.0;
        if (eq) {
            *eq = 0;
            w = g_ascii_strtod(eq + 1, &end);
            if (*end || !(w > 0) || !(w < 1e6)) {
                rc = percept_fail("loss '%s' has a bad weight '%s'", item, eq + 1);
                break;
            }
        }
        item = g_strstrip(item);
        double *own = !strcmp(item, "adv") ? &o->adversarial : !strcmp(item, "kl") ? &o->kl : NULL;
        if (own) {
            if (*own) {
                rc = percept_fail("loss '%s' is given twice", item);
                break;
            }
            *own = w;
            continue;
        }
        if (!(o->loss[o->n] = percept_loss_new(item))) {
            rc = percept_fail_prefix("loss '%s': ", item);
            break;
        }
        o->spec[o->n] = g_strdup(item);
        o->weight[o->n++] = w;
    }
    if (!rc && o->n == 0 && !o->adversarial && !o->kl)
        rc = percept_fail("no losses given");
    g_strfreev(items);
    if (rc)
        objective_free(o);
    return rc;
}

void objective_free(Objective *o)
{
    for (int i = 0; i < o->n; i++) {
        percept_loss_free(o->loss[i]);
        g_free(o->spec[i]);
    }
    memset(o, 0, sizeof *o);
}

int objective_has_style(const Objective *o)
{
    for (int i = 0; i < o->n; i++)
        if (is_style(o->spec[i]))
            return 1;
    return 0;
}

int objective_set_style(Objective *o, const char *path, int side)
{
    PerceptTensor img;
    if (image_load_rgb(path, &img))
        return -1;
    PerceptTensor style;
    int rc = degrade_resize(&img, side, 1, &style);
    for (int i = 0; i < o->n && !rc; i++)
        if (is_style(o->spec[i]) && percept_loss_set_target(o->loss[i], &style))
            rc = percept_fail_prefix("loss %s: ", o->spec[i]);
    free(img.data);
    free(style.data);
    return rc;
}

int objective_eval(Objective *o, const PerceptTensor *x, const PerceptTensor *reference,
                   double *terms, double *total, float *grad)
{
    for (int i = 0; i < o->n; i++)
        if (takes_reference(o->spec[i]) &&
            (!reference || percept_loss_set_target(o->loss[i], reference)))
            return reference ? percept_fail_prefix("loss %s: ", o->spec[i])
                             : percept_fail("loss %s needs a reference image", o->spec[i]);
    if (percept_losses_eval(o->loss, o->weight, o->n, x, terms, grad))
        return -1;
    *total = 0;
    for (int i = 0; i < o->n; i++)
        *total += o->weight[i] * terms[i];
    return 0;
}
