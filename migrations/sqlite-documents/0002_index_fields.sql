-- Which fields of a collection are indexed, shared by every process on the
-- file: a collection built by `tessera admin rebuild` in one process is
-- written by the live projector of another once readers switch to it.
CREATE TABLE doc_index_fields
(
    collection text NOT NULL,
    field      text NOT NULL,
    PRIMARY KEY (collection, field)
) STRICT, WITHOUT ROWID;
