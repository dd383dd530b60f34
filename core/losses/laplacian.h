/* The Laplacian pyramid (Burt & Adelson) with a 5-tap binomial kernel and mirrored borders,
 * one plane at a time: the SWD metric builds it, the SWD loss also takes gradients back
 * through it (the adjoint). */
#ifndef PERCEPT_LAPLACIAN_H
#define PERCEPT_LAPLACIAN_H

/* One level of an h×w plane: plane becomes its band (plane − up(down(plane))) and down
 * ((h+1)/2 × (w+1)/2) the next level. tmp and tmp2 hold h·w floats each. */
void laplacian_step(float *plane, float *down, int h, int w, float *tmp, float *tmp2);

/* Its adjoint: g (h×w) holds d/d band and gdown d/d down; g becomes d/d plane (gdown is
 * overwritten on the way). */
void laplacian_step_adjoint(float *g, float *gdown, int h, int w, float *tmp, float *tmp2);

#endif
