use tessera_events::AccountEvent;

use super::{open, At, Fold, FoldError, Folded, Outcome};
use tessera_documents::documents::{collections, AccountDoc};

/// `accounts`: one document per account, following every account event.
pub struct Accounts;

impl Fold for Accounts {
    type Doc = AccountDoc;
    type Event = AccountEvent;
    const NAME: &'static str = collections::ACCOUNTS;

    fn fold_in(&self, doc: Option<AccountDoc>, at: At<AccountEvent>) -> Folded<AccountDoc> {
        let created = || match at.event {
            AccountEvent::AccountRegistered { email, nickname } => Some(AccountDoc {
                account_id: at.aggregate_id.clone(),
                email: email.clone(),
                nickname: nickname.clone(),
                profile_image: None,
                balance: 0,
                created_at: at.metadata.occurred_at,
                notifications_read_up_to: None,
                version: 1,
            }),
            _ => None,
        };
        open(doc, |d| d.version, at.sequence, created)?.then(|mut doc| {
            match at.event {
                AccountEvent::AccountRegistered { .. } => {
                    return Err(FoldError::Inapplicable("account registered twice".into()))
                }
                AccountEvent::ProfileUpdated {
                    nickname,
                    profile_image,
                } => {
                    doc.nickname.clone_from(nickname);
                    doc.profile_image.clone_from(profile_image);
                }
                AccountEvent::PointsCharged { balance, .. }
                | AccountEvent::PointsUsed { balance, .. }
                | AccountEvent::PointsRefunded { balance, .. } => doc.balance = *balance,
                AccountEvent::NotificationsRead { up_to } => {
                    doc.notifications_read_up_to = Some(up_to.clone());
                }
            }
            doc.version = at.sequence;
            Ok(Outcome::Put(doc))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::testing::account;

    fn registered() -> AccountEvent {
        AccountEvent::AccountRegistered {
            email: "kim@example.com".into(),
            nickname: "kim".into(),
        }
    }

    fn charge(amount: i64, balance: i64) -> AccountEvent {
        AccountEvent::PointsCharged {
            amount,
            balance,
            idempotency_key: format!("k{balance}"),
        }
    }

    fn run(doc: Option<AccountDoc>, sequence: u64, e: AccountEvent) -> Folded<AccountDoc> {
        let (env, ev) = account("a1", sequence, e);
        Accounts.fold(doc, &env, &ev)
    }

    fn put(o: Result<Outcome<AccountDoc>, FoldError>) -> AccountDoc {
        match o {
            Ok(Outcome::Put(d)) => d,
            other => panic!("expected a put, got {other:?}"),
        }
    }

    #[test]
    fn registration_creates_the_document_and_charges_move_the_balance() {
        let doc = put(run(None, 1, registered()));
        assert_eq!(doc.account_id, "a1");
        assert_eq!(doc.balance, 0);
        let doc = put(run(Some(doc), 2, charge(100, 100)));
        let doc = put(run(Some(doc), 3, charge(50, 150)));
        assert_eq!((doc.balance, doc.version), (150, 3));
    }

    #[test]
    fn a_duplicate_changes_nothing() {
        let doc = put(run(None, 1, registered()));
        let doc = put(run(Some(doc), 2, charge(100, 100)));
        assert_eq!(
            run(Some(doc.clone()), 2, charge(100, 100)),
            Ok(Outcome::Unchanged)
        );
        assert_eq!(run(Some(doc), 1, registered()), Ok(Outcome::Unchanged));
    }

    #[test]
    fn a_gap_is_refused() {
        assert_eq!(
            run(None, 2, charge(5, 5)),
            Err(FoldError::Gap {
                expected: 1,
                got: 2
            })
        );
        let doc = put(run(None, 1, registered()));
        assert_eq!(
            run(Some(doc), 3, charge(5, 5)),
            Err(FoldError::Gap {
                expected: 2,
                got: 3
            })
        );
    }

    #[test]
    fn the_profile_follows_updates() {
        let doc = put(run(None, 1, registered()));
        let doc = put(run(
            Some(doc),
            2,
            AccountEvent::ProfileUpdated {
                nickname: "lee".into(),
                profile_image: Some("img".into()),
            },
        ));
        assert_eq!(doc.nickname, "lee");
        assert_eq!(doc.profile_image.as_deref(), Some("img"));
    }
}
