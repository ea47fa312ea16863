/* Stall points for tests. Debug builds pause where a tool calls VB_DEBUG_STALL, so that a test
 * can act on a run that is surely in that state (a signal, a crash, a second NBD client);
 * builds with NDEBUG contain neither the code nor the variable's name (tests look for the
 * name to know whether the stall exists). VIRTBACKUP_DEBUG_STALL=N pauses N seconds;
 * =/PATH pauses while PATH exists, after creating PATH.stalled to say that the point is
 * reached (the test removes PATH to let the run go on). A signal that sets *stop ends the
 * pause early. */
#ifndef VB_DEBUG_STALL_H
#define VB_DEBUG_STALL_H

#include <signal.h>

void vb_debug_stall(const char *spec, const volatile sig_atomic_t *stop);

/* spec: the variable's value, which main reads (in debug builds only) into the options */
#ifndef NDEBUG
#define VB_DEBUG_STALL(spec, stop) vb_debug_stall((spec), (stop))
#else
#define VB_DEBUG_STALL(spec, stop) ((void)(spec), (void)(stop))
#endif

#endif
