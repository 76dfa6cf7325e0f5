-- Outbound webhooks in the embedded event store (see the PostgreSQL
-- migration 0006_webhooks.sql); tx_id is always 0 here.
CREATE TABLE webhooks
(
    webhook_id      text PRIMARY KEY,
    url             text    NOT NULL,
    event_types     text    NOT NULL,
    secret          text    NOT NULL,
    tx_id           integer NOT NULL DEFAULT 0,
    global_position integer NOT NULL,
    delivered       integer NOT NULL DEFAULT 0,
    last_error      text,
    created_at      text    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE TABLE webhook_dead_letters
(
    letter_id      integer PRIMARY KEY AUTOINCREMENT,
    webhook_id     text    NOT NULL REFERENCES webhooks ON DELETE CASCADE,
    event_id       text    NOT NULL,
    event_type     text    NOT NULL,
    aggregate_type text    NOT NULL,
    aggregate_id   text    NOT NULL,
    sequence       integer NOT NULL,
    body           text    NOT NULL,
    attempts       integer NOT NULL,
    last_error     text    NOT NULL,
    dead_at        text    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (webhook_id, event_id)
) STRICT;
