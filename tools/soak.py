#!/usr/bin/env python3
"""Soak the chat server: a long swarm with chat and room churn, the server's RSS and CPU
sampled every second.

Starts `iomodels chat-server` (release build), then two swarms against it at once:
`room-chat` bots (log in, enter a room, chat) and `room-inout` bots (enter and leave
their room again and again), restarted in rounds so that connections and logins churn
too. Every second it reads the server's resident memory and CPU time from /proc and
writes them to a CSV; at the end it prints a summary: RSS in the first and last minute,
its drift, its peak, the CPU used, and whether every swarm round came back clean.

Not a test: it takes as long as you ask (ten minutes by default). Linux only.

    cargo build --release
    python3 tools/soak.py --minutes 10 --model epoll --csv soak.csv
"""

import argparse
import csv
import os
import subprocess
import sys
import time

BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "iomodels")
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line (12 and 13 after the name).
    return (int(fields[11]) + int(fields[12])) / TICK


def start_server(args):
    server = subprocess.Popen(
        [BIN, "chat-server", "--model", args.model, "--addr", "127.0.0.1:0",
         "--rooms", str(2 * args.rooms), "--room-capacity", "40",
         "--max-users", str(args.bots * 2)],
        stderr=subprocess.PIPE, text=True)
    banner = server.stderr.readline()
    addr = banner.split("chat server on ")[1].split()[0]
    # Keep draining its log so it never blocks on a full pipe.
    import threading
    threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
    return server, addr


def swarm(addr, scenario, bots, rooms, first_room, seconds, prefix, rate):
    return subprocess.Popen(
        [BIN, "chat-bots", "--addr", addr, "--scenario", scenario, "--bots", str(bots),
         "--rooms", str(rooms), "--first-room", str(first_room), "--rate", str(rate),
         "--duration", str(seconds),
         "--user-prefix", prefix, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--model", default="epoll")
    parser.add_argument("--bots", type=int, default=1000, help="bots in all (70%% chat, 30%% churn rooms)")
    parser.add_argument("--rooms", type=int, default=50, help="rooms per swarm")
    parser.add_argument("--round", type=int, default=60, help="seconds per swarm round")
    parser.add_argument("--csv", default="soak.csv")
    args = parser.parse_args()

    server, addr = start_server(args)
    pid = server.pid
    chatters = args.bots * 7 // 10
    churners = args.bots - chatters
    end = time.time() + args.minutes * 60
    samples = []
    rounds = []
    round_no = 0
    try:
        with open(args.csv, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["seconds", "rss_bytes", "cpu_seconds"])
            start = time.time()
            while time.time() < end:
                seconds = max(5, min(args.round, int(end - time.time())))
                # A fresh user prefix each round: new logins, new sessions.
                procs = [
                    # Rooms of their own: each swarm checks every notify of its rooms.
                    ("room-chat", swarm(addr, "room-chat", chatters, args.rooms, 0, seconds,
                                        f"c{round_no}x", 2)),
                    ("room-inout", swarm(addr, "room-inout", churners, args.rooms, args.rooms,
                                         seconds, f"i{round_no}x", 2)),
                ]
                while any(p.poll() is None for _, p in procs):
                    now = time.time() - start
                    sample = (round(now, 1), rss_bytes(pid), cpu_seconds(pid))
                    samples.append(sample)
                    writer.writerow(sample)
                    time.sleep(1)
                for scenario, p in procs:
                    report = p.stdout.read().strip().splitlines()
                    rounds.append((round_no, scenario, p.returncode, report[-1] if report else ""))
                round_no += 1
    finally:
        server.terminate()
        server.wait(timeout=30)

    mib = 1024 * 1024
    first = [s[1] for s in samples if s[0] < 60]
    last = [s[1] for s in samples if s[0] >= samples[-1][0] - 60]
    cpu = samples[-1][2] - samples[0][2]
    span = samples[-1][0] - samples[0][0]
    failed = [r for r in rounds if r[2] != 0]
    print(f"soak: {args.model}, {args.bots} bots ({chatters} chatting, {churners} churning "
          f"rooms), {len(rounds) // 2} rounds of {args.round} s, {span:.0f} s sampled")
    print(f"rss:  first minute {sum(first) / len(first) / mib:.1f} MiB avg, "
          f"last minute {sum(last) / len(last) / mib:.1f} MiB avg, "
          f"drift {(sum(last) / len(last) - sum(first) / len(first)) / mib:+.1f} MiB, "
          f"peak {max(s[1] for s in samples) / mib:.1f} MiB")
    print(f"cpu:  {cpu:.1f} s over {span:.0f} s ({100 * cpu / span:.0f}% of one core)")
    print(f"swarm rounds: {len(rounds)}, failed: {len(failed)}")
    for r in failed:
        print(f"  round {r[0]} {r[1]}: exit {r[2]}")
    print(f"samples in {args.csv}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
