//! Authentication: JWT access tokens. Tessera issues HS256 tokens with its
//! secret and verifies them; it also verifies RS256 tokens of an identity
//! provider when given its public key (a PEM file or a JWKS file). Only
//! those two algorithms are accepted, each with its own key, so neither
//! `alg: none` nor an HS256 token "signed" with the RSA public key passes.
//! Expiry, not-before, issue time, issuer and audience are checked with a
//! bounded clock skew. Password hashes live with the write side, the only
//! process that checks passwords.

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

fn user() -> Role {
    Role::User
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    /// An identity provider's token without a role is a user's.
    #[serde(default = "user")]
    role: Role,
    iss: String,
    aud: String,
    #[serde(default)]
    iat: i64,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    #[serde(default)]
    jti: String,
}

/// How far apart the clocks of an issuer and Tessera may be (seconds).
pub const CLOCK_SKEW_SECONDS: u64 = 5;

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
    #[error("the RS256 public key cannot be read")]
    PublicKey(#[source] jsonwebtoken::errors::Error),
    #[error("the JWKS file holds no usable RS256 key")]
    EmptyJwks,
    #[error("the JWKS file cannot be read")]
    Jwks(#[source] serde_json::Error),
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
    /// RS256 keys of an identity provider, by key id (`None`: the one key).
    rs256: Vec<(Option<String>, DecodingKey)>,
    rs256_validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

fn validation(algorithm: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut v = Validation::new(algorithm);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.validate_nbf = true;
    v.leeway = CLOCK_SKEW_SECONDS;
    v
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
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation: validation(Algorithm::HS256, issuer, audience),
            rs256: Vec::new(),
            rs256_validation: validation(Algorithm::RS256, issuer, audience),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl,
        })
    }

    /// Also accepts RS256 tokens signed by the holder of this public key
    /// (PEM).
    pub fn with_rs256_pem(mut self, pem: &[u8]) -> Result<Self, AuthConfigError> {
        let key = DecodingKey::from_rsa_pem(pem).map_err(AuthConfigError::PublicKey)?;
        self.rs256.push((None, key));
        Ok(self)
    }

    /// Also accepts RS256 tokens signed with a key of this JWKS document,
    /// chosen by the token's `kid`.
    pub fn with_jwks(mut self, json: &str) -> Result<Self, AuthConfigError> {
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(json).map_err(AuthConfigError::Jwks)?;
        let before = self.rs256.len();
        for jwk in &set.keys {
            if let (jsonwebtoken::jwk::AlgorithmParameters::RSA(_), Ok(key)) =
                (&jwk.algorithm, DecodingKey::from_jwk(jwk))
            {
                self.rs256.push((jwk.common.key_id.clone(), key));
            }
        }
        if self.rs256.len() == before {
            return Err(AuthConfigError::EmptyJwks);
        }
        Ok(self)
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
            nbf: None,
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
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        // each algorithm with its own key: never the RSA public key as an
        // HMAC secret, never a token without a signature
        let (key, validation) = match header.alg {
            Algorithm::HS256 => (&self.decoding, &self.validation),
            Algorithm::RS256 => {
                let key = self
                    .rs256
                    .iter()
                    .find(|(kid, _)| kid.is_none() || *kid == header.kid)
                    .map(|(_, key)| key)
                    .ok_or(AuthError::Invalid)?;
                (key, &self.rs256_validation)
            }
            _ => return Err(AuthError::Invalid),
        };
        let data =
            jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        let skew = i64::try_from(CLOCK_SKEW_SECONDS).unwrap_or(0);
        if data.claims.sub.is_empty() || data.claims.iat > chrono::Utc::now().timestamp() + skew {
            // a token issued in the future comes from a broken or a forged clock
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
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::{json, Value};

    use super::*;

    const PRIVATE: &[u8] = include_bytes!("../tests/fixtures/rs256-test-private.pem");
    const PUBLIC: &[u8] = include_bytes!("../tests/fixtures/rs256-test-public.pem");

    fn auth() -> Authenticator {
        Authenticator::hs256(&[7; 32], "tessera", "tessera-api", Duration::from_secs(60)).unwrap()
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    /// Claims Tessera would accept, with `changes` on top.
    #[allow(clippy::needless_pass_by_value)] // every call passes a `json!` literal
    fn claims(changes: Value) -> Value {
        let mut c = json!({
            "sub": "u", "role": "user", "iss": "tessera", "aud": "tessera-api",
            "iat": now(), "exp": now() + 60, "jti": "j",
        });
        for (k, v) in changes.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    fn hs(secret: &[u8], claims: &Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn rs(kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(
            &header,
            claims,
            &EncodingKey::from_rsa_pem(PRIVATE).unwrap(),
        )
        .unwrap()
    }

    fn unsigned(claims: &Value) -> String {
        let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            part(&json!({"alg": "none", "typ": "JWT"})),
            part(claims)
        )
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
    fn every_kind_of_bad_token_is_refused() {
        let a = auth().with_rs256_pem(PUBLIC).unwrap();
        let good = claims(json!({}));
        assert!(a.verify(&hs(&[7; 32], &good)).is_ok());
        let skew = i64::try_from(CLOCK_SKEW_SECONDS).unwrap();
        let cases: Vec<(&str, String, AuthError)> = vec![
            ("another secret", hs(&[8; 32], &good), AuthError::Invalid),
            ("alg: none", unsigned(&good), AuthError::Invalid),
            // the RSA public key is public: as an HMAC secret it signs anything
            (
                "HS256 signed with the RSA public key",
                hs(PUBLIC, &good),
                AuthError::Invalid,
            ),
            (
                "expired",
                hs(&[7; 32], &claims(json!({"exp": now() - 60}))),
                AuthError::Expired,
            ),
            (
                "not valid yet",
                hs(&[7; 32], &claims(json!({"nbf": now() + 60}))),
                AuthError::Invalid,
            ),
            (
                "issued in the future",
                hs(&[7; 32], &claims(json!({"iat": now() + 60}))),
                AuthError::Invalid,
            ),
            (
                "wrong issuer",
                hs(&[7; 32], &claims(json!({"iss": "else"}))),
                AuthError::Invalid,
            ),
            (
                "wrong audience",
                hs(&[7; 32], &claims(json!({"aud": "else"}))),
                AuthError::Invalid,
            ),
            (
                "no subject",
                hs(&[7; 32], &claims(json!({"sub": ""}))),
                AuthError::Invalid,
            ),
            (
                "unknown role",
                hs(&[7; 32], &claims(json!({"role": "root"}))),
                AuthError::Invalid,
            ),
            ("not a token", "not.a.token".to_owned(), AuthError::Invalid),
        ];
        for (what, token, want) in cases {
            assert_eq!(a.verify(&token), Err(want), "{what}");
        }
        // within the skew bound, on both sides
        let edge = claims(json!({"exp": now() - skew + 2, "iat": now() + skew - 2}));
        assert!(
            a.verify(&hs(&[7; 32], &edge)).is_ok(),
            "inside the clock skew"
        );
        let past = claims(json!({"exp": now() - skew - 2}));
        assert_eq!(a.verify(&hs(&[7; 32], &past)), Err(AuthError::Expired));
    }

    #[test]
    fn rs256_tokens_of_the_configured_provider_verify() {
        let a = auth().with_rs256_pem(PUBLIC).unwrap();
        // an identity provider's token names no role: a user's
        let mut provider = claims(json!({}));
        provider.as_object_mut().unwrap().remove("role");
        assert_eq!(
            a.verify(&rs(None, &provider)),
            Ok(Principal {
                user_id: "u".into(),
                role: Role::User
            })
        );
        assert_eq!(
            auth().verify(&rs(None, &provider)),
            Err(AuthError::Invalid),
            "no RS256 key configured: refused"
        );
        assert_eq!(
            a.verify(&rs(None, &claims(json!({"exp": now() - 60})))),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn a_jwks_key_is_chosen_by_the_tokens_kid() {
        use rsa::pkcs8::DecodePublicKey;
        use rsa::traits::PublicKeyParts;
        let key =
            rsa::RsaPublicKey::from_public_key_pem(std::str::from_utf8(PUBLIC).unwrap()).unwrap();
        let jwks = json!({"keys": [{
            "kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        }]});
        let a = auth().with_jwks(&jwks.to_string()).unwrap();
        assert!(a.verify(&rs(Some("k1"), &claims(json!({})))).is_ok());
        assert_eq!(
            a.verify(&rs(Some("k2"), &claims(json!({})))),
            Err(AuthError::Invalid),
            "an unknown kid"
        );
        assert!(matches!(
            auth().with_jwks(r#"{"keys": []}"#),
            Err(AuthConfigError::EmptyJwks)
        ));
    }
}
