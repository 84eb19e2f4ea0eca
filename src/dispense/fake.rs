//! A fake [`Dispenser`] for tests: records every plan it is given and answers from a
//! script (by default, everything delivered at once).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{DispenseError, Dispensed, Dispenser, Plan};

/// A scripted answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Delivered(u64),
    Partial(u64),
    Failed,
}

#[derive(Clone, Default)]
pub struct FakeDispenser {
    plans: Arc<Mutex<Vec<Plan>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    stops: Arc<Mutex<u32>>,
}

impl FakeDispenser {
    pub fn new() -> FakeDispenser {
        FakeDispenser::default()
    }

    /// The next dispense answers `a` (after those queued before it).
    pub fn answer(&self, a: Answer) {
        self.script.lock().unwrap().push_back(a);
    }

    /// Every plan dispensed so far, in order.
    pub fn plans(&self) -> Vec<Plan> {
        self.plans.lock().unwrap().clone()
    }

    /// How many times every output was stopped.
    pub fn stops(&self) -> u32 {
        *self.stops.lock().unwrap()
    }
}

#[async_trait]
impl Dispenser for FakeDispenser {
    async fn dispense(&self, plan: Plan) -> Dispensed {
        self.plans.lock().unwrap().push(plan);
        let next = self.script.lock().unwrap().pop_front();
        match next.unwrap_or(Answer::Delivered(0)) {
            Answer::Delivered(units) => Dispensed::Delivered { units },
            Answer::Partial(units) => Dispensed::Partial {
                units,
                trouble: Some(DispenseError::NotWired("fake")),
            },
            Answer::Failed => Dispensed::Failed(DispenseError::NotWired("fake")),
        }
    }

    fn stop(&self) -> Result<(), DispenseError> {
        *self.stops.lock().unwrap() += 1;
        Ok(())
    }
}
