/* libFuzzer harness for virtmap's NBD server: each input is everything a client sends on one
 * connection (handshake, options, then requests), fed through a socketpair to the real
 * connection code serving a small backup chain with a writable overlay. The first byte picks
 * the server: plain; TLS required (PSK: options before STARTTLS, STARTTLS, a TLS handshake
 * fed with the input); its connection limit reached (the client is refused); a handshake
 * deadline of 1 ms (the deadline cuts the handshake wherever it is). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backup_set.h"
#include "block_cache.h"
#include "export.h"
#include "log.h"
#include "meta.h"
#include "nbd_server.h"
#include "nbd_tls.h"
#include "plan.h"
#include "sink.h"
#include "stream_writer.h"

enum { PLAIN, TLS, FULL, DEADLINE, NSERVERS };
static struct nbd_server *servers[NSERVERS];

/* A 1 MiB disk: data at 0 and 512 KiB, zeroes elsewhere. */
static int make_stream(const char *path)
{
    struct vb_error err = {0};
    struct stream_meta meta;
    stream_meta_init(&meta);
    meta.virtual_size = 1 << 20;
    meta.data_size = 2 * 65536;
    strcpy(meta.disk_name, "vda");
    strcpy(meta.checkpoint_name, "virtnbdbackup.0");
    unlink(path);
    struct stream_sink *sink = stream_sink_file_open(path, &err);
    struct stream_writer *w = sink ? stream_writer_new(sink, &meta, &err) : NULL;
    static uint8_t block[65536];
    memset(block, 0x5a, sizeof block);
    int rc = w ? 0 : -1;
    if (rc == 0)
        rc = stream_writer_data(w, 0, block, sizeof block, &err);
    if (rc == 0)
        rc = stream_writer_zero(w, 65536, 458752, &err);
    if (rc == 0)
        rc = stream_writer_data(w, 524288, block, sizeof block, &err);
    if (rc == 0)
        rc = stream_writer_zero(w, 589824, 458752, &err);
    if (rc == 0)
        rc = stream_writer_finish(w, NULL, &err);
    stream_writer_free(w);
    if (rc < 0)
        fprintf(stderr, "fuzz_nbd: %s\n", err.msg);
    return rc;
}

static int setup(void)
{
    char dir[] = "/tmp/fuzz_nbd.XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    char path[256], ovl[256];
    snprintf(path, sizeof path, "%s/vda.full.data", dir);
    snprintf(ovl, sizeof ovl, "%s/overlay", dir);
    if (make_stream(path) < 0)
        return -1;
    vb_log_init("fuzz_nbd", false, true);
    struct vb_error err = {0};
    static struct bset *set; /* lives as long as the server */
    static struct bset_chain *disk;
    if (!(set = bset_open_files(path, &err)) || bset_plan_files(set, &disk, &err) < 0) {
        fprintf(stderr, "fuzz_nbd: %s\n", err.msg);
        return -1;
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", ovl);
    if (system(cmd) != 0)
        return -1;
    static struct map_export *ex[1];
    static struct block_cache *cache;
    cache = block_cache_new(4 << 20);
    ex[0] = export_open("vda", set, disk, ovl, cache, &err);
    char psk[256];
    snprintf(psk, sizeof psk, "%s/keys.psk", dir);
    FILE *f = fopen(psk, "w");
    if (!f || fputs("fuzz:00112233445566778899aabbccddeeff\n", f) < 0 || fclose(f) != 0)
        return -1;
    static struct nbd_tls *tls;
    struct nbd_tls_options to = {.psk_file = psk};
    if (!ex[0] || !(tls = nbd_tls_new(&to, &err))) {
        fprintf(stderr, "fuzz_nbd: %s\n", err.msg);
        return -1;
    }
    const struct nbd_server_config cfg[NSERVERS] = {
        [PLAIN] = {.max_connections = 8, .handshake_timeout_ms = 30000},
        [TLS] = {.max_connections = 8, .handshake_timeout_ms = 30000, .tls = tls},
        [FULL] = {.max_connections = 1, .handshake_timeout_ms = 30000},
        [DEADLINE] = {.max_connections = 8, .handshake_timeout_ms = 1},
    };
    for (int i = 0; i < NSERVERS; i++)
        if (!(servers[i] = nbd_server_new(ex, 1, &cfg[i], &err))) {
            fprintf(stderr, "fuzz_nbd: %s\n", err.msg);
            return -1;
        }
    return 0;
}

struct feed {
    int fd;
    const uint8_t *data;
    size_t size;
};

static void *feeder(void *arg)
{
    struct feed *f = arg;
    size_t done = 0;
    while (done < f->size) {
        /* a server that hangs up early (a refused client) must not raise SIGPIPE */
        ssize_t n = send(f->fd, f->data + done, f->size - done, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    shutdown(f->fd, SHUT_WR);
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready = -1;
    if (ready < 0)
        ready = setup() == 0;
    if (!ready)
        abort();
    if (size == 0)
        return 0;
    struct nbd_server *server = servers[data[0] % NSERVERS];
    int held[2] = {-1, -1};
    struct vb_error err = {0};
    /* the FULL server's one slot is taken by a client that sends nothing */
    if (server == servers[FULL] && (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, held) < 0 ||
                                    nbd_server_serve(server, held[1], NULL, "held", &err) < 0))
        abort();
    data++;
    size--;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    if (nbd_server_serve(server, sv[1], NULL, "fuzz", &err) < 0) {
        close(sv[0]);
        return 0;
    }
    struct feed f = {sv[0], data, size};
    pthread_t t;
    pthread_create(&t, NULL, feeder, &f);
    char buf[65536];
    while (read(sv[0], buf, sizeof buf) > 0) /* the server's replies, until it hangs up */
        ;
    pthread_join(t, NULL);
    close(sv[0]);
    if (held[0] >= 0)
        close(held[0]);
    while (nbd_server_reap(server) > 0)
        usleep(100);
    return 0;
}
