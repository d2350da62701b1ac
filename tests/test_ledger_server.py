"""`flwr-stellar ledger serve` on 127.0.0.1, used by the real stellar_sdk.Server (through
HorizonLedger) and hammered with 10,000 malformed requests."""

import base64
import random

import pytest
import requests
from ledger_helpers import serve_ledger
from stellar_sdk import Asset, Keypair, Server, TransactionBuilder
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
