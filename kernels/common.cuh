/* What every kernel file shares: the block size, the grid for a grid-stride loop over n
 * elements, and a block-wide sum in double (the statistics of norm.cu and pool.cu). CUDA
 * (or the host emulator); kernels.h is the C-compatible side. */
#ifndef PERCEPT_KERNELS_COMMON_CUH
#define PERCEPT_KERNELS_COMMON_CUH

#include <stddef.h>

#ifdef PERCEPT_CUDA_EMULATOR
#include "cuda-emulator.h" /* tests/: the kernels on the host */
#endif
#include <cuda_fp16.h>

static const int THREADS = 256; /* every launch; block_sum relies on it */

/* kernel<<<grid, THREADS, 0, the calling thread's stream>>>(args…) (gpu_set_stream: the
 * backend's, per network), spelled so that the host emulator (tests/cuda-emulator.h) can run
 * the same kernels: tests/test-cuda-emulated.c checks them against their CPU twins on
 * machines without a GPU. The emulator has one queue for every stream. */
#ifdef PERCEPT_CUDA_EMULATOR
#define LAUNCH(kernel, grid, ...) emu_launch_args((grid), THREADS, kernel, __VA_ARGS__)
#else
extern thread_local cudaStream_t gpu_stream; /* elementwise.cu */
#define LAUNCH(kernel, grid, ...) kernel<<<(grid), THREADS, 0, gpu_stream>>>(__VA_ARGS__)
#endif

/* Blocks for n elements, one per thread, capped: the kernels' loops stride beyond. */
static inline unsigned blocks(size_t n)
{
    size_t b = (n + THREADS - 1) / THREADS;
    return (unsigned)(b < 65535u * 64u ? b : 65535u * 64u);
}

/* Tensors hold float, or __half in fp16 inference (kernels-half.h); the arithmetic is float
 * either way, so a kernel templated on its element type is the same code for both. */
__device__ __forceinline__ float load_f(const float *p) { return *p; }
__device__ __forceinline__ float load_f(const __half *p) { return __half2float(*p); }
__device__ __forceinline__ void store_f(float *p, float v) { *p = v; }
__device__ __forceinline__ void store_f(__half *p, float v) { *p = __float2half(v); }

/* ReflectionPad2d's source of position x (−n < x < 2n − 1) along an axis of n */
__device__ inline int reflect_source(int x, int n)
{
    return x < 0 ? -x : x >= n ? 2 * n - 2 - x : x;
}

/* The positions of an axis of n padded by p (p < n) that read its pixel x: x + p itself, and
 * with reflection the border positions mirrored onto it, at most one on each side. q gets
 * them in the order the padding gradients add them; returns how many (1 to 3). */
__device__ inline int padded_readers(int x, int n, int p, int reflect, int q[3])
{
    int k = 0;
    q[k++] = x + p;
    for (int j = 0; reflect && j < p; j++) {
        if (reflect_source(j - p, n) == x)
            q[k++] = j;
        if (reflect_source(n + j, n) == x)
            q[k++] = n + p + j;
    }
    return k;
}

#define FOR_EACH(i, n)                                                                         \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);                    \
         i += (size_t)gridDim.x * blockDim.x)

/* Sums v[0..N) over the block (THREADS threads); every thread gets the totals. The order of
 * the additions is fixed by the block size alone, so a result is the same on every run. */
template <int N> __device__ inline void block_sum(double *v)
{
    __shared__ double s[N][THREADS / 32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
    for (int j = 0; j < N; j++) {
        for (int o = 16; o > 0; o /= 2)
            v[j] += __shfl_down_sync(0xffffffffu, v[j], o);
        if (lane == 0)
            s[j][warp] = v[j];
    }
    __syncthreads();
    if (warp == 0) {
#pragma unroll
        for (int j = 0; j < N; j++) {
            v[j] = lane < THREADS / 32 ? s[j][lane] : 0;
            for (int o = 16; o > 0; o /= 2)
                v[j] += __shfl_down_sync(0xffffffffu, v[j], o);
            if (lane == 0)
                s[j][0] = v[j];
        }
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < N; j++)
        v[j] = s[j][0];
    __syncthreads(); /* the shared slots may be reused by the next call */
}

#endif
