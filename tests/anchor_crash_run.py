"""Subprocess for the crash test: anchor ``rounds`` rounds, settling leftovers first.

Run it with FLWR_STELLAR_FAILPOINT set and it SIGKILLs itself mid-way; run it again without
and it must finish the job with every payment made exactly once."""

import sys
from pathlib import Path

from anchor_world import anchorer, manifest, pseudonyms

from flwr_stellar.ledger.embedded import EmbeddedLedger

db, out, rounds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
a = anchorer(db, out)
a.settle_all(EmbeddedLedger(db))  # what a restarted server does first
a.start()
for r in range(1, rounds + 1):
    a.submit_round(manifest(r, pseudonyms(5)))
a.drain()
