//! glibc's `getent`, run as a child: the one way this program asks NSS
//! (hosts for the agent's connections, passwd and group for the accounts)
//! without loading NSS modules in-process, which a static glibc build
//! cannot do safely (src/resolve.rs says why).
//!
//! Guarantees: getent is run by absolute path (never from `PATH`), with
//! stdin closed, its output capped at 256 KiB, and, when the caller gives
//! a timeout, killed when it runs over; the child is always reaped.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Where getent lives: merged-/usr systems have both, older ones only one.
pub const GETENT: [&str; 2] = ["/usr/bin/getent", "/bin/getent"];

/// More than any sane host answer; a runaway child cannot fill memory.
const MAX_OUTPUT: usize = 256 * 1024;

/// Where getent is on this host, if anywhere.
pub fn find() -> Option<&'static Path> {
    GETENT.iter().map(Path::new).find(|p| p.is_file())
}

/// How long an account lookup may take (a hung LDAP or sssd must not
/// hold the agent or the installer).
pub const ACCOUNT_TIMEOUT: Duration = Duration::from_secs(10);

/// One record of `db` (passwd, group) for `name`, split at `:`, from
/// `getent DB -- NAME` within [`ACCOUNT_TIMEOUT`]. `None` when getent is
/// missing, says no, or does not answer in time.
pub fn record(db: &str, name: &str) -> Option<Vec<String>> {
    let mut cmd = Command::new(find()?);
    cmd.args([db, "--", name]);
    let out = output_within(cmd, Some(ACCOUNT_TIMEOUT)).ok()?;
    let text = String::from_utf8(out).ok()?;
    let line = text.lines().next()?;
    Some(line.split(':').map(str::to_string).collect())
}

/// A child's stdout (stderr goes to ours, for the log); `Err(None)` when
/// it ran past `timeout`: then it is killed. It is always reaped.
pub fn output_within(mut cmd: Command, timeout: Option<Duration>) -> Result<Vec<u8>, Option<io::Error>> {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).spawn().map_err(Some)?;
    let read = read_until(&mut child, timeout.map(|t| Instant::now() + t));
    if read.is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
    read
}

/// The child's stdout up to EOF; `Err(None)` when the deadline passed first.
fn read_until(child: &mut Child, deadline: Option<Instant>) -> Result<Vec<u8>, Option<io::Error>> {
    let Some(mut stdout) = child.stdout.take() else {
        return Err(Some(io::Error::other("getent stdout not captured")));
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let wait = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(None);
                }
                // Round up so a last sub-millisecond slice is not a busy loop.
                PollTimeout::from((left.as_millis() + 1).min(60_000) as u16)
            }
        };
        match poll(&mut [PollFd::new(stdout.as_fd(), PollFlags::POLLIN)], wait) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(Some(e.into())),
        }
        match stdout.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) if out.len() + n <= MAX_OUTPUT => out.extend_from_slice(&buf[..n]),
            Ok(_) => return Err(Some(io::Error::other("getent printed more than 256 KiB"))),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Some(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_past_its_timeout_is_killed_and_its_output_otherwise_read() {
        let mut sleeper = Command::new("sleep");
        sleeper.arg("600");
        assert!(matches!(output_within(sleeper, Some(Duration::from_millis(50))), Err(None)));
        let mut printer = Command::new("printf");
        printer.arg("192.0.2.1 STREAM x\\n");
        assert_eq!(output_within(printer, Some(Duration::from_secs(30))).unwrap(), b"192.0.2.1 STREAM x\n");
    }

    #[test]
    fn account_records_come_from_getent() {
        // root is in every /etc/passwd, so no query leaves the host.
        let root = record("passwd", "root").unwrap();
        assert_eq!((root[0].as_str(), root[2].as_str()), ("root", "0"));
        assert_eq!(record("passwd", "no-such-user-ovt"), None);
    }
}
