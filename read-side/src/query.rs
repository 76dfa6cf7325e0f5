//! Shared query machinery: `min_version` waits, cursors, pages.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_documents::store::{DocumentStore, ListQuery, Order, StoreError, StoredDoc};
use tessera_http::error::ApiError;
use utoipa::{IntoParams, ToSchema};

use crate::cursor::Paging;
use crate::ReadSide;

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

/// `?min_version=`
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MinVersion {
    /// Wait (bounded) until the document reflects at least this version.
    #[param(minimum = 0, maximum = 9_007_199_254_740_991_u64)]
    #[serde(default, deserialize_with = "version_param")]
    pub min_version: Option<u64>,
}

/// Versions stay below 2^53, exact in every JSON number type.
pub const MAX_VERSION: u64 = (1 << 53) - 1;

fn version_param<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<u64>::deserialize(d)? {
        Some(n) if n > MAX_VERSION => Err(serde::de::Error::custom(format!(
            "must be at most {MAX_VERSION}"
        ))),
        v => Ok(v),
    }
}

/// `?limit=&cursor=`
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// 1..=100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page (opaque, valid for this list and
    /// caller only).
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// `?from=&to=` (RFC 3339; `to` exclusive).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DateRange {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// A page of a list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Declares `$name`, a page of `$item` under its own name in the OpenAPI
/// document (`ConcertPage`, `MessagePage`): the handlers answer
/// [`Page<T>`], whose generic schema would name every list's page alike.
macro_rules! page_schema {
    ($name:ident of $item:ty) => {
        #[doc = concat!("A page of `", stringify!($item), "`.")]
        #[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        pub struct $name {
            pub items: Vec<$item>,
            /// Pass as `cursor` for the next page; `null` on the last page.
            pub next_cursor: Option<String>,
        }
    };
}
pub(crate) use page_schema;

pub fn store_failed(e: &StoreError) -> ApiError {
    ApiError::unavailable(e)
}

/// A document read, possibly after waiting for a version.
pub struct Fetched {
    pub doc: Option<StoredDoc>,
    /// The document is still older than the `min_version` asked for.
    pub stale: bool,
}

impl Fetched {
    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if self.stale {
            h.insert("x-stale", HeaderValue::from_static("true"));
        }
        h
    }
}

fn version_of(doc: &StoredDoc) -> u64 {
    doc.body.get("version").and_then(Value::as_u64).unwrap_or(0)
}

/// Reads a document; with `min_version`, waits up to `wait` for it to reach
/// that version. Wakes on the store's change signal where it has one and
/// polls otherwise.
pub async fn fetch(
    docs: &dyn DocumentStore,
    collection: &str,
    id: &str,
    min_version: Option<u64>,
    wait: Duration,
) -> Result<Fetched, ApiError> {
    let read = || async { docs.get(collection, id).await.map_err(|e| store_failed(&e)) };
    let Some(min) = min_version else {
        return Ok(Fetched {
            doc: read().await?,
            stale: false,
        });
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = docs.changes();
    let mut poll = Duration::from_millis(5);
    loop {
        if let Some(c) = &mut changes {
            c.borrow_and_update();
        }
        let doc = read().await?;
        if doc.as_ref().is_some_and(|d| version_of(d) >= min) {
            return Ok(Fetched { doc, stale: false });
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(Fetched { doc, stale: true });
        }
        let nap = (deadline - now).min(poll);
        match &mut changes {
            Some(c) => {
                let _ = tokio::time::timeout(deadline - now, c.changed()).await;
            }
            None => {
                tokio::time::sleep(nap).await;
                poll = (poll * 2).min(Duration::from_millis(50));
            }
        }
    }
}

/// Deserializes a stored document into its typed shape: its document type,
/// or straight into a view. A view names the document fields it shows and
/// serde leaves the rest behind, so a view that only picks fields needs no
/// mapping code. `view_fields` checks that each view field is one of its
/// document's.
pub fn typed<T: serde::de::DeserializeOwned>(doc: StoredDoc) -> Result<T, ApiError> {
    serde_json::from_value(doc.body).map_err(ApiError::internal)
}

/// A stored document read twice: whole, to decide who may see it, and as
/// the view the caller gets.
pub fn typed_with_view<D, V>(body: Value) -> Result<(D, V), ApiError>
where
    D: serde::de::DeserializeOwned,
    V: serde::de::DeserializeOwned,
{
    let whole = D::deserialize(&body).map_err(ApiError::internal)?;
    let view = serde_json::from_value(body).map_err(ApiError::internal)?;
    Ok((whole, view))
}

/// One page of the documents whose indexed `field` holds `value`, in id
/// order, each turned into its view.
pub async fn list_page<T>(
    docs: &dyn DocumentStore,
    collection: &str,
    filter: Option<(&str, &str)>,
    order: Order,
    page: &Paging,
    view: impl Fn(StoredDoc) -> Result<T, ApiError>,
) -> Result<Json<Page<T>>, ApiError> {
    let (limit, after) = (page.limit, page.after.as_deref());
    // one more than asked: it only tells whether there is a next page
    let found = docs
        .list(
            collection,
            ListQuery {
                filter,
                order,
                after,
                limit: limit + 1,
            },
        )
        .await
        .map_err(|e| store_failed(&e))?;
    page_of(found, page, view)
}

/// A page from what a list read found (one more than the page holds, when
/// there is a next page), each document turned into its view.
pub fn page_of<T>(
    mut found: Vec<StoredDoc>,
    page: &Paging,
    view: impl Fn(StoredDoc) -> Result<T, ApiError>,
) -> Result<Json<Page<T>>, ApiError> {
    let more = found.len() > page.limit;
    found.truncate(page.limit);
    let next_cursor = if more {
        found.last().map(|d| page.next(&d.id))
    } else {
        None
    };
    let items = found.into_iter().map(view).collect::<Result<_, _>>()?;
    Ok(Json(Page { items, next_cursor }))
}

impl ReadSide {
    /// The document `id` of `projection`'s live collection, read with
    /// `min_version` (waiting up to the configured time if asked), typed:
    /// 404 naming `what` in the error shape when missing, `X-Stale` when
    /// the wait ran out.
    pub(crate) async fn one<D: serde::de::DeserializeOwned>(
        &self,
        projection: &str,
        id: &str,
        min_version: Option<u64>,
        what: &str,
    ) -> Result<(HeaderMap, D), (HeaderMap, ApiError)> {
        let collection = self.live(projection).await.map_err(plain)?;
        let fetched = fetch(
            &*self.docs,
            &collection,
            id,
            min_version,
            self.min_version_wait,
        )
        .await
        .map_err(plain)?;
        let headers = fetched.headers();
        let Some(doc) = fetched.doc else {
            return Err((headers, ApiError::not_found(what)));
        };
        let typed = typed(doc).map_err(|e| (headers.clone(), e))?;
        Ok((headers, typed))
    }

    /// [`Self::one`], answered as it is: for views that only pick fields of
    /// their document.
    pub(crate) async fn view<V: serde::de::DeserializeOwned>(
        &self,
        projection: &str,
        id: &str,
        min_version: Option<u64>,
        what: &str,
    ) -> Result<(HeaderMap, Json<V>), (HeaderMap, ApiError)> {
        let (headers, view) = self.one(projection, id, min_version, what).await?;
        Ok((headers, Json(view)))
    }

    /// [`Self::one`] read both whole and as its view: for a document whose
    /// other fields decide whether the caller may see it (its owner, its
    /// tombstone).
    pub(crate) async fn one_with_view<D, V>(
        &self,
        projection: &str,
        id: &str,
        min_version: Option<u64>,
        what: &str,
    ) -> Result<(HeaderMap, D, V), (HeaderMap, ApiError)>
    where
        D: serde::de::DeserializeOwned,
        V: serde::de::DeserializeOwned,
    {
        let (headers, body): (_, Value) = self.one(projection, id, min_version, what).await?;
        match typed_with_view(body) {
            Ok((whole, view)) => Ok((headers, whole, view)),
            Err(e) => Err((headers, e)),
        }
    }
}

/// An error answer without extra headers.
pub fn plain(e: ApiError) -> (HeaderMap, ApiError) {
    (HeaderMap::new(), e)
}
