/* The percept command's pieces: each subcommand in its own file. */
#ifndef PERCEPT_CLI_H
#define PERCEPT_CLI_H

extern const char percept_usage[];

/* percept compare A B [--json] [--border N] (needs GEGL to load images) */
int cmd_compare(int argc, char **argv);
/* percept train TASK [--recipe FILE] [--resume] [--KEY VALUE ...] (needs GEGL) */
int cmd_train(int argc, char **argv);
/* percept eval MODEL DIR [--degrade D] [--self-ensemble] [--json] */
int cmd_eval(int argc, char **argv);
/* percept score CLEAN_DIR RESULT_DIR [--scale N] [--name NAME] [--json] (needs GEGL) */
int cmd_score(int argc, char **argv);
/* percept degrade IN OUT --degrade SPEC [--scale N] [--seed S] (needs GEGL) */
int cmd_degrade(int argc, char **argv);
/* percept optimize --content IMG --style IMG … and percept eval-style MODEL --images DIR … */
int cmd_optimize(int argc, char **argv);
int cmd_eval_style(int argc, char **argv);

#endif
