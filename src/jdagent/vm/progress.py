"""Output and long steps: every line is prefixed `[vm]` on stderr; `run_step` runs a command with an
explicit timeout, its output in a log file, a progress line every 20 seconds (elapsed time and the log's
last line), and an error naming the step and the log's tail when it fails or times out."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

PROGRESS_EVERY_S = 20.0


class VmError(RuntimeError):
    """A step of building or running the VM failed; the message names the step."""


def say(message: str) -> None:
    print(f"[vm] {message}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 30) -> str:
    if not path.is_file():
        return f"({path} does not exist)"
    text = path.read_bytes()[-64_000:].decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def _last_line(path: Path) -> str:
    found = [line for line in tail(path, 5).splitlines() if line.strip()]
    return found[-1].strip()[:120] if found else ""


def _watch(what: str, log: Path, started: float, done: threading.Event) -> None:
    while not done.wait(PROGRESS_EVERY_S):
        last = _last_line(log)
        say(f"{what}: {time.monotonic() - started:.0f} s" + (f" ({last})" if last else ""))


def run_step(cmd: Sequence[str], what: str, timeout: float, log: Path, *, env: Mapping[str, str] | None = None,
             nice: bool = True) -> float:
    """Run `cmd` (under `nice` unless told), output appended to `log`; the seconds it took."""
    argv = (["nice", "-n", "10"] if nice else []) + list(cmd)
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(what, log, started, done), daemon=True)
    with log.open("a") as sink:
        sink.write(f"\n$ {' '.join(argv)}\n")
        sink.flush()
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=dict(env) if env is not None else None, start_new_session=True)
        watcher.start()
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise VmError(f"{what}: no result within {timeout:.0f} s (`{' '.join(argv)}`); log {log}:\n"
                          f"{tail(log)}") from None
        finally:
            done.set()
            watcher.join()
    if rc != 0:
        raise VmError(f"{what}: `{' '.join(argv)}` exited {rc}; log {log}:\n{tail(log)}")
    return time.monotonic() - started


@contextlib.contextmanager
def heartbeat(what: str, detail: Callable[[], str] | None = None) -> Iterator[None]:
    """A progress line every 20 s while the block runs (elapsed time, and `detail()` when given)."""
    started = time.monotonic()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(PROGRESS_EVERY_S):
            extra = ""
            if detail is not None:
                with contextlib.suppress(Exception):
                    extra = f" ({detail()})"
            say(f"{what}: {time.monotonic() - started:.0f} s{extra}")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def capture(cmd: Sequence[str], what: str, timeout: float) -> str:
    """A short command's stdout; VmError naming the step when it fails or times out."""
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise VmError(f"{what}: `{' '.join(cmd)}` gave no result within {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise VmError(f"{what}: `{' '.join(cmd)}` exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout
