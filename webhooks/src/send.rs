//! One delivery: `POST url` with the envelope as the body, signed, through a
//! client that follows no redirect and connects only where the
//! [`UrlPolicy`] allows.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, USER_AGENT};
use tessera_events::Envelope;
use uuid::Uuid;

use crate::signature::{sign, SIGNATURE_HEADER};
use crate::store::Webhook;
use crate::target::{UrlPolicy, UrlRefused};

pub const EVENT_ID_HEADER: &str = "x-tessera-event-id";
pub const EVENT_TYPE_HEADER: &str = "x-tessera-event-type";
pub const WEBHOOK_ID_HEADER: &str = "x-tessera-webhook-id";
pub const ATTEMPT_HEADER: &str = "x-tessera-delivery-attempt";

/// Why a delivery did not go through.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the receiver answered {0}")]
    Status(reqwest::StatusCode),
    #[error("{0}")]
    Transport(#[source] reqwest::Error),
    #[error("the URL is not allowed: {0}")]
    Target(#[source] UrlRefused),
}

/// What a delivery carries besides its body.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub event_id: Uuid,
    pub event_type: &'a str,
    /// From 1.
    pub number: u32,
    /// The trace of the command that caused the event: a receiver that
    /// traces continues it.
    pub traceparent: Option<&'a str>,
}

impl<'a> Attempt<'a> {
    pub fn of(envelope: &'a Envelope, number: u32) -> Self {
        Self {
            event_id: envelope.event_id,
            event_type: &envelope.event_type,
            number,
            traceparent: envelope.metadata.traceparent.as_deref(),
        }
    }
}

/// The delivery client.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: UrlPolicy,
}

impl Sender {
    pub fn new(policy: UrlPolicy, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            // a redirect could lead anywhere, past the policy
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(policy.resolver())
            .build()?;
        Ok(Self { client, policy })
    }

    /// Sends `body` (the exact bytes signed) to the webhook; a 2xx answer is
    /// a delivery, anything else or no answer within the timeout is not.
    pub async fn send(
        &self,
        webhook: &Webhook,
        attempt: Attempt<'_>,
        body: Vec<u8>,
    ) -> Result<(), Refused> {
        let url = self
            .policy
            .check_written(&webhook.url)
            .map_err(Refused::Target)?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("tessera-webhooks/", env!("CARGO_PKG_VERSION"))),
        );
        let signature = sign(webhook.secret.as_bytes(), &body);
        for (name, value) in [
            (SIGNATURE_HEADER, signature),
            (EVENT_ID_HEADER, attempt.event_id.to_string()),
            (EVENT_TYPE_HEADER, attempt.event_type.to_owned()),
            (WEBHOOK_ID_HEADER, webhook.webhook_id.to_string()),
            (ATTEMPT_HEADER, attempt.number.to_string()),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        if let Some(value) = attempt
            .traceparent
            .and_then(|t| HeaderValue::from_str(t).ok())
        {
            headers.insert("traceparent", value);
        }
        let answer = self
            .client
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| Refused::Transport(e.without_url()))?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(Refused::Status(answer.status()))
        }
    }
}
