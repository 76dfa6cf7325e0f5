//! Conditional reads: every successful JSON answer of the read API carries a
//! strong `ETag` (a hash of the body it sends), and a `GET` whose
//! `If-None-Match` names it is answered `304 Not Modified` with no body.
//!
//! The tag hashes what is sent, not the document's `version`: some documents
//! carry fields another aggregate feeds (a post's author nickname), so equal
//! versions do not mean equal bodies. A client polling a document that did
//! not change downloads and parses nothing.

use std::hash::{Hash, Hasher};

use axum::body::HttpBody;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header::{CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

/// The largest body that gets a tag; larger answers (long pages) pass
/// through untouched rather than being held in memory twice.
const MAX_TAGGED: usize = 256 * 1024;

pub async fn conditional(req: Request, next: Next) -> Response {
    if req.method() != Method::GET {
        return next.run(req).await;
    }
    let wanted = req.headers().get(IF_NONE_MATCH).cloned();
    let res = next.run(req).await;
    let json = res
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if res.status() != StatusCode::OK || !json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    if body
        .size_hint()
        .exact()
        .is_none_or(|n| n > MAX_TAGGED as u64)
    {
        return Response::from_parts(parts, body);
    }
    let bytes: Bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let tag = tag_of(&bytes);
    if wanted.as_ref().is_some_and(|w| matches(w, &tag)) {
        let mut not_modified = Response::new(Body::empty());
        *not_modified.status_mut() = StatusCode::NOT_MODIFIED;
        not_modified.headers_mut().insert(ETAG, tag);
        return not_modified;
    }
    parts.headers.insert(ETAG, tag);
    Response::from_parts(parts, Body::from(bytes))
}

/// A strong tag: 64 bits of SipHash over the body, in quotes.
fn tag_of(body: &[u8]) -> HeaderValue {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    HeaderValue::from_str(&format!("\"{:016x}\"", h.finish()))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// `If-None-Match: *`, one tag, or a list; weak tags compare by their
/// opaque part (RFC 9110 §13.1.2 uses the weak comparison here).
fn matches(wanted: &HeaderValue, tag: &HeaderValue) -> bool {
    let Ok(wanted) = wanted.to_str() else {
        return false;
    };
    let tag = tag.to_str().unwrap_or_default();
    wanted
        .split(',')
        .map(str::trim)
        .any(|w| w == "*" || w.trim_start_matches("W/") == tag)
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        Router::new()
            .route(
                "/doc",
                get(|| async { axum::Json(serde_json::json!({"v": 1})) }),
            )
            .route("/text", get(|| async { "plain" }))
            .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
            .layer(axum::middleware::from_fn(conditional))
    }

    async fn get_with(path: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(t) = if_none_match {
            req = req.header(IF_NONE_MATCH, t);
        }
        app()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_json_answer_is_tagged_and_its_tag_answers_304_without_a_body() {
        let first = get_with("/doc", None).await;
        assert_eq!(first.status(), StatusCode::OK);
        let tag = first.headers()[ETAG].to_str().unwrap().to_owned();
        assert!(tag.starts_with('"') && tag.len() == 18, "{tag}");
        let body = first.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"v":1}"#);

        for sent in [
            tag.clone(),
            format!("W/{tag}"),
            format!("\"other\", {tag}"),
            "*".into(),
        ] {
            let again = get_with("/doc", Some(&sent)).await;
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{sent}");
            assert_eq!(again.headers()[ETAG].to_str().unwrap(), tag);
            assert!(again
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .is_empty());
        }
        let changed = get_with("/doc", Some("\"0000000000000000\"")).await;
        assert_eq!(changed.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn errors_and_other_content_are_left_alone() {
        let missing = get_with("/missing", Some("*")).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert!(missing.headers().get(ETAG).is_none());
        let text = get_with("/text", Some("*")).await;
        assert_eq!(text.status(), StatusCode::OK);
        assert!(text.headers().get(ETAG).is_none());
    }
}
