/* The plug-in's dialogs (GIMP 2.10, GTK 2; see percept-dialog.h). */
#include <string.h>

#include "percept-dialog.h" /* libgimp/gimp.h first: gimpui.h needs its types */
#include <libgimp/gimpui.h>

typedef struct {
    PerceptParams *p;
    gint32 drawable;
    GPtrArray *presets;
    GtkWidget *combo, *file, *preview, *note;
} Dialog;

/* The combo's entries: the presets, then "Custom file". */
static void model_from_widgets(Dialog *d)
{
    int i = gtk_combo_box_get_active(GTK_COMBO_BOX(d->combo));
    char *file = gtk_file_chooser_get_filename(GTK_FILE_CHOOSER(d->file));
    if (i >= 0 && i < (int)d->presets->len)
        g_strlcpy(d->p->model, ((PerceptPresetInfo *)g_ptr_array_index(d->presets, i))->name,
                  sizeof d->p->model);
    else
        g_strlcpy(d->p->model, file ? file : "", sizeof d->p->model);
    gtk_widget_set_sensitive(d->file, i == (int)d->presets->len);
    g_free(file);
    char *error = NULL;
    gtk_label_set_text(GTK_LABEL(d->note), "");
    if (!percept_params_check(d->p, &error)) {
        gtk_label_set_text(GTK_LABEL(d->note), error);
        g_free(error);
    } else if (i >= 0 && i < (int)d->presets->len) {
        gtk_label_set_text(GTK_LABEL(d->note),
                           ((PerceptPresetInfo *)g_ptr_array_index(d->presets, i))->description);
    }
}

static void on_model_changed(GtkWidget *w, Dialog *d)
{
    model_from_widgets(d);
    if (d->preview)
        gimp_preview_invalidate(GIMP_PREVIEW(d->preview));
}

/* The preview: the operation on the visible part of the drawable (instance-norm styles see
 * only that part, so the full result can differ a little in tone). */
static void on_preview(GimpPreview *preview, Dialog *d)
{
    gint x, y, w, h;
    gimp_preview_get_position(preview, &x, &y);
    gimp_preview_get_size(preview, &w, &h);
    char *error = NULL;
    if (!percept_params_check(d->p, &error)) {
        g_free(error);
        return;
    }
    GeglBuffer *src = gimp_drawable_get_buffer(d->drawable);
    /* the preview area draws 8-bit pixels of the drawable's layout, whatever its precision */
    gboolean grey = gimp_drawable_is_gray(d->drawable), alpha = gimp_drawable_has_alpha(d->drawable);
    const Babl *format = babl_format(grey ? (alpha ? "Y'A u8" : "Y' u8")
                                          : (alpha ? "R'G'B'A u8" : "R'G'B' u8"));
    GeglRectangle r = {x, y, w, h};
    GeglBuffer *out = gegl_buffer_new(&r, format);
    if (percept_params_apply(d->p, src, &r, out, NULL, NULL, &error)) {
        guchar *px = g_malloc((size_t)w * h * babl_format_get_bytes_per_pixel(format));
        gegl_buffer_get(out, &r, 1.0, format, px, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
        gimp_preview_draw_buffer(preview, px, w * babl_format_get_bytes_per_pixel(format));
        g_free(px);
    }
    g_free(error);
    g_object_unref(out);
    g_object_unref(src);
}

static void on_scale(GtkAdjustment *adj, Dialog *d)
{
    gimp_double_adjustment_update(adj, g_object_get_data(G_OBJECT(adj), "value"));
    if (d->preview)
        gimp_preview_invalidate(GIMP_PREVIEW(d->preview));
}

static void add_scale(Dialog *d, GtkWidget *table, int row, const char *label, double *value,
                      double lo, double hi)
{
    GtkObject *adj = gimp_scale_entry_new(GTK_TABLE(table), 0, row, label, 200, 6, *value, lo,
                                          hi, 0.01, 0.1, 2, TRUE, 0, 0, NULL, NULL);
    g_object_set_data(G_OBJECT(adj), "value", value);
    g_signal_connect(adj, "value-changed", G_CALLBACK(on_scale), d);
}

static void on_toggle(GtkToggleButton *b, Dialog *d)
{
    *(gboolean *)g_object_get_data(G_OBJECT(b), "value") = gtk_toggle_button_get_active(b);
    if (d->preview)
        gimp_preview_invalidate(GIMP_PREVIEW(d->preview));
}

static void add_toggle(Dialog *d, GtkWidget *table, int row, const char *label, gboolean *value)
{
    GtkWidget *b = gtk_check_button_new_with_mnemonic(label);
    gtk_toggle_button_set_active(GTK_TOGGLE_BUTTON(b), *value);
    g_object_set_data(G_OBJECT(b), "value", value);
    g_signal_connect(b, "toggled", G_CALLBACK(on_toggle), d);
    gtk_table_attach(GTK_TABLE(table), b, 1, 3, row, row + 1, GTK_FILL, GTK_FILL, 0, 0);
}

static void on_choice(GtkComboBox *c, int *value)
{
    int i = gtk_combo_box_get_active(c);
    *value = GPOINTER_TO_INT(g_object_get_data(G_OBJECT(c), "factor")) ? 2 << i : i;
}

static GtkWidget *choice(const char *const *items, int active, int *value, int factor)
{
    GtkWidget *c = gtk_combo_box_text_new();
    for (int i = 0; items[i]; i++)
        gtk_combo_box_text_append_text(GTK_COMBO_BOX_TEXT(c), items[i]);
    g_object_set_data(G_OBJECT(c), "factor", GINT_TO_POINTER(factor));
    gtk_combo_box_set_active(GTK_COMBO_BOX(c), active);
    g_signal_connect(c, "changed", G_CALLBACK(on_choice), value);
    return c;
}

static void attach_row(GtkWidget *table, int row, const char *label, GtkWidget *w)
{
    gimp_table_attach_aligned(GTK_TABLE(table), 0, row, label, 0.0, 0.5, w, 2, FALSE);
}

gboolean percept_dialog_run(PerceptParams *p, gint32 drawable)
{
    static const char *const titles[] = {"Percept Stylize", "Percept Upscale",
                                         "Percept Reconstruct"};
    static const char *const devices[] = {"Auto", "CPU", "CUDA", NULL};
    static const char *const scales[] = {"×2", "×4", "×8", NULL};
    gimp_ui_init("percept", TRUE);
    Dialog d = {p, drawable, percept_presets_list(p->task), NULL, NULL, NULL, NULL};
    GtkWidget *dialog = gimp_dialog_new(titles[p->task], "percept", NULL, 0,
                                        gimp_standard_help_func, NULL, "_Cancel",
                                        GTK_RESPONSE_CANCEL, "_OK", GTK_RESPONSE_OK, NULL);
    GtkWidget *box = gtk_vbox_new(FALSE, 12);
    gtk_container_set_border_width(GTK_CONTAINER(box), 12);
    gtk_box_pack_start(GTK_BOX(gtk_dialog_get_content_area(GTK_DIALOG(dialog))), box, TRUE,
                       TRUE, 0);
    if (p->task != PERCEPT_TASK_UPSCALE) {
        d.preview = gimp_drawable_preview_new_from_drawable_id(drawable);
        gtk_box_pack_start(GTK_BOX(box), d.preview, TRUE, TRUE, 0);
        g_signal_connect(d.preview, "invalidated", G_CALLBACK(on_preview), &d);
    }
    GtkWidget *table = gtk_table_new(6, 3, FALSE);
    gtk_table_set_col_spacings(GTK_TABLE(table), 6);
    gtk_table_set_row_spacings(GTK_TABLE(table), 6);
    gtk_box_pack_start(GTK_BOX(box), table, FALSE, FALSE, 0);
    int row = 0, active = (int)d.presets->len;
    char *model = percept_params_model(p); /* what the operation would run */
    d.combo = gtk_combo_box_text_new();
    for (guint i = 0; i < d.presets->len; i++) {
        const char *name = ((PerceptPresetInfo *)g_ptr_array_index(d.presets, i))->name;
        gtk_combo_box_text_append_text(GTK_COMBO_BOX_TEXT(d.combo), name);
        if (!strcmp(name, model) || (!*p->model && i == 0 && active == (int)d.presets->len))
            active = (int)i;
    }
    g_free(model);
    gtk_combo_box_text_append_text(GTK_COMBO_BOX_TEXT(d.combo), "Custom file…");
    attach_row(table, row++, "_Model:", d.combo);
    d.file = gtk_file_chooser_button_new("Percept model", GTK_FILE_CHOOSER_ACTION_OPEN);
    GtkFileFilter *filter = gtk_file_filter_new();
    gtk_file_filter_set_name(filter, "percept models (*.safetensors)");
    gtk_file_filter_add_pattern(filter, "*.safetensors");
    gtk_file_chooser_add_filter(GTK_FILE_CHOOSER(d.file), filter);
    if (active == (int)d.presets->len && *p->model)
        gtk_file_chooser_set_filename(GTK_FILE_CHOOSER(d.file), p->model);
    attach_row(table, row++, "_File:", d.file);
    d.note = gtk_label_new("");
    gtk_label_set_line_wrap(GTK_LABEL(d.note), TRUE);
    gtk_misc_set_alignment(GTK_MISC(d.note), 0.0, 0.5);
    gtk_table_attach(GTK_TABLE(table), d.note, 1, 3, row, row + 1, GTK_FILL, GTK_FILL, 0, 0);
    row++;
    if (p->task == PERCEPT_TASK_UPSCALE)
        attach_row(table, row++, "_Scale:",
                   choice(scales, p->scale == 8 ? 2 : p->scale == 4 ? 1 : 0, &p->scale, 1));
    else
        add_scale(&d, table, row++, "S_trength:", &p->strength, 0.0, 1.0);
    if (p->task == PERCEPT_TASK_STYLIZE) {
        add_scale(&d, table, row++, "St_yle scale:", &p->style_scale, 0.25, 4.0);
        add_toggle(&d, table, row++, "_Preserve colors", &p->preserve_colors);
    } else
        add_toggle(&d, table, row++, "Self-_ensemble (8× slower)", &p->self_ensemble);
    attach_row(table, row++, "_Device:", choice(devices, p->device, &p->device, 0));
    g_signal_connect(d.combo, "changed", G_CALLBACK(on_model_changed), &d);
    g_signal_connect(d.file, "file-set", G_CALLBACK(on_model_changed), &d);
    gtk_combo_box_set_active(GTK_COMBO_BOX(d.combo), active);
    model_from_widgets(&d);
    gtk_widget_show_all(dialog);
    gboolean ok = gimp_dialog_run(GIMP_DIALOG(dialog)) == GTK_RESPONSE_OK;
    if (ok)
        model_from_widgets(&d);
    gtk_widget_destroy(dialog);
    g_ptr_array_unref(d.presets);
    return ok;
}
