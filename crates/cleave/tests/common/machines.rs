//! Two "machines" building one recipe: each its own cache dir, output dir
//! and HOME, one staging root path (removed between them, as on another
//! machine). Shared by the remote-store and cache-helper tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::repo;

/// The S3 secret the machines have in their environment (it must never be
/// printed).
pub const SECRET: &str = "testing-secret-0123456789";

/// A copy of `tests/reuse/multi`, whose scripts count their runs in
/// `runs.log`, in a fresh temporary directory.
pub struct Machines {
    /// The temporary directory holding everything.
    pub tmp: tempfile::TempDir,
    /// The recipe copy.
    pub recipe: PathBuf,
}

impl Machines {
    /// A fresh copy of the recipe.
    pub fn new() -> Machines {
        let tmp = tempfile::tempdir().unwrap();
        let recipe = tmp.path().join("multi");
        std::fs::create_dir_all(&recipe).unwrap();
        let text = std::fs::read_to_string(repo().join("tests/reuse/multi/recipe.yaml"));
        std::fs::write(recipe.join("recipe.yaml"), text.unwrap()).unwrap();
        Machines { tmp, recipe }
    }

    /// A path in the temporary directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `cleave ARGS` as machine `machine` runs it: its own cache dir and
    /// HOME; the S3 credentials in its environment.
    pub fn cleave(&self, machine: &str, args: &[&str]) -> Output {
        self.cleave_with(machine, args, &[])
    }

    /// [`Machines::cleave`] with more environment variables.
    pub fn cleave_with(&self, machine: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(machine, args, env)
            .output()
            .expect("run cleave")
    }

    /// The command [`Machines::cleave_with`] runs, for a caller that runs
    /// it its own way.
    pub fn command(&self, machine: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
        let home = self.path(&format!("home-{machine}"));
        std::fs::create_dir_all(&home).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_cleave"));
        command
            .args(args)
            .arg("--cache-dir")
            .arg(self.path(&format!("cache-{machine}")))
            .env("HOME", &home)
            .env("AWS_ACCESS_KEY_ID", "testing-key")
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .current_dir(self.tmp.path());
        command
    }

    /// `cleave build` on machine `machine` into `out-MACHINE`.
    pub fn build(&self, machine: &str, extra: &[&str]) -> Output {
        self.build_with(machine, extra, &[])
    }

    /// The arguments of [`Machines::build`].
    pub fn build_args(&self, machine: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "build",
            "--recipe",
            &self.recipe.display().to_string(),
            "--output-dir",
            &self.path(&format!("out-{machine}")).display().to_string(),
            "--staging-root",
            &self.path("stg").display().to_string(),
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }

    /// [`Machines::build`] with more environment variables.
    pub fn build_with(&self, machine: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let args = self.build_args(machine, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.cleave_with(machine, &args, env)
    }

    /// How many scripts ran so far.
    pub fn runs(&self) -> usize {
        std::fs::read_to_string(self.path("runs.log"))
            .unwrap_or_default()
            .lines()
            .count()
    }
}

/// Every archive of an output channel, by file name, with its bytes.
pub fn archives(channel: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    for subdir in ["noarch", "linux-64"] {
        for entry in std::fs::read_dir(channel.join(subdir))
            .into_iter()
            .flatten()
        {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".conda") {
                found.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    found
}
