//! Views are read straight from their stored documents (`query::typed`),
//! so nothing but this test ties a view's fields to its document's: a view
//! field the document lacks would fail every read, or read as `None` when
//! optional, and no compiler would say so.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde_aux::serde_introspection::serde_introspect;
use tessera_documents::chat::{DmRoomDoc, LastMessageDoc, MessageDoc};
use tessera_documents::documents::{
    AccountDoc, CategoryDoc, ChannelDoc, ChannelPostDoc, CommentDoc, ConcertDoc, CouponDoc,
    GuildDoc, GuildMemberDoc, PointEntryDoc, PostDoc, ReservationDoc, ScheduleDoc, UserCouponDoc,
    UserGuildEntry, UserGuildsDoc,
};
use tessera_documents::shop::{OrderDoc, OrderLineDoc, ProductDoc, SaleDoc};

use crate::{accounts, board, chat, concerts, coupons, guilds, shop};

/// The fields of `View` that `Doc` does not have.
fn missing<View: DeserializeOwned, Doc: DeserializeOwned>() -> BTreeSet<&'static str> {
    let doc: BTreeSet<_> = serde_introspect::<Doc>().iter().copied().collect();
    serde_introspect::<View>()
        .iter()
        .copied()
        .filter(|field| !doc.contains(field))
        .collect()
}

#[test]
fn every_view_field_is_a_field_of_its_document() {
    let checks = [
        (
            "AccountView",
            missing::<accounts::AccountView, AccountDoc>(),
        ),
        (
            "PointEntryView",
            missing::<accounts::PointEntryView, PointEntryDoc>(),
        ),
        ("PostView", missing::<board::PostView, PostDoc>()),
        ("CommentView", missing::<board::CommentView, CommentDoc>()),
        (
            "PostSummaryView",
            missing::<board::PostSummaryView, ChannelPostDoc>(),
        ),
        ("MessageView", missing::<chat::MessageView, MessageDoc>()),
        (
            "LastMessageView",
            missing::<chat::LastMessageView, LastMessageDoc>(),
        ),
        ("ListedRoom", missing::<chat::ListedRoom, DmRoomDoc>()),
        (
            "ConcertView",
            missing::<concerts::ConcertView, ConcertDoc>(),
        ),
        (
            "ScheduleView",
            missing::<concerts::ScheduleView, ScheduleDoc>(),
        ),
        (
            "ReservationView",
            missing::<concerts::ReservationView, ReservationDoc>(),
        ),
        ("CouponView", missing::<coupons::CouponView, CouponDoc>()),
        (
            "MyCouponView",
            missing::<coupons::MyCouponView, UserCouponDoc>(),
        ),
        ("GuildView", missing::<guilds::GuildView, GuildDoc>()),
        (
            "CategoryView",
            missing::<guilds::CategoryView, CategoryDoc>(),
        ),
        ("ChannelView", missing::<guilds::ChannelView, ChannelDoc>()),
        (
            "MemberView",
            missing::<guilds::MemberView, GuildMemberDoc>(),
        ),
        ("MyGuilds", missing::<guilds::MyGuilds, UserGuildsDoc>()),
        (
            "MyGuildView",
            missing::<guilds::MyGuildView, UserGuildEntry>(),
        ),
        ("ProductView", missing::<shop::ProductView, ProductDoc>()),
        ("ProductItem", missing::<shop::ProductItem, ProductDoc>()),
        ("OrderView", missing::<shop::OrderView, OrderDoc>()),
        (
            "OrderItemView",
            missing::<shop::OrderItemView, OrderLineDoc>(),
        ),
        ("SaleView", missing::<shop::SaleView, SaleDoc>()),
    ];
    let wrong: Vec<_> = checks.iter().filter(|(_, m)| !m.is_empty()).collect();
    assert!(
        wrong.is_empty(),
        "view fields their documents lack: {wrong:?}"
    );
}

#[test]
fn a_field_the_document_lacks_is_found() {
    // the check above must be able to fail: a view with a field of its own
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Renamed {
        coupon_id: String,
        coupons_left: u32,
    }
    assert_eq!(
        missing::<Renamed, CouponDoc>(),
        BTreeSet::from(["coupons_left"])
    );
}
