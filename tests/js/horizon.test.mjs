// The official Stellar JS SDK (Horizon.Server) against `flwr-stellar ledger serve`, unchanged, as
// a wallet or an explorer would use it. HORIZON_URL and NETWORK_PASSPHRASE come from
// tests/test_js_sdk.py, which starts the server on 127.0.0.1.
import assert from "node:assert/strict";
import { before, test } from "node:test";
import {
  Account,
  Asset,
  Claimant,
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

// ---------------------------------------------------------------- fee bumps and claimable balances
async function balanceOf(kp, asset) {
  const account = await server.loadAccount(kp.publicKey());
  const line = account.balances.find((b) =>
    asset ? b.asset_code === asset.getCode() && b.asset_issuer === asset.getIssuer() : b.asset_type === "native",
  );
  assert.ok(line, `no balance of ${asset ? asset.getCode() : "XLM"} on ${kp.publicKey()}`);
  return line.balance;
}

function failure(promise) {
  return promise.then(
    () => assert.fail("the submission must fail"),
    (e) => e.response.data.extras,
  );
}

const b64signatures = (tx) => tx.signatures.map((s) => s.signature().toString("base64"));
const stroops = (amount) => BigInt(amount.replace(".", ""));

test("fee bump: a sponsored 0-XLM account pays out, another account pays the fee", async () => {
  const [sponsor, feePayer, rebidder, dest] = [Keypair.random(), Keypair.random(), Keypair.random(), Keypair.random()];
  for (const kp of [sponsor, feePayer, rebidder, dest]) await fund(kp);
  const poor = Keypair.random();
  const sponsored = await build(sponsor, [
    Operation.beginSponsoringFutureReserves({ sponsoredId: poor.publicKey() }),
    Operation.createAccount({ destination: poor.publicKey(), startingBalance: "0" }),
    Operation.changeTrust({ asset: dlc, source: poor.publicKey() }),
    Operation.endSponsoringFutureReserves({ source: poor.publicKey() }),
  ]);
  sponsored.sign(poor);
  assert.equal((await server.submitTransaction(sponsored)).successful, true);
  await server.submitTransaction(await build(dest, [Operation.changeTrust({ asset: dlc })]));
  await server.submitTransaction(
    await build(issuer, [Operation.payment({ destination: poor.publicKey(), asset: dlc, amount: "10" })]),
  );
  assert.equal(await balanceOf(poor), "0.0000000");
  const alone = await failure(
    server.submitTransaction(
      await build(poor, [Operation.payment({ destination: dest.publicKey(), asset: dlc, amount: "1" })]),
    ),
  );
  assert.equal(alone.result_codes.transaction, "tx_insufficient_balance");

  const inner = await build(poor, [Operation.payment({ destination: dest.publicKey(), asset: dlc, amount: "4" })]);
  const bump = TransactionBuilder.buildFeeBumpTransaction(feePayer, "300", inner, passphrase);
  bump.sign(feePayer);
  const before = await balanceOf(feePayer);
  const response = await server.submitTransaction(bump); // with the SDK's SEP-29 memo check
  const expected = {
    hash: bump.hash().toString("hex"),
    successful: true,
    source_account: poor.publicKey(),
    fee_account: feePayer.publicKey(),
    fee_charged: "200", // min(bid 300 x 2, base fee 100 x (1 op + 1))
    max_fee: "600",
    fee_bump_transaction: { hash: bump.hash().toString("hex"), signatures: b64signatures(bump) },
    inner_transaction: { hash: inner.hash().toString("hex"), signatures: b64signatures(inner), max_fee: "100" },
  };
  const pick = (record) => Object.fromEntries(Object.keys(expected).map((k) => [k, record[k]]));
  assert.deepEqual(pick(response), expected);
  const record = await server.transactions().transaction(bump.hash().toString("hex")).call();
  assert.deepEqual(pick(record), expected);
  assert.equal(record.result_xdr, response.result_xdr);
  assert.equal((await record.ledger()).sequence, response.ledger);
  const ops = await record.operations();
  assert.deepEqual(
    ops.records.map((o) => [o.type, o.from, o.to, o.amount]),
    [["payment", poor.publicKey(), dest.publicKey(), "4.0000000"]],
  );
  // found by the inner hash too (Horizon would also name the record by that hash, with the
  // inner signatures; this server answers with the fee bump's: see
  // test_transaction_by_inner_hash_is_named_by_that_hash in tests/test_ledger_server.py)
  const byInner = await server.transactions().transaction(inner.hash().toString("hex")).call();
  assert.deepEqual(byInner.fee_bump_transaction, expected.fee_bump_transaction);
  assert.deepEqual(byInner.inner_transaction, expected.inner_transaction);
  assert.equal(byInner.paging_token, record.paging_token);

  // the fee account paid, the 0-XLM account still holds 0 XLM and paid out the DLC
  assert.equal(stroops(await balanceOf(feePayer)), stroops(before) - 200n);
  assert.equal(await balanceOf(poor), "0.0000000");
  assert.equal(await balanceOf(poor, dlc), "6.0000000");
  assert.equal(await balanceOf(dest, dlc), "4.0000000");

  // result_xdr: txFeeBumpInnerSuccess naming the inner transaction and its result
  const result = xdr.TransactionResult.fromXDR(response.result_xdr, "base64");
  assert.equal(result.feeCharged().toString(), "200");
  assert.equal(result.result().switch().name, "txFeeBumpInnerSuccess");
  const pair = result.result().innerResultPair();
  assert.equal(pair.transactionHash().toString("hex"), inner.hash().toString("hex"));
  assert.equal(pair.result().result().switch().name, "txSuccess");
  assert.deepEqual(
    pair.result().result().results().map((r) => r.tr().value().switch().name),
    ["paymentSuccess"],
  );

  // a second fee bump of the same inner transaction: its sequence number is spent
  const rebid = TransactionBuilder.buildFeeBumpTransaction(rebidder, "1000", inner, passphrase);
  rebid.sign(rebidder);
  const rebidderBefore = await balanceOf(rebidder);
  const extras = await failure(server.submitTransaction(rebid, { skipMemoRequiredCheck: true }));
  assert.equal(extras.result_codes.transaction, "tx_fee_bump_inner_failed");
  assert.equal(extras.result_codes.inner_transaction, "tx_bad_seq");
  const failed = xdr.TransactionResult.fromXDR(extras.result_xdr, "base64");
  assert.equal(failed.feeCharged().toString(), "0");
  assert.equal(failed.result().switch().name, "txFeeBumpInnerFailed");
  assert.equal(failed.result().innerResultPair().result().result().switch().name, "txBadSeq");
  assert.equal(await balanceOf(rebidder), rebidderBefore);
  assert.equal(await balanceOf(dest, dlc), "4.0000000"); // paid once
});

test("claimable balances: for an account not yet made, listed, read, claimed; a reclaim too early", async () => {
  const [distributor, funder] = [Keypair.random(), Keypair.random()];
  await fund(distributor);
  await fund(funder);
  await server.submitTransaction(await build(distributor, [Operation.changeTrust({ asset: dlc })]));
  await server.submitTransaction(
    await build(issuer, [Operation.payment({ destination: distributor.publicKey(), asset: dlc, amount: "1000" })]),
  );
  const node = Keypair.random(); // no account, no trustline
  const tx = await build(distributor, [
    Operation.createClaimableBalance({
      asset: dlc,
      amount: "12.5",
      claimants: [new Claimant(node.publicKey(), Claimant.predicateUnconditional())],
    }),
    Operation.createClaimableBalance({
      asset: dlc,
      amount: "7",
      claimants: [
        new Claimant(
          distributor.publicKey(),
          Claimant.predicateNot(Claimant.predicateBeforeRelativeTime("86400")),
        ),
      ],
    }),
  ]);
  const created = await server.submitTransaction(tx);
  assert.equal(created.successful, true);
  const [toNode, toSelf] = [tx.getClaimableBalanceId(0), tx.getClaimableBalanceId(1)];
  const closedAt = (await server.ledgers().ledger(created.ledger).call()).closed_at;
  const dayLater = Date.parse(closedAt) / 1000 + 86400;

  const forNode = await server.claimableBalances().claimant(node.publicKey()).call();
  assert.equal(forNode.records.length, 1);
  const [record] = forNode.records;
  assert.deepEqual(
    { id: record.id, asset: record.asset, amount: record.amount, sponsor: record.sponsor, claimants: record.claimants },
    {
      id: toNode,
      asset: `DLC:${issuer.publicKey()}`,
      amount: "12.5000000",
      sponsor: distributor.publicKey(),
      claimants: [{ destination: node.publicKey(), predicate: { unconditional: true } }],
    },
  );
  assert.equal(record.last_modified_ledger, created.ledger);
  const forSelf = await server.claimableBalances().claimant(distributor.publicKey()).call();
  assert.deepEqual(
    forSelf.records.map((b) => [b.id, b.amount, b.claimants]),
    [
      [
        toSelf,
        "7.0000000",
        [
          {
            destination: distributor.publicKey(),
            predicate: {
              not: {
                abs_before: new Date(dayLater * 1000).toISOString().replace(".000Z", "Z"),
                abs_before_epoch: String(dayLater),
              },
            },
          },
        ],
      ],
    ],
  );
  const sponsored = await server.claimableBalances().sponsor(distributor.publicKey()).call();
  assert.deepEqual(sponsored.records.map((b) => b.id), [toNode, toSelf].sort());
  const firstPage = await server.claimableBalances().sponsor(distributor.publicKey()).limit(1).call();
  const secondPage = await firstPage.next();
  assert.deepEqual([...firstPage.records, ...secondPage.records].map((b) => b.id), [toNode, toSelf].sort());
  const one = await server.claimableBalances().claimableBalance(toNode).call();
  assert.equal(one.id, toNode);
  assert.equal(one.amount, "12.5000000");
  assert.equal(await balanceOf(distributor, dlc), "980.5000000");
  assert.equal((await server.loadAccount(distributor.publicKey())).num_sponsoring, 2);

  // the node gets an account and a trustline, then claims
  await server.submitTransaction(
    await build(funder, [Operation.createAccount({ destination: node.publicKey(), startingBalance: "5" })]),
  );
  await server.submitTransaction(await build(node, [Operation.changeTrust({ asset: dlc })]));
  const claimed = await server.submitTransaction(
    await build(node, [Operation.claimClaimableBalance({ balanceId: toNode })]),
  );
  assert.deepEqual(decoded(claimed.result_xdr), {
    fee: "100",
    code: "txSuccess",
    ops: ["claimClaimableBalanceSuccess"],
  });
  assert.equal(await balanceOf(node, dlc), "12.5000000");
  await assert.rejects(server.claimableBalances().claimableBalance(toNode).call(), NotFoundError);
  assert.equal((await server.claimableBalances().claimant(node.publicKey()).call()).records.length, 0);
  assert.equal((await server.loadAccount(distributor.publicKey())).num_sponsoring, 1);

  // "not before a day": the distributor cannot take its own back yet
  const early = await failure(
    server.submitTransaction(await build(distributor, [Operation.claimClaimableBalance({ balanceId: toSelf })])),
  );
  assert.deepEqual(early.result_codes, { transaction: "tx_failed", operations: ["op_cannot_claim"] });
  assert.deepEqual(decoded(early.result_xdr), {
    fee: "100",
    code: "txFailed",
    ops: ["claimClaimableBalanceCannotClaim"],
  });
  assert.equal((await server.claimableBalances().claimableBalance(toSelf).call()).amount, "7.0000000");
});

test("claimable balances: bad queries are 400 problems", async () => {
  const good = alice.publicKey();
  const paths = [
    "/claimable_balances",
    "/claimable_balances?claimant=GNOPE",
    "/claimable_balances?sponsor=nope",
    `/claimable_balances?claimant=${good}&cursor=abc`,
    `/claimable_balances?claimant=${good}&limit=0`,
    "/claimable_balances/zz",
    `/claimable_balances/${"g".repeat(72)}`,
  ];
  for (const path of paths) {
    const response = await fetch(url + path);
    assert.equal(response.status, 400, path);
    const body = await response.json();
    assert.equal(body.status, 400);
    assert.match(body.type, /^https:\/\/stellar.org\/horizon-errors\//);
  }
  assert.equal((await fetch(`${url}/claimable_balances/${"0".repeat(72)}`)).status, 404);
  await assert.rejects(
    server.claimableBalances().claimableBalance("zz").call(),
    (err) => err.response && err.response.status === 400,
  );
});
