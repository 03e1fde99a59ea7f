"""What a process costs, read from ``/proc``: RSS and CPU time, summed over its descendants too
("server memory per connection" and "server CPU per call" in the benchmarks), and the file
descriptor limit a run with thousands of sockets needs."""

from __future__ import annotations

import contextlib
import os
import resource


def read_rss_bytes(pid: int) -> int:
    """Resident set size of one process (``VmRSS`` in /proc/PID/status)."""
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0  # a zombie has no VmRSS line


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
        raw = fh.read()
    # comm (field 2) may contain spaces and parentheses: split after the last ')'
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants (found by scanning /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry))[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def read_tree_rss_bytes(pid: int) -> int:
    """Summed RSS of ``pid`` and its descendants (e.g. ``sh -c`` plus the server)."""
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            total += read_rss_bytes(p)
    return total


def read_cpu_seconds(pid: int) -> float:
    """User + system CPU time consumed so far by one process."""
    fields = _stat_fields(pid)
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def read_tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in process_tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += read_cpu_seconds(p)
    return total


def read_system_busy_seconds() -> float:
    """CPU time all CPUs spent running processes since boot (``/proc/stat`` user + nice + system).

    Interrupt and softirq time (where part of loopback TCP is processed) is
    left out, so that busy - (server + load generator) is other processes' CPU.
    """
    with open("/proc/stat", encoding="ascii") as fh:
        fields = fh.readline().split()
    user, nice, system = (int(v) for v in fields[1:4])
    return (user + nice + system) / os.sysconf("SC_CLK_TCK")


def raise_nofile_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
