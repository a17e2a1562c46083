//! A helper process a test starts, in a process group of its own, killed
//! with everything it started when the guard drops: also when an assertion
//! fails first (the drop runs while the panic unwinds). A holder such as
//! `flock FILE sleep 600` is two processes; killing only the first would
//! leave the `sleep` behind, holding the test's output pipe open for ten
//! minutes.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

pub struct Group {
    child: Child,
}

impl Group {
    /// Starts `cmd` as the leader of a new process group.
    pub fn spawn(cmd: &mut Command) -> Group {
        let child = cmd.process_group(0).spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Group { child }
    }
    /// Sends `sig` to the whole group.
    pub fn signal(&self, sig: Signal) -> nix::Result<()> {
        killpg(Pid::from_raw(self.child.id() as i32), sig)
    }
    /// The leader, e.g. to wait for it to end by itself.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = self.signal(Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
