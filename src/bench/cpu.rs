//! CPU time of the processes in a measurement (Linux `/proc`), so a throughput can be
//! read as CPU per stage hop: on a small machine the broker, the worker and the load
//! generator share the cores.

use std::time::Duration;

/// The processes watched: label and pid.
#[derive(Clone, Default)]
pub struct Watched(pub Vec<(&'static str, u32)>);

impl Watched {
    /// This process, the broker if it runs on this machine (`beam.smp`), and `extra`.
    pub fn with(extra: &[(&'static str, u32)]) -> Self {
        let mut watched = vec![("bench (load + simulator)", std::process::id())];
        watched.extend_from_slice(extra);
        if let Some(pid) = broker_pid() {
            watched.push(("RabbitMQ", pid));
        }
        Watched(watched)
    }

    /// CPU time used so far by each watched process.
    pub fn sample(&self) -> Vec<(&'static str, Duration)> {
        self.0
            .iter()
            .filter_map(|(label, pid)| cpu_time(*pid).map(|t| (*label, t)))
            .collect()
    }
}

/// CPU used between two samples, per process.
pub fn used(
    before: &[(&'static str, Duration)],
    after: &[(&'static str, Duration)],
) -> Vec<(&'static str, Duration)> {
    after
        .iter()
        .filter_map(|(label, t)| {
            let start = before.iter().find(|(l, _)| l == label)?.1;
            Some((*label, t.saturating_sub(start)))
        })
        .collect()
}

/// user + system time of `pid`, from `/proc/<pid>/stat` (in clock ticks of 1/100 s, the
/// value on every Linux architecture billflow builds for).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn broker_pid() -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim() == "beam.smp").then_some(pid)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_cpu() {
        // Spins until the CPU it used shows, however loaded the machine is: the test is
        // about counting, not speed.
        let watched = Watched(vec![("me", std::process::id())]);
        let before = watched.sample();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        let mut spent = used(&before, &watched.sample());
        while spent[0].1 < Duration::from_millis(50) && start.elapsed() < Duration::from_secs(60) {
            for _ in 0..1_000_000 {
                x = x.wrapping_add(std::hint::black_box(1));
            }
            spent = used(&before, &watched.sample());
        }
        assert!(x > 0);
        assert_eq!(spent.len(), 1);
        assert!(spent[0].1 >= Duration::from_millis(50), "{spent:?}");
    }
}
