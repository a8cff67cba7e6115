#!/usr/bin/env python3
"""Helpers for tests/lua/run.sh, standard library only.

  mp.py pack JSON          write JSON (an object) as msgpack to stdout: the args of an FCALL.
                           Strings are packed as msgpack str (never bin: Redis' cmsgpack
                           cannot decode bin), integers as ints.
  mp.py line CMD FN PFX FROM JSON MORE...
                           print the command "CMD FN 0 PFX FROM <JSON packed> MORE..." (with
                           JOB_HOME set in the environment, "CMD FN 1 $JOB_HOME PFX ...") as
                           one line for redis-cli's standard input, every argument quoted
                           with each byte as \\xHH: the packed args can then be followed by
                           more arguments (a job id, the events flag), which redis-cli -x
                           cannot do (it appends standard input last).
  mp.py get JSON PATH      print the value at PATH (dot separated, list indexes are numbers;
                           "len(PATH)" prints a length): strings bare, anything else as
                           compact JSON with non-ASCII characters as they are (like the
                           library writes them), "<missing>" when the path does not exist,
                           "<badjson>" when JSON does not parse.
  mp.py seqs JSON PATH     print the "seq" of each element of the list at PATH, space separated.
  mp.py ids JSON PATH      same with "id".
  mp.py worker PORT OFFLINE FN PFX FROM JSON JOB
                           apply a job as a worker on a Redis Cluster does (docs/FUNCTIONS.md):
                           FCALL FN 1 $JOB_HOME PFX FROM <JSON packed> JOB 1 1 on the Redis at
                           127.0.0.1:PORT, then the writes it hands back, round after round,
                           then its outbox writes ('+', '?') deepest first, a '?' one with its
                           last argument replaced by OFFLINE, then the writes those hand back
                           (trims). Prints the job's status, then one line per outbox write:
                           "<channel> <members it named> <status>".
"""
import json
import os
import socket
import struct
import sys


def pack(v, out):
    if v is None:
        out.append(b"\xc0")
    elif v is True:
        out.append(b"\xc3")
    elif v is False:
        out.append(b"\xc2")
    elif isinstance(v, int):
        if 0 <= v < 0x80:
            out.append(struct.pack("B", v))
        elif -32 <= v < 0:
            out.append(struct.pack("b", v))
        elif 0 <= v < 2**8:
            out.append(b"\xcc" + struct.pack(">B", v))
        elif 0 <= v < 2**16:
            out.append(b"\xcd" + struct.pack(">H", v))
        elif 0 <= v < 2**32:
            out.append(b"\xce" + struct.pack(">I", v))
        elif 0 <= v < 2**64:
            out.append(b"\xcf" + struct.pack(">Q", v))
        elif -(2**7) <= v:
            out.append(b"\xd0" + struct.pack(">b", v))
        elif -(2**15) <= v:
            out.append(b"\xd1" + struct.pack(">h", v))
        elif -(2**31) <= v:
            out.append(b"\xd2" + struct.pack(">i", v))
        else:
            out.append(b"\xd3" + struct.pack(">q", v))
    elif isinstance(v, str):
        b = v.encode("utf-8")
        n = len(b)
        if n < 32:
            out.append(struct.pack("B", 0xA0 | n))
        elif n < 2**8:
            out.append(b"\xd9" + struct.pack(">B", n))
        elif n < 2**16:
            out.append(b"\xda" + struct.pack(">H", n))
        else:
            out.append(b"\xdb" + struct.pack(">I", n))
        out.append(b)
    elif isinstance(v, list):
        n = len(v)
        if n < 16:
            out.append(struct.pack("B", 0x90 | n))
        elif n < 2**16:
            out.append(b"\xdc" + struct.pack(">H", n))
        else:
            out.append(b"\xdd" + struct.pack(">I", n))
        for x in v:
            pack(x, out)
    elif isinstance(v, dict):
        n = len(v)
        if n < 16:
            out.append(struct.pack("B", 0x80 | n))
        elif n < 2**16:
            out.append(b"\xde" + struct.pack(">H", n))
        else:
            out.append(b"\xdf" + struct.pack(">I", n))
        for k, x in v.items():
            pack(k, out)
            pack(x, out)
    else:
        raise TypeError("cannot pack %r" % (v,))


class Redis:
    """A minimal RESP client: one command at a time, replies as bytes, ints and lists."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", int(port)))
        self.buf = self.sock.makefile("rb")

    def call(self, *words):
        words = [w if isinstance(w, bytes) else str(w).encode() for w in words]
        self.sock.sendall(b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words))
        return self.read()

    def read(self):
        line = self.buf.readline()[:-2]
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-"):
            return rest
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.buf.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError("unexpected reply %r" % line)


def pairs(reply):
    return list(zip(reply[2::2], reply[3::2])) if isinstance(reply, list) else []


def worker(port, offline, fn, pfx, frm, args, job):
    r = Redis(port)
    home = os.environ["JOB_HOME"].encode()
    out = []
    pack(json.loads(args), out)
    reply = r.call(b"FCALL", fn, 1, home, pfx, frm, b"".join(out), job, 1, 1)
    print(reply[0].decode() if isinstance(reply, list) else reply.decode())
    held, todo, depth = [], [reply], 0
    while todo:
        nxt = []
        for rep in todo:
            for ch, w in pairs(rep):
                if ch in (b"+", b"?"):
                    held.append((depth, ch, w))
                elif isinstance(w, list) and ch in (b"", b"="):
                    nxt.append(r.call(*w[1:]))
        todo, depth = nxt, depth + 1
    held.sort(key=lambda h: -h[0])  # stable: as held within a depth
    for _, ch, w in held:
        named = w[-1].decode()
        if ch == b"?":
            w = w[:-1] + [offline.encode()]
        rep = r.call(*w[1:])
        for c, t in pairs(rep):
            if c == b"":
                r.call(*t[1:])
        print(ch.decode(), named or "-", rep[0].decode() if isinstance(rep, list) else rep.decode())


MISSING = object()


def walk(doc, path):
    if path == "":
        return doc
    for part in path.split("."):
        if isinstance(doc, list):
            try:
                doc = doc[int(part)]
            except (ValueError, IndexError):
                return MISSING
        elif isinstance(doc, dict):
            if part not in doc:
                return MISSING
            doc = doc[part]
        else:
            return MISSING
    return doc


def show(v):
    if v is MISSING:
        return "<missing>"
    if isinstance(v, str):
        return v
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def main():
    cmd = sys.argv[1]
    if cmd == "pack":
        out = []
        pack(json.loads(sys.argv[2]), out)
        sys.stdout.buffer.write(b"".join(out))
        return
    if cmd == "worker":
        worker(*sys.argv[2:9])
        return
    if cmd == "line":
        c, fn, pfx, frm, args = sys.argv[2:7]
        out = []
        pack(json.loads(args), out)
        home = os.environ.get("JOB_HOME", "")  # a job's declared key, as workers send it
        keys = [b"1", home.encode()] if home else [b"0"]
        words = [c.encode(), fn.encode(), *keys, pfx.encode(), frm.encode(), b"".join(out)]
        words += [w.encode() for w in sys.argv[7:]]
        quoted = ['"%s"' % "".join("\\x%02x" % b for b in w) for w in words]
        print(" ".join(quoted))
        return
    try:
        doc = json.loads(sys.argv[2])
    except ValueError:
        print("<badjson>")
        return
    path = sys.argv[3] if len(sys.argv) > 3 else ""
    if cmd == "get":
        if path.startswith("len(") and path.endswith(")"):
            v = walk(doc, path[4:-1])
            print("<missing>" if v is MISSING else len(v))
        else:
            print(show(walk(doc, path)))
    elif cmd in ("seqs", "ids"):
        field = "seq" if cmd == "seqs" else "id"
        v = walk(doc, path)
        print(" ".join(show(x.get(field, MISSING)) for x in (v if isinstance(v, list) else [])))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
