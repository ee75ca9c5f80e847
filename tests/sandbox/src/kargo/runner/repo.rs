//! Kargo's Git client behaviour on the `git` command line: a bare clone per `git-clone` in
//! its own home directory, work trees added to it, and work trees loaded back by later steps
//! from the `kargo.*` keys the clone wrote into the repository's config.

use std::path::{Path, PathBuf};

use super::creds::Credentials;
use crate::git::{ExecError, Git};

const DEFAULT_NAME: &str = "Kargo";
const DEFAULT_EMAIL: &str = "no-reply@kargo.io";
const KEY_DIR: &str = "kargo.repoDir";
const KEY_HOME: &str = "kargo.repoHomeDir";
const KEY_URL: &str = "kargo.repoOriginalURL";

/// A bare repository or one of its work trees, with what its commands need.
#[derive(Clone, Debug)]
pub struct Repo {
    pub dir: PathBuf,
    pub home: PathBuf,
    pub original_url: String,
    pub access_url: String,
    creds: Option<Credentials>,
    ca_file: PathBuf,
}

/// The author and committer of commits a clone makes.
pub struct User {
    pub name: String,
    pub email: String,
}

impl Default for User {
    fn default() -> Self {
        User {
            name: DEFAULT_NAME.into(),
            email: DEFAULT_EMAIL.into(),
        }
    }
}

/// Kargo's `setupAuth`: with a password, the username goes into an HTTP(S) URL and the
/// password is handed to Git by an askpass program.
fn access_url(url: &str, creds: Option<&Credentials>) -> String {
    let Some(c) = creds.filter(|c| !c.password.is_empty()) else {
        return url.to_string();
    };
    let lower = url.to_ascii_lowercase();
    for scheme in ["https://", "http://"] {
        if lower.starts_with(scheme) {
            let rest = &url[scheme.len()..];
            let rest = match rest.find('/') {
                Some(slash) => match rest[..slash].rfind('@') {
                    Some(at) => &rest[at + 1..],
                    None => rest,
                },
                None => rest,
            };
            return format!("{}{}@{rest}", &url[..scheme.len()], c.username);
        }
    }
    url.to_string()
}

/// `value` quoted for a Git configuration file.
fn config_value(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The global configuration Kargo sets with `git config --global` in a clone's home
/// directory (`init.defaultBranch`, the author's name and email), written as one file.
fn write_global_config(home: &Path, user: &User) -> Result<(), String> {
    let text = format!(
        "[init]\n\tdefaultBranch = main\n[user]\n\tname = {}\n\temail = {}\n",
        config_value(&user.name),
        config_value(&user.email)
    );
    std::fs::write(home.join(".gitconfig"), text)
        .map_err(|e| format!("error configuring the author: error configuring git user name: {e}"))
}

fn trimmed(r: Result<String, ExecError>) -> Result<String, ExecError> {
    r.map(|s| s.trim().to_string())
}

impl Repo {
    /// A `git` command run in this repository as Kargo runs it: its own home directory, the
    /// sandbox CA trusted, the password (if any) given through askpass.
    pub fn git<I, S>(&self, args: I) -> Git
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        command(&self.home, &self.ca_file, self.creds.as_ref(), args).dir(&self.dir)
    }

    /// `git clone --bare` of `url` into `<work_dir>/repo-<n>/repo`, with the user and the
    /// credentials configured in that home directory.
    pub fn clone_bare(
        work_dir: &Path,
        n: usize,
        url: &str,
        creds: Option<Credentials>,
        user: &User,
        ca_file: &Path,
    ) -> Result<Repo, String> {
        let home = work_dir.join(format!("repo-{n}"));
        std::fs::create_dir_all(&home)
            .map_err(|e| format!("error creating home directory for repo {url:?}: {e}"))?;
        let dir = home.join("repo");
        let repo = Repo {
            access_url: access_url(url, creds.as_ref()),
            dir: dir.clone(),
            home: home.clone(),
            original_url: url.to_string(),
            creds,
            ca_file: ca_file.to_path_buf(),
        };
        write_global_config(&home, user)?;
        repo.write_askpass()?;
        let d = dir.to_string_lossy().into_owned();
        repo.git(["clone", "--bare", &repo.access_url, &d])
            .dir(&home)
            .run()
            .map_err(|e| format!("error cloning repo {url:?} into {d:?}: {e}"))?;
        // Kargo records these keys with one `git config` each; appended to the new
        // repository's configuration as one section instead.
        let section = format!(
            "[kargo]\n\trepoDir = {}\n\trepoHomeDir = {}\n\trepoOriginalURL = {}\n",
            config_value(&d),
            config_value(&home.to_string_lossy()),
            config_value(url)
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("config"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, section.as_bytes()))
            .map_err(|e| format!("error saving repo dir as config: {e}"))?;
        Ok(repo)
    }

    /// The askpass program that answers Git's password prompt from `GIT_PASSWORD`.
    fn write_askpass(&self) -> Result<(), String> {
        if self.creds.is_none() {
            return Ok(());
        }
        let path = self.home.join("askpass.sh");
        std::fs::write(&path, "#!/bin/sh\nprintf '%s\\n' \"$GIT_PASSWORD\"\n")
            .map_err(|e| format!("error configuring the credentials: {e}"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("error configuring the credentials: {e}"))?;
        }
        Ok(())
    }

    /// Loads the work tree at `path` as Kargo's `LoadWorkTree` does, with `creds` for the
    /// commands that reach the remote.
    pub fn load_work_tree(
        path: &Path,
        creds: Option<Credentials>,
        ca_file: &Path,
    ) -> Result<Repo, String> {
        // The first command runs before the home directory is known.
        let bare = |args: &[&str]| {
            trimmed(
                Git::new(args)
                    .env("HOME", "")
                    .env("GIT_SSL_CAINFO", ca_file)
                    .dir(path)
                    .run(),
            )
        };
        // The four keys in one command; when one is missing, Kargo's reads one by one say
        // which.
        let keys = [KEY_DIR, KEY_HOME, KEY_URL, "remote.origin.url"];
        let all = bare(&[
            "config",
            "-z",
            "--get-regexp",
            r"^(kargo\.repo(dir|homedir|originalurl)|remote\.origin\.url)$",
        ])
        .unwrap_or_default();
        let mut found: Vec<Option<String>> = vec![None; keys.len()];
        for entry in all.split('\0') {
            let (key, value) = entry.split_once('\n').unwrap_or((entry, ""));
            if let Some(i) = keys.iter().position(|k| k.eq_ignore_ascii_case(key)) {
                found[i] = Some(value.to_string());
            }
        }
        let [Some(_), Some(home), Some(original_url), Some(access)] =
            found.try_into().unwrap_or([None, None, None, None])
        else {
            bare(&["config", KEY_DIR])
                .map_err(|e| format!("error reading repo dir from config: {e}"))?;
            bare(&["config", KEY_HOME])
                .map_err(|e| format!("error reading repo home dir from config: {e}"))?;
            bare(&["config", KEY_URL])
                .map_err(|e| format!("error reading URL of remote \"origin\" from config: {e}"))?;
            bare(&["config", "remote.origin.url"])
                .map_err(|e| format!("error reading URL of remote \"origin\" from config: {e}"))?;
            return Err("error reading the repository's configuration".to_string());
        };
        let repo = Repo {
            dir: path.to_path_buf(),
            home: PathBuf::from(home),
            original_url,
            access_url: access_url(&access, creds.as_ref()),
            creds,
            ca_file: ca_file.to_path_buf(),
        };
        repo.write_askpass()?;
        Ok(repo)
    }

    /// Whether the bare clone has `branch`: a bare clone holds every branch of its remote as
    /// it was when cloned, so right after the clone this answers `remote_branch_exists`
    /// without asking the remote again.
    pub fn cloned_branch_exists(&self, branch: &str) -> Result<bool, String> {
        match self
            .git([
                "show-ref",
                "--verify",
                "--quiet",
                &format!("refs/heads/{branch}"),
            ])
            .run()
        {
            Ok(_) => Ok(true),
            Err(e) if e.code == 1 => Ok(false),
            Err(e) => Err(format!(
                "error checking for existence of branch {branch:?} in remote repo {:?}: {e}",
                self.original_url
            )),
        }
    }

    /// This work tree with `creds` for the commands that reach its remote: what loading it
    /// again with them gives, without reading its configuration twice.
    pub fn with_credentials(mut self, creds: Credentials) -> Result<Repo, String> {
        self.access_url = access_url(&self.access_url, Some(&creds));
        self.creds = Some(creds);
        self.write_askpass()?;
        Ok(self)
    }

    /// `git ls-remote --heads --exit-code`.
    pub fn remote_branch_exists(&self, branch: &str) -> Result<bool, String> {
        match self
            .git([
                "ls-remote",
                "--heads",
                "--exit-code",
                &self.access_url,
                &format!("refs/heads/{branch}"),
            ])
            .run()
        {
            Ok(_) => Ok(true),
            Err(e) if e.code == 2 => Ok(false),
            Err(e) => Err(format!(
                "error checking for existence of branch {branch:?} in remote repo {:?}: {e}",
                self.original_url
            )),
        }
    }

    /// `git worktree add <path> <ref>` (or `--orphan`), refusing a path already in use.
    /// `fresh` says the bare repository has no work trees yet, so that only its own
    /// directory is in use and Git need not be asked.
    pub fn add_work_tree(
        &self,
        path: &Path,
        reference: Option<&str>,
        fresh: bool,
    ) -> Result<Repo, String> {
        let p = path.to_string_lossy().into_owned();
        let in_use = if fresh {
            path == self.dir
        } else {
            let list = self
                .git(["worktree", "list", "--porcelain"])
                .run()
                .map_err(|e| e.to_string())?;
            list.lines()
                .any(|l| l.strip_prefix("worktree ") == Some(p.as_str()))
        };
        if in_use {
            return Err(format!("working tree already exists at {p:?}"));
        }
        let mut args = vec!["worktree".to_string(), "add".into(), p.clone()];
        match reference {
            Some(r) => args.push(r.to_string()),
            None => args.push("--orphan".into()),
        }
        self.git(&args)
            .run()
            .map_err(|e| format!("error adding working tree at {p:?}: {e}"))?;
        Ok(Repo {
            dir: path.to_path_buf(),
            ..self.clone()
        })
    }

    pub fn last_commit_id(&self) -> Result<String, String> {
        trimmed(self.git(["rev-parse", "HEAD"]).run())
            .map_err(|e| format!("error obtaining ID of last commit: {e}"))
    }

    pub fn current_branch(&self) -> Result<String, String> {
        trimmed(self.git(["branch", "--show-current"]).run()).map_err(|e| {
            format!(
                "error checking current branch for repo {:?}: {e}",
                self.original_url
            )
        })
    }

    /// `git add .`
    pub fn add_all(&self) -> Result<(), String> {
        self.git(["add", "."])
            .run()
            .map(|_| ())
            .map_err(|e| format!("error staging changes for commit: {e}"))
    }

    pub fn has_diffs(&self) -> Result<bool, String> {
        self.git(["status", "-s"])
            .run()
            .map(|out| !out.is_empty())
            .map_err(|e| format!("error checking status of branch: {e}"))
    }

    pub fn commit(&self, message: &str, allow_empty: bool) -> Result<(), String> {
        let mut args = vec!["commit", "-m", message];
        if allow_empty {
            args.push("--allow-empty");
        }
        self.git(args)
            .run()
            .map(|_| ())
            .map_err(|e| format!("error committing changes: {e}"))
    }

    /// `git log -n 1 --pretty=format:%B <id> --`.
    pub fn commit_message(&self, id: &str) -> Result<String, String> {
        self.git(["log", "-n", "1", "--pretty=format:%B", id, "--"])
            .run()
            .map_err(|e| format!("error obtaining commit message for commit {id:?}: {e}"))
    }

    /// Removes the work tree from its bare repository.
    pub fn remove_work_tree(&self, bare_dir: &Path) {
        let _ = self
            .git(["worktree", "remove", "--force", &self.dir.to_string_lossy()])
            .dir(bare_dir)
            .run();
    }
}

/// A `git` command with Kargo's per-repository environment.
fn command<I, S>(home: &Path, ca_file: &Path, creds: Option<&Credentials>, args: I) -> Git
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut git = Git::new(args)
        .env("HOME", home)
        .env("GIT_SSL_CAINFO", ca_file);
    // The CA file's own directory holds nothing else: Git trusts the sandbox alone and skips
    // reading the system's CA directory on every fetch and push.
    if let Some(dir) = ca_file.parent() {
        git = git.env("GIT_SSL_CAPATH", dir);
    }
    if let Some(c) = creds.filter(|c| !c.password.is_empty()) {
        git = git
            .env("GIT_ASKPASS", home.join("askpass.sh"))
            .env("GIT_PASSWORD", &c.password);
    }
    git
}

/// `securejoin.SecureJoin`: `path` joined under `root` without ever leaving it (`..` stops
/// at the root, absolute paths count from it).
pub fn secure_join(root: &Path, path: &str) -> PathBuf {
    use std::path::Component;
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::ParentDir => {
                parts.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    let mut out = root.to_path_buf();
    out.extend(parts);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_username_goes_into_http_urls_only_with_a_password() {
        let c = Credentials {
            username: "bot".into(),
            password: "s3cret".into(),
        };
        assert_eq!(
            access_url("https://h:1/git/a.git", Some(&c)),
            "https://bot@h:1/git/a.git"
        );
        assert_eq!(access_url("https://old@h/a", Some(&c)), "https://bot@h/a");
        assert_eq!(access_url("file:///tmp/a", Some(&c)), "file:///tmp/a");
        assert_eq!(access_url("https://h/a", None), "https://h/a");
    }

    #[test]
    fn written_configuration_reads_back_through_git() {
        if crate::git::git_binary().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "git must be on PATH in CI"
            );
            eprintln!("SKIPPED: git is not on PATH");
            return;
        }
        let home = tempfile_dir();
        let user = User {
            name: "Ann \"the bot\" O'Neil # ; \\ x".into(),
            email: " spaced@example.com ".into(),
        };
        write_global_config(&home, &user).unwrap();
        let read = |key: &str| {
            Git::new(["config", "--global", key])
                .env("HOME", &home)
                .run()
                .unwrap()
        };
        assert_eq!(read("user.name"), format!("{}\n", user.name));
        assert_eq!(read("user.email"), format!("{}\n", user.email));
        assert_eq!(read("init.defaultBranch"), "main\n");
        let _ = std::fs::remove_dir_all(&home);
    }

    fn tempfile_dir() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("kargo-sandbox-repo-test-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn joins_stay_under_the_root() {
        let root = Path::new("/w");
        assert_eq!(secure_join(root, "./out"), PathBuf::from("/w/out"));
        assert_eq!(secure_join(root, "../../etc"), PathBuf::from("/w/etc"));
        assert_eq!(secure_join(root, "/abs/x"), PathBuf::from("/w/abs/x"));
        assert_eq!(secure_join(root, "a/../b"), PathBuf::from("/w/b"));
    }
}
