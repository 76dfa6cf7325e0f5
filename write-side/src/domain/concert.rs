//! The `concert` aggregate: a concert that schedules belong to.

use serde::{Deserialize, Serialize};
use tessera_events::{aggregate, ConcertEvent};

use super::{impl_aggregate, name_ok, DomainError, ErrorKind};

super::named!(ConcertCommand { Create });

pub const NAME: (usize, usize) = (1, 100);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConcertCommand {
    Create { name: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConcertError {
    #[error("concert already exists")]
    AlreadyExists,
    #[error("{field} is out of range")]
    Invalid { field: &'static str },
}

impl DomainError for ConcertError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::AlreadyExists => ErrorKind::Conflict,
            Self::Invalid { .. } => ErrorKind::Invalid,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::AlreadyExists => "conflict",
            Self::Invalid { .. } => "invalid_input",
        }
    }

    fn details(&self) -> serde_json::Value {
        match self {
            Self::Invalid { field } => serde_json::json!({ "field": field }),
            Self::AlreadyExists => serde_json::Value::Null,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Concert {
    created: bool,
    name: String,
}

impl Concert {
    pub fn exists(&self) -> bool {
        self.created
    }

    fn decide(&self, command: ConcertCommand) -> Result<Option<ConcertEvent>, ConcertError> {
        let ConcertCommand::Create { name } = command;
        if self.created {
            return Err(ConcertError::AlreadyExists);
        }
        if !name_ok(&name, NAME.0, NAME.1) {
            return Err(ConcertError::Invalid { field: "name" });
        }
        Ok(Some(ConcertEvent::ConcertCreated { name }))
    }
}

impl_aggregate!(Concert: aggregate::CONCERT, ConcertCommand => ConcertEvent, ConcertError);

impl Concert {
    fn evolve(&mut self, event: ConcertEvent) {
        let ConcertEvent::ConcertCreated { name } = event;
        self.created = true;
        self.name = name;
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::domain::Recorded;

    #[test]
    fn a_concert_is_created_once_with_a_bounded_name() {
        let created = Recorded(ConcertEvent::ConcertCreated {
            name: "Live".into(),
        });
        TestFramework::<Concert>::with(())
            .given_no_previous_events()
            .when(ConcertCommand::Create {
                name: "Live".into(),
            })
            .then_expect_events(vec![created.clone()]);
        TestFramework::<Concert>::with(())
            .given(vec![created])
            .when(ConcertCommand::Create {
                name: "Again".into(),
            })
            .then_expect_error(ConcertError::AlreadyExists);
        TestFramework::<Concert>::with(())
            .given_no_previous_events()
            .when(ConcertCommand::Create {
                name: "n".repeat(101),
            })
            .then_expect_error(ConcertError::Invalid { field: "name" });
    }
}
