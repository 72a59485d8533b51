"""Every link in the README and the docs leads somewhere: the file exists, the heading too.

The README's tour and the runbooks point at files and sections; a rename that forgets them
leaves a learner at a dead end. GitHub's heading anchors: lower case, punctuation dropped,
spaces as hyphens.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("bench/*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _anchors(markdown: Path) -> set[str]:
    text = FENCE.sub("", markdown.read_text())
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def _links(markdown: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", markdown.read_text()))


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_local_link_resolves(document: Path) -> None:
    broken = []
    for target in _links(document):
        if re.match(r"^[a-z]+:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve() if path else document
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading #{anchor}")
    assert not broken, broken


def test_the_documents_have_links_to_check() -> None:
    assert len(DOCUMENTS) > 5
    assert len(_links(ROOT / "README.md")) > 50


# A repository path written as code (`app/ledger/`, `tests/*/auth/`) outside a link: what the
# documents say lives where. ADRs are records of their day and may name what has moved since.
CODE_PATH = re.compile(r"`((?:app|tests|bench|tools|docker|deploy|migrations)/[\w./*<>-]*)`")
LIVING = [d for d in DOCUMENTS if "adr" not in d.parts]


def _code_paths(markdown: Path) -> list[str]:
    return CODE_PATH.findall(FENCE.sub("", markdown.read_text()))


@pytest.mark.parametrize("document", LIVING, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_named_in_the_text_exists(document: Path) -> None:
    missing = []
    for named in _code_paths(document):
        pattern = re.sub(r"<[^>]*>", "*", named.split("::")[0]).rstrip("/")
        if not any(ROOT.glob(pattern)):
            missing.append(named)
    assert not missing, missing


def test_the_documents_name_paths_to_check() -> None:
    assert len(_code_paths(ROOT / "docs" / "requirements.md")) > 10
