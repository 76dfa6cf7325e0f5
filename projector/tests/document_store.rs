//! One contract, two adapters: the same tests run against MongoDB (a real
//! MongoDB-protocol server) and the embedded SQLite store.

use std::sync::Arc;

use serde_json::json;
use tessera_documents::store::embedded::EmbeddedStore;
use tessera_documents::store::mongo::MongoStore;
use tessera_documents::store::{DocumentStore, ListQuery, Order, RangeQuery, Write, Written};
use tessera_testkit::MongoDatabase;

/// A store under test, and what keeps its backing storage alive.
struct Subject {
    store: Arc<dyn DocumentStore>,
    _mongo: Option<MongoDatabase>,
    _dir: Option<tempfile::TempDir>,
}

async fn mongo() -> Subject {
    let db = MongoDatabase::create();
    let store = MongoStore::connect(&db.uri, &db.name).await.unwrap();
    Subject {
        store: Arc::new(store),
        _mongo: Some(db),
        _dir: None,
    }
}

async fn embedded() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("docs.db"))
        .await
        .unwrap();
    Subject {
        store: Arc::new(store),
        _mongo: None,
        _dir: Some(dir),
    }
}

fn range<'a>(field: &'a str, from: &'a str, to: &'a str, limit: usize) -> RangeQuery<'a> {
    RangeQuery {
        field,
        from,
        to,
        limit,
    }
}

fn put(id: &str, expected_rev: Option<u64>, body: serde_json::Value) -> Write {
    Write::Put {
        id: id.into(),
        expected_rev,
        body,
    }
}

async fn compare_and_set(s: &dyn DocumentStore) {
    let w = s
        .write("c", vec![put("d1", None, json!({"n": 1}))])
        .await
        .unwrap();
    assert_eq!(w, [Written::Ok(1)]);
    // inserting again conflicts: somebody else created it
    let w = s
        .write("c", vec![put("d1", None, json!({"n": 9}))])
        .await
        .unwrap();
    assert_eq!(w, [Written::Conflict]);
    let w = s
        .write("c", vec![put("d1", Some(1), json!({"n": 2}))])
        .await
        .unwrap();
    assert_eq!(w, [Written::Ok(2)]);
    // a writer that read revision 1 loses
    let w = s
        .write("c", vec![put("d1", Some(1), json!({"n": 3}))])
        .await
        .unwrap();
    assert_eq!(w, [Written::Conflict]);
    let d = s.get("c", "d1").await.unwrap().unwrap();
    assert_eq!((d.rev, d.body), (2, json!({"n": 2})));
    // one conflict does not stop the other writes of a batch
    let w = s
        .write(
            "c",
            vec![
                put("d1", Some(7), json!({})),
                put("d2", None, json!({"n": 5})),
            ],
        )
        .await
        .unwrap();
    assert_eq!(w, [Written::Conflict, Written::Ok(1)]);
    let w = s
        .write(
            "c",
            vec![Write::Delete {
                id: "d1".into(),
                expected_rev: 1,
            }],
        )
        .await
        .unwrap();
    assert_eq!(w, [Written::Conflict]);
    let w = s
        .write(
            "c",
            vec![Write::Delete {
                id: "d1".into(),
                expected_rev: 2,
            }],
        )
        .await
        .unwrap();
    assert_eq!(w, [Written::Ok(0)]);
    assert!(s.get("c", "d1").await.unwrap().is_none());
    let mut many = s
        .get_many("c", &["d1".into(), "d2".into(), "zz".into()])
        .await
        .unwrap();
    many.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        many.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["d2"]
    );
    // unchecked upserts (bookkeeping) always apply
    for n in 0..2 {
        let w = s
            .write(
                "c",
                vec![Write::Upsert {
                    id: "status".into(),
                    body: json!({"n": n}),
                }],
            )
            .await
            .unwrap();
        assert!(matches!(w[0], Written::Ok(_)));
    }
    assert_eq!(
        s.get("c", "status").await.unwrap().unwrap().body,
        json!({"n": 1})
    );
}

/// A batch of hundreds of writes on distinct documents, as a rebuild
/// makes: each write gets its own answer, in the order of the writes,
/// whatever the others did; with `indexed`, the index follows exactly the
/// writes that applied.
async fn large_mixed_batch(s: &dyn DocumentStore, indexed: bool) {
    let c = if indexed { "big_indexed" } else { "big" };
    if indexed {
        s.ensure_indexes(c, &["tag"]).await.unwrap();
    }
    let n = 450; // more than one multi-row statement of each kind
    let mut setup: Vec<Write> = (0..n)
        .map(|i| put(&format!("e{i:03}"), None, json!({"i": i, "tag": "old"})))
        .collect();
    // every fifth insert of the batch below names a document that exists
    setup.extend(
        (0..n)
            .step_by(5)
            .map(|i| put(&format!("n{i:03}"), None, json!({"old": i, "tag": "old"}))),
    );
    setup.push(put("gone", None, json!({"tag": "old"})));
    setup.push(put("kept", None, json!({"tag": "old"})));
    let done = s.write(c, setup).await.unwrap();
    assert!(done.iter().all(|w| *w == Written::Ok(1)), "{done:?}");

    let mut writes = Vec::new();
    let mut expected = Vec::new();
    let mut new_tags = Vec::new();
    let mut old_tags = vec!["kept".to_owned()];
    for i in 0..n {
        // every third replace read a stale revision
        let (e, nid) = (format!("e{i:03}"), format!("n{i:03}"));
        let rev = if i % 3 == 0 { 5 } else { 1 };
        writes.push(put(&e, Some(rev), json!({"i": i, "v": 2, "tag": "new"})));
        expected.push(if rev == 1 { Some(2) } else { None });
        if rev == 1 {
            new_tags.push(e)
        } else {
            old_tags.push(e)
        }
        writes.push(put(&nid, None, json!({"new": i, "tag": "new"})));
        expected.push(if i % 5 == 0 { None } else { Some(1) });
        if i % 5 == 0 {
            old_tags.push(nid)
        } else {
            new_tags.push(nid)
        }
    }
    writes.push(Write::Delete {
        id: "gone".into(),
        expected_rev: 1,
    });
    expected.push(Some(0));
    writes.push(Write::Delete {
        id: "kept".into(),
        expected_rev: 9,
    });
    expected.push(None);
    let got = s.write(c, writes).await.unwrap();
    let got: Vec<Option<u64>> = got
        .into_iter()
        .map(|w| match w {
            Written::Ok(rev) => Some(rev),
            Written::Conflict => None,
        })
        .collect();
    assert_eq!(got, expected);

    let doc =
        |id: &'static str| async move { s.get(c, id).await.unwrap().map(|d| (d.rev, d.body)) };
    assert_eq!(doc("e003").await, Some((1, json!({"i": 3, "tag": "old"}))));
    assert_eq!(
        doc("e004").await,
        Some((2, json!({"i": 4, "v": 2, "tag": "new"})))
    );
    assert_eq!(
        doc("n004").await,
        Some((1, json!({"new": 4, "tag": "new"})))
    );
    assert_eq!(
        doc("n005").await,
        Some((1, json!({"old": 5, "tag": "old"})))
    );
    assert_eq!(doc("gone").await, None);
    assert_eq!(doc("kept").await, Some((1, json!({"tag": "old"}))));
    if indexed {
        for (tag, mut want) in [("new", new_tags), ("old", old_tags)] {
            let mut found = s.find_ids(c, "tag", tag).await.unwrap();
            found.sort();
            want.sort();
            assert_eq!(found, want, "documents tagged {tag}");
        }
    }
}

async fn indexes_and_pages(s: &dyn DocumentStore) {
    s.ensure_indexes("members", &["guild", "tags"])
        .await
        .unwrap();
    let mut writes = Vec::new();
    for i in 0..25 {
        let guild = if i % 5 == 0 { "other" } else { "g1" };
        writes.push(put(
            &format!("m{i:02}"),
            None,
            json!({"guild": guild, "tags": [format!("t{}", i % 3), "all"], "i": i}),
        ));
    }
    s.write("members", writes).await.unwrap();
    let ids = s.find_ids("members", "tags", "t1").await.unwrap();
    assert_eq!(ids.len(), 8);
    assert!(ids
        .iter()
        .all(|id| id[1..].parse::<u32>().unwrap() % 3 == 1));
    assert_eq!(
        s.find_ids("members", "tags", "all").await.unwrap().len(),
        25
    );

    // pages in id order, filtered, both directions
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s
            .list(
                "members",
                ListQuery {
                    filter: Some(("guild", "g1")),
                    order: Order::Asc,
                    after: after.as_deref(),
                    limit: 7,
                },
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|d| d.id.clone());
        seen.extend(page.into_iter().map(|d| d.id));
    }
    assert_eq!(seen.len(), 20);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    let newest = s
        .list(
            "members",
            ListQuery {
                filter: None,
                order: Order::Desc,
                after: Some("m20"),
                limit: 3,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        newest.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["m19", "m18", "m17"]
    );

    // a range of an indexed field, in order of the field, then of the id
    let in_range = s
        .range("members", range("guild", "g", "h", 5))
        .await
        .unwrap();
    assert_eq!(
        in_range.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["m01", "m02", "m03", "m04", "m06"]
    );
    let both = s
        .range("members", range("guild", "g1", "p", 30))
        .await
        .unwrap();
    assert_eq!(both.len(), 25, "g1 and other, but no further");
    assert_eq!(both[20].id, "m00", "other comes after g1");

    // the index follows updates: a document that changes value moves
    let d = s.get("members", "m01").await.unwrap().unwrap();
    s.write(
        "members",
        vec![put(
            "m01",
            Some(d.rev),
            json!({"guild": "moved", "tags": []}),
        )],
    )
    .await
    .unwrap();
    assert_eq!(
        s.find_ids("members", "guild", "moved").await.unwrap(),
        ["m01"]
    );
    assert_eq!(
        s.find_ids("members", "tags", "all").await.unwrap().len(),
        24
    );

    s.drop_collection("members").await.unwrap();
    assert!(s.get("members", "m02").await.unwrap().is_none());
    s.ping().await.unwrap();
}

#[tokio::test]
async fn mongo_compares_and_sets() {
    compare_and_set(&*mongo().await.store).await;
}

#[tokio::test]
async fn embedded_compares_and_sets() {
    compare_and_set(&*embedded().await.store).await;
}

#[tokio::test]
async fn mongo_answers_each_write_of_a_large_batch() {
    let subject = mongo().await;
    large_mixed_batch(&*subject.store, false).await;
    large_mixed_batch(&*subject.store, true).await;
}

#[tokio::test]
async fn embedded_answers_each_write_of_a_large_batch() {
    let subject = embedded().await;
    large_mixed_batch(&*subject.store, false).await;
    large_mixed_batch(&*subject.store, true).await;
}

#[tokio::test]
async fn mongo_indexes_and_pages() {
    indexes_and_pages(&*mongo().await.store).await;
}

#[tokio::test]
async fn embedded_indexes_and_pages() {
    indexes_and_pages(&*embedded().await.store).await;
}

#[tokio::test]
async fn embedded_backfills_an_index_declared_after_the_documents() {
    let s = embedded().await;
    s.store
        .write(
            "late",
            vec![
                put("a", None, json!({"k": "v"})),
                put("b", None, json!({"k": "w"})),
            ],
        )
        .await
        .unwrap();
    s.store.ensure_indexes("late", &["k"]).await.unwrap();
    assert_eq!(s.store.find_ids("late", "k", "v").await.unwrap(), ["a"]);
}

/// A rebuild declares the new collection's indexes in the CLI process; the
/// live projector of `tessera serve` then writes that collection. The
/// declaration must reach it through the file, not process memory.
#[tokio::test]
async fn embedded_index_declarations_are_shared_by_every_handle_on_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docs.db");
    let writer = EmbeddedStore::open(&path).await.unwrap();
    let cli = EmbeddedStore::open(&path).await.unwrap();
    cli.ensure_indexes("fresh", &["k"]).await.unwrap();
    writer
        .write("fresh", vec![put("a", None, json!({"k": "v"}))])
        .await
        .unwrap();
    assert_eq!(writer.find_ids("fresh", "k", "v").await.unwrap(), ["a"]);
    assert_eq!(cli.find_ids("fresh", "k", "v").await.unwrap(), ["a"]);
    // a dropped collection forgets its declarations
    cli.drop_collection("fresh").await.unwrap();
    let reopened = EmbeddedStore::open(&path).await.unwrap();
    reopened
        .write("fresh", vec![put("b", None, json!({"k": "v"}))])
        .await
        .unwrap();
    assert!(reopened
        .find_ids("fresh", "k", "v")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn mongo_survives_unreachable_server_with_an_error_not_a_hang() {
    let port = tessera_testkit::free_port();
    let store = MongoStore::connect(&format!("mongodb://127.0.0.1:{port}"), "x")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert!(store.ping().await.is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}
