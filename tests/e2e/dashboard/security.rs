//! The dashboard's defences, asked by the real curl: the Host check, the CSRF token bound to
//! its session, cross-origin forms, the size limit, the login token; and the actions that pass
//! them, with their effect in the database.

use super::{Serve, csrf_of, curl, post_form, seeded, set_cookie};
use crate::support::{Env, show};

#[test]
fn strangers_are_refused_and_forms_need_their_sessions_token() {
    let (env, _server, _) = seeded();
    let serve = Serve::start(&env);
    let b = &serve.base;
    // DNS rebinding: a page of evil.example whose name now points here.
    let a = curl(&["-H", "Host: evil.example", &format!("{b}/")]);
    assert_eq!(a.status, 421, "{}", a.text());
    assert!(!a.text().contains("count-done"));
    assert_eq!(
        curl(&["-H", "Host: localhost", &format!("{b}/")]).status,
        421,
        "no port"
    );
    let port = serve.host.rsplit(':').next().unwrap();
    assert_eq!(
        curl(&["-H", &format!("Host: localhost:{port}"), &format!("{b}/")]).status,
        200
    );

    let page = curl(&[&format!("{b}/jobs/4")]);
    let cookie = set_cookie(&page);
    let csrf = csrf_of(&page.text());
    let retry = |extra: &[&str]| {
        let mut args = vec!["-X", "POST", "--data", "id=4"];
        args.extend_from_slice(extra);
        let url = format!("{b}/actions/retry");
        args.push(&url);
        curl(&args)
    };
    let state = || env.job(4).state;
    // No token, a wrong one, another session's, a cross-origin form: all refused, nothing changes.
    let other = set_cookie(&curl(&[&format!("{b}/")]));
    for (why, answer) in [
        ("no token", retry(&["-H", &format!("Cookie: {cookie}")])),
        ("no cookie", retry(&["--data", &format!("csrf={csrf}")])),
        (
            "wrong token",
            retry(&[
                "-H",
                &format!("Cookie: {cookie}"),
                "--data",
                &format!("csrf={}", "0".repeat(64)),
            ]),
        ),
        (
            "another session",
            retry(&[
                "-H",
                &format!("Cookie: {other}"),
                "--data",
                &format!("csrf={csrf}"),
            ]),
        ),
        (
            "cross origin",
            retry(&[
                "-H",
                &format!("Cookie: {cookie}"),
                "-H",
                "Origin: http://evil.example",
                "--data",
                &format!("csrf={csrf}"),
            ]),
        ),
    ] {
        assert_eq!(answer.status, 403, "{why}: {}", answer.text());
        assert_eq!(state(), "failed", "{why}");
    }
    // Too large a body is refused before it is read.
    let big = format!("id=4&pad={}", "x".repeat(100 * 1024));
    assert_eq!(
        curl(&[
            "-X",
            "POST",
            "-H",
            &format!("Cookie: {cookie}"),
            "--data",
            &big,
            &format!("{b}/actions/retry")
        ])
        .status,
        413
    );
    // The real thing: same origin, its session's token.
    let ok = retry(&[
        "-H",
        &format!("Cookie: {cookie}"),
        "-H",
        &format!("Origin: {b}"),
        "--data",
        &format!("csrf={csrf}"),
    ]);
    assert_eq!(
        (ok.status, ok.header("location")),
        (303, Some("/jobs/4")),
        "{}",
        ok.text()
    );
    assert_eq!(state(), "queued");

    // Pause and resume, as jobctl's switch.
    let post = |action: &str| {
        post_form(
            &format!("{b}/actions/{action}"),
            &cookie,
            &[("csrf", &csrf)],
        )
    };
    assert_eq!(post("pause").status, 303);
    assert!(
        env.jobctl_ok(&["stats"]).contains("paused"),
        "jobctl sees the switch"
    );
    assert!(
        curl(&[&format!("{b}/")])
            .text()
            .contains("<strong>Paused:</strong>")
    );
    assert_eq!(post("resume").status, 303);
    // A failure group's retry: the 418 of the other server, not the first server's 404s.
    let (error, host): (String, String) = env
        .db()
        .query_row("SELECT error, host FROM jobs WHERE id = 6", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let answer = post_form(
        &format!("{b}/actions/retry-group"),
        &cookie,
        &[("csrf", &csrf), ("error", &error), ("host", &host)],
    );
    assert_eq!(answer.status, 303, "{}", answer.text());
    assert_eq!(
        (env.job(5).state, env.job(6).state),
        ("failed".into(), "queued".into())
    );
    // A filter's bulk cancel asks first, with the count, and acts only when confirmed.
    let cancel = |confirm: &[(&str, &str)]| {
        let mut fields = vec![("csrf", csrf.as_str()), ("state", "queued")];
        fields.extend_from_slice(confirm);
        post_form(&format!("{b}/actions/cancel-filter"), &cookie, &fields)
    };
    let ask = cancel(&[]);
    assert_eq!(ask.status, 200);
    assert!(
        ask.text()
            .contains("<strong id=\"selected\">2</strong> jobs"),
        "{}",
        ask.text()
    );
    assert!(ask.text().contains("name=\"confirm\" value=\"1\""));
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs WHERE state = 'cancelled'"),
        0
    );
    assert_eq!(cancel(&[("confirm", "1")]).status, 303);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs WHERE state = 'cancelled'"),
        2
    );
}

#[test]
fn a_token_guards_every_page_and_an_address_beyond_loopback_needs_one() {
    let env = Env::new("");
    env.jobctl_ok(&["init"]);
    let out = env.jobctl(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("set [ui] token"),
        "{}",
        show(&out)
    );

    let token = "a-token-of-at-least-16-chars";
    let config = std::fs::read_to_string(env.config()).unwrap();
    std::fs::write(
        env.config(),
        format!("{config}\n[ui]\ntoken = \"{token}\"\n"),
    )
    .unwrap();
    let serve = Serve::start(&env);
    let b = &serve.base;
    let a = curl(&[&format!("{b}/jobs")]);
    assert_eq!((a.status, a.header("location")), (303, Some("/login")));
    assert_eq!(
        curl(&[&format!("{b}/blobs/{}", "0".repeat(64))]).status,
        303
    );
    assert_eq!(
        curl(&["-X", "POST", &format!("{b}/actions/pause")]).status,
        401
    );
    let bearer = format!("Authorization: Bearer {token}");
    assert_eq!(curl(&["-H", &bearer, &format!("{b}/jobs")]).status, 200);
    assert_eq!(
        curl(&[
            "-H",
            "Authorization: Bearer wrong-token-of-length",
            &format!("{b}/jobs")
        ])
        .status,
        303
    );

    // The login form: its own CSRF token, then a cookie that opens every page.
    let form = curl(&[&format!("{b}/login")]);
    let cookie = set_cookie(&form);
    let csrf = csrf_of(&form.text());
    let login = |token: &str| {
        post_form(
            &format!("{b}/login"),
            &cookie,
            &[("csrf", &csrf), ("token", token)],
        )
    };
    assert_eq!(login("not-the-token-at-all").status, 403);
    let ok = login(token);
    assert_eq!(ok.status, 303);
    let session = set_cookie(&ok);
    assert_ne!(session, cookie, "a new session at login");
    let page = curl(&["-H", &format!("Cookie: {session}"), &format!("{b}/")]);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("count-queued"));
}
