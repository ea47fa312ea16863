/* The number N of a checkpoint named "virtnbdbackup.N", the name every checkpoint of a chain
 * has (virtbackup-stream(5), CHAINS): it orders a chain's files and numbers the next
 * checkpoint. One rule for both, the form the reference and virtbackup write: the prefix,
 * a dot, and decimal digits without a sign, spaces or leading zeros ("virtnbdbackup.0",
 * "virtnbdbackup.17"). */
#ifndef VB_CHECKPOINT_NUMBER_H
#define VB_CHECKPOINT_NUMBER_H

#define STREAM_CHECKPOINT_PREFIX "virtnbdbackup"

/* N, or -1 if name is not of that form (or N does not fit in a long). */
/* The number N written as checkpoint names end (decimal, no sign, no leading zero, fits a
 * long), or -1. */
long stream_checkpoint_digits(const char *digits);
long stream_checkpoint_number(const char *name);

#endif
