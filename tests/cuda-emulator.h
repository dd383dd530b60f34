/* Runs percept's CUDA kernels on the host, for tests on machines without a GPU (this one, CI):
 * the kernel files compiled as C++ with PERCEPT_CUDA_EMULATOR defined (kernels/common.cuh
 * then includes this file and LAUNCH comes here instead of <<<…>>>).
 *
 * Every thread of a block is a fiber (ucontext) with its own stack, run one at a time until
 * it finishes or waits: __syncthreads waits for the whole block, a warp shuffle for its 32
 * lanes. A block whose threads wait at different barriers (a divergent __syncthreads, a
 * shuffle only some lanes reach) is a deadlock on a GPU; here it is reported and the test
 * stops. Blocks run one after another, so __shared__ is a static and atomics are plain
 * arithmetic. What this cannot show: races between blocks or threads (there are none to
 * lose), timing, and the GPU's own rounding (contracted multiply-adds, its libm). */
#ifndef PERCEPT_CUDA_EMULATOR_H
#define PERCEPT_CUDA_EMULATOR_H

#include <math.h>
#include <stddef.h>

#include <functional>
#include <vector>

struct EmuDim3 {
    unsigned x, y, z;
};
/* the running fiber's indices, set by the scheduler at every switch */
extern EmuDim3 blockIdx, threadIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __forceinline__ inline

void __syncthreads();
/* v of lane + delta of the calling warp (its own v past the warp's end); all 32 lanes take part */
void emu_shuffle_down(void *v, size_t size, unsigned delta);
template <typename T> T __shfl_down_sync(unsigned mask, T v, unsigned delta)
{
    (void)mask;
    emu_shuffle_down(&v, sizeof v, delta);
    return v;
}
/* a product that is never fused into a multiply-add (an out-of-line call: GCC cannot contract
 * across it) */
float __fmul_rn(float a, float b);

/* Runs body on grid blocks of block threads: now, or, when emu_deferred, at the next
 * emu_flush, as a GPU runs a stream's work after the launch has returned. */
void emu_launch(unsigned grid, unsigned block, std::function<void()> body);
/* LAUNCH's way in: the arguments are evaluated at the launch and kept by value, as
 * <<<…>>> does, so that a deferred kernel sees them as they were. */
template <typename Kernel, typename... Args>
void emu_launch_args(unsigned grid, unsigned block, Kernel kernel, Args... args)
{
    emu_launch(grid, block, [=] { kernel(args...); });
}

/* The stream: work (launches, the fake runtime's copies and cuDNN calls) waits in order
 * while emu_deferred and runs at emu_flush (a synchronisation). emu_enqueue runs work at
 * once when not deferred. emu_pending says whether anything waits. */
extern bool emu_deferred;
void emu_enqueue(std::function<void()> work);
void emu_flush();
bool emu_pending();

/* Stream capture (the fake runtime's CUDA graphs): while set, work is appended there instead
 * of being queued or run. */
extern std::vector<std::function<void()>> *emu_capture;

/* Launches counted since the program started (tests check that a kernel ran at all). */
extern size_t emu_launches;

/* Called around every launch when set, and when the queue fills or empties: the fake CUDA
 * runtime (fake-cuda/) lets the host touch device memory only while "the device" runs,
 * and managed memory only while no work is queued. */
extern void (*emu_device_begin)(void), (*emu_device_end)(void), (*emu_queue_changed)(void);

#endif
