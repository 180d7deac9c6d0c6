//! Small helpers over the `metrics` facade.

use std::time::Instant;

/// Records the time from `start` to drop into a histogram: every exit of the timed code,
/// including `?` and cancellation, is counted.
pub struct Timer {
    name: &'static str,
    started: Instant,
}

impl Timer {
    pub fn start(name: &'static str) -> Self {
        Timer {
            name,
            started: Instant::now(),
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        metrics::histogram!(self.name).record(self.started.elapsed().as_secs_f64());
    }
}
