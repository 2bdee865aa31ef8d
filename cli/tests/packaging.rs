//! The packaging in packaging/: the systemd unit checked for its hardening, its connection
//! headroom and by `systemd-analyze verify` where systemd's tools are installed.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tidings");

const UNIT: &str = include_str!("../../packaging/tidings.service");

/// The value of `key=` in the unit (the last one, as systemd reads it).
fn unit_value(key: &str) -> Option<&'static str> {
    UNIT.lines()
        .rev()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn the_systemd_unit_is_hardened_and_holds_the_default_connections() {
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "tidings"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("Restart", "on-failure"),
    ] {
        assert_eq!(unit_value(key), Some(value), "{key}");
    }
    let exec = unit_value("ExecStart").unwrap();
    assert_eq!(
        exec,
        "/usr/local/bin/tidings serve --config /etc/tidings/tidings.toml"
    );
    // Below the default connection limit plus the server's reserve, the server would lower
    // its limit: the unit must not shrink the default.
    let fds: usize = unit_value("LimitNOFILE").unwrap().parse().unwrap();
    let default = tidings_smol::ServerConfig::default().max_connections;
    assert!(fds >= default + 64, "LimitNOFILE={fds} < {default} + 64");
}

/// `systemd-analyze verify` on the unit, its ExecStart pointed at the binary under test (it
/// checks that the program exists). Skipped where systemd's tools are not installed;
/// .ci/checks/15-packaging installs them.
#[test]
fn the_systemd_unit_verifies() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: skipped");
        return;
    };
    assert!(version.status.success());
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("tidings.service");
    std::fs::write(&unit, UNIT.replace("/usr/local/bin/tidings", BIN)).unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stderr);
    // Unknown keys and bad values are only warnings: any output is a failure here.
    assert!(o.status.success() && said.trim().is_empty(), "{said}");

    // And a broken unit does fail this check, so it checks something.
    let broken = dir.path().join("broken.service");
    std::fs::write(&broken, UNIT.replace("LimitNOFILE=", "LimitNOFILES=")).unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&broken)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("LimitNOFILES"));
}
