-- Credentials of the embedded mode, in their own file: a registration holds
-- a write transaction here while its event commits to the event store.
CREATE TABLE credentials
(
    email         text PRIMARY KEY,
    account_id    text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    created_at    text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
