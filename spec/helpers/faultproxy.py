#!/usr/bin/python3
"""faultproxy.py -- a TCP proxy in front of the real test redis-server that
misbehaves on cue, for the transport specs (spec/conn_spec.lua).

usage: faultproxy.py REDIS_PORT LOG SCRIPT...
Writes its listening port to LOG.port. Each SCRIPT is the plan of one
accepted connection, in order: comma-separated steps applied to the
client's successive requests (one request = one chunk the client sent):
  pass        forward the request, relay the whole reply
  close       forward the request, relay the reply, then close the client
              socket (the server "closed the idle connection")
  close:MS    the same, MS milliseconds after the reply
  cut:N       forward the request, relay only N bytes of the reply, close
Requests past the end of a plan pass. Connections past the last plan pass.
FAULTPROXY_BIND=::1 listens on IPv6 loopback instead of 127.0.0.1.
LOG gets one line per event: "accept K", "request K <bytes>".
"""
import os, socket, sys, threading, time

redis_port, log_path, plans = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
lock = threading.Lock()

def log(line):
    with lock:
        with open(log_path, "a") as f:
            f.write(line + "\n")

def serve(k, client, plan):
    up = socket.create_connection(("127.0.0.1", redis_port))
    steps = plan.split(",") if plan else []
    i = 0
    try:
        while True:
            req = client.recv(65536)
            if not req:
                return
            step = steps[i] if i < len(steps) else "pass"
            i += 1
            log("request %d %d" % (k, len(req)))
            up.sendall(req)
            time.sleep(0.05)          # let the whole reply arrive
            up.setblocking(False)
            reply = b""
            try:
                while True:
                    b = up.recv(65536)
                    if not b:
                        break
                    reply += b
            except BlockingIOError:
                pass
            up.setblocking(True)
            if step.startswith("cut:"):
                client.sendall(reply[: int(step[4:])])
                return
            client.sendall(reply)
            if step == "close":
                return
            if step.startswith("close:"):
                time.sleep(int(step[6:]) / 1000.0)
                return
    except OSError:
        return
    finally:
        client.close()
        up.close()

bind = os.environ.get("FAULTPROXY_BIND", "127.0.0.1")
ls = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((bind, 0))
ls.listen(64)
with open(log_path + ".port", "w") as f:
    f.write("%d\n" % ls.getsockname()[1])
k = 0
while True:
    c, _ = ls.accept()
    k += 1
    log("accept %d" % k)
    threading.Thread(target=serve, args=(k, c, plans[k - 1] if k <= len(plans) else ""),
                     daemon=True).start()
