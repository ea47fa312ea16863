/* `qemu-img info` of the qcow2 images a backup saves (<dev>.<ident>.qcow.json), fetched in a
 * thread of its own while the disks are copied. On a remote host every command is an SSH exec
 * that starts the remote user's shell (0.6-1.2 s on the test machines, where root's ~/.bashrc
 * runs pyenv); run after the copy, it would lengthen every remote backup by that much. The
 * thread uses an SSH session of its own (a libssh session serves one thread), and the files
 * are still written after the data, in the order of virtbackup-stream(5), "The order of a
 * run". What restores
 * read from them (cluster size, compat, lazy refcounts, compression type, data file) does not
 * change while a backup runs. */
#ifndef VB_BACKUP_IMAGE_INFO_H
#define VB_BACKUP_IMAGE_INFO_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "host.h"
#include "virt.h"

struct image_info;

/* Whether a disk gets a .qcow.json (qcow formats with a file path). */
bool image_info_wanted(const struct vb_disk *d);

/* Starts fetching the information of the wanted ones among disks[0..n). remote: the options
 * the host was opened with (their strings are copied). Never fails: when no thread can be
 * started, image_info_get runs the command itself. */
struct image_info *image_info_start(const struct vb_remote_opts *remote,
                                    const struct vb_disk *const *disks, size_t n);

/* Waits for disk i's output (a NUL-terminated JSON text, *json borrowed until
 * image_info_release). When the thread could not open its own SSH session, runs the command
 * on host instead. Errors name the disk. */
int image_info_get(struct image_info *ii, size_t i, struct vb_host *host, const char **json,
                   size_t *len, struct vb_error *err);

/* Drops the caller's hold, waiting up to 5 s for a thread still running; after that the
 * thread frees everything when it ends (or ends with the process). NULL is allowed. */
void image_info_release(struct image_info *ii);

#endif
