//! Unit tests of round robin, the all-down fallback and what marks an upstream down.

use std::io;

use super::*;

#[test]
fn only_upstream_faults_mark_an_upstream_down() {
    for kind in [
        io::ErrorKind::ConnectionRefused,
        io::ErrorKind::ConnectionReset,
        io::ErrorKind::TimedOut,
        io::ErrorKind::HostUnreachable,
    ] {
        assert!(blames_upstream(&io::Error::from(kind)), "{kind:?}");
    }
    // EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL: this machine's limits.
    for errno in [24, 23, 105, 12, 99] {
        let e = io::Error::from_raw_os_error(errno);
        assert!(!blames_upstream(&e), "{e}");
    }
}

fn upstream(port: u16) -> Upstream {
    Upstream {
        tls: false,
        host: "127.0.0.1".into(),
        port,
        original: format!("http://127.0.0.1:{port}"),
        tls_name: None,
    }
}

fn limits() -> PoolLimits {
    PoolLimits {
        connect_timeout: Duration::from_secs(1),
        max_connections: 4,
        max_idle: 2,
    }
}

#[test]
fn requests_take_turns_and_each_tries_every_upstream_once() {
    let orders: Vec<Vec<usize>> = (0..4).map(|start| turn(start, 3).collect()).collect();
    assert_eq!(orders, [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]]);
    assert_eq!(turn(usize::MAX, 3).count(), 3, "the counter may wrap");
    assert_eq!(turn(7, 1).collect::<Vec<_>>(), [0]);
}

#[test]
fn when_all_cool_down_the_first_to_come_back_is_tried() {
    let until = [30_000, 10_000, 20_000];
    assert_eq!(first_back(3, |i| until[i]), 1);
    assert_eq!(first_back(1, |_| u64::MAX), 0);
}

#[test]
fn a_local_error_never_marks_an_upstream_down() {
    let ups = Upstreams::new(&[upstream(1)], None, limits(), Discards::detached());
    let local = UpstreamError::Local {
        upstream: "x".into(),
        source: io::Error::from_raw_os_error(24),
    };
    ups.note_failure(&ups.targets[0], &local);
    assert!(!ups.is_down(&ups.targets[0], ups.now_ms()));
    let refused = UpstreamError::Connect {
        upstream: "x".into(),
        source: io::Error::from(io::ErrorKind::ConnectionRefused),
    };
    ups.note_failure(&ups.targets[0], &refused);
    assert!(ups.is_down(&ups.targets[0], ups.now_ms()));
}
