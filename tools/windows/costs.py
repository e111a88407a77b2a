#!/usr/bin/env python3
"""What each Windows model costs, measured under Wine: threads and memory per
connection, and echo round trips per second of the server's CPU.

For each model: start `iomodels.exe serve --model M --addr 127.0.0.1:PORT`
under tools/windows/wine-run, find the Linux process running the exe (Wine's
processes are Linux processes and their threads Linux threads), read Threads
and VmRSS from /proc/PID/status at rest, open N idle connections from here
(every one checked by a 1-byte echo), read them again, then run a short echo
load (L of the connections doing S-byte round trips for T seconds, every byte
checked) and read the server's CPU time (utime+stime of /proc/PID/stat, and of
the wineserver, which carries part of every Wine socket operation). Then close
the clients, stop the server with SIGINT (Wine turns it into a CTRL_C_EVENT,
which `serve` takes as a graceful stop; SIGTERM/SIGKILL only if that fails)
and stop the private Wine prefix's wineserver.

These are Wine's numbers on Linux, not Windows': Wine adds threads of its own,
its memory is not a Windows working set, and its sockets are the host's.

Each run uses a private copy of the Wine prefix (hard links, fresh registry
files) so that its wineserver serves this exe alone, its CPU can be counted,
and `wineserver -k` stops nothing else; the copy is removed at the end.

Usage: python3 tools/windows/costs.py [--conns 1000] [--json] [MODEL ...]
Exit status: 0 when every model was measured, 1 when any failed (including
"not built yet"), 2 for bad usage or a set-up error.
"""

import argparse
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ALL_MODELS = [
    "blocking",
    "polling",
    "select",
    "wsapoll",
    "asyncselect",
    "eventselect",
    "overlapped-event",
    "overlapped-routine",
    "iocp",
]
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WINE_RUN = os.path.join(HERE, "wine-run")
NOTE = ("Measured under Wine 8 on Linux (x86_64-pc-windows-gnu exe, loopback): "
        "these are Wine's numbers, not Windows'. Threads and VmRSS are those of "
        "the Linux process running the exe, Wine's own threads included; "
        "server CPU is that process's utime+stime (the wineserver's is shown apart).")
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Failure(Exception):
    """A model could not be measured; the message says why."""


def log(msg):
    print(f"costs: {msg}", file=sys.stderr, flush=True)


# --- /proc ----------------------------------------------------------------

def proc_status(pid):
    """Threads and VmRSS (KiB) of a live process."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError as e:
        raise Failure(f"process {pid} is gone ({e.strerror})") from None
    threads = re.search(r"^Threads:\s+(\d+)", text, re.M)
    rss = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    if not threads or not rss:
        raise Failure(f"/proc/{pid}/status has no Threads or VmRSS (a zombie?)")
    return int(threads.group(1)), int(rss.group(1))


def proc_cpu(pid):
    """utime+stime of a process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError as e:
        raise Failure(f"process {pid} is gone ({e.strerror})") from None
    fields = stat[stat.rindex(")") + 2:].split()
    # Fields 14 and 15 of stat(5); fields[0] here is field 3 (state).
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def proc_ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        return int(stat[stat.rindex(")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def pids_with_env(key, value):
    """Processes whose environment has key=value (our private Wine prefix)."""
    needle = f"{key}={value}".encode()
    found = []
    for pid in all_pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(pid)
        except OSError:
            pass
    return found


def descendants(root):
    """root and every process below it."""
    children = {}
    for pid in all_pids():
        ppid = proc_ppid(pid)
        if ppid is not None:
            children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def listening(port):
    """Whether something listens on 127.0.0.1:port (or any address) over IPv4."""
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                addr, state = parts[1], parts[3]
                ip, p = addr.split(":")
                if state == "0A" and int(p, 16) == port and ip in ("0100007F", "00000000"):
                    return True
    except OSError:
        pass
    return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the private Wine prefix -----------------------------------------------

def shared_prefix():
    env = os.environ.get("IOMODELS_WINEPREFIX")
    if env:
        return env
    return os.path.join(os.environ["HOME"], ".local/share/iomodels/wine")


def make_private_prefix(src):
    if not os.path.isfile(os.path.join(src, ".iomodels-setup")):
        raise SystemExit(f"costs: the Wine prefix {src} is not set up; run: bash tools/windows/setup.sh")
    dst = tempfile.mkdtemp(prefix="iomodels-costs-wine-")
    os.rmdir(dst)
    # Hard links for the big, read-only tree; real copies of what Wine rewrites.
    subprocess.run(["cp", "-al", src, dst], check=True, timeout=120)
    for name in os.listdir(dst):
        path = os.path.join(dst, name)
        if name == "wineserver":
            os.unlink(path)
        elif os.path.isfile(path) and not os.path.islink(path):
            os.unlink(path)
            shutil.copy2(os.path.join(src, name), path)
    return dst


def wineserver_binary():
    for c in ("/usr/lib/wine/wineserver", shutil.which("wineserver") or ""):
        if c and os.access(c, os.X_OK):
            return c
    return None


def stop_prefix(prefix, env, timeout=20):
    """Stop the private prefix's wineserver (and so every process in it); return leftovers."""
    ws = wineserver_binary()
    if ws:
        try:
            subprocess.run([ws, "-k"], env=env, timeout=timeout,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            log("wineserver -k timed out")
    deadline = time.monotonic() + timeout
    left = pids_with_env("WINEPREFIX", prefix)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = pids_with_env("WINEPREFIX", prefix)
    for pid in left:
        log(f"killing leftover wine process {pid} ({proc_cmdline(pid)})")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.5)
    return pids_with_env("WINEPREFIX", prefix)


# --- clients ----------------------------------------------------------------

def connect_all(port, n, timeout):
    socks = []
    deadline = time.monotonic() + timeout
    for i in range(n):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure(f"only {i} of {n} connections opened within {timeout:.0f} s")
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=min(left, 10))
        except OSError as e:
            for s in socks:
                s.close()
            raise Failure(f"connection {i + 1} of {n} failed: {e}") from None
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(s)
    return socks


def echo_check(socks, timeout):
    """A 1-byte echo on every connection; return the indexes that echoed, and why others did not."""
    sel = selectors.DefaultSelector()
    pending = {}
    errors = {}
    for i, s in enumerate(socks):
        s.setblocking(False)
        byte = bytes([i % 251])
        try:
            s.send(byte)
        except OSError as e:
            errors[i] = f"send: {e}"
            continue
        pending[s] = (i, byte)
        sel.register(s, selectors.EVENT_READ)
    ok = []
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
            s = key.fileobj
            i, byte = pending.pop(s)
            sel.unregister(s)
            try:
                got = s.recv(16)
            except OSError as e:
                errors[i] = f"recv: {e}"
                continue
            if got == byte:
                ok.append(i)
            elif not got:
                errors[i] = "closed by the server"
            else:
                errors[i] = f"wrong echo {got!r}"
    for s, (i, _) in pending.items():
        errors[i] = f"no echo within {timeout:.0f} s"
    sel.close()
    return sorted(ok), errors


def echo_load(socks, size, seconds, stall_timeout):
    """size-byte round trips on every socket for `seconds`; return round trips and wall time."""
    sel = selectors.DefaultSelector()
    state = {}
    for c, s in enumerate(socks):
        s.setblocking(False)
        state[s] = {"c": c, "n": 0, "msg": b"", "out": b"", "got": bytearray()}
        sel.register(s, selectors.EVENT_READ)

    def next_message(st):
        seed = (st["c"] * 131 + st["n"] * 7) % 256
        msg = bytes((seed + k) % 256 for k in range(size))
        st["msg"], st["out"], st["got"] = msg, msg, bytearray()

    def pump_out(s, st):
        try:
            sent = s.send(st["out"])
        except BlockingIOError:
            sent = 0
        st["out"] = st["out"][sent:]
        sel.modify(s, selectors.EVENT_READ | (selectors.EVENT_WRITE if st["out"] else 0))

    start = time.monotonic()
    end = start + seconds
    for s, st in state.items():
        next_message(st)
        pump_out(s, st)
    trips = 0
    active = len(state)
    last_progress = time.monotonic()
    while active:
        now = time.monotonic()
        if now - last_progress > stall_timeout:
            raise Failure(f"echo load stalled: no echo for {stall_timeout:.0f} s "
                          f"({active} connections waiting)")
        for key, ev in sel.select(timeout=1.0):
            s = key.fileobj
            st = state[s]
            if ev & selectors.EVENT_WRITE and st["out"]:
                pump_out(s, st)
            if ev & selectors.EVENT_READ:
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError as e:
                    raise Failure(f"echo load: connection {st['c']}: {e}") from None
                if not data:
                    raise Failure(f"echo load: connection {st['c']} closed by the server")
                st["got"] += data
                last_progress = time.monotonic()
                if len(st["got"]) > size:
                    raise Failure(f"echo load: connection {st['c']} got more bytes than it sent")
                if len(st["got"]) == size:
                    if bytes(st["got"]) != st["msg"]:
                        raise Failure(f"echo load: connection {st['c']}: wrong echo bytes")
                    trips += 1
                    st["n"] += 1
                    if time.monotonic() < end:
                        next_message(st)
                        pump_out(s, st)
                    else:
                        sel.unregister(s)
                        active -= 1
    sel.close()
    return trips, time.monotonic() - start


# --- one model ----------------------------------------------------------------

class Server:
    def __init__(self, exe, model, port, env, logdir):
        self.model, self.port = model, port
        self.log_path = os.path.join(logdir, f"{model}.stderr")
        self.log = open(self.log_path, "w+b")
        self.proc = subprocess.Popen(
            [WINE_RUN, exe, "serve", "--model", model, "--addr", f"127.0.0.1:{port}"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env,
            start_new_session=True)
        self.pid = None
        self.stop_method = None

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace").strip()

    def wait_listening(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.output()
                if "not built yet" in out:
                    raise Failure("not built yet")
                last = out.splitlines()[-1] if out else "(no output)"
                raise Failure(f"exited with status {self.proc.returncode} before listening: {last}")
            if "echo server on" in self.output() and listening(self.port):
                return
            time.sleep(0.1)
        raise Failure(f"not listening on 127.0.0.1:{self.port} within {timeout:.0f} s")

    def find_pid(self):
        """The Linux process running iomodels.exe: the wine-run child (wine-run and
        wine64 exec, so usually the same PID), checked by its command line."""
        want = f"127.0.0.1:{self.port}"
        found = [p for p in descendants(self.proc.pid)
                 if "iomodels.exe" in proc_cmdline(p) and want in proc_cmdline(p)]
        if len(found) != 1:
            raise Failure(f"expected one process running iomodels.exe under wine-run pid "
                          f"{self.proc.pid}, found {found}")
        self.pid = found[0]
        return self.pid

    def stop(self, timeout):
        """SIGINT (Wine: CTRL_C_EVENT, a graceful stop), then SIGTERM, then SIGKILL."""
        if self.proc.poll() is not None:
            self.stop_method = f"had exited ({self.proc.returncode})"
            return
        target = self.pid or self.proc.pid
        for sig, how in ((signal.SIGINT, "graceful (SIGINT -> CTRL_C_EVENT)"),
                         (signal.SIGTERM, "SIGTERM"), (signal.SIGKILL, "SIGKILL")):
            try:
                os.kill(target, sig)
                if sig == signal.SIGKILL and target != self.proc.pid:
                    os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
                self.stop_method = how
                if sig == signal.SIGINT and "stopped;" not in self.output():
                    self.stop_method += ", but no 'stopped' line"
                return
            except subprocess.TimeoutExpired:
                log(f"{self.model}: still running {timeout:.0f} s after {how}")
        self.stop_method = "would not stop"

    def close(self):
        self.log.close()


def measure(model, args, env, logdir):
    row = {"model": model, "status": "ok"}
    port = free_port()
    server = Server(args.exe, model, port, env, logdir)
    socks = []
    try:
        server.wait_listening(args.start_timeout)
        pid = server.find_pid()
        row["pid"] = pid
        time.sleep(args.settle)
        row["threads_rest"], row["rss_rest_kib"] = proc_status(pid)

        socks = connect_all(port, args.conns, args.connect_timeout)
        ok, errors = echo_check(socks, args.echo_timeout)
        row["held"] = len(ok)
        if errors:
            first = min(errors)
            row["status"] = "partial"
            row["note"] = (f"held {len(ok)} of {args.conns}: {len(errors)} failed the 1-byte echo "
                           f"(first: connection {first + 1}, {errors[first]})")
            log(f"{model}: {row['note']}")
        if not ok:
            raise Failure(f"no connection echoed ({row.get('note')})")
        time.sleep(args.settle)
        row["threads_conns"], row["rss_conns_kib"] = proc_status(pid)
        row["threads_per_1000"] = (row["threads_conns"] - row["threads_rest"]) * 1000 / len(ok)
        row["kib_per_conn"] = (row["rss_conns_kib"] - row["rss_rest_kib"]) / len(ok)

        load = [socks[i] for i in ok[:args.load_conns]]
        ws = [p for p in pids_with_env("WINEPREFIX", env["WINEPREFIX"])
              if os.path.basename(proc_cmdline(p).split(" ")[0]).startswith("wineserver")]
        cpu0 = proc_cpu(pid)
        ws0 = sum(proc_cpu(p) for p in ws)
        trips, wall = echo_load(load, args.size, args.seconds, args.echo_timeout)
        cpu = proc_cpu(pid) - cpu0
        ws_cpu = sum(proc_cpu(p) for p in ws) - ws0
        row.update(load_conns=len(load), round_trips=trips, load_wall_s=round(wall, 3),
                   rt_per_s=trips / wall, server_cpu_s=round(cpu, 2),
                   wineserver_cpu_s=round(ws_cpu, 2) if ws else None,
                   rt_per_cpu_s=trips / cpu if cpu > 0 else None,
                   rt_per_cpu_s_with_wineserver=trips / (cpu + ws_cpu) if cpu + ws_cpu > 0 else None)
    except Failure as e:
        row["status"] = "not built" if str(e) == "not built yet" else "failed"
        row["note"] = str(e)
        log(f"{model}: {e}")
    finally:
        for s in socks:
            s.close()
        server.stop(args.stop_timeout)
        row["stop"] = server.stop_method
        server.close()
        if row["status"] != "not built" and server.stop_method and not server.stop_method.startswith("graceful"):
            row.setdefault("note", "")
            row["note"] = (row["note"] + "; " if row["note"] else "") + f"stop: {server.stop_method}"
    return row


# --- output ------------------------------------------------------------------

def fmt(v, digits=0):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def table(rows, n):
    out = [f"| model | threads at rest | threads with {n:,} conns | KiB per conn "
           f"| round trips/s | round trips per server-CPU-s | (with wineserver CPU) |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    notes = []
    for r in rows:
        if r["status"] in ("failed", "not built") and "threads_conns" not in r:
            why = r["note"] if r["status"] == "not built" else f"failed: {r['note']}"
            out.append(f"| {r['model']} | {why} | | | | | |")
            continue
        mark = ""
        if r.get("note"):
            notes.append(f"{r['model']}: {r['note']}")
            mark = f" [{len(notes)}]"
        held = "" if r.get("held", n) == n else f" ({r['held']:,} held)"
        out.append("| {}{} | {} | {}{} | {} | {} | {} | {} |".format(
            r["model"], mark, r["threads_rest"], r["threads_conns"], held,
            fmt(r["kib_per_conn"], 1), fmt(r.get("rt_per_s")), fmt(r.get("rt_per_cpu_s")),
            fmt(r.get("rt_per_cpu_s_with_wineserver"))))
    for i, note in enumerate(notes, 1):
        out.append(f"\n[{i}] {note}")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help=f"models to measure (default: all: {' '.join(ALL_MODELS)})")
    ap.add_argument("--exe", help="iomodels.exe (default: $CARGO_TARGET_DIR or target, "
                    "x86_64-pc-windows-gnu/release/iomodels.exe)")
    ap.add_argument("--conns", type=int, default=1000, help="idle connections (default 1000)")
    ap.add_argument("--load-conns", type=int, default=50, help="connections in the echo load (default 50)")
    ap.add_argument("--size", type=int, default=64, help="bytes per request (default 64)")
    ap.add_argument("--seconds", type=float, default=3.0, help="echo load duration (default 3)")
    ap.add_argument("--settle", type=float, default=1.0, help="wait before reading /proc (default 1 s)")
    ap.add_argument("--start-timeout", type=float, default=60.0)
    ap.add_argument("--connect-timeout", type=float, default=120.0, help="for all N connects")
    ap.add_argument("--echo-timeout", type=float, default=30.0, help="for the echo check; the load's stall limit")
    ap.add_argument("--stop-timeout", type=float, default=15.0, help="per stop signal")
    ap.add_argument("--shared-prefix", action="store_true",
                    help="use the shared Wine prefix instead of a private copy (wineserver CPU "
                         "then includes other users', and its processes are not stopped)")
    ap.add_argument("--json", action="store_true", help="also print one JSON line")
    args = ap.parse_args()

    models = args.models or ALL_MODELS
    if args.conns < 1 or args.load_conns < 1 or args.size < 1 or args.seconds <= 0:
        ap.error("--conns, --load-conns and --size must be positive, --seconds above 0")
    if not args.exe:
        target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
        args.exe = os.path.join(target, "x86_64-pc-windows-gnu/release/iomodels.exe")
    args.exe = os.path.abspath(args.exe)
    if not os.path.isfile(args.exe):
        print(f"costs: no {args.exe}; build it: cargo build --release --target "
              "x86_64-pc-windows-gnu -p iomodels (or pass --exe)", file=sys.stderr)
        return 2

    # N client sockets here, N+ server sockets in the wine process (it inherits the limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.conns + 64
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            print(f"costs: the open-file limit is {hard}, below the {need} needed", file=sys.stderr)
            return 2
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    shared = shared_prefix()
    prefix = shared if args.shared_prefix else make_private_prefix(shared)
    env = dict(os.environ, IOMODELS_WINEPREFIX=prefix, WINEPREFIX=prefix)
    logdir = tempfile.mkdtemp(prefix="iomodels-costs-logs-")
    rows = []
    left = []
    interrupted = False
    try:
        for model in models:
            log(f"{model}: measuring")
            rows.append(measure(model, args, env, logdir))
            r = rows[-1]
            log(f"{model}: {r['status']}" + (f" ({r.get('note')})" if r.get("note") else ""))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if not args.shared_prefix:
            left = stop_prefix(prefix, env)
            if left:
                log(f"wine processes left behind: {left}")
            else:
                shutil.rmtree(prefix, ignore_errors=True)
    if interrupted:
        return 130

    print(NOTE)
    print(f"{args.conns:,} idle connections (each checked by a 1-byte echo); echo load: "
          f"{args.load_conns} of them, {args.size}-byte round trips for {args.seconds:g} s, "
          f"every byte checked; the Python client shares the machine's "
          f"{os.cpu_count()} CPUs with the server.\n")
    print(table(rows, args.conns))
    if args.json:
        print(json.dumps({"note": NOTE, "conns": args.conns, "load_conns": args.load_conns,
                          "size": args.size, "seconds": args.seconds, "exe": args.exe,
                          "wine_left_behind": left, "results": rows}))
    shutil.rmtree(logdir, ignore_errors=True)
    failed = [r for r in rows if r["status"] != "ok"] or left
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
