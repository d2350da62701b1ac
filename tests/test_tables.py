"""The README's measured tables are what benchmarks/results/*.json say (generated, not typed)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_tables_match_the_results_files() -> None:
    spec = importlib.util.spec_from_file_location("tables", ROOT / "benchmarks" / "tables.py")
    assert spec is not None and spec.loader is not None
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    text = (ROOT / "README.md").read_text()
    for name in tables.TABLES:
        assert f"<!-- table:{name} -->" in text, f"README.md lacks the {name} table"
    assert tables.render(text) == text, "run: python benchmarks/tables.py --write"
    for page, marked in tables.PAGES.items():
        text = page.read_text()
        for name in marked:
            assert f"<!-- table:{name} -->" in text, f"{page} lacks the {name} table"
        assert tables.render(text, marked) == text, "run: python benchmarks/tables.py --write"
