/* The <domain>.cpt list (a JSON array of checkpoint names in creation order, as the reference
 * writes it). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup.h"

int cpt_load(const char *path, struct cpt_list *list, struct vb_error *err)
{
    memset(list, 0, sizeof *list);
    if (access(path, F_OK) != 0)
        return 0;
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        return vb_error_set(err, "%s: not a checkpoint list: %s", path, jerr.text);
    if (!json_is_array(root)) {
        json_decref(root);
        return vb_error_set(err, "%s: not a JSON array of checkpoint names", path);
    }
    size_t n = json_array_size(root);
    list->names = calloc(n ? n : 1, sizeof *list->names);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(root, i);
        if (!json_is_string(v)) {
            json_decref(root);
            cpt_free(list);
            return vb_error_set(err, "%s: entry %zu is not a checkpoint name", path, i);
        }
        list->names[list->n++] = strdup(json_string_value(v));
    }
    json_decref(root);
    return 0;
}

int cpt_save(const char *path, const struct cpt_list *list, struct vb_error *err)
{
    /* the reference's json.dump(list): ["a", "b"] */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.partial", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return vb_error_errno(err, "%s: create", tmp);
    fputc('[', f);
    for (size_t i = 0; i < list->n; i++)
        fprintf(f, "%s\"%s\"", i ? ", " : "", list->names[i]);
    fputc(']', f);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        unlink(tmp);
        return vb_error_errno(err, "%s: write", tmp);
    }
    fclose(f);
    if (rename(tmp, path) < 0) {
        unlink(tmp);
        return vb_error_errno(err, "%s: rename", path);
    }
    return 0;
}

void cpt_free(struct cpt_list *list)
{
    for (size_t i = 0; i < list->n; i++)
        free(list->names[i]);
    free(list->names);
    memset(list, 0, sizeof *list);
}
