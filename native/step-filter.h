#ifndef RUNYARD_STEP_FILTER_H
#define RUNYARD_STEP_FILTER_H
/*
 * Sets no_new_privs and loads the step filter (step-filter.c) for this process and all it
 * starts. Returns 0, or -1 with errno set.
 */
int step_filter(void);
#endif
