"""Drive a Jenkins job through python-jenkins with bounded, honest waits (used by tests/e2e).

- connect(): retries while Jenkins starts (connection refused, 503), but credentials that are refused
  (401/403 twice in a row) fail at once instead of after the whole deadline;
- run_job(): a queue item that Jenkins cancels, or a build that never leaves the queue or never ends,
  fails with what Jenkins said, not after a blind wait;
- push_digest(): the digest `docker push` printed in a console log;
- Reconnecting: a client whose connection (a kubectl port-forward, which dies with its pod, a node
  hiccup, an idle timeout) is opened again, and the call retried once, when a call fails to connect.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

AUTH_FAILED = re.compile(r"authentication failed \[(401|403)\]")
PUSH_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: \d+")


class JenkinsAuthError(RuntimeError):
    """Jenkins answered, and refused the credentials."""


class JobError(RuntimeError):
    """The job was cancelled, never left the queue, or never finished. `number` and `console` hold the
    build and its console so far, when it had started."""

    def __init__(self, message: str, number: int | None = None, console: str = "") -> None:
        super().__init__(message)
        self.number = number
        self.console = console


def log(message: str) -> None:
    print(f"[jenkins] {message}", file=sys.stderr, flush=True)


def connect(factory: Callable[[], Any], deadline_s: float = 600, interval: float = 5,
            sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> Any:
    """A client from `factory()` once `get_whoami()` answers as the configured user."""
    deadline = clock() + deadline_s
    refusals = 0
    while True:
        client = factory()
        try:
            client.get_whoami()
            return client
        except Exception as exc:  # python-jenkins raises JenkinsException, requests errors, timeouts
            text = str(exc)
            if AUTH_FAILED.search(text):
                refusals += 1
                if refusals >= 2:
                    raise JenkinsAuthError(f"Jenkins refused the admin credentials twice: {text[:300]}") from exc
            else:
                refusals = 0
            if clock() > deadline:
                raise TimeoutError(f"Jenkins did not answer within {deadline_s:.0f} s: {text[:300]}") from exc
            log(f"waiting for Jenkins ({type(exc).__name__}: {text.splitlines()[0][:120] if text else ''})")
            sleep(interval)


@dataclass
class Build:
    number: int
    result: str
    console: str


def run_job(client: Any, job: str, params: Mapping[str, Any], timeout_s: float = 1200,
            sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> Build:
    queue_id = client.build_job(job, dict(params))
    deadline = clock() + timeout_s
    number = None
    while number is None:
        item = client.get_queue_item(queue_id)
        if item.get("cancelled"):
            raise JobError(f"{job}: Jenkins cancelled the queue item {queue_id} ({item.get('why') or 'no reason'})")
        number = (item.get("executable") or {}).get("number")
        if number is None:
            if clock() > deadline:
                raise JobError(f"{job} never left the queue in {timeout_s:.0f} s: {item.get('why')}")
            log(f"{job} queued: {item.get('why')}")
            sleep(5)
    while True:
        info = client.get_build_info(job, number)
        if not info.get("building") and info.get("result"):
            break
        if clock() > deadline:
            try:
                console = client.get_build_console_output(job, number)
            except Exception as exc:  # the evidence is best effort; the timeout is the error
                console = f"(console not read: {type(exc).__name__}: {exc})"
            raise JobError(f"{job} #{number} still running after {timeout_s:.0f} s", number, console)
        log(f"{job} #{number} building")
        sleep(10)
    return Build(number, info["result"], client.get_build_console_output(job, number))


def push_digest(console: str) -> str | None:
    """The digest of the last `docker push` in a console log ("<tag>: digest: sha256:... size: N")."""
    found = PUSH_DIGEST.findall(console)
    return found[-1] if found else None


# What a dead port-forward looks like to python-jenkins (requests/urllib3 underneath): the text of the
# error, since python-jenkins wraps some of them in its own JenkinsException.
CONNECTION_LOST = re.compile(r"(?i)connection (refused|reset|aborted)|remote end closed|broken pipe|"
                             r"max retries exceeded|failed to establish a new connection|timed out")


def connection_lost(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionError | TimeoutError) or bool(CONNECTION_LOST.search(str(exc)))


class Reconnecting:
    """Proxy to a client that `open_client` makes inside a context (a port-forward); a call that fails
    because the connection is gone closes that context, opens a new one, rebuilds the client and runs the
    call once more. Other errors pass through untouched."""

    def __init__(self, open_client: Callable[[], contextlib.AbstractContextManager[Any]], attempts: int = 2) -> None:
        self._open = open_client
        self._attempts = attempts
        self._stack: contextlib.ExitStack | None = None
        self._client: Any = None
        self.reconnects = 0
        self._connect()

    def _connect(self) -> None:
        self.close()
        stack = contextlib.ExitStack()
        try:
            self._client = stack.enter_context(self._open())
        except BaseException:
            stack.close()
            raise
        self._stack = stack

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._client, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            for attempt in range(self._attempts):
                try:
                    return getattr(self._client, name)(*args, **kwargs)
                except Exception as exc:
                    if attempt + 1 >= self._attempts or not connection_lost(exc):
                        raise
                    log(f"{name}: connection lost ({type(exc).__name__}: {str(exc)[:120]}); reconnecting")
                    self.reconnects += 1
                    self._connect()
            raise AssertionError("unreachable")

        return call
