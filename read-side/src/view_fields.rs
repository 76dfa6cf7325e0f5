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

/// `View`'s name and the fields of it that `Doc` does not have.
fn missing<View: DeserializeOwned, Doc: DeserializeOwned>() -> (&'static str, BTreeSet<&'static str>)
{
    let doc: BTreeSet<_> = serde_introspect::<Doc>().iter().copied().collect();
    let lacking = serde_introspect::<View>()
        .iter()
        .copied()
        .filter(|field| !doc.contains(field))
        .collect();
    (std::any::type_name::<View>(), lacking)
}

#[test]
fn every_view_field_is_a_field_of_its_document() {
    let checks = [
        missing::<accounts::AccountView, AccountDoc>(),
        missing::<accounts::PointEntryView, PointEntryDoc>(),
        missing::<board::PostView, PostDoc>(),
        missing::<board::CommentView, CommentDoc>(),
        missing::<board::PostSummaryView, ChannelPostDoc>(),
        missing::<chat::MessageView, MessageDoc>(),
        missing::<chat::LastMessageView, LastMessageDoc>(),
        missing::<chat::ListedRoom, DmRoomDoc>(),
        missing::<concerts::ConcertView, ConcertDoc>(),
        missing::<concerts::ScheduleView, ScheduleDoc>(),
        missing::<concerts::ReservationView, ReservationDoc>(),
        missing::<coupons::CouponView, CouponDoc>(),
        missing::<coupons::MyCouponView, UserCouponDoc>(),
        missing::<guilds::GuildView, GuildDoc>(),
        missing::<guilds::CategoryView, CategoryDoc>(),
        missing::<guilds::ChannelView, ChannelDoc>(),
        missing::<guilds::MemberView, GuildMemberDoc>(),
        missing::<guilds::MyGuilds, UserGuildsDoc>(),
        missing::<guilds::MyGuildView, UserGuildEntry>(),
        missing::<shop::ProductView, ProductDoc>(),
        missing::<shop::ProductItem, ProductDoc>(),
        missing::<shop::OrderView, OrderDoc>(),
        missing::<shop::OrderItemView, OrderLineDoc>(),
        missing::<shop::SaleView, SaleDoc>(),
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
        missing::<Renamed, CouponDoc>().1,
        BTreeSet::from(["coupons_left"])
    );
}
