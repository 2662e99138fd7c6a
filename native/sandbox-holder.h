/* The life of a run's sandbox's holder (sandbox-holder.c), in its own program or in a clone's pid 1. */
#ifndef RUNYARD_SANDBOX_HOLDER_H
#define RUNYARD_SANDBOX_HOLDER_H
/* Says the sandbox is ready on stderr, lets its output go, then reaps until killed. Never returns. */
__attribute__((noreturn)) void hold_sandbox(void);
#endif
