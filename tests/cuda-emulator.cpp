/* The host emulator of CUDA kernels (see cuda-emulator.h). */
#include "cuda-emulator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <memory>
#include <vector>

EmuDim3 blockIdx, threadIdx, blockDim, gridDim;
size_t emu_launches;
void (*emu_device_begin)(void), (*emu_device_end)(void), (*emu_queue_changed)(void);
bool emu_deferred;

namespace {

enum State { RUNNING, AT_SYNCTHREADS, AT_WARP, DONE };

struct Fiber {
    ucontext_t context;
    State state;
};

const size_t STACK_BYTES = 256 << 10; /* generous: sanitizer builds use more stack */
const unsigned MAX_THREADS = 1024;

ucontext_t scheduler;
std::vector<Fiber> fibers(MAX_THREADS);
std::vector<std::unique_ptr<char[]>> stacks;
unsigned current;
const std::function<void()> *kernel_body;
unsigned char lanes[MAX_THREADS][8]; /* each thread's value in a shuffle */

void fiber_entry(int index)
{
    (*kernel_body)();
    fibers[index].state = DONE; /* uc_link returns to the scheduler */
}

void wait_as(State s)
{
    fibers[current].state = s;
    swapcontext(&fibers[current].context, &scheduler);
}

/* Releases the threads waiting at a barrier every live thread of its group has reached:
 * the block's for __syncthreads, a warp's for a shuffle. FALSE when none could go on. */
bool release(unsigned threads)
{
    bool all_at_sync = true, any_at_sync = false;
    for (unsigned t = 0; t < threads; t++) {
        all_at_sync &= fibers[t].state == AT_SYNCTHREADS || fibers[t].state == DONE;
        any_at_sync |= fibers[t].state == AT_SYNCTHREADS;
    }
    if (all_at_sync && any_at_sync) {
        for (unsigned t = 0; t < threads; t++)
            if (fibers[t].state == AT_SYNCTHREADS)
                fibers[t].state = RUNNING;
        return true;
    }
    bool released = false;
    for (unsigned w = 0; w * 32 < threads; w++) {
        unsigned end = w * 32 + 32 < threads ? w * 32 + 32 : threads;
        bool all_at_warp = true, any_at_warp = false;
        for (unsigned t = w * 32; t < end; t++) {
            all_at_warp &= fibers[t].state == AT_WARP || fibers[t].state == DONE;
            any_at_warp |= fibers[t].state == AT_WARP;
        }
        if (all_at_warp && any_at_warp) {
            for (unsigned t = w * 32; t < end; t++)
                if (fibers[t].state == AT_WARP)
                    fibers[t].state = RUNNING;
            released = true;
        }
    }
    return released;
}

} // namespace

void __syncthreads()
{
    wait_as(AT_SYNCTHREADS);
}

void emu_shuffle_down(void *v, size_t size, unsigned delta)
{
    const unsigned lane = threadIdx.x % 32, source = threadIdx.x + delta;
    memcpy(lanes[threadIdx.x], v, size);
    wait_as(AT_WARP); /* every lane has put its value */
    if (lane + delta < 32 && source < blockDim.x)
        memcpy(v, lanes[source], size);
    wait_as(AT_WARP); /* every lane has taken its value: the slots may be written again */
}

float __fmul_rn(float a, float b)
{
    return a * b;
}

namespace {

std::vector<std::function<void()>> queue;

void run_launch(unsigned grid, unsigned block, const std::function<void()> &body);

} // namespace

std::vector<std::function<void()>> *emu_capture;

void emu_enqueue(std::function<void()> work)
{
    if (emu_capture) {
        emu_capture->push_back(std::move(work));
        return;
    }
    if (!emu_deferred) {
        work();
        return;
    }
    queue.push_back(std::move(work));
    if (queue.size() == 1 && emu_queue_changed)
        emu_queue_changed();
}

bool emu_pending()
{
    return !queue.empty();
}

void emu_flush()
{
    /* work may enqueue nothing while it runs (kernels do not launch kernels here) */
    for (size_t i = 0; i < queue.size(); i++)
        queue[i]();
    bool had = !queue.empty();
    queue.clear();
    if (had && emu_queue_changed)
        emu_queue_changed();
}

void emu_launch(unsigned grid, unsigned block, std::function<void()> body)
{
    emu_launches++;
    emu_enqueue([grid, block, body] { run_launch(grid, block, body); });
}

namespace {

void run_launch(unsigned grid, unsigned block, const std::function<void()> &body)
{
    if (block == 0 || block > MAX_THREADS) {
        fprintf(stderr, "cuda emulator: %u threads per block\n", block);
        abort();
    }
    while (stacks.size() < block)
        stacks.emplace_back(new char[STACK_BYTES]);
    if (emu_device_begin)
        emu_device_begin();
    kernel_body = &body;
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    for (unsigned b = 0; b < grid; b++) {
        blockIdx = {b, 0, 0};
        for (unsigned t = 0; t < block; t++) {
            Fiber &f = fibers[t];
            getcontext(&f.context);
            f.context.uc_stack.ss_sp = stacks[t].get();
            f.context.uc_stack.ss_size = STACK_BYTES;
            f.context.uc_link = &scheduler;
            makecontext(&f.context, reinterpret_cast<void (*)()>(fiber_entry), 1, (int)t);
            f.state = RUNNING;
        }
        for (;;) {
            bool live = false;
            for (unsigned t = 0; t < block; t++)
                if (fibers[t].state == RUNNING) {
                    current = t;
                    threadIdx = {t, 0, 0};
                    swapcontext(&scheduler, &fibers[t].context);
                }
            for (unsigned t = 0; t < block; t++)
                live |= fibers[t].state != DONE;
            if (!live)
                break;
            if (!release(block)) {
                fprintf(stderr, "cuda emulator: deadlock in block %u: threads wait at different "
                                "barriers (thread:state 0 running, 1 __syncthreads, 2 shuffle, 3 "
                                "done):", b);
                for (unsigned t = 0; t < block; t++)
                    fprintf(stderr, " %u:%d", t, fibers[t].state);
                fprintf(stderr, "\n");
                abort();
            }
        }
    }
    if (emu_device_end)
        emu_device_end();
}

} // namespace
