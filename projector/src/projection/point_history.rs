use tessera_events::AccountEvent;

use super::{At, Fold, Folded, Outcome, Targets};
use tessera_documents::documents::{collections, point_entry_id, PointEntryDoc};

/// `point_history`: one document per change of an account's points.
pub struct PointHistory;

impl Fold for PointHistory {
    type Doc = PointEntryDoc;
    type Event = AccountEvent;
    const NAME: &'static str = collections::POINT_HISTORY;
    const INDEXES: &'static [&'static str] = &["account_id"];

    fn touches(&self, at: At<AccountEvent>) -> Targets {
        match at.event {
            AccountEvent::PointsCharged { .. }
            | AccountEvent::PointsUsed { .. }
            | AccountEvent::PointsRefunded { .. } => {
                Targets::Ids(vec![point_entry_id(&at.aggregate_id, at.sequence)])
            }
            _ => Targets::None,
        }
    }

    fn fold_in(&self, doc: Option<PointEntryDoc>, at: At<AccountEvent>) -> Folded<Self::Doc> {
        if doc.is_some() {
            return Ok(Outcome::Unchanged); // an entry is written once
        }
        let (kind, amount, balance, reference) = match at.event {
            AccountEvent::PointsCharged {
                amount,
                balance,
                idempotency_key,
            } => ("charge", *amount, *balance, idempotency_key),
            AccountEvent::PointsUsed {
                amount,
                balance,
                reference,
            } => ("use", -amount, *balance, reference),
            AccountEvent::PointsRefunded {
                amount,
                balance,
                reference,
            } => ("refund", *amount, *balance, reference),
            _ => return Ok(Outcome::Unchanged),
        };
        Ok(Outcome::Put(PointEntryDoc {
            account_id: at.aggregate_id.clone(),
            sequence: at.sequence,
            kind: kind.into(),
            amount,
            balance,
            reference: reference.clone(),
            occurred_at: at.metadata.occurred_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::testing::account;

    #[test]
    fn each_point_change_becomes_one_signed_entry_written_once() {
        let (env, ev) = account(
            "a1",
            3,
            AccountEvent::PointsUsed {
                amount: 30,
                balance: 70,
                reference: "order-9".into(),
            },
        );
        assert_eq!(
            PointHistory.targets(&env, &ev),
            Targets::Ids(vec!["a1:00000000000000000003".into()])
        );
        let Ok(Outcome::Put(entry)) = PointHistory.fold(None, &env, &ev) else {
            panic!("expected an entry");
        };
        assert_eq!(
            (entry.kind.as_str(), entry.amount, entry.balance),
            ("use", -30, 70)
        );
        assert_eq!(
            PointHistory.fold(Some(entry), &env, &ev),
            Ok(Outcome::Unchanged)
        );
    }

    #[test]
    fn profile_events_are_not_history() {
        let (env, ev) = account(
            "a1",
            2,
            AccountEvent::ProfileUpdated {
                nickname: "n".into(),
                profile_image: None,
            },
        );
        assert_eq!(PointHistory.targets(&env, &ev), Targets::None);
    }
}
