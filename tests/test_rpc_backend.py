"""RpcLedger (the ``rpc`` backend) against a real `ledger serve` /rpc: the same answers as
HorizonLedger on the same server (accounts, submission codes, lookups, history pages), exactly
once through resubmissions and outages, hostile and broken servers, and an audit that tells an
anchor outside the RPC's retention window from a missing one."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from anchor_world import manifest, pseudonyms, setup, treasury
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Asset, Keypair, Network, TransactionBuilder, TrustLineEntryFlag, xdr

from flwr_stellar.audit.cli import run_audit_for
from flwr_stellar.audit.rpc_window import anchor_outside_window
from flwr_stellar.ledger import rpc
from flwr_stellar.ledger.base import (
    Ledger,
    LedgerCongestedError,
    LedgerError,
    LedgerUnavailableError,
    NotFoundError,
    SubmitResult,
)
from flwr_stellar.ledger.decode import iter_transactions
from flwr_stellar.ledger.embedded import DEFAULT_PASSPHRASE, EmbeddedLedger
from flwr_stellar.ledger.horizon import HorizonLedger
from flwr_stellar.ledger.result_codes import decode_result
from flwr_stellar.ledger.result_xdr import _RESULTS, build_result_xdr
from flwr_stellar.ledger.rpc import HistoryWindow, RpcLedger
from flwr_stellar.ledger.settings import LedgerSettings, open_existing
from flwr_stellar.payments import anchoring
from flwr_stellar.payments.anchoring import Anchorer
from flwr_stellar.payments.manifest import ManifestStore, RoundManifest
from flwr_stellar.payments.outbox import Outbox
from flwr_stellar.ports import free_port, wait_for_http

P = DEFAULT_PASSPHRASE
XLM = Asset.native()


# ---------------------------------------------------------------------------- servers
@contextlib.contextmanager
def ledger_serve(db: Path, port: int | None = None, *extra: str) -> Iterator[str]:
    """`flwr-stellar ledger serve` on ``port`` (a free one by default): its base URL. Unlike
    ``serving`` it takes the port, so a test can stop the server and start it again there."""
    port = port or free_port()
    log = (db.parent / f"serve-{db.stem}-{port}.log").open("a")
    serve = [sys.executable, "-m", "flwr_stellar.cli", "ledger", "serve", "--db", str(db)]
    proc = subprocess.Popen(
        [*serve, "--port", str(port), *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url, 30, lambda: proc.poll() is None)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with ledger_serve(tmp_path_factory.mktemp("rpc") / "served.db") as url:
        yield url


@pytest.fixture
def both(served: str) -> Iterator[tuple[RpcLedger, HorizonLedger]]:
    r, h = RpcLedger(served + "/rpc", P), HorizonLedger(served, P)
    yield r, h
    r.close()
    h.close()


def dead_url() -> str:
    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/rpc"


def envelope(
    source: Keypair,
    seq: int,
    *ops: Callable[[TransactionBuilder], Any],
    fee: int = 100,
    signers: tuple[Keypair, ...] | None = None,
    memo_hash: bytes | None = None,
) -> str:
    builder = TransactionBuilder(SdkAccount(source.public_key, seq), P, base_fee=fee)
    for op in ops:
        op(builder)
    if memo_hash is not None:
        builder.add_hash_memo(memo_hash)
    tx = builder.set_timeout(300).build()
    for kp in (source,) if signers is None else signers:
        tx.sign(kp)
    return tx.to_xdr()


def pay(dest: Keypair, amount: str, asset: Asset = XLM) -> Callable[[TransactionBuilder], Any]:
    return lambda b: b.append_payment_op(dest.public_key, asset, amount)


def funded(ledger: Ledger) -> Keypair:
    kp = Keypair.random()
    assert ledger.fund(kp.public_key).successful
    return kp


def codes(r: SubmitResult) -> tuple[Any, ...]:
    return (r.hash, r.successful, r.applied, r.tx_code, r.op_codes, r.inner_tx_code)


# ---------------------------------------------------------------------------- result codes
def test_result_codes_read_back_exactly_what_the_encoder_wrote() -> None:
    """Every operation result code the embedded ledger can write, and the transaction codes,
    decode to the same Horizon strings: the RPC client's failure codes are HorizonLedger's."""
    kp, other = Keypair.random(), Keypair.random()
    d_other, d_mine = Asset("D", other.public_key), Asset("D", kp.public_key)
    ops = xdr.OperationType
    samples: dict[xdr.OperationType, Callable[[TransactionBuilder], Any]] = {
        ops.CREATE_ACCOUNT: lambda b: b.append_create_account_op(other.public_key, "1"),
        ops.PAYMENT: pay(other, "1"),
        ops.SET_OPTIONS: lambda b: b.append_set_options_op(home_domain="x"),
        ops.CHANGE_TRUST: lambda b: b.append_change_trust_op(d_other),
        ops.ALLOW_TRUST: lambda b: b.append_allow_trust_op(
            other.public_key, "D", TrustLineEntryFlag.AUTHORIZED_FLAG
        ),
        ops.MANAGE_DATA: lambda b: b.append_manage_data_op("k", b"v"),
        ops.BUMP_SEQUENCE: lambda b: b.append_bump_sequence_op(0),
        ops.CLAWBACK: lambda b: b.append_clawback_op(d_mine, other.public_key, "1"),
        ops.BEGIN_SPONSORING_FUTURE_RESERVES: lambda b: (
            b.append_begin_sponsoring_future_reserves_op(other.public_key)
        ),
        ops.END_SPONSORING_FUTURE_RESERVES: lambda b: b.append_end_sponsoring_future_reserves_op(),
        ops.SET_TRUST_LINE_FLAGS: lambda b: b.append_set_trust_line_flags_op(
            other.public_key, d_mine
        ),
        ops.CLAIM_CLAIMABLE_BALANCE: lambda b: b.append_claim_claimable_balance_op(
            "00000000" + "ab" * 32
        ),
    }
    checked = 0
    for op_type, (_, code_enum, prefix, _) in _RESULTS.items():
        if op_type not in samples:
            continue
        env = envelope(kp, 1, samples[op_type])
        for name in code_enum.__members__:
            horizon = {"op_already_exist": "op_already_exists"}.get(
                "op_" + name[len(prefix) :].lower(), "op_" + name[len(prefix) :].lower()
            )
            if name == "MANAGE_DATA_NAME_NOT_FOUND":
                horizon = "op_data_name_not_found"
            for tx_code in ("tx_success", "tx_failed"):
                ok = horizon == "op_success"
                if (tx_code == "tx_success") != ok:
                    continue
                got = decode_result(build_result_xdr(env, 100, tx_code, [horizon]))
                assert (got.tx_code, got.op_codes, got.fee_charged) == (tx_code, (horizon,), 100)
                checked += 1
    assert checked > 60
    for code in ("tx_bad_seq", "tx_bad_auth", "tx_too_late", "tx_insufficient_fee"):
        got = decode_result(build_result_xdr(envelope(kp, 1, pay(other, "1")), 0, code, []))
        assert (got.tx_code, got.op_codes, got.successful) == (code, (), False)
    got = decode_result(
        build_result_xdr(envelope(kp, 1, pay(other, "1")), 0, "tx_failed", ["op_bad_auth"])
    )
    assert got.op_codes == ("op_bad_auth",)  # fmt: skip
    for garbage in ("", "not base64!", "AAAA"):
        with pytest.raises(ValueError):
            decode_result(garbage)


# ---------------------------------------------------------------------------- hostile input
def test_bad_input_is_refused_before_anything_is_sent() -> None:
    """Malformed arguments are a LedgerError naming them, not an outage: the URL has nobody
    listening, so any request would have been LedgerUnavailableError."""
    ledger = RpcLedger(dead_url(), P, timeout=2)
    kp = Keypair.random()
    for call, match in (
        (lambda: ledger.load_account("GBAD"), "invalid account id"),
        (lambda: ledger.load_account(kp.secret), "invalid account id"),
        (lambda: ledger.transaction("zz" * 32), "invalid transaction hash"),
        (lambda: ledger.transaction("ab" * 31), "invalid transaction hash"),
        (lambda: ledger.submit("not an envelope"), "malformed transaction envelope"),
        (lambda: ledger.submit(""), "base64 TransactionEnvelope"),
        (lambda: ledger.account_transactions(kp.public_key, limit=0), "limit"),
        (lambda: ledger.account_transactions(kp.public_key, limit=10**9), "limit"),
        (lambda: ledger.account_transactions(kp.public_key, order="sideways"), "order"),
        (lambda: ledger.account_transactions(kp.public_key, cursor="١٢"), "cursor"),
        (lambda: ledger.account_payments(kp.public_key, cursor="-1"), "cursor"),
        (lambda: ledger.claimable_balances(), "by claimant or sponsor"),
        (lambda: ledger.claimable_balances(claimant="G" * 56), "invalid account id"),
        (lambda: ledger.claimable_balances(claimant=kp.public_key, cursor="x" * 72), "cursor"),
        (lambda: ledger.holders("DLC"), "CODE:ISSUER"),
        (lambda: ledger.fund("nobody"), "invalid account id"),
    ):
        with pytest.raises(LedgerError, match=match) as info:
            call()
        assert not isinstance(info.value, LedgerUnavailableError)
    with pytest.raises(LedgerError, match="http"):
        RpcLedger("ftp://127.0.0.1/rpc", P)
    with pytest.raises(LedgerError, match="pubnet"):
        RpcLedger(dead_url(), Network.PUBLIC_NETWORK_PASSPHRASE)
    with pytest.raises(LedgerError, match="CODE:ISSUER"):
        RpcLedger(dead_url(), P, assets=["DLC:nobody"])


def test_transport_failures_are_one_documented_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rpc, "HTTP_RETRIES", 0)  # the SDK's retries only make it slower
    url = dead_url()
    ledger = RpcLedger(url, P, timeout=2)
    kp = Keypair.random()
    for call in (
        lambda: ledger.load_account(kp.public_key),
        lambda: ledger.transaction("0" * 64),
        lambda: ledger.submit(envelope(kp, 1, pay(Keypair.random(), "1"))),
        lambda: ledger.account_transactions(kp.public_key),
        lambda: ledger.claimable_balances(claimant=kp.public_key),
        lambda: ledger.history_window(),
        lambda: ledger.fund(kp.public_key),
    ):
        with pytest.raises(LedgerUnavailableError, match=url.removesuffix("/rpc")):
            call()


class Scripted(http.server.BaseHTTPRequestHandler):
    """A server that answers every POST with ``answer(method, params)`` -> (status, body)."""

    answer: Callable[[str, dict[str, Any]], tuple[int, bytes]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        status, text = type(self).answer(body["method"], body.get("params") or {})
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def scripted(answer: Callable[[str, dict[str, Any]], tuple[int, bytes]]) -> Iterator[str]:
    handler = type("Handler", (Scripted,), {"answer": staticmethod(answer)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/rpc"
    finally:
        server.shutdown()
        server.server_close()


def rpc_result(result: Any) -> tuple[int, bytes]:
    return 200, json.dumps({"jsonrpc": "2.0", "id": 1, "result": result}).encode()


def rpc_error(code: int, message: str) -> tuple[int, bytes]:
    error = {"code": code, "message": message}
    return 200, json.dumps({"jsonrpc": "2.0", "id": 1, "error": error}).encode()


def test_a_broken_or_lying_server_is_an_outage_or_a_clear_error() -> None:
    """5xx, non-JSON, not JSON-RPC, garbage XDR, another account's entry: "outcome unknown"
    (the outbox settles by hash later). A method the server lacks, bad params, or a URL that
    is no RPC endpoint at all: a LedgerError that says so (retrying would not help)."""
    kp, stranger = Keypair.random(), Keypair.random()
    other_entry = xdr.LedgerEntryData(
        xdr.LedgerEntryType.ACCOUNT,
        account=xdr.AccountEntry(
            stranger.xdr_account_id(), xdr.Int64(10), xdr.SequenceNumber(xdr.Int64(1)),
            xdr.Uint32(0), None, xdr.Uint32(0), xdr.String32(b""),
            xdr.Thresholds(b"\x01\x00\x00\x00"), [], xdr.AccountEntryExt(0),
        ),
    ).to_xdr()  # fmt: skip
    outages: list[tuple[int, bytes]] = [
        (502, b"<html>bad gateway</html>"),
        (200, b"<html>not json</html>"),
        (200, b'{"hello": "world"}'),
        rpc_result(
            {
                "entries": [{"key": "AAAA", "xdr": "garbage!", "lastModifiedLedgerSeq": 1}],
                "latestLedger": 5,
            }
        ),
        rpc_result(
            {
                "entries": [{"key": "AAAA", "xdr": other_entry, "lastModifiedLedgerSeq": 1}],
                "latestLedger": 5,
            }
        ),
        rpc_error(-32603, "internal error"),
    ]
    for answer in outages:
        with (
            scripted(lambda method, params, a=answer: a) as url,
            pytest.raises(LedgerUnavailableError),
        ):
            RpcLedger(url, P, timeout=5).load_account(kp.public_key)
    for answer, match in (
        (rpc_error(-32601, "method not found"), "lacks the method"),
        (rpc_error(-32602, "invalid params"), "invalid params"),
        ((404, b'{"type": "not_found", "status": 404}'), "not a Stellar RPC endpoint"),
    ):
        with scripted(lambda method, params, a=answer: a) as url:
            with pytest.raises(LedgerError, match=match) as info:
                RpcLedger(url, P, timeout=5).load_account(kp.public_key)
            assert not isinstance(info.value, LedgerUnavailableError)


def test_a_server_for_another_network_is_refused_before_signing(served: str) -> None:
    kp = Keypair.random()
    wrong = RpcLedger(served + "/rpc", "some other network")
    with pytest.raises(LedgerError, match="serves the network"):
        wrong.submit(envelope(kp, 1, pay(Keypair.random(), "1")))
    with pytest.raises(LedgerError, match="serves the network"):
        wrong.fund(kp.public_key)
    asked = RpcLedger(served + "/rpc")  # no passphrase: the server's own (reading)
    assert asked.network_passphrase == P


# ---------------------------------------------------------------------------- ledger serve
def test_accounts_and_trustlines_equal_horizons(both: tuple[RpcLedger, HorizonLedger]) -> None:
    r, h = both
    issuer, holder = funded(r), funded(r)
    coin = Asset("RPCX", issuer.public_key)
    seq = r.load_account(holder.public_key).sequence
    result = r.submit(
        envelope(
            holder,
            seq,
            lambda b: b.append_change_trust_op(coin, "1000"),
            lambda b: b.append_set_options_op(signer=None, home_domain="example.org"),
        )
    )
    assert result.successful, result
    seq = r.load_account(issuer.public_key).sequence
    assert r.submit(envelope(issuer, seq, pay(holder, "12.5", coin))).successful
    for account in (holder, issuer):
        assert r.load_account(account.public_key) == h.load_account(account.public_key)
    info = r.load_account(holder.public_key)
    assert info.balance(f"RPCX:{issuer.public_key}") == 125_000_000
    assert info.home_domain == "example.org" and info.num_subentries == 1
    with pytest.raises(NotFoundError):
        r.load_account(Keypair.random().public_key)


def test_a_fresh_process_finds_an_accounts_trustlines_from_its_history(
    both: tuple[RpcLedger, HorizonLedger], monkeypatch: pytest.MonkeyPatch
) -> None:
    """RPC reads entries by key: a process that never saw the asset (a wallet, an audit)
    finds it from the account's own ChangeTrust in the window, once."""
    r, h = both
    issuer, holder = funded(r), funded(r)
    coin = Asset("FRESH", issuer.public_key)
    seq = r.load_account(holder.public_key).sequence
    assert r.submit(envelope(holder, seq, lambda b: b.append_change_trust_op(coin))).successful
    monkeypatch.setattr(rpc, "_KNOWN_ASSETS", rpc.collections.defaultdict(set))
    monkeypatch.setattr(rpc, "_TRUST_SCANS", {})
    fresh = RpcLedger(r.location, P)
    assert fresh.load_account(holder.public_key) == h.load_account(holder.public_key)
    assert (P, holder.public_key) in rpc._TRUST_SCANS  # scanned once, then cached


def test_submit_is_exactly_once_and_its_codes_are_horizons(
    both: tuple[RpcLedger, HorizonLedger],
) -> None:
    r, h = both
    a, b = funded(r), funded(r)
    seq = r.load_account(a.public_key).sequence
    first = envelope(a, seq, pay(b, "5"))
    paid = r.submit(first)
    assert paid.successful and paid.applied and paid.ledger and paid.tx_code == "tx_success"
    before = r.load_account(b.public_key).balance()
    again, via_horizon = r.submit(first), h.submit(first)  # resubmitted: the first outcome
    assert codes(again) == codes(paid) == codes(via_horizon) and again.ledger == paid.ledger
    assert r.load_account(b.public_key).balance() == before  # paid once
    seq += 1
    rejected = {  # never applied: each envelope to both, nothing changes
        "bad seq": envelope(a, seq + 5, pay(b, "1")),
        "bad auth": envelope(a, seq, pay(b, "1"), signers=(Keypair.random(),)),
        "low fee": envelope(a, seq, pay(b, "1"), fee=10),
        "no source": envelope(Keypair.random(), 1, pay(b, "1")),
    }
    for what, env in rejected.items():
        got, want = r.submit(env), h.submit(env)
        assert codes(got) == codes(want), what
        assert not got.applied and not got.successful, what
    assert rejected and r.load_account(a.public_key).sequence == seq
    coin = Asset("NOPE", b.public_key)
    applied = {  # applied and failed (fee and sequence taken): RPC first, then Horizon's answer
        "underfunded": envelope(a, seq, pay(b, "1000000")),
        "no trust": envelope(a, seq + 1, pay(b, "1", coin)),
    }
    for what, env in applied.items():
        got = r.submit(env)
        assert codes(got) == codes(h.submit(env)), what
        assert got.applied and not got.successful and got.fee_charged == 100, what
    assert codes(r.submit(applied["underfunded"]))[3:5] == ("tx_failed", ("op_underfunded",))
    horizon_first = envelope(a, seq + 2, pay(b, "1000000"), pay(b, "1"))  # and the other way
    want = h.submit(horizon_first)
    assert codes(r.submit(horizon_first)) == codes(want) == codes(h.submit(horizon_first))
    assert want.op_codes == ("op_underfunded", "op_success")


def test_fee_bumps_through_rpc(both: tuple[RpcLedger, HorizonLedger]) -> None:
    r, h = both
    a, b, payer = funded(r), funded(r), funded(r)
    seq = r.load_account(a.public_key).sequence
    inner = TransactionBuilder(SdkAccount(a.public_key, seq), P, 100)
    inner_tx = inner.append_payment_op(b.public_key, XLM, "2").set_timeout(300).build()
    inner_tx.sign(a)
    bump = TransactionBuilder.build_fee_bump_transaction(payer.public_key, 200, inner_tx, P)
    bump.sign(payer)
    got = r.submit(bump.to_xdr())
    assert got.successful and got.tx_code == "tx_fee_bump_inner_success", got
    assert codes(got) == codes(h.submit(bump.to_xdr()))
    record = r.transaction(bump.hash_hex())
    assert record == h.transaction(bump.hash_hex())
    assert record.fee_payer == payer.public_key and record.inner_hash == inner_tx.hash_hex()
    stale = TransactionBuilder.build_fee_bump_transaction(payer.public_key, 300, inner_tx, P)
    stale.sign(payer)  # the same inner transaction again: its sequence is consumed
    assert codes(r.submit(stale.to_xdr())) == codes(h.submit(stale.to_xdr()))


def test_lookups_and_history_pages_equal_horizons(both: tuple[RpcLedger, HorizonLedger]) -> None:
    r, h = both
    a, b = funded(r), funded(r)
    seq = r.load_account(a.public_key).sequence
    hashes = []
    for i in range(7):
        result = r.submit(envelope(a, seq + i, pay(b, str(i + 1)), memo_hash=bytes([i]) * 32))
        hashes.append(result.hash)
    failed = r.submit(envelope(a, seq + 7, pay(b, "100000000")))
    assert failed.applied and not failed.successful
    for tx_hash in (*hashes, failed.hash):
        assert r.transaction(tx_hash) == h.transaction(tx_hash)
    with pytest.raises(NotFoundError, match="window"):
        r.transaction("ab" * 32)
    for account in (a, b):
        for order in ("asc", "desc"):
            whole_h = h.account_transactions(account.public_key, limit=200, order=order)
            pages, cursor = [], None
            while True:
                page = r.account_transactions(
                    account.public_key, cursor=cursor, limit=3, order=order
                )
                want = h.account_transactions(
                    account.public_key, cursor=cursor, limit=3, order=order
                )
                assert page.records == want.records
                pages += page.records
                if len(page.records) < 3:
                    break
                cursor = page.next_cursor
            assert tuple(pages) == whole_h.records and len(pages) >= 8 + (account is a)
            pay_r = r.account_payments(account.public_key, limit=200, order=order)
            pay_h = h.account_payments(account.public_key, limit=200, order=order)
            assert pay_r.records == pay_h.records
    assert [t.hash for t in iter_transactions(r, a.public_key)][1:] == [*hashes, failed.hash]
    paged = r.account_payments(b.public_key, limit=2)
    rest = r.account_payments(b.public_key, cursor=paged.next_cursor, limit=200)
    assert paged.records + rest.records == h.account_payments(b.public_key, limit=200).records


def test_claimable_balances_and_what_rpc_cannot_answer(
    both: tuple[RpcLedger, HorizonLedger],
) -> None:
    r, h = both
    a, b = funded(r), funded(r)
    seq = r.load_account(a.public_key).sequence
    from stellar_sdk import Claimant, ClaimPredicate

    later = ClaimPredicate.predicate_not(ClaimPredicate.predicate_before_relative_time(86_400))
    for i, amount in enumerate(("3", "4")):
        made = r.submit(
            envelope(
                a,
                seq + i,
                lambda t, x=amount: t.append_create_claimable_balance_op(
                    XLM, x, [Claimant(b.public_key), Claimant(a.public_key, later)]
                ),
            )
        )
        assert made.successful, made
    for kw in ({"claimant": b.public_key}, {"sponsor": a.public_key}):
        got = r.claimable_balances(**kw, limit=200)  # type: ignore[arg-type]
        assert got.records == h.claimable_balances(**kw, limit=200).records  # type: ignore[arg-type]
        assert sorted(x.amount for x in got.records) == [30_000_000, 40_000_000]
    first = r.claimable_balances(claimant=b.public_key, limit=1)
    assert len(first.records) == 1
    rest = r.claimable_balances(claimant=b.public_key, cursor=first.next_cursor, limit=200)
    assert len(rest.records) == 1 and rest.records[0].id > first.records[0].id
    claim = envelope(
        b,
        r.load_account(b.public_key).sequence,
        lambda t: t.append_claim_claimable_balance_op(first.records[0].id),
    )
    assert r.submit(claim).successful
    left = r.claimable_balances(claimant=b.public_key, limit=200).records
    assert [x.id for x in left] == [x.id for x in rest.records]  # the claimed one is gone
    with pytest.raises(LedgerError, match="cannot list the holders") as info:
        r.holders(f"RPCX:{a.public_key}")
    assert not isinstance(info.value, LedgerUnavailableError)


def test_congestion_is_try_again_later(tmp_path: Path) -> None:
    db = tmp_path / "busy.db"
    EmbeddedLedger(db).close()
    with ledger_serve(db, None, "--ops-per-ledger", "100", "--ledger-close-s", "30") as url:
        ledger = RpcLedger(url + "/rpc", P)
        a, b = funded(ledger), Keypair.random()
        seq = ledger.load_account(a.public_key).sequence
        # the faucet's transaction took 1 of the 100 operations: 99 fill the window
        ops = [lambda t: t.append_create_account_op(b.public_key, "1")] + [pay(a, "1")] * 98
        full = ledger.submit(envelope(a, seq, *ops))
        assert full.applied
        with pytest.raises(LedgerCongestedError, match="TRY_AGAIN_LATER"):
            ledger.submit(envelope(a, seq + 1, pay(b, "1")))


# ---------------------------------------------------------------------------- settings
def test_the_rpc_backend_and_its_presets(tmp_path: Path, served: str) -> None:
    opened = LedgerSettings(backend="rpc", rpc_url=served + "/rpc").open(tmp_path)
    assert isinstance(opened, RpcLedger) and opened.location == served + "/rpc"
    assert opened.network_passphrase == P and funded(opened)  # the server's own friendbot
    testnet = LedgerSettings(backend="rpc", preset="testnet").open(tmp_path)
    assert isinstance(testnet, RpcLedger)
    assert testnet.location == "https://soroban-testnet.stellar.org"
    assert testnet.network_passphrase == Network.TESTNET_NETWORK_PASSPHRASE
    assert LedgerSettings(backend="rpc", preset="testnet").pacer() is not None  # 200 ops/ledger
    local = LedgerSettings(backend="rpc").open(tmp_path)
    assert local.location == "http://127.0.0.1:8000/rpc"
    for kw, match in (
        ({"preset": "pubnet"}, "allow_pubnet must be True"),
        ({"preset": "pubnet", "allow_pubnet": True}, "rpc_url must be set for preset='pubnet'"),
        ({"preset": "custom", "network_passphrase": "x"}, "rpc_url must be set"),
        ({"preset": "custom", "rpc_url": served + "/rpc"}, "network_passphrase must be set"),
        ({"rpc_url": "ws://127.0.0.1/rpc"}, "rpc_url must be an http"),
    ):
        with pytest.raises(ValueError, match=rf"LedgerSettings\.{match}"):
            LedgerSettings(backend="rpc", **kw)  # type: ignore[arg-type]
    pubnet = LedgerSettings(
        backend="rpc", preset="pubnet", allow_pubnet=True, rpc_url="https://rpc.example.org"
    ).open(tmp_path)
    assert pubnet.network_passphrase == Network.PUBLIC_NETWORK_PASSPHRASE
    for url in (served + "/rpc", served + "/rpc/"):
        assert isinstance(open_existing(url=url), RpcLedger)  # a URL ending in /rpc
    assert isinstance(open_existing(url=served), HorizonLedger)


# ---------------------------------------------------------------------------- outages
class LosesFirstAnswer(RpcLedger):
    """RpcLedger whose first submission applies but whose answer is lost on the way back."""

    lost = 0

    def submit(self, envelope_xdr: str) -> SubmitResult:
        result = super().submit(envelope_xdr)
        if LosesFirstAnswer.lost == 0:
            LosesFirstAnswer.lost += 1
            raise LedgerUnavailableError("timed out after the ledger applied it (test)")
        return result


def test_worker_rides_out_an_rpc_outage_and_pays_once(tmp_path: Path, monkeypatch) -> None:
    """As test_outages' Horizon case, through a real server: stopped mid-run, rounds wait
    (LedgerUnavailableError), restarted on the same port, every round settles exactly once."""
    monkeypatch.setattr(anchoring, "BACKOFF_START_S", 0.05)
    monkeypatch.setattr(anchoring, "BACKOFF_CAP_S", 0.5)
    monkeypatch.setattr(rpc, "HTTP_RETRIES", 0)
    db = tmp_path / "ledger.db"
    setup(db, 3)
    payees = pseudonyms(3)
    port = free_port()
    url = f"http://127.0.0.1:{port}/rpc"
    worker = Anchorer(
        lambda: LosesFirstAnswer(url, P, timeout=2),
        treasury(),
        Outbox(tmp_path / "outbox.db"),
        ManifestStore(tmp_path / "manifests"),
    )
    with ledger_serve(db, port):
        worker.start()
        worker.submit_round(manifest(1, payees))
        deadline = time.monotonic() + 30
        while {e.state for e in worker.outbox.entries()} != {"done"}:
            assert time.monotonic() < deadline, worker.outbox.entries()
            time.sleep(0.1)
        assert LosesFirstAnswer.lost == 1  # round 1's answer was lost: settled by hash
    probe = RpcLedger(url, P, timeout=2)
    with pytest.raises(LedgerUnavailableError):
        probe.load_account(payees[0].public_key)
    for r in (2, 3):
        worker.submit_round(manifest(r, payees))
    time.sleep(1.5)  # the worker meets the outage and backs off
    assert {e.state for e in worker.outbox.entries() if e.server_round > 1} <= {"pending", "signed"}
    with ledger_serve(db, port):
        worker.drain(timeout=60)
        assert all(e.state == "done" for e in worker.outbox.entries())
        balances = [probe.load_account(kp.public_key).balance(treasury().asset_id) for kp in payees]
        memos = [t.memo for t in iter_transactions(probe, treasury().distributor.public_key)]
    assert balances == [8 + 9 + 10] * 3  # each round exactly once
    assert len([m for m in memos if m]) == 3


# ---------------------------------------------------------------------------- the window
def test_the_window_decision_with_a_real_oldest_ledger(tmp_path: Path) -> None:
    db = tmp_path / "window.db"
    EmbeddedLedger(db).close()
    with ledger_serve(db, None, "--rpc-retention-window", "3") as url:
        ledger = RpcLedger(url + "/rpc", P)
        old = funded(ledger)
        for _ in range(4):
            funded(ledger)
        window = ledger.history_window()
        assert window.latest - window.oldest + 1 == 3 and window.oldest > 1
        assert ledger.created_in_window(old.public_key) is None  # created before the window
        young = funded(ledger)
        created = ledger.created_in_window(young.public_key)
        assert created is not None and ledger.history_window().holds(created)
    assert anchor_outside_window(window, None)  # history may be older: not "missing"
    assert not anchor_outside_window(window, window.oldest)  # its whole life is in view
    assert anchor_outside_window(window, window.oldest, anchor_ledger=window.oldest - 1)
    assert not anchor_outside_window(window, None, anchor_ledger=window.oldest)
    assert not anchor_outside_window(HistoryWindow(1, window.latest), None)  # from genesis


def paying(server_round: int) -> RoundManifest:
    """anchor_world's manifest, naming the distributor that pays it (as a run's do)."""
    return replace(
        manifest(server_round, pseudonyms(2)), distributor=treasury().distributor.public_key
    )


def anchored_run(db: Path, run_dir: Path, url: str, rounds: int) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    worker = Anchorer(
        lambda: RpcLedger(url + "/rpc", P),
        treasury(),
        Outbox(run_dir / "outbox.db"),
        ManifestStore(run_dir / "manifests"),
    )
    worker.start()
    for r in range(1, rounds + 1):
        worker.submit_round(paying(r))
    worker.drain(timeout=30)
    assert all(e.state == "done" for e in worker.outbox.entries())


def test_an_anchor_outside_the_rpc_window_is_said_plainly(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    setup(db, 2)  # the treasury exists before any window below begins
    run_dir = tmp_path / "run"
    with ledger_serve(db, None, "--rpc-retention-window", "4") as url:
        anchored_run(db, run_dir, url, 2)
        filler = RpcLedger(url + "/rpc", P)
        for _ in range(5):  # push both anchors out of the 4-ledger window
            funded(filler)
        reports = run_audit_for(run_dir, rpc_url=url + "/rpc")
        horizon = run_audit_for(run_dir, url=url)
    anchors = [f for f in reports[0].findings if f.check in ("anchor", "payouts")]
    assert len(anchors) == 4 and not any(f.ok for f in anchors)
    for f in anchors:
        assert "outside the RPC window" in f.detail and "Horizon URL" in f.detail, f.detail
        assert "missing" not in f.detail.split("not reported as missing")[0]
        assert "no successful transaction" not in f.detail
    assert "outside the RPC window" in reports[0].render()
    through_horizon = [f for f in horizon[0].findings if f.check in ("anchor", "payouts")]
    assert len(through_horizon) == 4 and all(f.ok for f in through_horizon)


def test_inside_a_full_window_a_missing_anchor_is_missing(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    setup(db, 2)
    run_dir = tmp_path / "run"
    with ledger_serve(db) as url:
        anchored_run(db, run_dir, url, 1)
        never = paying(2)  # stored, never anchored
        ManifestStore(run_dir / "manifests").put(never)
        reports = run_audit_for(run_dir, rpc_url=url + "/rpc")
    by_round = {(f.check, f.server_round): f for f in reports[0].findings}
    assert by_round[("anchor", 1)].ok and by_round[("payouts", 1)].ok
    assert not by_round[("anchor", 2)].ok
    assert "no successful transaction" in by_round[("anchor", 2)].detail
    assert "missing payment" in by_round[("payouts", 2)].detail


# ---------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_the_reference_app_pays_through_rpc_and_passes_the_audit_through_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A short reference-app run with ledger.backend=rpc against `ledger serve`'s /rpc: every
    honest node paid what the run owes it, and `flwr-stellar audit --rpc URL` passes."""
    from flwr_stellar.app.simulation import run_app_simulation
    from flwr_stellar.cli import main

    out = tmp_path / "run"
    with ledger_serve(tmp_path / "served.db") as url:
        run_app_simulation(
            {
                "num_rounds": 2,
                "dataset.max_train_examples": 120,
                "output_dir": str(out),
                "evaluation.central": False,
                "reward.scorer": "num-examples",
                "ledger.backend": "rpc",
                "ledger.rpc_url": url + "/rpc",
            },
            num_supernodes=3,
        )
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["ledger"]["backend"] == "rpc"
        assert metrics["ledger"]["location"] == url + "/rpc"
        rewards = metrics["rewards"]
        assert len(rewards) == 3 and all(
            r["owed_stroops"] == r["balance_stroops"] > 0 for r in rewards.values()
        )
        horizon = HorizonLedger(url, P)  # the same ledger, read the other way
        for pseudonym, r in rewards.items():
            assert horizon.load_account(pseudonym).balance(metrics["asset"]) == r["owed_stroops"]
        capsys.readouterr()
        assert main(["audit", str(out), "--rpc", url + "/rpc"]) == 0
        verdict = capsys.readouterr().out
        assert "verdict: PASS" in verdict and "outside the RPC window" not in verdict
        assert main(["audit", str(out), "--ledger", url + "/rpc"]) == 0  # a URL ending in /rpc
    assert not (out / "ledger.db").exists()


# ------------------------------------------- exactly once, when the window has passed a round
def _paid_memos(url: str) -> list[str]:
    full = HorizonLedger(url, P)  # `ledger serve`'s Horizon keeps the whole history
    return [t.memo for t in iter_transactions(full, treasury().distributor.public_key) if t.memo]


def _worker(run_dir: Path, ledger: Callable[[], Ledger]) -> Anchorer:
    return Anchorer(
        ledger, treasury(), Outbox(run_dir / "outbox.db"), ManifestStore(run_dir / "manifests")
    )


def test_a_lost_outcome_is_not_paid_again_once_the_window_has_passed_it(tmp_path: Path) -> None:
    """A round applied on the ledger whose outcome the outbox never recorded (killed between
    submitting and journaling), settled only after the RPC window has passed it: getTransaction
    says NOT_FOUND and the sequence number is consumed, which on a full history means "dead,
    rebuild". Through the window it must mean "unknown": not rebuilt, not paid twice, left in
    the outbox; a ledger with the whole history then settles it by hash, still once."""
    db, run_dir = tmp_path / "ledger.db", tmp_path / "run"
    setup(db, 2)
    with ledger_serve(db, None, "--rpc-retention-window", "4") as url:
        anchored_run(db, run_dir, url, 1)
        outbox = Outbox(run_dir / "outbox.db")  # the outcome was never journaled
        outbox._write("UPDATE entries SET state='signed', ledger=NULL", ())
        outbox.close()
        filler = RpcLedger(url + "/rpc", P)
        for _ in range(5):  # push the anchor out of the 4-ledger window
            funded(filler)
        assert filler.history_begins() is not None
        worker = _worker(run_dir, lambda: RpcLedger(url + "/rpc", P))
        worker.settle_all(RpcLedger(url + "/rpc", P), timeout=10)
        (entry,) = worker.outbox.entries()
        assert entry.state == "signed"  # unknown: left for a ledger that can tell
        assert len(_paid_memos(url)) == 1  # not paid twice
        worker.settle_all(HorizonLedger(url, P), timeout=10)
        (entry,) = worker.outbox.entries()
        assert entry.state == "done" and entry.ledger is not None
        assert len(_paid_memos(url)) == 1


def test_a_lost_journal_is_not_journaled_again_when_the_window_may_hide_its_anchor(
    tmp_path: Path,
) -> None:
    """A deleted outbox.db with the manifest stored before the window begins: the anchor may
    be older than what RPC can see, so the round is not journaled (and paid) again; through a
    full history it is found anchored and left alone too."""
    db, run_dir = tmp_path / "ledger.db", tmp_path / "run"
    setup(db, 2)
    with ledger_serve(db, None, "--rpc-retention-window", "4") as url:
        anchored_run(db, run_dir, url, 1)
        (run_dir / "outbox.db").unlink()
        for f in run_dir.glob("outbox.db-*"):
            f.unlink()
        manifests = list((run_dir / "manifests").glob("*.json"))
        old = time.time() - 3600  # stored an hour ago, before the window below begins
        for f in manifests:
            os.utime(f, (old, old))
        filler = RpcLedger(url + "/rpc", P)
        for _ in range(5):
            funded(filler)
        worker = _worker(run_dir, lambda: RpcLedger(url + "/rpc", P))
        assert worker.journal_stored(RpcLedger(url + "/rpc", P)) == []
        assert worker.outbox.entries() == []
        assert worker.journal_stored(HorizonLedger(url, P)) == []  # found anchored
        assert len(_paid_memos(url)) == 1


def test_history_begins_says_whether_not_found_means_never_applied(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    EmbeddedLedger(db).close()
    assert EmbeddedLedger(db).history_begins() is None
    with ledger_serve(db, None, "--rpc-retention-window", "3") as url:
        ledger = RpcLedger(url + "/rpc", P)
        assert ledger.history_begins() is None  # the window still reaches genesis
        before = int(time.time()) - 1
        for _ in range(4):
            funded(ledger)
        begins = ledger.history_begins()
        assert begins is not None and before <= begins <= time.time() + 1
        assert HorizonLedger(url, P).history_begins() is None  # Horizon's elder ledger is 1
