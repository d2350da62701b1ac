"""The HTML run report: written by the reference app at the end of a run, self-contained, and
rendered by headless Chromium with every figure, no console message and no network request."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from flwr_stellar.app.simulation import run_app_simulation
from flwr_stellar.report import write_sweep_report

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FIGURES = ("accuracy", "coins", "verdicts", "scores")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "run"
    run_app_simulation(
        {
            "num_rounds": 2,
            "dataset.max_train_examples": 100,
            "output_dir": str(out),
            "attack.kind": "nan",
            "attack.nodes": "2",
        },
        num_supernodes=4,
    )
    return out


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    assert binary, "Chromium is missing: `make browser` (apt-get install chromium)"
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def page_requests(netlog: Path) -> list[str]:
    """URLs requested on behalf of a page opened from a file (not Chromium's own traffic)."""
    events = json.loads(netlog.read_text())["events"]
    return sorted(
        {
            e["params"]["url"]
            for e in events
            if "url" in e.get("params", {})
            and "file://" in str(e["params"].get("site_for_cookies"))
        }
    )


def test_report_is_self_contained_and_complete(hostile_run: Path) -> None:
    page = (hostile_run / "report.html").read_text()
    for name in FIGURES:
        assert (hostile_run / f"report-{name}.png").stat().st_size > 5_000
    assert page.count('src="data:image/png;base64,') == len(FIGURES)
    # nothing that would load from elsewhere: no remote src/href, no CSS url(), no @import
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "url(" not in page and "@import" not in page
    metrics = json.loads((hostile_run / "metrics.json").read_text())
    for anchor in metrics["anchors"].values():
        assert anchor["manifest"] in page  # each round linked to its manifest...
        assert all(tx in page for tx in anchor["transactions"])  # ...and its transactions
    assert "<span class='pass'>PASS</span>" in page  # the audit verdict
    assert "attacker" in page and "honest" in page  # roles from the app
    assert "attack.kind" in page  # the run config


def test_report_renders_in_headless_chromium(hostile_run: Path, tmp_path: Path) -> None:
    url = (hostile_run / "report.html").as_uri()
    netlog = tmp_path / "net.json"
    dom = chromium(
        "--enable-logging=stderr",
        "--v=0",
        f"--log-net-log={netlog}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        url,
        tmp=tmp_path,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert f'data-figures-rendered="{len(FIGURES)}/{len(FIGURES)}"' in dom.stdout
    assert "CONSOLE" not in dom.stderr, [ln for ln in dom.stderr.splitlines() if "CONSOLE" in ln]
    # the page requests nothing: no network request from a file:// site in Chromium's net log
    assert page_requests(netlog) == []
    control = tmp_path / "control.html"  # the same probe sees a page that does request
    control.write_text('<html><body><img src="http://127.0.0.1:9/x.png"></body></html>')
    control_log = tmp_path / "control-net.json"
    chromium(f"--log-net-log={control_log}", "--dump-dom", control.as_uri(), tmp=tmp_path)
    assert page_requests(control_log) == ["http://127.0.0.1:9/x.png"]
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-screenshot.png"
    shot.unlink(missing_ok=True)
    taken = chromium(
        f"--screenshot={shot}", "--window-size=1200,3200", "--hide-scrollbars", url, tmp=tmp_path
    )
    assert taken.returncode == 0 and shot.stat().st_size > 50_000, taken.stderr[-2000:]


def test_sweep_report_splits_coins_between_honest_and_attackers(
    hostile_run: Path, tmp_path: Path
) -> None:
    for i in (0, 1):
        shutil.copytree(hostile_run, tmp_path / "sweep" / f"{i}_seed={i}")
    page = write_sweep_report(tmp_path / "sweep").read_text()
    metrics = json.loads((hostile_run / "metrics.json").read_text())
    attackers = [p for p, role in metrics["roles"].items() if role == "attacker"]
    assert len(attackers) == 1
    assert "0_seed=0" in page and "1_seed=1" in page
    assert "<td>200</td><td>0</td>" in page  # 2 rounds x 100 DLC honest, 0 to the attacker
