//! Publishing to a package server through rattler_upload, the conda
//! ecosystem's upload crate: the server indexes what it receives.
//!
//! quetz is tested here against a real quetz server; prefix.dev,
//! anaconda.org and Artifactory take the same path through rattler_upload
//! but cannot be reached from the test machines, so they are not tested
//! here. API keys come from the variables rattler-build's `upload` reads,
//! else from rattler's authentication storage (`rattler auth login`);
//! they are never printed.

use rattler_networking::AuthenticationStorage;
use rattler_upload::upload::opt::{
    AnacondaData, ArtifactoryData, AttestationSource, ForceOverwrite, PrefixData, QuetzData,
    SkipExisting,
};

use super::Server;
use crate::error::ChannelError;
use crate::package::PackageFile;

/// A variable that is set and not empty.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Uploads `files` to `server`.
pub fn publish(server: &Server, files: &[PackageFile], force: bool) -> Result<(), ChannelError> {
    let shown = super::Target::Server(server.clone()).to_string();
    let secrets: Vec<String> = [
        "QUETZ_API_KEY",
        "PREFIX_API_KEY",
        "ANACONDA_API_KEY",
        "ARTIFACTORY_TOKEN",
        "ARTIFACTORY_PASSWORD",
    ]
    .iter()
    .filter_map(|v| var(v))
    .collect();
    let failed = |reason: String| ChannelError::Remote {
        target: shown.clone(),
        reason: secrets
            .iter()
            .fold(reason, |text, secret| text.replace(secret, "***")),
    };
    let storage = AuthenticationStorage::from_env_and_defaults()
        .map_err(|e| failed(format!("reading the authentication storage: {e}")))?;
    let paths: Vec<std::path::PathBuf> = files.iter().map(|f| f.path.clone()).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ChannelError::io("starting the async runtime"))?;
    let uploaded = runtime.block_on(async {
        match server {
            Server::Quetz { server, channel } => {
                let data = QuetzData::new(
                    server.clone(),
                    channel.clone(),
                    var("QUETZ_API_KEY"),
                    ForceOverwrite(force),
                );
                rattler_upload::upload::upload_package_to_quetz(&storage, &paths, data)
                    .await
                    .map_err(|e| format!("{e:?}"))
            }
            Server::Prefix { server, channel } => {
                let data = PrefixData::new(
                    server.clone(),
                    channel.clone(),
                    var("PREFIX_API_KEY"),
                    AttestationSource::NoAttestation,
                    SkipExisting(false),
                    ForceOverwrite(force),
                    false,
                );
                rattler_upload::upload::upload_package_to_prefix(&storage, &paths, data)
                    .await
                    .map_err(|e| format!("{e:?}"))
            }
            Server::Anaconda { owner, channel } => {
                let data = AnacondaData::new(
                    owner.clone(),
                    Some(vec![channel.clone()]),
                    var("ANACONDA_API_KEY"),
                    None,
                    ForceOverwrite(force),
                );
                rattler_upload::upload::upload_package_to_anaconda(&storage, &paths, data)
                    .await
                    .map_err(|e| format!("{e:?}"))
            }
            Server::Artifactory { server, channel } => {
                let mut data = ArtifactoryData::new(server.clone(), channel.clone());
                if let Some(token) = var("ARTIFACTORY_TOKEN") {
                    data = data.with_bearer_auth(token);
                } else if let (Some(user), Some(password)) =
                    (var("ARTIFACTORY_USERNAME"), var("ARTIFACTORY_PASSWORD"))
                {
                    data = data.with_basic_auth(user, password);
                }
                rattler_upload::upload::upload_package_to_artifactory(&storage, &paths, data)
                    .await
                    .map_err(|e| format!("{e:?}"))
            }
        }
    });
    uploaded.map_err(failed)
}
