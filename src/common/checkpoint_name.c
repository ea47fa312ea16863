#include "checkpoint_name.h"

#include <stdio.h>
#include <string.h>

const char *vb_checkpoint_name_problem(const char *name)
{
    if (!name)
        return "missing";
    if (strchr(name, '/'))
        return "contains '/'";
    if (strstr(name, ".."))
        return "contains '..'";
    if (name[0] == '.')
        return "starts with '.'";
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return "contains a control character";
    return NULL;
}

int vb_checkpoint_name_check(const char *name, const char *file, struct vb_error *err)
{
    const char *why = vb_checkpoint_name_problem(name);
    if (!why)
        return 0;
    /* the name goes into a one-line message: control characters as \xNN */
    char shown[4 * 256 + 8];
    size_t used = 0;
    for (const unsigned char *p = (const unsigned char *)(name ? name : "");
         *p && used + 5 < sizeof shown; p++) {
        if (*p < 0x20 || *p == 0x7f)
            used += (size_t)snprintf(shown + used, sizeof shown - used, "\\x%02x", *p);
        else
            shown[used++] = (char)*p;
    }
    shown[used] = '\0';
    return vb_error_set(err, "%s: refusing the unsafe checkpoint name \"%s\" (%s)", file, shown,
                        why);
}
