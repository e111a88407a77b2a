//! The JSON contract of `iomodels bench --json`, parsed as the brief writes it.

use iomodels_compare::BenchResult;

const EXAMPLE: &str = r#"{"addr": "127.0.0.1:7000", "connections_requested": 1000, "connections_held": 1000, "payload": 64, "pipeline": 1, "rate": null,
 "warmup_secs": 1.0, "duration_secs": 5.0, "messages": 123456, "messages_per_sec": 24691.2, "mb_per_sec_out": 1.58, "mb_per_sec_in": 1.58,
 "latency_us": {"p50": 40.1, "p90": 60.0, "p99": 120.0, "p999": 400.0, "max": 2000.0},
 "errors": {"connect_failed": 0, "connect_timeout": 0, "disconnected": 0, "verify_failed": 0},
 "client_cpu_secs": 4.1, "client_cpu_us_per_msg": 3.3,
 "server": {"pid": 1234, "cpu_secs": 4.0, "cpu_us_per_msg": 3.2, "rss_kib": 2048, "hwm_kib": 4096},
 "limit": "server"}"#;

#[test]
fn parses_the_documented_object() {
    let one_line = EXAMPLE.replace('\n', "");
    let result = BenchResult::from_stdout(&one_line).expect("the contract parses");
    assert_eq!(result.addr, "127.0.0.1:7000");
    assert_eq!(result.connections_requested, 1000);
    assert_eq!(result.connections_held, 1000);
    assert_eq!(result.payload, 64);
    assert_eq!(result.pipeline, 1);
    assert_eq!(result.rate, None);
    assert_eq!(result.messages, 123_456);
    assert!((result.messages_per_sec - 24_691.2).abs() < 1e-9);
    assert!((result.latency_us.p99 - 120.0).abs() < 1e-9);
    assert!((result.latency_us.p999 - 400.0).abs() < 1e-9);
    assert_eq!(result.errors.total(), 0);
    let server = result.server.as_ref().expect("server sampled");
    assert_eq!(server.pid, 1234);
    assert_eq!(server.rss_kib, 2048);
    assert_eq!(server.hwm_kib, 4096);
    assert_eq!(result.limit, "server");
    assert!(result.is_clean());
    let per_cpu_sec = result.messages_per_server_cpu_sec().unwrap();
    assert!((per_cpu_sec - 123_456.0 / 4.0).abs() < 1e-6);
}

#[test]
fn takes_the_json_line_after_other_output_and_ignores_new_fields() {
    let with_extra = EXAMPLE
        .replace('\n', "")
        .replace(r#""limit": "server""#, r#""limit": "client", "threads": 2"#)
        .replace(
            r#""server": {"pid": 1234, "cpu_secs": 4.0, "cpu_us_per_msg": 3.2, "rss_kib": 2048, "hwm_kib": 4096}"#,
            r#""server": null"#,
        );
    let stdout = format!("connecting...\n{with_extra}\n");
    let result = BenchResult::from_stdout(&stdout).expect("the last JSON line parses");
    assert_eq!(result.limit, "client");
    assert_eq!(result.server, None);
    assert_eq!(result.messages_per_server_cpu_sec(), None);
}

#[test]
fn errors_or_missing_connections_make_a_result_unclean() {
    let mut result = BenchResult::from_stdout(&EXAMPLE.replace('\n', "")).unwrap();
    result.errors.verify_failed = 1;
    assert!(!result.is_clean());
    result.errors.verify_failed = 0;
    result.connections_held = 999;
    assert!(!result.is_clean());
}

#[test]
fn rejects_output_without_a_result() {
    assert!(BenchResult::from_stdout("").is_err());
    assert!(BenchResult::from_stdout("error: connection refused\n").is_err());
    assert!(BenchResult::from_stdout(r#"{"addr": "127.0.0.1:1"}"#).is_err());
}
