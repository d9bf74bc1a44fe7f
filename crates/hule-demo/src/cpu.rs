//! The CPU the whole process used while the pipeline ran, beside the wall time: the floor under the end-to-end
//! latency. Every batch is registered at once and they progress together, so a batch's latency is close to the
//! time the whole run's work takes, which no schedule brings below its CPU time divided by the cores.
//!
//! Read from `/proc/self/stat` (user and system time of every thread, in clock ticks of 1/100 s, the `USER_HZ`
//! every Linux ABI reports in) and, for the whole machine (a real broker, PostgreSQL and Redis share the cores),
//! from `/proc/stat`; elsewhere the figure is absent. Parsing is pure ([`ticks_of_stat`], [`busy_ticks_of_proc_stat`]).

use std::time::Instant;

use serde::Serialize;

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`).
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system ticks from the text of `/proc/<pid>/stat`; `None` when it is not in that form. The command
/// name (field 2) is in parentheses and may hold spaces and parentheses itself, so fields are counted after the
/// last `)`.
pub fn ticks_of_stat(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy ticks of every core from the text of `/proc/stat`: the first (`cpu`) line's total less its idle and iowait
/// columns; `None` when it is not in that form.
pub fn busy_ticks_of_proc_stat(stat: &str) -> Option<u64> {
    let line = stat.lines().next()?;
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let values: Vec<u64> = fields.map(|f| f.parse().ok()).collect::<Option<_>>()?;
    if values.len() < 5 {
        return None;
    }
    // user nice system idle iowait irq softirq steal [guest guest_nice, already counted in user and nice]
    let total: u64 = values.iter().take(8).sum();
    Some(total - values[3] - values[4])
}

fn process_ticks() -> Option<u64> {
    ticks_of_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

fn machine_ticks() -> Option<u64> {
    busy_ticks_of_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// A start point: the process's and the machine's CPU ticks and the time.
pub struct CpuClock {
    ticks: Option<u64>,
    machine: Option<u64>,
    at: Instant,
}

impl CpuClock {
    /// Starts measuring now.
    pub fn start() -> CpuClock {
        CpuClock {
            ticks: process_ticks(),
            machine: machine_ticks(),
            at: Instant::now(),
        }
    }

    /// The CPU used since [`CpuClock::start`]; `None` where `/proc/self/stat` cannot be read.
    pub fn used(&self) -> Option<CpuUse> {
        let ticks = process_ticks()?.checked_sub(self.ticks?)?;
        let machine = machine_ticks()
            .zip(self.machine)
            .and_then(|(now, then)| now.checked_sub(then));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut used = CpuUse::new(
            ticks as f64 / TICKS_PER_SECOND,
            self.at.elapsed().as_secs_f64(),
            cores,
        );
        used.machine_cpu_seconds = machine.map(|t| t as f64 / TICKS_PER_SECOND);
        Some(used)
    }
}

/// CPU time against wall time over one stretch of the run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CpuUse {
    /// CPU seconds (user and system, every thread of the process) in the stretch.
    pub cpu_seconds: f64,
    /// Wall seconds of the stretch.
    pub wall_seconds: f64,
    /// Cores this process may run on.
    pub cores: usize,
    /// Cores busy on average: CPU over wall time.
    pub busy_cores: f64,
    /// The shortest the stretch could be with this CPU on these cores: CPU over cores.
    pub floor_seconds: f64,
    /// CPU seconds every process on the machine used in the stretch (the process's own included), where
    /// `/proc/stat` can be read: with a real broker or database on the same cores, their work is the pipeline's too.
    pub machine_cpu_seconds: Option<f64>,
}

impl CpuUse {
    /// From the CPU and wall seconds and the cores.
    pub fn new(cpu_seconds: f64, wall_seconds: f64, cores: usize) -> CpuUse {
        let cores = cores.max(1);
        CpuUse {
            cpu_seconds,
            wall_seconds,
            cores,
            busy_cores: if wall_seconds > 0.0 {
                cpu_seconds / wall_seconds
            } else {
                0.0
            },
            floor_seconds: cpu_seconds / cores as f64,
            machine_cpu_seconds: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_user_plus_system_counted_after_the_name() {
        // A name with a space and a parenthesis of its own; utime 150, stime 27.
        let stat = "4242 (hule (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 150 27 0 0 20 0 9 0 100 1000 200";
        assert_eq!(ticks_of_stat(stat), Some(177));
        assert_eq!(ticks_of_stat("4242 (hule) S 1 2"), None);
        assert_eq!(ticks_of_stat("no name here"), None);
        assert_eq!(ticks_of_stat("1 (a) S 1 1 1 0 -1 0 0 0 0 0 x 2 0 0"), None);
    }

    #[test]
    fn machine_busy_is_the_total_less_idle_and_iowait() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 7 0\ncpu0 50 2 25 500 10 1 1 0 3 0\n";
        assert_eq!(
            busy_ticks_of_proc_stat(stat),
            Some(100 + 5 + 50 + 3 + 2 + 1)
        );
        assert_eq!(busy_ticks_of_proc_stat("cpu0 1 2 3 4 5\n"), None);
        assert_eq!(busy_ticks_of_proc_stat("cpu 1 2 x 4 5\n"), None);
        assert_eq!(busy_ticks_of_proc_stat("cpu 1 2 3\n"), None);
        assert_eq!(busy_ticks_of_proc_stat(""), None);
    }

    #[test]
    fn busy_cores_and_floor() {
        let u = CpuUse::new(0.6, 0.4, 2);
        assert!((u.busy_cores - 1.5).abs() < 1e-9);
        assert!((u.floor_seconds - 0.3).abs() < 1e-9);
        assert_eq!(CpuUse::new(0.6, 0.0, 0).busy_cores, 0.0);
        assert_eq!(CpuUse::new(0.6, 0.0, 0).cores, 1);
    }

    #[test]
    fn this_process_can_be_read_on_linux() {
        if cfg!(target_os = "linux") {
            let clock = CpuClock::start();
            // Burn a little CPU so the reading moves or at least reads.
            let mut x = 0u64;
            for i in 0..2_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
            let used = clock.used().expect("/proc/self/stat readable on Linux");
            assert!(used.cpu_seconds >= 0.0 && used.wall_seconds > 0.0);
        }
    }
}
