/* Training recipes: ini files (GLib's GKeyFile, group [train]) in presets/recipes/, every key
 * of which a command-line flag --KEY VALUE overrides. The recipe actually used, as ini text,
 * goes into the trained file's percept.recipe. */
#ifndef PERCEPT_TRAINER_RECIPE_H
#define PERCEPT_TRAINER_RECIPE_H

#include <glib.h>
#include <stdint.h>

typedef struct {
    char *task;            /* upscale */
    char *name, *description;
    char *data, *out;      /* data directory, output weight file */
    /* network */
    char *arch;            /* sr | sr-shuffle | restore | johnson | autoencoder | vae | binary */
    int scale, channels, blocks;
    int code;              /* autoencoder: code channels */
    double tail_gain;      /* sr-shuffle, restore: initial scale of the last conv */
    double block_gain;     /* sr-shuffle, restore: initial scale of each block's second conv */
    int center_input;      /* sr-shuffle, restore: x − 0.5 before the head conv */
    char *upsample;        /* restore-half: "shuffle" (pixel shuffle) or "resize" */
    char *init;            /* "" or a weight file to start from (fine-tuning) */
    /* optimisation */
    int steps, batch, crop;
    double lr, lr_final;   /* cosine decay from lr to lr_final over the steps */
    double discriminator_lr; /* Adam's for D when the losses have adv */
    uint64_t seed;
    char *losses;          /* "spec=weight;…": objective_init builds and checks them */
    char *degrade;         /* see eval_check_degrade */
    char *style;           /* stylize: the style image */
    int style_size;        /* its longer side during training */
    /* bookkeeping */
    int validate_every, checkpoint_every, val_images;
    double val_fraction;
    double max_megapixels;
    gboolean fp16;
    GKeyFile *keys;        /* everything above, as set */
} Recipe;

/* Reads the recipe file (NULL: defaults only), then applies argv's --KEY VALUE flags
 * (argv[0] is the task). Returns 0, or -1 with a message (unknown key, bad value). */
int recipe_load(Recipe *r, const char *path, int argc, char **argv);
/* The same from ini text in memory (name is used in messages): the fuzz target's door. */
int recipe_load_data(Recipe *r, const char *data, size_t len, const char *name, int argc,
                     char **argv);
void recipe_free(Recipe *r);
/* The recipe as ini text. Caller g_free()s. */
char *recipe_text(const Recipe *r);
/* Usage text of the keys. */
extern const char recipe_keys_help[];

#endif
