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

typedef struct FakeStream *cudaStream_t; /* 0: the default stream, the only one here */

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaMallocManaged(void **p, size_t bytes, unsigned flags);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemset(void *p, int value, size_t bytes);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *a, const void *p);
const char *cudaGetErrorString(cudaError_t e);

#endif
