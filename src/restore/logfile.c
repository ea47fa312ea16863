#include "logfile.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "util.h"

static int orig_fd = -1, file_fd = -1, pipe_rd = -1;
static pthread_t copier;

static void *copy_main(void *arg)
{
    (void)arg;
    char buf[4096];
    ssize_t n;
    while ((n = read(pipe_rd, buf, sizeof buf)) > 0) {
        /* a failing copy loses only that copy's output: the other goes on */
        (void)vb_write_all(orig_fd, buf, (size_t)n);
        (void)vb_write_all(file_fd, buf, (size_t)n);
    }
    return NULL;
}

int logfile_start(const char *path, struct vb_error *err)
{
    int fds[2];
    file_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (file_fd < 0)
        return vb_error_errno(err, "%s: cannot open the log file", path);
    if (pipe2(fds, O_CLOEXEC) < 0) {
        close(file_fd);
        file_fd = -1;
        return vb_error_errno(err, "pipe");
    }
    fflush(stderr);
    orig_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    pipe_rd = fds[0];
    if (orig_fd < 0 || dup2(fds[1], STDERR_FILENO) < 0 ||
        pthread_create(&copier, NULL, copy_main, NULL) != 0) {
        if (orig_fd >= 0) {
            dup2(orig_fd, STDERR_FILENO);
            close(orig_fd);
        }
        close(fds[0]);
        close(fds[1]);
        close(file_fd);
        orig_fd = file_fd = pipe_rd = -1;
        return vb_error_errno(err, "%s: cannot set up the log file", path);
    }
    close(fds[1]); /* stderr holds the write end now */
    return 0;
}

void logfile_stop(void)
{
    if (orig_fd < 0)
        return;
    fflush(stderr);
    dup2(orig_fd, STDERR_FILENO); /* closes the last write end: the copier sees EOF */
    pthread_join(copier, NULL);
    close(pipe_rd);
    close(file_fd);
    close(orig_fd);
    orig_fd = file_fd = pipe_rd = -1;
}
