#!/usr/bin/env python3
# flood.py SOCKET N STATUS STOP: holds N connections open, opening a new one for each the server
# closes, until the file STOP exists; writes "open CONNECTIONS_STILL_OPEN" to STATUS every 0.5 s.
import os, resource, selectors, socket, sys, time
path, n, status, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
sel = selectors.DefaultSelector()
def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(path)
    except (BlockingIOError, InterruptedError):
        pass
    except OSError:
        s.close()
        return
    sel.register(s, selectors.EVENT_READ)
for _ in range(n):
    connect()
last = 0
while not os.path.exists(stop):
    for key, _ in sel.select(0.1):
        try:
            data = key.fileobj.recv(4096)
        except OSError:
            data = b""
        if not data:
            sel.unregister(key.fileobj)
            key.fileobj.close()
    now = time.monotonic()
    if now - last >= 0.5:
        last = now
        with open(status + ".tmp", "w") as f:
            f.write("open %d\n" % len(sel.get_map()))
        os.rename(status + ".tmp", status)
        for _ in range(n - len(sel.get_map())):
            connect()
