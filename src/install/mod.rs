//! `install` and `uninstall`: put the binary, its links, the spool, the
//! settings, the systemd unit and the OpenVPN conf lines in place, or take
//! them away again.
//!
//! Both first make a complete plan (see [`plan`]) by comparing the disk with
//! what should be there, refuse before touching anything when something is
//! wrong (a bad setting, a conflicting `client-connect`), and only then apply
//! it. So a second install plans nothing and says so, `--dry-run` prints the
//! plan, and a refusal changes nothing. `--root DIR` does all of it below a
//! staging directory and never touches the host's accounts or services.
//! `--package` is the Debian package's mode (see [`package`]).

pub mod accounts;
pub mod conf;
pub mod envfile;
pub mod manpage;
pub mod package;
pub mod plan;
pub mod textfile;
pub mod uninstall;
pub mod unit;

use std::fmt::{self, Write as _};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use argh::{ArgsInfo, FromArgs};

use crate::accounts::{AGENT_USER, Accounts};
use crate::config::{self, Settings};
use crate::exit::ExitCode;
use crate::fsutil::{PathError, path_error};
use package::Mode;
use plan::{Action, Change, Owner, Who};

/// install or upgrade: binary, links, spool, agent.env, systemd unit, OpenVPN config lines
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "install")]
pub struct InstallArgs {
    /// install below this directory instead of / (packaging, tests)
    #[argh(option)]
    pub root: Option<PathBuf>,
    /// print what would change and change nothing
    #[argh(switch)]
    pub dry_run: bool,
    /// package mode, for the Debian package (implied when run as
    /// /usr/sbin/openvpn-telemetry): dpkg owns the binary and the unit
    #[argh(switch)]
    pub package: bool,
}

/// remove binary, links, unit and the OpenVPN config lines install added
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(subcommand, name = "uninstall")]
pub struct UninstallArgs {
    /// uninstall below this directory instead of /
    #[argh(option)]
    pub root: Option<PathBuf>,
    /// also remove the spool and /etc/openvpn-telemetry
    #[argh(switch)]
    pub purge: bool,
    /// print what would change and change nothing
    #[argh(switch)]
    pub dry_run: bool,
    /// package mode, for the Debian package (implied when run as
    /// /usr/sbin/openvpn-telemetry): leave the binary and the unit to dpkg
    #[argh(switch)]
    pub package: bool,
}

pub const ETC_DIR: &str = "/etc/openvpn-telemetry";
pub const ENV_OVERRIDES: &str = "/etc/openvpn-telemetry/.env";
/// The settings file: the one the agent and the hooks read by default.
pub const AGENT_ENV: &str = crate::config::DEFAULT_CONFIG;
pub const SCRIPTS_DIR: &str = "/etc/openvpn/scripts";
/// `SPOOL_DIR` and `pending/`: the agent's, setgid and sticky, rwx for the
/// hooks' group.
pub const SPOOL_MODE: u32 = 0o3770;
/// Every name the binary is reached by, besides [`unit::BIN`] (the role
/// table's links).
pub const LINKS: [&str; crate::roles::ROLES.len()] = crate::roles::links();

/// Where things go: `/` or a staging root.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: Option<&Path>) -> Layout {
        Layout { root: root.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/")) }
    }
    /// An absolute path of the installed system, below the root.
    pub fn at(&self, abs: impl AsRef<Path>) -> PathBuf {
        let abs = abs.as_ref();
        self.root.join(abs.strip_prefix("/").unwrap_or(abs))
    }
    pub fn staged(&self) -> bool {
        self.root != Path::new("/")
    }
    /// Whether systemd manages this system right now.
    pub fn systemd_running(&self) -> bool {
        !self.staged() && Path::new("/run/systemd/system").is_dir()
    }
}

/// Why `install` or `uninstall` changed nothing, or stopped part-way.
#[derive(Debug)]
pub enum Error {
    /// agent.env or .env cannot be read, or holds a bad value.
    Settings(config::ConfigError),
    /// Refused before changing anything; the text says what is wrong and
    /// what to do (a conflicting `client-connect`, a stranger's directory).
    Refused(String),
    /// A file install must read (its own binary, an OpenVPN conf).
    Io(PathError),
    /// A step failed; the steps printed before it were done.
    Stopped { verb: &'static str, source: plan::ApplyError },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Settings(e) => write!(f, "{e}"),
            Error::Refused(why) => f.write_str(why),
            Error::Io(e) => write!(f, "{e}"),
            Error::Stopped { verb, source } => {
                write!(f, "{verb} stopped: {source} (the steps above were done; fix this and run {verb} again)")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Settings(e) => Some(e),
            Error::Refused(_) => None,
            Error::Io(e) => Some(e),
            Error::Stopped { source, .. } => Some(source),
        }
    }
}

impl From<PathError> for Error {
    fn from(e: PathError) -> Error {
        Error::Io(e)
    }
}

/// This program's own file, for the copy install makes of it.
pub(crate) fn this_binary() -> Result<Vec<u8>, Error> {
    let exe = std::env::current_exe().map_err(path_error("cannot find this program's file", Path::new("")))?;
    Ok(fs::read(&exe).map_err(path_error("cannot read", &exe))?)
}

/// The settings `install` would write, checked, and where they came from.
pub struct Desired {
    pub text: String,
    pub settings: Settings,
    pub force: bool,
    pub warnings: Vec<String>,
    /// The spool the current agent.env names, when it differs.
    pub old_spool: Option<PathBuf>,
}

/// `agent.env` from the template, the current file and `.env`.
pub fn desired_settings(layout: &Layout) -> Result<Desired, Error> {
    let overrides = envfile::read_entries(&layout.at(ENV_OVERRIDES)).map_err(Error::Settings)?;
    let existing = envfile::read_entries(&layout.at(AGENT_ENV)).map_err(Error::Settings)?;
    let text = envfile::render(&existing, &overrides);
    let settings = Settings::from_text(Path::new(AGENT_ENV), &text).map_err(Error::Settings)?;
    let truthy = |v: &str| matches!(v, "1" | "yes" | "true" | "on");
    let force =
        envfile::lookup(&overrides, "FORCE").is_some_and(truthy) || std::env::var("FORCE").is_ok_and(|v| truthy(&v));
    let warnings = settings
        .unknown_keys
        .iter()
        .map(|(line, key)| format!("{AGENT_ENV}:{line}: {key} is not a setting this version knows (kept as is)"))
        .collect();
    let old_spool = envfile::lookup(&existing, "SPOOL_DIR")
        .and_then(|v| config::spool_dir_value(v).ok())
        .filter(|old| *old != settings.spool.spool_dir);
    Ok(Desired { text, settings, force, warnings, old_spool })
}

/// OpenVPN's script user and group, checked to exist.
pub fn script_account(settings: &Settings, accounts: &Accounts) -> Result<(String, String), Error> {
    let user = settings.installer.openvpn_script_user.clone();
    let group = settings.installer.openvpn_script_group.clone().unwrap_or_else(|| accounts.default_script_group());
    if accounts.uid(&user).is_none() {
        return Err(Error::Refused(format!(
            "OPENVPN_SCRIPT_USER={user}: no such user; set it in {ENV_OVERRIDES} to the user OpenVPN runs hooks as"
        )));
    }
    if accounts.gid(&group).is_none() {
        return Err(Error::Refused(format!(
            "OPENVPN_SCRIPT_GROUP={group}: no such group; set it in {ENV_OVERRIDES} to OpenVPN's `group`"
        )));
    }
    Ok((user, group))
}

/// The plan and what to tell the operator around it.
#[derive(Default)]
pub(crate) struct Plan {
    pub(crate) changes: Vec<Change>,
    pub(crate) notes: Vec<String>,
    /// Said only when something changes (or would).
    hints: Vec<String>,
}

impl Plan {
    fn add(&mut self, c: Option<Change>) {
        self.changes.extend(c);
    }
}

fn require_root(layout: &Layout, dry_run: bool, verb: &str) -> Result<bool, Error> {
    let root = nix::unistd::geteuid().is_root();
    if !root && !layout.staged() && !dry_run {
        return Err(Error::Refused(format!("{verb} must run as root: sudo openvpn-telemetry {verb}")));
    }
    Ok(root)
}

fn timestamp() -> String {
    let fmt = time::macros::format_description!("[year][month][day][hour][minute][second]");
    time::OffsetDateTime::now_utc().format(&fmt).unwrap_or_else(|_| "0".into())
}

/// A conf file change that keeps the file's mode and owner and backs it up.
pub(crate) fn conf_change(path: &Path, text: String, chown: bool, why: &str) -> Result<Change, Error> {
    let m = fs::metadata(path).map_err(path_error("cannot stat", path))?;
    let owner = chown.then(|| Owner { user: Who::Id(m.uid()), group: Who::Id(m.gid()) });
    let backup = PathBuf::from(format!("{}.bak-{}", path.display(), timestamp()));
    let what = format!("patch {} ({why}; backup {})", path.display(), backup.display());
    let action = Action::File {
        path: path.into(),
        data: text.into_bytes(),
        mode: m.mode() & 0o7777,
        owner,
        backup: Some(backup),
    };
    Ok(Change { action, what })
}

fn plan_install(layout: &Layout, chown: bool, mode: Mode) -> Result<Plan, Error> {
    if mode == Mode::Local {
        package::refuse_local_over_package(layout, "install")?;
    }
    let mut plan = Plan::default();
    let accounts = Accounts::for_root(&layout.root);
    let desired = desired_settings(layout)?;
    let s = &desired.settings;
    plan.notes.extend(desired.warnings.iter().cloned());
    let (script_user, script_group) = script_account(s, &accounts)?;
    let root_owner = chown.then(Owner::root);

    // The OpenVPN confs first: a conflict refuses the whole install.
    let mut conf_changes = Vec::new();
    let mut conflicts = String::new();
    for conf in &s.installer.openvpn_server_conf {
        if !conf.is_absolute() {
            return Err(Error::Refused(format!("OPENVPN_SERVER_CONF: {} is not an absolute path", conf.display())));
        }
        let path = layout.at(conf);
        let text = fs::read_to_string(&path).map_err(path_error("OPENVPN_SERVER_CONF names", &path))?;
        match conf::patch(&text, desired.force) {
            conf::Patch::Unchanged => {}
            conf::Patch::Changed { text, notes } => {
                plan.notes.extend(notes.into_iter().map(|n| format!("{}: {n}", path.display())));
                conf_changes.push(conf_change(&path, text, chown, "telemetry hooks")?);
            }
            conf::Patch::Conflict(lines) => {
                for l in lines {
                    let _ = writeln!(conflicts, "  {}: {l}", path.display());
                }
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(Error::Refused(format!("refusing to install, nothing was changed:\n{}", conflicts.trim_end())));
    }

    // The agent's user, member of the hooks' group.
    let manage = chown && accounts.manageable(&layout.root);
    let agent_exists = accounts.uid(AGENT_USER).is_some();
    let agent_group = if agent_exists || manage { AGENT_USER } else { "root" };
    if !agent_exists && manage {
        let what = format!("create system user {AGENT_USER} (own group, member of {script_group})");
        plan.changes.push(Change { action: Action::Run(accounts.useradd(&script_group)), what });
    } else if !agent_exists {
        plan.notes.push(format!(
            "user {AGENT_USER} not created (no account files below {}); on the target run: {}",
            layout.root.display(),
            Accounts::for_root(Path::new("/")).useradd(&script_group).join(" ")
        ));
    } else if !accounts.is_member(AGENT_USER, &script_group) {
        let argv = accounts.usermod_append(&script_group);
        if manage {
            let what = format!("add user {AGENT_USER} to group {script_group}");
            plan.changes.push(Change { action: Action::Run(argv), what });
        } else {
            plan.notes.push(format!("user {AGENT_USER} is not in group {script_group}: run {}", argv.join(" ")));
        }
    }

    // Settings: agent.env for the agent, agent.hook.env for the hooks.
    plan.add(plan::dir(&layout.at(ETC_DIR), 0o755, root_owner.clone(), &accounts));
    let env = layout.at(ENV_OVERRIDES);
    if let Ok(m) = fs::symlink_metadata(&env)
        && m.is_file()
        && m.mode() & 0o077 != 0
    {
        let what = format!("fix  {} ({:04o} -> 0600: it may hold AUTH_HEADER)", env.display(), m.mode() & 0o7777);
        plan.changes.push(Change { action: Action::Meta { path: env, mode: 0o600, owner: None }, what });
    }
    let agent_owner = chown.then(|| Owner { user: Who::Id(0), group: Who::Name(agent_group.into()) });
    let why = "defaults + .env";
    plan.add(plan::file(&layout.at(AGENT_ENV), desired.text.into_bytes(), 0o640, agent_owner.clone(), &accounts, why));
    plan_key(&mut plan, layout, s, agent_owner, &accounts)?;
    let hook_env = crate::config::hook_companion(&layout.at(AGENT_ENV));
    let hook_text = envfile::hook_env(s).into_bytes();
    plan.add(plan::file(&hook_env, hook_text, 0o644, root_owner.clone(), &accounts, "hooks' settings"));

    // The spool (see docs/security.md, "Files, owners and modes"): the agent owns the
    // directories; the hooks' group may add files (setgid, so they all
    // share that group) but, by the sticky bit, never rename or delete a
    // directory or a file it did not make; failed/ is the agent's alone.
    // Only the directories are managed, never the files in them.
    let agent_name = if agent_exists || manage { AGENT_USER } else { "root" };
    let spool_owner = chown.then(|| Owner::names(agent_name, &script_group));
    let failed_owner = chown.then(|| Owner::names(agent_name, agent_group));
    let allowed: Vec<u32> = [accounts.uid(&script_user), accounts.uid(AGENT_USER)].into_iter().flatten().collect();
    let spool = layout.at(&s.spool.spool_dir);
    for (dir, mode, owner) in [
        (spool.clone(), SPOOL_MODE, &spool_owner),
        (spool.join(crate::spool::PENDING), SPOOL_MODE, &spool_owner),
        (spool.join(crate::spool::FAILED), crate::spool::FAILED_MODE, &failed_owner),
    ] {
        plan.add(plan::spool_dir(&dir, mode, owner.clone(), &accounts, &allowed)?);
        if chown {
            plan.changes.extend(spool_file_fixes(&dir, &script_user, &script_group, &accounts));
        }
    }
    if chown {
        let owners = [(crate::spool::QUEUE_LOCK, &spool_owner), (crate::spool::AGENT_LOCK, &failed_owner)];
        plan.changes.extend(control_files(&spool, owners, &accounts));
    }
    if !agent_exists && !manage && chown {
        plan.notes.push(format!("the spool is root's until user {AGENT_USER} exists; then run install again"));
    }

    if let Some(old) = &desired.old_spool {
        let pending = layout.at(old).join(crate::spool::PENDING);
        let chunks = fs::read_dir(&pending).map(|d| d.count()).unwrap_or(0);
        if chunks > 0 || layout.at(old).join(crate::spool::QUEUE).exists() {
            plan.notes.push(format!(
                "SPOOL_DIR moves from {} to {}: the old spool still holds {chunks} chunk(s) (and maybe queue.log); \
                 move {}/* into {} and the agent delivers them",
                old.display(),
                s.spool.spool_dir.display(),
                pending.display(),
                spool.join(crate::spool::PENDING).display()
            ));
        }
    }

    // The binary and its names: `make install` copies this program to
    // /usr/local/sbin; the package's binary and its /usr/sbin names are
    // dpkg's, and only the hooks' links are made (see package.rs).
    let dirs: &[&str] = match mode {
        Mode::Local => &["/usr/local/sbin", "/etc/openvpn", SCRIPTS_DIR, "/etc/systemd/system"],
        Mode::Package => &["/etc/openvpn", SCRIPTS_DIR],
    };
    for d in dirs {
        plan.add(traversable_dir(&layout.at(d), root_owner.clone(), &accounts));
    }
    let mut restart = false;
    if mode == Mode::Local {
        let bytes = this_binary()?;
        let bin_change = plan::file(&layout.at(unit::BIN), bytes, 0o755, root_owner.clone(), &accounts, "this binary");
        restart = bin_change.is_some();
        plan.add(bin_change);
        manpage::plan_install(layout, &mut plan, root_owner.clone(), &accounts);
    }
    for l in mode.links() {
        plan.add(plan::link(&layout.at(l), Path::new(mode.bin())));
    }

    // The unit (make install) or the package unit's drop-in, and the conf
    // lines last (hooks exist by then). An earlier make install goes only
    // after the hooks point at the package's binary: no hook ever finds
    // nothing at its path.
    let reload = match mode {
        Mode::Local => {
            let unit_text = unit::render(s, &script_group).into_bytes();
            let unit_change =
                plan::file(&layout.at(unit::UNIT_PATH), unit_text, 0o644, root_owner, &accounts, "systemd unit");
            let reload = unit_change.is_some();
            plan.add(unit_change);
            reload
        }
        Mode::Package => {
            let took_over = package::remove_local_copy(layout, &mut plan, true);
            package::remove_purge_helper(layout, &mut plan);
            let dropin = unit::dropin(s, &script_group);
            let changed = package::plan_dropin(layout, &mut plan, dropin, root_owner, &accounts);
            restart = took_over;
            changed || took_over
        }
    };
    let confs_changed = !conf_changes.is_empty();
    plan.changes.extend(conf_changes);

    let settings_changed =
        plan.changes.iter().any(|c| matches!(&c.action, Action::File { path, .. } if path.ends_with("agent.env")));
    match mode {
        Mode::Local => plan_service_start(layout, &mut plan, reload, restart || reload || settings_changed),
        // A make install agent it took over from is started as the
        // package's at once; otherwise dpkg starts it.
        Mode::Package if restart => package::plan_service(layout, &mut plan, reload, false, true),
        Mode::Package => package::plan_service(layout, &mut plan, reload, reload || settings_changed, false),
    }
    if s.installer.openvpn_server_conf.is_empty() {
        let mut h =
            "OPENVPN_SERVER_CONF is not set: add these lines to your OpenVPN server conf, then restart OpenVPN:"
                .to_string();
        for l in conf::wanted_lines() {
            let _ = write!(h, "\n    {l}");
        }
        plan.hints.push(h);
    } else if confs_changed {
        plan.hints
            .push("restart OpenVPN to run the hooks: systemctl restart openvpn-server@NAME (or openvpn@NAME)".into());
    }
    plan.hints.extend(textfile::offer(layout, s));
    Ok(plan)
}

/// The pseudonym key (`PSEUDONYM_KEY_FILE`), made where missing from 32
/// random bytes of the OS, 0640 root:the agent's group: the agent reads it,
/// the hooks' user never. An existing key is kept as it is (an upgrade must
/// not change every pseudonym; a fleet's shared key was copied there), only
/// its mode and owner are put right.
fn plan_key(
    plan: &mut Plan,
    layout: &Layout,
    s: &Settings,
    owner: Option<Owner>,
    accounts: &Accounts,
) -> Result<(), Error> {
    let path = layout.at(&s.privacy.key_file);
    let show = owner.as_ref().map(|o| format!(" {o}")).unwrap_or_default();
    match fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => {
            if m.mode() & 0o7777 != 0o640 || plan::owner_differs(&m, owner.as_ref(), accounts) {
                let what =
                    format!("fix  {} ({:04o} -> 0640{show}: the pseudonym key)", path.display(), m.mode() & 0o7777);
                plan.changes.push(Change { action: Action::Meta { path, mode: 0o640, owner }, what });
            }
        }
        Ok(_) => {
            return Err(Error::Refused(format!(
                "refusing to install, nothing was changed: PSEUDONYM_KEY_FILE={} is not a regular file; \
                 move it away and run install again",
                path.display()
            )));
        }
        Err(_) => {
            let in_etc = s.privacy.key_file.parent() == Some(Path::new(ETC_DIR));
            if !in_etc && !path.parent().is_some_and(Path::is_dir) {
                plan.notes.push(format!(
                    "PSEUDONYM_KEY_FILE={}: its directory does not exist; no key made",
                    s.privacy.key_file.display()
                ));
                return Ok(());
            }
            let data = crate::privacy::Key::generate().map_err(Error::Refused)?.to_vec();
            let what = format!("write {} (0640{show}; the pseudonym key, 32 random bytes)", path.display());
            let action = Action::File { path, data, mode: 0o640, owner, backup: None };
            plan.changes.push(Change { action, what });
        }
    }
    Ok(())
}

/// The agent's control files, made in place (the agent's, so the hooks'
/// user can neither chmod nor replace them) where missing: `queue.lock`
/// (0660, the hooks' group), `agent.lock` (0600) and, on a spool that
/// never had a counter, `seq.counter`. Existing ones are the agent's to
/// check (it sets aside a bad one); `check` reports them.
fn control_files(spool: &Path, owners: [(&str, &Option<Owner>); 2], accounts: &Accounts) -> Vec<Change> {
    let missing = |name: &str| matches!(fs::symlink_metadata(spool.join(name)), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
    let mut out = Vec::new();
    for (name, owner) in owners {
        let mode = if name == crate::spool::AGENT_LOCK { 0o600 } else { 0o660 };
        if missing(name) {
            out.extend(plan::file(&spool.join(name), Vec::new(), mode, owner.clone(), accounts, "the agent's"));
        }
    }
    if missing(crate::spool::COUNTER) && missing(crate::spool::SEQ) {
        let owner = owners[0].1.clone();
        let header = crate::spool::counter_header(0);
        out.extend(plan::file(&spool.join(crate::spool::COUNTER), header, 0o660, owner, accounts, "the agent's"));
    }
    out
}

/// The spool files hooks write (as root, under an older configuration).
const HOOK_FILES: &[&str] =
    &[crate::spool::QUEUE, crate::spool::QUEUE_LOCK, crate::spool::SEQ, crate::spool::COUNTER, crate::spool::DROPPED];

/// Files the hooks' user (or root) wrote in an older layout that the agent
/// could not read: given the spool's group, read and write for it. The
/// agent's own files are never touched, so a second install after the
/// agent ran plans nothing. Planned from `lstat` (a link or FIFO is never a
/// candidate) and applied through handles ([`Action::SpoolFile`]).
fn spool_file_fixes(dir: &Path, user: &str, group: &str, accounts: &Accounts) -> Vec<Change> {
    let (Some(gid), Some(hook_uid)) = (accounts.gid(group), accounts.uid(user)) else { return Vec::new() };
    let Some(entries) = fs::symlink_metadata(dir).ok().filter(|m| m.is_dir()).and_then(|_| fs::read_dir(dir).ok())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Ok(m) = fs::symlink_metadata(e.path()) else { continue };
        let Some(name) = e.file_name().to_str().map(str::to_string) else { continue };
        // Root's files only under the names the hooks write (hooks run as
        // root by an older configuration): any other root file here (a
        // source's state, one an operator made) was never the hooks', and
        // widening it would hand what it holds to the hooks' user.
        let hooks_file = m.uid() == hook_uid || (m.uid() == 0 && HOOK_FILES.contains(&name.as_str()));
        if !m.is_file() || m.nlink() != 1 || !hooks_file || (m.gid() == gid && m.mode() & 0o060 == 0o060) {
            continue;
        }
        let mode = (m.mode() & 0o777) | 0o660;
        let what = format!("fix  {} (group {group}, {mode:04o}, for the agent)", e.path().display());
        let action = Action::SpoolFile { dir: dir.into(), name, uid: m.uid(), gid, mode };
        out.push(Change { action, what });
    }
    out
}

/// A directory the hooks' user must be able to pass through: created 0755,
/// or given the missing search bits.
fn traversable_dir(path: &Path, owner: Option<Owner>, accounts: &Accounts) -> Option<Change> {
    match fs::metadata(path) {
        Ok(m) if m.mode() & 0o011 == 0o011 => None,
        Ok(m) => {
            let mode = (m.mode() & 0o7777) | 0o011;
            let what = format!(
                "fix  {} ({:04o} -> {mode:04o}: the hooks' user must reach the scripts)",
                path.display(),
                m.mode() & 0o7777
            );
            Some(Change { action: Action::Meta { path: path.into(), mode, owner: None }, what })
        }
        Err(_) => plan::dir(path, 0o755, owner, accounts),
    }
}

pub(crate) fn systemctl(args: &[&str]) -> Vec<String> {
    std::iter::once("systemctl").chain(args.iter().copied()).map(String::from).collect()
}

fn systemctl_ok(args: &[&str]) -> bool {
    std::process::Command::new("systemctl").args(args).output().is_ok_and(|o| o.status.success())
}

fn plan_service_start(layout: &Layout, plan: &mut Plan, reload: bool, restart: bool) {
    let name = unit::UNIT_NAME;
    if !layout.systemd_running() {
        let why = if layout.staged() { "this is a staging root" } else { "systemd is not running here" };
        plan.hints.push(format!(
            "{why}; to start the agent on the target run: systemctl daemon-reload && systemctl enable --now {name}"
        ));
        return;
    }
    if reload {
        plan.changes.push(Change {
            action: Action::Run(systemctl(&["daemon-reload"])),
            what: "systemctl daemon-reload".into(),
        });
    }
    if !systemctl_ok(&["is-enabled", "--quiet", name]) {
        plan.changes.push(Change {
            action: Action::Run(systemctl(&["enable", "--now", name])),
            what: format!("systemctl enable --now {name}"),
        });
    } else if restart || !systemctl_ok(&["is-active", "--quiet", name]) {
        plan.changes.push(Change {
            action: Action::Run(systemctl(&["restart", name])),
            what: format!("systemctl restart {name}"),
        });
    }
}

/// Prints the plan, applies it unless `dry_run`, and says what happened.
fn carry_out(verb: &'static str, layout: &Layout, plan: Plan, dry_run: bool) -> Result<ExitCode, Error> {
    let accounts = Accounts::for_root(&layout.root);
    let where_ = if layout.staged() { format!(" below {}", layout.root.display()) } else { String::new() };
    let version = env!("CARGO_PKG_VERSION");
    if plan.changes.is_empty() {
        println!("openvpn-telemetry {version}: {verb}{where_}: nothing to change");
    } else {
        let head = if dry_run { "would" } else { "doing" };
        println!("openvpn-telemetry {version}: {verb}{where_} ({head}):");
    }
    for c in &plan.changes {
        println!("  {}", c.what);
        if !dry_run {
            c.apply(&accounts).map_err(|source| Error::Stopped { verb, source })?;
        }
    }
    for n in &plan.notes {
        println!("note: {n}");
    }
    if !plan.changes.is_empty() {
        for h in &plan.hints {
            println!("next: {h}");
        }
        let n = plan.changes.len();
        if dry_run {
            println!("dry run: {n} change(s) planned; nothing was changed");
        } else {
            println!("done: {n} change(s)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn install(args: &InstallArgs) -> Result<ExitCode, Error> {
    let layout = Layout::new(args.root.as_deref());
    let mode = Mode::detect(args.package, &layout);
    let chown = require_root(&layout, args.dry_run, "install")?;
    let plan = plan_install(&layout, chown, mode)?;
    carry_out(verb("install", mode), &layout, plan, args.dry_run)
}

pub fn uninstall(args: &UninstallArgs) -> Result<ExitCode, Error> {
    let layout = Layout::new(args.root.as_deref());
    let mode = Mode::detect(args.package, &layout);
    if mode == Mode::Package && !args.package {
        return Err(Error::Refused(
            "this is the Debian package's binary: remove it with apt remove openvpn-telemetry \
             (keeps the spool and the settings) or apt purge openvpn-telemetry (removes everything)"
                .into(),
        ));
    }
    let chown = require_root(&layout, args.dry_run, "uninstall")?;
    let plan = uninstall::plan(&layout, args.purge, chown, mode)?;
    carry_out(verb("uninstall", mode), &layout, plan, args.dry_run)
}

fn verb(verb: &'static str, mode: Mode) -> &'static str {
    match (verb, mode) {
        ("install", Mode::Package) => "install --package",
        ("uninstall", Mode::Package) => "uninstall --package",
        _ => verb,
    }
}
