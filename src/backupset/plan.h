/* From the files of a backup set to one chain per disk and the point in time to restore or
 * serve: data files are grouped by disk from their names, ordered by their metadata (never
 * by modification times) and cut at --until, and checked against the chain's .cpt list, as
 * virtbackup-stream(5) states the chain rules; only the files of the plan are indexed. */
#ifndef BSET_PLAN_H
#define BSET_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backup_set.h"
#include "chain.h"
#include "chain_index.h"

struct bset_chain {
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
bool bset_data_name(const char *name, char *dev, size_t devlen);

/* The data files of the input, sorted by name. */
int bset_data_files(struct bset *set, char ***names, size_t *n, struct vb_error *err);
void bset_names_free(char **names, size_t n);

/* Chains of every disk (or only `disk`), planned up to until (NULL: latest). Stops at the
 * first disk whose chain is broken. */
int bset_plan_chains(struct bset *set, const char *disk, const char *until,
                     struct bset_chain **chains, size_t *n, struct vb_error *err);
/* Every file of the set as the chain of one disk (the set of bset_open_files), ordered by
 * metadata; the disk is the one the first file's name says, if it says one. */
int bset_plan_files(struct bset *set, struct bset_chain **chain, struct vb_error *err);
/* One chain from an explicit list of files, applied in the given order (--sequence). */
int bset_plan_sequence(struct bset *set, const char *list, struct bset_chain **chain,
                       struct vb_error *err);
/* Is the data file behind src (named name) a plain raw image: a <dev>.copy.data without the
 * stream's META magic? */
bool bset_is_raw_image(struct stream_source *src, const char *name);
/* Indexes the planned files and merges them (the one-pass plan's input). Every byte read
 * through dc->applied is checksummed on the way (source_tap.h) and the LZ4 checksums of a
 * file with a .chksum are skipped: the caller must check dc->chksums before it uses the
 * result. */
int bset_plan_index(struct bset *set, struct bset_chain *dc, struct vb_error *err);
void bset_chains_free(struct bset_chain *chains, size_t n);

/* The ident of the last planned file, as in vmconfig.<ident>.xml and <dev>.<ident>.qcow.json:
 * the checkpoint name, "copy", or a diff's time, in buf. */
const char *bset_chain_ident(const struct bset_chain *dc, char *buf, size_t len);
/* The last planned file's metadata. */
const struct chain_file *bset_chain_last(const struct bset_chain *dc);

#endif
