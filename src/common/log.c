#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static const char *prog = "virtbackup";
static bool show_debug, errors_only;
static unsigned counts[VB_LOG_DEBUG + 1];
static FILE *logfile;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

void vb_log_init(const char *program, bool verbose, bool quiet)
{
    prog = program;
    show_debug = verbose;
    errors_only = quiet;
}

void vb_log(enum vb_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    pthread_mutex_lock(&lock);
    counts[level]++;
    bool show = level == VB_LOG_ERROR || (!errors_only && (level != VB_LOG_DEBUG || show_debug));
    if (show) {
        va_list ap;
        va_start(ap, fmt);
        if (level == VB_LOG_INFO)
            fprintf(stderr, "%s: ", prog);
        else
            fprintf(stderr, "%s: %s: ", prog, names[level]);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    if (logfile) {
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
        va_list ap;
        va_start(ap, fmt);
        fprintf(logfile, "%s %s: ", stamp, names[level]);
        vfprintf(logfile, fmt, ap);
        fputc('\n', logfile);
        fflush(logfile);
        va_end(ap);
    }
    pthread_mutex_unlock(&lock);
}

void vb_log_set_file(const char *path)
{
    pthread_mutex_lock(&lock);
    if (logfile)
        fclose(logfile);
    logfile = fopen(path, "a");
    pthread_mutex_unlock(&lock);
}

void vb_log_close(void)
{
    pthread_mutex_lock(&lock);
    if (logfile)
        fclose(logfile);
    logfile = NULL;
    pthread_mutex_unlock(&lock);
}

unsigned vb_log_count(enum vb_log_level level)
{
    pthread_mutex_lock(&lock);
    unsigned n = counts[level];
    pthread_mutex_unlock(&lock);
    return n;
}
