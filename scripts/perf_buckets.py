#!/usr/bin/env python3
"""Buckets the samples of `perf script -F comm,ip,sym` (with call stacks) of mqbroker or the
echo server by where the CPU goes; prints each bucket's share and, given the server's CPU per
message as the argument, its microseconds per message. A sample goes to the first bucket whose
test matches its thread name or any frame of its stack (used by scripts/profile-broker.sh)."""
import sys
from collections import Counter

BUCKETS = [
    ("store-warm thread: kernel page zero-fill ahead of the appender",
     lambda comm, stack: comm == "store-warm"),
    ("store-flush thread: msync, checkpoints",
     lambda comm, stack: comm == "store-flush"),
    ("store append: page faults on the send path",
     lambda comm, stack: "store::store::MessageStore::append" in stack
     and ("handle_mm_fault" in stack or "page_fault" in stack)),
    ("store append: commit-log copy, consume queue, index, tags",
     lambda comm, stack: "store::store::MessageStore::append" in stack
     or "put_messages_queued" in stack),
    ("send handler: header, checks, properties, answer",
     lambda comm, stack: "SendProcessor" in stack),
    ("frame decode (JSON header)",
     lambda comm, stack: "Decoder>::decode" in stack or "decode_frame_body" in stack),
    ("answer encode",
     lambda comm, stack: "encode_answer" in stack or "Encoder<" in stack),
    ("socket send: kernel TCP, incl. delivery to the client",
     lambda comm, stack: "__sys_sendto" in stack or "sendmsg" in stack or "write_now" in stack),
    ("socket recv: kernel TCP",
     lambda comm, stack: "__sys_recvfrom" in stack or "__libc_recv" in stack),
    ("waiting and waking: epoll, context switches, tokio park/unpark",
     lambda comm, stack: any(w in stack for w in
                             ("epoll_wait", "__schedule", "::park", "unpark", "futex",
                              "finish_task_switch", "try_to_wake_up"))),
    ("other: the connection task itself, tokio, allocator",
     lambda comm, stack: True),
]


def samples(lines):
    """(thread name, stack as one string) per sample."""
    comm, frames = None, []
    for line in lines:
        if line and not line[0].isspace():
            if comm is not None:
                yield comm, " ".join(frames)
            comm, frames = line.split()[0], []
        elif line.strip():
            parts = line.split(None, 1)
            if len(parts) == 2:
                frames.append(parts[1].strip())
    if comm is not None:
        yield comm, " ".join(frames)


def main():
    us = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    counts, total = Counter(), 0
    for comm, stack in samples(sys.stdin):
        name = next(n for n, test in BUCKETS if test(comm, stack))
        counts[name] += 1
        total += 1
    print(f"| {'where the CPU goes':64} | {'share':>6} | {'us/msg':>6} |")
    print(f"|{'-' * 66}|{'-' * 7}:|{'-' * 7}:|")
    for name, _ in BUCKETS:
        share = counts[name] / total if total else 0.0
        print(f"| {name:64} | {share * 100:5.1f}% | {share * us:6.2f} |")
    print(f"| {'total (' + str(total) + ' samples)':64} | {100.0:5.1f}% | {us:6.2f} |")


if __name__ == "__main__":
    main()
