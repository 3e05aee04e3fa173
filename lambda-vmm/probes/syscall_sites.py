#!/usr/bin/env python3
"""Probe: where could a program's `syscall` sites jump to ring-3 code instead of exiting?

`syscall_bounce_probe.c` shows that any trip through the guest's emulated ring 0 costs most
of an exit, so a syscall answered inside the guest must never leave ring 3: its site has to
be rewritten into a jump. The site is two bytes, too short for a `jmp rel32`. This script
reads a static x86-64 program with `objdump -d` and counts, for every `syscall` instruction,
whether one of two rewrites would reach a stub:

  padding: the site becomes `jmp rel8` to a run of int3 padding (never executed) that has a
           free 5-byte slot for a `jmp rel32` within -128..+127 bytes. Nothing else of the
           program changes, so no jump of the program can land inside a rewrite. Slots are
           handed to sites in address order, nearest first.
  window:  the whole instructions just before the site (at least 5 bytes) become a
           `jmp rel32`, the site itself `out 0x80, al` (so a jump to the site still makes the
           call). Safe only if no jump lands inside the window: here no direct branch of the
           program does, and the window holds no branch, padding or function start. Jumps
           through tables or pointers are not seen, which is this rewrite's hazard.

It also names the sites of the calls a one-shot `hello` makes after its restore point (read,
write, sigaltstack, munmap, exit_group).
Run: python3 syscall_sites.py target/functions/bin/hello target/functions/bin/runtime-rust
"""
import bisect
import collections
import re
import subprocess
import sys

HOT = re.compile(r"^(__libc_(read|write)|__(read|write)_nocancel|__sigaltstack|munmap|_Exit)$")
BRANCH = re.compile(r"(j\w+|call|loop\w*|xbegin)\s+([0-9a-f]+)\b")
NOT_MOVABLE = re.compile(r"(j\w+|call|ret|loop|int3|nop|endbr|ud2|hlt)")


def disassemble(path):
    """Instructions as (address, length, text, function); None marks a function start."""
    out = subprocess.run(["objdump", "-d", "-M", "intel", path], capture_output=True, text=True, check=True).stdout
    insns, code, function = [], {}, None
    for line in out.splitlines():
        m = re.match(r"^([0-9a-f]+) <(.*)>:", line)
        if m:
            function = m.group(2)
            insns.append(None)
            continue
        m = re.match(r"^\s+([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t?(.*)$", line)
        if not m:
            continue
        address, raw, text = int(m.group(1), 16), m.group(2).split(), m.group(3).strip()
        for i, byte in enumerate(raw):
            code[address + i] = int(byte, 16)
        if not text and insns and insns[-1]:  # a long instruction's second line
            a, n, t, f = insns[-1]
            insns[-1] = (a, n + len(raw), t, f)
        elif text:
            insns.append((address, len(raw), text, function))
    return insns, code


def padding_slots(code):
    """Start addresses of 5-byte slots in runs of int3."""
    slots, address, end = [], min(code), max(code)
    while address <= end:
        if code.get(address) == 0xCC:
            start = address
            while code.get(address + 1) == 0xCC:
                address += 1
            slots += range(start, address - 3, 5)
        address += 1
    return slots


def window(insns, i, targets):
    """Why the instructions before site i cannot become a jmp rel32, or 'ok'."""
    k, size, riprel = i - 1, 0, False
    while size < 5:
        insn = insns[k] if k >= 0 else None
        if insn is None:
            return "no: a function starts within 5 bytes"
        if NOT_MOVABLE.match(insn[2]):
            return "no: a branch or padding within 5 bytes"
        riprel |= "rip" in insn[2]
        size += insn[1]
        k -= 1
    if any(insns[j][0] in targets for j in range(k + 2, i + 1)):
        return "no: a direct branch lands inside"
    return "ok, with a rip-relative operand to move" if riprel else "ok"


def survey(path):
    insns, code = disassemble(path)
    targets = {int(m.group(2), 16) for x in insns if x for m in [BRANCH.match(x[2])] if m}
    slots, used = padding_slots(code), set()
    windows, by_padding, hot = collections.Counter(), 0, []
    sites = [i for i, x in enumerate(insns) if x and x[2] == "syscall"]
    for i in sites:
        address, _, _, function = insns[i]
        back = address + 2
        lo, hi = bisect.bisect_left(slots, back - 128), bisect.bisect_right(slots, back + 127)
        free = sorted((abs(s - back), s) for s in slots[lo:hi] if s not in used)
        if free:
            used.add(free[0][1])
            by_padding += 1
        reason = window(insns, i, targets)
        windows[reason] += 1
        if function and HOT.match(function):
            hot.append(f"{function} at {address:#x}: padding {'yes' if free else 'no'}; window {reason}")
    print(f"{path}: {len(sites)} syscall sites")
    print(f"  padding: {by_padding} reach a free slot ({len(slots)} slots in the program)")
    for reason, count in windows.most_common():
        print(f"  window:  {count} {reason}")
    for line in hot:
        print(f"  {line}")


if __name__ == "__main__":
    for program in sys.argv[1:]:
        survey(program)
