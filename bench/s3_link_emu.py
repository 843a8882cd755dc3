#!/usr/bin/env python3
"""A point-to-point link with delay and bandwidth, for bench/s3_link.sh.

    s3_link_emu.py NETNS DEV_ROOT DEV_NS DELAY_MS RATE_BITS QUEUE_MS

Creates two TUN devices, DEV_ROOT in this process's network namespace and
DEV_NS in NETNS (/run/netns/NETNS), and forwards every IP packet between
them: each direction serializes packets at RATE_BITS bit/s (a FIFO whose
backlog is capped at QUEUE_MS worth of bytes; a packet beyond it is dropped,
as a router's full buffer would) and delivers each one DELAY_MS after it
left the queue. TCP runs end to end over it, so window growth, slow start
and request round trips see the real RTT (2 x DELAY_MS).

Why not `tc netem`: the kernel this project's machines run has no sch_netem
(CONFIG_NET_SCH_NETEM is not set), and the bench must run there.

The devices carry GSO packets (IFF_VNET_HDR with TSO offloads), so TCP
segments of up to 64 KiB cross user space once instead of ~44 times: TCP
still counts its window in 1,448-byte segments, and this process needs a few
hundred packets per second at 200 Mbit/s. It prints "ready" when both
devices exist, and "stats ..." (packets, bytes, drops per direction) on
SIGTERM or SIGINT, then exits.
"""
import collections
import ctypes
import fcntl
import os
import selectors
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TUN, IFF_NO_PI, IFF_VNET_HDR = 0x0001, 0x1000, 0x4000
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 = 0x01, 0x02, 0x04
CLONE_NEWNET = 0x40000000
VNET_HDR = 10  # struct virtio_net_hdr: the default header size of a tun


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI | IFF_VNET_HDR))
    fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
    return fd


def open_tun_in(netns, name):
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    if libc.setns(target, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns into {netns}")
    try:
        return open_tun(name)
    finally:
        if libc.setns(home, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back")
        os.close(home)
        os.close(target)


class Direction:
    def __init__(self, src, dst, delay, rate, queue_s):
        self.src, self.dst = src, dst
        self.delay, self.bps = delay, rate / 8.0
        self.max_backlog = queue_s            # seconds of serialization waiting
        self.free_at = 0.0                    # when the "wire" is free again
        self.q = collections.deque()          # (deliver_at, packet)
        self.packets = self.bytes = self.drops = 0

    def take(self, now):
        while True:
            try:
                pkt = os.read(self.src, 65536 + VNET_HDR)
            except BlockingIOError:
                return
            size = len(pkt) - VNET_HDR
            start = max(now, self.free_at)
            if start - now > self.max_backlog:
                self.drops += 1
                continue
            self.free_at = start + size / self.bps
            self.q.append((self.free_at + self.delay, pkt))
            self.packets += 1
            self.bytes += size

    def deliver(self, now):
        q = self.q
        while q and q[0][0] <= now:
            _, pkt = q.popleft()
            try:
                os.write(self.dst, pkt)
            except OSError:
                self.drops += 1  # the receiving side's queue is full
        return q[0][0] if q else None


def main():
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    netns, dev_root, dev_ns = sys.argv[1:4]
    delay = float(sys.argv[4]) / 1000
    rate = float(sys.argv[5])
    queue_s = float(sys.argv[6]) / 1000
    a = open_tun(dev_root)
    b = open_tun_in(netns, dev_ns)
    up = Direction(a, b, delay, rate, queue_s)     # root namespace -> NETNS
    down = Direction(b, a, delay, rate, queue_s)   # NETNS -> root namespace
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ, up)
    sel.register(b, selectors.EVENT_READ, down)
    print("ready", flush=True)
    while not stop:
        now = time.monotonic()
        nxt = [t for t in (up.deliver(now), down.deliver(now)) if t is not None]
        timeout = max(0.0, min(nxt) - time.monotonic()) if nxt else 0.2
        try:
            events = sel.select(timeout)
        except InterruptedError:
            continue
        now = time.monotonic()
        for key, _ in events:
            key.data.take(now)
    print(f"stats up {up.packets} pkts {up.bytes} B {up.drops} drops; "
          f"down {down.packets} pkts {down.bytes} B {down.drops} drops", flush=True)


if __name__ == "__main__":
    main()
