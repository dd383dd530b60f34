/* The self-ensemble property of the operations whose networks turn with the image (upscale,
 * reconstruct; a style is not the same turned), included into their GEGL_PROPERTIES section
 * (expanded several times by gegl-op.h, so no include guard). */
property_boolean(self_ensemble, "Self-ensemble (8× slower)", FALSE)
  description("Average the network's results for the image in its 8 orientations (flips "
              "and rotations), each turned back: a little more accurate (0.04–0.36 dB PSNR "
              "on the presets) for 8 times the work")
