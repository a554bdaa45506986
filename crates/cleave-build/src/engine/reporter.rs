//! Where a build reports what it does: its [`Event`]s, and the progress of
//! the steps that move bytes (repodata, package downloads and installs,
//! cache restores and remote transfers).
//!
//! The engine draws nothing: the caller implements [`Reporter`] (progress
//! bars in a terminal, plain lines in a log, JSON lines, GitHub Actions
//! commands) and hands it to [`crate::engine::Builder::with_reporter`].
//! Progress of installs and repodata goes through rattler's own reporter
//! traits, so a display can use the implementations rattler ships.

use std::sync::Arc;

use super::Event;

/// Receives what a build does.
pub trait Reporter: Send + Sync {
    /// Something the build did or is about to do.
    fn event(&self, event: Event<'_>);

    /// Progress of package downloads, extraction and linking while an
    /// environment is installed.
    fn install(&self) -> Option<Arc<dyn rattler::install::Reporter>> {
        None
    }

    /// Progress of repodata downloads while an environment is solved.
    fn repodata(&self) -> Option<Arc<dyn rattler_repodata_gateway::Reporter>> {
        None
    }

    /// Progress of cache restores and remote transfers.
    fn cache(&self) -> Option<Arc<dyn cleave_cache::progress::Reporter>> {
        None
    }
}

/// Reports nothing: a builder without a display.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _event: Event<'_>) {}
}

/// rattler's installer takes its reporter by value: this forwards to the
/// display's shared one.
pub(crate) struct InstallForward(pub(crate) Arc<dyn rattler::install::Reporter>);

impl rattler::install::Reporter for InstallForward {
    fn on_transaction_start(
        &self,
        transaction: &rattler::install::Transaction<
            rattler_conda_types::PrefixRecord,
            rattler_conda_types::RepoDataRecord,
        >,
    ) {
        self.0.on_transaction_start(transaction)
    }
    fn on_transaction_operation_start(&self, operation: usize) {
        self.0.on_transaction_operation_start(operation)
    }
    fn on_populate_cache_start(
        &self,
        operation: usize,
        record: &rattler_conda_types::RepoDataRecord,
    ) -> usize {
        self.0.on_populate_cache_start(operation, record)
    }
    fn on_validate_start(&self, cache_entry: usize) -> usize {
        self.0.on_validate_start(cache_entry)
    }
    fn on_validate_complete(&self, validate_idx: usize) {
        self.0.on_validate_complete(validate_idx)
    }
    fn on_download_start(&self, cache_entry: usize) -> usize {
        self.0.on_download_start(cache_entry)
    }
    fn on_download_progress(&self, download_idx: usize, progress: u64, total: Option<u64>) {
        self.0.on_download_progress(download_idx, progress, total)
    }
    fn on_download_completed(&self, download_idx: usize) {
        self.0.on_download_completed(download_idx)
    }
    fn on_populate_cache_complete(&self, cache_entry: usize) {
        self.0.on_populate_cache_complete(cache_entry)
    }
    fn on_unlink_start(
        &self,
        operation: usize,
        record: &rattler_conda_types::PrefixRecord,
    ) -> usize {
        self.0.on_unlink_start(operation, record)
    }
    fn on_unlink_complete(&self, index: usize) {
        self.0.on_unlink_complete(index)
    }
    fn on_link_start(
        &self,
        operation: usize,
        record: &rattler_conda_types::RepoDataRecord,
    ) -> usize {
        self.0.on_link_start(operation, record)
    }
    fn on_link_complete(&self, index: usize) {
        self.0.on_link_complete(index)
    }
    fn on_transaction_operation_complete(&self, operation: usize) {
        self.0.on_transaction_operation_complete(operation)
    }
    fn on_transaction_complete(&self) {
        self.0.on_transaction_complete()
    }
    fn on_post_link_start(&self, package_name: &str, script_path: &str) -> usize {
        self.0.on_post_link_start(package_name, script_path)
    }
    fn on_post_link_complete(&self, index: usize, success: bool) {
        self.0.on_post_link_complete(index, success)
    }
    fn on_pre_unlink_start(&self, package_name: &str, script_path: &str) -> usize {
        self.0.on_pre_unlink_start(package_name, script_path)
    }
    fn on_pre_unlink_complete(&self, index: usize, success: bool) {
        self.0.on_pre_unlink_complete(index, success)
    }
}

/// The gateway takes its reporter by value too.
pub(crate) struct RepodataForward(pub(crate) Arc<dyn rattler_repodata_gateway::Reporter>);

impl rattler_repodata_gateway::Reporter for RepodataForward {
    fn download_reporter(&self) -> Option<&dyn rattler_repodata_gateway::DownloadReporter> {
        self.0.download_reporter()
    }
    fn on_unsupported_repodata_revision(
        &self,
        message: &rattler_repodata_gateway::UnsupportedRepodataRevision,
    ) {
        self.0.on_unsupported_repodata_revision(message)
    }
    fn on_channel_notice(&self, notice: &rattler_repodata_gateway::ChannelNoticeResult) {
        self.0.on_channel_notice(notice)
    }
    fn on_gateway_warning(&self, warning: &rattler_repodata_gateway::GatewayWarning) {
        self.0.on_gateway_warning(warning)
    }
}
