//! Stored verifiers and the server key, as the engine and an operator see them.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use store::Address;
use store::auth::server_key::SECRET_KEY_FILE;
use store::auth::{ScramVerifier, ServerKey, VerifierOptions, Verifiers};
use store::limits::{PASSWORD_BYTES_MAX, VERIFIERS_BYTES_MAX};

fn alice() -> Address {
    Address::parse("alice@example.com").expect("address")
}

fn key() -> ServerKey {
    ServerKey::from_bytes([7; 32])
}

/// RFC 7677 §3: the keys derived from "pencil" and the example's salt produce the
/// example's server signature.
#[test]
fn scram_keys_match_rfc7677() {
    let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
    let verifier = ScramVerifier::derive(b"pencil", &salt, 4096);
    let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
        r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
        c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&verifier.server_key).expect("key");
    mac.update(auth_message.as_bytes());
    assert_eq!(
        STANDARD.encode(mac.finalize().into_bytes()),
        "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    );
    assert!(verifier.matches_password(b"pencil"));
    assert!(!verifier.matches_password(b"pencil!"));
}

/// The same keys as Python's `scramp` (PyPI) computes for a server (needs
/// `pip install scramp`).
#[test]
fn scram_keys_match_scramp() {
    let script = "import sys, base64, scramp\n\
        m = scramp.ScramMechanism('SCRAM-SHA-256')\n\
        salt, stored, server, i = m.make_auth_info('correct horse', iteration_count=4096, salt=b'0123456789abcdef')\n\
        print(i, base64.b64encode(stored).decode(), base64.b64encode(server).decode())";
    let output = Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("python3 must be installed");
    assert!(
        output.status.success(),
        "the scramp check needs Python's scramp package (pip install scramp): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ours = ScramVerifier::derive(b"correct horse", b"0123456789abcdef", 4096);
    let expected = format!(
        "4096 {} {}\n",
        STANDARD.encode(ours.stored_key),
        STANDARD.encode(ours.server_key)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
}

#[test]
fn verifiers_round_trip_without_plaintext() {
    let user = alice();
    let v = Verifiers::from_password("correct horse", &user, &VerifierOptions::default(), None)
        .expect("verifiers");
    assert!(v.cram.is_none());
    let value = v.to_profile_value();
    assert!(value.starts_with("msv1;argon2id=$argon2id$"), "{value}");
    assert!(value.contains(";scram-sha-256=4096,"), "{value}");
    assert!(!value.contains("correct horse"));
    assert!(value.bytes().all(|b| b.is_ascii_graphic()), "profile-safe");
    let parsed = Verifiers::parse(&value).expect("parse");
    assert_eq!(parsed, v);
    assert!(parsed.verify(b"correct horse"));
    assert!(!parsed.verify(b"wrong"));
    let scram = parsed.scram.expect("scram keys");
    assert!(scram.matches_password(b"correct horse"));
    assert_eq!(scram.salt.len(), 16);
}

#[test]
fn cram_secret_is_sealed_per_user_and_key() {
    let user = alice();
    let options = VerifierOptions {
        keep_cram_secret: true,
        ..VerifierOptions::default()
    };
    assert!(Verifiers::from_password("tanstaaf", &user, &options, None).is_err());
    let v = Verifiers::from_password("tanstaaf", &user, &options, Some(&key())).expect("v");
    let value = v.to_profile_value();
    assert!(value.contains(";cram="), "{value}");
    assert!(!value.contains("tanstaaf"));
    let parsed = Verifiers::parse(&value).expect("parse");
    let secret = parsed.cram_secret(&user, &key()).expect("opens");
    assert_eq!(secret.expose(), b"tanstaaf");
    // Copied into another account, or opened with another key: nothing.
    let bob = Address::parse("bob@example.com").expect("address");
    assert!(parsed.cram_secret(&bob, &key()).is_none());
    assert!(
        parsed
            .cram_secret(&user, &ServerKey::from_bytes([8; 32]))
            .is_none()
    );
    assert!(parsed.clone().without_cram().cram.is_none());
}

#[test]
fn longest_password_fits_the_limit() {
    let options = VerifierOptions {
        keep_cram_secret: true,
        ..VerifierOptions::default()
    };
    let password = "p".repeat(PASSWORD_BYTES_MAX);
    let v = Verifiers::from_password(&password, &alice(), &options, Some(&key())).expect("v");
    assert!(v.to_profile_value().len() <= VERIFIERS_BYTES_MAX);
    assert!(Verifiers::from_password("", &alice(), &options, Some(&key())).is_err());
    let too_long = "p".repeat(PASSWORD_BYTES_MAX + 1);
    assert!(Verifiers::from_password(&too_long, &alice(), &options, Some(&key())).is_err());
    let weak = VerifierOptions {
        scram_iterations: 1000,
        ..VerifierOptions::default()
    };
    assert!(Verifiers::from_password("pw", &alice(), &weak, None).is_err());
}

#[test]
fn parse_accepts_bare_phc_and_rejects_damage() {
    let phc = store::hash_password("pw").expect("hash");
    let legacy = Verifiers::parse(&phc).expect("bare PHC");
    assert!(legacy.scram.is_none() && legacy.verify(b"pw"));
    let good = Verifiers::from_password("pw", &alice(), &VerifierOptions::default(), None)
        .expect("v")
        .to_profile_value();
    let damaged = [
        String::new(),
        "msv2;argon2id=x".into(),
        "msv1".into(),
        "msv1;argon2id=garbage".into(),
        good.replace("scram-sha-256=4096", "scram-sha-256=1"),
        good.replace(";scram-sha-256=", ";scram="),
        format!("{good};extra=1"),
        format!("{good};cram=AAAA,BBBB"),
        "x".repeat(VERIFIERS_BYTES_MAX + 1),
    ];
    for value in damaged {
        assert!(Verifiers::parse(&value).is_err(), "{value}");
    }
}

#[test]
fn server_key_created_once_with_tight_modes() {
    let root = tempfile::tempdir().expect("tempdir");
    let first = ServerKey::load_or_create(root.path()).expect("create");
    let path = ServerKey::path(root.path());
    assert!(path.ends_with(format!("keys/{SECRET_KEY_FILE}")));
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().expect("dir")), 0o700);
    let again = ServerKey::load_or_create(root.path()).expect("load");
    assert_eq!(first.derive("x"), again.derive("x"));
    assert_ne!(first.derive("x"), first.derive("y"));
    // A secret sealed with the first load opens with the second.
    let sealed = first.seal(&alice(), b"s3cret").expect("seal");
    assert_eq!(
        again.open(&alice(), &sealed).expect("open").expose(),
        b"s3cret"
    );

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = ServerKey::load(root.path()).expect_err("loose mode refused");
    assert!(err.to_string().contains("chmod 600"), "{err}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(&path, b"msgstore-secret-key 1\nkey AAAA\ncrc32 00000000\n").expect("write");
    assert!(ServerKey::load(root.path()).is_err(), "damaged key refused");
}
