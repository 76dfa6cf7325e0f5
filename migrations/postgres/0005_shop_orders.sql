-- Orders as the write side finds them: which order a buyer's idempotency
-- key names (creation is idempotent per key), and when the sweeper must
-- look at an order (its expiry; at once for a cancel that must give back).
-- An index, not truth: every decision is made by the order aggregate.
CREATE TABLE shop_orders
(
    order_id        text PRIMARY KEY,
    buyer_id        text    NOT NULL,
    idempotency_key text    NOT NULL,
    due_at_ms       bigint  NOT NULL,
    settled         boolean NOT NULL DEFAULT false,
    UNIQUE (buyer_id, idempotency_key)
);
CREATE INDEX shop_orders_due ON shop_orders (due_at_ms) WHERE NOT settled;
