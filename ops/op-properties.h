/* Properties every percept operation has, included into each operation's GEGL_PROPERTIES
 * section (gegl-op.h expands that section several times, so no include guard). The device
 * enum is PerceptDevice from op-support.h. */
property_enum(device, "Device", PerceptDevice, percept_device, PERCEPT_DEVICE_AUTO)
  description("Where the network runs (auto: CUDA when available, else the CPU)")

property_int(tile_size, "Tile size", 0)
  description("Side of the tiles the image is processed in, in input pixels; 0 chooses it "
              "from the memory budget (PERCEPT_TILE_MEMORY_MB)")
  value_range(0, 16384)
