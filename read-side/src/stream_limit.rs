//! A bound on the live streams one user holds open on a read API: each
//! open stream costs a connection, a task and its buffers (about 21 KiB,
//! BENCHMARKS.md), so one caller must not be able to hold thousands.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Open streams per user on this process.
#[derive(Debug)]
pub struct StreamLimit {
    per_user: usize,
    open: Mutex<HashMap<String, usize>>,
}

impl StreamLimit {
    pub fn new(per_user: usize) -> Arc<Self> {
        Arc::new(Self {
            per_user: per_user.max(1),
            open: Mutex::default(),
        })
    }

    pub fn per_user(&self) -> usize {
        self.per_user
    }

    /// A slot for one more stream of `user_id`, or `None` at the bound.
    pub fn try_open(self: &Arc<Self>, user_id: &str) -> Option<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(user_id.to_owned()).or_default();
        if *n >= self.per_user {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            limit: Arc::clone(self),
            user_id: user_id.to_owned(),
        })
    }
}

/// Held by an open stream; dropping it frees the slot.
#[derive(Debug)]
pub struct StreamSlot {
    limit: Arc<StreamLimit>,
    user_id: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.limit.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.user_id) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_holds_at_most_the_bound_and_a_closed_stream_frees_its_slot() {
        let limit = StreamLimit::new(2);
        let a = limit.try_open("ann").unwrap();
        let _b = limit.try_open("ann").unwrap();
        assert!(limit.try_open("ann").is_none(), "a third stream of ann");
        let _other = limit.try_open("bob").expect("bob has his own bound");
        drop(a);
        assert!(
            limit.try_open("ann").is_some(),
            "the closed stream's slot is free"
        );
        assert!(limit.open.lock().unwrap().get("nobody").is_none());
    }
}
