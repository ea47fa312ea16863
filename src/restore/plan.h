/* From the files of a backup to one chain per disk and the point in time to restore:
 * data files are grouped by disk from their names, ordered by their metadata (never by
 * modification times) and cut at --until; only the files of the plan are indexed. */
#ifndef VR_PLAN_H
#define VR_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chain.h"
#include "chain_index.h"
#include "input.h"

struct disk_chain {
    char dev[64];
    size_t nfiles;
    char **names;                  /* input names of every data file of the disk */
    struct chain_file *files;      /* metadata of each (path = name) */
    struct chain_plan plan;        /* apply order, cut at --until */
    struct stream_index **applied; /* indexes of the planned files, in apply order */
    /* their .chksum, read once when indexed: the LZ4 checksums are skipped on its strength,
     * so the check before commit must use the same value */
    struct planned_chksum {
        bool present;
        uint32_t want;
    } * chksums;
    struct chain_index *ci;
    bool raw_image; /* <dev>.copy.data is a plain raw image, not a stream */
};

/* Is name a data file "<dev>.<full|copy|inc.X|diff.X>.data"? dev receives the disk. */
bool plan_data_name(const char *name, char *dev, size_t devlen);

/* The data files of the input, sorted by name. */
int plan_data_files(struct restore_input *in, char ***names, size_t *n, struct vb_error *err);
void plan_names_free(char **names, size_t n);

/* Chains of every disk (or only `disk`), planned up to until (NULL: latest). Stops at the
 * first disk whose chain is broken. */
int plan_chains(struct restore_input *in, const char *disk, const char *until,
                struct disk_chain **chains, size_t *n, struct vb_error *err);
/* One chain from an explicit list of files, applied in the given order (--sequence). */
int plan_sequence(struct restore_input *in, const char *list, struct disk_chain **chain,
                  struct vb_error *err);
/* Indexes the planned files and merges them (the one-pass plan's input). */
int plan_index(struct restore_input *in, struct disk_chain *dc, struct vb_error *err);
void plan_chains_free(struct disk_chain *chains, size_t n);

/* The ident of the last planned file, as in vmconfig.<ident>.xml and <dev>.<ident>.qcow.json:
 * the checkpoint name, "copy", or a diff's time. Static buffer per chain. */
const char *plan_ident(const struct disk_chain *dc, char *buf, size_t len);
/* The last planned file's metadata. */
const struct chain_file *plan_last(const struct disk_chain *dc);

#endif
