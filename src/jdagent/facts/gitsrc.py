"""Read files of upstream repositories at a tag, from local git snapshots.

A snapshot root holds one git repository per upstream repository, in either layout:
  ROOT/<owner>+<name>/repo   (a bare snapshot)      ROOT/<owner>/<name>   (a `git clone`)
Several roots are searched in order. With clone=True a missing repository is cloned (bare) from
GitHub into the first root (needs internet).

A reconstructed snapshot (a file read from another copy of the upstream repository) carries the
upstream commit in its commit message, "upstream <sha> ..."; commit_of() reports that sha.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


class SourceMissing(LookupError):
    """The repository, revision or file is not in the snapshot root."""


@dataclass(eq=False)
class GitSources:
    roots: list[Path]
    clone: bool = False
    _dirs: dict[str, Path] = field(default_factory=dict)

    def git_dir(self, repo: str) -> Path:
        if repo in self._dirs:
            return self._dirs[repo]
        owner, _, name = repo.partition("/")
        for root in self.roots:
            for candidate in (root / f"{owner}+{name}" / "repo", root / owner / name):
                if (candidate / "HEAD").is_file() or (candidate / ".git").exists():
                    self._dirs[repo] = candidate
                    return candidate
        if self.clone:
            target = self.roots[0] / f"{owner}+{name}" / "repo"
            target.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "clone", "--bare", "--quiet", f"https://github.com/{repo}.git", str(target)],
                           check=True)
            self._dirs[repo] = target
            return target
        raise SourceMissing(f"no snapshot of {repo} under {', '.join(map(str, self.roots))} (clone it, or --clone)")

    def has(self, repo: str) -> bool:
        try:
            self.git_dir(repo)
            return True
        except SourceMissing:
            return False

    def _git(self, repo: str, *args: str) -> str | None:
        proc = subprocess.run(["git", "--git-dir", str(self.git_dir(repo)), *args], capture_output=True, text=True)
        return proc.stdout if proc.returncode == 0 else None

    def show(self, repo: str, rev: str, path: str) -> str:
        text = self._show(repo, rev, path)
        if text is None:
            raise SourceMissing(f"{repo}@{rev}:{path} not found")
        return text

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one GitSources per run
    def _show(self, repo: str, rev: str, path: str) -> str | None:
        return self._git(repo, "show", f"{rev}:{path}")

    @functools.lru_cache(maxsize=512)  # noqa: B019
    def tags(self, repo: str) -> frozenset[str]:
        out = self._git(repo, "tag", "--list") or ""
        return frozenset(out.split())

    @functools.lru_cache(maxsize=512)  # noqa: B019
    def files(self, repo: str, rev: str) -> tuple[str, ...]:
        out = self._git(repo, "ls-tree", "-r", "--name-only", rev)
        if out is None:
            raise SourceMissing(f"{repo}@{rev} not found")
        return tuple(out.split("\n")[:-1])

    def full_commit(self, repo: str, rev: str) -> str | None:
        """The full sha of commit `rev` (an abbreviated sha too), or None when the snapshot lacks it."""
        out = self._git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        return out.strip() if out else None

    def count(self, repo: str, rev: str) -> int:
        """Commits reachable from `rev` (`git rev-list --count`)."""
        out = self._git(repo, "rev-list", "--count", rev)
        if out is None:
            raise SourceMissing(f"{repo}@{rev} not found")
        return int(out)

    def head(self, repo: str) -> str:
        """"<sha> (<committer date>)" of the snapshot's HEAD, to say how current a snapshot is."""
        out = self._git(repo, "log", "-1", "--format=%H (%cs)", "HEAD")
        return out.strip() if out else "no HEAD"

    def commit_of(self, repo: str, rev: str) -> str:
        out = self._git(repo, "log", "-1", "--format=%H %s", rev)
        if not out:
            raise SourceMissing(f"{repo}@{rev} not found")
        sha, _, subject = out.strip().partition(" ")
        words = subject.split()
        if len(words) >= 2 and words[0] == "upstream" and len(words[1]) == 40:
            return words[1]
        return sha
