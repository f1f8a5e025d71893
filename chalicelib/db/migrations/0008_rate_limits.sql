-- 0008: rate limiting. One token bucket per key (`user:<id>`, `execution:<id>`,
-- `webhook:<trigger id>`, `auth-addr:<client address>`, `auth-user:<user name>`), kept as
-- the moment it is full again, so one upsert per request refills it by the time elapsed
-- and takes a token; a bucket whose `full_at` has passed equals no row, and the relay
-- deletes those. `refused` counts the requests refused since the last one let through.
-- Failed logins per (lowercased) user name drive the login back-off; a success deletes
-- the row, and the relay deletes rows whose last failure is long forgotten.
-- System tables, like the outbox: no tenant column and no row-level security. The keys
-- are not tenant data and are never served by the API, and a webhook or a login is
-- limited before any tenant is known, in one autocommit statement outside any tenant
-- transaction. No index on `full_at`: every request rewrites it, and with the key its
-- only index that update stays HOT; the once-a-minute prune scans instead.
-- UNLOGGED: a limiter's state is worth less than the WAL flush that every request would
-- otherwise wait for at commit (bench/ratelimit.py: ~0.3 ms p50, ~5 ms p95 locally, more on
-- network storage, against ~0.1 ms). A crash or a failover empties both tables, which only
-- refills every bucket and forgets failed logins.

CREATE UNLOGGED TABLE attune.rate_limit (
    key text PRIMARY KEY,
    full_at timestamptz NOT NULL,
    refused integer NOT NULL DEFAULT 0
);

CREATE UNLOGGED TABLE attune.login_failure (
    username text PRIMARY KEY,
    failures integer NOT NULL,
    last_failed timestamptz NOT NULL
);

GRANT SELECT, INSERT, UPDATE, DELETE ON attune.rate_limit TO attune_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON attune.login_failure TO attune_app;
