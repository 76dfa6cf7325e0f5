//! The shop's races, for real: two `tessera write-api` processes on one
//! PostgreSQL, hundreds of concurrent buyers, and the invariants checked in
//! the event log afterwards — stock never below zero nor sold twice, a
//! payment all or nothing across products, once however often it is sent,
//! and paid xor expired when it races the expiry.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::cluster::{cluster, code, Cluster};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A product of a fresh seller's: its id.
async fn product(c: &Cluster, name: &str, price: i64, stock: u32) -> String {
    let seller = c.token(&format!("seller-{name}"));
    let (s, body) = c
        .send(
            0,
            Method::POST,
            "/v1/products",
            &seller,
            None,
            Some(json!({"name": name, "price": price, "stock": stock})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    body["product_id"].as_str().unwrap().to_owned()
}

/// Creates an order through process `i % 2`; it must be created.
async fn order(c: &Cluster, i: usize, token: &str, items: Value, key: &str) -> String {
    let (s, body) = c
        .send(
            i,
            Method::POST,
            "/v1/orders",
            token,
            None,
            Some(json!({"items": items, "idempotency_key": key})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    body["order_id"].as_str().unwrap().to_owned()
}

async fn pay(c: &Cluster, i: usize, token: &str, order_id: &str) -> (StatusCode, Value) {
    c.send(
        i,
        Method::POST,
        &format!("/v1/orders/{order_id}/payment"),
        token,
        None,
        Some(json!({})),
    )
    .await
}

/// Units each order holds of one product, by the log: taken less given back.
async fn held_by_order(c: &Cluster, product_id: &str) -> BTreeMap<String, i64> {
    let mut held = BTreeMap::new();
    for (kind, sign) in [("StockTaken", 1), ("StockReturned", -1)] {
        for (aggregate, p) in c.events("product", kind).await {
            if aggregate == product_id {
                *held
                    .entry(p["order_id"].as_str().unwrap().to_owned())
                    .or_insert(0) += sign * p["quantity"].as_i64().unwrap();
            }
        }
    }
    held
}

/// The stock the product's last event left.
async fn stock_in_log(c: &Cluster, product_id: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COALESCE((payload->>'stock')::bigint, 0) FROM events
          WHERE aggregate_type = 'product' AND aggregate_id = $1 ORDER BY sequence DESC LIMIT 1",
    )
    .bind(product_id)
    .fetch_one(&c.pool)
    .await
    .unwrap()
}

/// Points each reference took from accounts, by the log: used less refunded.
async fn points_by_reference(c: &Cluster) -> BTreeMap<String, i64> {
    let mut net = BTreeMap::new();
    for (kind, sign) in [("PointsUsed", 1), ("PointsRefunded", -1)] {
        for (_, p) in c.events("account", kind).await {
            *net.entry(p["reference"].as_str().unwrap().to_owned())
                .or_insert(0) += sign * p["amount"].as_i64().unwrap();
        }
    }
    net
}

fn paid_orders(events: &[(String, Value)]) -> BTreeSet<String> {
    events.iter().map(|(id, _)| id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drop_of_a_hundred_units_for_a_thousand_buyers_sells_exactly_a_hundred() {
    let c = cluster(&[]).await;
    let (units, buyers, price, funds) = (100, 1000, 10, 100);
    let drop = product(&c, "Drop", price, units).await;
    let users = c.funded("buyer", buyers, funds).await;
    let started = Instant::now();
    let outcomes: Vec<(String, String, StatusCode, Value)> =
        futures::future::join_all(users.iter().enumerate().map(|(i, (id, token))| {
            let (c, drop) = (&c, &drop);
            async move {
                let o = order(
                    c,
                    i,
                    token,
                    json!([{"product_id": drop, "quantity": 1}]),
                    "drop",
                )
                .await;
                let (s, body) = pay(c, i + 1, token, &o).await;
                (id.clone(), o, s, body)
            }
        }))
        .await;
    let elapsed = started.elapsed();
    let winners: Vec<_> = outcomes
        .iter()
        .filter(|(_, _, s, _)| *s == StatusCode::OK)
        .collect();
    let losers: Vec<_> = outcomes
        .iter()
        .filter(|(_, _, s, _)| *s != StatusCode::OK)
        .collect();
    for (_, _, s, body) in &losers {
        assert_eq!(
            (*s, code(body)),
            (StatusCode::CONFLICT, "out_of_stock"),
            "{body}"
        );
    }
    assert_eq!(winners.len(), units as usize, "exactly the stock is sold");
    for (_, _, _, body) in &winners {
        assert_eq!(body["balance"], funds - price, "{body}");
    }

    let held = held_by_order(&c, &drop).await;
    let sold: i64 = held.values().sum();
    assert_eq!(sold, i64::from(units), "the log sells exactly the stock");
    assert!(held.values().all(|&h| h == 0 || h == 1), "no unit twice");
    assert_eq!(stock_in_log(&c, &drop).await, 0);
    let paid = paid_orders(&c.events("order", "OrderPaid").await);
    let points = points_by_reference(&c).await;
    for (_, o, s, _) in &outcomes {
        let won = *s == StatusCode::OK;
        assert_eq!(paid.contains(o), won, "{o}: the answer matches the log");
        assert_eq!(
            held.get(o).copied().unwrap_or(0),
            i64::from(won),
            "{o}: stock"
        );
        assert_eq!(
            points.get(o).copied().unwrap_or(0),
            if won { price } else { 0 },
            "{o}: points"
        );
    }
    // no loser's account has any event past its seed charge
    let losers_touched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'account' AND event_type <> 'AccountRegistered'
           AND event_type <> 'PointsCharged' AND aggregate_id = ANY($1)",
    )
    .bind(losers.iter().map(|(id, ..)| id.clone()).collect::<Vec<_>>())
    .fetch_one(&c.pool)
    .await
    .unwrap();
    assert_eq!(losers_touched, 0, "no loser's balance moved");
    eprintln!(
        "a drop of {units} units for {buyers} buyers (create + pay each) across 2 write-api processes answered in {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_two_product_order_racing_for_the_last_unit_never_keeps_the_other_product() {
    let c = cluster(&[]).await;
    // listed first, so its id sorts first: a pair takes it before it
    // tries the last unit, and a refused pair must give it back
    let plenty = product(&c, "Plenty", 10, 100).await;
    let last = product(&c, "Last", 10, 1).await;
    let users = c.funded("racer", 40, 1_000).await;
    // half buy the last unit and one of the other product, half the last unit alone
    let outcomes: Vec<(String, bool, StatusCode)> =
        futures::future::join_all(users.iter().enumerate().map(|(i, (_, token))| {
            let (c, last, plenty) = (&c, &last, &plenty);
            async move {
                let pair = i % 2 == 0;
                let items = if pair {
                    json!([{"product_id": plenty, "quantity": 1}, {"product_id": last, "quantity": 1}])
                } else {
                    json!([{"product_id": last, "quantity": 1}])
                };
                let o = order(c, i, token, items, "last").await;
                let (s, body) = pay(c, i + 1, token, &o).await;
                assert!(
                    s == StatusCode::OK || (s, code(&body)) == (StatusCode::CONFLICT, "out_of_stock"),
                    "{s} {body}"
                );
                (o, pair, s)
            }
        }))
        .await;
    let winners: Vec<_> = outcomes
        .iter()
        .filter(|(_, _, s)| *s == StatusCode::OK)
        .collect();
    assert_eq!(winners.len(), 1, "one buyer gets the last unit");
    let on_last = held_by_order(&c, &last).await;
    assert_eq!(on_last.values().sum::<i64>(), 1);
    let on_plenty = held_by_order(&c, &plenty).await;
    for (o, pair, s) in &outcomes {
        let keeps = on_plenty.get(o).copied().unwrap_or(0);
        let want = i64::from(*pair && *s == StatusCode::OK);
        assert_eq!(
            keeps, want,
            "{o}: the other product is kept only by a paid pair"
        );
    }
    let pairs_paid = i64::from(winners[0].1);
    assert_eq!(stock_in_log(&c, &plenty).await, 100 - pairs_paid);
    let returned = c
        .events("product", "StockReturned")
        .await
        .into_iter()
        .filter(|(id, _)| *id == plenty)
        .count();
    eprintln!(
        "the last unit: won by a {} order; {returned} refused pairs gave the other product back",
        if winners[0].1 {
            "two-product"
        } else {
            "single-product"
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_copies_of_one_payment_answer_the_same_and_pay_once() {
    let c = cluster(&[]).await;
    let (buyers, copies, price) = (10_usize, 20_usize, 100);
    let item = product(&c, "Copies", price, 1000).await;
    let users = c.funded("payer", buyers as u32, 1_000).await;
    futures::future::join_all(users.iter().enumerate().map(|(i, (_, token))| {
        let (c, item) = (&c, &item);
        async move {
            let o = order(
                c,
                i,
                token,
                json!([{"product_id": item, "quantity": 2}]),
                "copies",
            )
            .await;
            // the copies race each other on both processes
            let answers = futures::future::join_all((0..copies).map(|k| {
                let o = &o;
                async move {
                    tokio::time::sleep(Duration::from_millis(k as u64 * 3)).await;
                    pay(c, i + k, token, o).await
                }
            }))
            .await;
            let first = &answers[0].1;
            for (s, body) in &answers {
                assert_eq!(
                    (*s, body),
                    (StatusCode::OK, first),
                    "every copy answers the same"
                );
            }
            assert_eq!(first["paid_amount"], 2 * price, "{first}");
            assert_eq!(first["balance"], 1_000 - 2 * price, "{first}");
            let again = pay(c, i, token, &o).await;
            assert_eq!(
                (again.0, &again.1),
                (StatusCode::OK, first),
                "and so does a repeat"
            );
        }
    }))
    .await;
    let used = c.events("account", "PointsUsed").await;
    assert_eq!(used.len(), buyers, "one debit per order");
    assert_eq!(c.events("order", "OrderPaid").await.len(), buyers);
    let held = held_by_order(&c, &item).await;
    assert_eq!(held.len(), buyers);
    assert!(
        held.values().all(|&h| h == 2),
        "each order took its units once: {held:?}"
    );
    assert_eq!(
        c.events("product", "StockTaken").await.len(),
        buyers,
        "one take per order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payment_racing_expiry_ends_paid_or_expired_never_both_and_stock_and_points_add_up() {
    let c = cluster(&[
        ("TESSERA_ORDER_TTL_SECONDS", "1"),
        ("TESSERA_SWEEP_INTERVAL_MS", "20"),
    ])
    .await;
    let (buyers, price, funds, stock) = (24_usize, 100, 10_000, 1_000);
    let item = product(&c, "Deadline", price, stock).await;
    let users = c.funded("racer", buyers as u32, funds).await;
    let outcomes: Vec<(String, String, StatusCode, Value)> =
        futures::future::join_all(users.iter().enumerate().map(|(i, (id, token))| {
            let (c, item) = (&c, &item);
            async move {
                let (s, created) = c
                    .send(
                        i,
                        Method::POST,
                        "/v1/orders",
                        token,
                        None,
                        Some(json!({"items": [{"product_id": item, "quantity": 1}], "idempotency_key": "late"})),
                    )
                    .await;
                assert_eq!(s, StatusCode::CREATED, "{created}");
                let o = created["order_id"].as_str().unwrap().to_owned();
                // the order's expiry is a second after its creation: aim
                // around it, from 300 ms before to 100 ms after its answer
                // came back (a debug build under this load takes tens of
                // milliseconds to decide)
                let offset = 700 + (i as u64 * 400 / buyers as u64);
                tokio::time::sleep(Duration::from_millis(offset)).await;
                let (s, body) = pay(c, i + 1, token, &o).await;
                if s != StatusCode::OK {
                    assert_eq!(
                        (s, code(&body)),
                        (StatusCode::UNPROCESSABLE_ENTITY, "order_expired"),
                        "{body}"
                    );
                }
                (id.clone(), o, s, body)
            }
        }))
        .await;

    c.until_none(
        "SELECT count(*) FROM shop_orders WHERE NOT settled",
        "every order is settled",
    )
    .await;
    let paid = paid_orders(&c.events("order", "OrderPaid").await);
    let expired = paid_orders(&c.events("order", "OrderExpired").await);
    let held = held_by_order(&c, &item).await;
    let points = points_by_reference(&c).await;
    for (_, o, s, body) in &outcomes {
        let was_paid = paid.contains(o);
        assert_ne!(
            was_paid,
            expired.contains(o),
            "{o}: exactly one of paid and expired"
        );
        assert_eq!(
            *s == StatusCode::OK,
            was_paid,
            "{o}: the answer matches the log: {body}"
        );
        assert_eq!(
            held.get(o).copied().unwrap_or(0),
            i64::from(was_paid),
            "{o}: stock"
        );
        assert_eq!(
            points.get(o).copied().unwrap_or(0),
            if was_paid { price } else { 0 },
            "{o}: points"
        );
    }
    assert_eq!(
        stock_in_log(&c, &item).await,
        i64::from(stock) - paid.len() as i64,
        "the stock adds up"
    );
    eprintln!(
        "order payment vs expiry: {} paid, {} expired (of {buyers})",
        paid.len(),
        expired.len()
    );
}
