//! The CPU used while the pipeline ran, beside the wall time. Every batch is registered at once and they progress
//! together, so the run is near CPU-bound when its busy cores approach the machine's; the CPU over the cores is then
//! an estimate of the shortest the stretch could be with this much work (an estimate, not a bound: part of the CPU,
//! the Kafka clients' polling, grows with the wall time).
//!
//! Read from `/proc/self/stat` (user and system time of every thread, in clock ticks of 1/100 s, the `USER_HZ`
//! Linux reports in on the usual architectures; so ±0.01 s at each end) and, for the whole machine (a real broker,
//! PostgreSQL and Redis share the cores), from `/proc/stat`, whose first line counts every online CPU of the host
//! (the core count here is what this process may use, which differs inside a container with a CPU quota);
//! elsewhere the figure is absent. Parsing is pure ([`ticks_of_stat`], [`busy_ticks_of_proc_stat`]).

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
    utime.checked_add(stime)
}

/// Busy ticks of every core from the text of `/proc/stat`: the first (`cpu`) line's user, nice, system, irq and
/// softirq columns (not idle, not iowait, and not steal: a hypervisor's time, no process's on this machine);
/// `None` when it is not in that form.
pub fn busy_ticks_of_proc_stat(stat: &str) -> Option<u64> {
    let line = stat.lines().next()?;
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let values: Vec<u64> = fields.map(|f| f.parse().ok()).collect::<Option<_>>()?;
    if values.len() < 7 {
        return None;
    }
    // user nice system idle iowait irq softirq steal [guest guest_nice, already counted in user and nice]
    [0, 1, 2, 5, 6]
        .iter()
        .try_fold(0u64, |sum, &i| sum.checked_add(values[i]))
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
    /// The CPU over the cores: the stretch at full use of every core with this much work (an estimate of the
    /// shortest it could be; see the module).
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

/// One line: the process's CPU (and the machine's), the wall time, the busy cores, the CPU at full use of them.
impl std::fmt::Display for CpuUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2} s", self.cpu_seconds)?;
        if let Some(m) = self.machine_cpu_seconds {
            write!(f, " (the whole machine: {m:.2} s)")?;
        }
        write!(
            f,
            " over the pipeline's {:.2} s, {:.1} of {} cores busy; at full use of the {} cores this process's CPU \
             would take {:.2} s",
            self.wall_seconds, self.busy_cores, self.cores, self.cores, self.floor_seconds
        )
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
        // Huge values are refused, not wrapped.
        let huge = format!("1 (a) S 1 1 1 0 -1 0 0 0 0 0 {} 1", u64::MAX);
        assert_eq!(ticks_of_stat(&huge), None);
    }

    #[test]
    fn machine_busy_counts_neither_idle_iowait_nor_steal() {
        // user 100, nice 5, system 50, idle 1000, iowait 20, irq 3, softirq 2, steal 1, guest 7, guest_nice 0.
        let stat = "cpu  100 5 50 1000 20 3 2 1 7 0\ncpu0 50 2 25 500 10 1 1 0 3 0\n";
        assert_eq!(busy_ticks_of_proc_stat(stat), Some(160));
        assert_eq!(busy_ticks_of_proc_stat("cpu0 1 2 3 4 5 6 7\n"), None);
        assert_eq!(busy_ticks_of_proc_stat("cpu 1 2 x 4 5 6 7\n"), None);
        assert_eq!(busy_ticks_of_proc_stat("cpu 1 2 3 4 5\n"), None);
        assert_eq!(busy_ticks_of_proc_stat(""), None);
        let huge = format!("cpu {} 1 0 0 0 0 0 0", u64::MAX);
        assert_eq!(busy_ticks_of_proc_stat(&huge), None);
    }

    #[test]
    fn busy_cores_and_floor() {
        let u = CpuUse::new(0.6, 0.4, 2);
        assert!((u.busy_cores - 1.5).abs() < 1e-9);
        assert!((u.floor_seconds - 0.3).abs() < 1e-9);
        assert_eq!(CpuUse::new(0.6, 0.0, 0).busy_cores, 0.0);
        assert_eq!(CpuUse::new(0.6, 0.0, 0).cores, 1);
        let mut line = CpuUse::new(0.6, 0.4, 2);
        assert_eq!(
            line.to_string(),
            "0.60 s over the pipeline's 0.40 s, 1.5 of 2 cores busy; at full use of the 2 cores this process's CPU \
             would take 0.30 s"
        );
        line.machine_cpu_seconds = Some(0.9);
        assert!(line
            .to_string()
            .starts_with("0.60 s (the whole machine: 0.90 s) over"));
    }

    #[test]
    fn this_process_can_be_read_on_linux() {
        if cfg!(target_os = "linux") {
            let clock = CpuClock::start();
            // Burn CPU until the kernel has counted at least two ticks of it (20 ms; bounded at 5 s of wall time).
            let began = Instant::now();
            let start = process_ticks().expect("/proc/self/stat readable on Linux");
            let mut x = 0u64;
            while process_ticks().is_some_and(|t| t < start + 2) && began.elapsed().as_secs() < 5 {
                for i in 0..1_000_000u64 {
                    x = x.wrapping_mul(31).wrapping_add(i);
                }
                std::hint::black_box(x);
            }
            let used = clock.used().expect("/proc/self/stat readable on Linux");
            assert!(used.cpu_seconds >= 0.02, "{used:?}");
            assert!(used.wall_seconds > 0.0, "{used:?}");
            assert!(
                used.machine_cpu_seconds.is_some_and(|m| m > 0.0),
                "/proc/stat read: {used:?}"
            );
        }
    }
}
