//! Parsing the command line from `std::env::args_os`, by hand.

use std::ffi::OsString;
use std::path::PathBuf;

use super::CliError;
use super::commands::{command_named, duration, flags};

/// A microsandbox home and how it was chosen (`--home` is
/// [`HomeSource::Given`](sandbox_sweep::home::HomeSource::Given)): the
/// library's, so that nothing here resolves one.
pub type Home = sandbox_sweep::home::MsbHome;

/// A sweep's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepArgs {
    /// The home the paths not given came from.
    pub home: Option<Home>,
    /// `--run-dir` or `--sandboxes-dir` was given.
    pub dirs_given: bool,
    pub db: PathBuf,
    pub sandboxes_dir: PathBuf,
    pub run_dir: Option<PathBuf>,
    pub force: bool,
    pub dry_run: bool,
    pub max_active: Option<usize>,
    pub max_ephemeral: Option<usize>,
    pub budget_ms: Option<u64>,
    /// `--metrics FILE`: the Prometheus text file to replace.
    pub metrics: Option<PathBuf>,
    pub json: bool,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Init {
        home: Option<Home>,
        db: PathBuf,
    },
    Sweep(SweepArgs),
    Status {
        home: Option<Home>,
        db: PathBuf,
        run_dir: Option<PathBuf>,
        sandboxes_dir: Option<PathBuf>,
        json: bool,
        all: bool,
    },
    Orphans {
        home: Option<Home>,
        /// `--run-dir` or `--sandboxes-dir` was given.
        dirs_given: bool,
        db: PathBuf,
        sandboxes_dir: PathBuf,
        run_dir: Option<PathBuf>,
        budget_ms: Option<u64>,
        json: bool,
        /// `--remove`, with its grace period (`--older-than`, default 1 h).
        remove: Option<std::time::Duration>,
        /// `--all`: every lock file on its own line, not summed.
        all: bool,
    },
    Demo {
        keep: Option<PathBuf>,
    },
    /// The help: everything, or one command's.
    Help(Option<&'static str>),
    Version,
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub command: Command,
    pub verbose: bool,
}

fn usage(msg: String) -> CliError {
    CliError::Usage(msg)
}

/// Flags as given: `(name, value)`, each at most once, and microsandbox's
/// home when no `--db` names the catalog.
struct Given {
    command: &'static str,
    flags: Vec<(&'static str, Option<OsString>)>,
    /// `$MSB_HOME` (verbatim), else `$HOME/.microsandbox`; `None` when
    /// neither variable is set.
    default_home: Option<Home>,
}

impl Given {
    fn switch(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _)| *n == name)
    }

    fn value(&self, name: &str) -> Option<OsString> {
        self.flags
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.clone())
    }

    fn path(&self, name: &str) -> Result<PathBuf, CliError> {
        self.value(name)
            .map(PathBuf::from)
            .ok_or_else(|| usage(format!("`{}` needs {name}", self.command)))
    }

    fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, CliError> {
        let Some(raw) = self.value(name) else {
            return Ok(None);
        };
        raw.to_str()
            .and_then(|s| s.parse::<T>().ok())
            .map(Some)
            .ok_or_else(|| {
                usage(format!(
                    "{name} expects a non-negative integer, got {raw:?}"
                ))
            })
    }
}

impl Given {
    /// `--remove` and its grace period; `--older-than` alone is a mistake.
    fn remove(&self) -> Result<Option<std::time::Duration>, CliError> {
        let older = match self.value("--older-than") {
            None => None,
            Some(raw) => Some(raw.to_str().and_then(duration).ok_or_else(|| {
                usage(format!(
                    "--older-than expects a duration such as 30s, 15m, 1h or 2d, got {raw:?}"
                ))
            })?),
        };
        match (self.switch("--remove"), older) {
            (true, older) => Ok(Some(older.unwrap_or(std::time::Duration::from_secs(3600)))),
            (false, Some(_)) => Err(usage("--older-than needs --remove".into())),
            (false, None) => Ok(None),
        }
    }
}

impl Given {
    /// Records flag `text` of command `cmd`, taking its value from `--f=v`
    /// or from the next argument.
    fn take(
        &mut self,
        text: &str,
        rest: &mut impl Iterator<Item = OsString>,
    ) -> Result<(), CliError> {
        let cmd = self.command;
        let (name, inline) = match text.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(OsString::from(value))),
            _ => (text, None),
        };
        let Some(&(flag, takes_value)) = flags(cmd).iter().find(|(f, _)| *f == name) else {
            return Err(usage(format!("unknown argument `{text}` for `{cmd}`")));
        };
        if self.flags.iter().any(|(f, _)| *f == flag) {
            return Err(usage(format!("{flag} given twice")));
        }
        let value = match (takes_value, inline) {
            (true, Some(value)) => Some(value),
            (true, None) => Some(
                rest.next()
                    .ok_or_else(|| usage(format!("{flag} needs a value")))?,
            ),
            (false, None) => None,
            (false, Some(_)) => return Err(usage(format!("{flag} takes no value"))),
        };
        self.flags.push((flag, value));
        Ok(())
    }

    /// microsandbox's home: `--home`, else (without `--db`) the default.
    fn home(&self) -> Result<Option<Home>, CliError> {
        if let Some(home) = self.value("--home") {
            return Ok(Some(Home::at(home)));
        }
        if self.value("--db").is_some() {
            return Ok(None);
        }
        match &self.default_home {
            Some(home) => Ok(Some(home.clone())),
            None => Err(usage(format!(
                "`{}` needs --db or --home ($MSB_HOME and $HOME are not set)",
                self.command
            ))),
        }
    }

    /// `flag`'s path, else the home's (`part`), else a usage error.
    fn path_or_home(
        &self,
        flag: &str,
        home: Option<&Home>,
        part: fn(&Home) -> PathBuf,
    ) -> Result<PathBuf, CliError> {
        match (self.value(flag), home) {
            (Some(path), _) => Ok(path.into()),
            (None, Some(home)) => Ok(part(home)),
            (None, None) => self.path(flag),
        }
    }

    /// Whether `--run-dir` or `--sandboxes-dir` names a directory.
    fn dirs_given(&self) -> bool {
        self.switch("--run-dir") || self.switch("--sandboxes-dir")
    }

    /// `--run-dir`, else the home's, else none.
    fn run_dir(&self, home: Option<&Home>) -> Option<PathBuf> {
        match (self.value("--run-dir"), home) {
            (Some(dir), _) => Some(dir.into()),
            (None, home) => home.map(Home::run_dir),
        }
    }

    /// The command the flags describe, with required flags checked.
    fn command(&self) -> Result<Command, CliError> {
        let given_home = self.home()?;
        let home = given_home.as_ref();
        Ok(match self.command {
            "init" => Command::Init {
                db: self.path_or_home("--db", home, Home::catalog_path)?,
                home: given_home,
            },
            "status" => Command::Status {
                home: given_home.clone(),
                db: self.path_or_home("--db", home, Home::catalog_path)?,
                run_dir: self.run_dir(home),
                sandboxes_dir: self
                    .value("--sandboxes-dir")
                    .map(PathBuf::from)
                    .or_else(|| home.map(Home::sandboxes_dir)),
                json: self.switch("--json"),
                all: self.switch("--all"),
            },
            "orphans" => Command::Orphans {
                home: given_home.clone(),
                dirs_given: self.dirs_given(),
                db: self.path_or_home("--db", home, Home::catalog_path)?,
                sandboxes_dir: self.path_or_home("--sandboxes-dir", home, Home::sandboxes_dir)?,
                run_dir: self.run_dir(home),
                budget_ms: self.number("--budget-ms")?,
                json: self.switch("--json"),
                remove: self.remove()?,
                all: self.switch("--all"),
            },
            "demo" => Command::Demo {
                keep: self.value("--keep").map(PathBuf::from),
            },
            _ if self.switch("--dry-run") && self.switch("--metrics") => {
                return Err(usage(
                    "--metrics records a sweep, and --dry-run writes nothing".into(),
                ));
            }
            _ => Command::Sweep(SweepArgs {
                home: given_home.clone(),
                dirs_given: self.dirs_given(),
                db: self.path_or_home("--db", home, Home::catalog_path)?,
                sandboxes_dir: self.path_or_home("--sandboxes-dir", home, Home::sandboxes_dir)?,
                run_dir: self.run_dir(home),
                force: self.switch("--force"),
                dry_run: self.switch("--dry-run"),
                max_active: self.number("--max-active")?,
                max_ephemeral: self.number("--max-ephemeral")?,
                budget_ms: self.number("--budget-ms")?,
                metrics: self.value("--metrics").map(PathBuf::from),
                json: self.switch("--json"),
            }),
        })
    }
}

impl Args {
    /// Whether the command prints JSON.
    pub fn json(&self) -> bool {
        match &self.command {
            Command::Sweep(args) => args.json,
            Command::Status { json, .. } | Command::Orphans { json, .. } => *json,
            _ => false,
        }
    }

    /// Parses the arguments after the program name, with microsandbox's
    /// home from this process's environment.
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, CliError> {
        Args::parse_with(args, Home::from_env().ok())
    }

    /// Parses the arguments after the program name, with `default_home`
    /// for a command given neither `--db` nor `--home`.
    pub fn parse_with(
        args: impl IntoIterator<Item = OsString>,
        default_home: Option<Home>,
    ) -> Result<Args, CliError> {
        let mut args = args.into_iter();
        let mut verbose = false;
        let mut given: Option<Given> = None;
        while let Some(arg) = args.next() {
            let Some(text) = arg.to_str() else {
                return Err(usage(format!("unexpected argument {arg:?}")));
            };
            let command = match text {
                "-v" | "--verbose" => {
                    verbose = true;
                    continue;
                }
                "-h" | "--help" => Command::Help(given.as_ref().map(|g| g.command)),
                "-V" | "--version" => Command::Version,
                _ => {
                    match &mut given {
                        Some(given) => given.take(text, &mut args)?,
                        None if text == "help" => {
                            let topic = args.next();
                            let topic = match topic.as_ref().map(|t| t.to_str()) {
                                None => None,
                                Some(Some(word)) => Some(command_named(word)?),
                                Some(None) => {
                                    return Err(usage(format!("unknown command {topic:?}")));
                                }
                            };
                            if let Some(extra) = args.next() {
                                return Err(usage(format!("unexpected argument {extra:?}")));
                            }
                            return Ok(Args {
                                command: Command::Help(topic),
                                verbose,
                            });
                        }
                        None if !text.starts_with('-') => {
                            given = Some(Given {
                                command: command_named(text)?,
                                flags: Vec::new(),
                                default_home: default_home.clone(),
                            });
                        }
                        None => return Err(usage(format!("expected a command before `{text}`"))),
                    }
                    continue;
                }
            };
            return Ok(Args { command, verbose });
        }
        let Some(given) = given else {
            return Err(usage("no command given".into()));
        };
        Ok(Args {
            command: given.command()?,
            verbose,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, CliError> {
        Args::parse_with(args.iter().map(OsString::from), None)
    }

    fn usage_message(args: &[&str]) -> String {
        match parse(args) {
            Err(CliError::Usage(msg)) => msg,
            other => panic!("expected a usage error for {args:?}, got {other:?}"),
        }
    }

    #[test]
    fn sweep_flags_parse() {
        let args = parse(&[
            "sweep",
            "--db",
            "c.db",
            "--sandboxes-dir=/s",
            "--force",
            "--max-active",
            "7",
            "--budget-ms",
            "9",
            "--json",
            "-v",
        ])
        .expect("valid");
        assert!(args.verbose);
        assert_eq!(
            args.command,
            Command::Sweep(SweepArgs {
                home: None,
                dirs_given: true,
                db: "c.db".into(),
                sandboxes_dir: "/s".into(),
                run_dir: None,
                force: true,
                dry_run: false,
                max_active: Some(7),
                max_ephemeral: None,
                budget_ms: Some(9),
                metrics: None,
                json: true,
            })
        );
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        assert_eq!(usage_message(&[]), "no command given");
        assert_eq!(usage_message(&["frob"]), "unknown command `frob`");
        assert_eq!(
            usage_message(&["init"]),
            "`init` needs --db or --home ($MSB_HOME and $HOME are not set)"
        );
        assert_eq!(usage_message(&["init", "--db"]), "--db needs a value");
        assert_eq!(
            usage_message(&["status", "--db", "x", "--force"]),
            "unknown argument `--force` for `status`"
        );
        assert_eq!(
            usage_message(&["sweep", "--db", "x"]),
            "`sweep` needs --sandboxes-dir"
        );
        assert_eq!(
            usage_message(&[
                "sweep",
                "--db",
                "x",
                "--sandboxes-dir",
                "d",
                "--max-active",
                "-1"
            ]),
            "--max-active expects a non-negative integer, got \"-1\""
        );
        assert_eq!(
            usage_message(&["init", "--db", "a", "--db", "b"]),
            "--db given twice"
        );
        assert_eq!(
            usage_message(&["sweep", "--json=yes"]),
            "--json takes no value"
        );
    }

    #[test]
    fn home_gives_every_path_and_explicit_flags_override_it() {
        let home = Some(Home::at("/msb"));
        let sweep =
            |args: &[&str]| match Args::parse_with(args.iter().map(OsString::from), home.clone()) {
                Ok(Args {
                    command: Command::Sweep(s),
                    ..
                }) => (s.db, s.sandboxes_dir, s.run_dir),
                other => panic!("{args:?}: {other:?}"),
            };
        assert_eq!(
            sweep(&["sweep"]),
            (
                "/msb/db/msb.db".into(),
                "/msb/sandboxes".into(),
                Some("/msb/run".into())
            )
        );
        assert_eq!(
            sweep(&["sweep", "--home", "/h", "--run-dir", "/r"]),
            (
                "/h/db/msb.db".into(),
                "/h/sandboxes".into(),
                Some("/r".into())
            )
        );
        // An explicit catalog without --home uses no default home.
        assert_eq!(
            sweep(&["sweep", "--db", "c.db", "--sandboxes-dir", "s"]),
            ("c.db".into(), "s".into(), None)
        );
        let status = Args::parse_with(["status"].map(OsString::from), home.clone());
        assert!(
            matches!(status, Ok(Args { command: Command::Status { ref db, .. }, .. }) if db == std::path::Path::new("/msb/db/msb.db")),
            "{status:?}"
        );
    }
}
