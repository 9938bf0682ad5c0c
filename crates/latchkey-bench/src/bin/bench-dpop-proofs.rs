//! Pre-generates DPoP proofs (RFC 9449) for the token-endpoint benchmark, so that signing
//! them costs nothing in the measured run: `bench-dpop-proofs --htu URL --count N` prints N
//! proofs of one fresh P-256 key for `POST URL`, one per line, each with its own `jti` and
//! `iat` now (the benchmark server accepts proofs up to `dpop.proof_max_age` old).

use latchkey_bench::{arg, num_arg};
use latchkey_core::dpop::proof::ProofKey;
use std::io::Write as _;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(htu) = arg(&args, "--htu") else {
        eprintln!("usage: bench-dpop-proofs --htu URL --count N");
        std::process::exit(2);
    };
    let count = num_arg(&args, "--count", 1000);
    let key = ProofKey::generate().expect("a P-256 key");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for _ in 0..count {
        let proof = key
            .proof("POST", &htu, None, None, now)
            .expect("a signed proof");
        writeln!(out, "{proof}").expect("stdout");
    }
}
