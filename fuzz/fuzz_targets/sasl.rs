//! SASL: the wire decoding of client lines and every mechanism's message parsing
//! (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256 client-first and client-final). The control
//! byte picks the mechanism, whether lines go through the base64 wire decoding (as on
//! the wire) or straight to the mechanism (so the fuzzer reaches the SCRAM grammar
//! without learning base64), whether an initial response is sent, and what the
//! "password store" answers. Lines are split at LF.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use protocols::Secret;
use protocols::sasl::{
    ClientResponse, CredentialRequest, Credentials, Mechanism, SaslPolicy, SaslServer, SaslStep,
    ScramSecret, SecretKind, decode_response, encode_challenge,
};

fn scram_secret() -> ScramSecret {
    static SECRET: OnceLock<ScramSecret> = OnceLock::new();
    SECRET
        .get_or_init(|| ScramSecret::derive(b"pencil", b"salt", 1))
        .clone()
}

fn answer(request: &CredentialRequest, reject: bool) -> Credentials {
    if reject {
        return Credentials::Rejected;
    }
    match request {
        CredentialRequest::Verify { .. } => Credentials::Verified,
        CredentialRequest::Lookup {
            kind: SecretKind::CramMd5,
            ..
        } => Credentials::CramMd5Secret(Secret::new(b"pencil".to_vec())),
        CredentialRequest::Lookup {
            kind: SecretKind::ScramSha256,
            ..
        } => Credentials::ScramSha256(scram_secret()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let mechanism = Mechanism::ALL[usize::from(control & 3)];
    let wire = control & 4 != 0;
    let with_initial = control & 8 != 0;
    let reject = control & 16 != 0;
    let mut policy = SaslPolicy::new(control & 32 != 0, control & 64 != 0);
    policy.decoy_key = [7; 32];
    policy.proxy_auth_allowed = control & 128 != 0;
    let Ok(mut server) = SaslServer::start_with_nonce(mechanism.name(), &policy, "fuzzNonce")
    else {
        return;
    };
    let mut lines = input.split(|&b| b == b'\n');
    let mut started = false;
    for _ in 0..16 {
        let step = if !started {
            started = true;
            let initial = if with_initial { lines.next() } else { None };
            match (initial, wire) {
                (Some(line), true) => match decode_response(line) {
                    Ok(ClientResponse::Data(bytes)) => server.initial(Some(bytes.expose())),
                    Ok(ClientResponse::Cancel) => server.cancel(),
                    Err(_) => return,
                },
                (line, _) => server.initial(line),
            }
        } else {
            let Some(line) = lines.next() else {
                return;
            };
            if wire {
                match decode_response(line) {
                    Ok(ClientResponse::Data(bytes)) => server.step(bytes.expose()),
                    Ok(ClientResponse::Cancel) => server.cancel(),
                    Err(_) => return,
                }
            } else {
                server.step(line)
            }
        };
        let step = match step {
            SaslStep::NeedCredentials(request) => server.provide(answer(&request, reject)),
            other => other,
        };
        match step {
            SaslStep::Challenge(bytes) => {
                let _ = encode_challenge(&bytes);
            }
            SaslStep::NeedCredentials(_) => panic!("credentials asked for twice in a row"),
            SaslStep::Success { .. } | SaslStep::Failure(_) => {
                assert!(server.is_done());
                return;
            }
        }
    }
});
