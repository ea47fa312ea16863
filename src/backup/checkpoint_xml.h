/* A checkpoint's XML as a stream chain saves it (checkpoints/<name>.xml, virtbackup-stream(5)),
 * without libvirt: its parent replaced. */
#ifndef VB_BACKUP_CHECKPOINT_XML_H
#define VB_BACKUP_CHECKPOINT_XML_H

#include "error.h"

/* xml (a <domaincheckpoint>) with its <parent>'s name set to parent, or without <parent>
 * when parent is NULL; malloc'ed, NULL on error (xml does not parse). Everything else is
 * kept. */
char *checkpoint_xml_set_parent(const char *xml, const char *parent, struct vb_error *err);

#endif
