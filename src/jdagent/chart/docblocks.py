"""Generated blocks in Markdown files, between `<!-- NAME:start -->` and `<!-- NAME:end -->` markers."""

from __future__ import annotations

from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def read_block(path: Path, name: str) -> str:
    start, end = markers(name)
    text = path.read_text()
    if start not in text or end not in text:
        raise ValueError(f"{path} lacks the {start} / {end} markers")
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n") + "\n"


def write_block(path: Path, name: str, body: str) -> None:
    start, end = markers(name)
    head, rest = path.read_text().split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{body}{end}{tail}")
