"""Regenerate the directive table in tests/unit/data/upstream/nginx.yaml from nginx's source:

    python -m jdagent.facts.nginx --sources DIR --tag release-1.30.4 > directives.yaml

It reads the command tables (`{ ngx_string("name"), NGX_..._CONF|...|NGX_CONF_TAKE1, ...`) of the
modules the mirror's front uses, all built by default (no --with-* needed), and the command-line options
nginx's main() accepts (src/core/nginx.c ngx_get_options). Each directive gets the blocks it may appear
in: main, events, http, server, location.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

from jdagent.facts.gitsrc import GitSources

REPO = "nginx/nginx"
FILES = ("src/core/nginx.c", "src/core/ngx_log.c", "src/event/ngx_event.c", "src/http/ngx_http.c",
         "src/http/ngx_http_core_module.c", "src/http/ngx_http_upstream.c",
         "src/http/modules/ngx_http_proxy_module.c", "src/http/modules/ngx_http_log_module.c",
         "src/http/modules/ngx_http_headers_filter_module.c", "src/http/modules/ngx_http_rewrite_module.c",
         "src/http/modules/ngx_http_fastcgi_module.c", "src/http/modules/ngx_http_uwsgi_module.c",
         "src/http/modules/ngx_http_scgi_module.c")
_COMMAND = re.compile(r'\{\s*ngx_string\("([a-z0-9_]+)"\),\s*([A-Z0-9_|\s]+?),', re.S)
_OPTION = re.compile(r"^\s*case '(.)':", re.M)
CONTEXTS = {"NGX_MAIN_CONF": "main", "NGX_EVENT_CONF": "events", "NGX_HTTP_MAIN_CONF": "http",
            "NGX_HTTP_SRV_CONF": "server", "NGX_HTTP_LOC_CONF": "location"}


def directives(text: str) -> dict[str, list[str]]:
    """name -> the blocks it is allowed in, from one module's command table."""
    found: dict[str, list[str]] = {}
    for name, flags in _COMMAND.findall(text):
        blocks = [CONTEXTS[f.strip()] for f in flags.split("|") if f.strip() in CONTEXTS]
        if blocks:
            found[name] = sorted(set(found.get(name, [])) | set(blocks))
    return found


def options(text: str) -> list[str]:
    """The single-letter options of ngx_get_options (src/core/nginx.c)."""
    body = text[text.rindex("ngx_get_options(int argc"):]
    body = body[:body.index("\n}\n")]
    return sorted(set(_OPTION.findall(body)) - {"?"})


def generate(sources: GitSources, tag: str) -> dict[str, object]:
    table: dict[str, list[str]] = {}
    for path in FILES:
        for name, blocks in directives(sources.show(REPO, tag, path)).items():
            table[name] = sorted(set(table.get(name, [])) | set(blocks))
    return {"source": {"repo": REPO, "tag": tag, "commit": sources.commit_of(REPO, tag), "files": list(FILES)},
            "options": options(sources.show(REPO, tag, "src/core/nginx.c")),
            "directives": dict(sorted(table.items()))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=Path, action="append", required=True,
                        help="snapshot root with nginx+nginx/repo (or nginx/nginx); repeatable")
    parser.add_argument("--tag", required=True, help="nginx tag, e.g. release-1.30.4")
    args = parser.parse_args(argv)
    facts = generate(GitSources(args.sources), args.tag)
    yaml.safe_dump({"source": facts.pop("source")}, sys.stdout, sort_keys=False)  # one file per line
    yaml.safe_dump(facts, sys.stdout, sort_keys=False, width=120, default_flow_style=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
