//! The write side assembled: command buses, credentials, auth, the
//! directory and the waiting queue, as the HTTP layer, the background loops
//! and the CLI use them.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::FromRef;

use crate::bus::{BusConfig, CommandBus};
use crate::domain::account::Account;
use crate::domain::concert::Concert;
use crate::domain::coupon::Coupon;
use crate::domain::guild::{Guild, GuildServices, GuildServicesRef};
use crate::domain::message::{ChatServices, ChatServicesRef, Message};
use crate::domain::order::Order;
use crate::domain::post::{
    BoardServices, BoardServicesRef, ChannelFacts, ChannelLookup, Membership, Post,
};
use crate::domain::product::Product;
use crate::domain::room::Room;
use crate::domain::schedule::{Schedule, ScheduleServices, ScheduleServicesRef};
use crate::domain::FactUnavailable;
use crate::inbox::UnreadCount;
use crate::store::credentials::CredentialStore;
use crate::store::state::Directory;
use crate::store::Store;
use tessera_http::auth::Authenticator;
use tessera_http::health::Readiness;
use tessera_queue::QueueGate;

/// What a write side is built from.
pub struct Parts {
    pub store: Store,
    pub credentials: Arc<dyn CredentialStore>,
    pub auth: Arc<Authenticator>,
    pub readiness: Arc<dyn Readiness>,
    pub directory: Arc<dyn Directory>,
    pub queue: Arc<QueueGate>,
    pub bus: BusConfig,
    /// How long a seat hold lasts unpaid.
    pub hold_ttl: Duration,
    /// How long an order may stay unpaid.
    pub order_ttl: Duration,
    /// Counts unread notifications, where a notifications read model is
    /// reachable.
    pub unread: Option<Arc<dyn UnreadCount>>,
}

pub struct WriteSide {
    pub store: Store,
    pub accounts: Arc<CommandBus<Account>>,
    pub guilds: Arc<CommandBus<Guild>>,
    pub posts: CommandBus<Post>,
    pub concerts: Arc<CommandBus<Concert>>,
    pub schedules: CommandBus<Schedule>,
    pub coupons: CommandBus<Coupon>,
    pub products: CommandBus<Product>,
    pub orders: CommandBus<Order>,
    pub messages: CommandBus<Message>,
    pub rooms: Arc<CommandBus<Room>>,
    pub credentials: Arc<dyn CredentialStore>,
    pub auth: Arc<Authenticator>,
    pub readiness: Arc<dyn Readiness>,
    pub directory: Arc<dyn Directory>,
    pub queue: Arc<QueueGate>,
    pub hold_ttl: Duration,
    pub order_ttl: Duration,
    pub unread: Option<Arc<dyn UnreadCount>>,
}

impl WriteSide {
    pub fn new(p: Parts) -> Self {
        let config = p.bus;
        let accounts = Arc::new(CommandBus::new(p.store.clone(), (), config));
        let directory_of_accounts: GuildServicesRef =
            Arc::new(AccountDirectory(Arc::clone(&accounts)));
        let guilds = Arc::new(CommandBus::new(
            p.store.clone(),
            Arc::clone(&directory_of_accounts),
            config,
        ));
        let guild_facts = GuildFacts {
            guilds: Arc::clone(&guilds),
            directory: Arc::clone(&p.directory),
        };
        let rooms = Arc::new(CommandBus::new(
            p.store.clone(),
            directory_of_accounts,
            config,
        ));
        let chat_facts: ChatServicesRef = Arc::new(ChatFacts {
            guilds: guild_facts.clone(),
            rooms: Arc::clone(&rooms),
            accounts: Arc::clone(&accounts),
        });
        let guild_facts: BoardServicesRef = Arc::new(guild_facts);
        let concerts = Arc::new(CommandBus::new(p.store.clone(), (), config));
        let concert_facts: ScheduleServicesRef = Arc::new(ConcertFacts(Arc::clone(&concerts)));
        Self {
            posts: CommandBus::new(p.store.clone(), guild_facts, config),
            schedules: CommandBus::new(p.store.clone(), concert_facts, config),
            coupons: CommandBus::new(p.store.clone(), (), config),
            products: CommandBus::new(p.store.clone(), (), config),
            orders: CommandBus::new(p.store.clone(), (), config),
            messages: CommandBus::new(p.store.clone(), chat_facts, config),
            rooms,
            store: p.store,
            accounts,
            guilds,
            concerts,
            credentials: p.credentials,
            auth: p.auth,
            readiness: p.readiness,
            directory: p.directory,
            queue: p.queue,
            hold_ttl: p.hold_ttl,
            order_ttl: p.order_ttl,
            unread: p.unread,
        }
    }
}

/// Answers guild decisions' questions about accounts from the account
/// aggregate itself (the write model), not from a possibly stale read model.
struct AccountDirectory(Arc<CommandBus<Account>>);

#[async_trait]
impl GuildServices for AccountDirectory {
    async fn account_nickname(&self, user_id: &str) -> Result<Option<String>, FactUnavailable> {
        self.0
            .read(user_id, |a| a.exists().then(|| a.nickname().to_owned()))
            .await
            .map_err(FactUnavailable::new)
    }
}

/// Answers board decisions from the guild aggregate; the directory only says
/// which guild to ask about a channel.
#[derive(Clone)]
struct GuildFacts {
    guilds: Arc<CommandBus<Guild>>,
    directory: Arc<dyn Directory>,
}

#[async_trait]
impl BoardServices for GuildFacts {
    async fn channel(&self, channel_id: &str) -> Result<ChannelLookup, FactUnavailable> {
        let Some(guild_id) = self
            .directory
            .channel_guild(channel_id)
            .await
            .map_err(FactUnavailable::new)?
        else {
            return Ok(ChannelLookup::Unknown);
        };
        let channel_id = channel_id.to_owned();
        let (kind, gone) = self
            .guilds
            .read(&guild_id, move |g| {
                (
                    g.exists().then(|| g.channel_kind(&channel_id)).flatten(),
                    g.channel_gone(&channel_id),
                )
            })
            .await
            .map_err(FactUnavailable::new)?;
        Ok(match kind {
            Some(kind) => ChannelLookup::Live(ChannelFacts { guild_id, kind }),
            None if gone => ChannelLookup::Gone,
            None => ChannelLookup::Unknown,
        })
    }

    async fn membership(
        &self,
        guild_id: &str,
        user_id: &str,
    ) -> Result<Membership, FactUnavailable> {
        let user_id = user_id.to_owned();
        self.guilds
            .read(guild_id, move |g| Membership {
                guild_alive: g.exists(),
                owner_id: g.owner_id().to_owned(),
                nickname: g.member_nickname(&user_id).map(str::to_owned),
                guild_version: g.version(),
            })
            .await
            .map_err(FactUnavailable::new)
    }
}

/// Answers chat decisions: channels and memberships as [`GuildFacts`]
/// does, rooms and nicknames from their aggregates.
struct ChatFacts {
    guilds: GuildFacts,
    rooms: Arc<CommandBus<Room>>,
    accounts: Arc<CommandBus<Account>>,
}

#[async_trait]
impl BoardServices for ChatFacts {
    async fn channel(&self, channel_id: &str) -> Result<ChannelLookup, FactUnavailable> {
        self.guilds.channel(channel_id).await
    }

    async fn membership(
        &self,
        guild_id: &str,
        user_id: &str,
    ) -> Result<Membership, FactUnavailable> {
        self.guilds.membership(guild_id, user_id).await
    }
}

#[async_trait]
impl ChatServices for ChatFacts {
    async fn room_members(&self, room_id: &str) -> Result<Option<Vec<String>>, FactUnavailable> {
        self.rooms
            .read(room_id, |r| r.exists().then(|| r.members().to_vec()))
            .await
            .map_err(FactUnavailable::new)
    }

    async fn account_nickname(&self, user_id: &str) -> Result<Option<String>, FactUnavailable> {
        self.accounts
            .read(user_id, |a| a.exists().then(|| a.nickname().to_owned()))
            .await
            .map_err(FactUnavailable::new)
    }
}

struct ConcertFacts(Arc<CommandBus<Concert>>);

#[async_trait]
impl ScheduleServices for ConcertFacts {
    async fn concert_exists(&self, concert_id: &str) -> Result<bool, FactUnavailable> {
        self.0
            .read(concert_id, Concert::exists)
            .await
            .map_err(FactUnavailable::new)
    }
}

/// Axum state of the write API.
#[derive(Clone)]
pub struct WriteState(pub Arc<WriteSide>);

impl Deref for WriteState {
    type Target = WriteSide;

    fn deref(&self) -> &WriteSide {
        &self.0
    }
}

impl FromRef<WriteState> for Arc<Authenticator> {
    fn from_ref(state: &WriteState) -> Self {
        Arc::clone(&state.0.auth)
    }
}
