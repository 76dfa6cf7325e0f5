-- The embedded document store: JSON documents by collection and id, with a
-- revision for compare-and-set writes.
CREATE TABLE documents
(
    collection text    NOT NULL,
    id         text    NOT NULL,
    rev        integer NOT NULL,
    body       text    NOT NULL,
    PRIMARY KEY (collection, id)
) STRICT, WITHOUT ROWID;

-- Secondary index over declared fields (one row per value; arrays expand).
CREATE TABLE doc_index
(
    collection text NOT NULL,
    field      text NOT NULL,
    value      text NOT NULL,
    id         text NOT NULL,
    PRIMARY KEY (collection, field, value, id)
) STRICT, WITHOUT ROWID;

CREATE INDEX doc_index_by_document ON doc_index (collection, id);
