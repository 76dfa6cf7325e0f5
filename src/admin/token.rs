//! `admin token`: an access token for a user or an operator.

use std::io::Write as _;
use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::json;
use tessera_http::auth::Role;

use crate::cli::RoleArg;
use crate::settings::Settings;
use crate::wiring::{self};

use super::say;

pub(super) fn token(
    s: &Settings,
    user: &str,
    role: RoleArg,
    ttl_seconds: Option<u64>,
    json: bool,
) -> Result<()> {
    if user.trim().is_empty() {
        bail!("--user must not be empty");
    }
    let auth = wiring::authenticator(s, &wiring::jwt_secret(s, s.database_url.is_none())?)?;
    let role = match role {
        RoleArg::User => Role::User,
        RoleArg::Admin => Role::Admin,
    };
    let ttl = ttl_seconds.map_or_else(|| s.token_ttl(), Duration::from_secs);
    let token = auth.issue_with_ttl(user, role, ttl);
    if json {
        say!(
            "{}",
            json!({ "access_token": token.access_token, "token_type": "Bearer", "expires_in": token.expires_in })
        )?;
    } else {
        say!("{}", token.access_token)?;
    }
    Ok(())
}
