//! The embedded web client: served at `/` and `/assets/...` with a strict policy, revalidated
//! by ETag, and shadowing none of the API, Socket.IO, docs or operations paths.
//! (tests/browser drives it end to end in Chromium.)

use crate::common::TestApp;

#[tokio::test]
async fn page_and_assets_are_served_with_a_strict_policy() {
    let app = TestApp::spawn().await;
    let get = |path: &str| app.client.get(format!("{}{path}", app.base));

    let page = app.fetch(get("/")).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let csp = page.header("content-security-policy").expect("a CSP");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    let html = page.body.as_str().expect("html");
    assert!(html.contains(r#"<script type="module" src="/assets/app.js">"#));
    assert!(html.contains(r#"href="/assets/app.css""#));

    for (path, ctype, sample) in [
        (
            "/assets/app.js",
            "text/javascript; charset=utf-8",
            "message:send",
        ),
        ("/assets/app.css", "text/css; charset=utf-8", ".messages"),
    ] {
        let r = app.fetch(get(path)).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(ctype), "{path}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("cache-control"), Some("no-cache"));
        assert!(r.body.as_str().expect("text").contains(sample), "{path}");
        let etag = r.header("etag").expect("an etag").to_owned();
        let again = app.fetch(get(path).header("if-none-match", &etag)).await;
        assert_eq!(again.status, 304, "{path} revalidates");
        let other = app
            .fetch(get(path).header("if-none-match", "\"other\""))
            .await;
        assert_eq!(other.status, 200, "{path} with a stale etag");
    }
}

#[tokio::test]
async fn the_client_shadows_no_other_path() {
    let app = TestApp::spawn().await;
    let get = |path: &str| app.client.get(format!("{}{path}", app.base));

    for path in [
        "/assets/nope.js",
        "/assets/",
        "/nope",
        "/api/v1/nope",
        "/index.html",
    ] {
        app.fetch(get(path)).await.assert_problem(404, "not_found");
    }
    app.fetch(app.client.post(format!("{}/", app.base)))
        .await
        .assert_problem(405, "method_not_allowed");

    assert_eq!(app.fetch(get("/healthz")).await.status, 200);
    assert_eq!(app.fetch(get("/metrics")).await.status, 200);
    let doc = app.fetch(get("/api-docs/openapi.json")).await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["paths"]["/api/v1/groups"].is_object());
    let sio = app.fetch(get("/socket.io/?EIO=4&transport=polling")).await;
    assert_eq!(sio.status, 200, "the Engine.IO handshake still answers");
    assert!(sio.body.as_str().unwrap_or_default().contains("\"sid\""));
}
