#!/usr/bin/env python3
"""One chat-server instance against three over one Redis, the same bot swarm on each.

Setups, each run with the same `chat-server` and `chat-bots` flags:

  single        one instance, no --redis (the plain server: the baseline)
  redis1        one instance with --redis (what Redis costs, with nothing to spread)
  redis3        three instances with --redis, the bots spread over them (--addr A,B,C)

Every run starts its own processes: a fresh `redis-server` (persistence off, loopback, a
free port) for the Redis setups, the instances (`--addr 127.0.0.1:0`, the port read from
the banner), then one `chat-bots --scenario room-chat --json` swarm. It reads from /proc
the CPU time (utime + stime) of every instance, of Redis and of the bots, over the whole
swarm and over its steady window (from the first progress line that counts a chat to the
last one before the swarm's duration ends: logins, enters and the end left out), plus
Redis's INFO commandstats for the swarm. Everything it started is stopped at the end,
also on error or Ctrl-C: the instances by SIGTERM (a graceful stop, their `stopped:`
line kept), then SIGKILL if one hangs; Redis by SIGKILL (nothing to save).

Prints a markdown table (and, with --json-out FILE, every number as JSON lines). Linux
only; python3 standard library only. Build first:

    cargo build --release -p iomodels
    python3 tools/cluster_bench.py --rates 1,2 --rounds 2 --duration 20
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_BIN = os.path.join(HERE, "..", "target", "release", "iomodels")

STARTED = []  # every Popen we started, stopped by stop_all()


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy_seconds():
    """CPU time the whole machine was busy (all cores: /proc/stat less idle and iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / TICK


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- a minimal RESP client, enough for INFO and CONFIG RESETSTAT ---------------------

def resp(port, *args):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        out = f"*{len(args)}\r\n".encode()
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        f = s.makefile("rb")
        line = f.readline()
        if line[:1] == b"$":
            n = int(line[1:])
            return f.read(n + 2)[:-2].decode()
        if line[:1] in (b"+", b":"):
            return line[1:].strip().decode()
        raise RuntimeError(f"redis: {line!r}")


def info(port, section):
    out = {}
    for line in resp(port, "INFO", section).splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v
    return out


def commandstats(port):
    """{command: (calls, usec)} from INFO commandstats."""
    stats = {}
    for k, v in info(port, "commandstats").items():
        if k.startswith("cmdstat_"):
            d = dict(kv.split("=") for kv in v.split(","))
            stats[k[len("cmdstat_"):]] = (int(d["calls"]), int(d["usec"]))
    return stats


# --- processes ----------------------------------------------------------------------

def start_redis(logdir):
    for _ in range(5):
        port = free_port()
        log = open(os.path.join(logdir, f"redis-{port}.log"), "w")
        p = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdout=log, stderr=subprocess.STDOUT)
        STARTED.append(p)
        deadline = time.time() + 5
        while time.time() < deadline and p.poll() is None:
            try:
                if resp(port, "PING") == "PONG":
                    return p, port
            except OSError:
                time.sleep(0.05)
        stop(p)
    raise RuntimeError("could not start redis-server")


def start_instance(args, logdir, redis_port, name):
    cmd = [args.bin, "chat-server", "--model", args.model, "--mode", args.mode,
           "--addr", "127.0.0.1:0"] + server_flags(args)
    if redis_port is not None:
        cmd += ["--redis", f"redis://127.0.0.1:{redis_port}", "--instance", name]
    logpath = os.path.join(logdir, f"server-{name}.log")
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    STARTED.append(p)
    p.cmd = cmd
    p.name = name
    p.lines = []
    banner = threading.Event()

    def drain():
        with open(logpath, "w") as log:
            for line in p.stderr:
                p.lines.append(line.rstrip("\n"))
                log.write(line)
                log.flush()
                if "chat server on " in line:
                    banner.set()
        banner.set()

    threading.Thread(target=drain, daemon=True).start()
    if not banner.wait(15) or p.poll() is not None:
        raise RuntimeError(f"instance {name} did not start: {p.lines[-5:]}")
    line = next(l for l in p.lines if "chat server on " in l)
    p.addr = line.split("chat server on ")[1].split()[0]
    return p


def stop(p, sig=signal.SIGTERM, grace=15):
    if p.poll() is not None:
        return
    try:
        p.send_signal(sig)
        p.wait(grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def stop_all():
    for p in reversed(STARTED):
        is_redis = "redis-server" in (p.args[0] if isinstance(p.args, list) else p.args)
        stop(p, signal.SIGKILL if is_redis else signal.SIGTERM)
    STARTED.clear()


def server_flags(args):
    return ["--rooms", str(args.rooms), "--room-capacity", str(args.room_capacity),
            "--max-users", str(args.max_users)]


def bots_cmd(args, addrs, rate):
    return [args.bin, "chat-bots", "--addr", ",".join(addrs), "--bots", str(args.bots),
            "--rooms", str(args.rooms), "--scenario", "room-chat", "--rate", str(rate),
            "--duration", str(args.duration), "--json"]


PROGRESS = re.compile(r": ([\d.]+)/([\d.]+) s, (\d+) requests, (\d+) chats")


# --- one run ------------------------------------------------------------------------

def run(args, setup, rate, round_no, logdir):
    redis, rport = (None, None)
    instances = []
    try:
        if setup != "single":
            redis, rport = start_redis(logdir)
        n = 3 if setup == "redis3" else 1
        for i in range(n):
            name = f"{setup}-r{round_no}-{'abc'[i]}"
            instances.append(start_instance(args, logdir, rport, name))
        time.sleep(1.0)  # let the instances settle (registration, first heartbeat)

        pids = [p.pid for p in instances]

        def snap():
            return (time.time(),
                    sum(cpu_seconds(pid) for pid in pids),
                    cpu_seconds(redis.pid) if redis else 0.0)

        if rport:
            resp(rport, "CONFIG", "RESETSTAT")
        cmd = bots_cmd(args, [p.addr for p in instances], rate)
        busy0 = machine_busy_seconds()
        t0 = snap()
        bots = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        STARTED.append(bots)
        progress = []  # (snapshot, elapsed, chats)
        errlines = []

        def read_err():
            for line in bots.stderr:
                s = snap()
                errlines.append(line.rstrip("\n"))
                m = PROGRESS.search(line)
                if m and "bots done" in line:
                    progress.append((s, float(m.group(1)), int(m.group(4))))

        out_lines = []
        te = threading.Thread(target=read_err, daemon=True)
        to = threading.Thread(target=lambda: out_lines.extend(bots.stdout), daemon=True)
        te.start()
        to.start()
        _, status, rusage = os.wait4(bots.pid, 0)
        bots.returncode = os.waitstatus_to_exitcode(status)
        STARTED.remove(bots)
        t1 = snap()
        busy1 = machine_busy_seconds()
        te.join(5)
        to.join(5)
        bots_cpu = rusage.ru_utime + rusage.ru_stime
        cstats = commandstats(rport) if rport else {}

        report = None
        for line in out_lines:
            line = line.strip()
            if line.startswith("{"):
                report = json.loads(line)
        if report is None:
            raise RuntimeError(f"chat-bots printed no JSON (exit {bots.returncode}): "
                               f"{errlines[-5:]}")

        # Steady window: the first progress line counting a chat to the last one inside
        # the duration.
        steady = [p for p in progress if p[2] > 0 and p[1] <= args.duration]
        window = None
        if len(steady) >= 2:
            (sa, ea, ca), (sb, eb, cb) = steady[0], steady[-1]
            chats = cb - ca
            if chats > 0:
                window = {
                    "secs": sb[0] - sa[0],
                    "chats": chats,
                    "chats_per_sec": chats / (sb[0] - sa[0]),
                    "server_cpu": sb[1] - sa[1],
                    "redis_cpu": sb[2] - sa[2],
                    "server_us_per_chat": (sb[1] - sa[1]) / chats * 1e6,
                    "redis_us_per_chat": (sb[2] - sa[2]) / chats * 1e6,
                }
    finally:
        for p in instances:
            stop(p)
        if redis:
            stop(redis, signal.SIGKILL)
        for p in instances + ([redis] if redis else []):
            if p in STARTED:
                STARTED.remove(p)

    stopped = []
    warnings = []
    for p in instances:
        for l in p.lines:
            if "stopped:" in l:
                stopped.append(l.split("stopped:", 1)[1].strip())
            if re.search(r"\b(WARN|ERROR)\b|panicked", l):
                warnings.append(f"{p.name}: {l}")
    server_chats = 0
    for s in stopped:
        m = re.search(r"(\d+) chats", s)
        if m:
            server_chats += int(m.group(1))

    d = report["duration_secs"]
    fo = report["fanout_latency"]
    clean = (bots.returncode == 0 and report["connected"] == args.bots
             and all(report[k] == 0 for k in
                     ("protocol_errors", "failed_requests", "disconnects", "lost_notifies",
                      "duplicated_notifies", "order_mismatches")))
    return {
        "setup": setup, "rate_per_bot": rate, "offered_chats_per_sec": rate * args.bots,
        "round": round_no, "bots_cmd": cmd, "server_cmds": [p.cmd for p in instances],
        "instance_exit": [p.returncode for p in instances],
        "bots_exit": bots.returncode, "clean": clean,
        "chats_per_sec": report["chats_sent"] / d,
        # Chat notifies (223s timed by the fan-out histogram); notifies_received also
        # counts each bot's final "fin" chat, 20 notifies per bot over the run.
        "notifies_per_sec": fo["count"] / d,
        "all_notifies_per_sec": report["notifies_received"] / d,
        "fanout_p50_us": fo["p50_us"], "fanout_p99_us": fo["p99_us"],
        "fanout_p999_us": fo["p999_us"], "fanout_max_us": fo["max_us"],
        "server_cpu": t1[1] - t0[1], "redis_cpu": t1[2] - t0[2], "bots_cpu": bots_cpu,
        "wall": t1[0] - t0[0],
        # The machine's busy CPU over the swarm, and what of it was not ours (other
        # processes, and kernel softirq time for loopback traffic not charged to a process).
        "machine_busy": busy1 - busy0,
        "other_cpu": (busy1 - busy0) - (t1[1] - t0[1]) - (t1[2] - t0[2]) - bots_cpu,
        "redis_us_per_chat_run": (
            (t1[2] - t0[2]) / report["chats_sent"] * 1e6 if report["chats_sent"] else 0),
        "steady": window, "commandstats": cstats, "server_chats": server_chats,
        "stopped": stopped, "warnings": warnings[:20], "n_warnings": len(warnings),
        "report": report, "bots_stderr_tail": errlines[-3:],
    }


def fmt_ms(us):
    return f"{us / 1000:.1f}" if us >= 1000 else f"{us / 1000:.2f}"


def table(results):
    rows = ["| setup | offered chats/s | round | chats/s | notifies/s | fan-out p50 / p99 / p99.9 ms "
            "| clean | server CPU s | Redis CPU s | bots CPU s | other CPU s / wall s | steady: server µs/chat "
            "| steady: Redis µs/chat | Redis EVALSHA µs/call |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['setup']} | {r['offered_chats_per_sec']} | {r['round']} | "
                        f"error: {r['error']} |" + " |" * 9)
            continue
        w = r["steady"] or {}
        cs = r["commandstats"]
        # Nested calls are counted too (a script's PUBLISH is in both evalsha and
        # publish), so only evalsha's own time is shown: every script call, Lua included.
        cmd_us = f"{cs['evalsha'][1] / cs['evalsha'][0]:.1f}" if "evalsha" in cs else ""
        has_redis = r["setup"] != "single"
        redis_s = f"{r['redis_cpu']:.2f}" if has_redis else "-"
        redis_us = f"{w.get('redis_us_per_chat', 0):.1f}" if has_redis else "-"
        other = f"{r['other_cpu']:.1f}" if "other_cpu" in r else "?"
        rows.append(
            f"| {r['setup']} | {r['offered_chats_per_sec']} | {r['round']} "
            f"| {r['chats_per_sec']:.0f} | {r['notifies_per_sec']:.0f} "
            f"| {fmt_ms(r['fanout_p50_us'])} / {fmt_ms(r['fanout_p99_us'])} / "
            f"{fmt_ms(r['fanout_p999_us'])} "
            f"| {'yes' if r['clean'] else 'NO'} "
            f"| {r['server_cpu']:.2f} | {redis_s} | {r['bots_cpu']:.2f} "
            f"| {other} / {r['wall']:.1f} "
            f"| {w.get('server_us_per_chat', 0):.0f} "
            f"| {redis_us} | {cmd_us or '-'} |")
    rows.append("")
    rows.append("chats/s: chats_sent of the chat-bots report over its duration; notifies/s: the "
                "chat notifies it timed (fanout_latency.count; the bots' final fin chats left "
                "out) over its duration; other CPU s: the machine's busy time (/proc/stat) over the "
                "swarm less the servers', Redis's and the bots' (other processes, and kernel "
                "softirq work not charged to a process); wall s: the swarm's wall time; clean: chat-bots exit 0, every bot connected, no "
                "protocol error, failed request, disconnect, lost or duplicated notify, order "
                "mismatch. CPU s: utime+stime from /proc over the whole swarm (logins and "
                "enters included), servers summed over instances. steady: the window from the "
                "first progress line counting a chat to the last inside the duration.")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=DEFAULT_BIN)
    ap.add_argument("--setups", default="single,redis1,redis3")
    ap.add_argument("--rates", default="1,2", help="chats per second per bot, comma separated")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bots", type=int, default=1000)
    ap.add_argument("--rooms", type=int, default=50)
    ap.add_argument("--room-capacity", type=int, default=20)
    ap.add_argument("--max-users", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--model", default="epoll")
    ap.add_argument("--mode", default="logic")
    ap.add_argument("--logdir", default=None, help="server and Redis logs (default: a temp dir)")
    ap.add_argument("--json-out", default=None, help="append every run's numbers as JSON lines")
    ap.add_argument("--from-json", default=None,
                    help="run nothing: print the table of a --json-out file")
    args = ap.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            results = [json.loads(l) for l in f if l.strip()]
        for r in results:
            if "error" not in r:
                d = r["report"]["duration_secs"]
                r["notifies_per_sec"] = r["report"]["fanout_latency"]["count"] / d
        print(table(results))
        return 0
    args.bin = os.path.abspath(args.bin)
    if args.bots > args.rooms * args.room_capacity:
        sys.exit(f"{args.bots} bots do not fit {args.rooms} rooms of {args.room_capacity}")
    logdir = args.logdir or tempfile.mkdtemp(prefix="cluster-bench-")
    os.makedirs(logdir, exist_ok=True)
    print(f"logs in {logdir}", file=sys.stderr)

    def on_signal(signum, frame):
        stop_all()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    results = []
    try:
        for rate in [float(x) if "." in x else int(x) for x in args.rates.split(",")]:
            for round_no in range(1, args.rounds + 1):
                for setup in args.setups.split(","):
                    print(f"run: {setup}, {rate}/s per bot, round {round_no}", file=sys.stderr)
                    try:
                        r = run(args, setup, rate, round_no, logdir)
                    except Exception as e:  # noqa: BLE001: report it in the table, go on
                        r = {"setup": setup, "offered_chats_per_sec": rate * args.bots,
                             "round": round_no, "error": str(e)}
                    results.append(r)
                    if args.json_out:
                        with open(args.json_out, "a") as f:
                            f.write(json.dumps(r) + "\n")
                    if "error" in r:
                        print(f"  error: {r['error']}", file=sys.stderr)
                    else:
                        print(f"  {r['chats_per_sec']:.0f} chats/s, clean={r['clean']}, "
                              f"server {r['server_cpu']:.2f} s, redis {r['redis_cpu']:.2f} s, "
                              f"bots {r['bots_cpu']:.2f} s, warnings {r['n_warnings']}",
                              file=sys.stderr)
                    time.sleep(1)
    finally:
        stop_all()
    print(table(results))
    bad = [r for r in results if "error" in r or not r["clean"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
