//! The shop (API.md "Shop"): products listed and edited by their seller,
//! orders at the prices of their creation, a payment that takes every
//! item's stock, the coupon and the points or none of them, a cancel that
//! gives everything back once, an unpaid order that expires, and the
//! reads: products by seller and name, the most sold, a buyer's history, a
//! seller's sales, orders by id and an admin's listing. Expects the order
//! TTL to be a few seconds.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::super::Client;

fn str_of(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"))
        .to_owned()
}

/// Waits until the caller's balance reads `want`.
async fn balance_is(c: &Client, token: &str, want: i64, what: &str) {
    c.get_until("/v1/accounts/me", token, what, |b| {
        b["balance"].as_i64() == Some(want)
    })
    .await;
}

/// Waits until the product reads `stock` and `sold`.
async fn stock_is(c: &Client, token: &str, product: &str, stock: u64, sold: u64) {
    c.get_until(
        &format!("/v1/products/{product}"),
        token,
        &format!("product {product} at stock {stock}, sold {sold}"),
        |b| b["stock"].as_u64() == Some(stock) && b["sold"].as_u64() == Some(sold),
    )
    .await;
}

pub async fn shop(c: &Client, admin: &str) {
    let (seller_id, seller) = c.register("seller@example.com", "seller").await;
    let (_, buyer) = c.register("buyer@example.com", "buyer").await;
    let (_, stranger) = c.register("stranger@example.com", "stranger").await;

    // --- products: any user sells, only the seller edits
    let listed = c
        .post(
            "/v1/products",
            &seller,
            json!({"name": "Desk Lamp", "price": 500, "stock": 2, "description": "warm"}),
        )
        .await;
    assert_eq!(listed.status, StatusCode::CREATED, "{}", listed.body);
    let lamp = str_of(&listed.body, "product_id");
    let desk = str_of(
        &c.post(
            "/v1/products",
            &seller,
            json!({"name": "Oak desk", "price": 300, "stock": 5}),
        )
        .await
        .body,
        "product_id",
    );
    for (body, field) in [
        (json!({"name": "", "price": 1, "stock": 1}), "name"),
        (json!({"name": "a\u{0}b", "price": 1, "stock": 1}), "name"),
        (json!({"name": "x", "price": 0, "stock": 1}), "price"),
        (
            json!({"name": "x", "price": 10_000_001, "stock": 1}),
            "price",
        ),
        (
            json!({"name": "x", "price": 1, "stock": 1_000_001}),
            "stock",
        ),
    ] {
        let a = c.post("/v1/products", &seller, body.clone()).await;
        assert_eq!(
            (a.status, a.body["error"]["details"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body}: {}",
            a.body
        );
    }
    c.refuses(
        Method::POST,
        "/v1/products",
        &seller,
        Some(json!({"name": "x", "price": 1, "stock": 1, "colour": "red"})),
        (StatusCode::BAD_REQUEST, "invalid_input"),
    )
    .await;
    c.refuses(
        Method::PATCH,
        &format!("/v1/products/{lamp}"),
        &stranger,
        Some(json!({"price": 1})),
        (StatusCode::FORBIDDEN, "forbidden"),
    )
    .await;
    c.refuses(
        Method::POST,
        &format!("/v1/products/{lamp}/restock"),
        &stranger,
        Some(json!({"quantity": 1})),
        (StatusCode::FORBIDDEN, "forbidden"),
    )
    .await;

    // --- an order fixes its prices at creation; its key makes it once
    let charged = c
        .post(
            "/v1/accounts/me/charge",
            &buyer,
            json!({"amount": 2000, "idempotency_key": "shop"}),
        )
        .await;
    assert_eq!(charged.status, StatusCode::OK, "{}", charged.body);
    let order_of = |items: Value, key: &str| json!({"items": items, "idempotency_key": key});
    let first = c
        .post(
            "/v1/orders",
            &buyer,
            order_of(
                json!([{"product_id": lamp, "quantity": 1}, {"product_id": desk, "quantity": 2}]),
                "first",
            ),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(
        (first.body["status"].as_str(), first.body["amount"].as_i64()),
        (Some("created"), Some(1100))
    );
    let o1 = str_of(&first.body, "order_id");
    let again = c
        .post(
            "/v1/orders",
            &buyer,
            order_of(json!([{"product_id": desk, "quantity": 9}]), "first"),
        )
        .await;
    assert_eq!(
        (
            again.status,
            again.body["order_id"].as_str(),
            again.body["amount"].as_i64()
        ),
        (StatusCode::CREATED, Some(o1.as_str()), Some(1100)),
        "a repeated key answers its order"
    );
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"product_id": format!("p{i}"), "quantity": 1}))
        .collect();
    for (items, status, code) in [
        (json!([]), StatusCode::BAD_REQUEST, "invalid_input"),
        (json!(many), StatusCode::BAD_REQUEST, "invalid_input"),
        (
            json!([{"product_id": lamp, "quantity": 101}]),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!([{"product_id": lamp, "quantity": 60}, {"product_id": lamp, "quantity": 60}]),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!([{"product_id": "no-such-product", "quantity": 1}]),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        c.refuses(
            Method::POST,
            "/v1/orders",
            &buyer,
            Some(order_of(items, "bad")),
            (status, code),
        )
        .await;
    }
    let edited = c
        .send(
            Method::PATCH,
            &format!("/v1/products/{lamp}"),
            &seller,
            Some(json!({"price": 900})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);

    // --- reading an order: its buyer, its seller, an admin
    let seen = c
        .get(
            &format!("/v1/orders/{o1}?min_version={}", first.body["version"]),
            &seller,
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(seen.body["items"][0]["price"], 500, "the price of creation");
    c.refuses(
        Method::GET,
        &format!("/v1/orders/{o1}"),
        &stranger,
        None,
        (StatusCode::FORBIDDEN, "forbidden"),
    )
    .await;
    c.refuses(
        Method::POST,
        &format!("/v1/orders/{o1}/payment"),
        &stranger,
        Some(json!({})),
        (StatusCode::FORBIDDEN, "forbidden"),
    )
    .await;

    // --- payment: stock, points, once
    let paid = c
        .post(&format!("/v1/orders/{o1}/payment"), &buyer, json!({}))
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{}", paid.body);
    assert_eq!(
        paid.body,
        json!({"order_id": o1, "status": "paid", "paid_amount": 1100, "balance": 900})
    );
    let repeat = c
        .post(&format!("/v1/orders/{o1}/payment"), &buyer, json!({}))
        .await;
    assert_eq!(
        repeat.body, paid.body,
        "a repeated payment answers the same"
    );
    stock_is(c, &buyer, &lamp, 1, 1).await;
    stock_is(c, &buyer, &desk, 3, 2).await;
    let popular = c
        .get_until(
            "/v1/products/popular?days=1&limit=5",
            &buyer,
            "the sales are counted",
            |b| b["items"].as_array().is_some_and(|i| i.len() == 2),
        )
        .await;
    assert_eq!(
        popular["items"],
        json!([
            {"product_id": desk, "name": "Oak desk", "quantity": 2, "orders": 1},
            {"product_id": lamp, "name": "Desk Lamp", "quantity": 1, "orders": 1},
        ])
    );

    // --- a refused product gives back the ones taken before it
    let short = c
        .post(
            "/v1/orders",
            &buyer,
            order_of(
                json!([{"product_id": lamp, "quantity": 1}, {"product_id": desk, "quantity": 4}]),
                "short",
            ),
        )
        .await;
    let o2 = str_of(&short.body, "order_id");
    let refused = c
        .post(&format!("/v1/orders/{o2}/payment"), &buyer, json!({}))
        .await;
    assert_eq!(
        (refused.status, refused.body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("out_of_stock")),
        "{}",
        refused.body
    );
    balance_is(c, &buyer, 900, "no points spent").await;
    // --- points refused: the stock goes back
    let dear = c
        .post(
            "/v1/orders",
            &buyer,
            order_of(
                json!([{"product_id": lamp, "quantity": 1}, {"product_id": desk, "quantity": 1}]),
                "dear",
            ),
        )
        .await;
    assert_eq!(dear.body["amount"], 1200, "the lamp's new price");
    let o3 = str_of(&dear.body, "order_id");
    c.refuses(
        Method::POST,
        &format!("/v1/orders/{o3}/payment"),
        &buyer,
        Some(json!({})),
        (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_points"),
    )
    .await;
    balance_is(c, &buyer, 900, "no points spent").await;
    // listed, taken, edited, then taken and given back twice
    let product = c
        .get(&format!("/v1/products/{lamp}?min_version=7"), &buyer)
        .await;
    assert_eq!(
        (
            product.body["stock"].as_u64(),
            product.body["sold"].as_u64(),
            product.body["version"].as_u64()
        ),
        (Some(1), Some(1), Some(7)),
        "{}",
        product.body
    );
    stock_is(c, &buyer, &desk, 3, 2).await;

    // --- cancelling a paid order gives everything back, once
    let cancelled = c
        .post(&format!("/v1/orders/{o1}/cancel"), &buyer, json!({}))
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    let again = c
        .post(&format!("/v1/orders/{o1}/cancel"), &buyer, json!({}))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    balance_is(c, &buyer, 2000, "refunded once").await;
    stock_is(c, &buyer, &lamp, 2, 0).await;
    stock_is(c, &buyer, &desk, 5, 0).await;
    c.get_until(
        "/v1/products/popular?days=1",
        &buyer,
        "a cancelled order leaves the counts",
        |b| b["items"].as_array().is_some_and(Vec::is_empty),
    )
    .await;

    // --- an unpaid order expires and holds nothing
    c.get_until(
        &format!("/v1/orders/{o2}"),
        &buyer,
        "the unpaid order expires",
        |b| b["status"] == "expired",
    )
    .await;
    c.refuses(
        Method::POST,
        &format!("/v1/orders/{o2}/payment"),
        &buyer,
        Some(json!({})),
        (StatusCode::UNPROCESSABLE_ENTITY, "order_expired"),
    )
    .await;

    // --- the reads
    let history = c
        .get_until("/v1/me/orders", &buyer, "the buyer's three orders", |b| {
            b["items"].as_array().is_some_and(|i| i.len() == 3)
        })
        .await;
    let ids: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [o3.as_str(), &o2, &o1], "newest first");
    let cancelled = c.get("/v1/me/orders?status=cancelled", &buyer).await;
    assert_eq!(cancelled.body["items"][0]["order_id"], o1.as_str());
    assert_eq!(cancelled.body["items"].as_array().unwrap().len(), 1);
    let paged = c.get("/v1/me/orders?limit=2", &buyer).await;
    let cursor = paged.body["next_cursor"].as_str().unwrap().to_owned();
    let rest = c
        .get(&format!("/v1/me/orders?limit=2&cursor={cursor}"), &buyer)
        .await;
    assert_eq!(rest.body["items"][0]["order_id"], o1.as_str());
    assert!(rest.body["next_cursor"].is_null());
    let future = c
        .get("/v1/me/orders?from=2999-01-01T00:00:00Z", &buyer)
        .await;
    assert_eq!(future.body["items"], json!([]));
    let past = c.get("/v1/me/orders?to=2000-01-01T00:00:00Z", &buyer).await;
    assert_eq!(past.body["items"], json!([]));
    let both = c
        .get(&format!("/v1/orders?ids={o1},{o3},nope"), &buyer)
        .await;
    let got: Vec<&str> = both.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [o1.as_str(), &o3]);
    let hidden = c.get(&format!("/v1/orders?ids={o1}"), &stranger).await;
    assert_eq!(hidden.body["items"], json!([]), "not the stranger's");
    let sales = c
        .get_until("/v1/me/sales", &seller, "the seller's lines", |b| {
            b["items"].as_array().is_some_and(|i| i.len() == 3)
        })
        .await;
    assert_eq!(sales["items"][2]["order_id"], o1.as_str());
    assert_eq!(sales["items"][2]["status"], "cancelled");
    assert_eq!(sales["items"][2]["amount"], 1100);
    let all = c.get("/v1/admin/orders?status=expired", admin).await;
    assert!(
        all.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["order_id"] == o2.as_str()),
        "{}",
        all.body
    );
    c.refuses(
        Method::GET,
        "/v1/admin/orders",
        &buyer,
        None,
        (StatusCode::FORBIDDEN, "forbidden"),
    )
    .await;
    let mine = c
        .get_until(
            &format!("/v1/products?seller_id={seller_id}"),
            &buyer,
            "the seller's products",
            |b| b["items"].as_array().is_some_and(|i| i.len() == 2),
        )
        .await;
    assert_eq!(mine["items"][0]["product_id"], lamp.as_str());
    let found = c.get("/v1/products?q=LAMP", &buyer).await;
    let names: Vec<&str> = found.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Desk Lamp") && !names.contains(&"Oak desk"),
        "{names:?}"
    );
    let short_query = c.get("/v1/products?q=oa", &buyer).await;
    assert!(short_query.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["product_id"] == desk.as_str()));
}
