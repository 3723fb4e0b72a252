"""Child processes that never outlive their parent: each in its own process group, told to stop with
SIGTERM, killed if it does not, and sent SIGTERM by the kernel if the parent dies first."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from common.lifecycle import die_with_parent


class ProcessGroup:
    """The processes one command started, stopped together in reverse order of starting."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                list(args),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.processes.append((name, process))
        return process

    def exited(self) -> list[tuple[str, int]]:
        """The processes that have ended, with their exit codes."""
        return [(name, code) for name, process in self.processes if (code := process.poll()) is not None]

    def stop_all(self, timeout_s: float = 10.0) -> None:
        """SIGTERM to every group, newest first; SIGKILL to what is left when the time is up."""
        for _, process in reversed(self.processes):
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for _, process in reversed(self.processes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.0, deadline - time.monotonic()))
        for _, process in self.processes:
            _signal_group(process, signal.SIGKILL)
            process.wait()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
