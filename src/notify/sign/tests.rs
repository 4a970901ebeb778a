use super::*;

// The example of the Standard Webhooks specification, recomputed independently with
// python3's hmac module:
//   key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
//   msg = b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." + b'{"test": 2432232314}'
//   "v1," + base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()
const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SW_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SW_TS: i64 = 1614265330;
const SW_BODY: &[u8] = br#"{"test": 2432232314}"#;
const SW_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn sw_key() -> Vec<u8> {
    decode_secret(SW_SECRET).unwrap()
}

#[test]
fn matches_the_standard_webhooks_example() {
    let s = sign(&sw_key(), SW_ID, SW_TS, SW_BODY);
    assert_eq!(
        s,
        Signed {
            id: SW_ID.into(),
            timestamp: SW_TS,
            signature: SW_SIG.into()
        }
    );
}

#[test]
fn matches_a_second_vector_with_a_32_byte_key() {
    // python3: key = bytes(range(32));
    //   hmac.new(key, b'wh_01.1700000000.{"resourceType":"Bundle"}', hashlib.sha256)
    let key: Vec<u8> = (0u8..32).collect();
    let secret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    assert_eq!(decode_secret(secret), Some(key.clone()));
    let s = sign(
        &key,
        "wh_01",
        1_700_000_000,
        br#"{"resourceType":"Bundle"}"#,
    );
    assert_eq!(
        s.signature,
        "v1,z8GwEPNxhJ1E0Kc0PPCjPnRGhwoncrgm7UDBZKy0n2Y="
    );
    assert_eq!(
        s.headers(),
        [
            ("webhook-id", "wh_01".to_owned()),
            ("webhook-timestamp", "1700000000".to_owned()),
            ("webhook-signature", s.signature.clone()),
        ]
    );
}

#[test]
fn verifies_its_own_signature_and_any_of_several() {
    let key = sw_key();
    assert_eq!(
        verify(&key, SW_ID, SW_TS, SW_BODY, SW_SIG, SW_TS, 300),
        Ok(())
    );
    let several = format!("v1a,c29tZXRoaW5n v1,AAAA {SW_SIG}  v2,zzz");
    assert_eq!(
        verify(&key, SW_ID, SW_TS, SW_BODY, &several, SW_TS + 10, 300),
        Ok(())
    );
}

#[test]
fn refuses_any_change() {
    let key = sw_key();
    let at = |id: &str, ts: i64, body: &[u8], k: &[u8]| verify(k, id, ts, body, SW_SIG, ts, 300);
    assert_eq!(
        at("msg_other", SW_TS, SW_BODY, &key),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        at(SW_ID, SW_TS + 1, SW_BODY, &key),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        at(SW_ID, SW_TS, br#"{"test": 2432232315}"#, &key),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        at(SW_ID, SW_TS, SW_BODY, b"another key"),
        Err(VerifyError::Mismatch)
    );
    let truncated = &SW_SIG[..SW_SIG.len() - 4];
    assert_eq!(
        verify(&key, SW_ID, SW_TS, SW_BODY, truncated, SW_TS, 300),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        verify(&key, SW_ID, SW_TS, SW_BODY, "v1,not base64!", SW_TS, 300),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn refuses_a_header_without_v1_signatures() {
    let key = sw_key();
    for header in [
        "",
        "   ",
        "v2,abc",
        "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ] {
        assert_eq!(
            verify(&key, SW_ID, SW_TS, SW_BODY, header, SW_TS, 300),
            Err(VerifyError::NoSignature),
            "{header:?}"
        );
    }
}

#[test]
fn refuses_timestamps_outside_the_tolerance() {
    let key = sw_key();
    let check = |now: i64, tol: i64| verify(&key, SW_ID, SW_TS, SW_BODY, SW_SIG, now, tol);
    assert_eq!(check(SW_TS + 300, 300), Ok(()));
    assert_eq!(check(SW_TS - 300, 300), Ok(()));
    assert_eq!(
        check(SW_TS + 301, 300),
        Err(VerifyError::TimestampOutOfTolerance)
    );
    assert_eq!(
        check(SW_TS - 301, 300),
        Err(VerifyError::TimestampOutOfTolerance)
    );
    assert_eq!(check(SW_TS, 0), Ok(()));
    assert_eq!(
        check(SW_TS + 1, -5),
        Err(VerifyError::TimestampOutOfTolerance)
    );
    // Extreme values neither overflow nor pass.
    let far = verify(&key, SW_ID, i64::MIN + 1, SW_BODY, SW_SIG, 0, i64::MAX);
    assert_eq!(far, Err(VerifyError::Mismatch));
    let far = verify(&key, SW_ID, i64::MIN, SW_BODY, SW_SIG, i64::MAX, 300);
    assert_eq!(far, Err(VerifyError::TimestampOutOfTolerance));
}

#[test]
fn new_secrets_are_32_random_bytes_that_decode() {
    let a = new_secret();
    let b = new_secret();
    assert!(a.starts_with("whsec_"));
    assert_ne!(a, b);
    assert_eq!(decode_secret(&a).map(|k| k.len()), Some(32));
    let key = decode_secret(&a).unwrap();
    let s = sign(&key, "id", 5, b"x");
    assert_eq!(verify(&key, "id", 5, b"x", &s.signature, 5, 0), Ok(()));
}

#[test]
fn decode_secret_refuses_what_is_not_a_key() {
    assert_eq!(decode_secret("whsec_"), None);
    assert_eq!(decode_secret(""), None);
    assert_eq!(decode_secret("whsec_not base64!"), None);
    assert_eq!(decode_secret(" whsec_AAAA\n"), Some(vec![0, 0, 0]));
    assert_eq!(decode_secret("AAAA"), Some(vec![0, 0, 0]));
}

#[test]
fn errors_say_what_is_wrong() {
    assert!(VerifyError::TimestampOutOfTolerance
        .to_string()
        .contains("timestamp"));
    assert!(VerifyError::NoSignature
        .to_string()
        .contains("no v1 signature"));
    assert!(VerifyError::Mismatch.to_string().contains("matches"));
}
