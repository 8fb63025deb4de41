//! CPU time and resident memory of a process and all its descendants, read from `/proc`.
//!
//! nginx and HAProxy run workers as child processes; certfront is one process
//! with threads. Summing over the tree makes the three comparable.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::stats::Report;

/// Linux reports utime/stime in USER_HZ ticks, fixed at 100 by the kernel ABI on
/// every architecture this runs on (what `getconf CLK_TCK` prints).
const TICKS_PER_SECOND: u64 = 100;

/// The fields of `/proc/PID/stat` after the command name (which may hold spaces
/// and parentheses, hence the split at the last `)`).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

/// `pid` and every process below it.
pub(crate) fn tree(pid: u32) -> Result<Vec<u32>> {
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        bail!("no process {pid} (/proc/{pid} does not exist)");
    }
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").context("read /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit between the listing and the read: skip it.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // Field 4 of stat is the parent; index 1 after the command name.
        if let Some(ppid) = stat_fields(&stat).and_then(|f| f.get(1)?.parse::<u32>().ok()) {
            children.entry(ppid).or_default().push(p);
        }
    }
    let mut all = vec![pid];
    let mut i = 0;
    // Bounded: each pid is visited once, and pids are finite.
    while i < all.len() && all.len() < 100_000 {
        if let Some(c) = children.get(&all[i]) {
            all.extend(c);
        }
        i += 1;
    }
    Ok(all)
}

/// User plus system CPU time of the processes, in microseconds.
pub(crate) fn cpu_micros(pids: &[u32]) -> u64 {
    let mut ticks = 0;
    for p in pids {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        if let Some(f) = stat_fields(&stat) {
            // utime and stime are fields 14 and 15: indexes 11 and 12 here.
            let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            ticks += n(11) + n(12);
        }
    }
    ticks * 1_000_000 / TICKS_PER_SECOND
}

/// Resident memory (`VmRSS`) of the processes, in KiB.
pub(crate) fn rss_kb(pids: &[u32]) -> u64 {
    let mut kb = 0;
    for p in pids {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) else {
            continue;
        };
        kb += status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    kb
}

/// Proportional set size (`Pss` of `/proc/PID/smaps_rollup`) of the processes, in KiB:
/// a page shared by k processes counts 1/k in each, so forked workers (nginx) are not
/// counted several times over, as summing RSS does.
pub(crate) fn pss_kb(pids: &[u32]) -> u64 {
    let mut kb = 0;
    for p in pids {
        let Ok(rollup) = std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")) else {
            continue;
        };
        kb += rollup
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    kb
}

#[derive(Args, Debug)]
pub(crate) struct ProcArgs {
    /// The process to read (its descendants are included).
    #[arg(long)]
    pub pid: u32,
}

/// `proc`: prints the CPU time and RSS of a process tree (what compare.sh samples around each run).
pub(crate) fn run(args: ProcArgs, json: bool) -> Result<()> {
    let pids = tree(args.pid)?;
    let mut report = Report::new("process tree");
    report
        .add("pid", args.pid)
        .add("processes", pids.len())
        .add("cpu_us", cpu_micros(&pids))
        .add("rss_kb", rss_kb(&pids));
    report.print(json);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (worker) 1) S 17 4242 17 0 -1 4194560 1 0 0 0 250 75 0 0";
        let f = stat_fields(stat).unwrap();
        assert_eq!(f[0], "S");
        assert_eq!(f[1], "17");
        assert_eq!(f[11], "250");
        assert_eq!(f[12], "75");
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let me = std::process::id();
        let pids = tree(me).unwrap();
        assert_eq!(pids[0], me);
        assert!(rss_kb(&pids) > 0);
        // Alone, this process's proportional share is at most its resident set.
        let pss = pss_kb(&pids);
        assert!(pss > 0 && pss <= rss_kb(&pids) + 1024, "PSS {pss} KiB");
        // Burn CPU until a tick is accounted (10 ms of CPU); a busy machine may
        // take a while to grant it, hence a bound in time rather than a fixed spin.
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while cpu_micros(&pids) == 0 && t.elapsed() < std::time::Duration::from_secs(10) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        assert!(
            cpu_micros(&pids) > 0,
            "no CPU time accounted after {:?}",
            t.elapsed()
        );
        assert!(tree(u32::MAX).is_err());
    }
}
