/* Chain order from metadata (virtbackup-stream(5), CHAINS): never from file times.
 * A chain is the files of one disk: a base (incremental false), incrementals linked by
 * parentCheckpoint, new bases after a lost bitmap, and diffs, of which only the newest one
 * taken after the last incremental counts. */
#ifndef VB_CHAIN_H
#define VB_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "meta.h"

enum chain_file_kind {
    CHAIN_FILE_FULL,     /* <dev>.full.data */
    CHAIN_FILE_COPY,     /* <dev>.copy.data */
    CHAIN_FILE_INC,      /* <dev>.inc.<checkpoint>.data, incremental */
    CHAIN_FILE_NEW_BASE, /* <dev>.inc.<checkpoint>.data, not incremental (lost-bitmap full) */
    CHAIN_FILE_DIFF,     /* <dev>.diff.<unix seconds>.data */
};

struct chain_file {
    const char *path; /* borrowed; its basename decides the kind */
    struct stream_meta meta;
    /* filled by chain_classify */
    enum chain_file_kind kind;
    long checkpoint_number; /* N of "virtnbdbackup.N" */
    uint64_t diff_time;     /* seconds, from a diff's file name */
};

const char *chain_file_kind_name(enum chain_file_kind kind);

/* Sets kind, checkpoint_number and diff_time; fails when name and metadata contradict. */
int chain_classify(struct chain_file *file, struct vb_error *err);

struct chain_plan {
    size_t n;
    size_t *order; /* indexes into the files array, oldest first: apply in this order */
};

/* Orders files (all of one disk, classified) and picks the ones that make the point in time:
 * until == NULL means the latest point (base + incrementals + newest later diff); otherwise
 * the base..inc called until, without diffs. Errors name the gap, the duplicate or the
 * unknown point (listing the chain's checkpoints). */
int chain_plan_build(struct chain_file *files, size_t nfiles, const char *until,
                     struct chain_plan *plan, struct vb_error *err);

void chain_plan_free(struct chain_plan *plan);

/* Cross-checks a plan against the .cpt list (checkpoint names in creation order; advisory,
 * the metadata decides): every planned full/inc holds a checkpoint the list names, in the
 * same order, with no listed checkpoint between them that no file holds. Errors (-1) name
 * both. At the latest point (latest true), a list that goes on after the chain's last
 * checkpoint returns 1 with a warning in err: the links are consistent, a later backup may
 * simply be missing from the input. Also at the latest point, incrementals at the end of the
 * plan whose checkpoints are numbered above every listed one were committed by a backup
 * interrupted before it wrote the list: the plan is cut before them (plan->n) and 1 is
 * returned with a warning. */
int chain_check_cpt(const struct chain_file *files, struct chain_plan *plan, char *const *cpt,
                    size_t ncpt, const char *cpt_name, bool latest, struct vb_error *err);

#endif
