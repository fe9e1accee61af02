//! SASL exchanges as a client sees them: RFC test vectors, an independent SCRAM client,
//! malformed and oversized input, downgrade attempts, and random input (proptest).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use protocols::Secret;
use protocols::sasl::limits::{SASL_PASSWORD_BYTES_MAX, SASL_RESPONSE_BYTES_MAX};
use protocols::sasl::{
    ClientResponse, CredentialRequest, Credentials, SaslError, SaslFailure, SaslPolicy, SaslServer,
    SaslStep, ScramSecret, SecretKind, decode_response, encode_challenge, mechanisms,
};
use sha2::{Digest, Sha256};

fn tls() -> SaslPolicy {
    SaslPolicy::new(true, false)
}

fn start(mechanism: &str) -> SaslServer {
    SaslServer::start(mechanism, &tls()).expect("mechanism offered")
}

fn success(authcid: &str, data: Option<&[u8]>) -> SaslStep {
    SaslStep::Success {
        authcid: authcid.to_owned(),
        authzid: None,
        additional_data: data.map(<[u8]>::to_vec),
    }
}

fn verify(authcid: &str, password: &[u8]) -> SaslStep {
    SaslStep::NeedCredentials(CredentialRequest::Verify {
        authcid: authcid.to_owned(),
        authzid: None,
        password: Secret::new(password.to_vec()),
    })
}

// ---------------------------------------------------------------------------
// SCRAM-SHA-256

/// RFC 7677 §3: the example exchange, byte for byte (user "user", password "pencil").
#[test]
fn scram_rfc7677_example() {
    let mut server =
        SaslServer::start_with_nonce("SCRAM-SHA-256", &tls(), "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
            .expect("start");
    assert_eq!(
        server.initial(Some(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")),
        SaslStep::NeedCredentials(CredentialRequest::Lookup {
            authcid: "user".into(),
            authzid: None,
            kind: SecretKind::ScramSha256,
        })
    );
    let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
    let secret = ScramSecret::derive(b"pencil", &salt, 4096);
    assert_eq!(
        server.provide(Credentials::ScramSha256(secret)),
        SaslStep::Challenge(
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                .to_vec()
        )
    );
    assert_eq!(
        server.step(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
              p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        ),
        success(
            "user",
            Some(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        )
    );
    assert!(server.is_done());
    assert_eq!(
        server.step(b""),
        SaslStep::Failure(SaslFailure::UnexpectedStep)
    );
}

/// A SCRAM client written from RFC 5802 §3 without the server's code.
struct ScramClient {
    user: String,
    password: Vec<u8>,
    gs2: &'static str,
    nonce: String,
    bare: String,
    expected_server_signature: Option<Vec<u8>>,
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

impl ScramClient {
    fn new(user: &str, password: &str, gs2: &'static str) -> ScramClient {
        let nonce = "fyko+d2lbbFgONRv9qkxdawL".to_owned();
        ScramClient {
            bare: format!(
                "n={},r={nonce}",
                user.replace('=', "=3D").replace(',', "=2C")
            ),
            user: user.to_owned(),
            password: password.as_bytes().to_vec(),
            gs2,
            nonce,
            expected_server_signature: None,
        }
    }

    fn first(&self) -> Vec<u8> {
        format!("{}{}", self.gs2, self.bare).into_bytes()
    }

    fn r#final(&mut self, server_first: &[u8]) -> Vec<u8> {
        let server_first = std::str::from_utf8(server_first).expect("utf-8");
        let mut nonce = "";
        let mut salt = Vec::new();
        let mut iterations = 0;
        for attribute in server_first.split(',') {
            let (key, value) = attribute.split_at(2);
            match key {
                "r=" => nonce = value,
                "s=" => salt = STANDARD.decode(value).expect("salt"),
                "i=" => iterations = value.parse().expect("iterations"),
                _ => {}
            }
        }
        assert!(nonce.starts_with(&self.nonce), "server nonce extends ours");
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(&self.password, &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key);
        let without_proof = format!("c={},r={nonce}", STANDARD.encode(self.gs2));
        let auth_message = format!("{},{server_first},{without_proof}", self.bare);
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        self.expected_server_signature = Some(hmac(&server_key, auth_message.as_bytes()));
        format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes()
    }

    fn check_server_final(&self, server_final: &[u8]) -> bool {
        let expected = self
            .expected_server_signature
            .as_deref()
            .expect("final sent");
        server_final == format!("v={}", STANDARD.encode(expected)).as_bytes()
    }
}

/// Runs a whole exchange; the store holds `stored` (None: unknown user).
fn scram_exchange(client: &mut ScramClient, stored: Option<&str>) -> SaslStep {
    let mut server = start("SCRAM-SHA-256");
    let step = server.initial(Some(&client.first()));
    let SaslStep::NeedCredentials(CredentialRequest::Lookup { authcid, .. }) = step else {
        return step;
    };
    assert_eq!(authcid, client.user);
    let credentials = match stored {
        Some(password) => {
            Credentials::ScramSha256(ScramSecret::derive(password.as_bytes(), b"salty", 4096))
        }
        None => Credentials::Rejected,
    };
    let SaslStep::Challenge(server_first) = server.provide(credentials) else {
        panic!("no server-first");
    };
    let client_final = client.r#final(&server_first);
    server.step(&client_final)
}

#[test]
fn scram_independent_client_checks_server_signature() {
    for gs2 in ["n,,", "y,,"] {
        let mut client = ScramClient::new("bob@example.com", "hunter2", gs2);
        let SaslStep::Success {
            authcid,
            additional_data: Some(server_final),
            ..
        } = scram_exchange(&mut client, Some("hunter2"))
        else {
            panic!("SCRAM failed with {gs2}");
        };
        assert_eq!(authcid, "bob@example.com");
        assert!(client.check_server_final(&server_final));
    }
}

#[test]
fn scram_names_with_escapes() {
    let mut client = ScramClient::new("a,b=c", "pw", "n,,");
    assert!(matches!(
        scram_exchange(&mut client, Some("pw")),
        SaslStep::Success { authcid, .. } if authcid == "a,b=c"
    ));
}

#[test]
fn scram_wrong_password_fails() {
    let mut client = ScramClient::new("bob@example.com", "wrong", "n,,");
    assert_eq!(
        scram_exchange(&mut client, Some("hunter2")),
        SaslStep::Failure(SaslFailure::AuthenticationFailed)
    );
}

#[test]
fn scram_unknown_user_looks_like_a_known_one_until_the_proof() {
    let server_first = |user: &str| {
        let mut server = start("SCRAM-SHA-256");
        let first = format!("n,,n={user},r=abc");
        assert!(matches!(
            server.initial(Some(first.as_bytes())),
            SaslStep::NeedCredentials(_)
        ));
        match server.provide(Credentials::Rejected) {
            SaslStep::Challenge(c) => String::from_utf8(c).expect("utf-8"),
            other => panic!("{other:?}"),
        }
    };
    // Same policy (same decoy key) for both calls: the same salt each time.
    let policy = tls();
    let salt_of = |user: &str| {
        let mut server = SaslServer::start("SCRAM-SHA-256", &policy).expect("start");
        server.initial(Some(format!("n,,n={user},r=abc").as_bytes()));
        let SaslStep::Challenge(c) = server.provide(Credentials::Rejected) else {
            panic!("no challenge");
        };
        let text = String::from_utf8(c).expect("utf-8");
        text.split(',').nth(1).expect("salt").to_owned()
    };
    assert_eq!(salt_of("ghost"), salt_of("ghost"));
    assert_ne!(salt_of("ghost"), salt_of("phantom"));
    let decoy = server_first("ghost");
    assert!(
        decoy.contains(",s=") && decoy.ends_with(",i=4096"),
        "{decoy}"
    );
    // Even the right "password" for a decoy fails: there is none.
    let mut client = ScramClient::new("ghost", "anything", "n,,");
    assert_eq!(
        scram_exchange(&mut client, None),
        SaslStep::Failure(SaslFailure::AuthenticationFailed)
    );
}

#[test]
fn scram_refuses_channel_binding_and_mandatory_extensions() {
    let mut server = start("SCRAM-SHA-256");
    assert_eq!(
        server.initial(Some(b"p=tls-unique,,n=user,r=abc")),
        SaslStep::Failure(SaslFailure::ChannelBindingNotSupported)
    );
    let mut server = start("SCRAM-SHA-256");
    assert_eq!(
        server.initial(Some(b"n,,m=ext,n=user,r=abc")),
        SaslStep::Failure(SaslFailure::UnsupportedExtension)
    );
}

/// The client says "y" (no binding, thinks the server cannot) in client-first, then a
/// man in the middle rewrites c= to "n": the binding check catches the change.
#[test]
fn scram_gs2_header_must_match_between_messages() {
    let mut client = ScramClient::new("bob", "pw", "y,,");
    let mut server = start("SCRAM-SHA-256");
    server.initial(Some(&client.first()));
    let SaslStep::Challenge(server_first) = server.provide(Credentials::ScramSha256(
        ScramSecret::derive(b"pw", b"s", 4096),
    )) else {
        panic!("no server-first");
    };
    let client_final = String::from_utf8(client.r#final(&server_first)).expect("utf-8");
    let forged = client_final.replacen("c=eSws", "c=biws", 1);
    assert_ne!(forged, client_final);
    assert_eq!(
        server.step(forged.as_bytes()),
        SaslStep::Failure(SaslFailure::Malformed(
            "SCRAM c= does not match the gs2 header"
        ))
    );
}

#[test]
fn scram_nonce_must_be_echoed() {
    let mut client = ScramClient::new("bob", "pw", "n,,");
    let mut server = start("SCRAM-SHA-256");
    server.initial(Some(&client.first()));
    let SaslStep::Challenge(server_first) = server.provide(Credentials::ScramSha256(
        ScramSecret::derive(b"pw", b"s", 4096),
    )) else {
        panic!("no server-first");
    };
    let client_final = String::from_utf8(client.r#final(&server_first)).expect("utf-8");
    let forged = client_final.replacen(",r=fyko", ",r=fykx", 1);
    assert!(matches!(
        server.step(forged.as_bytes()),
        SaslStep::Failure(_)
    ));
}

#[test]
fn scram_malformed_client_first() {
    for bad in [
        &b""[..],
        b"n,,",
        b"n,,n=user",
        b"n,,r=abc,n=user",
        b"x,,n=user,r=abc",
        b"n,b=x,n=user,r=abc",
        b"n,,n=,r=abc",
        b"n,,n=us=er,r=abc",
        b"n,,n=user,r=",
        b"n,,n=user,r=a b",
        b"n,,n=user,r=abc,?",
        b"n,,n=u\xffser,r=abc",
        b"n,,n=u\x01ser,r=abc",
    ] {
        let mut server = start("SCRAM-SHA-256");
        assert!(
            matches!(server.initial(Some(bad)), SaslStep::Failure(_)),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn scram_authzid_needs_proxy_permission() {
    let mut server = start("SCRAM-SHA-256");
    assert_eq!(
        server.initial(Some(b"n,a=admin,n=user,r=abc")),
        SaslStep::Failure(SaslFailure::AuthorizationFailed)
    );
    let mut server = start("SCRAM-SHA-256");
    assert!(matches!(
        server.initial(Some(b"n,a=user,n=user,r=abc")),
        SaslStep::NeedCredentials(CredentialRequest::Lookup { authzid: None, .. })
    ));
    let mut policy = tls();
    policy.proxy_auth_allowed = true;
    let mut server = SaslServer::start("SCRAM-SHA-256", &policy).expect("start");
    assert!(matches!(
        server.initial(Some(b"n,a=bob,n=master,r=abc")),
        SaslStep::NeedCredentials(CredentialRequest::Lookup { authzid: Some(z), .. }) if z == "bob"
    ));
}

#[test]
fn scram_without_initial_response_gets_empty_challenge() {
    let mut server = start("SCRAM-SHA-256");
    assert_eq!(server.initial(None), SaslStep::Challenge(Vec::new()));
    assert!(matches!(
        server.step(b"n,,n=user,r=abc"),
        SaslStep::NeedCredentials(_)
    ));
    // A step while the engine looks the secret up is out of order.
    assert_eq!(
        server.step(b"c=biws"),
        SaslStep::Failure(SaslFailure::UnexpectedStep)
    );
}

// ---------------------------------------------------------------------------
// CRAM-MD5

/// RFC 2195 §2's example: challenge and response byte for byte.
#[test]
fn cram_md5_rfc2195_example() {
    let mut policy = tls();
    policy.hostname = "postoffice.reston.mci.net".into();
    let mut server =
        SaslServer::start_with_nonce("CRAM-MD5", &policy, "1896.697170952").expect("start");
    let challenge = server.initial(None);
    assert_eq!(
        challenge,
        SaslStep::Challenge(b"<1896.697170952@postoffice.reston.mci.net>".to_vec())
    );
    // The RFC shows both as base64 on the wire.
    assert_eq!(
        encode_challenge(b"<1896.697170952@postoffice.reston.mci.net>"),
        "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"
    );
    let Ok(ClientResponse::Data(response)) =
        decode_response(b"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw")
    else {
        panic!("base64");
    };
    assert_eq!(
        server.step(response.expose()),
        SaslStep::NeedCredentials(CredentialRequest::Lookup {
            authcid: "tim".into(),
            authzid: None,
            kind: SecretKind::CramMd5,
        })
    );
    assert_eq!(
        server.provide(Credentials::CramMd5Secret(Secret::new(
            b"tanstaaftanstaaf".to_vec()
        ))),
        success("tim", None)
    );
}

#[test]
fn cram_md5_failures() {
    let exchange = |secret: Credentials| {
        let mut server = SaslServer::start_with_nonce("CRAM-MD5", &tls(), "1.2").expect("start");
        server.initial(None);
        server.step(b"tim b913a602c7eda7a495b4e6e7334d3890");
        server.provide(secret)
    };
    let wrong = Credentials::CramMd5Secret(Secret::new(b"other".to_vec()));
    assert_eq!(
        exchange(wrong),
        SaslStep::Failure(SaslFailure::AuthenticationFailed)
    );
    assert_eq!(
        exchange(Credentials::Rejected),
        SaslStep::Failure(SaslFailure::AuthenticationFailed)
    );
    assert_eq!(
        exchange(Credentials::Unavailable),
        SaslStep::Failure(SaslFailure::Unavailable)
    );
    // An answer that does not fit the question never authenticates.
    assert_eq!(
        exchange(Credentials::Verified),
        SaslStep::Failure(SaslFailure::UnexpectedStep)
    );
    // Server-first: an initial response is refused.
    let mut server = start("CRAM-MD5");
    assert!(matches!(
        server.initial(Some(b"tim x")),
        SaslStep::Failure(_)
    ));
    let mut server = start("CRAM-MD5");
    assert!(
        matches!(server.initial(None), SaslStep::Challenge(c) if c.starts_with(b"<") && c.ends_with(b"@localhost>"))
    );
    assert!(matches!(server.step(b"tim"), SaslStep::Failure(_)));
}

// ---------------------------------------------------------------------------
// PLAIN and LOGIN

#[test]
fn plain_success_and_failure() {
    let mut server = start("PLAIN");
    assert_eq!(
        server.initial(Some(b"\0bob\0hunter2")),
        verify("bob", b"hunter2")
    );
    assert_eq!(server.provide(Credentials::Verified), success("bob", None));

    let mut server = start("PLAIN");
    assert_eq!(server.initial(None), SaslStep::Challenge(Vec::new()));
    assert_eq!(server.step(b"bob\0bob\0hunter2"), verify("bob", b"hunter2"));
    assert_eq!(
        server.provide(Credentials::Rejected),
        SaslStep::Failure(SaslFailure::AuthenticationFailed)
    );
}

#[test]
fn plain_authzid_rules() {
    let mut server = start("PLAIN");
    assert_eq!(
        server.initial(Some(b"admin\0bob\0pw")),
        SaslStep::Failure(SaslFailure::AuthorizationFailed)
    );
    let mut policy = tls();
    policy.proxy_auth_allowed = true;
    let mut server = SaslServer::start("PLAIN", &policy).expect("start");
    assert!(matches!(
        server.initial(Some(b"bob\0master\0pw")),
        SaslStep::NeedCredentials(CredentialRequest::Verify { authcid, authzid: Some(z), .. })
            if authcid == "master" && z == "bob"
    ));
    assert_eq!(
        server.provide(Credentials::Verified),
        SaslStep::Success {
            authcid: "master".into(),
            authzid: Some("bob".into()),
            additional_data: None
        }
    );
}

#[test]
fn plain_malformed() {
    let long_password = [
        b"\0bob\0".as_slice(),
        &vec![b'x'; SASL_PASSWORD_BYTES_MAX + 1],
    ]
    .concat();
    for bad in [
        &b""[..],
        b"bob",
        b"\0bob",
        b"\0bob\0",
        b"\0\0pw",
        b"\0bob\0pw\0",
        b"\0b\xffob\0pw",
        b"\0bo\nb\0pw",
        &long_password,
    ] {
        let mut server = start("PLAIN");
        assert!(
            matches!(server.initial(Some(bad)), SaslStep::Failure(_)),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
        assert!(server.is_done());
    }
}

#[test]
fn login_exchange() {
    let mut server = start("LOGIN");
    assert_eq!(
        server.initial(None),
        SaslStep::Challenge(b"Username:".to_vec())
    );
    assert_eq!(
        server.step(b"bob"),
        SaslStep::Challenge(b"Password:".to_vec())
    );
    assert_eq!(server.step(b"hunter2"), verify("bob", b"hunter2"));
    assert_eq!(server.provide(Credentials::Verified), success("bob", None));

    // User name as initial response (Outlook).
    let mut server = start("LOGIN");
    assert_eq!(
        server.initial(Some(b"bob")),
        SaslStep::Challenge(b"Password:".to_vec())
    );
    assert_eq!(server.step(b"pw"), verify("bob", b"pw"));
    assert_eq!(
        server.provide(Credentials::Rejected),
        SaslStep::Failure(SaslFailure::AuthenticationFailed)
    );

    let mut server = start("LOGIN");
    server.initial(None);
    assert!(matches!(server.step(b""), SaslStep::Failure(_)));
}

#[test]
fn cancel_ends_any_exchange() {
    for mechanism in mechanisms(&tls()) {
        let mut server = start(mechanism);
        server.initial(None);
        assert_eq!(decode_response(b"*"), Ok(ClientResponse::Cancel));
        assert_eq!(server.cancel(), SaslStep::Failure(SaslFailure::Cancelled));
        assert!(server.is_done());
        assert_eq!(
            server.step(b"x"),
            SaslStep::Failure(SaslFailure::UnexpectedStep)
        );
    }
}

// ---------------------------------------------------------------------------
// Limits and downgrades

#[test]
fn oversized_responses_fail() {
    for mechanism in mechanisms(&tls()) {
        let mut server = start(mechanism);
        let huge = vec![b'a'; SASL_RESPONSE_BYTES_MAX + 1];
        let step = if mechanism == "CRAM-MD5" || mechanism == "LOGIN" {
            server.initial(None);
            server.step(&huge)
        } else {
            server.initial(Some(&huge))
        };
        assert_eq!(
            step,
            SaslStep::Failure(SaslFailure::TooLarge),
            "{mechanism}"
        );
    }
    let line = "A".repeat(SASL_RESPONSE_BYTES_MAX * 2);
    assert_eq!(decode_response(line.as_bytes()), Err(SaslFailure::TooLarge));
}

#[test]
fn cleartext_downgrade_without_tls_is_refused() {
    let policy = SaslPolicy::new(false, false);
    assert_eq!(mechanisms(&policy), ["SCRAM-SHA-256", "CRAM-MD5"]);
    for name in ["PLAIN", "LOGIN", "plain"] {
        assert_eq!(
            SaslServer::start(name, &policy).err(),
            Some(SaslError::EncryptionRequired)
        );
    }
    assert_eq!(
        SaslServer::start("SCRAM-SHA-256-PLUS", &tls()).err(),
        Some(SaslError::Unsupported)
    );
}

#[test]
fn too_many_steps_fail() {
    let mut server = start("LOGIN");
    server.initial(Some(b"bob"));
    server.step(b"pw");
    // Stepping while the engine verifies is out of order and ends the exchange.
    assert_eq!(
        server.step(b"pw"),
        SaslStep::Failure(SaslFailure::UnexpectedStep)
    );
    assert_eq!(
        server.provide(Credentials::Verified),
        SaslStep::Failure(SaslFailure::UnexpectedStep)
    );
}

#[derive(Debug, Clone)]
enum Input {
    Step(Vec<u8>),
    Line(Vec<u8>),
    Provide(u8, Vec<u8>),
    Cancel,
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Input::Step),
        "[nyp][=a-z]{0,3},(a=[a-z]{0,3})?,n=[a-z=,0-9]{0,8},r=[ -~]{0,10}(,p=[A-Za-z0-9+/=]{0,50})?"
            .prop_map(|s| Input::Step(s.into_bytes())),
        "(c=[A-Za-z0-9+/=]{0,8},r=[ -~]{0,10},p=[A-Za-z0-9+/=]{0,50})"
            .prop_map(|s| Input::Step(s.into_bytes())),
        proptest::collection::vec(any::<u8>(), 0..100).prop_map(Input::Line),
        (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(k, v)| Input::Provide(k, v)),
        Just(Input::Cancel),
    ]
}

proptest! {
    /// Whatever a client (or a confused engine) does, nothing panics, the exchange ends,
    /// and nothing but a correct answer to the right question authenticates.
    #[test]
    fn random_steps_never_panic(
        mechanism in proptest::sample::select(vec!["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"]),
        initial in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
        inputs in proptest::collection::vec(input(), 0..8),
    ) {
        let mut server = start(mechanism);
        let mut last = server.initial(initial.as_deref());
        for input in inputs {
            last = match input {
                Input::Step(bytes) => server.step(&bytes),
                Input::Line(line) => match decode_response(&line) {
                    Ok(ClientResponse::Data(data)) => server.step(data.expose()),
                    Ok(ClientResponse::Cancel) => server.cancel(),
                    Err(failure) => SaslStep::Failure(failure),
                },
                Input::Provide(kind, bytes) => server.provide(match kind % 5 {
                    0 => Credentials::Rejected,
                    1 => Credentials::CramMd5Secret(Secret::new(bytes)),
                    2 => Credentials::ScramSha256(ScramSecret::derive(&bytes, b"salt", 1)),
                    3 => Credentials::Unavailable,
                    _ => Credentials::Verified,
                }),
                Input::Cancel => server.cancel(),
            };
            if let SaslStep::Success { .. } = last {
                // Only PLAIN/LOGIN can succeed by chance (the "engine" said Verified).
                prop_assert!(mechanism == "PLAIN" || mechanism == "LOGIN", "{last:?}");
            }
        }
        let _ = last;
    }
}
