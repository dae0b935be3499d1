//! The settings' defaults, ranges and error messages.

use super::*;

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_match_the_contract() {
    let s = Settings::from_map(&HashMap::new()).unwrap();
    assert_eq!(s.http_addr.to_string(), "0.0.0.0:8080");
    assert_eq!(s.engine, Engine::Standalone);
    assert_eq!(s.rejoin_cooldown, Duration::from_secs(48 * 3600));
    assert_eq!(s.log_format, LogFormat::Pretty);
    assert_eq!(s.data_dir, PathBuf::from("./data"));
    assert_eq!(s.admin_addr, None);
    assert_eq!(s.probe_interval, Duration::from_secs(5));
    let s = Settings::from_map(&map(&[("CONCLAVE_ADMIN_ADDR", "0.0.0.0:9090")])).unwrap();
    assert_eq!(s.admin_addr.map(|a| a.port()), Some(9090));
    assert!(s.http().admin_listener);
}

#[test]
fn bad_values_name_the_setting() {
    for (k, v) in [
        ("CONCLAVE_ENGINE", "mongo"),
        ("CONCLAVE_HTTP_ADDR", "nope"),
        ("CONCLAVE_REJOIN_COOLDOWN", "forever"),
        ("CONCLAVE_JWT_SECRET", "short"),
        ("CONCLAVE_ENCRYPTION_KEYS", "k1:zz"),
        ("CONCLAVE_PARTITIONS", "0"),
        ("CONCLAVE_LEADER_ELECTION", "yes"),
        ("CONCLAVE_LEADER_LEASE", "Conclave_Leader"),
        ("CONCLAVE_LEADER_NAMESPACE", "-ns"),
        ("CONCLAVE_LEADER_LEASE_DURATION", "1s"),
        ("CONCLAVE_DRAIN_DELAY", "1h"),
        ("CONCLAVE_REDIS_LIMIT_TIMEOUT", "1ms"),
        ("CONCLAVE_AMQP_HEARTBEAT", "0s"),
        ("CONCLAVE_ADMIN_ADDR", "9090"),
        ("CONCLAVE_ADMIN_ADDR", "0.0.0.0:8080"),
        ("CONCLAVE_PROBE_INTERVAL", "0s"),
    ] {
        let e = Settings::from_map(&map(&[(k, v)])).unwrap_err();
        assert_eq!(e.setting, k);
        assert!(e.to_string().contains(k));
    }
}

#[test]
fn cluster_requires_shared_secrets() {
    let e = Settings::from_map(&map(&[("CONCLAVE_ENGINE", "cluster")])).unwrap_err();
    assert_eq!(e.setting, "CONCLAVE_JWT_SECRET");
    let s = Settings::from_map(&map(&[
        ("CONCLAVE_ENGINE", "cluster"),
        ("CONCLAVE_JWT_SECRET", &"s".repeat(32)),
        (
            "CONCLAVE_ENCRYPTION_KEYS",
            "k1:000102030405060708090a0b0c0d0e0f",
        ),
    ]))
    .unwrap();
    assert_eq!(s.log_format, LogFormat::Json);
    assert!(!format!("{s:?}").contains("sssssss"));
}

#[test]
fn environment_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("conclave.env");
    std::fs::write(
        &p,
        "# comment\nCONCLAVE_REJOIN_COOLDOWN=3s\nCONCLAVE_PARTITIONS=4\n",
    )
    .unwrap();
    let mut vars = read_env_file(&p).unwrap();
    vars.insert("CONCLAVE_PARTITIONS".into(), "8".into());
    let s = Settings::from_map(&vars).unwrap();
    assert_eq!(s.rejoin_cooldown, Duration::from_secs(3));
    assert_eq!(s.partitions, 8);
}
