"""Regenerate the flag list in tests/unit/data/upstream/dockerd.yaml from moby's source:

    python -m jdagent.facts.dockerd --sources DIR --tag docker-v29.7.2

It reads the pflag definitions (`flags.XxxVar(&field, "name", ...)`, `flags.Var(opts, "name", ...)`,
`flags.XxxVarP(..., "name", "x", ...)`) of daemon/command/*.go, with the daemon.json key of flags whose
value is a named option (`opts.NewNamedListOptsRef("registry-mirrors", ...)`), and the daemon.json key
sets of daemon/config/config.go (flatOptions, skipValidateOptions, skipDuplicates), and prints them as
YAML; the value rules in the data file are recorded by hand from daemon/config/config.go and
daemon/pkg/registry/config.go.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

from jdagent.facts.gitsrc import GitSources
from jdagent.facts.java import matching

REPO = "moby/moby"
FILES = ("daemon/command/config.go", "daemon/command/config_unix.go", "daemon/command/options.go",
         "daemon/command/docker.go")
_CALL = re.compile(r"\bflags\.(\w+)\(")
_CONST = re.compile(r'^\s*(Flag\w+)\s*=\s*"([a-z0-9-]+)"', re.M)
_NAMED = re.compile(r'^\w*opts\.NewNamed\w+\(\s*"([a-z0-9-]+)"')
_KEYSET = re.compile(r"^var (flatOptions|skipValidateOptions|skipDuplicates) = map\[string\]bool\{(.*?)^\}",
                     re.M | re.S)
CONFIG_FILE = "daemon/config/config.go"


def _args(call: str) -> list[str]:
    out, depth, cur, quoted = [], 0, [], False
    for i, c in enumerate(call):
        if quoted:
            cur.append(c)
            if c == '"' and call[i - 1] != "\\":
                quoted = False
            continue
        if c == '"':
            quoted = True
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(c)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def flags(src: GitSources, tag: str) -> dict[str, dict[str, str]]:
    """flag name -> {"kind": bool|value, "short": x} of dockerd at `tag`."""
    out: dict[str, dict[str, str]] = {}
    texts = [src.show(REPO, tag, f) for f in FILES]
    consts = {m.group(1): m.group(2) for t in texts for m in _CONST.finditer(t)}
    for text in texts:
        for match in _CALL.finditer(text):
            method = match.group(1)
            if method.startswith("Mark") or method in ("Changed", "Lookup", "Parse", "SortFlags"):
                continue
            end = matching(text, match.end() - 1, "(", ")")
            args = _args(text[match.end():end])
            index = 1 if "Var" in method else 0
            if len(args) <= index:
                continue
            raw = args[index]
            name = raw.strip('"') if re.fullmatch(r'"[a-z0-9-]+"', raw) else consts.get(raw)
            if not name:
                continue
            entry = {"kind": "bool" if method.startswith("Bool") else "value"}
            if method.endswith("P") and len(args) > index + 1 and re.fullmatch(r'"[A-Za-z]"', args[index + 1]):
                entry["short"] = args[index + 1].strip('"')
            named = _NAMED.match(args[0]) if method in ("Var", "VarP") else None
            if not named and method in ("Var", "VarP") and re.fullmatch(r"\w+", args[0]):
                # a variable holding the option, assigned earlier in the same file
                assigned = re.search(rf"\b{args[0]}\s*:?=\s*(\w*opts\.NewNamed\w+\(\s*\"[a-z0-9-]+\")", text)
                named = _NAMED.match(assigned.group(1)) if assigned else None
            if named and named.group(1) != name:
                entry["json"] = named.group(1)
            out[name] = entry
    return dict(sorted(out.items()))


def config_keys(src: GitSources, tag: str) -> dict[str, list[str]]:
    """The daemon.json key sets of daemon/config/config.go: flat (a nested object kept as it is),
    skip_validate (accepted without a flag), skip_duplicates (may be given as flag and in the file)."""
    text = src.show(REPO, tag, CONFIG_FILE)
    names = {"flatOptions": "flat", "skipValidateOptions": "skip_validate", "skipDuplicates": "skip_duplicates"}
    out: dict[str, list[str]] = {}
    for match in _KEYSET.finditer(text):
        out[names[match.group(1)]] = sorted(re.findall(r'"([a-z0-9-]+)"\s*:\s*true', match.group(2)))
    return out


def daemon_json_keys(facts: dict) -> list[str]:
    """Top-level daemon.json keys dockerd accepts: flag names, named-option keys, skip_validate keys."""
    keys = set(facts["flags"]) | {f["json"] for f in facts["flags"].values() if "json" in f}
    keys |= set(facts["daemon_json"]["skip_validate"]) | set(facts["rules"].get("nested_groups", []))
    return sorted(keys)


# Flags the chart sets itself or that have a dedicated value; in agent.dind.extraArgs they are refused.
OWNED = {
    "host": "dockerd listens on tcp://127.0.0.1:2375 and its unix socket only",
    "tls": "the loopback listener runs without TLS", "tlsverify": "the loopback listener runs without TLS",
    "tlscacert": "the loopback listener runs without TLS", "tlscert": "the loopback listener runs without TLS",
    "tlskey": "the loopback listener runs without TLS",
    "storage-driver": "use agent.dind.storageDriver", "config-file": "the chart writes daemon.json",
    "cgroup-parent": "dind-start.sh nests dockerd's containers in the dind container",
    "mtu": "use agent.dind.mtu", "registry-mirror": "use agent.dind.registryMirrors or mirror.enabled",
    "insecure-registry": "use agent.dind.insecureRegistries", "data-root": "/var/lib/docker is the emptyDir",
    "exec-root": "the entrypoint manages /var/run", "pidfile": "the entrypoint manages /var/run",
    "ip6tables": "the chart disables ip6tables", "validate": "dockerd would exit", "version": "dockerd would exit",
    "rootless": "the image runs rootful dockerd",
    "http-proxy": "use agent.proxy.httpProxy", "https-proxy": "use agent.proxy.httpsProxy",
    "no-proxy": "use agent.proxy.noProxy",
}


def extra_args_schema(facts: dict) -> dict:
    """values.schema.json node for agent.dind.extraArgs: known dockerd flags only (booleans bare or
    =true/false, others with =value), none the chart owns, no 0.0.0.0, and the value rules dockerd checks.
    Each rule stands alone: the known-flags pattern lists owned flags too, so removing the owned-flags
    rule (or the 0.0.0.0 rule) lets such a flag through and the invalid-value cases fail."""
    allowed = dict(facts["flags"])
    bools = "|".join(sorted(n for n, f in allowed.items() if f["kind"] == "bool"))
    values = "|".join(sorted(n for n, f in allowed.items() if f["kind"] == "value"))
    rules = facts["rules"]
    levels = "|".join(rules["log_levels"])
    formats = "|".join(rules["log_formats"])
    return {
        "type": "array",
        "description": "Extra dockerd flags (--name or --name=value), known to dockerd "
                       f"{facts['version']}; flags the chart owns and 0.0.0.0 are refused",
        "items": {
            "type": "string",
            "pattern": f"^--(({bools})(=(true|false))?|({values})=.+)$",
            "not": {"anyOf": [
                {"pattern": f"^--({'|'.join(sorted(OWNED))})(=|$)"},
                {"pattern": "0\\.0\\.0\\.0"},
                {"pattern": f"^--({'|'.join(rules['non_negative'])})=-"},
            ]},
            "allOf": [
                {"if": {"pattern": "^--log-level="}, "then": {"pattern": f"^--log-level=({levels})$"}},
                {"if": {"pattern": "^--log-format="}, "then": {"pattern": f"^--log-format=({formats})$"}},
            ],
        },
    }


def daemon_config_schema(facts: dict) -> dict:
    """values.schema.json node for agent.dind.daemonConfig: keys dockerd knows (the chart's template
    refuses the ones it owns, with a message naming the value to use)."""
    return {
        "type": "object",
        "description": f"extra daemon.json keys, known to dockerd {facts['version']}",
        "additionalProperties": False,
        "properties": {key: {} for key in daemon_json_keys(facts)},
    }


def write_schema(facts: dict, schema_file: Path) -> None:
    import json

    schema = json.loads(schema_file.read_text())
    dind = schema["properties"]["agent"]["properties"]["dind"]["properties"]
    dind["extraArgs"] = extra_args_schema(facts)
    dind["daemonConfig"] = daemon_config_schema(facts)
    schema_file.write_text(json.dumps(schema, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=Path, action="append")
    parser.add_argument("--tag", help="moby tag, e.g. docker-v29.7.2: print its flags as YAML")
    parser.add_argument("--write-schema", action="store_true",
                        help="rewrite agent.dind.extraArgs in values.schema.json from the recorded facts")
    args = parser.parse_args(argv)
    if args.write_schema:
        from jdagent.paths import CHART_DIR, REPO_ROOT

        facts = yaml.safe_load((REPO_ROOT / "tests" / "unit" / "data" / "upstream" / "dockerd.yaml").read_text())
        write_schema(facts, CHART_DIR / "values.schema.json")
        return 0
    if not args.tag or not args.sources:
        parser.error("--tag and --sources are required unless --write-schema")
    src = GitSources(args.sources)
    yaml.safe_dump({"daemon_json": config_keys(src, args.tag), "flags": flags(src, args.tag)}, sys.stdout,
                   sort_keys=False, width=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
