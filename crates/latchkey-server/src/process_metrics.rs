//! The process's own series on `/metrics`, under the names every Prometheus client library
//! uses (so stock dashboards and alerts work): `process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
//! `process_max_fds`, `process_start_time_seconds`, `process_threads`; and
//! `latchkey_build_info{version}`.
//!
//! They are read from `/proc/self` at scrape time (Linux; elsewhere only the build info is
//! written), so they cost nothing between scrapes and need no crate.

use std::fmt::Write as _;

/// Appends the process series, each with its `# HELP` and `# TYPE` lines, to `out`.
pub fn append(out: &mut String) {
    series(
        out,
        "latchkey_build_info",
        "gauge",
        "Always 1; the version label says which latchkey runs.",
        &format!("{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION")),
    );
    if let Some(stat) = Stat::read() {
        series(
            out,
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            &format!(" {}", stat.cpu_seconds),
        );
        series(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            &format!(" {}", stat.resident_bytes),
        );
        series(
            out,
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            &format!(" {}", stat.virtual_bytes),
        );
        series(
            out,
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
            &format!(" {}", stat.threads),
        );
        if let Some(start) = stat.start_time_seconds {
            series(
                out,
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                &format!(" {start}"),
            );
        }
    }
    if let Some(open) = open_fds() {
        series(
            out,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            &format!(" {open}"),
        );
    }
    if let Some(max) = max_fds() {
        series(
            out,
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            &format!(" {max}"),
        );
    }
}

/// One series with its `# HELP` and `# TYPE` lines; `sample` is what follows the name
/// (labels, a space, the value).
fn series(out: &mut String, name: &str, kind: &str, help: &str, sample: &str) {
    // Writing into a `String` cannot fail.
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{sample}\n\n"
    );
}

/// What `/proc/self/stat` says, in units.
#[derive(Debug, PartialEq)]
struct Stat {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    threads: u64,
    start_time_seconds: Option<f64>,
}

impl Stat {
    #[cfg(target_os = "linux")]
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| boot_time(&s));
        let ticks = rustix::param::clock_ticks_per_second();
        let page = u64::try_from(rustix::param::page_size()).ok()?;
        Self::parse(&stat, ticks, page, boot)
    }

    #[cfg(not(target_os = "linux"))]
    fn read() -> Option<Self> {
        None
    }

    /// Parses `/proc/self/stat` (proc(5)): the fields after the command name, which is in
    /// parentheses and may itself hold spaces and parentheses.
    fn parse(stat: &str, ticks: u64, page: u64, boot: Option<u64>) -> Option<Self> {
        let (_, rest) = stat.rsplit_once(')')?;
        // `rest` starts at field 3 (state): field n is at index n - 3.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let ticks = ticks.max(1) as f64;
        let (utime, stime) = (field(14)?, field(15)?);
        Some(Self {
            cpu_seconds: (utime + stime) as f64 / ticks,
            threads: field(20)?,
            start_time_seconds: boot
                .zip(field(22))
                .map(|(boot, start)| boot as f64 + start as f64 / ticks),
            virtual_bytes: field(23)?,
            resident_bytes: field(24)?.saturating_mul(page),
        })
    }
}

/// The boot time (`btime`, seconds since the epoch) in `/proc/stat`.
fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The number of open descriptors: the entries of `/proc/self/fd`.
fn open_fds() -> Option<usize> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// The soft limit on open descriptors.
fn max_fds() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_past_a_command_with_spaces_and_parens() {
        // proc(5) fields 1-24 of a process named "a) (b", then the rest.
        let stat = "4242 (a) (b) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 \
                    7 0 12000 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1";
        let parsed = Stat::parse(stat, 100, 4096, Some(1_700_000_000)).expect("parsed");
        assert_eq!(
            parsed,
            Stat {
                cpu_seconds: 3.0,
                resident_bytes: 2560 * 4096,
                virtual_bytes: 104_857_600,
                threads: 7,
                start_time_seconds: Some(1_700_000_120.0),
            }
        );
        assert_eq!(
            boot_time("cpu 1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn every_process_series_has_help_and_type() {
        let mut text = String::new();
        append(&mut text);
        let names: Vec<&str> = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.split(['{', ' ']).next().unwrap_or(""))
            .collect();
        assert!(names.contains(&"latchkey_build_info"));
        if cfg!(target_os = "linux") {
            for name in [
                "process_cpu_seconds_total",
                "process_resident_memory_bytes",
                "process_open_fds",
                "process_max_fds",
                "process_start_time_seconds",
            ] {
                assert!(names.contains(&name), "{name} missing from:\n{text}");
            }
        }
        for name in names {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
    }
}
