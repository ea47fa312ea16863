/* The manifest as a jansson object, for the code that seals and opens encrypted manifests
 * (manifest_seal.c): the object the emitter builds and the strict parse of an object. */
#ifndef VB_REPO_MANIFEST_JSON_H
#define VB_REPO_MANIFEST_JSON_H

#include <jansson.h>

#include "manifest.h"

/* The manifest's JSON object (json_decref it). NULL on error. */
json_t *repo_manifest_build_json(const struct repo_manifest *m, struct vb_error *err);

/* repo_manifest_parse of an object already loaded. 0, or -1. */
int repo_manifest_parse_json(json_t *o, struct repo_manifest *m, struct vb_error *err);

#endif
