"""Run one command and report its own CPU time and peak RSS, from a small fresh interpreter.

    python benchmarks/_measured_child.py RESULT.json TIMEOUT_SECONDS COMMAND...

Why a launcher: Linux carries a process's peak RSS across ``exec`` from the memory it had
before (``exec_mmap`` keeps the old image's high-water mark in ``signal->maxrss``), and a child
forked (or vforked, or ``posix_spawn``-ed: both share the parent's image until exec) from a
grown benchmark process starts with that process's peak: ``os.wait4``'s ``ru_maxrss`` then
reported run_all's 126 MB for a run whose own peak was 72 MB. Started from this launcher, the
measured command inherits the launcher's few megabytes instead.

Past TIMEOUT_SECONDS (0: none) the command gets SIGTERM, and SIGKILL 30 s later.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def _stop_after(pid: int, timeout: float, finished: threading.Event) -> None:
    if finished.wait(timeout):
        return
    os.kill(pid, signal.SIGTERM)
    if not finished.wait(30):
        os.kill(pid, signal.SIGKILL)


def main() -> None:
    result_path, timeout, command = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    began = time.perf_counter()
    process = subprocess.Popen(command)
    finished = threading.Event()
    if timeout > 0:
        threading.Thread(
            target=_stop_after, args=(process.pid, timeout, finished), daemon=True
        ).start()
    _, status, usage = os.wait4(process.pid, 0)
    finished.set()
    wall = time.perf_counter() - began
    with Path(result_path).open("w", encoding="utf-8") as out:
        json.dump(
            {
                "exit_code": os.waitstatus_to_exitcode(status),
                "wall_seconds": wall,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "peak_rss_mb": usage.ru_maxrss / 1024,  # KiB on Linux
                "timed_out": timeout > 0 and wall >= timeout,
            },
            out,
        )


if __name__ == "__main__":
    main()
