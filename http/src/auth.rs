//! Authentication: JWT access tokens (HS256). Password hashes live with the
//! write side, the only process that checks passwords.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub role: Role,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
    jti: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("token expired")]
    Expired,
    #[error("invalid token")]
    Invalid,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("the JWT secret must be at least 32 bytes (it has {0})")]
    SecretTooShort(usize),
}

/// An issued access token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: u64,
}

/// Issues and verifies access tokens. Expiry, issuer and audience are checked.
pub struct Authenticator {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl Authenticator {
    pub const MIN_SECRET_BYTES: usize = 32;

    pub fn hs256(
        secret: &[u8],
        issuer: &str,
        audience: &str,
        ttl: Duration,
    ) -> Result<Self, AuthConfigError> {
        if secret.len() < Self::MIN_SECRET_BYTES {
            return Err(AuthConfigError::SecretTooShort(secret.len()));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl,
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, user_id: &str, role: Role) -> IssuedToken {
        self.issue_with_ttl(user_id, role, self.ttl)
    }

    pub fn issue_with_ttl(&self, user_id: &str, role: Role, ttl: Duration) -> IssuedToken {
        let now = chrono::Utc::now().timestamp();
        let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: user_id.to_owned(),
            role,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now.saturating_add(ttl_secs),
            jti: uuid::Uuid::now_v7().to_string(),
        };
        let access_token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
                // HS256 over a serializable struct cannot fail
                .unwrap_or_default();
        IssuedToken {
            access_token,
            expires_in: ttl.as_secs(),
        }
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        if data.claims.sub.is_empty() {
            return Err(AuthError::Invalid);
        }
        Ok(Principal {
            user_id: data.claims.sub,
            role: data.claims.role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::hs256(&[7; 32], "tessera", "tessera-api", Duration::from_secs(60)).unwrap()
    }

    #[test]
    fn a_short_secret_is_refused() {
        assert!(matches!(
            Authenticator::hs256(b"short", "i", "a", Duration::from_secs(1)),
            Err(AuthConfigError::SecretTooShort(5))
        ));
    }

    #[test]
    fn an_issued_token_verifies_to_its_principal() {
        let a = auth();
        let t = a.issue("u-1", Role::Admin);
        assert_eq!(t.expires_in, 60);
        assert_eq!(
            a.verify(&t.access_token),
            Ok(Principal {
                user_id: "u-1".into(),
                role: Role::Admin
            })
        );
    }

    #[test]
    fn forged_expired_and_foreign_tokens_are_refused() {
        let a = auth();
        let other =
            Authenticator::hs256(&[8; 32], "tessera", "tessera-api", Duration::from_secs(60))
                .unwrap();
        assert_eq!(
            a.verify(&other.issue("u", Role::User).access_token),
            Err(AuthError::Invalid)
        );
        let wrong_audience =
            Authenticator::hs256(&[7; 32], "tessera", "elsewhere", Duration::from_secs(60))
                .unwrap();
        assert_eq!(
            a.verify(&wrong_audience.issue("u", Role::User).access_token),
            Err(AuthError::Invalid)
        );
        // expired well beyond the leeway
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: "u".into(),
            role: Role::User,
            iss: "tessera".into(),
            aud: "tessera-api".into(),
            iat: now - 120,
            exp: now - 60,
            jti: "j".into(),
        };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&[7; 32]),
        )
        .unwrap();
        assert_eq!(a.verify(&expired), Err(AuthError::Expired));
        assert_eq!(a.verify("not.a.token"), Err(AuthError::Invalid));
    }
}
