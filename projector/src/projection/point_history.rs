use tessera_events::{aggregate, AccountEvent, DomainEvent, Envelope};

use super::{Fold, Folded, Outcome, Targets};
use tessera_documents::documents::{collections, point_entry_id, PointEntryDoc};

/// `point_history`: one document per change of an account's points.
pub struct PointHistory;

impl Fold for PointHistory {
    type Doc = PointEntryDoc;
    const NAME: &'static str = collections::POINT_HISTORY;
    const AGGREGATE_TYPES: &'static [&'static str] = &[aggregate::ACCOUNT];
    const INDEXES: &'static [&'static str] = &["account_id"];

    fn targets(&self, envelope: &Envelope, event: &DomainEvent) -> Targets {
        match event {
            DomainEvent::Account(
                AccountEvent::PointsCharged { .. }
                | AccountEvent::PointsUsed { .. }
                | AccountEvent::PointsRefunded { .. },
            ) => Targets::Ids(vec![point_entry_id(
                &envelope.aggregate_id,
                envelope.sequence,
            )]),
            _ => Targets::None,
        }
    }

    fn fold(
        &self,
        doc: Option<PointEntryDoc>,
        envelope: &Envelope,
        event: &DomainEvent,
    ) -> Folded<PointEntryDoc> {
        if doc.is_some() {
            return Ok(Outcome::Unchanged); // an entry is written once
        }
        let (kind, amount, balance, reference) = match event {
            DomainEvent::Account(AccountEvent::PointsCharged {
                amount,
                balance,
                idempotency_key,
            }) => ("charge", *amount, *balance, idempotency_key),
            DomainEvent::Account(AccountEvent::PointsUsed {
                amount,
                balance,
                reference,
            }) => ("use", -amount, *balance, reference),
            DomainEvent::Account(AccountEvent::PointsRefunded {
                amount,
                balance,
                reference,
            }) => ("refund", *amount, *balance, reference),
            _ => return Ok(Outcome::Unchanged),
        };
        Ok(Outcome::Put(PointEntryDoc {
            account_id: envelope.aggregate_id.clone(),
            sequence: envelope.sequence,
            kind: kind.into(),
            amount,
            balance,
            reference: reference.clone(),
            occurred_at: envelope.metadata.occurred_at,
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
