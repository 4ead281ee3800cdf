"""Build upstream Go programs from their published modules with the ordinary Go client, once per pin.

Each `GoProgram` names its module and version, the packages to build, tags, ldflags and cgo. `build()`
puts the binaries in `.tools/go/<name>-<version>-<key>/` (the key hashes everything that changes the
output, the Go version included) and reuses them while the pin holds. Programs whose go.mod replaces
its own staging modules (k8s.io/kubernetes) are built from a small main module of ours that requires
the upstream module and maps each replace to the published version (`staging`); a module without a
go.mod (docker/cli, +incompatible) gets the list its vendor.mod pins required as is (`requires_file`).
While `go build` runs, a progress line (packages compiled of the total) is printed every 20 seconds.

Licences: every module linked into a binary is listed with the licence its LICENSE file names, in
`LICENSES.txt` next to the binaries; a module without a recognised licence fails the build.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from jdagent.paths import TOOLS_DIR

GO_DIR = TOOLS_DIR / "go"
STAMP = ".complete.json"
PROGRESS_EVERY_S = 20.0
# first words of a LICENSE file -> the licence (the ones the pinned programs' modules carry)
LICENCES = (
    (re.compile(r"Apache License,?\s+Version 2\.0", re.I), "Apache-2.0"),  # the full text, or its short notice
    (re.compile(r"Mozilla Public License,? (version )?2\.0", re.I), "MPL-2.0"),
    (re.compile(r"Permission is hereby granted, free of charge", re.I), "MIT"),
    (re.compile(r"Permission to use, copy, modify, and(/or)? distribute this software", re.I), "ISC"),
    (re.compile(r"Redistribution and use in source and binary forms", re.I), "BSD"),
    (re.compile(r"This is free and unencumbered software released into the public domain", re.I), "Unlicense"),
    (re.compile(r"Creative Commons .*CC0|CC0 1\.0 Universal", re.I | re.S), "CC0-1.0"),
    (re.compile(r"Attribution-ShareAlike 4\.0 International", re.I), "CC-BY-SA-4.0"),
    (re.compile(r"Attribution 4\.0 International", re.I), "CC-BY-4.0"),  # documentation licences (spdx/tools-golang)
)


class GoBuildError(RuntimeError):
    """A Go build failed; the message names the program, the command and the tail of its output."""


def say(message: str) -> None:
    print(f"[go] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class GoProgram:
    name: str                          # folder name under .tools/go/
    module: str                        # the upstream module
    version: str                       # its pinned version
    packages: Mapping[str, str]        # binary name -> package path (absolute, or "." for our main.go)
    source: str                        # where the pin comes from (for humans and the facts file)
    tags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ("-s", "-w")
    cgo: bool = False
    extra_requires: Mapping[str, str] = field(default_factory=dict)
    main_go: str | None = None         # our own multi-call main (built as package ".")
    staging: Callable[[str], str] | None = None   # staging module -> published version
    links: tuple[str, ...] = ()        # names symlinked to the single binary (multi-call)
    module_files: tuple[str, ...] = ()  # files of the module itself the program reads at run time (copied)
    build_flags: tuple[str, ...] = ()  # more `go build` flags (-buildmode=pie)
    # A module without a go.mod of its own (+incompatible: docker/cli) keeps its dependency list in another
    # file (vendor.mod): every module it requires (and replaces) is required at that version here, so the
    # build links what upstream vendors rather than whatever is newest.
    requires_file: str | None = None

    def key(self, go_version: str) -> str:
        data = dataclasses.asdict(self) | {"staging": bool(self.staging), "go": go_version}
        for later in ("module_files", "build_flags", "requires_file"):
            if not data[later]:
                del data[later]  # keys of programs that do not use a later field stay what they were
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def go_binary() -> str:
    found = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").is_file() else None)
    if not found:
        raise GoBuildError("no Go toolchain: install Go 1.26 or newer (`go` on PATH)")
    return found


def go_version(go: str | None = None) -> str:
    out = subprocess.run([go or go_binary(), "env", "GOVERSION"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _run(cmd: list[str], cwd: Path, env: Mapping[str, str], what: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=dict(env), capture_output=True, text=True)
    if proc.returncode != 0:
        raise GoBuildError(f"{what}: `{' '.join(cmd)}` exited {proc.returncode}:\n"
                           f"{(proc.stderr or proc.stdout)[-3000:]}")
    return proc.stdout


def module_dir(module: str, version: str, env: Mapping[str, str], cwd: Path) -> Path:
    out = _run([go_binary(), "mod", "download", "-json", f"{module}@{version}"], cwd, env, f"download {module}")
    return Path(json.loads(out)["Dir"])


def staging_replaces(gomod: str) -> list[str]:
    """The modules a go.mod replaces with its own folders (`k8s.io/api => ./staging/src/k8s.io/api`)."""
    return re.findall(r"(?m)^\s*(?:replace\s+)?(\S+)\s+=>\s+\./staging/\S+\s*$", gomod)


def listed_requirements(modfile: str) -> tuple[dict[str, str], dict[str, str]]:
    """(requires, replaces) of a go.mod-style file: module -> version, and module -> "target@version"
    (a replace by a local folder is skipped: it cannot be built from the proxy)."""
    requires: dict[str, str] = {}
    replaces: dict[str, str] = {}
    block = ""
    for raw in modfile.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if line.endswith("(") and line.split()[0] in ("require", "replace", "tool", "exclude", "retract"):
            block = line.split()[0]
            continue
        if line == ")":
            block = ""
            continue
        words = line.split()
        kind = block
        if not block and words[0] in ("require", "replace"):
            kind, words = words[0], words[1:]
        if kind == "require" and len(words) >= 2:
            requires[words[0]] = words[1]
        elif kind == "replace" and "=>" in words:
            left, right = words[:words.index("=>")], words[words.index("=>") + 1:]
            if len(right) == 2 and not right[0].startswith((".", "/")):
                replaces[left[0] if len(left) == 1 else f"{left[0]}@{left[1]}"] = f"{right[0]}@{right[1]}"
    return requires, replaces


def licence_of(folder: Path) -> str | None:
    """The licence(s) a module's LICENSE/COPYING files name ("BSD AND MPL-2.0"), None without such a file."""
    found: set[str] = set()
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().startswith(("licen", "copying")))
    for path in files:
        text = path.read_text(errors="replace")[:6000]
        spdx = re.search(r"SPDX-License-Identifier:\s*([\w.\- ()]+?)`?\s*$", text, re.M)
        names = [licence for pattern, licence in LICENCES if pattern.search(text)]
        if spdx and not names:
            names = [spdx.group(1).strip()]
        found |= set(names[:1]) if names else {f"unrecognised ({path.name})"}
    if not files:
        return None
    return " AND ".join(sorted(found))


def _progress(log: Path, total: int, name: str, done: threading.Event) -> None:
    start = time.monotonic()
    while not done.wait(PROGRESS_EVERY_S):
        count = sum(1 for _ in log.open(errors="replace")) if log.exists() else 0
        say(f"{name}: {min(count, total)}/{total} packages compiled ({time.monotonic() - start:.0f} s)")


def _environment(program: GoProgram, work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"CGO_ENABLED": "1" if program.cgo else "0", "GOFLAGS": "-mod=mod", "GOWORK": "off",
                "GOTOOLCHAIN": "local"})
    return env


def _prepare(program: GoProgram, work: Path, env: Mapping[str, str]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    for stale in ("go.mod", "go.sum", "main.go"):
        (work / stale).unlink(missing_ok=True)
    go = go_binary()
    _run([go, "mod", "init", f"jda.local/build/{program.name}"], work, env, "go mod init")
    requires = {program.module: program.version, **program.extra_requires}
    edits = [f"-require={m}@{v}" for m, v in requires.items()]
    if program.staging:
        gomod = (module_dir(program.module, program.version, env, work) / "go.mod").read_text()
        edits += [f"-replace={m}={m}@{program.staging(m)}" for m in staging_replaces(gomod)]
    if program.requires_file:
        listed = (module_dir(program.module, program.version, env, work) / program.requires_file).read_text()
        pinned, replaced = listed_requirements(listed)
        edits += [f"-require={m}@{v}" for m, v in pinned.items() if m not in requires]
        edits += [f"-replace={m}={target}" for m, target in replaced.items()]
    _run([go, "mod", "edit", *edits], work, env, "go mod edit")
    if program.main_go is not None:
        (work / "main.go").write_text(program.main_go)
        _run([go, "mod", "tidy"], work, env, f"go mod tidy ({program.name})")
    else:
        for package in program.packages.values():
            _run([go, "get", f"{package}@{program.version}" if package.startswith(program.module) else package],
                 work, env, f"go get {package}")


def _licences(program: GoProgram, work: Path, env: Mapping[str, str], tags: list[str]) -> list[str]:
    fmt = "{{with .Module}}{{.Path}} {{.Version}} {{.Dir}}{{with .Replace}} {{.Dir}}{{end}}{{end}}"
    out = _run([go_binary(), "list", *tags, "-deps", "-f", fmt, *program.packages.values()], work, env, "go list")
    rows, bad = [], []
    for line in sorted(set(out.split("\n")) - {""}):
        parts = line.split()
        if len(parts) < 2 or parts[0].startswith("jda.local/"):
            continue
        folder = Path(parts[-1])
        licence = licence_of(folder)
        rows.append(f"{parts[0]} {parts[1]} {licence or 'NONE'}")
        if licence is None or "unrecognised" in licence:
            bad.append(rows[-1])
    if bad:
        raise GoBuildError(f"{program.name}: modules without a recognised licence:\n  " + "\n  ".join(bad))
    return rows


def output_dir(program: GoProgram) -> Path:
    return GO_DIR / f"{program.name}-{program.version}-{program.key(go_version())}"


def build(program: GoProgram, force: bool = False) -> Path:
    """The folder holding the program's binaries, built now unless this pin's build is already there."""
    out = output_dir(program)
    if (out / STAMP).is_file() and not force:
        return out
    work = GO_DIR / ".work" / program.name
    env = _environment(program, work)
    started = time.monotonic()
    say(f"building {program.name} {program.version} ({', '.join(program.packages)}) into {out}")
    _prepare(program, work, env)
    tags = ["-tags", ",".join(program.tags)] if program.tags else []
    total = int(_run([go_binary(), "list", *tags, "-deps", *program.packages.values()], work, env,
                     "go list").count("\n"))
    licences = _licences(program, work, env, tags)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    log = out / "build.log"
    for binary, package in program.packages.items():
        done = threading.Event()
        watcher = threading.Thread(target=_progress, args=(log, total, f"{program.name}/{binary}", done),
                                   daemon=True)
        watcher.start()
        cmd = [go_binary(), "build", "-trimpath", "-v", *program.build_flags, *tags,
               "-ldflags", " ".join(program.ldflags), "-o", str(out / binary), package]
        with log.open("a") as sink:
            proc = subprocess.run(cmd, cwd=work, env=env, stdout=sink, stderr=subprocess.STDOUT)
        done.set()
        watcher.join()
        if proc.returncode != 0:
            raise GoBuildError(f"{program.name}: `{' '.join(cmd)}` exited {proc.returncode}:\n"
                               f"{log.read_text(errors='replace')[-3000:]}")
    for link in program.links:
        (out / link).symlink_to(next(iter(program.packages)))
    if program.module_files:
        source = module_dir(program.module, program.version, env, work)
        for name in program.module_files:
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, out / name)
    (out / "LICENSES.txt").write_text("\n".join(licences) + "\n")
    seconds = time.monotonic() - started
    (out / STAMP).write_text(json.dumps({"module": program.module, "version": program.version,
                                         "go": go_version(), "seconds": round(seconds, 1),
                                         "modules": len(licences)}, indent=2) + "\n")
    say(f"built {program.name} {program.version} in {seconds:.0f} s ({len(licences)} modules, licences checked)")
    return out


def build_all(programs: Iterable[GoProgram], force: bool = False) -> dict[str, Path]:
    return {p.name: build(p, force) for p in programs}


def built_seconds(folder: Path) -> float | None:
    stamp = folder / STAMP
    return float(json.loads(stamp.read_text())["seconds"]) if stamp.is_file() else None
