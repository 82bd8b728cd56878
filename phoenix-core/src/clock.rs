//! Time. Pure logic takes `now` as an argument; everything else reads an injected [`Clock`].
//! Nothing in Phoenix calls `SystemTime::now()` or `Utc::now()` outside [`SystemClock`].

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// A shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to. Used by tests and by the in-memory store's
/// conformance runs so that lease expiry and backoff are tested without sleeping.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A manual clock starting at `start`.
    #[must_use]
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward (or backward, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: DateTime<Utc>) {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A shift applied to a time source, in milliseconds, shared between a store (which
/// applies it to the database clock: `now() + shift` in SQL, `TIME + shift` in Redis
/// scripts) and a [`ShiftedClock`] used by the rest of the process.
///
/// It exists for tests: moving a deployment's single time source forward is how lease
/// expiry and backoff are tested against real databases without sleeping. Production
/// deployments leave it at zero.
#[derive(Debug, Clone, Default)]
pub struct TimeShift(Arc<AtomicI64>);

impl TimeShift {
    /// A shift of zero.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Current shift in milliseconds.
    #[must_use]
    pub fn millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Current shift as a duration.
    #[must_use]
    pub fn duration(&self) -> Duration {
        Duration::milliseconds(self.millis())
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }
}

/// The wall clock plus a [`TimeShift`].
#[derive(Debug, Clone, Default)]
pub struct ShiftedClock {
    shift: TimeShift,
}

impl ShiftedClock {
    /// A wall clock shifted by `shift`.
    #[must_use]
    pub fn new(shift: TimeShift) -> Self {
        Self { shift }
    }

    /// The shift this clock applies.
    #[must_use]
    pub fn shift(&self) -> &TimeShift {
        &self.shift
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.shift.duration()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::seconds(5));
        assert_eq!(clock.now(), start + Duration::seconds(5));
    }

    #[test]
    fn shifted_clock_applies_shift() {
        let shift = TimeShift::new();
        let clock = ShiftedClock::new(shift.clone());
        let before = clock.now();
        shift.advance(Duration::hours(1));
        assert!(clock.now() - before >= Duration::minutes(59));
    }
}
