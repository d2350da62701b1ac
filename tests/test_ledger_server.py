"""`flwr-stellar ledger serve` on 127.0.0.1, used by the real stellar_sdk.Server (through
HorizonLedger) and hammered with 10,000 malformed requests."""

import base64
import random
import time
from datetime import UTC, datetime

import pytest
import requests
from ledger_helpers import serve_ledger
from stellar_sdk import Asset, Claimant, ClaimPredicate, Keypair, Server, TransactionBuilder
from stellar_sdk.exceptions import BadRequestError, NotFoundError

from flwr_stellar.ledger.base import LedgerError, LedgerUnavailableError
from flwr_stellar.ledger.base import NotFoundError as LedgerNotFound
from flwr_stellar.ledger.embedded import DEFAULT_PASSPHRASE
from flwr_stellar.ledger.horizon import HorizonLedger
from flwr_stellar.ledger.server import PROBLEM

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with serve_ledger(tmp_path_factory.mktemp("ledger") / "ledger.db") as url:
        yield url


def test_sdk_and_horizon_ledger_against_server(served: str) -> None:
    ledger = HorizonLedger(served, DEFAULT_PASSPHRASE, friendbot_url=f"{served}/friendbot")
    sdk = Server(served)
    issuer, distributor, node = Keypair.random(), Keypair.random(), Keypair.random()
    for kp in (issuer, distributor, node):
        assert ledger.fund(kp.public_key).successful
    assert not ledger.fund(node.public_key).successful  # exists already
    dlc = Asset("DLC", issuer.public_key)

    def send(kp: Keypair, build) -> dict:  # type: ignore[no-untyped-def]
        tx = (
            build(
                TransactionBuilder(
                    sdk.load_account(kp.public_key), DEFAULT_PASSPHRASE, sdk.fetch_base_fee()
                )
            )
            .set_timeout(60)
            .build()
        )
        tx.sign(kp)
        return sdk.submit_transaction(tx, skip_memo_required_check=True)

    send(distributor, lambda t: t.append_change_trust_op(dlc))
    send(node, lambda t: t.append_change_trust_op(dlc))
    send(issuer, lambda t: t.append_payment_op(distributor.public_key, dlc, "1000"))
    ok = send(
        distributor,
        lambda t: t.add_hash_memo(b"\x07" * 32).append_payment_op(node.public_key, dlc, "12.5"),
    )
    assert ok["successful"]
    with pytest.raises(BadRequestError) as info:
        send(node, lambda t: t.append_payment_op(distributor.public_key, dlc, "99"))
    assert info.value.extras["result_codes"] == {
        "transaction": "tx_failed",
        "operations": ["op_underfunded"],
    }
    with pytest.raises(NotFoundError):
        sdk.load_account(Keypair.random().public_key)

    account = ledger.load_account(node.public_key)
    assert account.balance(f"DLC:{issuer.public_key}") == 125_000_000
    record = ledger.transaction(ok["hash"])
    assert record.memo_type == "hash" and base64.b64decode(record.memo or "") == b"\x07" * 32
    payments = ledger.account_payments(node.public_key, limit=10).records
    assert [(p.type, p.amount) for p in payments][-1] == ("payment", 125_000_000)
    txs = ledger.account_transactions(node.public_key, limit=2)
    more = ledger.account_transactions(node.public_key, cursor=txs.next_cursor, limit=10)
    assert len(txs.records) == 2 and len(more.records) >= 2
    with pytest.raises(LedgerNotFound):
        ledger.load_account(Keypair.random().public_key)
    # HorizonLedger.submit reports a failed transaction instead of raising
    tx = (
        TransactionBuilder(sdk.load_account(node.public_key), DEFAULT_PASSPHRASE, 100)
        .append_payment_op(distributor.public_key, dlc, "99")
        .set_timeout(60)
        .build()
    )
    tx.sign(node)
    result = ledger.submit(tx.to_xdr())
    assert (result.successful, result.tx_code, result.op_codes) == (
        False,
        "tx_failed",
        ("op_underfunded",),
    )


def test_safe_resubmission_returns_the_original_outcome(served: str) -> None:
    """Horizon's promise: an already-included transaction, posted again, gets the response of
    its first submission (what lets a client that lost the answer resubmit without paying
    twice), for a successful and for an applied-failed one; nothing is charged again."""
    ledger = HorizonLedger(served, DEFAULT_PASSPHRASE, friendbot_url=f"{served}/friendbot")
    sdk = Server(served)
    payer, payee = Keypair.random(), Keypair.random()
    for kp in (payer, payee):
        assert ledger.fund(kp.public_key).successful

    def payment(amount: str):  # type: ignore[no-untyped-def]
        tx = (
            TransactionBuilder(sdk.load_account(payer.public_key), DEFAULT_PASSPHRASE, 100)
            .append_payment_op(payee.public_key, Asset.native(), amount)
            .set_timeout(60)
            .build()
        )
        tx.sign(payer)
        return tx

    ok = payment("5")
    first = sdk.submit_transaction(ok, skip_memo_required_check=True)
    balance = ledger.load_account(payer.public_key).balance()
    again = sdk.submit_transaction(ok, skip_memo_required_check=True)
    assert (again["hash"], again["ledger"], again["successful"]) == (
        first["hash"],
        first["ledger"],
        True,
    )
    assert ledger.load_account(payer.public_key).balance() == balance  # not paid, nor charged

    failing = payment("1000000")  # more than it has: applied, failed, fee charged
    results = [ledger.submit(failing.to_xdr()) for _ in range(2)]
    assert [(r.applied, r.tx_code, r.op_codes, r.ledger) for r in results] == [
        (True, "tx_failed", ("op_underfunded",), results[0].ledger)
    ] * 2
    assert ledger.load_account(payer.public_key).balance() == balance - 100  # one fee only
    stale = payment("2")  # a different transaction with a used sequence number stays rejected
    assert ledger.submit(payment("1").to_xdr()).successful
    assert ledger.submit(stale.to_xdr()).tx_code == "tx_bad_seq"


def test_ten_thousand_bad_requests(served: str) -> None:
    http = requests.Session()
    before = http.get(f"{served}/ledgers", params={"order": "desc", "limit": 1}).json()
    payer, other = Keypair.random(), Keypair.random()
    http.get(f"{served}/friendbot", params={"addr": payer.public_key})
    before = http.get(f"{served}/ledgers", params={"order": "desc", "limit": 1}).json()
    account = Server(served).load_account(payer.public_key)
    tx = (
        TransactionBuilder(account, DEFAULT_PASSPHRASE, 100)
        .append_payment_op(other.public_key, Asset.native(), "1")
        .set_timeout(600)
        .build()
    )
    tx.sign(payer)
    valid = base64.b64decode(tx.to_xdr())
    foreign = (
        TransactionBuilder(account, "Test SDF Network ; September 2015", 100)
        .append_payment_op(other.public_key, Asset.native(), "1")
        .set_timeout(600)
        .build()
    )
    foreign.sign(payer)
    rng = random.Random(1234)

    def mutated() -> str:
        raw = bytearray(valid)
        for position in rng.sample(range(len(raw)), rng.randint(1, 4)):
            raw[position] ^= rng.randrange(1, 256)  # distinct bytes, each really changed
        if rng.random() < 0.3:
            raw = raw[: rng.randrange(len(raw))]
        return base64.b64encode(bytes(raw)).decode()

    bad_paths = [
        "/accounts/GXXX",
        "/accounts/" + "A" * 56,
        "/transactions/zz",
        "/nope",
        "/accounts/" + payer.public_key + "/payments?limit=0",
        "/accounts/" + payer.public_key + "/payments?limit=abc",
        "/accounts/" + payer.public_key + "/transactions?order=sideways",
        "/accounts/" + payer.public_key + "/transactions?cursor=-5",
        "/ledgers?limit=100000",
        "/friendbot?addr=nope",
        "/transactions/" + "0" * 64,
    ]
    statuses: dict[int, int] = {}
    for i in range(10_000):
        kind = i % 6
        if kind == 0:
            resp = http.post(
                f"{served}/transactions",
                data={"tx": base64.b64encode(rng.randbytes(rng.randrange(1, 300)))},
            )
        elif kind == 1:
            resp = http.post(f"{served}/transactions", data={"tx": mutated()})
        elif kind == 2:
            resp = http.post(f"{served}/transactions", data={"tx": foreign.to_xdr()})
        elif kind == 3:
            body = rng.choice([b"x" * 300_000, rng.randbytes(64), b"tx=", b"\xff\xfe=\x00"])
            resp = http.post(f"{served}/transactions", data=body)
        elif kind == 4:
            resp = http.get(served + rng.choice(bad_paths))
        else:
            resp = http.request(rng.choice(["PUT", "DELETE", "PATCH"]), f"{served}/transactions")
        statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
        assert 400 <= resp.status_code < 500, (i, resp.status_code, resp.text[:200])
        assert resp.status_code not in (413, 429)
        assert resp.json()["status"] == resp.status_code
    assert http.get(served).status_code == 200
    after = http.get(f"{served}/ledgers", params={"order": "desc", "limit": 1}).json()
    assert after["_embedded"]["records"][0]["hash"] == before["_embedded"]["records"][0]["hash"]
    assert set(statuses) <= {400, 404, 405}


def test_python_sdk_links_operations_and_result_xdr(served: str) -> None:
    """The JS suite's cases that apply, with stellar_sdk: every result_xdr decodes to the fee
    charged and the per-operation results; the endpoints the links point to exist."""
    from stellar_sdk import xdr

    ledger = HorizonLedger(served, DEFAULT_PASSPHRASE, friendbot_url=f"{served}/friendbot")
    sdk = Server(served)
    payer, payee = Keypair.random(), Keypair.random()
    for kp in (payer, payee):
        assert ledger.fund(kp.public_key).successful

    def submit(kp: Keypair, build) -> dict:  # type: ignore[no-untyped-def]
        tx = build(TransactionBuilder(sdk.load_account(kp.public_key), DEFAULT_PASSPHRASE, 100))
        tx = tx.set_timeout(60).build()
        tx.sign(kp)
        return sdk.submit_transaction(tx, skip_memo_required_check=True)

    def decoded(result_xdr: str) -> tuple[int, str, list[str]]:
        result = xdr.TransactionResult.from_xdr(result_xdr)
        ops = [r.tr.payment_result or r.tr.manage_data_result for r in result.result.results or []]
        return result.fee_charged.int64, result.result.code.name, [o.code.name for o in ops]

    submit(payee, lambda t: t.append_manage_data_op("k", b"v"))
    ok = submit(payer, lambda t: t.append_payment_op(payee.public_key, Asset.native(), "3"))
    assert decoded(ok["result_xdr"]) == (100, "txSUCCESS", ["PAYMENT_SUCCESS"])
    with pytest.raises(BadRequestError) as info:
        submit(payer, lambda t: t.append_payment_op(payee.public_key, Asset.native(), "999999"))
    assert decoded(info.value.extras["result_xdr"]) == (100, "txFAILED", ["PAYMENT_UNDERFUNDED"])

    account = sdk.accounts().account_id(payee.public_key).call()
    links = account["_links"]
    assert links["data"] == {
        "href": f"{served}/accounts/{payee.public_key}/data/{{key}}",
        "templated": True,
    }
    assert links["transactions"]["templated"] and links["operations"]["templated"]
    assert sdk.data(payee.public_key, "k").call()["value"] == "dg=="
    record = sdk.transactions().transaction(ok["hash"]).call()
    assert decoded(record["result_xdr"])[1] == "txSUCCESS"
    assert (
        requests.get(record["_links"]["ledger"]["href"], timeout=10).json()["sequence"]
        == (record["ledger"])
    )
    ops = sdk.operations().for_transaction(ok["hash"]).call()["_embedded"]["records"]
    assert [(o["type"], o["to"], o["amount"]) for o in ops] == [
        ("payment", payee.public_key, "3.0000000")
    ]
    assert sdk.operations().operation(ops[0]["id"]).call()["transaction_hash"] == ok["hash"]
    page = sdk.transactions().for_account(payee.public_key).limit(1).call()
    nxt = requests.get(page["_links"]["next"]["href"], timeout=10).json()
    first, second = page["_embedded"]["records"][0], nxt["_embedded"]["records"][0]
    assert int(second["paging_token"]) > int(first["paging_token"])
    assert sdk.ledgers().ledger(record["ledger"]).call()["hash"]


NON_ASCII_NUMBERS = ["١٢", "²", "１２", "1٢", "٠", "𝟏"]  # all pass str.isdigit()


def test_numeric_parameters_accept_ascii_digits_only(served: str) -> None:
    """Every number in a path or query is ASCII digits: anything else that ``str.isdigit``
    lets through (Arabic-Indic, superscript, full-width digits) is a 400 problem, never a 500
    and never silently read as a number."""
    http = requests.Session()
    payer = Keypair.random()
    assert http.get(f"{served}/friendbot", params={"addr": payer.public_key}).ok
    page = http.get(f"{served}/accounts/{payer.public_key}/transactions").json()
    record = page["_embedded"]["records"][0]
    tx_hash, seq = record["hash"], record["ledger"]
    paged = [
        f"/accounts/{payer.public_key}/transactions",
        f"/accounts/{payer.public_key}/operations",
        f"/accounts/{payer.public_key}/payments",
        "/transactions",
        f"/transactions/{tx_hash}/operations",
        "/ledgers",
        f"/ledgers/{seq}/transactions",
        f"/ledgers/{seq}/operations",
    ]
    asset = f"DLC:{payer.public_key}"
    requests_made = [(p, {"limit": "2"}) for p in paged] + [("/accounts", {"asset": asset})]
    for path, params in requests_made:  # the well-formed request works
        assert http.get(served + path, params=params).status_code == 200, path
    bad: list[tuple[str, dict[str, str]]] = []
    for text in NON_ASCII_NUMBERS:
        bad += [(p, {"limit": text}) for p in paged]
        bad += [(p, {"cursor": text}) for p in paged]
        bad.append(("/accounts", {"asset": asset, "limit": text}))
        bad += [
            (f"/ledgers/{text}", {}),
            (f"/ledgers/{text}/transactions", {}),
            (f"/ledgers/{text}/operations", {}),
            (f"/operations/{text}", {}),
            (f"/operations/{int(record['paging_token']) + 1}{text}", {}),
        ]
    for path, params in bad:
        resp = http.get(served + path, params=params)
        assert resp.status_code == 400, (path, params, resp.status_code, resp.text[:200])
        body = resp.json()
        assert body["status"] == 400 and body["type"].startswith(PROBLEM), body
        assert body["detail"], body
    for path in ("/ledgers/" + "9" * 400, "/operations/" + "9" * 400):  # bounded
        assert http.get(served + path).status_code == 400
    assert http.get(served, params={"limit": "x"}).status_code == 200  # still serving


def test_holders_through_horizon_are_exact_and_bad_assets_are_bad_requests(served: str) -> None:
    ledger = HorizonLedger(served, DEFAULT_PASSPHRASE, friendbot_url=f"{served}/friendbot")
    issuer, holder, lower = Keypair.random(), Keypair.random(), Keypair.random()
    for kp in (issuer, holder, lower):
        assert ledger.fund(kp.public_key).successful
    sdk = Server(served)
    for kp, code in ((holder, "DLC"), (lower, "dlc")):
        tx = (
            TransactionBuilder(sdk.load_account(kp.public_key), DEFAULT_PASSPHRASE, 100)
            .append_change_trust_op(Asset(code, issuer.public_key))
            .set_timeout(60)
            .build()
        )
        tx.sign(kp)
        sdk.submit_transaction(tx, skip_memo_required_check=True)
    page = ledger.holders(f"DLC:{issuer.public_key}")
    assert [a.account_id for a in page.records] == [holder.public_key]
    for bad in (f"D_C:{issuer.public_key}", f"%:{issuer.public_key}", "DLC:nope"):
        with pytest.raises(LedgerError) as info:
            ledger.holders(bad)
        assert not isinstance(info.value, LedgerUnavailableError)
        resp = requests.get(f"{served}/accounts", params={"asset": bad})
        assert resp.status_code == 400 and resp.json()["status"] == 400


# ---------------------------------------------------------------------------- fee bumps, claims
def _friendbot(served: str, *kps: Keypair) -> None:
    for kp in kps:
        resp = requests.get(f"{served}/friendbot", params={"addr": kp.public_key}, timeout=10)
        assert resp.status_code == 200, resp.text


def _signed(sdk: Server, source: Keypair, build, *signers: Keypair):  # type: ignore[no-untyped-def]
    builder = TransactionBuilder(sdk.load_account(source.public_key), DEFAULT_PASSPHRASE, 100)
    tx = build(builder).set_timeout(60).build()
    for kp in signers or (source,):
        tx.sign(kp)
    return tx


def _send(sdk: Server, source: Keypair, build, *signers: Keypair) -> dict:  # type: ignore[no-untyped-def]
    return sdk.submit_transaction(_signed(sdk, source, build, *signers))


def _balance(sdk: Server, kp: Keypair, asset: Asset | None = None) -> str:
    account = sdk.accounts().account_id(kp.public_key).call()
    for b in account["balances"]:
        if asset is None and b["asset_type"] == "native":
            return b["balance"]
        if asset is not None and (b.get("asset_code"), b.get("asset_issuer")) == (
            asset.code,
            asset.issuer,
        ):
            return b["balance"]
    raise AssertionError(f"no {asset} balance on {kp.public_key}")


def _b64_signatures(envelope) -> list[str]:  # type: ignore[no-untyped-def]
    return [base64.b64encode(s.signature).decode() for s in envelope.signatures]


def _problem(resp: requests.Response, status: int = 400) -> dict:
    assert resp.status_code == status, (resp.request.url, resp.status_code, resp.text[:300])
    body = resp.json()
    assert body["status"] == status and body["type"].startswith(PROBLEM), body
    assert body["detail"], body
    return body


def test_python_sdk_fee_bump_pays_for_a_sponsored_zero_xlm_account(served: str) -> None:
    """A 0-XLM account (its reserves sponsored, like a node's pseudonym) cannot pay a fee; a
    fee bump built by stellar_sdk lets it pay out, and Horizon's fee-bump fields come back."""
    from stellar_sdk import xdr

    sdk = Server(served)
    issuer, sponsor, fee_payer, rebidder, dest = (Keypair.random() for _ in range(5))
    _friendbot(served, issuer, sponsor, fee_payer, rebidder, dest)
    dlc = Asset("DLC", issuer.public_key)
    poor = Keypair.random()
    created = _send(
        sdk,
        sponsor,
        lambda b: (
            b.append_begin_sponsoring_future_reserves_op(poor.public_key)
            .append_create_account_op(poor.public_key, "0")
            .append_change_trust_op(dlc, source=poor.public_key)
            .append_end_sponsoring_future_reserves_op(source=poor.public_key)
        ),
        sponsor,
        poor,
    )
    assert created["successful"]
    _send(sdk, dest, lambda b: b.append_change_trust_op(dlc))
    _send(sdk, issuer, lambda b: b.append_payment_op(poor.public_key, dlc, "10"))
    account = sdk.accounts().account_id(poor.public_key).call()
    # the account entry is 2 reserves, its trustline 1: all on the sponsor
    assert (account["num_sponsored"], _balance(sdk, poor)) == (3, "0.0000000")
    assert sdk.accounts().account_id(sponsor.public_key).call()["num_sponsoring"] == 3

    with pytest.raises(BadRequestError) as info:  # on its own it cannot pay the fee
        _send(sdk, poor, lambda b: b.append_payment_op(dest.public_key, dlc, "1"))
    assert info.value.extras["result_codes"]["transaction"] == "tx_insufficient_balance"

    inner = _signed(sdk, poor, lambda b: b.append_payment_op(dest.public_key, dlc, "4"))
    bump = TransactionBuilder.build_fee_bump_transaction(
        fee_payer.public_key, 300, inner, DEFAULT_PASSPHRASE
    )
    bump.sign(fee_payer)
    before = _balance(sdk, fee_payer)
    seq = int(account["sequence"])
    response = sdk.submit_transaction(bump)  # with the SDK's SEP-29 memo check on
    fee_bump_fields = {
        "hash": bump.hash_hex(),
        "successful": True,
        "source_account": poor.public_key,
        "fee_account": fee_payer.public_key,
        "fee_charged": "200",  # min(bid 300 x 2, base fee 100 x (1 op + 1))
        "max_fee": "600",
        "operation_count": 1,
        "signatures": _b64_signatures(bump),
        "fee_bump_transaction": {"hash": bump.hash_hex(), "signatures": _b64_signatures(bump)},
        "inner_transaction": {
            "hash": inner.hash_hex(),
            "signatures": _b64_signatures(inner),
            "max_fee": "100",
        },
    }
    assert {k: response.get(k) for k in fee_bump_fields} == fee_bump_fields
    assert response["result_codes"] == {
        "transaction": "tx_fee_bump_inner_success",
        "inner_transaction": "tx_success",
        "operations": ["op_success"],
    }
    record = sdk.transactions().transaction(bump.hash_hex()).call()
    assert {k: record.get(k) for k in fee_bump_fields} == fee_bump_fields
    assert record["envelope_xdr"] == bump.to_xdr()
    assert record["ledger"] == response["ledger"]

    # the fee account paid the fee; the 0-XLM account paid out and still holds 0 XLM
    assert _stroops(_balance(sdk, fee_payer)) == _stroops(before) - 200
    assert _balance(sdk, poor) == "0.0000000"
    assert (_balance(sdk, poor, dlc), _balance(sdk, dest, dlc)) == ("6.0000000", "4.0000000")
    assert int(sdk.accounts().account_id(poor.public_key).call()["sequence"]) == seq + 1
    fee_payer_txs = sdk.transactions().for_account(fee_payer.public_key).call()
    assert bump.hash_hex() in {t["hash"] for t in fee_payer_txs["_embedded"]["records"]}
    ops = sdk.operations().for_transaction(bump.hash_hex()).call()["_embedded"]["records"]
    assert [(o["type"], o["from"], o["to"], o["amount"]) for o in ops] == [
        ("payment", poor.public_key, dest.public_key, "4.0000000")
    ]

    # found by the inner hash as well: the same fee bump
    by_inner = sdk.transactions().transaction(inner.hash_hex()).call()
    assert (by_inner["ledger"], by_inner["paging_token"]) == (
        record["ledger"],
        record["paging_token"],
    )
    assert by_inner["fee_bump_transaction"] == fee_bump_fields["fee_bump_transaction"]
    assert by_inner["inner_transaction"] == fee_bump_fields["inner_transaction"]

    # result_xdr: txFEE_BUMP_INNER_SUCCESS, naming the inner transaction and its results
    result = xdr.TransactionResult.from_xdr(response["result_xdr"])
    assert result.fee_charged.int64 == 200
    assert result.result.code == xdr.TransactionResultCode.txFEE_BUMP_INNER_SUCCESS
    pair = result.result.inner_result_pair
    assert pair.transaction_hash.hash.hex() == inner.hash_hex()
    assert pair.result.result.code == xdr.TransactionResultCode.txSUCCESS
    assert [r.tr.payment_result.code.name for r in pair.result.result.results] == [
        "PAYMENT_SUCCESS"
    ]
    assert record["result_xdr"] == response["result_xdr"]

    # the same envelope again (a lost answer): the first outcome, not charged twice
    again = sdk.submit_transaction(bump, skip_memo_required_check=True)
    assert (again["hash"], again["ledger"]) == (response["hash"], response["ledger"])
    assert _stroops(_balance(sdk, fee_payer)) == _stroops(before) - 200

    # another fee bump of the same inner transaction: its sequence number is used
    rebid = TransactionBuilder.build_fee_bump_transaction(
        rebidder.public_key, 1000, inner, DEFAULT_PASSPHRASE
    )
    rebid.sign(rebidder)
    rebidder_before = _balance(sdk, rebidder)
    with pytest.raises(BadRequestError) as info:
        sdk.submit_transaction(rebid, skip_memo_required_check=True)
    codes = info.value.extras["result_codes"]
    assert (codes["transaction"], codes["inner_transaction"], codes.get("operations", [])) == (
        "tx_fee_bump_inner_failed",
        "tx_bad_seq",
        [],
    )
    failed = xdr.TransactionResult.from_xdr(info.value.extras["result_xdr"])
    assert failed.fee_charged.int64 == 0
    assert failed.result.code == xdr.TransactionResultCode.txFEE_BUMP_INNER_FAILED
    assert failed.result.inner_result_pair.transaction_hash.hash.hex() == inner.hash_hex()
    assert failed.result.inner_result_pair.result.result.code == (
        xdr.TransactionResultCode.txBAD_SEQ
    )
    assert _balance(sdk, rebidder) == rebidder_before
    assert _balance(sdk, dest, dlc) == "4.0000000"  # paid once


def _stroops(amount: str) -> int:
    whole, _, frac = amount.partition(".")
    return int(whole) * 10_000_000 + int(frac.ljust(7, "0"))


def test_transaction_by_inner_hash_is_named_by_that_hash(served: str) -> None:
    sdk = Server(served)
    source, fee_payer, dest = Keypair.random(), Keypair.random(), Keypair.random()
    _friendbot(served, source, fee_payer, dest)
    inner = _signed(
        sdk, source, lambda b: b.append_payment_op(dest.public_key, Asset.native(), "1")
    )
    bump = TransactionBuilder.build_fee_bump_transaction(
        fee_payer.public_key, 200, inner, DEFAULT_PASSPHRASE
    )
    bump.sign(fee_payer)
    sdk.submit_transaction(bump, skip_memo_required_check=True)
    by_inner = sdk.transactions().transaction(inner.hash_hex()).call()
    assert by_inner["fee_bump_transaction"]["hash"] == bump.hash_hex()
    assert (by_inner["id"], by_inner["hash"], by_inner["signatures"]) == (
        inner.hash_hex(),
        inner.hash_hex(),
        _b64_signatures(inner),
    )
    assert by_inner["_links"]["self"]["href"] == f"{served}/transactions/{inner.hash_hex()}"


def test_python_sdk_claimable_balances_for_a_node_without_an_account(served: str) -> None:
    """A distributor leaves DLC for an account that does not exist yet, and a reclaim for
    itself after a day; stellar_sdk lists them by claimant and sponsor, reads one by the id it
    derives itself, and the claimant claims once it has an account and a trustline."""
    sdk = Server(served)
    issuer, distributor, funder = Keypair.random(), Keypair.random(), Keypair.random()
    _friendbot(served, issuer, distributor, funder)
    dlc = Asset("DLC", issuer.public_key)
    _send(sdk, distributor, lambda b: b.append_change_trust_op(dlc))
    _send(sdk, issuer, lambda b: b.append_payment_op(distributor.public_key, dlc, "1000"))
    node = Keypair.random()  # no account, no trustline
    reclaim = ClaimPredicate.predicate_not(ClaimPredicate.predicate_before_relative_time(86400))
    tx = _signed(
        sdk,
        distributor,
        lambda b: b.append_create_claimable_balance_op(
            dlc, "12.5", [Claimant(node.public_key)]
        ).append_create_claimable_balance_op(dlc, "7", [Claimant(distributor.public_key, reclaim)]),
    )
    created = sdk.submit_transaction(tx)
    assert created["successful"]
    to_node, to_self = (
        tx.transaction.get_claimable_balance_id(0),
        (tx.transaction.get_claimable_balance_id(1)),
    )
    closed_at = sdk.ledgers().ledger(created["ledger"]).call()["closed_at"]
    day_later = (
        int(datetime.strptime(closed_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())
        + 86400
    )

    def listed(builder) -> list[dict]:  # type: ignore[no-untyped-def]
        return builder.call()["_embedded"]["records"]

    (for_node,) = listed(sdk.claimable_balances().for_claimant(node.public_key))
    assert {k: for_node[k] for k in ("id", "asset", "amount", "sponsor", "claimants")} == {
        "id": to_node,
        "asset": f"DLC:{issuer.public_key}",
        "amount": "12.5000000",
        "sponsor": distributor.public_key,
        "claimants": [{"destination": node.public_key, "predicate": {"unconditional": True}}],
    }
    assert for_node["last_modified_ledger"] == created["ledger"]
    assert for_node["_links"]["self"]["href"] == f"{served}/claimable_balances/{to_node}"
    (for_self,) = listed(sdk.claimable_balances().for_claimant(distributor.public_key))
    assert (for_self["id"], for_self["amount"]) == (to_self, "7.0000000")
    assert for_self["claimants"] == [  # the relative time became absolute at creation
        {
            "destination": distributor.public_key,
            "predicate": {
                "not": {
                    "abs_before": datetime.fromtimestamp(day_later, UTC).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    ),
                    "abs_before_epoch": str(day_later),
                }
            },
        }
    ]
    sponsored = listed(sdk.claimable_balances().for_sponsor(distributor.public_key))
    assert [b["id"] for b in sponsored] == sorted([to_node, to_self])
    assert sdk.claimable_balances().claimable_balance(to_node).call() == for_node
    assert sdk.claimable_balances().claimable_balance(to_self.upper()).call()["id"] == to_self
    both = listed(
        sdk.claimable_balances().for_sponsor(distributor.public_key).for_claimant(node.public_key)
    )
    assert [b["id"] for b in both] == [to_node]
    page = sdk.claimable_balances().for_sponsor(distributor.public_key).limit(1).call()
    nxt = requests.get(page["_links"]["next"]["href"], timeout=10).json()
    assert [b["id"] for b in page["_embedded"]["records"] + nxt["_embedded"]["records"]] == (
        sorted([to_node, to_self])
    )
    distributor_now = sdk.accounts().account_id(distributor.public_key).call()
    assert distributor_now["num_sponsoring"] == 2  # one reserve per claimant
    assert _balance(sdk, distributor, dlc) == "980.5000000"
    ops = sdk.operations().for_transaction(created["hash"]).call()["_embedded"]["records"]
    assert [o["type"] for o in ops] == ["create_claimable_balance"] * 2
    assert ops[1]["claimants"][0]["predicate"] == {"not": {"rel_before": "86400"}}

    # the node gets an account and a trustline, then claims
    _send(sdk, funder, lambda b: b.append_create_account_op(node.public_key, "5"))
    _send(sdk, node, lambda b: b.append_change_trust_op(dlc))
    claimed = _send(sdk, node, lambda b: b.append_claim_claimable_balance_op(to_node))
    assert claimed["successful"]
    assert _balance(sdk, node, dlc) == "12.5000000"
    with pytest.raises(NotFoundError):
        sdk.claimable_balances().claimable_balance(to_node).call()
    assert listed(sdk.claimable_balances().for_claimant(node.public_key)) == []
    assert sdk.accounts().account_id(distributor.public_key).call()["num_sponsoring"] == 1
    (claim_op,) = sdk.operations().for_transaction(claimed["hash"]).call()["_embedded"]["records"]
    assert (claim_op["type"], claim_op["balance_id"], claim_op["claimant"]) == (
        "claim_claimable_balance",
        to_node,
        node.public_key,
    )
    with pytest.raises(BadRequestError) as info:  # claimed already
        _send(sdk, node, lambda b: b.append_claim_claimable_balance_op(to_node))
    assert info.value.extras["result_codes"]["operations"] == ["op_does_not_exist"]

    # "not before a day": the distributor cannot take its own back yet
    with pytest.raises(BadRequestError) as info:
        _send(sdk, distributor, lambda b: b.append_claim_claimable_balance_op(to_self))
    assert info.value.extras["result_codes"] == {
        "transaction": "tx_failed",
        "operations": ["op_cannot_claim"],
    }
    assert sdk.claimable_balances().claimable_balance(to_self).call()["amount"] == "7.0000000"

    # bad requests are 400 problems, never 500s
    http = requests.Session()
    good = distributor.public_key
    for params in (
        {},
        {"claimant": ""},
        {"claimant": "GNOPE"},
        {"claimant": "A" * 56},
        {"sponsor": "nope"},
        {"sponsor": good.lower()},
        {"claimant": good, "cursor": "abc"},
        {"claimant": good, "cursor": "-5"},
        {"claimant": good, "cursor": to_node + "00"},
        {"claimant": good, "limit": "0"},
        {"claimant": good, "limit": "abc"},
        {"claimant": good, "limit": "١٢"},
    ):
        _problem(http.get(f"{served}/claimable_balances", params=params, timeout=10))
    for bad_id in ("zz", to_node[:-2], to_node + "00", "g" * 72, "0" * 71 + "%", "٠" * 72):
        _problem(http.get(f"{served}/claimable_balances/{bad_id}", timeout=10))
    _problem(http.get(f"{served}/claimable_balances/{'0' * 72}", timeout=10), 404)
    with pytest.raises(BadRequestError):
        sdk.claimable_balances().claimable_balance("zz").call()
    with pytest.raises(BadRequestError):
        sdk.claimable_balances().for_claimant("GNOPE").call()


def test_horizon_ledger_reads_claimable_balances_and_fee_bumps_back(served: str) -> None:
    """HorizonLedger (what the wallet and the audit use on a URL) reads what the SDK made."""
    from stellar_sdk import Claimant, ClaimPredicate

    from flwr_stellar.ledger.decode import claimable_for

    sdk = Server(served)
    issuer, distributor, payer = Keypair.random(), Keypair.random(), Keypair.random()
    _friendbot(served, issuer, distributor, payer)
    dlc = Asset("DLC", issuer.public_key)
    _send(sdk, distributor, lambda b: b.append_change_trust_op(dlc))
    _send(sdk, issuer, lambda b: b.append_payment_op(distributor.public_key, dlc, "100"))
    node = Keypair.random()
    later = ClaimPredicate.predicate_not(ClaimPredicate.predicate_before_relative_time(3600))
    _send(
        sdk,
        distributor,
        lambda b: b.append_create_claimable_balance_op(
            dlc, "4", [Claimant(node.public_key), Claimant(distributor.public_key, later)]
        ),
    )
    ledger = HorizonLedger(served, DEFAULT_PASSPHRASE)
    (found,) = claimable_for(ledger, node.public_key, f"DLC:{issuer.public_key}")
    assert (found.amount, found.sponsor) == (40_000_000, distributor.public_key)
    now = int(time.time())
    assert found.claimable_by(node.public_key, now)
    assert not found.claimable_by(distributor.public_key, now)  # not before an hour
    assert found.claimable_by(distributor.public_key, now + 7200)
    inner = _signed(sdk, distributor, lambda b: b.append_bump_sequence_op(0))
    bump = TransactionBuilder.build_fee_bump_transaction(
        payer.public_key, 100, inner, DEFAULT_PASSPHRASE
    )
    bump.sign(payer)
    result = ledger.submit(bump.to_xdr())
    assert (result.successful, result.tx_code) == (True, "tx_fee_bump_inner_success")
    record = ledger.transaction(result.hash)
    assert (record.fee_account, record.inner_hash, record.source) == (
        payer.public_key,
        inner.hash_hex(),
        distributor.public_key,
    )
    ledger.close()
