//! Coupons (API.md "Coupons"): first come, first served, one per user.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::super::Client;
use super::Cast;

/// A campaign of one coupon, issued to the fan; its id.
pub async fn coupons(c: &Client, admin: &str, cast: &Cast) -> String {
    let Cast { fan, rival, .. } = cast.clone();
    let coupon = c
        .post(
            "/v1/coupons",
            admin,
            json!({"name": "Early bird", "total_quantity": 1, "discount_amount": 500}),
        )
        .await;
    let kid = coupon.body["coupon_id"].as_str().unwrap().to_owned();
    let mine = c
        .send(
            Method::POST,
            &format!("/v1/coupons/{kid}/issue"),
            &fan,
            None,
        )
        .await;
    assert_eq!(mine.status, StatusCode::CREATED, "{}", mine.body);
    c.refuses(
        Method::POST,
        &format!("/v1/coupons/{kid}/issue"),
        &rival,
        None,
        (StatusCode::CONFLICT, "sold_out"),
    )
    .await;
    c.refuses(
        Method::POST,
        &format!("/v1/coupons/{kid}/issue"),
        &fan,
        None,
        (StatusCode::CONFLICT, "already_issued"),
    )
    .await;
    let campaign = c
        .get(&format!("/v1/coupons/{kid}?min_version=2"), &fan)
        .await;
    assert_eq!(
        (
            campaign.body["issued"].as_u64(),
            campaign.body["remaining"].as_u64()
        ),
        (Some(1), Some(0))
    );

    kid
}
