"""A custom import-linter contract: domain modules reach each other only through public files.

CONVENTIONS: "Modules talk to each other through service.py and schemas.py only". The built-in
contract types cannot say "another module's internals, but your own are fine", so this one does.
"""

from __future__ import annotations

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


class ModulePrivacyContract(Contract):
    """Forbid `app.a.*` importing `app.b.<x>` unless `x` is one of `public_submodules`."""

    domain_modules = fields.ListField(subfield=fields.StringField())
    public_submodules = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        """Collect every import from one domain module into another's private part."""
        modules: list[str] = list(self.domain_modules)  # type: ignore[call-overload]
        public: set[str] = set(self.public_submodules)  # type: ignore[call-overload]
        violations: list[str] = []
        for importer_root in modules:
            importers = {importer_root} | graph.find_descendants(importer_root)
            for importer in sorted(importers):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    owner = next(
                        (m for m in modules if imported == m or imported.startswith(m + ".")),
                        None,
                    )
                    if owner is None or owner == importer_root or imported == owner:
                        continue
                    submodule = imported[len(owner) + 1 :].split(".")[0]
                    if submodule not in public:
                        violations.append(f"{importer} imports {imported}")
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        """List each offending import."""
        for violation in check.metadata["violations"]:
            output.print_error(violation, bold=False)
            output.new_line()
