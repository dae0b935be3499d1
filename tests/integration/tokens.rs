//! Access and refresh tokens under attack, over HTTP and at the Socket.IO connect alike.
//!
//! Every forged, stale or misdirected access token is refused by HTTP with 401
//! `unauthenticated` and by a socket connect with `connect_error` "unauthorized" (docs/api.md's two
//! spellings of one answer), and the correctly signed token each forgery imitates is accepted
//! by both, so each case fails only for what it forges. Refresh tokens: rotation, reuse
//! detection revoking the family, logout.
//!
//! Accounts cannot be deleted (docs/api.md has no such call), so "a token of a deleted user" is
//! tested as its only possible form: a correctly signed token naming no account.

use std::time::Duration;

use crate::common::sio::{SioClient, SioError};
use crate::common::{Reply, TestApp};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

const SECRET: &str = "token-tests-secret-0123456789abcdef";

/// A throwaway RSA key (PKCS#1 DER, base64), only ever used to sign forged test tokens.
const RSA_PRIVATE_DER_B64: &str = concat!(
    "MIIEowIBAAKCAQEAkya2dTqurqF9ikTSfl9yw+PS88Ay0+xOdGqKt2Cqyt1Op/gP/OFNsEcoUOfXMf+q1PTTxTVfd2YU",
    "S39utvAksuMg16c/0oigddagHvYyOKUybTP/J/t42ypgSJ4pY+FnxHvitS5brsUzh+7aYbeKEE3RQXUZ1sw9x+3b4GGc",
    "aMUx48k/90AQvf6uG+ypeuu/f7pPPIrWe+SetsRuVwghNw4emLT0BGuU7IdfeRHWQ1EQrQnb5aIrhYQ1cWHdamHv+iZb",
    "uIBWCnCjv151+jGpeMeSwD4VGoh8wiB/EzN2mU3GoZyaxQeqLtDrIX494zRS7RAkxmrGYmvC1UlGdeJZ8wIDAQABAoIB",
    "AEUW55MKDutCOnHZl2UrRnSv+qNkidjTuhBR17h6xCYEm4Ik58jJNhM+jbDS8chxbJGZM/cDdMPYI05BUkfFX82383sd",
    "dUtRx9kcAMkYugK7mX4JbFMm8JsifduKmw9gzTpFGnAMCJL51xSLMnCv3ryB9O6BXzTpZ1aAGPz0h53uxhdlxwDNpNuz",
    "QlliNDZDIZ+drULHd5ly0S0knUPsNbdTQSx/a8z4l96FWMFm6ecn4lScPsgDcdKesL+98g11PhMObyWBhg2j3zQYBGPP",
    "SeuHasjApDHqKJRQsgJMNBAICUc0R8Ewi2sjl9fQvZhnkc7V7oRMlSZivqGhQVElq90CgYEAw00delZ92fcDzrI6YvdG",
    "tjdJDFrwOuRReJQz00i0uKgZ7mf7kB+S+WGbFbwAUtKTiYekgJnBcOMjSpGK0Ca2BlOQnmXp8uC2zMBLOAdzOoktaTiu",
    "MeD/J19QovqIDpkPI8i96Z+sdp7gN6imFPeq06cIaijX6ExVKWGNaq8f24UCgYEAwOKbB41gdOfVVHCtF2zd47v7uwFH",
    "dT5LCHvtlCAYyGaLp+qZ5df9LY9dKJUoWS4cJ+LUaIbTLGv0l6yZAFlQCukEbk6iWszlVQbpEu3AJ1JlM2qBm3rPPmDR",
    "LgyYkUsqoQGqMw6/z2RevszOP2pLRL3MSDbTOpN/6eVZFoW2bRcCgYAt2DRLO3Jfb/Sc2ImMIa+fpmqnU9GAgYf+Xgus",
    "VSzXC97Kb+5FbqP5lkfpWjBZQMURS5358h3OegMWxgNnyS6BXaxdAl9gfA9tENaXWGhcHUdjo8KAQuiiPWWYXGcDxjof",
    "lEfAR5McZT8M0bHqyhh3hoYbJWtJRGHZTOT9Xg6EYQKBgAupJ2ord9tZcKIsNaqm4Ds2UB+cEi/aVjrrEw/TaOwklujN",
    "3APzLNEmS6F6cvgBO56FrgWrsPSMijrpKk7FF3uxXp00j8ghfvPG+Sw1x1oZNxkGpVM693Bz9fFsvYR7INae/SUdDSeC",
    "j9/FDerziB1dxA3Rkq+F30PKo7oi10Z9AoGBAKHlCMW8U9sqkmxkOuRLj4f68OthKFGG3TXI0cJpIaohItPyk73/rtTl",
    "zFgLlcJpMVqtNWKxFD2vCwEZDu9W1QkrWeiWOS8fbAzGBIp/XoBv6aOqTfs680ZMx+k/9KgIe+UBLHvubghaET6tz+AI",
    "mmHyI1npiNTuGjlKCp2ln176",
);

/// Its public half, the kind of text an attacker would try as an HMAC secret.
const RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAkya2dTqurqF9ikTSfl9y
w+PS88Ay0+xOdGqKt2Cqyt1Op/gP/OFNsEcoUOfXMf+q1PTTxTVfd2YUS39utvAk
suMg16c/0oigddagHvYyOKUybTP/J/t42ypgSJ4pY+FnxHvitS5brsUzh+7aYbeK
EE3RQXUZ1sw9x+3b4GGcaMUx48k/90AQvf6uG+ypeuu/f7pPPIrWe+SetsRuVwgh
Nw4emLT0BGuU7IdfeRHWQ1EQrQnb5aIrhYQ1cWHdamHv+iZbuIBWCnCjv151+jGp
eMeSwD4VGoh8wiB/EzN2mU3GoZyaxQeqLtDrIX494zRS7RAkxmrGYmvC1UlGdeJZ
8wIDAQAB
-----END PUBLIC KEY-----\n";

async fn app() -> TestApp {
    TestApp::spawn_with(&[("CONCLAVE_JWT_SECRET", SECRET)]).await
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn sign(claims: &Value, alg: Algorithm, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
}

fn hs(claims: &Value, alg: Algorithm, secret: &str) -> String {
    sign(claims, alg, &EncodingKey::from_secret(secret.as_bytes()))
}

/// A token with this header and these claims, and whatever signature.
fn raw(header: &str, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

async fn me(app: &TestApp, token: &str) -> Reply {
    app.call_full(Method::GET, "/users/me", Some(token), None)
        .await
}

async fn login(app: &TestApp, username: &str, password: &str) -> Reply {
    app.call_full(
        Method::POST,
        "/auth/login",
        None,
        Some(json!({"username": username, "password": password})),
    )
    .await
}

async fn refresh(app: &TestApp, token: &str) -> Reply {
    app.call_full(
        Method::POST,
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": token})),
    )
    .await
}

/// How a socket connect with `auth: {token}` ends: `Ok` or the connect_error message.
async fn socket_verdict(app: &TestApp, auth: Option<Value>) -> (Result<(), String>, SioClient) {
    let mut c = SioClient::open(&app.base).await.expect("engine.io open");
    let verdict = match c.join(auth).await {
        Ok(_) => Ok(()),
        Err(SioError::Refused(m)) => Err(m),
        Err(e) => panic!("socket connect broke: {e}"),
    };
    (verdict, c)
}

/// Every forgery, refused by HTTP and by the socket connect; a refused socket that emits
/// anyway gets nothing, and nothing it sent is stored.
#[tokio::test]
async fn forged_and_invalid_access_tokens_are_refused_by_http_and_sockets_alike() {
    let app = app().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let g = app.group(&alice, "private").await;
    app.add_member(&g, &alice, &bob).await;

    // Tokens that name bob, so any one accepted would land in bob's rooms.
    let good = claims_of(&bob.token);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let without = |claim: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(claim);
        c
    };
    let rsa = EncodingKey::from_rsa_der(&STANDARD.decode(RSA_PRIVATE_DER_B64).unwrap());
    let mut tampered_sig: Vec<String> = bob.token.split('.').map(str::to_owned).collect();
    tampered_sig[2] = URL_SAFE_NO_PAD.encode([7u8; 32]);
    let bob_sig = bob.token.split('.').nth(2).unwrap().to_owned();
    // Alice's signature on claims naming bob: a payload swapped under a valid signature.
    let swapped = {
        let parts: Vec<&str> = alice.token.split('.').collect();
        let body = URL_SAFE_NO_PAD.encode(good.to_string());
        format!("{}.{body}.{}", parts[0], parts[2])
    };

    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("garbage", "garbage".into()),
        ("three empty parts", "..".into()),
        ("oversized", format!("{}.{}", bob.token, "A".repeat(5000))),
        ("a refresh token", bob.refresh.clone()),
        // alg: none, in its spellings, with and without a signature.
        ("alg none", raw(r#"{"alg":"none","typ":"JWT"}"#, &good, "")),
        ("alg None", raw(r#"{"alg":"None","typ":"JWT"}"#, &good, "")),
        ("alg NONE", raw(r#"{"alg":"NONE"}"#, &good, "")),
        (
            "alg none keeping a valid signature",
            raw(r#"{"alg":"none","typ":"JWT"}"#, &good, &bob_sig),
        ),
        // Algorithm confusion: RS256 signed with some RSA key; HS256 whose secret is an RSA
        // public key (the classic attack on servers that take the algorithm from the token).
        (
            "RS256 signed with an RSA key",
            sign(&good, Algorithm::RS256, &rsa),
        ),
        (
            "HS256 with a public key as the secret",
            hs(&good, Algorithm::HS256, RSA_PUBLIC_PEM),
        ),
        (
            "HS384 with the right secret",
            hs(&good, Algorithm::HS384, SECRET),
        ),
        (
            "HS512 with the right secret",
            hs(&good, Algorithm::HS512, SECRET),
        ),
        (
            "HS256 with another secret",
            hs(
                &good,
                Algorithm::HS256,
                "another-secret-another-secret-0123456789",
            ),
        ),
        ("tampered signature", tampered_sig.join(".")),
        ("payload swapped under another token's signature", swapped),
        (
            "expired long ago",
            hs(
                &with(&|c| {
                    c["iat"] = json!(now() - 3600);
                    c["nbf"] = json!(now() - 3600);
                    c["exp"] = json!(now() - 1800);
                }),
                Algorithm::HS256,
                SECRET,
            ),
        ),
        (
            "expired past the clock-skew leeway",
            hs(
                &with(&|c| {
                    c["iat"] = json!(now() - 60);
                    c["nbf"] = json!(now() - 60);
                    c["exp"] = json!(now() - 10);
                }),
                Algorithm::HS256,
                SECRET,
            ),
        ),
        (
            "not valid before a minute from now",
            hs(
                &with(&|c| c["nbf"] = json!(now() + 60)),
                Algorithm::HS256,
                SECRET,
            ),
        ),
        (
            "wrong issuer",
            hs(
                &with(&|c| c["iss"] = json!("evil")),
                Algorithm::HS256,
                SECRET,
            ),
        ),
        (
            "wrong audience",
            hs(
                &with(&|c| c["aud"] = json!("other")),
                Algorithm::HS256,
                SECRET,
            ),
        ),
        (
            "audience list without ours",
            hs(
                &with(&|c| c["aud"] = json!(["a", "b"])),
                Algorithm::HS256,
                SECRET,
            ),
        ),
        ("no exp", hs(&without("exp"), Algorithm::HS256, SECRET)),
        ("no nbf", hs(&without("nbf"), Algorithm::HS256, SECRET)),
        ("no iss", hs(&without("iss"), Algorithm::HS256, SECRET)),
        ("no aud", hs(&without("aud"), Algorithm::HS256, SECRET)),
        ("no sub", hs(&without("sub"), Algorithm::HS256, SECRET)),
        (
            "sub not a user id",
            hs(
                &with(&|c| c["sub"] = json!("admin")),
                Algorithm::HS256,
                SECRET,
            ),
        ),
        (
            "sub naming no account",
            hs(
                &with(&|c| c["sub"] = json!("0190c0de-0000-7000-8000-000000000000")),
                Algorithm::HS256,
                SECRET,
            ),
        ),
    ];

    let mut failures = Vec::new();
    let mut refused = Vec::new();
    for (name, token) in &cases {
        let http = me(&app, token).await;
        if http.status != 401 || http.body["code"] != "unauthenticated" {
            failures.push(format!(
                "{name}: HTTP answered {} {}",
                http.status, http.body
            ));
        }
        let (verdict, c) = socket_verdict(&app, Some(json!({ "token": token }))).await;
        if verdict != Err("unauthorized".into()) {
            failures.push(format!("{name}: socket connect ended {verdict:?}"));
        }
        // A refused client trying to send anyway gets nowhere.
        let _ = c.emit(
            "message:send",
            json!({"group_id": g, "content": format!("sneaky {name}")}),
        );
        refused.push((name, c));
    }
    // What only the transports themselves can get wrong.
    for (name, auth) in [
        ("no auth", None),
        ("no token", Some(json!({}))),
        ("token not a string", Some(json!({"token": 42}))),
        ("auth not an object", Some(json!("abc"))),
    ] {
        let (verdict, c) = socket_verdict(&app, auth).await;
        if verdict != Err("unauthorized".into()) {
            failures.push(format!("socket {name}: connect ended {verdict:?}"));
        }
        refused.push((&"transport", c));
    }
    let url = app.url("/users/me");
    for (name, req) in [
        ("no Authorization header", app.client.get(&url)),
        (
            "Basic scheme",
            app.client
                .get(&url)
                .header("authorization", format!("Basic {}", bob.token)),
        ),
        (
            "Bearer without a token",
            app.client.get(&url).header("authorization", "Bearer "),
        ),
    ] {
        let r = app.fetch(req).await;
        if r.status != 401 || r.body["code"] != "unauthenticated" {
            failures.push(format!("HTTP {name}: {} {}", r.status, r.body));
        }
    }
    // A token from another server (its own generated secret) is refused too.
    let other = TestApp::spawn().await;
    let stranger = other.user().await;
    me(&app, &stranger.token)
        .await
        .assert_problem(401, "unauthenticated");
    assert!(
        failures.is_empty(),
        "{} accepted or answered wrongly:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // The correctly signed originals are accepted by both (so each case fails only for what it
    // forges), and only their messages are delivered and stored.
    assert_eq!(me(&app, &bob.token).await.status, 200);
    assert_eq!(
        me(&app, &hs(&good, Algorithm::HS256, SECRET)).await.status,
        200
    );
    let mut bob_ws = SioClient::connect(&app.base, &bob.token).await.unwrap();
    let alice_ws = SioClient::connect(&app.base, &alice.token).await.unwrap();
    let ack = alice_ws
        .emit_with_ack(
            "message:send",
            json!({"group_id": g, "content": "for members only"}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let m = bob_ws
        .next_event("message:new", Duration::from_secs(10))
        .await
        .expect("bob's genuine socket gets the message");
    assert_eq!(m["id"], ack["id"]);
    for (name, c) in &mut refused {
        let got = c.next_any(Duration::from_millis(200)).await;
        assert!(got.is_none(), "{name}: refused client received {got:?}");
    }
    let (s, page) = app
        .get(&format!("/groups/{g}/messages"), &alice.token)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        1,
        "only alice's message is stored: {page}"
    );
}
#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let u = app.user().await;

    let r2 = refresh(&app, &u.refresh).await;
    assert_eq!(r2.status, 200, "{}", r2.body);
    assert_eq!(r2.body["token_type"], "Bearer");
    assert!(r2.body["expires_in"].as_u64().is_some_and(|s| s > 0));
    let t2 = r2.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(t2, u.refresh);
    assert_eq!(
        me(&app, r2.body["access_token"].as_str().unwrap())
            .await
            .body["id"],
        u.id.as_str()
    );

    let r3 = refresh(&app, &t2).await;
    assert_eq!(r3.status, 200);
    let t3 = r3.body["refresh_token"].as_str().unwrap().to_owned();

    // A separate login is a separate family.
    let other = login(&app, &u.username, &u.password).await.body["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The first token was spent: presenting it again fails and revokes everything rotated from it,
    // including the newest token that was never used.
    refresh(&app, &u.refresh)
        .await
        .assert_problem(401, "unauthenticated");
    refresh(&app, &t3)
        .await
        .assert_problem(401, "unauthenticated");
    refresh(&app, &t2)
        .await
        .assert_problem(401, "unauthenticated");
    assert_eq!(
        refresh(&app, &other).await.status,
        200,
        "another login's tokens are unaffected"
    );
}

#[tokio::test]
async fn logout_ends_the_refresh_family() {
    let app = TestApp::spawn().await;
    let u = app.user().await;
    let rotated = refresh(&app, &u.refresh).await.body["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .call_full(
            Method::POST,
            "/auth/logout",
            None,
            Some(json!({"refresh_token": rotated})),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.body, Value::Null);
    refresh(&app, &rotated)
        .await
        .assert_problem(401, "unauthenticated");
    // Logging out again, or with an unknown token, is harmless.
    let again = app
        .call_full(
            Method::POST,
            "/auth/logout",
            None,
            Some(json!({"refresh_token": rotated})),
        )
        .await;
    assert_eq!(again.status, 204);
    let unknown = app
        .call_full(
            Method::POST,
            "/auth/logout",
            None,
            Some(json!({"refresh_token": "never-issued"})),
        )
        .await;
    assert_eq!(unknown.status, 204);
    let missing = app
        .call_full(Method::POST, "/auth/logout", None, Some(json!({})))
        .await;
    missing.assert_problem(422, "validation_failed");
    // Logging in again works.
    assert_eq!(login(&app, &u.username, &u.password).await.status, 200);
}

/// Access tokens are stateless JWTs: ending a refresh family (logout, or reuse detected) stops
/// new access tokens, while those already issued live out their short TTL. HTTP and sockets
/// agree on it; the socket is cut when that token expires (tests/integration/realtime).
#[tokio::test]
async fn revoking_a_family_stops_refresh_and_both_transports_agree_on_issued_tokens() {
    let app = app().await;
    let u = app.user().await;
    // A refreshed access token is as good as the first on both transports.
    let r = refresh(&app, &u.refresh).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let access = r.body["access_token"].as_str().unwrap().to_owned();
    let rotated = r.body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(me(&app, &access).await.status, 200);
    SioClient::connect(&app.base, &access)
        .await
        .expect("a refreshed token connects");

    let out = app
        .call_full(
            Method::POST,
            "/auth/logout",
            None,
            Some(json!({"refresh_token": rotated})),
        )
        .await;
    assert_eq!(out.status, 204);
    refresh(&app, &rotated)
        .await
        .assert_problem(401, "unauthenticated");
    for token in [&u.token, &access] {
        let http = me(&app, token).await.status;
        let socket = SioClient::connect(&app.base, token).await.is_ok();
        assert!(
            http == 200 && socket,
            "issued access tokens stay valid until expiry on both: HTTP {http}, socket {socket}"
        );
    }
}
