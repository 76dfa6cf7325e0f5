-- The relay heals itself after a broker lost its data (write-side relay.rs):
-- every message names the topic epoch it was published in, and the highest
-- offset the broker acknowledged per partition tells a topic that now ends
-- before it.
ALTER TABLE relay_checkpoints
    ADD COLUMN topic_epoch   text,
    ADD COLUMN acked_offsets jsonb NOT NULL DEFAULT '{}';
