"""Progress output of long steps: to the job's log file and to the terminal at once."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO


class _Tee:
    def __init__(self, *streams: TextIO):
        self.streams = streams

    def write(self, text: str) -> int:
        for s in self.streams:
            s.write(text)
            s.flush()
        return len(text)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()


def tee_output(log_path: str | Path) -> None:
    """Send this process's stdout and stderr to `log_path` as well as where they went before."""
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    log = open(path, "w", buffering=1)
    sys.stdout = _Tee(sys.__stdout__, log)
    sys.stderr = _Tee(sys.__stderr__, log)
