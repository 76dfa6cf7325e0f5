-- Orders as the write side finds them; same table as the PostgreSQL
-- migration 0005.
CREATE TABLE shop_orders
(
    order_id        text PRIMARY KEY,
    buyer_id        text    NOT NULL,
    idempotency_key text    NOT NULL,
    due_at_ms       integer NOT NULL,
    settled         integer NOT NULL DEFAULT 0,
    UNIQUE (buyer_id, idempotency_key)
);
CREATE INDEX shop_orders_due ON shop_orders (due_at_ms) WHERE settled = 0;
