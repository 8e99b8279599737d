//! What several bench programs share (each bench is its own crate; they
//! include this with `#[path]`).

/// This process's peak resident set (`VmHWM`), MiB.
#[allow(dead_code)]
pub fn peak_rss_mib() -> f64 {
    status_mib("self", "VmHWM:")
}

/// A process's current resident set (`VmRSS`), MiB; `pid` is a number or `self`.
#[allow(dead_code)]
pub fn rss_mib(pid: &str) -> f64 {
    status_mib(pid, "VmRSS:")
}

fn status_mib(pid: &str, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
