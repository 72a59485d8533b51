"""The compose reference checker finds every dangling name, and passes the real compose.yaml."""

from __future__ import annotations

from pathlib import Path

import yaml

from tools.check_compose_refs import find_problems, main

ROOT = Path(__file__).resolve().parents[3]


def test_the_projects_compose_file_resolves() -> None:
    doc = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert find_problems(doc, ROOT) == []
    assert main([str(ROOT / "compose.yaml")]) == 0


def test_dangling_references_are_reported(tmp_path: Path) -> None:
    doc: dict[str, object] = {
        "services": {
            "api": {
                "image": "x",
                "networks": ["public", "ghost-net"],
                "volumes": ["data:/data", "missing-vol:/other", "./local:/local"],
                "depends_on": {"db": {"condition": "service_healthy"}, "nobody": {}},
                "secrets": ["api_key", {"source": "absent_secret"}],
                "build": {"context": ".", "dockerfile": "Nope.Dockerfile"},
            },
            "db": {"image": "postgres", "networks": {"public": {}}},
        },
        "networks": {"public": {}},
        "volumes": {"data": {}},
        "secrets": {"api_key": {"file": "./key"}},
    }
    problems = "\n".join(find_problems(doc, tmp_path))
    for name in ("ghost-net", "missing-vol", "nobody", "absent_secret", "Nope.Dockerfile"):
        assert name in problems
    for fine in ("'public'", "'data'", "'db'", "'api_key'", "./local"):
        assert fine not in problems


def test_main_fails_on_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  api:\n    image: x\n    depends_on: [ghost]\n", "utf-8")
    assert main([str(broken)]) == 1
