use super::*;

fn rules(json: &str) -> RuleSet {
    let rules: Vec<HttpRule> = serde_json::from_str(json).expect("rules parse");
    RuleSet::compile(&rules).expect("rules compile")
}

fn get(path: &str) -> Request<'_> {
    Request { method: "GET", path, host: Some("api.backend.svc.cluster.local"), headers: &[] }
}

#[test]
fn empty_list_and_empty_rule_allow_everything() {
    assert!(rules("[]").evaluate(&get("/anything")).allowed);
    let visibility = rules("[{}]").evaluate(&get("/h"));
    assert_eq!(visibility.matched_rule, Some(0));
    assert!(visibility.allowed);
}

#[test]
fn method_path_and_host_are_anchored_regexes() {
    let set = rules(r#"[{"method": "GET", "path": "/public/.*", "host": "api\\..*"}]"#);
    let cases = [
        ("GET", "/public/a", Some("api.example"), true),
        ("GET", "/public", Some("api.example"), false),
        ("GET", "/x/public/a", Some("api.example"), false),
        ("GETS", "/public/a", Some("api.example"), false),
        ("POST", "/public/a", Some("api.example"), false),
        ("GET", "/public/a", Some("www.api.example"), false),
        ("GET", "/public/a", None, false),
    ];
    for (method, path, host, allowed) in cases {
        let request = Request { method, path, host, headers: &[] };
        assert_eq!(set.evaluate(&request).allowed, allowed, "{method} {path} {host:?}");
    }
}

#[test]
fn any_matching_rule_allows() {
    let set = rules(r#"[{"method": "POST", "path": "/login"}, {"method": "GET"}]"#);
    assert_eq!(set.evaluate(&get("/x")).matched_rule, Some(1));
    let post = Request { method: "POST", path: "/admin", host: None, headers: &[] };
    assert!(!set.evaluate(&post).allowed);
}

#[test]
fn headers_require_presence_or_exact_value() {
    let set = rules(r#"[{"headers": ["X-Token", "X-Env: prod"]}]"#);
    let both = [("x-token", "abc"), ("X-Env", " prod ")];
    let wrong_value = [("X-Token", "abc"), ("X-Env", "dev")];
    let missing = [("X-Env", "prod")];
    for (headers, allowed) in [(&both[..], true), (&wrong_value[..], false), (&missing[..], false)] {
        let request = Request { method: "GET", path: "/", host: None, headers };
        assert_eq!(set.evaluate(&request).allowed, allowed, "{headers:?}");
    }
}

#[test]
fn header_match_mismatch_actions_allow_with_action() {
    let set = rules(
        r#"[{"headerMatches": [
            {"name": "X-Strict", "value": "1"},
            {"name": "X-Logged", "value": "yes", "mismatch": "LOG"},
            {"name": "X-Added", "value": "v", "mismatch": "ADD"}
        ]}]"#,
    );
    let request = Request { method: "GET", path: "/", host: None, headers: &[("X-Strict", "1")] };
    let decision = set.evaluate(&request);
    assert!(decision.allowed);
    let actions: Vec<_> = decision.header_actions.iter().map(|a| (a.action, a.name.as_str())).collect();
    assert_eq!(actions, [(MismatchAction::Log, "X-Logged"), (MismatchAction::Add, "X-Added")]);
    let strict_missing = Request { method: "GET", path: "/", host: None, headers: &[] };
    assert!(!set.evaluate(&strict_missing).allowed);
}

#[test]
fn invalid_rules_name_the_field() {
    let bad: Vec<HttpRule> = serde_json::from_str(r#"[{}, {"path": "/a("}]"#).unwrap();
    let err = RuleSet::compile(&bad).unwrap_err();
    assert_eq!((err.rule, err.field.as_str()), (1, "path"));
    let secret: Vec<HttpRule> =
        serde_json::from_str(r#"[{"headerMatches": [{"name": "A", "secret": {"name": "s"}}]}]"#).unwrap();
    assert_eq!(RuleSet::compile(&secret).unwrap_err().field, "headerMatches[0].secret");
    assert!(serde_json::from_str::<Vec<HttpRule>>(r#"[{"methd": "GET"}]"#).is_err());
}

#[test]
fn literal_patterns_match_like_their_anchored_regexes() {
    let patterns =
        ["GET", "/healthz", "/a b", "", "api", "/caf\u{e9}", "/public/.*", "GET|HEAD", "/a-b", "x#y"];
    let values = [
        "GET",
        "get",
        "GETS",
        "/healthz",
        "/healthz/",
        "/a b",
        "",
        "api",
        "xapi",
        "/caf\u{e9}",
        "/public/x",
        "HEAD",
        "/a-b",
        "x#y",
    ];
    for pattern in patterns {
        let compiled = anchored(0, "path", &Some(pattern.to_string())).unwrap().unwrap();
        let regex = Regex::new(&format!("^(?:{pattern})$")).unwrap();
        for value in values {
            assert_eq!(compiled.is_match(value), regex.is_match(value), "{pattern:?} {value:?}");
        }
    }
    assert!(matches!(anchored(0, "method", &Some("GET".into())).unwrap(), Some(Pattern::Literal(_))));
    assert!(matches!(anchored(0, "path", &Some("/a/.*".into())).unwrap(), Some(Pattern::Regex(_))));
}
