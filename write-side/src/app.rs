//! The write side assembled: command buses, credentials and auth, as the
//! HTTP layer and the CLI use them.

use std::ops::Deref;
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::FromRef;

use crate::auth::Authenticator;
use crate::bus::{BusConfig, CommandBus};
use crate::domain::account::Account;
use crate::domain::guild::{Guild, GuildServices, GuildServicesRef};
use crate::health::Readiness;
use crate::store::credentials::CredentialStore;
use crate::store::Store;

pub struct WriteSide {
    pub store: Store,
    pub accounts: Arc<CommandBus<Account>>,
    pub guilds: CommandBus<Guild>,
    pub credentials: Arc<dyn CredentialStore>,
    pub auth: Arc<Authenticator>,
    pub readiness: Arc<dyn Readiness>,
}

impl WriteSide {
    pub fn new(
        store: Store,
        credentials: Arc<dyn CredentialStore>,
        auth: Arc<Authenticator>,
        readiness: Arc<dyn Readiness>,
        config: BusConfig,
    ) -> Self {
        let accounts = Arc::new(CommandBus::new(store.clone(), (), config));
        let directory: GuildServicesRef = Arc::new(AccountDirectory(Arc::clone(&accounts)));
        let guilds = CommandBus::new(store.clone(), directory, config);
        Self {
            store,
            accounts,
            guilds,
            credentials,
            auth,
            readiness,
        }
    }
}

/// Answers guild decisions' questions about accounts from the account
/// aggregate itself (the write model), not from a possibly stale read model.
struct AccountDirectory(Arc<CommandBus<Account>>);

#[async_trait]
impl GuildServices for AccountDirectory {
    async fn account_nickname(&self, user_id: &str) -> Result<Option<String>, String> {
        self.0
            .read(user_id, |a| a.exists().then(|| a.nickname().to_owned()))
            .await
            .map_err(|e| e.to_string())
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
