//! The example plugins' own unit tests (their pure logic on the host), so
//! the one test command covers the separate `example-plugins` workspace too.

use std::process::Command;

#[test]
fn the_example_plugins_own_unit_tests_pass() {
    let root = cap_e2e::repo_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["test", "--manifest-path"])
        .arg(root.join("example-plugins/Cargo.toml"))
        .output()
        .expect("running cargo test for example-plugins");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "example plugin tests failed:\n{stdout}\n{stderr}"
    );
    let passed: usize = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<usize>().ok())
        .sum();
    assert!(
        passed >= 50,
        "expected the plugins' unit tests to run, saw {passed} passing:\n{stdout}"
    );
}
