"""Check that every name a compose file refers to is defined, which its JSON schema cannot see.

The compose-spec schema validates each value's shape but not cross-references: a service on an
undeclared network, a typo in a named volume, `depends_on` a service that does not exist, a
missing secret or config, a bad `extends`, or a Dockerfile path that moved are all only found
by `docker compose up`. This script finds them offline, in CI and in pre-commit.

Usage: python tools/check_compose_refs.py compose.yaml [more.yaml ...]
Exit code 0 when every reference resolves, 1 when any problem is found.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

# A volume source starting with one of these is a host path (bind mount), not a named volume.
BIND_PREFIXES = (".", "/", "~")
# Every service is attached to this network when it lists none; it never needs declaring.
DEFAULT_NETWORK = "default"


def _names(section: object) -> set[str]:
    """Return the names declared in a top-level section (a mapping, possibly empty or null)."""
    if isinstance(section, dict):
        return {str(name) for name in section}
    return set()


def _keys_or_items(value: object) -> Iterator[str]:
    """Yield the names of a field written either as a list of names or as a mapping."""
    if isinstance(value, dict):
        yield from (str(name) for name in value)
    elif isinstance(value, list):
        yield from (str(item) for item in value if isinstance(item, str | int))


def _sources(value: object) -> Iterator[str]:
    """Yield the source names of `secrets`/`configs` entries (`name` or `{source: name}`)."""
    if not isinstance(value, list):
        return
    for item in value:
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict) and isinstance(item.get("source"), str):
            yield item["source"]


def _is_unresolvable(text: str) -> bool:
    """Tell whether a value depends on interpolation, so it cannot be checked statically."""
    return "$" in text


def _named_volumes(value: object) -> Iterator[str]:
    """Yield the named volumes a service mounts, skipping bind mounts and anonymous volumes."""
    if not isinstance(value, list):
        return
    for item in value:
        if isinstance(item, str):
            source, sep, _target = item.partition(":")
            # "name:/path[:mode]" names a volume; a lone "/path" is an anonymous volume.
            if not sep or _is_unresolvable(source) or source.startswith(BIND_PREFIXES):
                continue
            # A Windows drive letter ("C:\\data:/data") is a bind mount as well.
            if len(source) == 1 and source.isalpha():
                continue
            yield source
        elif isinstance(item, dict) and item.get("type", "volume") == "volume":
            src = item.get("source")
            if isinstance(src, str) and src and not _is_unresolvable(src):
                yield src


def _service_refs(value: object) -> Iterator[str]:
    """Yield services named by `volumes_from` or `links` entries (`name[:mode|:alias]`)."""
    if not isinstance(value, list):
        return
    for item in value:
        if not isinstance(item, str) or _is_unresolvable(item):
            continue
        if item.startswith("container:"):
            continue  # a container outside this project, not a service
        name = item.removeprefix("service:")
        yield name.split(":", 1)[0]


def _is_remote_context(context: str) -> bool:
    """Tell whether a build context is a Git URL or remote archive rather than a directory."""
    return "://" in context or context.startswith(("git@", "github.com/"))


def _check_build(build: object, base_dir: pathlib.Path) -> Iterator[str]:
    """Yield problems with a service's build context or Dockerfile on disk."""
    if isinstance(build, str):
        context, dockerfile = build, "Dockerfile"
    elif isinstance(build, dict):
        if "dockerfile_inline" in build:
            return
        context = str(build.get("context", "."))
        dockerfile = str(build.get("dockerfile", "Dockerfile"))
    else:
        return
    if _is_remote_context(context) or _is_unresolvable(context + dockerfile):
        return
    context_dir = base_dir / context
    if not context_dir.is_dir():
        yield f"build context '{context}' is not a directory"
        return
    if not (context_dir / dockerfile).is_file():
        yield f"build dockerfile '{dockerfile}' not found in context '{context}'"


def _check_extends(extends: object, known: set[str], base_dir: pathlib.Path) -> Iterator[str]:
    """Yield problems with `extends`, following `extends.file` when one is given."""
    if isinstance(extends, str):
        extends = {"service": extends}
    if not isinstance(extends, dict):
        return
    target = extends.get("service")
    if not isinstance(target, str):
        yield "extends has no 'service'"
        return
    other = extends.get("file")
    if other is None:
        if target not in known:
            yield f"extends unknown service '{target}'"
        return
    if _is_unresolvable(str(other)):
        return
    other_path = base_dir / str(other)
    try:
        other_doc = yaml.safe_load(other_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        yield f"extends file '{other}' cannot be loaded: {exc}"
        return
    other_services = other_doc.get("services") if isinstance(other_doc, dict) else None
    if target not in _names(other_services):
        yield f"extends unknown service '{target}' in '{other}'"


def _references(spec: dict[object, object]) -> Iterator[tuple[str, str, str]]:
    """Yield (top-level section, name, problem if missing) for each name a service uses."""
    for network in _keys_or_items(spec.get("networks")):
        if network != DEFAULT_NETWORK:
            yield "networks", network, f"unknown network '{network}'"
    network_mode = spec.get("network_mode")
    if isinstance(network_mode, str) and network_mode.startswith("service:"):
        name = network_mode.removeprefix("service:")
        yield "services", name, f"network_mode names unknown service '{name}'"
    for volume in _named_volumes(spec.get("volumes")):
        yield "volumes", volume, f"unknown volume '{volume}'"
    for dependency in _keys_or_items(spec.get("depends_on")):
        yield "services", dependency, f"depends_on unknown service '{dependency}'"
    for field in ("volumes_from", "links"):
        for name in _service_refs(spec.get(field)):
            yield "services", name, f"{field} names unknown service '{name}'"
    for kind in ("secrets", "configs"):
        for source in _sources(spec.get(kind)):
            yield kind, source, f"unknown {kind.removesuffix('s')} '{source}'"


def _check_service(
    spec: dict[object, object], top: dict[str, set[str]], base_dir: pathlib.Path
) -> Iterator[str]:
    """Yield every unresolved reference inside one service definition."""
    for section, name, problem in _references(spec):
        if name not in top[section]:
            yield problem
    if "extends" in spec:
        yield from _check_extends(spec["extends"], top["services"], base_dir)
    if "build" in spec:
        yield from _check_build(spec["build"], base_dir)


def find_problems(doc: dict[str, object], base_dir: pathlib.Path) -> list[str]:
    """Return one message per unresolved reference in a loaded compose document."""
    services = doc.get("services") or {}
    if not isinstance(services, dict):
        return ["'services' is not a mapping"]
    top = {
        section: _names(doc.get(section))
        for section in ("networks", "volumes", "secrets", "configs", "services")
    }
    problems: list[str] = []
    for name, spec in services.items():
        if not isinstance(spec, dict):
            problems.append(f"service '{name}': definition is not a mapping")
            continue
        label = f"service '{name}'"
        problems.extend(f"{label}: {problem}" for problem in _check_service(spec, top, base_dir))
    return problems


def check_file(path: pathlib.Path) -> tuple[list[str], int]:
    """Load one compose file; return its problems (prefixed with the file name) and services."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        return [f"{path}: cannot load: {exc}"], 0
    if not isinstance(doc, dict):
        return [f"{path}: top level is not a mapping"], 0
    doc = {str(key): value for key, value in doc.items()}
    problems = [f"{path}: {problem}" for problem in find_problems(doc, path.parent)]
    return problems, len(_names(doc.get("services")))


def main(argv: Sequence[str] | None = None) -> int:
    """Check each compose file given on the command line; return the process exit code."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", nargs="+", type=pathlib.Path, help="compose files")
    args = parser.parse_args(argv)
    files: list[pathlib.Path] = args.files
    failed = False
    for path in files:
        problems, service_count = check_file(path)
        for problem in problems:
            print(problem)
        if problems:
            failed = True
        else:
            print(f"{path}: OK, all references of {service_count} services resolve")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
