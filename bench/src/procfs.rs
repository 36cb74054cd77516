//! What the benchmarks read from `/proc`: CPU time and resident memory of another process, so
//! the server's and the load generator's CPU are reported separately.

use std::io;

/// `USER_HZ`: the unit of the CPU times in `/proc/PID/stat` (100 on every Linux platform).
const TICKS_PER_SECOND: f64 = 100.0;

/// Fields of `/proc/PID/stat` after the command name (which may hold spaces), 0-based from
/// field 3 ("state").
fn stat_fields(pid: u32) -> io::Result<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or_else(|| io::Error::other("malformed /proc/PID/stat"))?;
    Ok(after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect())
}

/// User + system CPU seconds of `pid` (all its threads). With `children`, also the CPU of its
/// children that it has reaped (PostgreSQL's backends, once they exit).
pub fn cpu_seconds(pid: u32, children: bool) -> io::Result<f64> {
    let f = stat_fields(pid)?;
    // utime, stime, cutime, cstime are fields 14..17, i.e. 11..14 here.
    let get = |i: usize| f.get(i).copied().unwrap_or(0);
    let mut ticks = get(11) + get(12);
    if children {
        ticks += get(13) + get(14);
    }
    Ok(ticks as f64 / TICKS_PER_SECOND)
}

/// `VmRSS` and `VmHWM` (peak) of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> io::Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// CPU seconds of this process (user + system, all threads), at microsecond resolution.
pub fn own_cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(super::cpu_seconds(me, true).unwrap() >= 0.0);
        let (rss, hwm) = super::rss_kib(me).unwrap();
        assert!(rss > 0 && hwm >= rss);
        assert!(super::own_cpu_seconds() > 0.0);
    }
}
