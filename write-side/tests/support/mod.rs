//! What the write side's PostgreSQL tests share: a migrated store on a
//! fresh database, a command context, a registered account.

use sqlx::PgPool;
use tessera_testkit::PgDatabase;
use tessera_write_side::bus::{CommandBus, CommandContext};
use tessera_write_side::domain::account::{Account, AccountCommand};
use tessera_write_side::store::{postgres, Store};

pub async fn pg_store(db: &PgDatabase) -> (Store, PgPool) {
    let pool = db.pool(8).await;
    postgres::migrate(&pool).await.expect("migrations apply");
    (Store::new(postgres::repo(pool.clone())), pool)
}

pub fn ctx(actor: &str) -> CommandContext {
    CommandContext::new(actor, Some(format!("req-{actor}")))
}

pub async fn register(bus: &CommandBus<Account>, id: &str) {
    bus.execute(
        id,
        AccountCommand::Register {
            email: format!("{id}@example.com"),
            nickname: "n".into(),
        },
        &ctx(id),
        |_| (),
    )
    .await
    .expect("registration is accepted");
}
