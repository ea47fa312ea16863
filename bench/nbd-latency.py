#!/usr/bin/python3
# Random 4 KiB read latency of an NBD export: COUNT reads at 4 KiB-aligned offsets drawn
# uniformly over the whole export (a fixed seed, so every server gets the same offsets),
# one at a time on one connection, each timed from the request to its reply. Prints
# "MEDIAN_US P99_US" (microseconds). The first read of a region costs what the server does
# to fetch it (a chunk fetched and decoded, a block decoded, a page read); a read the server
# has cached costs a copy.
#
# usage: nbd-latency.py URI [COUNT]
import random
import sys
import time

import nbd

uri = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
h = nbd.NBD()
h.connect_uri(uri)
blocks = h.get_size() // 4096
rnd = random.Random(29)
lat = []
for _ in range(count):
    off = rnd.randrange(blocks) * 4096
    t0 = time.perf_counter_ns()
    h.pread(4096, off)
    lat.append(time.perf_counter_ns() - t0)
h.shutdown()
lat.sort()
print("%.1f %.1f" % (lat[len(lat) // 2] / 1000, lat[min(len(lat) - 1, len(lat) * 99 // 100)] / 1000))
