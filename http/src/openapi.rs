//! What every OpenAPI document of Tessera shares.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::Modify;

/// Declares the `bearer` (JWT) security scheme the routes refer to.
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Documents the answers every route can give besides its own, each with
/// the error body: 400 (a bad query or path parameter), 401 on routes that
/// need a token, 413 and 415 on routes that take a body, 429 (abuse
/// limits), 500 and 503 (a store that does not answer, with `Retry-After`).
/// A route's own entry for one of them (a more precise description) stays.
/// Every error answer, the route's own too, gets an example body: the
/// first `code` its description names, or the status's usual code.
pub struct StandardErrors;

/// The code an error answer of `status` carries when its description names
/// none (API.md, Conventions).
fn usual_code(status: &str) -> &'static str {
    match status {
        "400" => "invalid_input",
        "401" => "unauthorized",
        "403" => "forbidden",
        "404" => "not_found",
        "409" => "conflict",
        "410" => "gone",
        "413" => "payload_too_large",
        "415" => "unsupported_media_type",
        "423" => "queue_not_active",
        "429" => "rate_limited",
        "503" => "unavailable",
        // a 422 names its domain rule's code in its description
        s if s.starts_with('4') => "invalid_input",
        _ => "internal_error",
    }
}

/// An example error body for a response without one.
fn with_example(status: &str, response: &mut Response) {
    let code = response
        .description
        .split('`')
        .nth(1)
        .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'))
        .unwrap_or_else(|| usual_code(status))
        .to_owned();
    let message = match response.description.split_once(": ") {
        Some((_, rest)) => rest.to_owned(),
        None if response.description.is_empty() => code.replace('_', " "),
        None => response.description.replace('`', ""),
    };
    for content in response.content.values_mut() {
        if content.example.is_none() && content.examples.is_empty() {
            content.example = Some(serde_json::json!({
                "error": { "code": code, "message": message, "details": {} }
            }));
        }
    }
}

fn error(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

fn complete(operation: &mut Operation) {
    let mut add = |status: &str, description: &str| {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error(description));
    };
    add(
        "400",
        "`invalid_input`: a parameter or the body is malformed or out of bounds",
    );
    add(
        "429",
        "`rate_limited`: too many requests; see `Retry-After`",
    );
    add("500", "`internal_error`: logged on our side");
    add(
        "503",
        "`unavailable`: a store did not answer in time; see `Retry-After`",
    );
    if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
        add("401", "`unauthorized`: no, an invalid or an expired token");
    }
    if operation.request_body.is_some() {
        add("413", "`payload_too_large`: the body is over 64 KiB");
        add(
            "415",
            "`unsupported_media_type`: the body is not sent as JSON",
        );
    }
    for (status, response) in operation.responses.responses.iter_mut() {
        if let (true, RefOr::T(response)) = (status.as_str() >= "400", response) {
            with_example(status, response);
        }
    }
}

impl Modify for StandardErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                complete(operation);
            }
        }
    }
}
