// A CUDA runtime program (built with nvcc by tests/gpu/run.sh where nvcc exists): allocates
// 64 MiB blocks until the driver refuses, then prints how much it got and what cudaMemGetInfo
// says. Under gpumux with --memory, the total stops at the limit.
#include <cstdio>
#include <cuda_runtime.h>

int main()
{
    const size_t block = 64ull << 20;
    size_t got = 0;
    void *p;
    cudaError_t e;
    while ((e = cudaMalloc(&p, block)) == cudaSuccess && got < (1ull << 40))
        got += block;
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    std::printf("allocated %zu MiB, then: %s\n", got >> 20, cudaGetErrorName(e));
    std::printf("cudaMemGetInfo: free %zu MiB, total %zu MiB\n", free_b >> 20, total_b >> 20);
    return e == cudaErrorMemoryAllocation ? 0 : 1;
}
