"""The manual (README.md, docs/) says what the repository holds, and builds without a warning.

Checked without building: every path the layout names exists and every package is named;
every relative link resolves to a file of the repository; every page is in the nav; the
tables that describe code (settings, checks, scorers, audit checks, run-config keys) name
everything the code has; every ``flwr-stellar`` command shown parses with the real command
line; the README stays short. The slow test builds the site with ``mkdocs build --strict``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "ext" not in p.relative_to(DOCS).parts)
MANUAL = [README, *PAGES]
README_MAX_LINES = 250

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.DOTALL | re.MULTILINE)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def prose(text: str) -> str:
    """``text`` without fenced code blocks and code spans (links there are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links(text: str) -> list[str]:
    body = prose(text)
    return LINK.findall(body) + REF_DEF.findall(body)


def is_relative(target: str) -> bool:
    return not (re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "//")))


# ------------------------------------------------------------------- the README


def test_the_readme_is_short() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    assert len(lines) > 20, "README.md is nearly empty"


def test_the_readme_sends_readers_to_the_manual() -> None:
    targets = {t.split("#")[0] for t in links(README.read_text())}
    assert "docs/index.md" in targets
    assert "docs/plugin.md" in targets
    assert "make docs" in README.read_text()


# ------------------------------------------------------------------- links


@pytest.mark.parametrize("page", MANUAL, ids=rel)
def test_every_relative_link_resolves_to_a_file_of_the_repository(page: Path) -> None:
    text = page.read_text()
    assert "/work/" not in text and "../shared" not in text, f"{rel(page)} points outside"
    bad = []
    for target in links(text):
        if not is_relative(target):
            continue
        path = target.split("#")[0]
        if not path:
            continue
        resolved = (page.parent / path).resolve()
        if not resolved.is_relative_to(ROOT):
            bad.append(f"{target} (outside the repository)")
        elif not resolved.exists():
            bad.append(f"{target} (no such file)")
        elif page.is_relative_to(DOCS) and not resolved.is_relative_to(DOCS):
            bad.append(f"{target} (a page of the manual may link only within docs/)")
    assert not bad, f"{rel(page)}: " + "; ".join(bad)


def test_the_link_checker_sees_broken_links() -> None:
    text = (
        "[a](docs/index.md) `[b](nope.md)` [c](https://flower.ai) [d](#x)\n```\n[e](no.md)\n```\n"
    )
    assert links(text) == ["docs/index.md", "https://flower.ai", "#x"]
    assert [t for t in links(text) if is_relative(t)] == ["docs/index.md"]


# ------------------------------------------------------------------- the nav


def nav_pages(nav: object) -> Iterator[str]:
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, list):
        for item in nav:
            yield from nav_pages(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from nav_pages(value)


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["docs_dir"] == "docs"
    assert config["theme"]["font"] is False, "web fonts are fetched from Google"
    listed = list(nav_pages(config["nav"]))
    assert len(listed) == len(set(listed)), "a page is in the nav twice"
    pages = {str(p.relative_to(DOCS)) for p in PAGES}
    assert pages - set(listed) == set(), "pages missing from the nav"
    assert set(listed) - pages == set(), "nav entries without a page"


# ------------------------------------------------------------------- the layout

LAYOUT = re.compile(r"<!-- layout -->\n```text\n(.*?)```\n<!-- /layout -->", re.DOTALL)
NAME_COLUMN = 24  # a line indented this far continues the description above it


def layout_paths(block: str) -> list[str]:
    """The paths a layout block names: ``name/`` opens a folder for the lines indented
    two spaces more below it."""
    paths: list[str] = []
    stack: list[str] = []
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        if not line.strip() or indent >= NAME_COLUMN:
            continue
        assert indent % 2 == 0, f"layout line indented by {indent}: {line!r}"
        depth = indent // 2
        assert depth <= len(stack), f"layout line deeper than its folder: {line!r}"
        name = line.split()[0]
        path = "/".join([*stack[:depth], name.rstrip("/")])
        paths.append(path)
        stack = [*stack[:depth], name.rstrip("/")] if name.endswith("/") else stack[:depth]
    return paths


def test_the_layout_parser_nests_folders() -> None:
    block = "a/                        x\n  b.py                    y\n  c/\n    d.py\ne.toml\n"
    assert layout_paths(block) == ["a", "a/b.py", "a/c", "a/c/d.py", "e.toml"]


def test_every_path_in_the_layout_exists() -> None:
    found = LAYOUT.search((DOCS / "architecture.md").read_text())
    assert found, "docs/architecture.md lacks its <!-- layout --> block"
    paths = layout_paths(found.group(1))
    assert len(paths) > 100, "the layout names too little to be checked"
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"the layout names paths that do not exist: {missing}"
    packages = sorted(
        rel(init.parent)
        for top in ("flwr_stellar", "strategies")
        for init in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    )
    unnamed = [p for p in packages if p not in paths]
    assert not unnamed, f"packages the layout does not name: {unnamed}"


# ------------------------------------------------------------------- tables that describe code


def test_the_api_reference_names_every_export() -> None:
    import ast

    tree = ast.parse((ROOT / "flwr_stellar" / "__init__.py").read_text())
    exported = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
    )
    assert len(exported) > 10
    index = (DOCS / "reference" / "index.md").read_text()
    missing = [name for name in exported if f"`{name}`" not in index]
    assert not missing, f"docs/reference/index.md does not name {missing}"


def section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of any level."""
    start = text.index(heading + "\n")
    rest = text[start + len(heading) + 1 :]
    following = re.search(r"^#{1,6} ", rest, re.MULTILINE)
    return rest[: following.start()] if following else rest


def settings_classes() -> list[type]:
    from flwr_stellar import IntakeSettings, LedgerConfig, LedgerSettings, RewardSettings
    from strategies.bounding import NormBound
    from strategies.reputation import Reputation
    from strategies.screening import Screening

    return [
        LedgerConfig,
        LedgerSettings,
        RewardSettings,
        Screening,
        NormBound,
        Reputation,
        IntakeSettings,
    ]


def test_the_settings_tables_name_every_field() -> None:
    text = (DOCS / "plugin.md").read_text()
    for cls in settings_classes():
        table = section(text, f"### `{cls.__name__}`")
        missing = [f.name for f in dataclasses.fields(cls) if f"`{f.name}`" not in table]
        assert not missing, f"docs/plugin.md, {cls.__name__}: no row for {missing}"


def test_the_screening_table_lists_every_check_in_order_with_its_reason() -> None:
    from strategies.screening import CHECKS

    rows = [r for r in section((DOCS / "rewards.md").read_text(), "## Screen").splitlines()]
    rows = [r for r in rows if r.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == [c.name for c in CHECKS]
    for row, cls in zip(rows, CHECKS, strict=True):
        assert f"`{cls.reason}`" in row, f"{cls.name}: reason {cls.reason} not in its row"
        for field in dataclasses.fields(cls):
            if isinstance(field.default, bool | int | float):
                assert f"`{field.name}`" in row, f"{cls.name}.{field.name} not in its row"


def test_the_scorer_table_lists_every_scorer() -> None:
    from strategies.scoring import SCORERS

    table = section((DOCS / "rewards.md").read_text(), "## Score")
    named = [r.split("`")[1] for r in table.splitlines() if r.startswith("| `")]
    assert sorted(named) == sorted(SCORERS)


def test_the_audit_table_lists_every_check() -> None:
    from flwr_stellar.audit.run_audit import CHECKS

    table = section((DOCS / "audit.md").read_text(), "## Audit")
    named = [r.split("`")[1] for r in table.splitlines() if r.startswith("| `")]
    assert named == [*CHECKS, "ledger-chain"]


def schema_keys() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]

    def leaves(table: dict[str, object], prefix: str) -> Iterator[str]:
        for key, value in table.items():
            if isinstance(value, dict):
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    return list(leaves(config, ""))


def test_the_configuration_page_names_every_run_config_key() -> None:
    text = (DOCS / "configuration.md").read_text()
    keys = schema_keys()
    assert len(keys) > 50
    missing = [k for k in keys if f"`{k}`" not in text]
    assert not missing, f"docs/configuration.md does not name {missing}"


# ------------------------------------------------------------------- commands shown


def shell_commands(text: str) -> Iterator[list[str]]:
    """Each simple command of the bash blocks in ``text``, as tokens (continuations joined,
    comments dropped, split at pipes, ``&&``, ``;``, ``&`` and redirections)."""
    for block in re.findall(r"^```(?:bash|sh|console)\n(.*?)^```", text, re.DOTALL | re.MULTILINE):
        for line in block.replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            lexer.commenters = "#"
            try:
                tokens = list(lexer)
            except ValueError as err:
                raise AssertionError(f"cannot parse {line!r}: {err}") from None
            command: list[str] = []
            for token in [*tokens, ";"]:
                if token and set(token) <= set("|&;<>()"):
                    if command:
                        yield command
                    command = []
                else:
                    command.append(token)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def check_cli(tokens: list[str], parser: argparse.ArgumentParser) -> str | None:
    """Why ``tokens`` (the words after ``flwr-stellar``) is not a command of ``parser``."""
    path = ["flwr-stellar"]
    rest = list(tokens)
    while (choices := subcommands(parser)) and rest:
        word = rest.pop(0)
        if word not in choices:
            return f"{' '.join(path)}: no subcommand {word!r} (has {sorted(choices)})"
        parser = choices[word]
        path.append(word)
    if subcommands(parser):
        return f"{' '.join(path)}: a subcommand is missing"
    options = {s for action in parser._actions for s in action.option_strings}
    unknown = [
        t.split("=")[0] for t in rest if t.startswith("-") and t.split("=")[0] not in options
    ]
    return f"{' '.join(path)}: unknown options {unknown}" if unknown else None


def hydra_override_problem(tokens: list[str], keys: set[str]) -> str | None:
    groups = {p.name for p in (ROOT / "conf").iterdir() if p.is_dir()}
    for token in tokens:
        if token.startswith("-") or "=" not in token:
            continue
        key = token.split("=")[0].lstrip("+~")
        if key not in groups and key not in keys and not key.startswith(("hydra.", "federation.")):
            return f"{token!r}: no run-config key or config group {key!r}"
    return None


def test_every_command_shown_is_a_real_command() -> None:
    from flwr_stellar.cli import build_parser

    parser = build_parser()
    keys = set(schema_keys())
    checked, problems = 0, []
    for page in MANUAL:
        for command in shell_commands(page.read_text()):
            words = [w for w in command if not re.match(r"^[A-Z_][A-Z0-9_]*=", w)]
            if not words:
                continue
            if words[0].endswith("flwr-stellar"):
                why = check_cli(words[1:], parser)
            elif "flwr_stellar.app.experiment" in words:
                why = hydra_override_problem(
                    words[words.index("flwr_stellar.app.experiment") :], keys
                )
            else:
                continue
            checked += 1
            if why:
                problems.append(f"{rel(page)}: {' '.join(command)}\n    {why}")
    assert checked > 40, f"only {checked} commands found to check"
    assert not problems, "\n".join(problems)


def test_the_command_checker_refuses_wrong_commands() -> None:
    from flwr_stellar.cli import build_parser

    parser = build_parser()
    assert check_cli(["ledger", "serve", "--db", "x.db", "--port", "8000"], parser) is None
    assert "no subcommand" in (check_cli(["ledger", "serv"], parser) or "")
    assert "unknown options" in (check_cli(["audit", "RUN", "--ledgr", "u"], parser) or "")
    assert "missing" in (check_cli(["keys"], parser) or "")
    text = "```bash\nA=1 flwr-stellar keys new k.json > out && echo done  # c\n```\n"
    assert list(shell_commands(text)) == [
        ["A=1", "flwr-stellar", "keys", "new", "k.json"],
        ["out"],
        ["echo", "done"],
    ]
    assert hydra_override_problem(["attack=mix", "num_rounds=3"], set(schema_keys())) is None
    assert hydra_override_problem(["reward.scorr=flat"], set(schema_keys()))


# ------------------------------------------------------------------- the build


@pytest.mark.slow
def test_the_site_builds_without_a_warning(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARNING" not in output, output
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "reference" / "plugin.html").is_file()
