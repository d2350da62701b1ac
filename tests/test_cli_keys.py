"""`flwr-stellar keys`: public data on stdout, secrets only on explicit export."""

import json
from pathlib import Path

import pytest

from flwr_stellar.cli import main


@pytest.fixture(autouse=True)
def passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLWR_STELLAR_PASSPHRASE", "cli-pass")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_lifecycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "node.json")
    code, out, _ = run(capsys, "keys", "new", store, "--scrypt-n", "1024")
    public = json.loads(out)["public_key"]
    assert code == 0 and public.startswith("G")
    assert "cli-pass" not in Path(store).read_text()

    code, out, _ = run(capsys, "keys", "show", store)
    assert json.loads(out)["public_key"] == public and json.loads(out)["kdf"]["n"] == 1024

    _, out, _ = run(capsys, "keys", "derive", store, "--run-id", "3")
    p3 = json.loads(out)["pseudonym"]
    _, out, _ = run(capsys, "keys", "derive", store, "--run-id", "4")
    assert json.loads(out)["pseudonym"] not in (p3, public)

    code, out, err = run(capsys, "keys", "export-mnemonic", store)
    assert code == 1 and out == "" and "--yes" in err
    code, out, err = run(capsys, "keys", "export-mnemonic", store, "--yes")
    words = out.split()
    assert code == 0 and len(words) == 24 and "WARNING" in err

    mnemonic = tmp_path / "words.txt"
    mnemonic.write_text(" ".join(words))
    again = str(tmp_path / "again.json")
    code, out, _ = run(
        capsys,
        "keys",
        "import-mnemonic",
        again,
        "--mnemonic-file",
        str(mnemonic),
        "--scrypt-n",
        "1024",
    )
    assert code == 0 and json.loads(out)["public_key"] == public

    challenge = "ab" * 16
    _, out, _ = run(capsys, "keys", "prove", store, "--run-id", "3", "--challenge", challenge)
    proof = tmp_path / "proof.json"
    proof.write_text(out)
    code, out, _ = run(
        capsys, "keys", "verify-proof", str(proof), "--pseudonym", p3, "--challenge", challenge
    )
    assert code == 0 and json.loads(out)["valid"] is True
    # the proof is signed by the owner key, never by the master key (SEP-5 account 0 of the
    # mnemonic: the default account of a wallet the words are restored into)
    _, out, _ = run(capsys, "keys", "owner", store)
    owner = json.loads(out)["owner"]
    assert owner != public and public not in proof.read_text()
    verify = ("keys", "verify-proof", str(proof), "--pseudonym", p3, "--challenge", challenge)
    code, _, _ = run(capsys, *verify, "--owner", owner)
    assert code == 0
    code, _, err = run(capsys, *verify, "--owner", public)
    assert code == 2 and "different owner" in err
    code, _, err = run(
        capsys, "keys", "verify-proof", str(proof), "--pseudonym", p3, "--challenge", "cd" * 16
    )
    assert code == 2 and "different challenge" in err


def test_keys_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = str(tmp_path / "node.json")
    run(capsys, "keys", "new", store, "--scrypt-n", "1024", "--no-mnemonic")
    code, _, err = run(capsys, "keys", "new", store, "--scrypt-n", "1024")
    assert code == 2 and "refusing to overwrite" in err
    monkeypatch.setenv("FLWR_STELLAR_PASSPHRASE", "nope")
    code, _, err = run(capsys, "keys", "derive", store, "--run-id", "1")
    assert code == 2 and err.strip() == "flwr-stellar: wrong passphrase for this keystore"
    code, _, err = run(capsys, "keys", "show", str(tmp_path / "missing.json"))
    assert code == 2 and "not found" in err
