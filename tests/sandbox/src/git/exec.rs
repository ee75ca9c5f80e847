//! Running the `git` command line: found once on PATH, run with a private environment, its
//! combined output kept, and failures worded as Kargo's exec helper words them.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The `git` binary on PATH, or why there is none (said once, in the log).
pub fn git_binary() -> Result<&'static Path, String> {
    static GIT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    GIT.get_or_init(|| {
        let found = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("git"))
                .find(|p| p.is_file())
        });
        match found {
            Some(p) => Ok(p),
            None => {
                let msg = "git is not on PATH: the sandbox cannot serve Git repositories or run \
                           Git promotion steps (install git to use them)"
                    .to_string();
                tracing::warn!("{msg}");
                Err(msg)
            }
        }
    })
    .as_ref()
    .map(PathBuf::as_path)
    .map_err(Clone::clone)
}

/// `git http-backend` as a program of its own (`<exec-path>/git-http-backend`), which
/// spares each served request the `git` dispatcher; the dispatcher when it is not there.
pub fn http_backend() -> Result<(PathBuf, Option<&'static str>), String> {
    static BACKEND: OnceLock<Option<PathBuf>> = OnceLock::new();
    let git = git_binary()?;
    let direct = BACKEND.get_or_init(|| {
        let out = Command::new(git).arg("--exec-path").output().ok()?;
        let dir = String::from_utf8(out.stdout).ok()?;
        let program = Path::new(dir.trim()).join("git-http-backend");
        program.is_file().then_some(program)
    });
    Ok(match direct {
        Some(p) => (p.clone(), None),
        None => (git.to_path_buf(), Some("http-backend")),
    })
}

/// A failed command, as Kargo's `exec.ExitError` prints it.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecError {
    /// The command line as Go's `Cmd.String()` renders it.
    pub command: String,
    /// Standard output and error, interleaved.
    pub output: String,
    /// The exit code, or -1 when the command could not run at all.
    pub code: i32,
}

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error executing cmd [{}]: {}", self.command, self.output)
    }
}

/// Settings every `git` the sandbox runs gets (through `GIT_CONFIG_*`): no background
/// maintenance or garbage collection spawned after commits, fetches and pushes, and no
/// fsync, as the sandbox's repositories are scratch data. None changes what a command does.
pub const QUIET_CONFIG: &[(&str, &str)] = &[
    ("maintenance.auto", "false"),
    ("gc.auto", "0"),
    ("receive.autogc", "false"),
    ("core.fsync", "none"),
];

/// [`QUIET_CONFIG`] as the environment variables that carry it.
pub fn quiet_config_env() -> Vec<(String, String)> {
    let mut env = vec![(
        "GIT_CONFIG_COUNT".to_string(),
        QUIET_CONFIG.len().to_string(),
    )];
    for (i, (key, value)) in QUIET_CONFIG.iter().enumerate() {
        env.push((format!("GIT_CONFIG_KEY_{i}"), key.to_string()));
        env.push((format!("GIT_CONFIG_VALUE_{i}"), value.to_string()));
    }
    env
}

/// One `git` invocation: arguments, working directory and a private environment (no
/// inherited Git configuration, no terminal prompts).
pub struct Git {
    args: Vec<String>,
    dir: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl Git {
    pub fn new<I, S>(args: I) -> Git
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Git {
            args: args.into_iter().map(|a| a.as_ref().to_string()).collect(),
            dir: None,
            env: Vec::new(),
        }
    }

    pub fn dir(mut self, dir: impl AsRef<Path>) -> Git {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Git {
        self.env.push((
            key.to_string(),
            value.as_ref().to_string_lossy().into_owned(),
        ));
        self
    }

    /// Runs the command; `Ok` carries the combined output.
    pub fn run(self) -> Result<String, ExecError> {
        let git = git_binary().map_err(|e| ExecError {
            command: format!("git {}", self.args.join(" ")),
            output: e,
            code: -1,
        })?;
        let command = format!("{} {}", git.display(), self.args.join(" "));
        let fail = |e: std::io::Error| ExecError {
            command: command.clone(),
            output: e.to_string(),
            code: -1,
        };
        let (mut reader, writer) = std::io::pipe().map_err(fail)?;
        let mut cmd = Command::new(git);
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .envs(quiet_config_env())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(writer.try_clone().map_err(fail)?)
            .stderr(writer);
        if let Some(d) = &self.dir {
            cmd.current_dir(d);
        }
        let mut child = cmd.spawn().map_err(fail)?;
        // The command holds the only write ends now; reading ends when it exits.
        drop(cmd);
        let mut out = Vec::new();
        let read = reader.read_to_end(&mut out);
        let status = child.wait().map_err(fail)?;
        read.map_err(fail)?;
        let output = String::from_utf8_lossy(&out).into_owned();
        if status.success() {
            Ok(output)
        } else {
            Err(ExecError {
                command,
                output,
                code: status.code().unwrap_or(-1),
            })
        }
    }
}
