// The official Stellar JS SDK (rpc.Server) against the Stellar RPC endpoint of
// `flwr-stellar ledger serve` (/rpc), unchanged. RPC_URL, HORIZON_URL (for the friendbot) and
// NETWORK_PASSPHRASE come from tests/test_js_sdk.py, which starts the server on 127.0.0.1.
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { Asset, Keypair, Operation, TransactionBuilder, rpc, xdr } from "@stellar/stellar-sdk";

const url = process.env.RPC_URL;
const horizon = process.env.HORIZON_URL;
const passphrase = process.env.NETWORK_PASSPHRASE;
const server = new rpc.Server(url, { allowHttp: true });
const alice = Keypair.random();
const bob = Keypair.random();

async function fund(kp) {
  const response = await fetch(`${horizon}/friendbot?addr=${kp.publicKey()}`);
  assert.equal(response.status, 200, await response.text());
}

async function build(kp, ops) {
  const account = await server.getAccount(kp.publicKey());
  const builder = new TransactionBuilder(account, { fee: "100", networkPassphrase: passphrase });
  for (const op of ops) builder.addOperation(op);
  const tx = builder.setTimeout(60).build();
  tx.sign(kp);
  return tx;
}

before(async () => {
  await fund(alice);
  await fund(bob);
});

test("getHealth, getNetwork and getLatestLedger", async () => {
  const health = await server.getHealth();
  assert.equal(health.status, "healthy");
  assert.equal(health.oldestLedger, 1);
  assert.ok(health.latestLedger >= 3);
  const network = await server.getNetwork();
  assert.equal(network.passphrase, passphrase);
  assert.equal(network.protocolVersion, 22);
  assert.equal(network.friendbotUrl, `${horizon}/friendbot`);
  const latest = await server.getLatestLedger();
  assert.match(latest.id, /^[0-9a-f]{64}$/);
  assert.equal(latest.sequence, health.latestLedger);
  const header = xdr.LedgerHeader.fromXDR(latest.headerXdr, "base64");
  assert.equal(header.ledgerSeq(), latest.sequence);
  const meta = xdr.LedgerCloseMeta.fromXDR(latest.metadataXdr, "base64");
  assert.equal(meta.v1().ledgerHeader().hash().toString("hex"), latest.id);
});

test("getAccount: the sequence number through getLedgerEntries", async () => {
  const account = await server.getAccount(alice.publicKey());
  assert.equal(account.accountId(), alice.publicKey());
  const response = await fetch(`${horizon}/accounts/${alice.publicKey()}`);
  assert.equal(account.sequenceNumber(), (await response.json()).sequence);
  await assert.rejects(server.getAccount(Keypair.random().publicKey()), /Account not found/);
  const entry = await server.getAccountEntry(alice.publicKey());
  assert.equal(entry.balance().toString(), "100000000000");
});

test("sendTransaction, pollTransaction and getTransaction: SUCCESS, DUPLICATE, FAILED", async () => {
  const tx = await build(alice, [
    Operation.payment({ destination: bob.publicKey(), asset: Asset.native(), amount: "12.5" }),
  ]);
  const sent = await server.sendTransaction(tx);
  assert.equal(sent.status, "PENDING");
  assert.equal(sent.hash, tx.hash().toString("hex"));
  const got = await server.pollTransaction(sent.hash, { attempts: 5 });
  assert.equal(got.status, rpc.Api.GetTransactionStatus.SUCCESS);
  assert.equal(got.feeBump, false);
  assert.equal(got.applicationOrder, 1);
  assert.equal(got.resultXdr.result().switch().name, "txSuccess");
  assert.equal(got.resultXdr.feeCharged().toString(), "100");
  assert.equal(got.envelopeXdr.toXDR("base64"), tx.toEnvelope().toXDR("base64"));
  assert.equal(got.resultMetaXdr.switch(), 3);
  const again = await server.getTransaction(sent.hash);
  assert.equal(again.ledger, got.ledger);
  assert.equal((await server.sendTransaction(tx)).status, "DUPLICATE");

  const stale = await build(alice, [Operation.bumpSequence({ bumpTo: "0" })]);
  const first = await build(alice, [Operation.bumpSequence({ bumpTo: "1" })]); // same sequence
  assert.equal((await server.sendTransaction(first)).status, "PENDING");
  const refused = await server.sendTransaction(stale); // its sequence number is used now
  assert.equal(refused.status, "ERROR");
  assert.equal(refused.errorResult.result().switch().name, "txBadSeq");

  const noTrust = await build(alice, [
    Operation.payment({ destination: bob.publicKey(), asset: new Asset("DLC", alice.publicKey()), amount: "1" }),
  ]);
  assert.equal((await server.sendTransaction(noTrust)).status, "PENDING");
  const failed = await server.pollTransaction(noTrust.hash().toString("hex"), { attempts: 5 });
  assert.equal(failed.status, rpc.Api.GetTransactionStatus.FAILED);
  assert.equal(failed.resultXdr.result().switch().name, "txFailed");
  const missing = await server.getTransaction("ab".repeat(32));
  assert.equal(missing.status, rpc.Api.GetTransactionStatus.NOT_FOUND);
});

test("getTransactions pages through every transaction with its cursor", async () => {
  const seen = [];
  let page = await server.getTransactions({ startLedger: 1, pagination: { limit: 2 } });
  while (page.transactions.length > 0) {
    for (const t of page.transactions) {
      assert.ok(t.envelopeXdr instanceof xdr.TransactionEnvelope);
      assert.ok(["SUCCESS", "FAILED"].includes(t.status));
      seen.push(t.txHash);
    }
    page = await server.getTransactions({ pagination: { cursor: page.cursor, limit: 2 } });
  }
  const response = await fetch(`${horizon}/transactions?limit=200`);
  const expected = (await response.json())._embedded.records.map((r) => r.hash);
  assert.deepEqual(seen, expected);
});

test("getFeeStats: the fees charged per operation, base fee 100", async () => {
  const stats = await server.getFeeStats();
  assert.equal(stats.inclusionFee.p50, "100");
  assert.equal(stats.inclusionFee.max, "100");
  assert.ok(Number(stats.inclusionFee.transactionCount) >= 5);
  assert.equal(stats.sorobanInclusionFee.transactionCount, "0");
  assert.equal(stats.latestLedger, (await server.getLatestLedger()).sequence);
});

test("JSON-RPC errors reach the caller as error objects", async () => {
  await assert.rejects(server.getTransaction("nothex"), (err) => err.code === -32602);
  await assert.rejects(
    server.getTransactions({ startLedger: 10 ** 9 }),
    (err) => err.code === -32600 && /start ledger/.test(err.message),
  );
});
