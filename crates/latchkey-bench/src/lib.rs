//! Benchmark helpers for Latchkey, driven by `bench/run.py` (see `BENCHMARKS.md`).
//!
//! The binaries exist so that the harness can compare `latchkey serve` with the physical limit
//! of the same stack and reach paths the server binary does not expose:
//! - `bench-baseline`: a bare axum handler answering every request with a JSON body of a given
//!   size (the size of a token response): the limit the token endpoint is measured against;
//! - `bench-guard`: the in-process bearer guard of `latchkey-axum` on a protected route, over
//!   the memory store, seeded directly with any number of live tokens;
//! - `bench-flow`: a load generator for the full authorization-code + PKCE flow (login page,
//!   consent page, code exchange), which `wrk` cannot script.
//!
//! This library holds the little they share: command-line reading.

/// The value of `--name VALUE` in `args`, if present.
pub fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The value of `--name VALUE` parsed as a number, or `default` when absent or unreadable.
pub fn num_arg(args: &[String], name: &str, default: u64) -> u64 {
    arg(args, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_read_by_name() {
        let args: Vec<String> = ["--listen", "127.0.0.1:1", "--seed", "1000", "--bad", "x"]
            .map(String::from)
            .to_vec();
        assert_eq!(arg(&args, "--listen").as_deref(), Some("127.0.0.1:1"));
        assert_eq!(num_arg(&args, "--seed", 7), 1000);
        assert_eq!(num_arg(&args, "--bad", 7), 7);
        assert_eq!(num_arg(&args, "--missing", 7), 7);
    }
}
