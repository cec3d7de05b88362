"""The worker's fence: the model code may not stop or signal the supervisor.

A stopped supervisor enforces no budget and writes no report, and every process of the same
user may send it SIGSTOP. So the worker, before it imports any user code, installs a seccomp
filter (inherited by every process the model code starts, and impossible to remove) under
which these calls fail with EPERM:

- a stop signal (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU) to any process: nothing in a worker's
  tree has a reason to stop a process (a worker stopped from outside is detected and killed);
- any signal to the supervisor, to its process group, or to every process (`kill(-1, ...)`);
- `pidfd_send_signal`, whose target the filter cannot see, and `pidfd_open` of the supervisor;
- attaching a debugger (`PTRACE_ATTACH`, `PTRACE_SEIZE`), which stops its target too.

Linux on x86_64 and aarch64 only; elsewhere `install` returns False and nothing changes.
This module imports no torch (it runs before the worker's heavy imports).
"""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import struct

_STOP_SIGNALS = (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
_PTRACE_ATTACH, _PTRACE_SEIZE = 16, 0x4206
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2

# BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h).
_LOAD, _JEQ, _JSET, _RET = 0x20, 0x15, 0x45, 0x06
_ALLOW, _DENY = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ERRNO | EPERM
_NR, _ARCH = 0, 4  # offsets in struct seccomp_data


def _arg(index: int) -> int:
    return 16 + 8 * index  # low 32 bits of args[index] (little-endian machines)


# machine -> (audit arch, syscall numbers). Signal calls: (number, target arg, signal arg).
_ARCHES = {
    "x86_64": (
        0xC000003E,
        {"kill": 62, "tkill": 200, "tgkill": 234, "rt_sigqueueinfo": 129,
         "rt_tgsigqueueinfo": 297, "pidfd_send_signal": 424, "pidfd_open": 434, "ptrace": 101},
    ),
    "aarch64": (
        0xC00000B7,
        {"kill": 129, "tkill": 130, "tgkill": 131, "rt_sigqueueinfo": 138,
         "rt_tgsigqueueinfo": 240, "pidfd_send_signal": 424, "pidfd_open": 434, "ptrace": 117},
    ),
}  # fmt: skip
_SIGNAL_ARGS = {  # syscall -> (target pid argument, signal argument)
    "kill": (0, 1),
    "tkill": (0, 1),
    "tgkill": (0, 2),
    "rt_sigqueueinfo": (0, 1),
    "rt_tgsigqueueinfo": (0, 2),
}


def install(supervisor_pid: int) -> bool:
    """Install the fence in this process (and so in everything it starts later).

    Args:
        supervisor_pid: the process to protect (the worker's parent).

    Returns:
        True when the filter is in place; False where seccomp or this machine is unsupported.
    """
    machine = platform.machine().lower()
    if platform.system() != "Linux" or machine not in _ARCHES:
        return False
    try:
        group = os.getpgid(supervisor_pid)
    except OSError:
        group = supervisor_pid
    program = _program(machine, supervisor_pid, group)
    buffer = ctypes.create_string_buffer(program)

    class _Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = _Program(len(program) // 8, ctypes.addressof(buffer))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return False
        return libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _program(machine: str, supervisor: int, group: int) -> bytes:
    """The filter as BPF: every comparison is followed by the `return EPERM` it guards, so no
    jump is longer than one block."""
    audit_arch, numbers = _ARCHES[machine]
    protected = (supervisor, -1, -group)  # the supervisor, every process, its process group
    code: list[tuple[int, int, int, int]] = [
        (_LOAD, 0, 0, _ARCH),
        (_JEQ, 1, 0, audit_arch),
        (_RET, 0, 0, _DENY),  # another ABI (32-bit calls on a 64-bit kernel): refused
        (_LOAD, 0, 0, _NR),
    ]
    if machine == "x86_64":
        code += [(_JSET, 0, 1, 0x40000000), (_RET, 0, 0, _DENY)]  # the x32 ABI: refused

    def block(name: str, body: list[tuple[int, int, int, int]]) -> None:
        body = [*body, (_RET, 0, 0, _ALLOW)]
        code.append((_JEQ, 0, len(body), numbers[name]))
        code.extend(body)

    def deny_if(arg: int, values) -> list[tuple[int, int, int, int]]:
        out = [(_LOAD, 0, 0, _arg(arg))]
        for value in values:
            out += [(_JEQ, 0, 1, value & 0xFFFFFFFF), (_RET, 0, 0, _DENY)]
        return out

    for name, (target, sig) in _SIGNAL_ARGS.items():
        block(name, deny_if(sig, _STOP_SIGNALS) + deny_if(target, protected))
    block("ptrace", deny_if(0, (_PTRACE_ATTACH, _PTRACE_SEIZE)))
    block("pidfd_open", deny_if(0, (supervisor,)))
    block("pidfd_send_signal", [(_RET, 0, 0, _DENY)])
    code.append((_RET, 0, 0, _ALLOW))
    return b"".join(struct.pack("HBBI", op, jt, jf, k & 0xFFFFFFFF) for op, jt, jf, k in code)
