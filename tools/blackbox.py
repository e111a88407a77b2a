"""Black-box checks of the delivery contract against `iomodels serve`, one server per model, in
parallel (issue 7's experiments):

  sigterm: a client sends 4 MiB (and 8 MiB) without reading; SIGTERM at 1 s; it reads from 2 s.
           Pass: what it gets back is a prefix of what it sent, then EOF (no reset); exit 0.
  idle:    `--idle-timeout 0.5`; the client writes 6 MiB while reading 16 KiB every 60 ms.
           Pass: the whole 6 MiB echoed, no reset.

Usage: python3 tools/blackbox.py target/release/iomodels blocking,polling,select,poll,signal,epoll,uring sigterm|idle
Loopback only; every server and client stops by itself."""
import os, re, signal, socket, subprocess, sys, threading, time
BIN = sys.argv[1]
MODELS = sys.argv[2].split(',')

def pattern(n):
    return bytes((i * 7 + (i >> 8)) & 0xff for i in range(n))

def start(model, *extra):
    p = subprocess.Popen([BIN, 'serve', '--model', model, '--addr', '127.0.0.1:0', *extra],
                         stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        m = re.search(r'echo server on (\S+)', line)
        if m:
            host, port = m.group(1).rsplit(':', 1)
            threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
            return p, (host, int(port))
    raise RuntimeError('no banner')

def sigterm(model, size):
    p, addr = start(model)
    data = pattern(size)
    s = socket.create_connection(addr)
    sent = [0]
    def send():
        try:
            view = memoryview(data)
            while sent[0] < len(data):
                n = s.send(view[sent[0]:sent[0] + 65536])
                sent[0] += n
        except OSError:
            pass
    t = threading.Thread(target=send, daemon=True); t.start()
    time.sleep(1); p.send_signal(signal.SIGTERM); time.sleep(1)
    got = bytearray(); reset = False
    s.settimeout(30)
    try:
        while True:
            b = s.recv(65536)
            if not b: break
            got += b
    except ConnectionResetError:
        reset = True
    t.join(5); s.close()
    rc = p.wait(30)
    ok = (not reset) and got == data[:len(got)] and rc == 0
    return ok, f'{model} sigterm {size>>20} MiB: sent {sent[0]}, echoed back {len(got)}, reset={reset}, prefix ok={got == data[:len(got)]}, exit {rc}'

def idle(model, size):
    p, addr = start(model, '--idle-timeout', '0.5')
    data = pattern(size)
    s = socket.create_connection(addr)
    def send():
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    t = threading.Thread(target=send, daemon=True); t.start()
    got = bytearray(); reset = False
    s.settimeout(30)
    gap = 0.0; last = time.monotonic()
    try:
        while True:
            b = s.recv(16384)
            now = time.monotonic(); gap = max(gap, now - last); last = now
            if not b: break
            got += b
            time.sleep(0.06)
    except ConnectionResetError:
        reset = True
    t.join(5); s.close(); p.send_signal(signal.SIGTERM); p.wait(30)
    ok = (not reset) and bytes(got) == data
    return ok, f'{model} idle 0.5 s, {size>>20} MiB read 16 KiB / 60 ms: echoed {len(got)} of {size}, reset={reset}, longest gap between reads {gap*1000:.0f} ms'

results = []
def run(f, *a):
    results.append(f(*a))
threads = []
kind = sys.argv[3]
for m in MODELS:
    if kind == 'sigterm':
        threads.append(threading.Thread(target=run, args=(sigterm, m, 4 << 20)))
        threads.append(threading.Thread(target=run, args=(sigterm, m, 8 << 20)))
    else:
        threads.append(threading.Thread(target=run, args=(idle, m, 6 << 20)))
for t in threads: t.start()
for t in threads: t.join()
for ok, line in sorted(results, key=lambda r: r[1]):
    print('PASS' if ok else 'FAIL', line)
