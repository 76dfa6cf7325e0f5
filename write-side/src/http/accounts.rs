//! Account commands and token issuance.

use axum::extract::State;
use axum::http::StatusCode;
use std::sync::LazyLock;
use std::time::Duration;
use tokio::sync::Semaphore;

use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{context, double_option, run, Version};
use crate::app::WriteState;
use crate::auth;
use crate::domain::account::AccountCommand;
use crate::domain::{char_len_within, limits, name_ok};
use crate::http::caller::Caller;
use tessera_http::auth::Role;
use tessera_http::error::{ApiError, ErrorBody};
use tessera_http::extract::{ApiJson, RequestId};

pub fn router() -> OpenApiRouter<WriteState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(token))
        .routes(routes!(update_profile))
        .routes(routes!(charge))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "kim@example.com", "password": "correct horse", "nickname": "kim"}))]
pub struct RegisterRequest {
    /// Unique, case-insensitive.
    #[schema(
        min_length = 3,
        max_length = 254,
        pattern = r"^[^@\s\u0000-\u001f\u007f-\u009f]+@[^@\s\u0000-\u001f\u007f-\u009f]+$"
    )]
    pub email: String,
    /// 8..=128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    /// 1..=32 characters.
    #[schema(
        min_length = 1,
        max_length = 32,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub nickname: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegisterResponse {
    pub account_id: String,
    pub version: u64,
}

/// Lower-cases and checks an email: one `@`, something on both sides, no
/// spaces, at most 254 characters.
pub fn normalize_email(email: &str) -> Result<String, ApiError> {
    // not trimmed: what the schema refuses is refused here too
    let email = email.to_lowercase();
    let valid = char_len_within(&email, 3, 254)
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if valid {
        Ok(email)
    } else {
        Err(ApiError::invalid("email", "not a valid email address"))
    }
}

fn check_password(password: &str) -> Result<(), ApiError> {
    let (min, max) = limits::PASSWORD;
    if char_len_within(password, min, max) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "password",
            format!("must have {min} to {max} characters"),
        ))
    }
}

/// Password work (argon2, ≈ 20 ms of a core each) at most one per core at
/// a time, so that a flood of logins cannot take every core from the rest;
/// a request that cannot start within two seconds is answered 503.
static PASSWORD_WORK: LazyLock<Semaphore> = LazyLock::new(|| {
    Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
});

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = tokio::time::timeout(Duration::from_secs(2), PASSWORD_WORK.acquire())
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many sign-ins at once; try again shortly",
            )
            .retry_after(1)
        })?
        .map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)
}

/// Register an account.
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = RegisterRequest,
    responses(
        (status = 201, body = RegisterResponse),
        (status = 400, body = ErrorBody, description = "invalid email, password or nickname"),
        (status = 409, body = ErrorBody, description = "`email_taken`"),
    ))]
pub async fn register(
    State(ws): State<WriteState>,
    RequestId(request_id): RequestId,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    let email = normalize_email(&req.email)?;
    check_password(&req.password)?;
    let (min, max) = limits::NICKNAME;
    if !name_ok(&req.nickname, min, max) {
        return Err(ApiError::invalid(
            "nickname",
            format!("must have {min} to {max} characters"),
        ));
    }
    let account_id = uuid::Uuid::now_v7().to_string();
    let password = req.password;
    let hash = blocking(move || auth::hash_password(&password))
        .await?
        .map_err(ApiError::internal)?;
    // Hold the email while the event commits (see store::credentials).
    let reservation = ws.credentials.reserve(&email, &account_id, &hash).await?;
    let command = AccountCommand::Register {
        email,
        nickname: req.nickname,
    };
    let ctx = context(&account_id, request_id);
    match ws
        .accounts
        .execute(&account_id, command, &ctx, |_| ())
        .await
    {
        Ok(done) => {
            reservation.confirm().await?;
            Ok((
                StatusCode::CREATED,
                Json(RegisterResponse {
                    account_id,
                    version: done.version,
                }),
            ))
        }
        Err(e) => {
            reservation.release().await;
            Err(e.into())
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "kim@example.com", "password": "correct horse"}))]
pub struct TokenRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// Exchange email and password for an access token.
#[utoipa::path(post, path = "/v1/auth/token", tag = "accounts", request_body = TokenRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody, description = "wrong email or password"),
    ))]
pub async fn token(
    State(ws): State<WriteState>,
    ApiJson(req): ApiJson<TokenRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let refused = || ApiError::unauthorized("wrong email or password");
    let Ok(email) = normalize_email(&req.email) else {
        return Err(refused());
    };
    let credential = ws.credentials.find(&email).await?;
    // Verify against a real hash even for an unknown email, so that the
    // answer's timing does not tell which emails exist.
    let (account_id, hash) = match credential {
        Some(c) => (Some(c.account_id), c.password_hash),
        None => (None, dummy_hash().to_owned()),
    };
    let password = req.password;
    let ok = blocking(move || auth::verify_password(&password, &hash)).await?;
    match account_id {
        Some(account_id) if ok => {
            let t = ws.auth.issue(&account_id, Role::User);
            Ok(Json(TokenResponse {
                access_token: t.access_token,
                token_type: "Bearer".into(),
                expires_in: t.expires_in,
            }))
        }
        _ => Err(refused()),
    }
}

fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| auth::hash_password("not a real password").unwrap_or_default())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"nickname": "kim", "profile_image": "https://img.example.com/kim.png"}))]
pub struct UpdateProfileRequest {
    #[schema(
        min_length = 1,
        max_length = 32,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub nickname: Option<String>,
    /// `null` removes the image; leaving the field out keeps it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, nullable, min_length = 1, max_length = 2048, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$")]
    pub profile_image: Option<Option<String>>,
}

/// Change the caller's nickname or profile image.
#[utoipa::path(patch, path = "/v1/accounts/me", tag = "accounts", request_body = UpdateProfileRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = Version),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "the token's account does not exist"),
    ))]
pub async fn update_profile(
    Caller(ws, user, request_id): Caller,
    ApiJson(req): ApiJson<UpdateProfileRequest>,
) -> Result<Json<Version>, ApiError> {
    let command = AccountCommand::UpdateProfile {
        nickname: req.nickname,
        profile_image: req.profile_image,
    };
    let version = run(&ws.accounts, &user.user_id, command, &user, request_id).await?;
    Ok(Json(Version { version }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 500, "idempotency_key": "charge-2026-12-04-1"}))]
pub struct ChargeRequest {
    /// Whole points, 1..=1,000,000.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub amount: i64,
    /// Repeating a key repeats the first answer and charges nothing.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub idempotency_key: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ChargeResponse {
    pub balance: i64,
    pub version: u64,
}

/// Charge points to the caller's account, idempotently per key.
#[utoipa::path(post, path = "/v1/accounts/me/charge", tag = "accounts", request_body = ChargeRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = ChargeResponse, description = "the balance and version right after this key's charge"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`idempotency_key_reused` (other amount) or `balance_limit_exceeded`"),
    ))]
pub async fn charge(
    Caller(ws, user, request_id): Caller,
    ApiJson(req): ApiJson<ChargeRequest>,
) -> Result<Json<ChargeResponse>, ApiError> {
    let (min, max) = limits::CHARGE_AMOUNT;
    if !(min..=max).contains(&req.amount) {
        return Err(ApiError::invalid(
            "amount",
            format!("must be between {min} and {max}"),
        ));
    }
    let (min, max) = limits::IDEMPOTENCY_KEY;
    if !name_ok(&req.idempotency_key, min, max) {
        return Err(ApiError::invalid(
            "idempotency_key",
            format!("must have {min} to {max} characters"),
        ));
    }
    let key = req.idempotency_key.clone();
    let command = AccountCommand::Charge {
        amount: req.amount,
        idempotency_key: req.idempotency_key,
    };
    let ctx = context(&user.user_id, request_id);
    let done = ws
        .accounts
        .execute(&user.user_id, command, &ctx, move |a| {
            a.charge_receipt(&key)
        })
        .await?;
    let receipt = done
        .output
        .ok_or_else(|| ApiError::internal("an accepted charge left no receipt"))?;
    Ok(Json(ChargeResponse {
        balance: receipt.balance,
        version: receipt.version,
    }))
}
