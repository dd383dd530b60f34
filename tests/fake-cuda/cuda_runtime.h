/* The part of the CUDA runtime API that kernels/backend-cuda.cu uses, implemented on the host
 * by fake-cuda.cpp (see there), so that the backend runs under the kernel emulator on a
 * machine without a GPU. Names and meanings as NVIDIA's; nothing else of it is here. */
#ifndef PERCEPT_FAKE_CUDA_RUNTIME_H
#define PERCEPT_FAKE_CUDA_RUNTIME_H

#include <stddef.h>

#include "cuda-emulator.h"

typedef enum {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorNoDevice = 100,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorUnknown = 999,
} cudaError_t;

typedef enum {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
} cudaMemcpyKind;

enum cudaMemoryType {
    cudaMemoryTypeUnregistered = 0,
    cudaMemoryTypeHost = 1,
    cudaMemoryTypeDevice = 2,
    cudaMemoryTypeManaged = 3,
};

struct cudaPointerAttributes {
    enum cudaMemoryType type;
    int device;
    void *devicePointer, *hostPointer;
};

enum cudaDeviceAttr { cudaDevAttrManagedMemory = 83 };

#define cudaMemAttachGlobal 0x01

/* Streams share one queue here (work runs in the order it was issued, whatever its stream),
 * so only capture tells them apart: while a stream captures, work is recorded into its graph
 * instead of run, and the calls a capturing stream forbids (they synchronise, or allocate)
 * fail with cudaErrorStreamCaptureUnsupported and spoil the capture, as on a GPU. */
typedef struct FakeStream *cudaStream_t; /* 0: the legacy default stream */
typedef struct FakeGraph *cudaGraph_t;
typedef struct FakeGraph *cudaGraphExec_t;
#define cudaStreamDefault 0x00
#define cudaStreamPerThread ((cudaStream_t)0x2) /* the calling thread's default stream */
#define cudaStreamNonBlocking 0x01
enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
};

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaMallocManaged(void **p, size_t bytes, unsigned flags);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemset(void *p, int value, size_t bytes);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream);
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t stream);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                 unsigned long long flags);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *a, const void *p);
const char *cudaGetErrorString(cudaError_t e);

#endif
