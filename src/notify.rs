//! systemd's notify protocol (`Type=notify`, `WatchdogSec=`), spoken
//! directly: one datagram per message to `$NOTIFY_SOCKET`. Without systemd
//! (no `NOTIFY_SOCKET`) every call does nothing, so the agent runs the same
//! by hand. Failures are logged at debug level and never stop the agent.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

pub struct Notifier {
    target: Option<SocketAddr>,
    /// Half of `WATCHDOG_USEC` (as systemd recommends), when it applies to us.
    pub watchdog: Option<Duration>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let target = std::env::var("NOTIFY_SOCKET").ok().filter(|s| !s.is_empty()).and_then(|s| address(&s));
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us)
            .map(|u| Duration::from_micros(u / 2));
        Notifier { target, watchdog }
    }

    pub fn send(&self, message: &str) {
        let Some(addr) = &self.target else { return };
        let result = UnixDatagram::unbound().and_then(|s| s.send_to_addr(message.as_bytes(), addr));
        if let Err(e) = result {
            log::debug!("sd_notify {message:?}: {e}");
        }
    }
}

/// `/path` is a filesystem socket, `@name` an abstract one (Linux).
fn address(s: &str) -> Option<SocketAddr> {
    if let Some(name) = s.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name.as_bytes()).ok()
    } else {
        SocketAddr::from_pathname(s).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_reach_a_filesystem_socket() {
        let path = std::env::temp_dir().join(format!("ovt-notify-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier { target: address(path.to_str().unwrap()), watchdog: None };
        n.send("READY=1");
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        std::fs::remove_file(&path).unwrap();
    }
}
