-- One payment's SQL, the pgbench baseline of `make bench` (SPEC §4): lock the two accounts in
-- id order, two balance updates, a ledger transaction, its two entries, an idempotency row,
-- commit. It runs on the accounts the HTTP payments used: from a payer's account (numbered
-- 1..:nsources in bench_accounts) to any other account (1..:naccounts). The lookup before
-- BEGIN stands in for the ids a client sends, since pgbench variables cannot hold a list of
-- UUIDs. It inserts no `payments` row, so the payment count stays the HTTP side's.
\set a random(1, :nsources)
\set b 1 + (:a + random(0, :naccounts - 2)) % :naccounts
\set amount random(1, 500)
SELECT s.id AS src, s.user_id AS owner, d.id AS dst
  FROM bench_accounts s, bench_accounts d WHERE s.n = :a AND d.n = :b \gset
BEGIN;
SELECT id, balance FROM accounts WHERE id IN (:src::uuid, :dst::uuid) ORDER BY id FOR UPDATE;
UPDATE accounts SET balance = balance - :amount::bigint, updated_at = now()
  WHERE id = :src::uuid;
UPDATE accounts SET balance = balance + :amount::bigint, updated_at = now()
  WHERE id = :dst::uuid;
INSERT INTO ledger_transactions (kind) VALUES ('payment') RETURNING id AS tx \gset
INSERT INTO ledger_entries (transaction_id, account_id, amount)
  VALUES (:tx::uuid, :src::uuid, -:amount::bigint), (:tx::uuid, :dst::uuid, :amount::bigint);
INSERT INTO idempotency_keys
  (user_id, endpoint, key, fingerprint, response_status, response_body, expires_at)
  VALUES (:owner::uuid, 'POST /api/v1/payments', gen_random_uuid()::text, md5(random()::text),
          201, convert_to(json_build_object('source_account_id', :src::uuid,
                                            'destination_account_id', :dst::uuid,
                                            'amount', :amount::bigint,
                                            'status', 'succeeded')::text, 'UTF8'),
          now() + interval '1 day');
COMMIT;
