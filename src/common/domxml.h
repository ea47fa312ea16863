/* Rewriting a saved libvirt domain XML so that it describes a copy of the VM that lives in a
 * restore directory (virtrestore -c/-D) or on an overlay (virtmap --boot): a new name, no
 * uuid, disks pointing at the new images, no backing chains, boot files (loader, nvram,
 * kernel, initrd) pointing at copies. The original VM's files are never referenced by the
 * rewritten XML for anything that was restored. */
#ifndef VB_DOMXML_H
#define VB_DOMXML_H

#include <stdbool.h>
#include <stddef.h>

#include <libxml/tree.h>

#include "error.h"

struct domxml;

struct domxml_disk {
    char *target; /* target dev: vda, sda */
    char *device; /* disk, cdrom, floppy, lun */
    char *type;   /* file, block, volume, network */
    char *format; /* driver type: qcow2, raw; NULL if none */
    char *source; /* source file/dev, or "<pool>/<volume>"; NULL if none */
};

enum domxml_boot_kind { DOMXML_LOADER, DOMXML_NVRAM, DOMXML_KERNEL, DOMXML_INITRD };
#define DOMXML_BOOT_KINDS 4

struct domxml *domxml_parse(const char *xml, size_t len, struct vb_error *err);
void domxml_free(struct domxml *d);
/* The document as a string (malloc'ed), with an XML declaration-free root. */
char *domxml_format(struct domxml *d, struct vb_error *err);

/* The domain name (malloc'ed) or NULL. */
char *domxml_name(struct domxml *d);
int domxml_set_name(struct domxml *d, const char *name, struct vb_error *err);
void domxml_remove_uuid(struct domxml *d);

/* The <disk> elements of <devices>, in document order. */
int domxml_disks(struct domxml *d, struct domxml_disk **disks, size_t *n, struct vb_error *err);
void domxml_disks_free(struct domxml_disk *disks, size_t n);

/* Points disk `target` at a file: type='file', <source file='path'/> (other source attributes
 * and children dropped, a qcow2 <dataStore> kept and pointed at data_file when given), driver
 * type set to format (when not NULL), <backingStore> removed. */
int domxml_set_disk_file(struct domxml *d, const char *target, const char *path, const char *format,
                         const char *data_file, struct vb_error *err);
int domxml_remove_disk(struct domxml *d, const char *target, struct vb_error *err);
/* Removes every <backingStore> of every disk. */
void domxml_drop_backing_stores(struct domxml *d);

const char *domxml_boot_kind_name(enum domxml_boot_kind kind);

/* Small libxml2 helpers for code that walks a domain's XML itself (virtmap --boot, the
 * sanitizer). */
xmlDocPtr domxml_doc(struct domxml *d);
bool domxml_is_elem(xmlNodePtr n, const char *name);
/* The first child element called name, or NULL. */
xmlNodePtr domxml_child(xmlNodePtr parent, const char *name);
/* Unlinks and frees n, with the indentation before it (the output keeps its shape). */
void domxml_unlink_free(xmlNodePtr n);
/* The path of <os><loader|nvram|kernel|initrd> (malloc'ed), or NULL if absent. */
char *domxml_boot_file(struct domxml *d, enum domxml_boot_kind kind);
int domxml_set_boot_file(struct domxml *d, enum domxml_boot_kind kind, const char *path,
                         struct vb_error *err);

#endif
