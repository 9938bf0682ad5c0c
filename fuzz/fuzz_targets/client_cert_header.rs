//! The client-certificate header a trusted TLS-terminating proxy sets (RFC 8705 behind a
//! proxy, `mtls::decode_forwarded_certificate`): URL-encoded PEM, PEM or bare base64 DER;
//! then the certificate reader that judges `tls_client_auth` subjects.
//!
//! Invariants: never panics; an accepted value yields 1 to `MAX_CERTIFICATE_LEN` bytes of
//! DER that `ClientCertificate::new` accepts; those bytes read back the same from a PEM
//! and from bare base64; the certificate reader never panics on them or on the raw input.
#![no_main]

use base64::Engine as _;
use latchkey_core::mtls::{
    CertificateIdentity, ClientCertificate, MAX_CERTIFICATE_LEN, decode_forwarded_certificate,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The raw bytes as a DER certificate (what the native TLS listener hands over).
    let _ = CertificateIdentity::parse(data);
    let value = String::from_utf8_lossy(data);
    let Some(der) = decode_forwarded_certificate(&value) else {
        return;
    };
    assert!(!der.is_empty() && der.len() <= MAX_CERTIFICATE_LEN);
    assert!(ClientCertificate::new(der.clone(), false).is_some());
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    assert_eq!(decode_forwarded_certificate(&b64).as_deref(), Some(&der[..]));
    let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
    assert_eq!(decode_forwarded_certificate(&pem).as_deref(), Some(&der[..]));
    let _ = CertificateIdentity::parse(&der);
});
