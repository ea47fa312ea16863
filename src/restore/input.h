/* The backup being restored, as a set of named files: a backup directory, or one or more zip
 * files written by `virtbackup -o -` (full first), read in place. Names are relative
 * ("vda.full.data", "checkpoints/virtnbdbackup.0.xml"). */
#ifndef VR_INPUT_H
#define VR_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "source.h"

struct restore_input;

/* spec: a directory, a zip file, or a comma list of zip files. */
struct restore_input *restore_input_open(const char *spec, struct vb_error *err);
void restore_input_free(struct restore_input *in);

/* What the input is, for messages: the directory or the zip list as given. */
const char *restore_input_describe(const struct restore_input *in);
bool restore_input_is_zip(const struct restore_input *in);

/* All file names, sorted by name (ordering never comes from modification times). */
size_t restore_input_count(const struct restore_input *in);
const char *restore_input_name(const struct restore_input *in, size_t i);
bool restore_input_has(const struct restore_input *in, const char *name);
/* The path to show for a name: "<dir>/<name>" or "<zip>:<name>". Malloc'ed. */
char *restore_input_display(const struct restore_input *in, const char *name);

/* Random-access reader of one file. */
struct stream_source *restore_input_source(struct restore_input *in, const char *name,
                                           struct vb_error *err);
/* The whole (small) file, NUL-terminated. Refuses files above max bytes. */
int restore_input_read(struct restore_input *in, const char *name, size_t max, char **data,
                       size_t *len, struct vb_error *err);
/* Copies a file to dest (created exclusively, mode 0600 unless mode given), keeping holes
 * for all-zero blocks. With adler non-NULL, also the file's adler32, from the same reads. */
int restore_input_copy(struct restore_input *in, const char *name, const char *dest, unsigned mode,
                       uint32_t *adler, struct vb_error *err);

#endif
