//! docs/api.md, Conventions and Auth: register, login, refresh, logout, /users/me, login rate limits,
//! and how every kind of bad request is answered.

use std::time::Duration;

use crate::common::{Reply, TestApp, assert_problem, unique};
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

async fn register(app: &TestApp, username: &str, password: &str) -> Reply {
    app.call_full(
        Method::POST,
        "/auth/register",
        None,
        Some(json!({"username": username, "password": password})),
    )
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

async fn me(app: &TestApp, token: &str) -> Reply {
    app.call_full(Method::GET, "/users/me", Some(token), None)
        .await
}

fn rfc3339(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s} is not RFC 3339: {e}"));
}

#[tokio::test]
async fn register_returns_the_new_account() {
    let app = TestApp::spawn().await;
    let name = unique("Reg.User-");
    let r = register(&app, &name, "correct horse").await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(r.body["username"], name.as_str());
    rfc3339(&r.body["created_at"]);
    assert!(r.body.get("password").is_none() && r.body.get("password_hash").is_none());
    // Two accounts get two ids.
    let other = register(&app, &unique("reg"), "correct horse").await;
    assert_ne!(other.body["id"], r.body["id"]);
}

#[tokio::test]
async fn usernames_follow_the_rules() {
    let app = TestApp::spawn().await;
    let pw = "long enough";
    for ok in ["abc", "a.b-c_D9", &"x".repeat(32), &"Y".repeat(31)] {
        let r = register(&app, ok, pw).await;
        assert_eq!(r.status, 201, "{ok}: {}", r.body);
        assert_eq!(r.body["username"], ok);
    }
    for bad in [
        "ab",
        "",
        &"z".repeat(33),
        "has space",
        "at@sign",
        "slash/",
        "ümlaut",
        "emoji😀x",
        "tab\tx",
    ] {
        let r = register(&app, bad, pw).await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(r.error_fields(), ["username"], "{bad}: {}", r.body);
    }
}

#[tokio::test]
async fn usernames_are_unique_ignoring_case() {
    let app = TestApp::spawn().await;
    assert_eq!(
        register(&app, "CaseUser", "pass-word-one").await.status,
        201
    );
    for taken in ["CaseUser", "caseuser", "CASEUSER", "cAsEuSeR"] {
        register(&app, taken, "pass-word-two")
            .await
            .assert_problem(409, "username_taken");
    }
    // The original account is untouched: its password still works, the other one does not.
    assert_eq!(login(&app, "CaseUser", "pass-word-one").await.status, 200);
    login(&app, "CaseUser", "pass-word-two")
        .await
        .assert_problem(401, "invalid_credentials");
}

#[tokio::test]
async fn passwords_are_8_to_128_characters() {
    let app = TestApp::spawn().await;
    for (len, ok) in [(7, false), (8, true), (128, true), (129, false), (0, false)] {
        let pw: String = "pass-word-".chars().cycle().take(len).collect();
        let r = register(&app, &unique("pw"), &pw).await;
        if ok {
            assert_eq!(r.status, 201, "{len}: {}", r.body);
            assert_eq!(
                login(&app, r.body["username"].as_str().unwrap(), &pw)
                    .await
                    .status,
                200
            );
        } else {
            r.assert_problem(422, "validation_failed");
            assert_eq!(r.error_fields(), ["password"], "{len}");
        }
    }
    // Characters, not bytes: 8 two-byte characters are enough, 129 of them too many.
    assert_eq!(
        register(&app, &unique("pw"), &"éà".repeat(4)).await.status,
        201
    );
    register(&app, &unique("pw"), &"é".repeat(129))
        .await
        .assert_problem(422, "validation_failed");
}

/// Long enough is not enough: the username, one character repeated and the common passwords of
/// leaked password sets are refused, ignoring case, with `weak_password` naming the field.
#[tokio::test]
async fn weak_passwords_are_refused() {
    let app = TestApp::spawn().await;
    let name = unique("Weak");
    for pw in [
        "password",
        "12345678",
        "Password1",
        "qwertyuiop",
        "        ",
        &name.to_uppercase(),
    ] {
        let r = register(&app, &name, pw).await;
        r.assert_problem(422, "weak_password");
        assert_eq!(r.error_fields(), ["password"], "{pw:?}: {}", r.body);
    }
    // None of those created the account: a strong password still can.
    assert_eq!(register(&app, &name, "pass-word-one").await.status, 201);
}

#[tokio::test]
async fn every_invalid_field_is_reported_at_once() {
    let app = TestApp::spawn().await;
    let r = register(&app, "a", "short").await;
    r.assert_problem(422, "validation_failed");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["password", "username"]);
}

#[tokio::test]
async fn login_returns_a_bearer_token_pair() {
    let app = TestApp::spawn().await;
    let name = unique("login");
    let reg = register(&app, &name, "s3cret-pass").await;
    let r = login(&app, &name, "s3cret-pass").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(
        r.body["expires_in"], 900,
        "the default access token lifetime is 15 minutes"
    );
    let access = r.body["access_token"].as_str().expect("access_token");
    let refresh_token = r.body["refresh_token"].as_str().expect("refresh_token");
    assert!(!access.is_empty() && !refresh_token.is_empty() && access != refresh_token);
    let who = me(&app, access).await;
    assert_eq!(who.status, 200);
    assert_eq!(
        who.body, reg.body,
        "/users/me describes the registered account"
    );
}

#[tokio::test]
async fn unknown_user_and_wrong_password_look_the_same() {
    let app = TestApp::spawn().await;
    let name = unique("victim");
    register(&app, &name, "right-password").await;
    let wrong = login(&app, &name, "wrong-password").await;
    let unknown = login(&app, &unique("nobody"), "right-password").await;
    let invalid_name = login(&app, "no such user!", "right-password").await;
    for r in [&wrong, &unknown, &invalid_name] {
        r.assert_problem(401, "invalid_credentials");
    }
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.body, invalid_name.body);
}

#[tokio::test]
async fn refresh_with_a_token_never_issued_is_refused() {
    let app = TestApp::spawn().await;
    for bad in ["", "garbage", &"x".repeat(300)] {
        refresh(&app, bad)
            .await
            .assert_problem(401, "unauthenticated");
    }
    let r = app
        .call_full(Method::POST, "/auth/refresh", None, Some(json!({})))
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.error_fields(), ["refresh_token"]);
}

#[tokio::test]
async fn users_me_returns_the_caller() {
    // Every way of presenting a bad token is in tests/integration/tokens.rs.
    let app = TestApp::spawn().await;
    let u = app.user().await;
    let ok = me(&app, &u.token).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["id"], u.id.as_str());
    assert_eq!(ok.body["username"], u.username.as_str());
    rfc3339(&ok.body["created_at"]);
}

#[tokio::test]
async fn expired_access_tokens_are_refused() {
    let app = TestApp::spawn_with(&[("CONCLAVE_ACCESS_TOKEN_TTL", "1s")]).await;
    let u = app.user().await;
    let r = login(&app, &u.username, &u.password).await;
    assert_eq!(r.body["expires_in"], 1);
    assert_eq!(me(&app, &u.token).await.status, 200);
    // One second of life plus the 5 s clock-skew leeway, measured in whole seconds.
    tokio::time::sleep(Duration::from_millis(7_500)).await;
    me(&app, &u.token)
        .await
        .assert_problem(401, "unauthenticated");
    // The refresh token still gets a fresh access token.
    let fresh = refresh(&app, &u.refresh).await;
    assert_eq!(fresh.status, 200);
    assert_eq!(
        me(&app, fresh.body["access_token"].as_str().unwrap())
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn logins_are_rate_limited_per_account() {
    let app = TestApp::spawn_with(&[("CONCLAVE_LOGIN_MAX_PER_ACCOUNT", "3")]).await;
    let (alice, bob) = (unique("alice"), unique("bob"));
    register(&app, &alice, "alice-password").await;
    register(&app, &bob, "bob-password").await;
    for _ in 0..3 {
        login(&app, &alice, "wrong-guess")
            .await
            .assert_problem(401, "invalid_credentials");
    }
    // Over the limit even the right password is refused, whatever the case of the name.
    for name in [alice.clone(), alice.to_uppercase()] {
        let r = login(&app, &name, "alice-password").await;
        r.assert_problem(429, "rate_limited");
        let header: u64 = r
            .header("retry-after")
            .expect("Retry-After header")
            .parse()
            .expect("seconds");
        assert!(header >= 1);
        assert_eq!(r.body["retry_after"], header, "body and header agree");
    }
    // Another account from the same address is not affected.
    assert_eq!(login(&app, &bob, "bob-password").await.status, 200);
}

#[tokio::test]
async fn logins_are_rate_limited_per_address() {
    let app = TestApp::spawn_with(&[("CONCLAVE_LOGIN_MAX_PER_ADDRESS", "3")]).await;
    let names: Vec<String> = (0..4).map(|_| unique("addr")).collect();
    for n in &names {
        assert_eq!(register(&app, n, "the-password").await.status, 201);
    }
    for n in &names[..3] {
        assert_eq!(login(&app, n, "the-password").await.status, 200);
    }
    let r = login(&app, &names[3], "the-password").await;
    r.assert_problem(429, "rate_limited");
    let header: u64 = r
        .header("retry-after")
        .expect("Retry-After header")
        .parse()
        .expect("seconds");
    assert!(header >= 1);
    assert_eq!(r.body["retry_after"], header);
    // Registering is not a login attempt.
    assert_eq!(
        register(&app, &unique("late"), "the-password").await.status,
        201
    );
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let app = TestApp::spawn().await;
    let url = app.url("/auth/register");
    let valid = json!({"username": unique("ct"), "password": "pass-word-one"}).to_string();
    let cases = [
        (
            "broken JSON",
            Some("application/json"),
            "{\"username\": \"abc\", ".to_owned(),
        ),
        ("empty body", Some("application/json"), String::new()),
        (
            "trailing garbage",
            Some("application/json"),
            format!("{valid} and more"),
        ),
        (
            "two objects",
            Some("application/json"),
            format!("{valid}{valid}"),
        ),
        ("text/plain", Some("text/plain"), valid.clone()),
        (
            "form",
            Some("application/x-www-form-urlencoded"),
            "username=abc&password=pass-word-one".into(),
        ),
        ("no content type", None, valid.clone()),
    ];
    for (what, ct, body) in cases {
        let mut req = app.client.post(&url).body(body);
        if let Some(ct) = ct {
            req = req.header(CONTENT_TYPE, ct);
        }
        let r = app.fetch(req).await;
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        r.assert_problem(400, "malformed_request");
    }
    // A charset parameter is fine.
    let r = app
        .fetch(
            app.client
                .post(&url)
                .header(CONTENT_TYPE, "application/json; charset=utf-8")
                .body(valid),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn wrong_shapes_are_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let cases = [
        (json!({"username": "someone"}), "password"),
        (json!({"password": "pass-word-one"}), "username"),
        (
            json!({"username": 123, "password": "pass-word-one"}),
            "username",
        ),
        (
            json!({"username": "someone", "password": ["pass-word-one"]}),
            "password",
        ),
        (json!({"username": "someone", "password": null}), "password"),
    ];
    for (body, field) in cases {
        let r = app
            .call_full(Method::POST, "/auth/register", None, Some(body.clone()))
            .await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(r.error_fields(), [field], "{body}: {}", r.body);
    }
    // Valid JSON that is not an object (serde alone would read an array by field order).
    for body in [
        json!([unique("arr"), "pass-word-one"]),
        json!("username"),
        json!(42),
        json!(null),
    ] {
        let r = app
            .call_full(Method::POST, "/auth/register", None, Some(body.clone()))
            .await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(r.error_fields(), ["body"], "{body}");
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let app = TestApp::spawn_with(&[("CONCLAVE_MAX_BODY_BYTES", "1024")]).await;
    let big = json!({"username": unique("big"), "password": "p".repeat(2000)});
    let r = app
        .call_full(Method::POST, "/auth/register", None, Some(big))
        .await;
    r.assert_problem(413, "payload_too_large");
    // Just under the limit is fine.
    let ok = json!({"username": unique("small"), "password": "pass-word-".repeat(10)});
    assert_eq!(
        app.call_full(Method::POST, "/auth/register", None, Some(ok))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn protected_endpoints_check_the_token_before_the_body() {
    let app = TestApp::spawn().await;
    let r = app
        .call_full(
            Method::POST,
            "/groups",
            Some("garbage"),
            Some(json!({"nonsense": true})),
        )
        .await;
    r.assert_problem(401, "unauthenticated");
    assert_problem(
        &app.call(Method::GET, "/groups", None, None).await,
        401,
        "unauthenticated",
    );
}
