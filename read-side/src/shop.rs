//! The shop's reads: products (by seller, by a piece of the name), the
//! most sold products of the last days, orders (their buyer's, their
//! sellers', an admin's), a buyer's order history and a seller's sales.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_documents::documents::{collections, pair_id};
use tessera_documents::shop::{day_id, DaySales, OrderDoc, PopularDayDoc, ProductDoc};
use tessera_documents::store::{ListQuery, Order, StoredDoc};
use tessera_http::auth::Principal;
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::{AdminUser, ApiQuery};
use tessera_http::ApiPath;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::cursor::Paging;
use crate::query::{
    page_of, page_schema, plain, store_failed, typed, typed_with_view, MinVersion, Page, PageParams,
};
use crate::reader::Reader;
use crate::ReadState;

pub fn router() -> OpenApiRouter<ReadState> {
    OpenApiRouter::new()
        .routes(routes!(products))
        .routes(routes!(popular))
        .routes(routes!(product))
        .routes(routes!(order))
        .routes(routes!(orders_by_ids))
        .routes(routes!(my_orders))
        .routes(routes!(my_sales))
        .routes(routes!(admin_orders))
}

/// Documents one search looks at for a page at most: a search whose page
/// is not full by then answers what it found and a cursor to go on.
const MAX_SCAN: usize = 1000;

/// Documents read from the store at a time while searching.
const SCAN_BATCH: usize = 200;

fn paging(
    rs: &ReadState,
    uri: &Uri,
    user: &Principal,
    limit: Option<usize>,
    cursor: Option<&str>,
) -> Result<Paging, ApiError> {
    Paging::for_list(&rs.cursors, uri.path(), &user.user_id, limit, cursor)
}

// ---- products ----

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProductItem {
    pub product_id: String,
    pub seller_id: String,
    pub name: String,
    pub price: i64,
    pub stock: u32,
}

page_schema!(ProductPage of ProductItem);

/// `?seller_id=&q=&limit=&cursor=`
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProductQuery {
    /// Only this seller's products.
    #[param(min_length = 1, max_length = 64)]
    pub seller_id: Option<String>,
    /// Only products whose name contains this (any case; not all blank).
    #[param(min_length = 1, max_length = 100, pattern = r"\S")]
    pub q: Option<String>,
    /// 1..=100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// Products in listing order, by seller and by a piece of the name. A
/// name search starts from the index of the query's first three
/// characters; a page that is not full after 1,000 products looked at
/// ends with a cursor to go on.
#[utoipa::path(get, path = "/v1/products", tag = "shop", params(ProductQuery), security(("bearer" = [])),
    responses((status = 200, body = ProductPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn products(
    Reader(rs, user): Reader,
    uri: Uri,
    ApiQuery(q): ApiQuery<ProductQuery>,
) -> Result<Json<Page<ProductItem>>, ApiError> {
    let page = paging(&rs, &uri, &user, q.limit, q.cursor.as_deref())?;
    if q.seller_id
        .as_ref()
        .is_some_and(|s| s.is_empty() || s.chars().count() > 64)
    {
        return Err(ApiError::invalid(
            "seller_id",
            "must have 1 to 64 characters",
        ));
    }
    if q.q
        .as_ref()
        .is_some_and(|n| n.trim().is_empty() || n.chars().count() > 100)
    {
        return Err(ApiError::invalid(
            "q",
            "must have 1 to 100 characters, not all blank",
        ));
    }
    let needle = q.q.as_deref().map(str::to_lowercase);
    // a name holding the query holds its first three characters as a piece
    let gram = needle
        .as_deref()
        .filter(|n| n.chars().count() >= 3)
        .map(first_gram);
    let filter = match (&q.seller_id, &gram) {
        (Some(seller), _) => Some(("seller_id", seller.as_str())),
        (None, Some(g)) => Some(("name_grams", g.as_str())),
        (None, None) => None,
    };
    let keep = |p: &ProductDoc| {
        q.seller_id.as_ref().is_none_or(|s| &p.seller_id == s)
            && needle
                .as_ref()
                .is_none_or(|n| p.name.to_lowercase().contains(n.as_str()))
    };
    let collection = rs.live(collections::PRODUCTS).await?;
    let (items, next) = scan(&rs, &collection, filter, &page, |d| {
        let (p, item): (ProductDoc, ProductItem) = typed_with_view(d.body)?;
        Ok(keep(&p).then_some(item))
    })
    .await?;
    Ok(Json(Page {
        items,
        next_cursor: next,
    }))
}

fn first_gram(needle: &str) -> String {
    needle.chars().take(3).collect()
}

/// Pages through the documents `filter` names, keeping what `keep` turns
/// into an item, until the page is full, the list ends or [`MAX_SCAN`]
/// documents were looked at. Returns the items and the next cursor.
async fn scan<T>(
    rs: &ReadState,
    collection: &str,
    filter: Option<(&str, &str)>,
    page: &Paging,
    keep: impl Fn(StoredDoc) -> Result<Option<T>, ApiError>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let mut items = Vec::new();
    let mut after = page.after.clone();
    let mut scanned = 0;
    loop {
        let batch = rs
            .docs
            .list(
                collection,
                ListQuery {
                    filter,
                    order: Order::Asc,
                    after: after.as_deref(),
                    limit: SCAN_BATCH,
                },
            )
            .await
            .map_err(|e| store_failed(&e))?;
        let ended = batch.len() < SCAN_BATCH;
        for d in batch {
            scanned += 1;
            let id = d.id.clone();
            if let Some(item) = keep(d)? {
                if items.len() == page.limit {
                    // one more than the page: there is a next page
                    return Ok((items, after.map(|a| page.next(&a))));
                }
                items.push(item);
            }
            after = Some(id);
        }
        if ended {
            return Ok((items, None));
        }
        if scanned >= MAX_SCAN {
            return Ok((items, after.map(|a| page.next(&a))));
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProductView {
    pub product_id: String,
    pub seller_id: String,
    pub name: String,
    pub description: Option<String>,
    pub price: i64,
    pub stock: u32,
    /// Units sold (taken by payments, less what cancels gave back).
    pub sold: u64,
    pub version: u64,
}

/// One product.
#[utoipa::path(get, path = "/v1/products/{product_id}", tag = "shop", params(("product_id" = String, Path), MinVersion),
    security(("bearer" = [])),
    responses((status = 200, body = ProductView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn product(
    Reader(rs, _): Reader,
    ApiPath(product_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<MinVersion>,
) -> Result<(HeaderMap, Json<ProductView>), (HeaderMap, ApiError)> {
    rs.view(collections::PRODUCTS, &product_id, q.min_version, "product")
        .await
}

// ---- popular products ----

/// `?days=&limit=`
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PopularQuery {
    /// The last this many UTC days, today included: 1..=30, default 3.
    #[param(minimum = 1, maximum = 30)]
    pub days: Option<u32>,
    /// 1..=50, default 5.
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PopularItem {
    pub product_id: String,
    pub name: String,
    /// Units sold over the days asked for.
    pub quantity: u64,
    /// Orders that bought it.
    pub orders: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PopularList {
    pub items: Vec<PopularItem>,
}

/// The products most sold over the last days (units in paid orders that
/// were not cancelled), most first; ties by orders, then by id. Reads one
/// small document per day, never the orders.
#[utoipa::path(get, path = "/v1/products/popular", tag = "shop", params(PopularQuery), security(("bearer" = [])),
    responses((status = 200, body = PopularList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn popular(
    Reader(rs, _): Reader,
    ApiQuery(q): ApiQuery<PopularQuery>,
) -> Result<Json<PopularList>, ApiError> {
    let days = q.days.unwrap_or(3);
    if !(1..=30).contains(&days) {
        return Err(ApiError::invalid("days", "must be between 1 and 30"));
    }
    let limit = q.limit.unwrap_or(5);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 50"));
    }
    let today = Utc::now().date_naive();
    let ids: Vec<String> = (0..days)
        .filter_map(|back| today.checked_sub_days(chrono::Days::new(u64::from(back))))
        .map(day_id)
        .collect();
    let found = rs
        .docs
        .get_many(&rs.live(collections::POPULAR_PRODUCTS).await?, &ids)
        .await
        .map_err(|e| store_failed(&e))?;
    let mut totals: BTreeMap<String, DaySales> = BTreeMap::new();
    for d in found {
        let day: PopularDayDoc = typed(d)?;
        for (product_id, sales) in day.products {
            let total = totals.entry(product_id).or_default();
            total.quantity += sales.quantity;
            total.orders += sales.orders;
        }
    }
    let mut ranked: Vec<(String, DaySales)> =
        totals.into_iter().filter(|(_, s)| s.quantity > 0).collect();
    ranked.sort_by(|(a, x), (b, y)| {
        (y.quantity, y.orders)
            .cmp(&(x.quantity, x.orders))
            .then_with(|| a.cmp(b))
    });
    ranked.truncate(limit);
    let ids: Vec<String> = ranked.iter().map(|(id, _)| id.clone()).collect();
    let names: BTreeMap<String, String> = rs
        .docs
        .get_many(&rs.live(collections::PRODUCTS).await?, &ids)
        .await
        .map_err(|e| store_failed(&e))?
        .into_iter()
        .map(|d| typed::<ProductDoc>(d).map(|p| (p.product_id, p.name)))
        .collect::<Result<_, _>>()?;
    let items = ranked
        .into_iter()
        .map(|(product_id, s)| PopularItem {
            name: names.get(&product_id).cloned().unwrap_or_default(),
            product_id,
            quantity: s.quantity,
            orders: s.orders,
        })
        .collect();
    Ok(Json(PopularList { items }))
}

// ---- orders ----

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderItemView {
    pub product_id: String,
    pub name: String,
    /// The price fixed when the order was created.
    pub price: i64,
    pub quantity: u32,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    pub order_id: String,
    pub buyer_id: String,
    pub items: Vec<OrderItemView>,
    /// `created`, `paying` (a payment is under way), `paid`, `cancelled` or
    /// `expired` (unpaid past its time).
    pub status: String,
    pub amount: i64,
    pub paid_amount: Option<i64>,
    pub coupon_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub version: u64,
}

/// Who may read an order: its buyer, the seller of one of its items, an
/// admin.
fn may_read(user: &Principal, o: &OrderDoc) -> bool {
    o.buyer_id == user.user_id || o.seller_ids.contains(&user.user_id) || user.is_admin()
}

/// One order (its buyer, the seller of an item, or an admin).
#[utoipa::path(get, path = "/v1/orders/{order_id}", tag = "shop", params(("order_id" = String, Path), MinVersion),
    security(("bearer" = [])),
    responses((status = 200, body = OrderView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn order(
    Reader(rs, user): Reader,
    ApiPath(order_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<MinVersion>,
) -> Result<(HeaderMap, Json<OrderView>), (HeaderMap, ApiError)> {
    let (headers, o, view): (_, OrderDoc, OrderView) = rs
        .one_with_view(collections::ORDERS, &order_id, q.min_version, "order")
        .await?;
    if !may_read(&user, &o) {
        return Err(plain(ApiError::forbidden(
            "this order is neither yours nor of your products",
        )));
    }
    Ok((headers, Json(view)))
}

/// `?ids=a,b,c`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrderIds {
    /// 1..=100 order ids of 1..=64 characters, comma separated.
    #[param(
        min_length = 1,
        max_length = 6499,
        pattern = r"^[^,]{1,64}(,[^,]{1,64}){0,99}$"
    )]
    pub ids: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderList {
    pub items: Vec<OrderView>,
}

/// The ids of `?ids=`, held to the documented pattern: 1 to 100 ids of 1
/// to 64 characters (characters, as the schema counts them, not bytes:
/// schemathesis sent 64 characters of several bytes each).
fn order_ids(ids: &str) -> Result<Vec<String>, ApiError> {
    let ids: Vec<String> = ids.split(',').map(str::to_owned).collect();
    if ids.len() > 100
        || ids
            .iter()
            .any(|id| id.is_empty() || id.chars().count() > 64)
    {
        return Err(ApiError::invalid(
            "ids",
            "must be 1 to 100 comma-separated ids",
        ));
    }
    Ok(ids)
}

/// Orders by id, in the order asked, leaving out the unknown ones and
/// those the caller may not read.
#[utoipa::path(get, path = "/v1/orders", tag = "shop", params(OrderIds), security(("bearer" = [])),
    responses((status = 200, body = OrderList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn orders_by_ids(
    Reader(rs, user): Reader,
    ApiQuery(q): ApiQuery<OrderIds>,
) -> Result<Json<OrderList>, ApiError> {
    let ids = order_ids(&q.ids)?;
    let mut found: BTreeMap<String, (OrderDoc, OrderView)> = rs
        .docs
        .get_many(&rs.live(collections::ORDERS).await?, &ids)
        .await
        .map_err(|e| store_failed(&e))?
        .into_iter()
        .map(|d| {
            let (o, view): (OrderDoc, OrderView) = typed_with_view(d.body)?;
            Ok((o.order_id.clone(), (o, view)))
        })
        .collect::<Result<_, ApiError>>()?;
    let items = ids
        .iter()
        .filter_map(|id| found.remove(id))
        .filter(|(o, _)| may_read(&user, o))
        .map(|(_, view)| view)
        .collect();
    Ok(Json(OrderList { items }))
}

/// `?status=&from=&to=&limit=&cursor=`
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrderQuery {
    /// Only orders with this status.
    #[param(inline)]
    pub status: Option<StatusFilter>,
    /// Only orders created at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Only orders created before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// 1..=100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    Created,
    Paying,
    Paid,
    Cancelled,
    Expired,
}

impl StatusFilter {
    fn name(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Paying => "paying",
            Self::Paid => "paid",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }
}

page_schema!(OrderPage of OrderView);

/// The id prefix of the UUIDv7s made at `t`: every order id created at or
/// after `t` sorts at or above it, every earlier one below.
fn time_prefix(t: DateTime<Utc>) -> String {
    let ms = u64::try_from(t.timestamp_millis()).unwrap_or(0);
    format!("{:08x}-{:04x}", ms >> 16, ms & 0xffff)
}

/// A page of orders newest first, from the index `filter` names, within
/// `[from, to)` of creation: order ids are time-ordered, so the range is
/// a range of ids and the page never reads outside it.
async fn order_page<T>(
    rs: &ReadState,
    collection: &str,
    filter: Option<(&str, &str)>,
    q: &OrderQuery,
    page: &Paging,
    view: impl Fn(StoredDoc) -> Result<T, ApiError>,
) -> Result<Json<Page<T>>, ApiError> {
    if let (Some(from), Some(to)) = (q.from, q.to) {
        if from >= to {
            return Ok(Json(Page {
                items: Vec::new(),
                next_cursor: None,
            }));
        }
    }
    let upper = page.after.clone().or_else(|| q.to.map(time_prefix));
    let lower = q.from.map(time_prefix);
    let found = rs
        .docs
        .list(
            collection,
            ListQuery {
                filter,
                order: Order::Desc,
                after: upper.as_deref(),
                limit: page.limit + 1,
            },
        )
        .await
        .map_err(|e| store_failed(&e))?;
    // the order id is the last part of a document id
    let key = |d: &StoredDoc| d.id.rsplit(':').next().unwrap_or_default().to_owned();
    let found: Vec<StoredDoc> = found
        .into_iter()
        .take_while(|d| lower.as_ref().is_none_or(|l| key(d) >= *l))
        .collect();
    page_of(found, page, view)
}

/// The caller's orders, newest first, by status and creation time.
#[utoipa::path(get, path = "/v1/me/orders", tag = "shop", params(OrderQuery), security(("bearer" = [])),
    responses((status = 200, body = OrderPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn my_orders(
    Reader(rs, user): Reader,
    uri: Uri,
    ApiQuery(q): ApiQuery<OrderQuery>,
) -> Result<Json<Page<OrderView>>, ApiError> {
    let page = paging(&rs, &uri, &user, q.limit, q.cursor.as_deref())?;
    let by_status = q.status.map(|s| pair_id(&user.user_id, s.name()));
    let filter = match &by_status {
        Some(key) => ("buyer_status", key.as_str()),
        None => ("buyer_id", user.user_id.as_str()),
    };
    let collection = rs.live(collections::USER_ORDERS).await?;
    order_page(&rs, &collection, Some(filter), &q, &page, typed).await
}

/// Every order, newest first, by status and creation time (admin).
#[utoipa::path(get, path = "/v1/admin/orders", tag = "shop", params(OrderQuery), security(("bearer" = [])),
    responses((status = 200, body = OrderPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn admin_orders(
    State(rs): State<ReadState>,
    AdminUser(admin): AdminUser,
    uri: Uri,
    ApiQuery(q): ApiQuery<OrderQuery>,
) -> Result<Json<Page<OrderView>>, ApiError> {
    let page = paging(&rs, &uri, &admin, q.limit, q.cursor.as_deref())?;
    let filter = q.status.map(|s| ("status", s.name()));
    let collection = rs.live(collections::ORDERS).await?;
    order_page(&rs, &collection, filter, &q, &page, typed).await
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SaleView {
    pub order_id: String,
    pub buyer_id: String,
    /// The caller's items of the order.
    pub items: Vec<OrderItemView>,
    /// The price of these items.
    pub amount: i64,
    /// The order's status.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
}

page_schema!(SalePage of SaleView);

/// The order lines of the caller's products, newest order first.
#[utoipa::path(get, path = "/v1/me/sales", tag = "shop", params(PageParams), security(("bearer" = [])),
    responses((status = 200, body = SalePage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn my_sales(
    Reader(rs, user): Reader,
    page: Paging,
) -> Result<Json<Page<SaleView>>, ApiError> {
    let collection = rs.live(collections::SELLER_SALES).await?;
    let all = OrderQuery::default();
    order_page(
        &rs,
        &collection,
        Some(("seller_id", &user.user_id)),
        &all,
        &page,
        typed,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::order_ids;

    #[test]
    fn order_ids_follow_the_documented_pattern_counting_characters() {
        let wide = "é".repeat(64); // 128 bytes, 64 characters
        assert_eq!(
            order_ids(&format!("a,{wide}")).unwrap(),
            ["a", wide.as_str()]
        );
        assert!(order_ids(&"é".repeat(65)).is_err());
        assert!(order_ids("a,,b").is_err());
        assert!(order_ids("").is_err());
        let hundred = vec!["x"; 100].join(",");
        assert_eq!(order_ids(&hundred).unwrap().len(), 100);
        assert!(order_ids(&format!("{hundred},x")).is_err());
    }
}
