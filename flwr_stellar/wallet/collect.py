"""``collect``: every run's earnings to one address, the pseudonyms closed, exactly once.

A pseudonym holds no XLM (its reserves are sponsored), so it cannot pay a fee: each of its
transactions is wrapped in a **fee bump** (CAP-15) that the fee account signs and pays, while
the pseudonym signs only its inner transaction. Per run, from the ledger's state:

- the pseudonym's account exists (sponsored onboarding, payment runs): one inner transaction
  claims any claimable balances naming it, pays the whole coin to the destination, removes
  the trustline and merges the account into the destination, so the sponsor's reserves (2 for
  the account, 1 for the trustline) are released;
- it does not (claimable-payout runs never create it): first the fee account opens it for
  the moment (sponsoring its reserves itself), claims and pays in one transaction; then the
  step above closes it in the next ledger (Stellar refuses to merge an account in the ledger
  that created it).

Exactly once: every transaction is journaled (``signed``) before it is submitted, and its
outcome after; a collection that crashed is resumed by looking each journaled hash up on the
ledger and resubmitting the very same envelope when it is not there (the pseudonym's or the
fee account's sequence number lets it apply at most once); only then is the next step planned,
from the ledger's state, so coin already moved is never planned again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stellar_sdk import (
    AccountMerge,
    Asset,
    BeginSponsoringFutureReserves,
    ChangeTrust,
    ClaimClaimableBalance,
    CreateAccount,
    EndSponsoringFutureReserves,
    Keypair,
    Operation,
    Payment,
    TransactionBuilder,
)

from flwr_stellar.client.journal import COLLECT, Journal
from flwr_stellar.failpoints import failpoint
from flwr_stellar.ledger.amounts import format_amount
from flwr_stellar.ledger.base import (
    Ledger,
    LedgerError,
    LedgerUnavailableError,
    NotFoundError,
    SubmitResult,
)
from flwr_stellar.ledger.tx import BASE_FEE, MAX_OPS, build
from flwr_stellar.wallet.holdings import Holding

CLAIMS_PER_TX = MAX_OPS - 10  # room for the sponsoring sandwich, the payment and the close
MAX_STEPS = 8  # per run: open, claim batches, close


class CollectError(Exception):
    """Collection cannot go on; the message names what to do."""


@dataclass(frozen=True)
class Step:
    """One transaction of a collection, signed and ready to submit.

    Parameters
    ----------
    run_id : int
        The run whose pseudonym it moves.
    pseudonym : str
        That pseudonym.
    kind : {"open", "collect"}
        ``open``: the fee account opens the pseudonym's account, claims and pays;
        ``collect``: a fee-bumped transaction of the pseudonym claims, pays and (when nothing
        is left to claim) closes the account.
    envelope : str
        Base64 envelope (a fee bump for ``collect``).
    tx_hash : str
        Its hash on the ledger (the fee bump's own for ``collect``).
    amount : int
        Stroops of the coin it moves to the destination.
    closes : bool
        Whether it removes the trustline and merges the account.
    operations : tuple of str
        Its operations, for ``--dry-run``.
    """

    run_id: int
    pseudonym: str
    kind: str
    envelope: str
    tx_hash: str
    amount: int
    closes: bool
    operations: tuple[str, ...]

    def describe(self) -> str:
        return (
            f"run {self.run_id} {self.pseudonym[:8]}…: {self.kind} tx {self.tx_hash[:12]}… "
            f"moves {format_amount(self.amount)}"
            + (", closes the account" if self.closes else "")
            + " ["
            + ", ".join(self.operations)
            + "]"
        )


def _asset(asset: str) -> Asset:
    code, issuer = asset.split(":", 1)
    return Asset(code, issuer)


def check_destination(ledger: Ledger, destination: str, assets: set[str]) -> None:
    """CollectError unless ``destination`` exists and has an authorized trustline with room
    for each asset: paying it would fail (op_no_trust) after the claims, for nothing."""
    try:
        account = ledger.load_account(destination)
    except NotFoundError:
        raise CollectError(
            f"destination {destination} is not an account on this ledger: create and fund it "
            "first (it needs XLM for its reserves and, as fee account, the fees)"
        ) from None
    for asset in sorted(assets):
        code, issuer = asset.split(":", 1)
        if issuer == destination:
            continue
        line = next((b for b in account.balances if b.asset == asset), None)
        if line is None:
            raise CollectError(
                f"destination {destination} has no trustline to {asset}: add one from its "
                f"wallet (a ChangeTrust operation for {code} issued by {issuer}), then collect "
                "again"
            )
        if not line.flags & 1:
            raise CollectError(
                f"destination {destination}'s trustline to {asset} is not authorized by the issuer"
            )


def plan(
    holding: Holding,
    ledger: Ledger,
    destination: str,
    fee_account: Keypair,
    pseudonym: Keypair,
    *,
    fee_per_op: int = BASE_FEE,
) -> Step | None:
    """The next transaction collecting ``holding`` (None when nothing is left).

    Parameters
    ----------
    holding : Holding
        The run's pseudonym and what the ledger says it holds now.
    ledger : Ledger
        Where it is.
    destination : str
        Where the coin (and the pseudonym's XLM, if any) goes.
    fee_account : Keypair
        Pays the fees (and, for an ``open`` step, the pseudonym's reserves until it closes).
    pseudonym : Keypair
        The holding's pseudonym, with its secret (``holding.signer(master)``).
    fee_per_op : int
        Stroops bid per operation.
    """
    if pseudonym.public_key != holding.pseudonym:
        raise CollectError(f"run {holding.run_id}: the key given is not its pseudonym's")
    asset, me = _asset(holding.asset), holding.pseudonym
    claims = holding.claimable[:CLAIMS_PER_TX]
    claimed = sum(b.amount for b in claims)
    if not holding.exists:
        if not claims:
            return None
        fee_source = ledger.load_account(fee_account.public_key)
        ops: list[Operation] = [
            BeginSponsoringFutureReserves(me, source=fee_account.public_key),
            CreateAccount(me, "0", source=fee_account.public_key),
            ChangeTrust(asset, source=me),
            EndSponsoringFutureReserves(source=me),
            *(ClaimClaimableBalance(b.id, source=me) for b in claims),
            Payment(destination, asset, format_amount(claimed), source=me),
        ]
        envelope = build(
            ledger, fee_account.public_key, fee_source.sequence, ops, fee_per_op=fee_per_op
        )
        envelope.sign(fee_account)
        envelope.sign(pseudonym)
        return Step(
            holding.run_id,
            me,
            "open",
            envelope.to_xdr(),
            envelope.hash_hex(),
            claimed,
            False,
            _names(ops),
        )
    account = ledger.load_account(me)
    on_line = account.balance(holding.asset)
    has_line = any(b.asset == holding.asset for b in account.balances)
    amount = on_line + claimed
    ops = []
    if claims and not has_line:  # an account someone else made, no trustline: you sponsor one
        ops += [
            BeginSponsoringFutureReserves(me, source=fee_account.public_key),
            ChangeTrust(asset),
            EndSponsoringFutureReserves(),
        ]
    ops += [ClaimClaimableBalance(b.id) for b in claims]
    if amount:
        ops.append(Payment(destination, asset, format_amount(amount)))
    closes = len(claims) == len(holding.claimable) and not account.signers
    if closes and account.num_subentries != (1 if has_line else 0):
        closes = False  # entries we did not make (another trustline, data): leave it open
    if closes:
        if has_line or claims:
            ops.append(ChangeTrust(asset, "0"))
        ops.append(AccountMerge(destination))
    if not ops:
        return None
    inner = build(ledger, me, account.sequence, ops, fee_per_op=fee_per_op)
    inner.sign(pseudonym)
    if claims and not has_line:
        inner.sign(fee_account)  # the source of the sponsoring operation
    bump = TransactionBuilder.build_fee_bump_transaction(
        fee_account.public_key, fee_per_op, inner, ledger.network_passphrase
    )
    bump.sign(fee_account)
    return Step(
        holding.run_id,
        me,
        "collect",
        bump.to_xdr(),
        bump.hash_hex(),
        amount,
        closes,
        _names(ops),
    )


def _names(ops: list[Operation]) -> tuple[str, ...]:
    return tuple(type(op).__name__ for op in ops)


def _entry(step: Step, state: str, **extra: object) -> dict[str, object]:
    return {
        "kind": COLLECT,
        "run_id": step.run_id,
        "pseudonym": step.pseudonym,
        "step": step.kind,
        "tx_hash": step.tx_hash,
        "envelope": step.envelope,
        "amount": step.amount,
        "state": state,
        **extra,
    }


def _journaled_step(entry: dict[str, object]) -> Step:
    amount = entry.get("amount", 0)
    return Step(
        int(str(entry["run_id"])),
        str(entry["pseudonym"]),
        str(entry["step"]),
        str(entry["envelope"]),
        str(entry["tx_hash"]),
        amount if type(amount) is int else 0,
        False,
        (),
    )


def _record(journal: Journal, step: Step, result: SubmitResult) -> None:
    if result.successful:
        journal.append(_entry(step, "done", ledger=result.ledger or 0))
    elif result.applied:
        codes = ",".join(c for c in (result.tx_code, result.inner_tx_code, *result.op_codes) if c)
        journal.append(_entry(step, "failed", codes=codes))
    else:  # never applied, and with its sequence number taken or its time up, never will
        codes = ",".join(c for c in (result.tx_code, result.inner_tx_code) if c)
        journal.append(_entry(step, "dead", codes=codes))


def settle_journaled(journal: Journal, ledger: Ledger, run_id: int) -> list[Step]:
    """Finish what a crashed collection left: every journaled ``signed`` transaction without
    an outcome is looked up by hash, else its very envelope is resubmitted (it applies once or
    never); returns the steps that applied now."""
    entries = journal.entries(run_id, COLLECT)
    settled = {e["tx_hash"] for e in entries if e["state"] != "signed"}
    applied = []
    for entry in entries:
        if entry["state"] != "signed" or entry["tx_hash"] in settled:
            continue
        step = _journaled_step(entry)
        try:
            record = ledger.transaction(step.tx_hash)
        except NotFoundError:
            record = None
        if record is not None:
            state = "done" if record.successful else "failed"
            journal.append(_entry(step, state, ledger=record.ledger))
        else:
            try:
                result = ledger.submit(step.envelope)
            except LedgerUnavailableError:
                raise  # outcome unknown: the next collect looks it up again
            except LedgerError as err:  # not an envelope (a hand-edited journal): never applies
                journal.append(_entry(step, "dead", codes=f"refused: {err}"[:200]))
                settled.add(step.tx_hash)
                continue
            _record(journal, step, result)
            if result.successful:
                applied.append(step)
        settled.add(step.tx_hash)
    return applied


def collect(
    journal: Journal,
    runs: list[Holding],
    ledger: Ledger,
    destination: str,
    fee_account: Keypair,
    signer: Callable[[Holding], Keypair],
    *,
    refresh: Callable[[Holding], Holding],
    dry_run: bool = False,
    report: Callable[[str], None] = print,
    fee_per_op: int = BASE_FEE,
) -> list[Step]:
    """Collect every run of ``runs`` into ``destination``; return the steps that applied.

    Parameters
    ----------
    journal : Journal
        The node's journal: collection transactions are journaled in it.
    runs : list of Holding
        What to collect (from :func:`~flwr_stellar.wallet.holdings.holdings`).
    ledger : Ledger
        Where.
    destination : str
        Receives the coin; it must trust it already.
    fee_account : Keypair
        Signs and pays the fee bumps.
    signer : callable
        A holding's pseudonym keypair (``lambda h: h.signer(master)``).
    refresh : callable
        Re-reads a holding from the ledger (after each step).
    dry_run : bool
        Print the first transaction of each run instead of submitting anything.
    report : callable
        Where progress lines go.

    Raises
    ------
    CollectError
        The destination cannot receive the coin, or the ledger refused a step.
    """
    check_destination(ledger, destination, {h.asset for h in runs if h.total})
    done: list[Step] = []
    for holding in runs:
        if not dry_run:
            for resumed in settle_journaled(journal, ledger, holding.run_id):
                report(f"resumed: {resumed.describe()}")
                done.append(resumed)
            holding = refresh(holding)
        for _ in range(MAX_STEPS):
            step = plan(
                holding, ledger, destination, fee_account, signer(holding), fee_per_op=fee_per_op
            )
            if step is None:
                break
            if dry_run:
                report(f"would submit: {step.describe()}\n  {step.envelope}")
                if step.kind == "open":
                    report("  then: a fee-bumped transaction closing the account")
                break
            journal.append(_entry(step, "signed"))
            failpoint("wallet.before_submit")
            try:
                result = ledger.submit(step.envelope)
            except LedgerError:
                raise  # outcome unknown: the next collect looks the journaled hash up
            failpoint("wallet.after_submit")  # applied, its outcome not journaled yet
            _record(journal, step, result)
            if not result.successful:
                codes = ", ".join(
                    c for c in (result.tx_code, result.inner_tx_code, *result.op_codes) if c
                )
                raise CollectError(f"run {holding.run_id}: the ledger refused {step.kind}: {codes}")
            report(step.describe())
            done.append(step)
            holding = refresh(holding)
        else:
            raise CollectError(f"run {holding.run_id}: still not collected after {MAX_STEPS} steps")
    return done
