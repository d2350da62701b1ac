"""The manual's measured tables are what benchmarks/results/ say (generated, not typed)."""

import importlib.util
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- table:([\w-]+) -->$", re.MULTILINE)  # a marker is a line of its own


def load_tables() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tables", ROOT / "benchmarks" / "tables.py")
    assert spec is not None and spec.loader is not None
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    return tables


def test_every_page_holds_its_tables_as_the_results_files_say() -> None:
    tables = load_tables()
    assert set(tables.PAGES[ROOT / "docs" / "results.md"]) == set(tables.TABLES)
    for page, names in tables.PAGES.items():
        text = page.read_text()
        for name in names:
            assert f"<!-- table:{name} -->" in text, f"{page} lacks the {name} table"
            assert f"<!-- /table:{name} -->" in text, f"{page} lacks the end of the {name} table"
        stray = set(MARKER.findall(text)) - set(names)
        assert not stray, f"{page}: markers not in PAGES (never regenerated): {sorted(stray)}"
        assert tables.render(text, names) == text, "run: python benchmarks/tables.py --write"


def test_no_other_page_has_a_table_marker() -> None:
    tables = load_tables()
    pages = set(tables.PAGES)
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        if page not in pages:
            assert not MARKER.search(page.read_text()), f"{page}: add it to PAGES in tables.py"


def test_every_results_file_has_a_generated_table() -> None:
    tables = load_tables()
    assert set(tables.SOURCES) == set(tables.TABLES)
    read = {name for names in tables.SOURCES.values() for name in names}
    results = {p.name for p in (ROOT / "benchmarks" / "results").iterdir() if p.is_file()}
    assert not results - read, f"results without a table in benchmarks/tables.py: {results - read}"
    for name, sources in tables.SOURCES.items():
        if not set(sources) <= results:  # not measured yet: the table says so, naming the bench
            assert "no results yet" in tables.TABLES[name](), name


def test_a_table_is_regenerated_between_its_markers() -> None:
    tables = load_tables()
    stale = (
        "before\n<!-- table:deployment -->\n| typed by hand |\n<!-- /table:deployment -->\nafter\n"
    )
    fresh = tables.render(stale, ("deployment",))
    assert "typed by hand" not in fresh and fresh.startswith("before\n")
    assert fresh.endswith("<!-- /table:deployment -->\nafter\n")
    assert tables.TABLES["deployment"]() in fresh


def test_the_privacy_table_reads_the_rows_bench_privacy_writes() -> None:
    """benchmarks/bench_privacy.py has not been run here yet: its row shape, formatted."""
    tables = load_tables()
    row = {
        "setting": "central-client-clipping-z0.1",
        "epsilon": 1234.5678,
        "delta": 1e-05,
        "final_accuracy": 0.8123,
        "dlc_honest": 1000.0,
        "dlc_attacker": 0.0,
        "attacker_updates": 20,
        "attacker_updates_caught": 19,
        "attacker_caught_by_reason": {"non-finite": 10, "norm-outlier": 9},
        "honest_updates_rejected": 1,
        "audit_passed": True,
    }
    no_dp = {**row, "setting": "no-dp", "epsilon": None, "delta": None, "audit_passed": False}
    tables._doc = lambda name: {"rows": [row, no_dp]} if name == "privacy.json" else None
    table = tables.privacy().splitlines()
    assert table[2] == (
        "| `central-client-clipping-z0.1` | 1.23e+03 (δ 1e-05) | 0.812 | 1000.00 / 0.00 "
        "| 19 of 20 (non-finite 10, norm-outlier 9) | 1 | pass |"
    )
    assert table[3].startswith("| `no-dp` | - |") and table[3].endswith("| FAIL |")
