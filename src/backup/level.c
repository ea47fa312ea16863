/* Backup level names (virtbackup(1), -l). */
#include <string.h>

#include "backup.h"

static const char *const level_names[] = {"copy", "full", "inc", "diff", "auto"};

const char *backup_level_name(enum backup_level level)
{
    return level_names[level];
}

bool backup_level_parse(const char *name, enum backup_level *level)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (strcmp(name, level_names[i]) == 0) {
            *level = (enum backup_level)i;
            return true;
        }
    return false;
}
