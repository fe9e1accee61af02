//! Password sources backed by files: the account profile, a Dovecot passwd-file and a
//! shadow(5) file. Hashes were made by tools nobody here wrote (Debian 12's libxcrypt
//! through Python's crypt module, `openssl passwd`).

use std::io::Write;
use std::sync::Arc;

use store::auth::{
    AuthResult, Lookup, PasswdFile, PasswordSource, ProfileSource, ScramVerifier, ServerKey,
    ShadowFile, UserKey, VerifierOptions, Verifiers,
};
use store::limits::PASSWD_LINE_BYTES_MAX;
use store::{Address, NewAccount, Store, UsageFlags};

const SHA512: &str = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
const SHA256: &str = "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA";
const MD5: &str = "$1$saltsalt$9xy1btjgzLYfb7hivXtC//";
const BCRYPT: &str = "$2b$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a";
const YESCRYPT: &str = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$GmcwIgvdUC9qLWcKCi6gklUa1dM3ziD43YxYNURLKy0";

fn addr(text: &str) -> Address {
    Address::parse(text).expect("address")
}

fn file(contents: impl AsRef<[u8]>) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(contents.as_ref()).expect("write");
    f
}

#[test]
fn passwd_file_schemes() {
    let scram = ScramVerifier::derive(b"scrampw", b"0123456789abcdef", 4096).to_dovecot();
    let text = format!(
        "# Dovecot passwd-file\n\
         \n\
         crypt@example.com:{{SHA512-CRYPT}}{SHA512}:1000:1000::/home/crypt::\n\
         sha256@example.com:{{SHA256-CRYPT}}{SHA256}\n\
         md5@example.com:{{MD5-CRYPT}}{MD5}:::\n\
         blf@example.com:{{BLF-CRYPT}}{BCRYPT}\n\
         yes@example.com:{{CRYPT}}{YESCRYPT}\n\
         bare@example.com:{SHA512}\n\
         plain@example.com:{{PLAIN}}secret::::::userdb_quota_rule=*:storage=1G\n\
         scram@example.com:{{SCRAM-SHA-256}}{scram}\n\
         locked@example.com:!{SHA512}\n\
         empty@example.com:\n\
         Mixed@Example.com:{{PLAIN}}mixed\n"
    );
    let f = file(&text);
    let source = PasswdFile::new(f.path(), UserKey::Address);
    for user in [
        "crypt@example.com",
        "sha256@example.com",
        "md5@example.com",
        "blf@example.com",
        "yes@example.com",
        "bare@example.com",
        "plain@example.com",
    ] {
        assert_eq!(
            source.verify(&addr(user), b"secret"),
            AuthResult::Ok,
            "{user}"
        );
        assert_eq!(
            source.verify(&addr(user), b"Secret"),
            AuthResult::Failed,
            "{user}"
        );
    }
    assert_eq!(
        source.verify(&addr("scram@example.com"), b"scrampw"),
        AuthResult::Ok
    );
    assert_eq!(
        source.verify(&addr("scram@example.com"), b"x"),
        AuthResult::Failed
    );
    assert_eq!(
        source.verify(&addr("mixed@example.com"), b"mixed"),
        AuthResult::Ok
    );
    for user in [
        "locked@example.com",
        "empty@example.com",
        "nobody@example.com",
    ] {
        assert_eq!(
            source.verify(&addr(user), b"secret"),
            AuthResult::Failed,
            "{user}"
        );
        assert_eq!(
            source.verify(&addr(user), b""),
            AuthResult::Failed,
            "{user}"
        );
    }
    // Only {PLAIN} serves CRAM-MD5; {PLAIN} and {SCRAM-SHA-256} serve SCRAM.
    match source.cram_secret(&addr("plain@example.com")) {
        Lookup::Found(secret) => assert_eq!(secret.expose(), b"secret"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        source.cram_secret(&addr("crypt@example.com")),
        Lookup::Missing
    );
    assert_eq!(
        source.cram_secret(&addr("nobody@example.com")),
        Lookup::Missing
    );
    let derived = source
        .scram(&addr("plain@example.com"))
        .found()
        .expect("scram");
    assert!(derived.matches_password(b"secret"));
    assert_eq!(
        source.scram(&addr("plain@example.com")).found(),
        Some(derived),
        "stable salt"
    );
    let stored = source
        .scram(&addr("scram@example.com"))
        .found()
        .expect("scram");
    assert!(stored.matches_password(b"scrampw"));
    assert_eq!(source.scram(&addr("crypt@example.com")), Lookup::Missing);
}

#[test]
fn passwd_file_by_local_part_and_damage() {
    let long = "x".repeat(PASSWD_LINE_BYTES_MAX * 2);
    let text = format!("{long}\nbob:{{PLAIN}}pw\nnot a line\n\u{fffd}:junk\n");
    let text = [
        text.as_bytes(),
        b"\xff\xfe:{PLAIN}pw\nalice:",
        SHA256.as_bytes(),
    ]
    .concat();
    let f = file(&text);
    let source = PasswdFile::new(f.path(), UserKey::LocalPart);
    assert_eq!(
        source.verify(&addr("bob@example.com"), b"pw"),
        AuthResult::Ok
    );
    assert_eq!(source.verify(&addr("bob@other.org"), b"pw"), AuthResult::Ok);
    // Last line without a newline still counts.
    assert_eq!(
        source.verify(&addr("alice@example.com"), b"secret"),
        AuthResult::Ok
    );
    let by_address = PasswdFile::new(f.path(), UserKey::Address);
    assert_eq!(
        by_address.verify(&addr("bob@example.com"), b"pw"),
        AuthResult::Failed
    );
    let missing = PasswdFile::new("/nonexistent/passwd", UserKey::Address);
    assert_eq!(
        missing.verify(&addr("bob@example.com"), b"pw"),
        AuthResult::Unavailable
    );
    assert_eq!(missing.scram(&addr("bob@example.com")), Lookup::Unavailable);
}

#[test]
fn shadow_file() {
    let text = format!(
        "root:*:19000:0:99999:7:::\n\
         daemon:*:19000:0:99999:7:::\n\
         yes:{YESCRYPT}:19000:0:99999:7:::\n\
         sha:{SHA512}:19000:0:99999:7:::\n\
         md5:{MD5}:19000::::::\n\
         locked:!{SHA512}:19000:0:99999:7:::\n\
         nopass::19000:0:99999:7:::\n\
         plain:secret:19000:0:99999:7:::\n"
    );
    let f = file(&text);
    let source = ShadowFile::new(f.path());
    for user in ["yes@example.com", "sha@example.com", "md5@localhost"] {
        assert_eq!(
            source.verify(&addr(user), b"secret"),
            AuthResult::Ok,
            "{user}"
        );
        assert_eq!(
            source.verify(&addr(user), b"secreT"),
            AuthResult::Failed,
            "{user}"
        );
    }
    for user in ["root", "daemon", "locked", "nopass", "plain", "ghost"] {
        let user = addr(&format!("{user}@example.com"));
        assert_eq!(
            source.verify(&user, b"secret"),
            AuthResult::Failed,
            "{user}"
        );
        assert_eq!(source.verify(&user, b"*"), AuthResult::Failed, "{user}");
        assert_eq!(source.verify(&user, b""), AuthResult::Failed, "{user}");
    }
    assert_eq!(source.scram(&addr("sha@example.com")), Lookup::Missing);
    assert_eq!(
        source.cram_secret(&addr("sha@example.com")),
        Lookup::Missing
    );
    assert_eq!(
        ShadowFile::new("/nonexistent/shadow").verify(&addr("sha@example.com"), b"secret"),
        AuthResult::Unavailable
    );
}

#[test]
fn profile_source() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(&[root.path().to_path_buf()], 2).expect("store"));
    let key = Arc::new(ServerKey::load_or_create(root.path()).expect("key"));
    let add = |address: &str, hash: String| {
        store
            .create_account(NewAccount {
                address: addr(address),
                name: String::new(),
                quota_bytes: 0,
                flags: UsageFlags::default_new(),
                password_hash: Some(hash),
            })
            .expect("account");
    };
    let alice = addr("alice@example.com");
    let cram_on = VerifierOptions {
        keep_cram_secret: true,
        ..VerifierOptions::default()
    };
    add(
        "alice@example.com",
        Verifiers::from_password("alicepw", &alice, &cram_on, Some(&key))
            .expect("v")
            .to_profile_value(),
    );
    let bob = addr("bob@example.com");
    add(
        "bob@example.com",
        Verifiers::from_password("bobpw", &bob, &VerifierOptions::default(), None)
            .expect("v")
            .to_profile_value(),
    );
    add(
        "old@example.com",
        store::hash_password("oldpw").expect("hash"),
    );

    let source = ProfileSource::new(store.clone(), Some(key));
    assert_eq!(source.verify(&alice, b"alicepw"), AuthResult::Ok);
    assert_eq!(source.verify(&alice, b"bobpw"), AuthResult::Failed);
    assert_eq!(source.verify(&bob, b"bobpw"), AuthResult::Ok);
    let old = addr("old@example.com");
    assert_eq!(source.verify(&old, b"oldpw"), AuthResult::Ok);
    let ghost = addr("ghost@example.com");
    assert_eq!(source.verify(&ghost, b"alicepw"), AuthResult::Failed);

    match source.cram_secret(&alice) {
        Lookup::Found(secret) => assert_eq!(secret.expose(), b"alicepw"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        source.cram_secret(&bob),
        Lookup::Missing,
        "CRAM off for bob"
    );
    assert_eq!(source.cram_secret(&ghost), Lookup::Missing);
    assert!(
        source
            .scram(&bob)
            .found()
            .expect("scram")
            .matches_password(b"bobpw")
    );
    assert_eq!(source.scram(&old), Lookup::Missing, "legacy profile");
    assert_eq!(source.scram(&ghost), Lookup::Missing);

    // Without the server key, CRAM-MD5 is off everywhere.
    let no_key = ProfileSource::new(store, None);
    assert_eq!(no_key.cram_secret(&alice), Lookup::Missing);

    // No file in the store holds a plaintext password.
    for entry in walk(root.path()) {
        let bytes = std::fs::read(&entry).expect("read");
        for password in [&b"alicepw"[..], b"bobpw", b"oldpw"] {
            assert!(
                !bytes.windows(password.len()).any(|w| w == password),
                "{} holds a password",
                entry.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
