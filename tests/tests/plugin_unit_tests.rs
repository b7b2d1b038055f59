//! The example plugins' own unit tests (their pure logic on the host), so
//! the one test command covers the separate example-plugin workspaces too
//! (`cap_e2e::PLUGIN_WORKSPACES`: API 0.1.0's and API 0.2.0's).

use std::process::Command;

#[test]
fn the_example_plugins_own_unit_tests_pass() {
    let root = cap_e2e::repo_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for (workspace, at_least) in cap_e2e::PLUGIN_WORKSPACES.into_iter().zip([50, 40]) {
        let output = Command::new(&cargo)
            .args(["test", "--manifest-path"])
            .arg(root.join(workspace).join("Cargo.toml"))
            // One build directory for both workspaces' host builds.
            .arg("--target-dir")
            .arg(root.join("example-plugins/target"))
            .output()
            .expect("running cargo test for the example plugins");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{workspace}: plugin tests failed:\n{stdout}\n{stderr}"
        );
        let passed: usize = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("test result: ok. "))
            .filter_map(|l| l.split_whitespace().next()?.parse::<usize>().ok())
            .sum();
        assert!(
            passed >= at_least,
            "{workspace}: expected the plugins' unit tests to run, saw {passed} passing:\n{stdout}"
        );
    }
}
