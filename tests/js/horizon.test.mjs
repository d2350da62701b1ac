// The official Stellar JS SDK (Horizon.Server) against `flwr-stellar ledger serve`, unchanged, as
// a wallet or an explorer would use it. HORIZON_URL and NETWORK_PASSPHRASE come from
// tests/test_js_sdk.py, which starts the server on 127.0.0.1.
import assert from "node:assert/strict";
import { before, test } from "node:test";
import {
  Account,
  Asset,
  Horizon,
  Keypair,
  Memo,
  NotFoundError,
  Operation,
  TransactionBuilder,
  xdr,
} from "@stellar/stellar-sdk";

const url = process.env.HORIZON_URL;
const passphrase = process.env.NETWORK_PASSPHRASE;
const server = new Horizon.Server(url, { allowHttp: true });
const issuer = Keypair.random();
const alice = Keypair.random();
const bob = Keypair.random();
let dlc;

async function fund(kp) {
  const response = await fetch(`${url}/friendbot?addr=${kp.publicKey()}`);
  assert.equal(response.status, 200, await response.text());
}

async function build(kp, ops, memo) {
  const account = await server.loadAccount(kp.publicKey());
  const builder = new TransactionBuilder(account, { fee: "100", networkPassphrase: passphrase });
  for (const op of ops) builder.addOperation(op);
  if (memo) builder.addMemo(memo);
  const tx = builder.setTimeout(60).build();
  tx.sign(kp);
  return tx;
}

function decoded(resultXdr) {
  const result = xdr.TransactionResult.fromXDR(resultXdr, "base64");
  return {
    fee: result.feeCharged().toString(),
    code: result.result().switch().name,
    ops: (result.result().results() || []).map((r) => r.tr().value().switch().name),
  };
}

before(async () => {
  await fund(issuer);
  await fund(alice);
  dlc = new Asset("DLC", issuer.publicKey());
});

test("load account: sequence, balances, thresholds and data_attr", async () => {
  const account = await server.loadAccount(alice.publicKey());
  assert.equal(account.accountId(), alice.publicKey());
  assert.match(account.sequenceNumber(), /^\d+$/);
  assert.equal(account.balances[0].asset_type, "native");
  assert.equal(account.balances[0].balance, "10000.0000000");
  assert.deepEqual(account.data_attr, {});
  assert.equal(typeof account.transactions, "function"); // HAL links became methods
  await assert.rejects(server.loadAccount(Keypair.random().publicKey()), NotFoundError);
});

test("create account, trustline, issue, and payments with and without memo", async () => {
  const created = await server.submitTransaction(
    await build(alice, [Operation.createAccount({ destination: bob.publicKey(), startingBalance: "50" })]),
  );
  assert.equal(created.successful, true);
  assert.deepEqual(decoded(created.result_xdr), { fee: "100", code: "txSuccess", ops: ["createAccountSuccess"] });
  await server.submitTransaction(await build(alice, [Operation.changeTrust({ asset: dlc })]));
  await server.submitTransaction(await build(bob, [Operation.changeTrust({ asset: dlc })]));
  const issued = await server.submitTransaction(
    await build(issuer, [Operation.payment({ destination: alice.publicKey(), asset: dlc, amount: "1000" })]),
  );
  assert.deepEqual(decoded(issued.result_xdr).ops, ["paymentSuccess"]);
  // no memo: the SDK's SEP-29 check loads the destination and reads its data_attr
  const plain = await server.submitTransaction(
    await build(alice, [Operation.payment({ destination: bob.publicKey(), asset: dlc, amount: "12.5" })]),
  );
  assert.equal(plain.successful, true);
  // a destination that requires a memo (SEP-29): refused without one, accepted with one
  await server.submitTransaction(
    await build(bob, [Operation.manageData({ name: "config.memo_required", value: "1" })]),
  );
  assert.equal((await server.loadAccount(bob.publicKey())).data_attr["config.memo_required"], "MQ==");
  await assert.rejects(
    server.submitTransaction(
      await build(alice, [Operation.payment({ destination: bob.publicKey(), asset: dlc, amount: "1" })]),
    ),
    (err) => err.name === "AccountRequiresMemoError",
  );
  const withMemo = await server.submitTransaction(
    await build(
      alice,
      [Operation.payment({ destination: bob.publicKey(), asset: dlc, amount: "1" })],
      Memo.text("invoice 7"),
    ),
  );
  assert.equal(withMemo.successful, true);
  const bobNow = await server.loadAccount(bob.publicKey());
  const line = bobNow.balances.find((b) => b.asset_code === "DLC");
  assert.equal(line.balance, "13.5000000");
  const data = await bobNow.data({ key: "config.memo_required" });
  assert.equal(data.value, "MQ==");
});

test("history with link following: ledger(), operations(), account()", async () => {
  const page = await server.transactions().forAccount(bob.publicKey()).order("asc").call();
  assert.ok(page.records.length >= 3);
  const record = page.records.at(-1);
  const ledger = await record.ledger();
  assert.equal(ledger.sequence, record.ledger_attr);
  assert.ok(ledger.closed_at && ledger.hash);
  const ops = await record.operations();
  assert.equal(ops.records[0].type, "payment");
  assert.equal(ops.records[0].to, bob.publicKey());
  assert.equal(ops.records[0].amount, "1.0000000");
  const op = await server.operations().operation(ops.records[0].id).call();
  assert.equal(op.transaction_hash, record.hash);
  const source = await record.account();
  assert.equal(source.id, alice.publicKey());
  const bobOps = await server.operations().forAccount(bob.publicKey()).call();
  assert.ok(bobOps.records.some((o) => o.type === "manage_data" && o.name === "config.memo_required"));
  const payments = await server.payments().forAccount(bob.publicKey()).call();
  assert.ok(payments.records.some((p) => p.type === "create_account" && p.account === bob.publicKey()));
});

test("paging with cursors: next() and prev()", async () => {
  const first = await server.transactions().forAccount(alice.publicKey()).order("asc").limit(2).call();
  assert.equal(first.records.length, 2);
  const second = await first.next();
  assert.ok(second.records.length >= 1);
  assert.notEqual(second.records[0].hash, first.records[1].hash);
  assert.ok(BigInt(second.records[0].paging_token) > BigInt(first.records[1].paging_token));
  const back = await second.prev();
  assert.deepEqual(
    back.records.map((r) => r.hash),
    first.records.map((r) => r.hash).reverse(),
  );
  const ledgers = await server.ledgers().order("desc").limit(1).call();
  const older = await ledgers.next();
  assert.equal(older.records[0].sequence, ledgers.records[0].sequence - 1);
});

test("a failed transaction: result codes and its decoded result_xdr", async () => {
  const tx = await build(bob, [Operation.payment({ destination: alice.publicKey(), asset: dlc, amount: "99" })]);
  const err = await server.submitTransaction(tx).then(
    () => assert.fail("an underfunded payment must fail"),
    (e) => e,
  );
  const extras = err.response.data.extras;
  assert.deepEqual(extras.result_codes, { transaction: "tx_failed", operations: ["op_underfunded"] });
  assert.deepEqual(decoded(extras.result_xdr), { fee: "100", code: "txFailed", ops: ["paymentUnderfunded"] });
  // resubmitted after the answer was "lost": the same failure, not charged again
  const again = await server.submitTransaction(tx).then(() => null, (e) => e);
  assert.deepEqual(again.response.data.extras.result_codes, extras.result_codes);
  // rejected before any ledger (here: a sequence number from the future): not charged
  const account = await server.loadAccount(bob.publicKey());
  const future = new Account(bob.publicKey(), (BigInt(account.sequenceNumber()) + 5n).toString());
  const badSeq = new TransactionBuilder(future, { fee: "100", networkPassphrase: passphrase })
    .addOperation(Operation.bumpSequence({ bumpTo: "0" }))
    .setTimeout(60)
    .build();
  badSeq.sign(bob);
  const rejected = await server.submitTransaction(badSeq).then(() => null, (e) => e);
  assert.equal(rejected.response.data.extras.result_codes.transaction, "tx_bad_seq");
  assert.deepEqual(decoded(rejected.response.data.extras.result_xdr), { fee: "0", code: "txBadSeq", ops: [] });
});

test("safe resubmission returns the original response", async () => {
  const tx = await build(alice, [Operation.payment({ destination: bob.publicKey(), asset: dlc, amount: "2" })], Memo.id("7"));
  const first = await server.submitTransaction(tx);
  const second = await server.submitTransaction(tx);
  assert.equal(second.hash, first.hash);
  assert.equal(second.ledger, first.ledger);
  assert.equal(second.result_xdr, first.result_xdr);
  const record = await server.transactions().transaction(first.hash).call();
  assert.equal(record.memo, "7");
  assert.deepEqual(decoded(record.result_xdr), { fee: "100", code: "txSuccess", ops: ["paymentSuccess"] });
});

test("fee stats and the root", async () => {
  const stats = await server.feeStats();
  assert.equal(stats.last_ledger_base_fee, "100");
  assert.equal(stats.fee_charged.p50, "100");
  assert.equal(await server.fetchBaseFee(), 100);
  const root = await (await fetch(url)).json();
  assert.equal(root.network_passphrase, passphrase);
  assert.ok(root._links.transactions.templated);
});
