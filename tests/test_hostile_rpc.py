"""Hostile review of Stellar RPC, both ends.

The server (``ledger serve``'s ``POST /rpc``): batches of expensive calls, deep JSON, paging at
every page size. The client (``RpcLedger``) and the anchoring worker behind it, against a
server that lies or lags: SUCCESS with another transaction's envelope, ``tx_bad_seq`` for a
transaction its index has not ingested yet, a rejection code for an envelope it applied, a
NOT_FOUND just before the transaction lands, another network's server, a retention window that
moves between two calls, endless or repeated pages, PENDING forever. Each attack must end in
"paid exactly once" or "outcome unknown" (LedgerUnavailableError: the outbox settles it later),
never in a second payment, a skipped one, or a crashed run.

Servers run in this process (uvicorn in a thread) so the tests stay fast; a small proxy in
front of a real one rewrites chosen answers.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
from anchor_world import manifest, pseudonyms, setup, treasury
from ledger_helpers import Chain, pay

from flwr_stellar.ledger.base import (
    LedgerCongestedError,
    LedgerError,
    LedgerUnavailableError,
    NotFoundError,
    SubmitResult,
    TxRecord,
)
from flwr_stellar.ledger.embedded import DEFAULT_PASSPHRASE, EmbeddedLedger
from flwr_stellar.ledger.result_xdr import build_result_xdr
from flwr_stellar.ledger.rpc import RpcLedger
from flwr_stellar.ledger.server import create_app
from flwr_stellar.payments import anchoring
from flwr_stellar.payments.anchoring import Anchorer
from flwr_stellar.payments.manifest import ManifestStore
from flwr_stellar.payments.outbox import Outbox

P = DEFAULT_PASSPHRASE
Answer = dict[str, Any]
Hook = Callable[[str, dict[str, Any], Callable[[], Answer]], Answer]


# ---------------------------------------------------------------------------- servers
@contextlib.contextmanager
def in_process(ledger: EmbeddedLedger, retention: int | None = None) -> Iterator[str]:
    """``ledger serve``'s app over ``ledger`` on a free loopback port, in a thread."""
    app = create_app(ledger, rpc_retention_window=retention)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def proxy(real_rpc: str | None, hook: Hook) -> Iterator[str]:
    """A JSON-RPC endpoint that answers ``hook(method, params, forward)``; ``forward()`` is the
    real server's answer (sending the request to it)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))

            def forward() -> Answer:
                assert real_rpc is not None
                return dict(requests.post(real_rpc, json=body, timeout=30).json())

            answer = hook(body["method"], body.get("params") or {}, forward)
            text = json.dumps({"jsonrpc": "2.0", "id": body.get("id")} | answer).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/rpc"
    finally:
        server.shutdown()
        server.server_close()


def post(url: str, body: Any) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.post(
        url + "/rpc",
        data=json.dumps(body),
        headers={"content-type": "application/json"},
        timeout=120,
    )
    return response, time.monotonic() - started


@pytest.fixture(scope="module")
def busy() -> Chain:
    """A ledger of 60 ledgers, each holding one 100-payment transaction (heavy metadata)."""
    chain = Chain()
    source = chain.funded()
    payees = [chain.funded() for _ in range(100)]
    for _ in range(60):
        assert chain.submit(source, *[pay(p, "1") for p in payees]).successful
    return chain


# ---------------------------------------------------------------------------- the server
def test_a_batch_of_expensive_calls_is_held_to_one_pages_work(busy: Chain) -> None:
    """Attack: one 30 KB POST holding 100 getLedgers (or getTransactions) of 200 each. Each
    request alone is within stellar-rpc's limits, but the batch made the single-threaded server
    build 20,000 ledger metas (~95 s, a 120 MB answer) while every other client waited. Now a
    batch may cost what one full page costs: the requests past that budget are answered with
    an error (and not run), those within it are answered normally."""
    for method, params in (
        ("getLedgers", {"startLedger": 2, "pagination": {"limit": 200}}),
        ("getTransactions", {"startLedger": 2, "pagination": {"limit": 200}}),
    ):
        batch = [
            {"jsonrpc": "2.0", "id": i, "method": method, "params": params} for i in range(100)
        ]
        with in_process(busy.ledger) as url:
            response, took = post(url, batch)
        assert response.status_code == 200
        answers = response.json()
        assert len(answers) == 100 and [a["id"] for a in answers] == list(range(100))
        ran = [a for a in answers if "result" in a]
        refused = [a for a in answers if "error" in a]
        assert len(ran) >= 1 and len(ran) + len(refused) == 100
        assert all(a["error"]["code"] == -32600 for a in refused)
        assert "budget" in refused[0]["error"]["message"]
        assert took < 15, f"{method}: {took:.1f} s for one POST"
        assert len(response.content) < 10_000_000
    # cheap batches are untouched: 100 getHealth in one POST all run
    with in_process(busy.ledger) as url:
        batch = [{"jsonrpc": "2.0", "id": i, "method": "getHealth"} for i in range(100)]
        answers = post(url, batch)[0].json()
    assert all("result" in a for a in answers)


def test_deep_json_in_params_is_invalid_params_not_an_internal_error(busy: Chain) -> None:
    """Held: JSON nested up to the parser's limit inside a parameter is refused by type
    (-32602); deeper than that, a parse error. Neither is a -32603 (which a client retries)."""
    deep: Any = {"a": 1}
    for _ in range(900):
        deep = [deep]
    with in_process(busy.ledger) as url:
        for params in ({"hash": deep}, {"keys": deep}, {"pagination": deep}, {"startLedger": deep}):
            method = {"hash": "getTransaction", "keys": "getLedgerEntries"}.get(
                next(iter(params)), "getTransactions"
            )
            answer = post(url, {"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
            assert answer[0].json()["error"]["code"] == -32602, answer[0].text[:200]
        text = '{"jsonrpc": "2.0", "id": 1, "method": "getHealth", "params": ' + "[" * 50_000
        response = requests.post(
            url + "/rpc", data=text, headers={"content-type": "application/json"}, timeout=30
        )
        assert response.status_code == 200 and response.json()["error"]["code"] == -32700


def test_get_transactions_pages_neither_skip_nor_repeat(tmp_path: Path) -> None:
    """Held: ledgers of 1-4 transactions, paged with every limit 1..9 by cursor, then from
    every startLedger: exactly the ledger's transactions in order, as the Horizon view lists
    them."""
    chain = Chain()
    accounts = [chain.funded() for _ in range(5)]
    for i in range(12):
        sources = accounts[: 1 + i % 4]
        chain.ledger.submit_many([chain.build(s, pay(accounts[-1], "1")) for s in sources])
    truth = [t.hash for t in chain.ledger.transactions(limit=200).records]
    with in_process(chain.ledger) as url:
        server = RpcLedger(url + "/rpc", P).server
        for limit in range(1, 10):
            page = server.get_transactions(start_ledger=2, limit=limit)
            seen = [t.transaction_hash for t in page.transactions]
            while page.transactions:
                page = server.get_transactions(cursor=page.cursor, limit=limit)
                seen += [t.transaction_hash for t in page.transactions]
            assert seen == truth, limit
        latest = chain.ledger.latest_ledger()["seq"]
        for start in range(2, latest + 1):
            page = server.get_transactions(start_ledger=start, limit=200)
            expected = [
                t.hash for t in chain.ledger.transactions(limit=200).records if t.ledger >= start
            ]
            assert [t.transaction_hash for t in page.transactions] == expected


# ---------------------------------------------------------------------------- the client
def answers_of(url: str, envelope: str) -> tuple[str, Answer]:
    """(hash, getTransaction result) of ``envelope`` applied through ``url``'s RPC."""
    ledger = RpcLedger(url + "/rpc", P)
    result = ledger.submit(envelope)
    assert result.successful
    found = requests.post(
        url + "/rpc",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "getTransaction",
            "params": {"hash": result.hash},
        },
        timeout=10,
    ).json()["result"]
    return result.hash, found


def test_success_with_another_envelope_is_not_our_payment() -> None:
    """Attack: after sendTransaction, getTransaction answers SUCCESS for our hash with the
    envelope (and result) of another transaction, e.g. one the distributor made earlier. The
    client took it as our payment applied: the anchoring worker would mark the round paid.
    Now an answer whose envelope does not hash to the hash asked for is a malformed answer
    (outcome unknown), both in submit and in transaction()."""
    chain = Chain()
    payer, payee = chain.funded(), chain.funded()
    with in_process(chain.ledger) as url:
        _, other = answers_of(url, chain.build(payer, pay(payee, "1")))
        ours = chain.build(payer, pay(payee, "2"))
        ours_hash = RpcLedger(url + "/rpc", P)._read_envelope(ours)[0]

        mode = {"relabel": True}

        def lie(method: str, params: dict[str, Any], forward: Callable[[], Answer]) -> Answer:
            if method == "sendTransaction":  # taken, but never sent on
                return {"result": {"status": "PENDING", "hash": ours_hash, "latestLedger": 3,
                                   "latestLedgerCloseTime": "1"}}  # fmt: skip
            if method == "getTransaction":  # our hash, or the other's, on its envelope
                named = params["hash"] if mode["relabel"] else other["txHash"]
                return {"result": other | {"txHash": named}}
            return forward()

        for mode["relabel"] in (True, False):
            with proxy(url + "/rpc", lie) as lying:
                ledger = RpcLedger(lying, P, poll_timeout_s=2)
                with pytest.raises(LedgerUnavailableError, match=r"envelope|hash"):
                    ledger.submit(ours)
                with pytest.raises(LedgerUnavailableError, match=r"envelope|hash"):
                    ledger.transaction(ours_hash)
        with pytest.raises(NotFoundError):  # it never reached the ledger
            chain.ledger.transaction(ours_hash)


def test_bad_seq_before_the_index_has_the_transaction_is_not_dead() -> None:
    """Attack (a real race, no lie needed): our envelope applied, its answer was lost, and we
    send it again. stellar-core answers tx_bad_seq (the sequence is used: by us), while the
    RPC's transaction index has not ingested that ledger yet: getTransaction says NOT_FOUND.
    The client reported tx_bad_seq, not applied: the anchoring worker rebuilds with the next
    sequence and pays the round twice. Now a NOT_FOUND counts only once the index has reached
    the ledger the account's state was read at; until then, the outcome is unknown."""
    chain = Chain()
    payer, payee = chain.funded(), chain.funded()
    with in_process(chain.ledger) as url:
        envelope = chain.build(payer, pay(payee, "5"))
        tx_hash, found = answers_of(url, envelope)  # applied; "its answer was lost"
        lag = {"left": 3}

        def lagging(method: str, params: dict[str, Any], forward: Callable[[], Answer]) -> Answer:
            if method == "sendTransaction":  # what stellar-core says to an applied envelope
                real = forward()["result"]
                bad_seq = build_result_xdr(envelope, 0, "tx_bad_seq", ())
                return {"result": real | {"status": "ERROR", "errorResultXdr": bad_seq}}
            if method == "getTransaction" and lag["left"] > 0:
                lag["left"] -= 1
                real = forward()["result"]
                behind = found["ledger"] - 1  # one ledger behind the state that said bad_seq
                keep = ("oldestLedger", "oldestLedgerCloseTime", "latestLedgerCloseTime")
                return {
                    "result": {k: real[k] for k in keep}
                    | {"status": "NOT_FOUND", "txHash": params["hash"], "latestLedger": behind}
                }
            return forward()

        with proxy(url + "/rpc", lagging) as lagged:
            result = RpcLedger(lagged, P, poll_timeout_s=10).submit(envelope)
        assert result.applied and result.successful and result.hash == tx_hash
        lag["left"] = 10**6  # an index that never catches up: unknown, never "dead"
        with proxy(url + "/rpc", lagging) as lagged, pytest.raises(LedgerUnavailableError):
            RpcLedger(lagged, P, poll_timeout_s=0.5).submit(envelope)


def test_a_server_of_another_network_is_refused_for_reads_too() -> None:
    """Attack: the worker's RPC URL points at another network's server (a second `ledger
    serve`, testnet instead of the local one). The client refused it only before signing;
    reads went through: getTransaction NOT_FOUND (the hash is of another network) and the
    distributor's sequence there "consumed" make the worker rebuild the round, forgetting the
    envelope that may have applied on the right network, and pay it again there later. Now
    reads refuse a server whose getNetwork names another passphrase than the one configured;
    a reader that named none (an audit) still adopts the server's."""
    here = Chain()
    kp = here.funded()
    other = EmbeddedLedger(":memory:", "another network ; 2026")
    assert other.fund(kp.public_key).successful
    with in_process(other) as url:
        wrong = RpcLedger(url + "/rpc", P)
        for call in (
            lambda: wrong.load_account(kp.public_key),
            lambda: wrong.transaction("ab" * 32),
            lambda: wrong.history_begins(),
            lambda: wrong.account_transactions(kp.public_key),
        ):
            with pytest.raises(LedgerError, match="serves the network") as info:
                call()
            assert not isinstance(info.value, LedgerUnavailableError)
        reader = RpcLedger(url + "/rpc")  # no passphrase named: reads that server's
        assert reader.load_account(kp.public_key).sequence > 0


def moving_window_ledger(url: str, chain: Chain, closes: int) -> RpcLedger:
    """An RpcLedger whose getHealth answer is followed by ``closes`` new ledgers (the window
    moves on) before the client's next request, once."""
    ledger = RpcLedger(url + "/rpc", P)
    real = ledger.server.get_health
    left = {"times": 1}

    def get_health() -> Any:
        answer = real()
        if left["times"]:
            left["times"] -= 1
            for _ in range(closes):
                chain.funded()
        return answer

    ledger.server.get_health = get_health  # type: ignore[method-assign]
    return ledger


def test_a_window_that_moves_between_two_calls_is_not_an_error() -> None:
    """Attack (a real race on any live network: the oldest ledger is pruned at every close):
    getHealth names oldestLedger N, a ledger closes, and the next call asks for ledger N.
    history_begins (getLedgers from N) and every history scan (getTransactions from N) got
    -32600 "start ledger must be between...", a LedgerError: out of _resolve_signed and
    journal_stored it stopped the anchoring worker and with it the run. Now history_begins
    asks within the window (its latest ledger) and reads the oldest from the answer; a scan
    whose start was pruned meanwhile starts again at the new oldest ledger."""
    chain = Chain()
    kp = chain.funded()
    for _ in range(4):
        chain.funded()
    with in_process(chain.ledger, retention=3) as url:
        begins = moving_window_ledger(url, chain, 2).history_begins()
        oldest = chain.ledger.latest_ledger()["seq"] - 2
        assert begins == chain.ledger.header(oldest)["close_time"]
        assert chain.submit(kp, pay(kp, "1")).successful  # one transaction of kp's in the window
        scan = moving_window_ledger(url, chain, 2)
        page = scan.account_transactions(kp.public_key, limit=10)
        assert [t.hash for t in page.records] == [
            t.hash
            for t in chain.ledger.account_transactions(kp.public_key, limit=200).records
            if t.ledger >= chain.ledger.latest_ledger()["seq"] - 2
        ]


def test_endless_or_repeated_pages_end_the_scan() -> None:
    """Attack: a server whose getTransactions keeps answering the same transaction with a new
    cursor each time (or pages that go backwards). The scan followed the cursor forever (the
    worker's journal_stored and every audit hung). Now transactions must come in strictly
    increasing order across pages; a repeat is a malformed answer after one extra request."""
    chain = Chain()
    payer = chain.funded()
    with in_process(chain.ledger) as url:
        _, found = answers_of(url, chain.build(payer, pay(payer, "1")))
    calls = {"getTransactions": 0}
    fields = ("status", "txHash", "applicationOrder", "feeBump", "envelopeXdr", "resultXdr")
    one = {k: found[k] for k in (*fields, "resultMetaXdr", "ledger")}
    one["createdAt"] = int(found["createdAt"])

    def endless(method: str, params: dict[str, Any], forward: Callable[[], Answer]) -> Answer:
        if method == "getNetwork":
            return {"result": {"passphrase": P, "protocolVersion": 22, "friendbotUrl": ""}}
        if method == "getHealth":
            return {"result": {"status": "healthy", "latestLedger": 1000, "oldestLedger": 1,
                               "ledgerRetentionWindow": 1000}}  # fmt: skip
        calls["getTransactions"] += 1
        if calls["getTransactions"] > 50:
            return {"error": {"code": -32603, "message": "the test's end"}}
        window = {"latestLedger": 1000, "latestLedgerCloseTimestamp": 1, "oldestLedger": 1,
                  "oldestLedgerCloseTimestamp": 1}  # fmt: skip
        return {
            "result": window
            | {"transactions": [one], "cursor": str(1000 + calls["getTransactions"])}
        }

    with proxy(None, endless) as url, pytest.raises(LedgerUnavailableError, match=r"repeat"):
        RpcLedger(url, P).account_transactions(payer.public_key, limit=10)
    assert calls["getTransactions"] <= 2


def test_pending_forever_and_inconsistent_answers_are_outcome_unknown() -> None:
    """Held: PENDING and NOT_FOUND forever is congestion after poll_timeout_s (the same
    envelope may be resubmitted); FAILED with a successful result, or SUCCESS without a ledger,
    is a malformed answer."""
    chain = Chain()
    payer = chain.funded()
    envelope = chain.build(payer, pay(payer, "1"))
    with in_process(chain.ledger) as url:
        tx_hash, found = answers_of(url, chain.build(payer, pay(payer, "2")))
        pending_hash = RpcLedger(url + "/rpc", P)._read_envelope(envelope)[0]

        def stuck(method: str, params: dict[str, Any], forward: Callable[[], Answer]) -> Answer:
            if method == "sendTransaction":
                return {"result": {"status": "PENDING", "hash": pending_hash, "latestLedger": 3,
                                   "latestLedgerCloseTime": "1"}}  # fmt: skip
            if method == "getTransaction" and params["hash"] != pending_hash:
                return {"result": variant["answer"]}
            return forward()  # the pending one: NOT_FOUND, for ever

        variant: dict[str, Answer] = {}
        with proxy(url + "/rpc", stuck) as lying:
            started = time.monotonic()
            with pytest.raises(LedgerCongestedError):
                RpcLedger(lying, P, poll_timeout_s=0.5).submit(envelope)
            assert time.monotonic() - started < 5
            for variant["answer"] in (found | {"status": "FAILED"}, found | {"ledger": None}):
                with pytest.raises(LedgerUnavailableError):
                    RpcLedger(lying, P).transaction(tx_hash)


# ---------------------------------------------------------------------------- the worker
class Wrapped:
    """An embedded ledger behind a link whose answers a test rewrites."""

    def __init__(self, db: Path) -> None:
        self.inner = EmbeddedLedger(db)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class LiesDead(Wrapped):
    """Applies the first envelope but answers tx_too_late (not applied): a lying or confused
    server. Rebuilding then signs the next sequence and pays again."""

    lied = False

    def submit(self, envelope_xdr: str) -> SubmitResult:
        result = self.inner.submit(envelope_xdr)
        if LiesDead.lied:
            return result
        LiesDead.lied = True
        assert result.successful
        return SubmitResult(
            hash=result.hash, successful=False, applied=False, ledger=None, fee_charged=0,
            tx_code="tx_too_late", op_codes=(), envelope_xdr=envelope_xdr, result_xdr="",
        )  # fmt: skip


class LandsAfterTheLookup(Wrapped):
    """The first submission is lost before it reaches the ledger (outcome unknown); the
    envelope then lands (it was in a queue) just after the worker's first lookup of its hash
    answered NOT_FOUND, before it reads the account's sequence."""

    pending: str | None = None

    def submit(self, envelope_xdr: str) -> SubmitResult:
        if LandsAfterTheLookup.pending is None:
            LandsAfterTheLookup.pending = envelope_xdr
            raise LedgerUnavailableError("timed out before an answer (test)")
        return self.inner.submit(envelope_xdr)

    def transaction(self, tx_hash: str) -> TxRecord:
        try:
            return self.inner.transaction(tx_hash)
        finally:
            if LandsAfterTheLookup.pending:  # lands once, right after this lookup
                self.inner.submit(LandsAfterTheLookup.pending)
                LandsAfterTheLookup.pending = ""


def paid_by_rounds(db: Path) -> list[int]:
    ledger = EmbeddedLedger(db)
    try:
        return [
            ledger.load_account(kp.public_key).balance(treasury().asset_id) for kp in pseudonyms(2)
        ]
    finally:
        ledger.close()


@pytest.mark.parametrize("link", [LiesDead, LandsAfterTheLookup])
def test_the_worker_pays_once_whatever_the_link_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, link: type[Wrapped]
) -> None:
    """Attacks on the anchoring worker's rebuild decision (backend-independent):
    - LiesDead: a rejection code (tx_too_late) for an envelope that applied. The worker reset
      the entry and rebuilt it with the next sequence: paid twice. Now a "dead" answer is
      rebuilt at once only while the envelope's own sequence is still unused (the rebuilt one
      then takes the same sequence, so at most one can ever apply); otherwise the envelope is
      settled by hash first.
    - LandsAfterTheLookup: NOT_FOUND, then the envelope applies, then the worker reads the
      sequence (consumed) and rebuilt: paid twice. Now a consumed sequence is followed by a
      second lookup of the hash before anything is rebuilt."""
    monkeypatch.setattr(anchoring, "BACKOFF_START_S", 0.01)
    link.lied = False  # type: ignore[attr-defined]
    link.pending = None  # type: ignore[attr-defined]
    db = tmp_path / "ledger.db"
    setup(db, 2)
    before = paid_by_rounds(db)
    worker = Anchorer(
        lambda: link(db),  # type: ignore[arg-type]
        treasury(),
        Outbox(tmp_path / "outbox.db"),
        ManifestStore(tmp_path / "m"),
    )
    worker.start()
    worker.submit_round(manifest(1, pseudonyms(2)))
    worker.drain(timeout=20)
    (entry,) = worker.outbox.entries()
    assert entry.state == "done", entry
    assert [a - b for a, b in zip(paid_by_rounds(db), before, strict=True)] == [8, 8]
