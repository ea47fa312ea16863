/* Running a program without a shell and capturing its output. */
#include "subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int vb_run_capture(char *const argv[], char **out, size_t *len, struct vb_error *err)
{
    int opipe[2], epipe[2];
    if (out)
        *out = NULL;
    if (len)
        *len = 0;
    if (pipe2(opipe, O_CLOEXEC) < 0)
        return vb_error_errno(err, "pipe");
    if (pipe2(epipe, O_CLOEXEC) < 0) {
        close(opipe[0]);
        close(opipe[1]);
        return vb_error_errno(err, "pipe");
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(opipe[0]);
        close(opipe[1]);
        close(epipe[0]);
        close(epipe[1]);
        return vb_error_errno(err, "fork");
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(opipe[1], 1);
        dup2(epipe[1], 2);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(opipe[1]);
    close(epipe[1]);
    char *obuf = NULL, ebuf[4096] = "";
    size_t olen = 0, ocap = 0, elen = 0;
    struct pollfd pfd[2] = {{.fd = opipe[0], .events = POLLIN}, {.fd = epipe[0], .events = POLLIN}};
    int open_fds = 2;
    while (open_fds) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char chunk[8192];
            ssize_t n = read(pfd[i].fd, chunk, sizeof chunk);
            if (n <= 0) {
                close(pfd[i].fd);
                pfd[i].fd = -1;
                open_fds--;
                continue;
            }
            if (i == 0) {
                if (olen + (size_t)n + 1 > ocap) {
                    ocap = (olen + (size_t)n + 1) * 2;
                    char *p = realloc(obuf, ocap);
                    if (!p)
                        continue;
                    obuf = p;
                }
                memcpy(obuf + olen, chunk, (size_t)n);
                olen += (size_t)n;
            } else if (elen < sizeof ebuf - 1) {
                size_t k = (size_t)n < sizeof ebuf - 1 - elen ? (size_t)n : sizeof ebuf - 1 - elen;
                memcpy(ebuf + elen, chunk, k);
                elen += k;
            }
        }
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    ebuf[elen] = '\0';
    ebuf[strcspn(ebuf, "\n")] = '\0';
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        free(obuf);
        return vb_error_set(
            err, "%s failed (%s %d)%s%s", argv[0], WIFEXITED(status) ? "exit status" : "signal",
            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), ebuf[0] ? ": " : "", ebuf);
    }
    if (!obuf)
        obuf = calloc(1, 1);
    else
        obuf[olen] = '\0';
    if (out)
        *out = obuf;
    else
        free(obuf);
    if (len)
        *len = olen;
    return 0;
}
