/* Stall points for tests. Debug builds pause where a tool calls VB_DEBUG_STALL, so that a test
 * can act on a run that is surely in that state (a signal, a crash, a second NBD client);
 * builds with NDEBUG contain neither the code nor the variable's name (tests look for the
 * name to know whether the stall exists). The spec is VIRTBACKUP_DEBUG_STALL's value:
 *   N        pauses N seconds at every point reached;
 *   /PATH    pauses while PATH exists, after creating PATH.stalled to say that the point is
 *            reached (the test removes PATH to let the run go on); a point reached while
 *            PATH does not exist neither pauses nor creates the marker, so a test holds the
 *            first point reached after it created PATH;
 *   NAME=N, NAME=/PATH   the same, only at the point called NAME (VB_DEBUG_STALL_AT); the
 *            other points pass.
 * Points: every VB_DEBUG_STALL call (unnamed: plain specs only) and the "commit" of
 * virtbackup and virtrepo import (a repository snapshot's chunks, indexes and blobs are in,
 * its manifest not yet).
 * A signal that sets *stop ends the pause early. */
#ifndef VB_DEBUG_STALL_H
#define VB_DEBUG_STALL_H

#include <signal.h>

/* point: the point's name, or NULL for an unnamed one */
void vb_debug_stall(const char *spec, const char *point, const volatile sig_atomic_t *stop);

/* spec: the variable's value, which main reads (in debug builds only) into the options */
#ifndef NDEBUG
#define VB_DEBUG_STALL(spec, stop)           vb_debug_stall((spec), NULL, (stop))
#define VB_DEBUG_STALL_AT(spec, point, stop) vb_debug_stall((spec), (point), (stop))
#else
#define VB_DEBUG_STALL(spec, stop)           ((void)(spec), (void)(stop))
#define VB_DEBUG_STALL_AT(spec, point, stop) ((void)(spec), (void)(point), (void)(stop))
#endif

#endif
