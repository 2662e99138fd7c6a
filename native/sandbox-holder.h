/* The life of a run's sandbox's holder (sandbox-holder.c), in its own program or in a clone's pid 1. */
#ifndef RUNYARD_SANDBOX_HOLDER_H
#define RUNYARD_SANDBOX_HOLDER_H
/* Says the sandbox is ready on stderr, lets its output go, then reaps until killed. Never returns. */
__attribute__((noreturn)) void hold_sandbox(void);
/*
 * As hold_sandbox, but first waits for a byte on `taken` (-1: none to wait for), and ends if that
 * pipe's end closes without one.
 */
__attribute__((noreturn)) void hold_sandbox_until_taken(int taken);
#endif
