//! The waiting queue ("amusement park" admission): a user takes a token for
//! a concert and gets the next position; every `admit_interval` one leader
//! admits the next `admit_batch` positions; an admitted token is active for
//! `active_ttl` from its admission and ends at payment. Seat queries, holds
//! and payments need an active token.
//!
//! The token is a signed JWT naming the user, the concert and the position;
//! whether it is active comes from the admission cursor in the state store,
//! so any number of API instances agree.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::admissions::{Admissions, Standing};
use crate::batch::Batcher;
use crate::placer::{placer, revocations};
use crate::store::{PlaceRequest, Placed, QueueStore, StateError};

const AUDIENCE: &str = "tessera-queue";

#[derive(Debug, Clone, Copy)]
pub struct QueueConfig {
    pub admit_batch: u64,
    pub admit_interval: Duration,
    pub active_ttl: Duration,
    /// How long a waiting token stays valid (its JWT expiry).
    pub max_wait: Duration,
    /// How often an active token may be extended by `active_ttl`.
    pub max_extensions: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            admit_batch: 100,
            admit_interval: Duration::from_secs(1),
            active_ttl: Duration::from_secs(300),
            max_wait: Duration::from_secs(3600),
            max_extensions: 2,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct QueueClaims {
    sub: String,
    concert_id: String,
    position: u64,
    aud: String,
    iat: i64,
    exp: i64,
    jti: String,
    /// The end of the active window after an extension (signed, so that
    /// checking a token needs no lookup of its extensions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueState {
    Waiting,
    Active,
    Expired,
}

/// A token's standing in its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStatus {
    pub user_id: String,
    pub concert_id: String,
    pub position: u64,
    pub state: QueueState,
    /// Positions still to be admitted before this one.
    pub ahead: u64,
    pub estimated_wait_seconds: u64,
    /// End of the active window (active), or of the token (waiting).
    pub expires_at: DateTime<Utc>,
    jti: String,
}

/// A freshly signed token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub status: QueueStatus,
    /// A new place in line (`false`: the place the user already held).
    pub new_place: bool,
}

/// A token [`QueueGate::verify`] found signed, unexpired and the caller's.
#[derive(Debug)]
pub struct QueuePass(QueueClaims);

/// An active token, checked for one user and concert.
#[derive(Debug, Clone)]
pub struct ActiveTicket {
    pub jti: String,
    pub until: DateTime<Utc>,
    pub user_id: String,
    pub concert_id: String,
    pub position: u64,
}

/// Why a request is not let through the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueDenied {
    #[error("this needs an active queue token in X-Queue-Token")]
    Missing,
    #[error("the queue token is not valid")]
    Invalid,
    #[error("the queue token has expired")]
    Expired,
    #[error("the queue token belongs to another user")]
    OtherUser,
    #[error("the queue token is for another concert")]
    OtherConcert,
    #[error("the active window was extended {0} times already, the most allowed")]
    ExtensionLimit(u32),
    #[error("still waiting in the queue: {ahead} ahead")]
    NotActive {
        position: u64,
        ahead: u64,
        estimated_wait_seconds: u64,
    },
    #[error(transparent)]
    Store(#[from] StateError),
}

/// Where a token's standing comes from.
#[derive(Debug, Clone, Copy)]
enum Lookup {
    /// The remembered ticks, and the store's newer ones past them.
    Store,
    /// The remembered ticks alone: they were read after the position was
    /// handed out.
    Remembered,
}

pub struct QueueGate {
    store: Arc<dyn QueueStore>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    config: QueueConfig,
    admissions: Arc<Admissions>,
    placer: Batcher<PlaceRequest, Placed>,
    revocations: Batcher<String, bool>,
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

impl QueueGate {
    /// Signs tokens with the API's HS256 secret under an audience of its own,
    /// so an access token is never accepted as a queue token or back.
    pub fn new(store: Arc<dyn QueueStore>, secret: &[u8], config: QueueConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        validation.leeway = 0;
        let admissions = Arc::new(Admissions::default());
        Self {
            placer: placer(Arc::clone(&store), Arc::clone(&admissions)),
            revocations: revocations(Arc::clone(&store)),
            store,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            config,
            admissions,
        }
    }

    pub fn config(&self) -> QueueConfig {
        self.config
    }

    pub fn store(&self) -> &Arc<dyn QueueStore> {
        &self.store
    }

    /// A token for the user's place in a concert's queue: the place they
    /// hold while it is waiting or active (a fresh token for it), the next
    /// position otherwise. One place per user and concert, also when the
    /// same user asks on several instances at once.
    pub async fn issue(&self, user_id: &str, concert_id: &str) -> Result<IssuedToken, QueueDenied> {
        let now = Utc::now();
        let mut stale = None;
        loop {
            let request = PlaceRequest {
                concert_id: concert_id.to_owned(),
                user_id: user_id.to_owned(),
                stale,
            };
            let (position, new_place) = match self.placer.ask(request).await? {
                Placed::New(p) => (p, true),
                Placed::Held(p) => (p, false),
            };
            // the placer learnt the queue's ticks after the place: they
            // tell where it stands without asking the store again
            let signed = self
                .sign(user_id, concert_id, position, now, None, Lookup::Remembered)
                .await?;
            if new_place || stale.is_some() || signed.1.state != QueueState::Expired {
                return Ok(self.issued(signed, new_place));
            }
            // the place held has ended: the next one
            stale = Some(position);
        }
    }

    fn issued(&self, (token, status): (String, QueueStatus), new_place: bool) -> IssuedToken {
        IssuedToken {
            token,
            status,
            new_place,
        }
    }

    /// Signs a token for `position` and tells where it stands. `until`
    /// (an extension) lets it live past its default end.
    async fn sign(
        &self,
        user_id: &str,
        concert_id: &str,
        position: u64,
        now: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        lookup: Lookup,
    ) -> Result<(String, QueueStatus), QueueDenied> {
        let default_end =
            now.timestamp() + secs(self.config.max_wait) + secs(self.config.active_ttl);
        let claims = QueueClaims {
            sub: user_id.to_owned(),
            concert_id: concert_id.to_owned(),
            position,
            aud: AUDIENCE.to_owned(),
            iat: now.timestamp(),
            exp: until.map_or(default_end, |u| u.timestamp().max(default_end)),
            jti: uuid::Uuid::now_v7().to_string(),
            until: until.map(|u| u.timestamp()),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| QueueDenied::Invalid)?;
        let status = self.standing(claims, now, lookup).await?;
        Ok((token, status))
    }

    /// Extends an active token's window by `active_ttl` from now, at most
    /// `max_extensions` times per place; answers a fresh token that lives
    /// as long.
    pub async fn extend(
        &self,
        token: Option<&str>,
        user_id: &str,
    ) -> Result<IssuedToken, QueueDenied> {
        let claims = self.decode(token.ok_or(QueueDenied::Missing)?)?;
        if claims.sub != user_id {
            return Err(QueueDenied::OtherUser);
        }
        let (concert_id, position) = (claims.concert_id.clone(), claims.position);
        let now = Utc::now();
        let status = self.standing(claims, now, Lookup::Store).await?;
        match status.state {
            QueueState::Active => {}
            QueueState::Expired => return Err(QueueDenied::Expired),
            QueueState::Waiting => {
                return Err(QueueDenied::NotActive {
                    position: status.position,
                    ahead: status.ahead,
                    estimated_wait_seconds: status.estimated_wait_seconds,
                })
            }
        }
        let until = now + chrono::Duration::seconds(secs(self.config.active_ttl));
        let max = self.config.max_extensions;
        if self
            .store
            .extend(&concert_id, user_id, position, max, until)
            .await?
            .is_none()
        {
            return Err(QueueDenied::ExtensionLimit(max));
        }
        let signed = self
            .sign(
                user_id,
                &concert_id,
                position,
                now,
                Some(until),
                Lookup::Store,
            )
            .await?;
        Ok(self.issued(signed, false))
    }

    fn decode(&self, token: &str) -> Result<QueueClaims, QueueDenied> {
        jsonwebtoken::decode::<QueueClaims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => QueueDenied::Expired,
                _ => QueueDenied::Invalid,
            })
    }

    async fn standing(
        &self,
        claims: QueueClaims,
        now: DateTime<Utc>,
        lookup: Lookup,
    ) -> Result<QueueStatus, QueueDenied> {
        let token_end = DateTime::from_timestamp(claims.exp, 0).unwrap_or(now);
        let extended_until = claims.until.and_then(|u| DateTime::from_timestamp(u, 0));
        let standing = match lookup {
            Lookup::Store => self.admission(&claims.concert_id, claims.position).await?,
            Lookup::Remembered => self
                .admissions
                .standing(&claims.concert_id, claims.position),
        };
        let mut status = QueueStatus {
            user_id: claims.sub,
            concert_id: claims.concert_id,
            position: claims.position,
            state: QueueState::Waiting,
            ahead: 0,
            estimated_wait_seconds: 0,
            expires_at: token_end,
            jti: claims.jti,
        };
        let admitted = match standing {
            Standing::Admitted(at) => at.unwrap_or(now),
            Standing::Beyond(admitted_up_to) => {
                let behind = claims.position - admitted_up_to;
                let ticks = behind.div_ceil(self.config.admit_batch.max(1));
                status.ahead = behind - 1;
                status.estimated_wait_seconds = (ticks
                    * u64::try_from(self.config.admit_interval.as_millis()).unwrap_or(0))
                .div_ceil(1000);
                return Ok(status);
            }
        };
        status.expires_at = admitted + chrono::Duration::seconds(secs(self.config.active_ttl));
        if let Some(until) = extended_until {
            status.expires_at = status.expires_at.max(until);
        }
        status.state =
            if now >= status.expires_at || self.revocations.ask(status.jti.clone()).await? {
                QueueState::Expired
            } else {
                QueueState::Active
            };
        Ok(status)
    }

    /// Where a token stands (an expired JWT reads as `expired`).
    pub async fn status(&self, token: &str) -> Result<QueueStatus, QueueDenied> {
        let claims = self.decode(token)?;
        self.standing(claims, Utc::now(), Lookup::Store).await
    }

    /// Checks a token before anything is looked up: present, signed by
    /// this API, not expired and the caller's. Whether it is active for a
    /// concert is [`Self::admit`]'s question.
    pub fn verify(&self, token: Option<&str>, user_id: &str) -> Result<QueuePass, QueueDenied> {
        let claims = self.decode(token.ok_or(QueueDenied::Missing)?)?;
        if claims.sub != user_id {
            return Err(QueueDenied::OtherUser);
        }
        Ok(QueuePass(claims))
    }

    /// Where `position` stands: from the remembered ticks when they admit
    /// it, else from the store's newer ones.
    async fn admission(&self, concert_id: &str, position: u64) -> Result<Standing, StateError> {
        match self.admissions.standing(concert_id, position) {
            Standing::Beyond(reach) => {
                let newer = self.store.ticks_after(concert_id, reach).await?;
                self.admissions.learn(concert_id, newer);
                Ok(self.admissions.standing(concert_id, position))
            }
            admitted => Ok(admitted),
        }
    }

    /// Lets a verified token through only while it is active for this
    /// concert.
    pub async fn admit(
        &self,
        QueuePass(claims): QueuePass,
        concert_id: &str,
    ) -> Result<ActiveTicket, QueueDenied> {
        if claims.concert_id != concert_id {
            return Err(QueueDenied::OtherConcert);
        }
        let status = self.standing(claims, Utc::now(), Lookup::Store).await?;
        match status.state {
            QueueState::Active => Ok(ActiveTicket {
                jti: status.jti,
                until: status.expires_at,
                user_id: status.user_id,
                concert_id: status.concert_id,
                position: status.position,
            }),
            QueueState::Expired => Err(QueueDenied::Expired),
            QueueState::Waiting => Err(QueueDenied::NotActive {
                position: status.position,
                ahead: status.ahead,
                estimated_wait_seconds: status.estimated_wait_seconds,
            }),
        }
    }

    /// Ends an active token (at payment) and gives its place up: asking
    /// again takes a new place.
    pub async fn end(&self, ticket: &ActiveTicket) -> Result<(), StateError> {
        self.store.revoke(&ticket.jti, ticket.until).await?;
        self.store
            .release(&ticket.concert_id, &ticket.user_id, ticket.position)
            .await
    }
}
