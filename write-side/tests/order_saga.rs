//! The order payment saga when a process dies in the middle of it, on the
//! embedded store: the steps a dead run took are given back by the sweeper
//! once the order is due (and the order expires holding nothing), or
//! finished by the buyer's retry, which takes the stalled run over and pays
//! once.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tessera_http::auth::Authenticator;
use tessera_queue::{QueueConfig, QueueGate};
use tessera_write_side::app::{Parts, WriteSide};
use tessera_write_side::bus::{BusConfig, CommandContext};
use tessera_write_side::domain::account::AccountCommand;
use tessera_write_side::domain::order::{OrderCommand, OrderStatus};
use tessera_write_side::domain::product::ProductCommand;
use tessera_write_side::health::SqlReady;
use tessera_write_side::orders::{self, Wanted};
use tessera_write_side::store::credentials::SqliteCredentials;
use tessera_write_side::store::state::SqliteState;
use tessera_write_side::store::{sqlite, Store};

const SECRET: [u8; 32] = [7; 32];

async fn write_side(dir: &std::path::Path) -> WriteSide {
    let events = sqlite::open(&dir.join("events.db"), 4).await.unwrap();
    sqlite::migrate(&events).await.unwrap();
    let creds = sqlite::open(&dir.join("credentials.db"), 2).await.unwrap();
    let state = sqlite::open(&dir.join("state.db"), 2).await.unwrap();
    let state = Arc::new(SqliteState::new(state).await.unwrap());
    WriteSide::new(Parts {
        store: Store::new(sqlite::repo(events.clone())),
        credentials: Arc::new(SqliteCredentials::new(creds).await.unwrap()),
        auth: Arc::new(
            Authenticator::hs256(&SECRET, "tessera", "tessera-api", Duration::from_secs(600))
                .unwrap(),
        ),
        readiness: Arc::new(SqlReady::Sqlite("event_store", events)),
        directory: state.clone(),
        queue: Arc::new(QueueGate::new(state, &SECRET, QueueConfig::default())),
        bus: BusConfig::default(),
        hold_ttl: Duration::from_secs(300),
        order_ttl: Duration::from_secs(900),
        unread: None,
    })
}

/// A product with `stock` units at 100, a buyer with 1,000 points, and the
/// buyer's order of two units: (product, order).
async fn given_an_order(ws: &WriteSide, ctx: &CommandContext, stock: u32) -> (String, String) {
    ws.products
        .execute(
            "lamp",
            ProductCommand::List {
                seller_id: "sam".into(),
                name: "Lamp".into(),
                description: None,
                price: 100,
                stock,
            },
            ctx,
            |_| (),
        )
        .await
        .unwrap();
    for command in [
        AccountCommand::Register {
            email: "bo@example.com".into(),
            nickname: "bo".into(),
        },
        AccountCommand::Charge {
            amount: 1_000,
            idempotency_key: "seed".into(),
        },
    ] {
        ws.accounts
            .execute("bo", command, ctx, |_| ())
            .await
            .unwrap();
    }
    let created = orders::create(
        ws,
        "bo",
        vec![Wanted {
            product_id: "lamp".into(),
            quantity: 2,
        }],
        "k".into(),
        ctx,
    )
    .await
    .unwrap();
    ("lamp".into(), created.order_id)
}

/// What a run that died after its stock and points steps left behind: a
/// payment started at `started`, two units taken, 200 points spent.
async fn a_run_dies_midway(
    ws: &WriteSide,
    ctx: &CommandContext,
    order_id: &str,
    started: chrono::DateTime<Utc>,
) {
    ws.orders
        .execute(
            order_id,
            OrderCommand::StartPayment {
                actor: "bo".into(),
                coupon_id: None,
                attempt: "dead".into(),
                now: started,
            },
            ctx,
            |_| (),
        )
        .await
        .unwrap();
    let take = ProductCommand::Take {
        order_id: order_id.into(),
        quantity: 2,
        at: started,
    };
    ws.products
        .execute("lamp", take, ctx, |_| ())
        .await
        .unwrap();
    let spend = AccountCommand::Use {
        amount: 200,
        reference: order_id.into(),
    };
    ws.accounts.execute("bo", spend, ctx, |_| ()).await.unwrap();
}

async fn stock(ws: &WriteSide) -> u32 {
    ws.products.read("lamp", |p| p.stock()).await.unwrap()
}

async fn balance(ws: &WriteSide) -> i64 {
    ws.accounts.read("bo", |a| a.balance()).await.unwrap()
}

#[tokio::test]
async fn the_sweeper_gives_back_what_a_dead_payment_took_and_expires_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let ws = write_side(dir.path()).await;
    let ctx = CommandContext::new("test", None);
    let (_, order_id) = given_an_order(&ws, &ctx, 5).await;
    let now = Utc::now();
    a_run_dies_midway(&ws, &ctx, &order_id, now).await;
    assert_eq!((stock(&ws).await, balance(&ws).await), (3, 800));

    // not due yet: the sweeper leaves the order alone
    assert_eq!(orders::sweep(&ws, now, 10).await.unwrap(), 0);
    // due, and the run has stalled: given up, given back, expired
    let due = now + chrono::Duration::seconds(901);
    assert_eq!(orders::sweep(&ws, due, 10).await.unwrap(), 1);
    assert_eq!(
        (stock(&ws).await, balance(&ws).await),
        (5, 1_000),
        "the stock and the points are back"
    );
    let status = ws.orders.read(&order_id, |o| o.status()).await.unwrap();
    assert_eq!(status, OrderStatus::Expired);
    // settled: a later sweep finds nothing, and nothing is given back twice
    assert_eq!(orders::sweep(&ws, due, 10).await.unwrap(), 0);
    assert!(orders::settle(&ws, &order_id, due).await.unwrap());
    assert_eq!((stock(&ws).await, balance(&ws).await), (5, 1_000));
}

#[tokio::test]
async fn a_sweep_during_a_live_payment_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ws = write_side(dir.path()).await;
    let ctx = CommandContext::new("test", None);
    let (_, order_id) = given_an_order(&ws, &ctx, 5).await;
    let due = Utc::now() + chrono::Duration::seconds(901);
    // a run started a moment before the order fell due is alive
    a_run_dies_midway(&ws, &ctx, &order_id, due - chrono::Duration::seconds(5)).await;
    assert_eq!(orders::sweep(&ws, due, 10).await.unwrap(), 0);
    assert_eq!((stock(&ws).await, balance(&ws).await), (3, 800));
    let status = ws.orders.read(&order_id, |o| o.status()).await.unwrap();
    assert_eq!(status, OrderStatus::Paying);
}

#[tokio::test]
async fn a_retry_takes_over_a_stalled_payment_and_pays_once() {
    let dir = tempfile::tempdir().unwrap();
    let ws = write_side(dir.path()).await;
    let ctx = CommandContext::new("test", None);
    let (_, order_id) = given_an_order(&ws, &ctx, 5).await;
    a_run_dies_midway(
        &ws,
        &ctx,
        &order_id,
        Utc::now() - chrono::Duration::seconds(61),
    )
    .await;
    let paid = orders::pay(&ws, "bo", &order_id, None, &ctx).await.unwrap();
    assert_eq!((paid.paid_amount, paid.balance), (200, 800), "paid once");
    assert_eq!(stock(&ws).await, 3, "taken once");
    let again = orders::pay(&ws, "bo", &order_id, None, &ctx).await.unwrap();
    assert_eq!((again.paid_amount, again.balance), (200, 800));
    let status = ws.orders.read(&order_id, |o| o.status()).await.unwrap();
    assert_eq!(status, OrderStatus::Paid);
}
