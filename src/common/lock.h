/* Advisory locks held for a whole run (flock, released by the kernel if we die): one per
 * domain and one per output directory (virtbackup(1), FILES). The lock file holds the owner's
 * PID so that a second run can name the holder. */
#ifndef VB_LOCK_H
#define VB_LOCK_H

#include "error.h"

struct vb_lock {
    int fd;
    char *path;
};

/* Takes the lock at path at once or fails naming the holder ("... held by pid N"). */
int vb_lock_acquire(struct vb_lock *lock, const char *path, const char *what, struct vb_error *err);
void vb_lock_release(struct vb_lock *lock);

/* The directory for per-domain locks: dir (VIRTBACKUP_LOCK_DIR), or /run/virtbackup when
 * NULL or empty; created if needed. */
const char *vb_lock_dir(const char *dir);

#endif
