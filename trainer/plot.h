/* A PNG plot of a training log (the OUT.csv the trainer writes): every column after step
 * and seconds against the step, each scaled to its own range, in column order blue
 * (the total loss), orange, green, red, purple, brown, … (the loss terms, then the
 * validation columns). */
#ifndef PERCEPT_TRAINER_PLOT_H
#define PERCEPT_TRAINER_PLOT_H

/* Reads csv_path (header, then numeric rows; empty cells skipped) and writes png_path.
 * Returns 0, or -1 with a message. */
int plot_training_log(const char *csv_path, const char *png_path);

#endif
