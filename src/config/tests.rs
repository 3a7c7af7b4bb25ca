//! Tests of the config: what it accepts, refuses and how it names the key.

use super::*;
use std::collections::HashMap;

const APP: &str = "[[apps]]\nappid = \"wx0123456789abcdef\"\nsecret_env = \"S\"\n";

fn parse(toml: &str) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = [("S".to_string(), "secret".to_string())].into();
    Config::parse(&format!("{toml}\n{APP}"), Path::new("t.toml"), &env)
}

/// The key an `Invalid` error names, and its problem.
fn refusal(toml: &str) -> (String, String) {
    match parse(toml) {
        Err(ConfigError::Invalid { key, problem, .. }) => (key, problem),
        other => panic!("{toml:?} should be refused as invalid, got {other:?}"),
    }
}

#[test]
fn cron_expressions_are_checked_with_the_schedulers_parser() {
    for good in [
        "0 7/30 * * * *",
        "*/2 * * * * *",
        "0 0 3 * * MON-FRI",
        "0 0 0 1 1 *",
    ] {
        let config = parse(&format!("[schedule]\ncron = \"{good}\"\n"));
        assert!(config.is_ok(), "{good}: {config:?}");
    }
    for bad in [
        "0 61 * * * *",
        "0 * 25 * * *",
        "0 * * * * FUNDAY",
        "x * * * * *",
        "0 0 0 30 2 *",
    ] {
        let (key, problem) = refusal(&format!("[schedule]\ncron = \"{bad}\"\n"));
        assert_eq!(key, "schedule.cron", "{bad}");
        assert!(problem.contains(bad), "{bad}: {problem}");
    }
}

#[test]
fn every_integer_key_is_bounded_and_says_its_range() {
    for int in INTEGER_KEYS {
        let (section, key) = (int.section, int.key);
        for huge in [u64::MAX, 1_000_000_000_000] {
            let (named, problem) = refusal(&format!("[{section}]\n{key} = {huge}\n"));
            assert_eq!(named, format!("{section}.{key}"), "{key} = {huge}");
            assert!(problem.contains("allowed"), "{key} = {huge}: {problem}");
        }
    }
    // The upper bounds all together still make a lease that fits its own bound.
    let config = parse(
        "[wechat]\nconnect_timeout_secs = 300\nrequest_timeout_secs = 600\nretry_attempts = 20\nretry_min_delay_ms = 60000\n",
    )
    .expect("every maximum at once is valid");
    assert!(config.schedule.lease <= Duration::from_secs(86_400));
}

#[test]
fn weeks_before_wechat_are_neither_configured_nor_planned() {
    for monday in ["1900-01-01", "2016-12-26"] {
        let (key, problem) = refusal(&format!("[schedule]\nstart_week = \"{monday}\"\n"));
        assert_eq!(key, "schedule.start_week");
        assert!(problem.contains("2017"), "{problem}");
    }
    let config = parse("[schedule]\nstart_week = \"2017-01-02\"\n").expect("2017 is fine");
    assert_eq!(
        config.schedule.start_week.map(|w| w.to_string()).as_deref(),
        Some("2017-01-02")
    );
    // A lookback reaching past 2017 stops at WeChat's first week.
    let config = parse("[schedule]\nlookback_weeks = 1000\n").expect("valid");
    let last = NaturalWeek::parse_monday("2026-11-16").expect("monday");
    let oldest = |c: &Config| crate::planner::oldest_week(&c.schedule, last).to_string();
    assert_eq!(oldest(&config), "2017-01-02");
    let config = parse("[schedule]\nlookback_weeks = 3\n").expect("valid");
    assert_eq!(oldest(&config), "2026-11-02");
}

#[test]
fn force_refresh_takes_its_words_and_the_booleans_it_had() {
    for (value, allowed) in [
        ("\"budgeted\"", true),
        ("true", true),
        ("\"never\"", false),
        ("false", false),
    ] {
        let config = parse(&format!("[wechat]\nforce_refresh = {value}\n")).expect(value);
        assert_eq!(config.wechat.force_refresh, allowed, "{value}");
    }
    assert!(parse("").expect("default").wechat.force_refresh);
    let (key, problem) = refusal("[wechat]\nforce_refresh = \"sometimes\"\n");
    assert_eq!(key, "wechat.force_refresh");
    assert!(problem.contains("never"), "{problem}");
}

#[test]
fn defaults_are_unchanged() {
    let config = parse("").expect("defaults are valid");
    let d = ScheduleConfig::default();
    assert_eq!(
        (
            config.schedule.lease,
            config.schedule.lookback_weeks,
            config.schedule.publish_hour
        ),
        (d.lease, d.lookback_weeks, d.publish_hour)
    );
    assert_eq!(
        (config.schedule.final_grace, config.schedule.max_clock_skew),
        (d.final_grace, d.max_clock_skew)
    );
    assert_eq!(config.schedule.drain_timeout, Duration::from_secs(20));
    assert_eq!(config.schedule.lookback_weeks, 26);
    assert_eq!(config.wechat.max_in_flight, 64);
    assert_eq!(config.wechat.app_rate_per_second, 5.0);
    assert_eq!(config.database.max_connections, 10);
    assert_eq!(config.wechat.token_file_ttl, Duration::from_secs(60));
}

#[test]
fn secrets_are_not_read_for_commands_that_only_touch_the_database() {
    let toml = "[[apps]]\nappid = \"wx0123456789abcdef\"\nsecret_env = \"UNSET\"\n\
                [[apps]]\nappid = \"wx0123456789abcdee\"\nsecret_file = \"/no/such/file\"\n\
                [[apps]]\nappid = \"wx0123456789abcded\"\ntoken_env = \"UNSET\"\n";
    let env: HashMap<String, String> = HashMap::new();
    let path = Path::new("t.toml");
    let config = Config::parse_with(toml, path, &env, Secrets::Skip).expect("loads");
    let from: Vec<String> = config
        .apps
        .iter()
        .map(|a| match &a.credential {
            Credential::Unresolved(from) => from.clone(),
            other => panic!("{other:?} was resolved"),
        })
        .collect();
    assert_eq!(
        from,
        [
            "secret_env UNSET",
            "secret_file /no/such/file",
            "token_env UNSET"
        ]
    );
    let err = Config::parse(toml, path, &env).expect_err("secrets are read");
    assert!(err.to_string().contains("apps[0].secret_env"), "{err}");
    // The shape is still checked.
    let two = "[[apps]]\nappid = \"wx0123456789abcdef\"\nsecret_env = \"A\"\ntoken_env = \"B\"\n";
    assert!(Config::parse_with(two, path, &env, Secrets::Skip).is_err());
}

#[test]
fn the_rate_over_all_apps_is_off_unless_set_and_checked_when_set() {
    assert_eq!(parse("").expect("valid").wechat.rate_per_second, None);
    let set = parse("[wechat]\nrate_per_second = 40\n").expect("valid");
    assert_eq!(set.wechat.rate_per_second, Some(40.0));
    for bad in ["0", "-1", "nan", "inf", "2000000", "1e-12", "0.0009"] {
        let (key, problem) = refusal(&format!("[wechat]\nrate_per_second = {bad}\n"));
        assert_eq!(key, "wechat.rate_per_second", "{bad}");
        assert!(problem.contains("not a rate"), "{bad}: {problem}");
    }
}

#[test]
fn token_command_env_names_set_variables_and_goes_with_token_command_only() {
    let env: HashMap<String, String> = [("KEY".to_string(), "k".to_string())].into();
    let app = |lines: &str| format!("[[apps]]\nappid = \"wx0123456789abcdef\"\n{lines}\n");
    let load =
        |lines: &str, secrets| Config::parse_with(&app(lines), Path::new("t.toml"), &env, secrets);
    let command = "token_command = [\"get-token\"]\n";
    let config = load(
        &format!("{command}token_command_env = [\"KEY\"]"),
        Secrets::Resolve,
    )
    .expect("valid");
    match &config.apps[0].credential {
        Credential::Command { env, .. } => assert_eq!(env, &["KEY"]),
        other => panic!("{other:?}"),
    }
    let refused = |lines: &str, secrets| match load(lines, secrets) {
        Err(ConfigError::Invalid { key, problem, .. }) => format!("{key}: {problem}"),
        other => panic!("{lines:?} should be refused, got {other:?}"),
    };
    assert_eq!(
        refused(
            &format!("{command}token_command_env = [\"UNSET\"]"),
            Secrets::Resolve
        ),
        "apps[0].token_command_env: environment variable UNSET is not set"
    );
    assert!(refused(
        &format!("{command}token_command_env = [\"A=B\"]"),
        Secrets::Skip
    )
    .starts_with("apps[0].token_command_env: \"A=B\" is not an environment variable name"));
    assert!(refused(
        "secret_env = \"KEY\"\ntoken_command_env = [\"KEY\"]",
        Secrets::Resolve
    )
    .starts_with("apps[0].token_command_env: only goes with token_command"));
    // Commands that only read the database need not have the variables.
    load(
        &format!("{command}token_command_env = [\"UNSET\"]"),
        Secrets::Skip,
    )
    .expect("not read");
}

#[test]
fn a_grace_of_zero_days_is_refused_it_would_let_one_pass_give_up() {
    let (key, problem) = refusal("[schedule]\nfinal_grace_days = 0\n");
    assert_eq!(key, "schedule.final_grace_days");
    assert!(problem.contains("allowed 1 to 365"), "{problem}");
    assert!(parse("[schedule]\nfinal_grace_days = 1\n").is_ok());
}
