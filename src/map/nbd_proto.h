/* NBD wire constants (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md):
 * the fixed newstyle handshake, option haggling and the transmission phase with simple and
 * structured replies. All integers on the wire are big-endian. */
#ifndef VM_NBD_PROTO_H
#define VM_NBD_PROTO_H

#include <stdint.h>

/* Handshake */
#define NBD_MAGIC      UINT64_C(0x4e42444d41474943) /* "NBDMAGIC" */
#define NBD_IHAVEOPT   UINT64_C(0x49484156454f5054) /* "IHAVEOPT" */
#define NBD_REPLY_OPT  UINT64_C(0x0003e889045565a9)
#define NBD_OLD_MAGIC  UINT64_C(0x00420281861253)
#define NBD_MAX_STRING 4096 /* longest name/query the spec allows */

#define NBD_FLAG_FIXED_NEWSTYLE   (1u << 0)
#define NBD_FLAG_NO_ZEROES        (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES      (1u << 1)

/* Options */
#define NBD_OPT_EXPORT_NAME       1
#define NBD_OPT_ABORT             2
#define NBD_OPT_LIST              3
#define NBD_OPT_STARTTLS          5
#define NBD_OPT_INFO              6
#define NBD_OPT_GO                7
#define NBD_OPT_STRUCTURED_REPLY  8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT  10

/* Option replies */
#define NBD_REP_ACK            1
#define NBD_REP_SERVER         2
#define NBD_REP_INFO           3
#define NBD_REP_META_CONTEXT   4
#define NBD_REP_FLAG_ERROR     (1u << 31)
#define NBD_REP_ERR_UNSUP      (NBD_REP_FLAG_ERROR | 1)
#define NBD_REP_ERR_POLICY     (NBD_REP_FLAG_ERROR | 2)
#define NBD_REP_ERR_INVALID    (NBD_REP_FLAG_ERROR | 3)
#define NBD_REP_ERR_PLATFORM   (NBD_REP_FLAG_ERROR | 4)
#define NBD_REP_ERR_TLS_REQD   (NBD_REP_FLAG_ERROR | 5)
#define NBD_REP_ERR_UNKNOWN    (NBD_REP_FLAG_ERROR | 6)
#define NBD_REP_ERR_SHUTDOWN   (NBD_REP_FLAG_ERROR | 7)
#define NBD_REP_ERR_BLOCK_SIZE (NBD_REP_FLAG_ERROR | 8)
#define NBD_REP_ERR_TOO_BIG    (NBD_REP_FLAG_ERROR | 9)
#define NBD_INFO_EXPORT        0
#define NBD_INFO_NAME          1
#define NBD_INFO_DESCRIPTION   2
#define NBD_INFO_BLOCK_SIZE    3

/* Transmission flags (per export) */
#define NBD_FLAG_HAS_FLAGS         (1u << 0)
#define NBD_FLAG_READ_ONLY         (1u << 1)
#define NBD_FLAG_SEND_FLUSH        (1u << 2)
#define NBD_FLAG_SEND_FUA          (1u << 3)
#define NBD_FLAG_ROTATIONAL        (1u << 4)
#define NBD_FLAG_SEND_TRIM         (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF           (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN    (1u << 8)
#define NBD_FLAG_SEND_CACHE        (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO    (1u << 11)

/* Requests */
#define NBD_REQUEST_MAGIC 0x25609513u
#define NBD_REQUEST_LEN   28

#define NBD_CMD_READ         0
#define NBD_CMD_WRITE        1
#define NBD_CMD_DISC         2
#define NBD_CMD_FLUSH        3
#define NBD_CMD_TRIM         4
#define NBD_CMD_CACHE        5
#define NBD_CMD_WRITE_ZEROES 6
#define NBD_CMD_BLOCK_STATUS 7

#define NBD_CMD_FLAG_FUA       (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE   (1u << 1)
#define NBD_CMD_FLAG_DF        (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE   (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO (1u << 4)

/* Replies */
#define NBD_SIMPLE_REPLY_MAGIC      0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC  0x668e33efu
#define NBD_REPLY_FLAG_DONE         (1u << 0)
#define NBD_REPLY_TYPE_NONE         0
#define NBD_REPLY_TYPE_OFFSET_DATA  1
#define NBD_REPLY_TYPE_OFFSET_HOLE  2
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_ERROR        ((1u << 15) | 1)

/* Errors on the wire (fixed values, independent of the host's errno) */
#define NBD_EPERM     1
#define NBD_EIO       5
#define NBD_ENOMEM    12
#define NBD_EINVAL    22
#define NBD_ENOSPC    28
#define NBD_EOVERFLOW 75
#define NBD_ENOTSUP   95
#define NBD_ESHUTDOWN 108

/* base:allocation */
#define NBD_STATE_HOLE           1u
#define NBD_STATE_ZERO           2u
#define NBD_META_BASE_ALLOCATION "base:allocation"
#define NBD_META_ID_ALLOCATION   1 /* our only context id; 0 means "none selected" */

/* Limits we advertise and enforce (NBD_INFO_BLOCK_SIZE): the same as qemu's servers. */
#define NBD_MIN_BLOCK       1u
#define NBD_PREFERRED_BLOCK 4096u
#define NBD_MAX_REQUEST     (32u * 1024 * 1024)

#endif
