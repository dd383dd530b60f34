/* The GIMP 2.10 dialog of each procedure: a preset chooser (installed presets with their
 * descriptions, or a custom file), the operation's settings, and for stylize and
 * reconstruct a live preview of the drawable. */
#ifndef PERCEPT_PLUGIN_DIALOG_H
#define PERCEPT_PLUGIN_DIALOG_H

#include <libgimp/gimp.h>

#include "percept-graph.h"

/* Shows the dialog with p's values; TRUE and p updated when the user pressed OK. */
gboolean percept_dialog_run(PerceptParams *p, gint32 drawable);

#endif
