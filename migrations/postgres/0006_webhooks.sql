-- Outbound webhooks (tessera-webhooks): each follows the committed log from
-- its own checkpoint, the pair (tx_id, global_position) the relay uses too;
-- deliveries that ran out of attempts wait as dead letters with the exact
-- body they sent.
CREATE TABLE webhooks
(
    webhook_id      uuid PRIMARY KEY,
    url             text        NOT NULL,
    event_types     text        NOT NULL, -- a JSON array of event type names
    secret          text        NOT NULL,
    tx_id           xid8        NOT NULL,
    global_position bigint      NOT NULL,
    delivered       bigint      NOT NULL DEFAULT 0,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_dead_letters
(
    letter_id      bigserial PRIMARY KEY,
    webhook_id     uuid        NOT NULL REFERENCES webhooks ON DELETE CASCADE,
    event_id       uuid        NOT NULL,
    event_type     text        NOT NULL,
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    sequence       bigint      NOT NULL,
    body           text        NOT NULL,
    attempts       bigint      NOT NULL,
    last_error     text        NOT NULL,
    dead_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (webhook_id, event_id)
);
