#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target to fuzz/seeds/out/TARGET/ (not kept in git).

The seeds start a campaign; what it finds is minimized into fuzz/corpus/TARGET/, which is
kept. ELF seeds come from the guest programs a root `cargo build` leaves in
target/functions/bin (stripped, or whole with --unstripped), plus small hand-made ELF files
and truncated copies; the others are written here.

    python3 fuzz/seeds/make_seeds.py [--functions DIR] [--unstripped]
"""

import argparse
import io
import os
import shutil
import struct
import subprocess
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "out")


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- ELF ---------------------------------------------------------------------------------

def elf(e_type=2, phdrs=(), entry=0x401000, phoff=64, shoff=0, shnum=0, tail=b""):
    """An ELF64 x86-64 file: header, program headers at `phoff`, then `tail`."""
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header += struct.pack("<HHIQQQIHHHHHH", e_type, 62, 1, entry, phoff, shoff, 0, 64, 56,
                          len(phdrs), 64, shnum, 0)
    table = b"".join(struct.pack("<IIQQQQQQ", *p) for p in phdrs)
    body = header + bytes(max(0, phoff - 64)) + table
    return body + tail


def tiny_static():
    # One PT_LOAD R+X covering the whole file at 0x400000; the code is `mov eax,60; syscall`.
    code = b"\xb8\x3c\x00\x00\x00\x0f\x05"
    size = 64 + 56 + len(code)
    load = (1, 5, 0, 0x400000, 0x400000, size, size, 0x1000)
    return elf(phdrs=[load], entry=0x400000 + 120, tail=code)


def tiny_bss():
    code = b"\x0f\x05"
    size = 64 + 2 * 56 + len(code)
    text = (1, 5, 0, 0x400000, 0x400000, size, size, 0x1000)
    data = (1, 6, 0, 0x600000, 0x600000, size, 0x20000, 0x1000)
    return elf(phdrs=[text, data], entry=0x400000 + 176, tail=code)


def tiny_pie():
    code = b"\x0f\x05"
    size = 64 + 2 * 56 + len(code)
    load = (1, 5, 0, 0, 0, size, size, 0x1000)
    dynamic = (2, 6, 0, 0, 0, 0, 0, 8)
    return elf(e_type=3, phdrs=[load, dynamic], entry=176, tail=code)


def tiny_interp():
    interp = b"/lib64/ld-linux-x86-64.so.2\0"
    off = 64 + 2 * 56
    load = (1, 5, 0, 0x400000, 0x400000, off + len(interp), off + len(interp), 0x1000)
    pt_interp = (3, 4, off, 0, 0, len(interp), len(interp), 1)
    return elf(phdrs=[pt_interp, load], entry=0x400000, tail=interp)


def elf_seeds(functions, unstripped):
    write("elf", "tiny-static", tiny_static())
    write("elf", "tiny-bss", tiny_bss())
    write("elf", "tiny-pie", tiny_pie())
    write("elf", "tiny-interp", tiny_interp())
    write("elf", "tiny-with-sections", elf(entry=0x400078, phdrs=[(1, 5, 0, 0x400000, 0x400000, 200, 200,
                                                    0x1000)], shoff=120, shnum=1, tail=bytes(80)))
    write("elf", "header-only", elf())
    write("elf", "elf32", b"\x7fELF\x01\x01\x01" + bytes(45))
    write("elf", "shell-script", b"#!/bin/sh\necho hello\n")
    if not os.path.isdir(functions):
        print(f"no {functions}: run a root `cargo build` first for the real programs",
              file=sys.stderr)
        return
    for name in sorted(os.listdir(functions)):
        path = os.path.join(functions, name)
        if unstripped:
            data = open(path, "rb").read()
        else:
            stripped = os.path.join(OUT, "stripped")
            subprocess.run(["strip", "-o", stripped, path], check=True)
            data = open(stripped, "rb").read()
            os.remove(stripped)
        write("elf", name, data)
        for cut in (64, 120, 512, 4096):
            write("elf", f"{name}.head{cut}", data[:cut])
        write("elf", f"{name}.minus1", data[:-1])


# --- Runtime API -------------------------------------------------------------------------

P = b"/2018-06-01/runtime"
NEXT = b"GET " + P + b"/invocation/next HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nUser-Agent: x\r\n\r\n"
RID = b"r1"


def post(path, body, extra=b"", chunked=None):
    head = b"POST " + P + path + b" HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n" + extra
    if chunked is None:
        return head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    wire = head + b"Transfer-Encoding: chunked\r\n\r\n"
    for i in range(0, len(body), chunked):
        piece = body[i:i + chunked]
        wire += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return wire + b"0\r\n\r\n"


STREAMING = b"Lambda-Runtime-Function-Response-Mode: streaming\r\n"
ERROR_BODY = b'{"errorMessage":"boom","errorType":"Runtime.Fail","stackTrace":["a","b"]}'


def requests():
    return {
        "next": NEXT,
        "next-http10": b"GET " + P + b"/invocation/next HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "response": post(b"/invocation/" + RID + b"/response", b'{"ok":true}'),
        "response-chunked": post(b"/invocation/" + RID + b"/response", b'{"hello":"world"}',
                                 chunked=5),
        "response-chunked-ext-trailer": b"POST " + P + b"/invocation/r1/response HTTP/1.1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n4;a=b\r\nabcd\r\n0\r\nX-T: 1\r\n\r\n",
        "response-expect": post(b"/invocation/" + RID + b"/response", b"{}",
                                extra=b"Expect: 100-continue\r\n"),
        "response-too-large": b"POST " + P + b"/invocation/r1/response HTTP/1.1\r\n"
        b"Content-Length: 6291557\r\n\r\nxxxx",
        "response-too-large-expect": b"POST " + P + b"/invocation/r1/response HTTP/1.1\r\n"
        b"Expect: 100-continue\r\nContent-Length: 9999999\r\n\r\n",
        "error": post(b"/invocation/" + RID + b"/error", ERROR_BODY,
                      extra=b"Lambda-Runtime-Function-Error-Type: Runtime.Fail\r\n"),
        "error-chunked": post(b"/invocation/" + RID + b"/error", ERROR_BODY, chunked=16),
        "init-error": post(b"/init/error", ERROR_BODY,
                           extra=b"Lambda-Runtime-Function-Error-Type: Runtime.InitFail\r\n"),
        "pipelined": NEXT + post(b"/invocation/" + RID + b"/response", b"ok") + NEXT,
        "pipelined-close": post(b"/invocation/" + RID + b"/response", b"ok",
                                extra=b"Connection: close\r\n") + NEXT,
        "not-found": b"GET /2018-06-01/runtime/nope HTTP/1.1\r\n\r\n",
        "method": b"DELETE " + P + b"/invocation/next HTTP/1.1\r\n\r\n",
        "both-framings": b"POST / HTTP/1.1\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        "gzip": b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "leading-crlf-bare-lf": b"\r\n\r\nGET / HTTP/1.1\nHost: x\n\n",
        # Streaming mode, for invocation "x" (the id the reader target streams).
        "response-streamed": post(b"/invocation/x/response", b"aaaaabbbbbccccc", chunked=5,
                                  extra=STREAMING),
        "response-streamed-length": post(b"/invocation/x/response", b"aaaaabbbbb",
                                         extra=STREAMING),
        "response-streamed-trailers": b"POST " + P + b"/invocation/x/response HTTP/1.1\r\n"
        + STREAMING + b"Trailer: Lambda-Runtime-Function-Error-Type\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\naaaaa\r\n0\r\n"
        b"Lambda-Runtime-Function-Error-Type: Custom.X\r\n"
        b"Lambda-Runtime-Function-Error-Body: eyJlcnJvck1lc3NhZ2UiOiJ4In0=\r\n\r\n" + NEXT,
    }


def reader_seeds():
    for name, wire in requests().items():
        # Two bytes choose the cut points (see the target).
        write("runtime_api_reader", name, b"\x00\x00" + wire)
        write("runtime_api_reader", name + ".cut7-3", b"\x06\x02" + wire)
    write("runtime_api_reader", "chunked-only", b"\x03\x01" + b"5\r\nhello\r\n0\r\n\r\n")


def server_seeds():
    def send(wire, conn=0):
        return bytes([5, conn, len(wire) >> 8, len(wire) & 0xFF]) + wire

    deliver = bytes([2, 4])  # a 4-byte invocation, request id r1 (r2 for the next, ...)
    read_all = bytes([4, 0])
    reqs = requests()
    lifecycle = send(NEXT) + deliver + read_all + send(reqs["response"]) + read_all \
        + send(NEXT) + bytes([2, 10]) + read_all \
        + send(post(b"/invocation/r2/error", ERROR_BODY)) + read_all
    write("runtime_api_server", "lifecycle", lifecycle)
    write("runtime_api_server", "init-error", send(reqs["init-error"]) + read_all + send(NEXT))
    write("runtime_api_server", "deliver-first", deliver + send(reqs["pipelined"]) + read_all
          + bytes([3, 0, 1]) + read_all)
    write("runtime_api_server", "two-connections", bytes([0]) + send(NEXT, 0) + send(NEXT, 1)
          + deliver + bytes([4, 1, 4, 0, 1, 0]) + send(NEXT, 1) + read_all)
    write("runtime_api_server", "chunked", send(NEXT) + deliver + read_all
          + send(reqs["response-chunked"]) + read_all)
    write("runtime_api_server", "expect", send(NEXT) + deliver + read_all
          + send(reqs["response-expect"]) + read_all + send(reqs["response-too-large-expect"]))
    write("runtime_api_server", "garbage", send(b"GARBAGE\r\n\r\n") + read_all + send(NEXT))


# --- zip packages ------------------------------------------------------------------------

def zip_bytes(entries, method=zipfile.ZIP_DEFLATED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in entries:
            if name.endswith("/"):
                z.writestr(zipfile.ZipInfo(name), b"")
            else:
                z.writestr(name, data)
    return buf.getvalue()


def zip_seeds():
    program = tiny_static()
    write("zip_package", "bootstrap", zip_bytes([("bootstrap", program)]))
    write("zip_package", "bootstrap-stored", zip_bytes([("bootstrap", program)],
                                                       zipfile.ZIP_STORED))
    write("zip_package", "bootstrap-and-files", zip_bytes([
        ("bootstrap", program), ("lib/", b""), ("lib/data.json", b'{"a":1}'),
        ("handler.sh", b"#!/bin/sh\n")]))
    write("zip_package", "traversal", zip_bytes([
        ("../../etc/passwd", b"x"), ("/abs/bootstrap", b"x"), ("a/../../b", b"x"),
        ("a/../bootstrap", program), ("./bootstrap", program), ("bootstrap", program)]))
    write("zip_package", "no-bootstrap", zip_bytes([("main", program)]))
    write("zip_package", "not-elf-bootstrap", zip_bytes([("bootstrap", b"#!/bin/sh\necho\n")]))
    write("zip_package", "empty", zip_bytes([]))
    write("zip_package", "compressible", zip_bytes([("bootstrap", bytes(60000))]))
    # The `zip` tool's own output (extra fields, Unix attributes), when it is installed.
    if shutil.which("zip"):
        tmp = os.path.join(OUT, "zip-tmp")
        os.makedirs(tmp, exist_ok=True)
        with open(os.path.join(tmp, "bootstrap"), "wb") as f:
            f.write(program)
        os.chmod(os.path.join(tmp, "bootstrap"), 0o755)
        os.makedirs(os.path.join(tmp, "lib"), exist_ok=True)
        with open(os.path.join(tmp, "lib", "x.txt"), "wb") as f:
            f.write(b"hello\n" * 50)
        zipped = os.path.join(tmp, "p.zip")
        subprocess.run(["zip", "-qr", zipped, "bootstrap", "lib"], cwd=tmp, check=True)
        write("zip_package", "zip-tool", open(zipped, "rb").read())
        shutil.rmtree(tmp)


# --- saved address space ------------------------------------------------------------------


def saved_space_seeds():
    # Each change is 8 bytes (`Saved::apply` in lambda-vmm/src/mm/saved_check.rs): the table,
    # the entry (u16), the kind of frame, which frame (u24), the flags. Nothing changed; a
    # root entry naming a frame of the memory; a page-table entry mapping one for the
    # program; the pool given back a frame.
    write("saved_space", "untouched", b"")
    write("saved_space", "root-entry", bytes([0, 1, 0, 1, 0x40, 0, 0, 0x07]))
    write("saved_space", "leaf", bytes([6, 3, 0, 1, 0x10, 0, 0, 0x07]))
    write("saved_space", "pool", bytes([7, 0, 0, 0, 6, 0, 0, 0]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", default=os.path.join(ROOT, "target", "functions", "bin"))
    parser.add_argument("--unstripped", action="store_true")
    args = parser.parse_args()
    shutil.rmtree(OUT, ignore_errors=True)
    elf_seeds(args.functions, args.unstripped)
    reader_seeds()
    server_seeds()
    zip_seeds()
    saved_space_seeds()
    for target in sorted(os.listdir(OUT)):
        files = os.listdir(os.path.join(OUT, target))
        size = sum(os.path.getsize(os.path.join(OUT, target, f)) for f in files)
        print(f"{target}: {len(files)} seeds, {size} bytes")


if __name__ == "__main__":
    main()
