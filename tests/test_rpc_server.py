"""Stellar RPC (JSON-RPC 2.0) at /rpc of `flwr-stellar ledger serve` on 127.0.0.1: the real
stellar_sdk.SorobanServer against it unchanged, every XDR it returns decoded with
stellar_sdk.xdr and checked against what Horizon's routes of the same server say, and hostile
requests over raw HTTP, each answered with its JSON-RPC error and changing nothing."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from ledger_helpers import Chain, pay, serve_ledger
from stellar_sdk import Account as SdkAccount
from stellar_sdk import (
    Asset,
    Claimant,
    ClaimPredicate,
    Keypair,
    SorobanServer,
    StrKey,
    TransactionBuilder,
    TransactionEnvelope,
    xdr,
)
from stellar_sdk.exceptions import AccountNotFoundException, SorobanRpcErrorResponse
from stellar_sdk.soroban_rpc import GetTransactionStatus, SendTransactionStatus

from flwr_stellar.ledger.embedded import DEFAULT_PASSPHRASE, Congestion, EmbeddedLedger
from flwr_stellar.ledger.rpc_server import RpcError, RpcMethods
from flwr_stellar.ledger.serve_process import serving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_ledger(tmp_path_factory.mktemp("rpc") / "ledger.db") as url:
        yield url


def fund(url: str, kp: Keypair) -> None:
    response = requests.get(f"{url}/friendbot", params={"addr": kp.public_key}, timeout=10)
    assert response.status_code == 200, response.text


def signed(
    rpc: SorobanServer,
    kp: Keypair,
    *ops: Callable[[TransactionBuilder], object],
    seq: int | None = None,
) -> Any:
    account = rpc.load_account(kp.public_key)
    if seq is not None:
        account.sequence = seq
    builder = TransactionBuilder(account, DEFAULT_PASSPHRASE, base_fee=100)
    for op in ops:
        op(builder)
    tx = builder.set_timeout(60).build()
    tx.sign(kp)
    return tx


def raw(url: str, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(
        f"{url}/rpc",
        data=data,
        headers={"Content-Type": "application/json"} | (headers or {}),
        timeout=30,
    )


def codes(result_b64: str) -> tuple[str, list[str]]:
    """(transaction code, operation codes) of a base64 TransactionResult."""
    result = xdr.TransactionResult.from_xdr(result_b64)
    names = []
    for r in result.result.results or []:
        value = next(v for k, v in vars(r.tr).items() if k != "type" and v is not None)
        names.append(value.code.name)
    return result.result.code.name, names


def test_health_network_and_latest_ledger_match_the_horizon_routes(served: str) -> None:
    rpc = SorobanServer(f"{served}/rpc")
    health = rpc.get_health()
    assert health.status == "healthy" and health.oldest_ledger == 1
    assert health.ledger_retention_window == health.latest_ledger  # everything is kept
    network = rpc.get_network()
    assert network.passphrase == DEFAULT_PASSPHRASE and network.protocol_version == 22
    assert network.friendbot_url == f"{served}/friendbot"
    latest = rpc.get_latest_ledger()
    horizon = requests.get(f"{served}/ledgers/{latest.sequence}", timeout=10).json()
    assert latest.id == horizon["hash"] and len(latest.id) == 64
    header = xdr.LedgerHeader.from_xdr(latest.header_xdr)
    assert header.ledger_seq.uint32 == latest.sequence and header.ledger_version.uint32 == 22
    assert header.previous_ledger_hash.hash.hex() == horizon["prev_hash"]
    assert header.scp_value.close_time.time_point.uint64 == latest.close_time
    meta = xdr.LedgerCloseMeta.from_xdr(latest.metadata_xdr)
    assert meta.v1 is not None and meta.v1.ledger_header.hash.hash.hex() == latest.id


def test_payment_lifecycle_pending_success_duplicate_error_failed(served: str) -> None:
    rpc = SorobanServer(f"{served}/rpc")
    alice, bob, issuer = Keypair.random(), Keypair.random(), Keypair.random()
    for kp in (alice, bob, issuer):
        fund(served, kp)
    tx = signed(rpc, alice, lambda b: b.append_payment_op(bob.public_key, Asset.native(), "12.5"))
    sent = rpc.send_transaction(tx)
    assert sent.status == SendTransactionStatus.PENDING and sent.hash == tx.hash_hex()
    assert sent.error_result_xdr is None
    got = rpc.poll_transaction(sent.hash, max_attempts=5)
    assert got.status == GetTransactionStatus.SUCCESS
    assert got.transaction_hash == tx.hash_hex() and got.fee_bump is False
    assert got.application_order == 1 and got.ledger is not None
    assert got.ledger > sent.latest_ledger  # the pre-submission ledger, as stellar-rpc says
    assert got.envelope_xdr == tx.to_xdr()
    assert got.result_xdr is not None and got.result_meta_xdr is not None
    result = xdr.TransactionResult.from_xdr(got.result_xdr)
    assert result.fee_charged.int64 == 100
    assert codes(got.result_xdr) == ("txSUCCESS", ["PAYMENT_SUCCESS"])
    meta = xdr.TransactionMeta.from_xdr(got.result_meta_xdr)
    assert meta.v == 3 and meta.v3 is not None and meta.v3.soroban_meta is None
    horizon = requests.get(f"{served}/transactions/{sent.hash}", timeout=10).json()
    assert horizon["ledger"] == got.ledger and horizon["result_xdr"] == got.result_xdr
    assert got.create_at is not None and got.create_at > 1_700_000_000
    assert got.latest_ledger >= got.ledger and got.oldest_ledger == 1

    again = rpc.send_transaction(tx)  # the same envelope: nothing applied twice
    assert again.status == SendTransactionStatus.DUPLICATE and again.hash == sent.hash
    assert rpc.get_latest_ledger().sequence == again.latest_ledger

    seq = rpc.load_account(alice.public_key).sequence
    stale = signed(
        rpc, alice, lambda b: b.append_payment_op(bob.public_key, Asset.native(), "1"), seq=seq - 1
    )
    before = rpc.get_latest_ledger().sequence
    bad = rpc.send_transaction(stale)
    assert bad.status == SendTransactionStatus.ERROR and bad.error_result_xdr is not None
    assert codes(bad.error_result_xdr) == ("txBAD_SEQ", [])
    assert rpc.get_latest_ledger().sequence == before  # rejected: no ledger closed
    assert rpc.get_transaction(stale.hash_hex()).status == GetTransactionStatus.NOT_FOUND

    dlc = Asset("DLC", issuer.public_key)
    no_trust = signed(rpc, issuer, lambda b: b.append_payment_op(bob.public_key, dlc, "5"))
    sent = rpc.send_transaction(no_trust)
    assert sent.status == SendTransactionStatus.PENDING  # applied, failed and charged
    failed = rpc.poll_transaction(sent.hash, max_attempts=5)
    assert failed.status == GetTransactionStatus.FAILED and failed.result_xdr is not None
    assert codes(failed.result_xdr) == ("txFAILED", ["PAYMENT_NO_TRUST"])
    assert rpc.load_account(issuer.public_key).sequence == no_trust.transaction.sequence

    missing = rpc.get_transaction("ab" * 32)
    assert missing.status == GetTransactionStatus.NOT_FOUND and missing.ledger is None
    assert missing.transaction_hash == "ab" * 32 and missing.latest_ledger >= failed.latest_ledger


def test_ledger_entries_for_accounts_and_trustlines(served: str) -> None:
    rpc = SorobanServer(f"{served}/rpc")
    issuer, holder = Keypair.random(), Keypair.random()
    fund(served, issuer)
    fund(served, holder)
    dlc = Asset("DLC", issuer.public_key)
    ledgers = []
    for kp, op in (
        (holder, lambda b: b.append_change_trust_op(dlc, "1000")),
        (issuer, lambda b: b.append_payment_op(holder.public_key, dlc, "12.5")),
    ):
        sent = rpc.send_transaction(signed(rpc, kp, op))
        assert sent.status == SendTransactionStatus.PENDING
        ledgers.append(rpc.get_transaction(sent.hash).ledger)
    trusted_in, paid_in = ledgers
    horizon = requests.get(f"{served}/accounts/{holder.public_key}", timeout=10).json()
    assert rpc.load_account(holder.public_key).sequence == int(horizon["sequence"])
    with pytest.raises(AccountNotFoundException):
        rpc.load_account(Keypair.random().public_key)

    def account_key(kp: Keypair) -> xdr.LedgerKey:
        return xdr.LedgerKey(
            xdr.LedgerEntryType.ACCOUNT, account=xdr.LedgerKeyAccount(kp.xdr_account_id())
        )

    line_key = xdr.LedgerKey(
        xdr.LedgerEntryType.TRUSTLINE,
        trust_line=xdr.LedgerKeyTrustLine(
            holder.xdr_account_id(), dlc.to_trust_line_asset_xdr_object()
        ),
    )
    other_line = xdr.LedgerKey(  # a trustline nobody holds
        xdr.LedgerEntryType.TRUSTLINE,
        trust_line=xdr.LedgerKeyTrustLine(
            issuer.xdr_account_id(),
            Asset("XYZ", holder.public_key).to_trust_line_asset_xdr_object(),
        ),
    )
    offer = xdr.LedgerKey(
        xdr.LedgerEntryType.OFFER,
        offer=xdr.LedgerKeyOffer(holder.xdr_account_id(), xdr.Int64(1)),
    )
    got = rpc.get_ledger_entries(
        [account_key(holder), line_key, account_key(Keypair.random()), other_line, offer]
    )
    assert got.entries is not None and len(got.entries) == 2  # the absent ones are left out
    assert got.latest_ledger == rpc.get_latest_ledger().sequence
    account_entry, line_entry = got.entries
    assert account_entry.key == account_key(holder).to_xdr()
    account = xdr.LedgerEntryData.from_xdr(account_entry.xdr).account
    assert account is not None and account.balance.int64 == 10_000 * 10**7 - 100
    assert account.num_sub_entries.uint32 == 1
    assert account.seq_num.sequence_number.int64 == int(horizon["sequence"])
    assert account.thresholds.thresholds == bytes([1, 0, 0, 0])
    line = xdr.LedgerEntryData.from_xdr(line_entry.xdr).trust_line
    assert line is not None and line.balance.int64 == 125_000_000
    assert line.limit.int64 == 1000 * 10**7 and line.flags.uint32 == 1
    # the account entry last changed with its trustline; the payment changed the trustline only
    assert account_entry.last_modified_ledger == trusted_in < paid_in
    assert line_entry.last_modified_ledger == paid_in


def test_transactions_and_ledgers_page_through_everything(served: str) -> None:
    rpc = SorobanServer(f"{served}/rpc")
    payer = Keypair.random()
    fund(served, payer)
    for _ in range(3):
        tx = signed(rpc, payer, lambda b: b.append_bump_sequence_op(0))
        assert rpc.send_transaction(tx).status == SendTransactionStatus.PENDING
    horizon = requests.get(f"{served}/transactions", params={"limit": 200}, timeout=10).json()
    expected = [(r["hash"], r["successful"]) for r in horizon["_embedded"]["records"]]
    seen, page = [], rpc.get_transactions(start_ledger=1, limit=2)
    while page.transactions:
        assert len(page.transactions) <= 2
        for t in page.transactions:
            assert xdr.TransactionEnvelope.from_xdr(t.envelope_xdr).to_xdr() == t.envelope_xdr
            assert xdr.TransactionMeta.from_xdr(t.result_meta_xdr).v == 3
            assert codes(t.result_xdr)[0] == ("txSUCCESS" if t.status == "SUCCESS" else "txFAILED")
        seen += [(t.transaction_hash, t.status == "SUCCESS") for t in page.transactions]
        page = rpc.get_transactions(cursor=page.cursor, limit=2)
    assert seen == expected and page.latest_ledger == rpc.get_latest_ledger().sequence

    latest = rpc.get_latest_ledger().sequence
    ledgers, page_l = [], rpc.get_ledgers(start_ledger=1, limit=3)
    while True:
        ledgers += page_l.ledgers
        if page_l.ledgers[-1].sequence == latest:
            break
        page_l = rpc.get_ledgers(cursor=page_l.cursor, limit=3)
    assert [item.sequence for item in ledgers] == list(range(1, latest + 1))
    for item in ledgers[-3:]:
        record = requests.get(f"{served}/ledgers/{item.sequence}", timeout=10).json()
        entry = xdr.LedgerHeaderHistoryEntry.from_xdr(item.header_xdr)
        assert entry.hash.hash.hex() == item.hash == record["hash"]
        assert entry.header.ledger_seq.uint32 == item.sequence
        assert item.ledger_close_time == entry.header.scp_value.close_time.time_point.uint64
        meta = xdr.LedgerCloseMeta.from_xdr(item.metadata_xdr).v1
        assert meta is not None and len(meta.tx_processing) == record["operation_count"] > 0
        assert [p.result.transaction_hash.hash.hex() for p in meta.tx_processing] == [
            t["hash"]
            for t in requests.get(
                f"{served}/ledgers/{item.sequence}/transactions", timeout=10
            ).json()["_embedded"]["records"]
        ]
    with pytest.raises(SorobanRpcErrorResponse) as past_end:  # as stellar-rpc: out of range
        rpc.get_ledgers(cursor=str(latest), limit=3)
    assert past_end.value.code == -32602


def test_fee_stats_are_the_charged_fees_per_operation(served: str) -> None:
    rpc = SorobanServer(f"{served}/rpc")
    payer = Keypair.random()
    fund(served, payer)
    stats = rpc.get_fee_stats()
    assert stats.inclusion_fee.p50 == stats.inclusion_fee.max == 100  # base fee, 1 op each
    assert stats.inclusion_fee.transaction_count >= 1 and stats.inclusion_fee.ledger_count <= 10
    assert stats.soroban_inclusion_fee.transaction_count == 0
    assert stats.latest_ledger == rpc.get_latest_ledger().sequence


def _fingerprint(url: str) -> tuple[int, int]:
    latest = requests.get(f"{url}/ledgers", params={"order": "desc", "limit": 1}, timeout=10)
    seq = latest.json()["_embedded"]["records"][0]["sequence"]
    txs = requests.get(f"{url}/transactions", params={"order": "desc", "limit": 1}, timeout=10)
    return seq, int(txs.json()["_embedded"]["records"][0]["paging_token"])


def test_hostile_requests_get_their_json_rpc_error_and_change_nothing(served: str) -> None:
    payer = Keypair.random()
    fund(served, payer)
    rpc = SorobanServer(f"{served}/rpc")
    good_tx = signed(rpc, payer, lambda b: b.append_bump_sequence_op(0)).to_xdr()
    ttl = xdr.LedgerKey(xdr.LedgerEntryType.TTL, ttl=xdr.LedgerKeyTtl(xdr.Hash(bytes(32))))
    account = xdr.LedgerKey(
        xdr.LedgerEntryType.ACCOUNT, account=xdr.LedgerKeyAccount(payer.xdr_account_id())
    ).to_xdr()

    def call(method: str, params: Any = None, **extra: Any) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": 7, "method": method, "params": params} | extra

    cases: list[tuple[Any, int, str]] = [
        (b"{not json", -32700, "parse"),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "getHealth", "params": NaN}', -32700, "parse"),
        (b"\xff\xfe\x00garbage", -32700, "parse"),
        (b'{"jsonrpc": "2.0", "id": 1e999, "method": "getHealth"}', -32700, "parse"),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "nope", "params": {"a": -1e400}}', -32700, ""),
        (b"[" * 100_000, -32700, "parse"),
        (b'{"jsonrpc":"2.0","id":1,"method":"getHealth","x":' + b"9" * 5000 + b"}", -32700, ""),
        (b'"just a string"', -32600, "object"),
        (call("getHealth", jsonrpc="1.0"), -32600, "2.0"),
        (call("getHealth", jsonrpc=2.0), -32600, "2.0"),
        ({"jsonrpc": "2.0", "id": 1}, -32600, "method"),
        (call("getHealth") | {"method": 5}, -32600, "method"),
        (call("getHealth", id={"a": 1}), -32600, "id"),
        (call("getHealth", id=True), -32600, "id"),
        (call("dropAllTables"), -32601, "dropAllTables"),
        (call("simulateTransaction", {"transaction": good_tx}), -32601, "simulateTransaction"),
        (call("getTransactions", [1]), -32602, "params must be an object"),
        (call("getTransactions", "startLedger=1"), -32602, "params must be an object"),
        (call("getTransactions", {"startLedger": -1}), -32602, "startLedger"),
        (call("getTransactions", {"startLedger": "1"}), -32602, "startLedger"),
        (call("getTransactions", {"startLedger": 1.5}), -32602, "startLedger"),
        (call("getTransactions", {"startLedger": 2**40}), -32602, "startLedger"),
        (call("getTransactions", {"startLedger": 10**9}), -32600, "start ledger"),
        (call("getTransactions", {"startLedger": 0}), -32600, "start ledger"),
        (
            call("getTransactions", {"startLedger": 1, "pagination": {"limit": 10**6}}),
            -32600,
            "200",
        ),
        (call("getTransactions", {"startLedger": 1, "pagination": {"limit": 2**70}}), -32602, ""),
        (call("getTransactions", {"startLedger": 1, "pagination": {"limit": -5}}), -32602, ""),
        (call("getTransactions", {"startLedger": 1, "pagination": []}), -32602, "pagination"),
        (call("getTransactions", {"pagination": {"cursor": "abc"}}), -32602, "cursor"),
        (call("getTransactions", {"pagination": {"cursor": "9" * 30}}), -32602, "cursor"),
        (call("getTransactions", {"pagination": {"cursor": 5}}), -32602, "cursor"),
        (
            call("getTransactions", {"startLedger": 2, "pagination": {"cursor": "8589934592"}}),
            -32600,
            "cannot both",
        ),
        (call("getLedgers", {"startLedger": 10**9}), -32600, "start ledger"),
        (call("getLedgers", {"startLedger": -3}), -32602, "startLedger"),
        (call("getLedgers", {"pagination": {"cursor": "-1"}}), -32602, "cursor"),
        (call("getLedgers", {"startLedger": 1, "xdrFormat": "json"}), -32602, "xdrFormat"),
        (call("getLedgers", {"startLedger": 1, "xdrFormat": "yaml"}), -32602, "xdrFormat"),
        (call("getTransaction", {"hash": "zz" * 32}), -32602, "hash"),
        (call("getTransaction", {"hash": "ab"}), -32602, "hash length"),
        (call("getTransaction", {"hash": None}), -32602, "hash"),
        (call("getTransaction", {"hash": ["ab" * 32]}), -32602, "hash"),
        (call("getTransaction"), -32602, "hash"),
        (call("sendTransaction", {"transaction": "AAAA" + "garbage!"}), -32602, "invalid_xdr"),
        (
            call("sendTransaction", {"transaction": base64.b64encode(b"\x00" * 99).decode()}),
            -32602,
            "invalid_xdr",
        ),
        (call("sendTransaction", {"transaction": good_tx[:-8]}), -32602, "invalid_xdr"),
        (call("sendTransaction", {"transaction": 12}), -32602, "transaction"),
        (call("sendTransaction", {}), -32602, "transaction"),
        (call("getLedgerEntries", {"keys": "AAAA"}), -32602, "keys"),
        (call("getLedgerEntries", {"keys": [1]}), -32602, "keys"),
        (call("getLedgerEntries", {"keys": ["not base64!"]}), -32602, "index 0"),
        (call("getLedgerEntries", {"keys": [account, account + "AAAA"]}), -32602, "index 1"),
        (call("getLedgerEntries", {"keys": [account] * 201}), -32602, "201"),
        (call("getLedgerEntries", {"keys": [ttl.to_xdr()]}), -32602, "ttl"),
        (call("getHealth", id=None) | {"params": {"junk": [1, 2]}}, 0, ""),  # ignored, as rpc
    ]
    before = _fingerprint(served)
    for body, code, words in cases:
        response = raw(served, body)
        assert response.status_code == 200, (body, response.status_code, response.text)
        answer = response.json()
        if code == 0:
            assert answer["result"]["status"] == "healthy"
            continue
        assert answer["jsonrpc"] == "2.0" and "result" not in answer, (body, answer)
        assert answer["error"]["code"] == code, (str(body)[:200], answer)
        assert words.lower() in answer["error"]["message"].lower(), (str(body)[:200], answer)
        if isinstance(body, dict) and code not in (-32600,):
            assert answer["id"] == body["id"]
    # transport-level refusals: oversize body, wrong content type, wrong HTTP method
    huge = raw(served, call("sendTransaction", {"transaction": "A" * 400_000}))
    assert huge.status_code == 200 and huge.json()["error"]["code"] == -32600
    assert "larger than" in huge.json()["error"]["message"]
    plain = raw(served, call("getHealth"), {"Content-Type": "text/plain"})
    assert plain.status_code == 415 and plain.json()["error"]["code"] == -32600
    get = requests.get(f"{served}/rpc", timeout=10)
    assert get.status_code == 405 and get.json()["status"] == 405
    # batches: each request answered in order; empty or oversize batches refused whole
    batch = raw(served, [call("getHealth"), call("nope"), 5])
    answers = batch.json()
    assert [("result" in a, a.get("error", {}).get("code")) for a in answers] == [
        (True, None),
        (False, -32601),
        (False, -32600),
    ]
    assert raw(served, []).json()["error"]["code"] == -32600
    assert raw(served, [call("getHealth")] * 101).json()["error"]["code"] == -32600
    note = raw(served, {"jsonrpc": "2.0", "method": "getHealth"})  # a notification
    assert note.status_code == 204 and note.content == b""
    assert _fingerprint(served) == before  # nothing above changed the ledger

    # 400 random mutations of a sendTransaction request (its envelope applied already, so an
    # untouched one is a DUPLICATE): never a 500, nothing new applied
    assert rpc.send_transaction(good_tx).status == SendTransactionStatus.PENDING
    before = _fingerprint(served)
    rng = random.Random(7)
    template = json.dumps(call("sendTransaction", {"transaction": good_tx})).encode()
    for _ in range(400):
        body = bytearray(template)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(body))
            body[i] = rng.randrange(256)
        response = raw(served, bytes(body))
        assert response.status_code in (200, 204), response.status_code
        if response.status_code == 200:
            answer = response.json()
            assert "error" in answer or answer["result"]["status"] in ("ERROR", "DUPLICATE")
    assert _fingerprint(served) == before


def test_retention_window_hides_older_ledgers_and_transactions(tmp_path: Path) -> None:
    ledger = EmbeddedLedger(tmp_path / "ledger.db")
    old = Keypair.random()
    first = ledger.fund(old.public_key)
    for _ in range(4):
        ledger.fund(Keypair.random().public_key)
    methods = RpcMethods(ledger, retention_window=3)
    health = methods.get_health({}, "")
    assert (health["oldestLedger"], health["latestLedger"]) == (4, 6)
    assert health["ledgerRetentionWindow"] == 3
    assert methods.get_transaction({"hash": first.hash}, "")["status"] == "NOT_FOUND"
    for name in ("get_transactions", "get_ledgers"):
        with pytest.raises(RpcError) as info:
            getattr(methods, name)({"startLedger": 2}, "")
        assert info.value.code == -32600 and "oldest ledger: 4" in info.value.message
    page = methods.get_transactions({"startLedger": 4}, "")
    assert [t["ledger"] for t in page["transactions"]] == [4, 5, 6]
    with pytest.raises(ValueError):
        RpcMethods(ledger, retention_window=0)

    db = tmp_path / "served.db"
    ledger.close()
    EmbeddedLedger(db).close()
    with serving(db, extra_args=("--rpc-retention-window", "1")) as url:
        fund(url, Keypair.random())
        fund(url, Keypair.random())
        rpc = SorobanServer(f"{url}/rpc")
        health_served = rpc.get_health()
        assert health_served.oldest_ledger == health_served.latest_ledger == 3
        assert health_served.ledger_retention_window == 1


# ---------------------------------------------------------------------------- in-process
def _key(kind: str, **fields: Any) -> str:
    t = getattr(xdr.LedgerEntryType, kind)
    return xdr.LedgerKey(t, **fields).to_xdr()


def _entries(methods: RpcMethods, *keys: str) -> dict[str, dict[str, Any]]:
    return {e["key"]: e for e in methods.get_ledger_entries({"keys": list(keys)}, "")["entries"]}


def _sponsor_of(entry: dict[str, Any]) -> str | None:
    ext = xdr.LedgerEntryExt.from_xdr(entry["extXdr"])
    if ext.v1 is None or ext.v1.sponsoring_id.sponsorship_descriptor is None:
        return None
    return StrKey.encode_ed25519_public_key(
        ext.v1.sponsoring_id.sponsorship_descriptor.account_id.ed25519.uint256
    )


def test_entries_of_every_kind_carry_sponsors_and_their_exact_last_ledger() -> None:
    chain = Chain()
    methods = RpcMethods(chain.ledger)
    sponsor, issuer, node = chain.funded(), chain.funded(), Keypair.random()
    dlc = chain.asset(issuer)
    onboarded = chain.submit(
        sponsor,
        lambda t: t.append_begin_sponsoring_future_reserves_op(node.public_key),
        lambda t: t.append_create_account_op(node.public_key, "0"),
        lambda t: t.append_change_trust_op(dlc, source=node.public_key),
        lambda t: t.append_end_sponsoring_future_reserves_op(source=node.public_key),
        signers=(sponsor, node),
    )
    paid = chain.submit(issuer, pay(node, "7", dlc))  # the trustline changes, not the account
    data = chain.submit(sponsor, lambda t: t.append_manage_data_op("k", b"v"))
    predicate = ClaimPredicate.predicate_or(
        ClaimPredicate.predicate_before_absolute_time(4_000_000_000),
        ClaimPredicate.predicate_not(ClaimPredicate.predicate_unconditional()),
    )
    env = chain.build(
        issuer,
        lambda t: t.append_create_claimable_balance_op(
            dlc, "3", [Claimant(node.public_key, predicate)]
        ),
    )
    made = chain.ledger.submit(env)
    assert all(r.successful for r in (onboarded, paid, data, made))
    parsed = TransactionEnvelope.from_xdr(env, DEFAULT_PASSPHRASE)
    balance_id = parsed.transaction.get_claimable_balance_id(0)

    node_key = _key("ACCOUNT", account=xdr.LedgerKeyAccount(node.xdr_account_id()))
    sponsor_key = _key("ACCOUNT", account=xdr.LedgerKeyAccount(sponsor.xdr_account_id()))
    line_key = _key(
        "TRUSTLINE",
        trust_line=xdr.LedgerKeyTrustLine(
            node.xdr_account_id(), dlc.to_trust_line_asset_xdr_object()
        ),
    )
    data_key = _key("DATA", data=xdr.LedgerKeyData(sponsor.xdr_account_id(), xdr.String64(b"k")))
    cb_key = _key(
        "CLAIMABLE_BALANCE",
        claimable_balance=xdr.LedgerKeyClaimableBalance(
            xdr.ClaimableBalanceID.from_xdr_bytes(bytes.fromhex(balance_id))
        ),
    )
    got = _entries(methods, node_key, sponsor_key, line_key, data_key, cb_key)
    assert set(got) == {node_key, sponsor_key, line_key, data_key, cb_key}

    node_entry = got[node_key]
    assert node_entry["lastModifiedLedgerSeq"] == onboarded.ledger  # not the payment's ledger
    account = xdr.LedgerEntryData.from_xdr(node_entry["xdr"]).account
    assert account is not None and account.balance.int64 == 0
    v2 = account.ext.v1.ext.v2  # type: ignore[union-attr]
    assert (v2.num_sponsored.uint32, v2.num_sponsoring.uint32) == (2 + 1, 0)
    assert _sponsor_of(node_entry) == sponsor.public_key
    sponsor_account = xdr.LedgerEntryData.from_xdr(got[sponsor_key]["xdr"]).account
    assert sponsor_account is not None
    assert sponsor_account.ext.v1.ext.v2.num_sponsoring.uint32 == 3  # type: ignore[union-attr]
    assert got[sponsor_key]["lastModifiedLedgerSeq"] == data.ledger
    assert _sponsor_of(got[sponsor_key]) is None

    line = xdr.LedgerEntryData.from_xdr(got[line_key]["xdr"]).trust_line
    assert line is not None and line.balance.int64 == 70_000_000
    assert got[line_key]["lastModifiedLedgerSeq"] == paid.ledger
    assert _sponsor_of(got[line_key]) == sponsor.public_key

    entry = xdr.LedgerEntryData.from_xdr(got[data_key]["xdr"]).data
    assert entry is not None and entry.data_value.data_value == b"v"
    assert got[data_key]["lastModifiedLedgerSeq"] == data.ledger

    cb = xdr.LedgerEntryData.from_xdr(got[cb_key]["xdr"]).claimable_balance
    assert cb is not None and cb.amount.int64 == 30_000_000
    assert Asset.from_xdr_object(cb.asset) == dlc
    assert cb.claimants[0].v0.predicate == predicate.to_xdr_object()  # type: ignore[union-attr]
    assert got[cb_key]["lastModifiedLedgerSeq"] == made.ledger
    assert _sponsor_of(got[cb_key]) == issuer.public_key

    # a DLC key spelled as a 12-byte code is another (invalid) asset: absent, as on Stellar
    wide = xdr.TrustLineAsset(
        xdr.AssetType.ASSET_TYPE_CREDIT_ALPHANUM12,
        alpha_num12=xdr.AlphaNum12(
            xdr.AssetCode12(b"DLC".ljust(12, b"\0")), issuer.xdr_account_id()
        ),
    )
    wide_key = _key("TRUSTLINE", trust_line=xdr.LedgerKeyTrustLine(node.xdr_account_id(), wide))
    assert _entries(methods, wide_key, node_key, node_key).keys() == {node_key}


def test_fee_bumps_are_found_by_their_own_hash_and_a_full_ledger_says_try_again_later() -> None:
    chain = Chain()
    methods = RpcMethods(chain.ledger)
    payer, sponsor, dest = chain.funded(), chain.funded(), chain.funded()
    inner = TransactionBuilder(
        SdkAccount(payer.public_key, chain.ledger.load_account(payer.public_key).sequence),
        DEFAULT_PASSPHRASE,
        base_fee=100,
    )
    tx = inner.append_payment_op(dest.public_key, Asset.native(), "1").set_timeout(300).build()
    tx.sign(payer)
    bump = TransactionBuilder.build_fee_bump_transaction(
        sponsor.public_key, 100, tx, DEFAULT_PASSPHRASE
    )
    bump.sign(sponsor)
    sent = methods.send_transaction({"transaction": bump.to_xdr()}, "")
    assert sent["status"] == "PENDING" and sent["hash"] == bump.hash_hex() != tx.hash_hex()
    got = methods.get_transaction({"hash": bump.hash_hex()}, "")
    assert got["status"] == "SUCCESS" and got["feeBump"] is True
    result = xdr.TransactionResult.from_xdr(got["resultXdr"])
    assert result.result.code == xdr.TransactionResultCode.txFEE_BUMP_INNER_SUCCESS
    assert result.result.inner_result_pair.transaction_hash.hash.hex() == tx.hash_hex()  # type: ignore[union-attr]
    # stellar-rpc files a fee bump under its own hash only
    assert methods.get_transaction({"hash": tx.hash_hex()}, "")["status"] == "NOT_FOUND"
    assert methods.send_transaction({"transaction": bump.to_xdr()}, "")["status"] == "DUPLICATE"

    busy = EmbeddedLedger(":memory:", congestion=Congestion(ops_per_ledger=1, ledger_close_s=600))
    busy_methods, busy_chain = RpcMethods(busy), Chain()
    busy_chain.ledger = busy
    first = busy_chain.funded()  # the friendbot's create_account fills the ledger
    env = busy_chain.build(first, pay(dest, "1"))
    before = busy.latest_ledger()["seq"]
    answer = busy_methods.send_transaction({"transaction": env}, "")
    assert answer["status"] == "TRY_AGAIN_LATER" and "errorResultXdr" not in answer
    assert busy.latest_ledger()["seq"] == before  # nothing applied
    assert busy_methods.get_transaction({"hash": answer["hash"]}, "")["status"] == "NOT_FOUND"


def test_a_store_from_before_last_modified_stamps_still_answers(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    chain = Chain(str(db))
    kp = chain.funded()
    chain.ledger.store.db.execute("ALTER TABLE entries DROP COLUMN ledger")  # the old schema
    chain.ledger.close()
    reopened = EmbeddedLedger(db)  # adds the column back, stamps 0
    key = _key("ACCOUNT", account=xdr.LedgerKeyAccount(kp.xdr_account_id()))
    assert reopened.store.last_modified(("acct", kp.public_key)) == 0
    (entry,) = _entries(RpcMethods(reopened), key).values()
    assert entry["lastModifiedLedgerSeq"] == 2  # its last transaction's ledger, the fallback
    assert reopened.fund(Keypair.random().public_key).successful
    assert reopened.store.last_modified(("acct", reopened.root.public_key)) == 3


def test_fee_distribution_is_stellar_rpcs_nearest_rank() -> None:
    from flwr_stellar.ledger.rpc_server import _distribution

    d = _distribution([100, 100, 200, 200, 300], 7)
    assert (d["min"], d["max"], d["mode"]) == ("100", "300", "100")  # a tie: the lowest
    assert (d["p10"], d["p40"], d["p50"], d["p60"], d["p99"]) == ("100", "100", "200", "200", "300")
    assert (d["transactionCount"], d["ledgerCount"]) == ("5", 7)
    assert _distribution([], 3)["p50"] == "0" and _distribution([], 3)["ledgerCount"] == 3
